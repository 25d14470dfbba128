//! Statistics of one histogram: quantile, fraction, mean and variance estimates, and its
//! text form.

use std::fmt;

use super::FloatHistogram;
use super::ops::{Bucket, indexed, kahan_inc};

/// What Prometheus reports (as an info annotation) about an estimate from a histogram that
/// has NaN observations (its sum is NaN and its count exceeds its buckets' total).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanObservationsNote {
    /// `histogram_quantile` found the quantile above every bucket and returned NaN.
    QuantileIsNaN,
    /// `histogram_quantile`'s result may be skewed up by NaN observations.
    QuantileSkewed,
    /// `histogram_fraction` left NaN observations out of every bucket.
    FractionExcludesNaN,
}

/// `histogram_quantile(q, h)` for a native histogram (`q` outside [0, 1] gives -Inf/+Inf,
/// NaN gives NaN), interpolating within a bucket as Prometheus does (exponentially for
/// exponential schemas, linearly for custom buckets and the zero bucket).
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> f64 {
    histogram_quantile_noted(q, h).0
}

/// [`histogram_quantile`] with the note Prometheus adds for NaN observations.
pub fn histogram_quantile_noted(q: f64, h: &FloatHistogram) -> (f64, Option<NanObservationsNote>) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, None);
    }
    let mut buckets = h.all_buckets();
    // With NaN observations (NaN sum), or below the median, walk up from the lowest bucket;
    // otherwise down from the highest (fewer buckets to sum, less rounding).
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward {
        q * h.count
    } else {
        buckets.reverse();
        (1.0 - q) * h.count
    };
    let mut bucket = Bucket {
        lower: 0.0,
        upper: 0.0,
        count: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        index: 0,
    };
    let mut count = 0.0;
    let mut next = 0;
    while next < buckets.len() {
        bucket = buckets[next];
        next += 1;
        if bucket.count == 0.0 {
            continue;
        }
        count += bucket.count;
        if count >= rank {
            break;
        }
    }
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        // In the zero bucket: with buckets on one side only, zero is the other bound.
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            // The first bucket: its upper bound if that is not positive, else from 0 up.
            if bucket.upper <= 0.0 {
                return (bucket.upper, None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, None);
        }
    }
    // Rounding could make the buckets add up to more than the count.
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // Above every bucket: only NaN observations (counted but in no bucket) get here.
        if h.sum.is_nan() {
            return (f64::NAN, Some(NanObservationsNote::QuantileIsNaN));
        }
        return (bucket.upper, None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut note = None;
    if h.sum.is_nan() {
        for b in &buckets[next..] {
            count += b.count;
        }
        if count < h.count {
            note = Some(NanObservationsNote::QuantileSkewed);
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            note,
        );
    }
    // Exponential buckets have equal widths on a logarithmic scale: interpolate there.
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            note,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        note,
    )
}

/// `histogram_fraction(lower, upper, h)`: the estimated fraction of observations in
/// `[lower, upper]`.
pub fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    histogram_fraction_noted(lower, upper, h).0
}

impl Bucket {
    /// The part of this bucket's width at or below `v` (strictly inside the bucket),
    /// linearly or on a logarithmic scale (where exponential buckets have equal widths;
    /// negative buckets mirrored), as Prometheus' `Bucket.FractionBelow`.
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            (log_v - log_lower) / (log_upper - log_lower)
        } else {
            1.0 - (log_v - log_upper) / (log_lower - log_upper)
        }
    }
}

/// [`histogram_fraction`] with the note Prometheus adds for NaN observations.
pub fn histogram_fraction_noted(
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
) -> (f64, Option<NanObservationsNote>) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, None);
    }
    if lower >= upper {
        return (0.0, None);
    }
    let buckets = h.all_buckets();
    let custom = h.uses_custom_buckets();
    let (mut count, mut rank) = (0.0, 0.0);
    let (mut lower_rank, mut upper_rank) = (0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut next = 0;
    while next < buckets.len() {
        let mut b = buckets[next];
        next += 1;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = custom || zero_bucket;
        let interpolate = |v: f64| {
            // No interpolation inside a bucket reaching down to -Inf: count all of it.
            if linear && b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * b.fraction_below(v, linear)
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut note = None;
    if h.sum.is_nan() {
        // NaN observations are counted but in no bucket: the total is the buckets' total.
        for b in &buckets[next..] {
            count += b.count;
        }
        if count < h.count {
            note = Some(NanObservationsNote::FractionExcludesNaN);
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, note)
}

impl FloatHistogram {
    /// `histogram_avg`: the mean of the observations, `sum / count`.
    pub fn mean(&self) -> f64 {
        self.sum / self.count
    }

    /// `histogram_stdvar`: the estimated variance of the observations (each bucket's
    /// observations taken at its midpoint, geometric for exponential buckets, zero in the
    /// zero bucket). `histogram_stddev` is its square root.
    pub fn stdvar(&self) -> f64 {
        let mean = self.mean();
        let (mut variance, mut comp) = (0.0, 0.0);
        for b in self.all_buckets() {
            if b.count == 0.0 {
                continue;
            }
            let value = if self.uses_custom_buckets() {
                (b.upper + b.lower) / 2.0
            } else if b.lower <= 0.0 && b.upper >= 0.0 {
                0.0
            } else {
                let geometric = (b.upper * b.lower).sqrt();
                if b.upper < 0.0 { -geometric } else { geometric }
            };
            let delta = value - mean;
            (variance, comp) = kahan_inc(b.count * delta * delta, variance, comp);
        }
        (variance + comp) / self.count
    }
}

/// Go's `%g` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits that
/// read back to `f`, in exponent form below 1e-4 and from 1e6 on; `NaN`, `+Inf`, `-Inf`.
pub fn go_format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

impl fmt::Display for Bucket {
    /// `(lower,upper]:count`, with `[`/`]` for inclusive bounds (Prometheus' `Bucket.String`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{},{}{}:{}",
            if self.lower_inclusive { '[' } else { '(' },
            go_format_g(self.lower),
            go_format_g(self.upper),
            if self.upper_inclusive { ']' } else { ')' },
            go_format_g(self.count)
        )
    }
}

/// Prometheus' `FloatHistogram.String()`: `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2,
/// (0.5,1]:1}` (used where a histogram becomes a label value, as in `count_values`).
/// Non-empty buckets only, from the lowest up; bounds are not clipped to the zero bucket.
impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{count:{}, sum:{}",
            go_format_g(self.count),
            go_format_g(self.sum)
        )?;
        for (index, count) in indexed(&self.negative_spans, &self.negative_buckets)
            .into_iter()
            .rev()
        {
            if count != 0.0 {
                write!(f, ", {}", self.bucket_at(index, count, false))?;
            }
        }
        if self.zero_count != 0.0 && !self.uses_custom_buckets() {
            write!(f, ", {}", self.zero_bucket())?;
        }
        for (index, count) in indexed(&self.positive_spans, &self.positive_buckets) {
            if count != 0.0 {
                write!(f, ", {}", self.bucket_at(index, count, true))?;
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::test_literal::h;

    /// Equal as the PromQL test runner compares floats: both NaN, or within a relative
    /// 1e-6 (exactly equal for infinities and zero).
    fn close(a: f64, b: f64) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        if a == b {
            return true;
        }
        let diff = (a - b).abs();
        diff <= 1e-6 * a.abs().max(b.abs()) || diff < f64::MIN_POSITIVE
    }

    /// Every `histogram_quantile`, `histogram_fraction`, `histogram_stddev` and
    /// `histogram_stdvar` evaluation of Prometheus' native_histograms.test on a series that
    /// holds one literal histogram: (line, function, scalar arguments, histogram, expected).
    #[allow(clippy::excessive_precision, clippy::approx_constant)]
    const PROMETHEUS_CASES: &[(u32, &str, &[f64], &str, f64)] = &[
        (
            49,
            "histogram_fraction",
            &[1.0, 2.0],
            "{{schema:0 sum:5 count:4 buckets:[1 2 1]}}",
            0.5,
        ),
        (
            53,
            "histogram_fraction",
            &[0.0, 8.0],
            "{{schema:0 sum:5 count:4 buckets:[1 2 1]}}",
            1.0,
        ),
        (
            61,
            "histogram_quantile",
            &[0.5],
            "{{schema:0 sum:5 count:4 buckets:[1 2 1]}}",
            1.414213562373095,
        ),
        (
            211,
            "histogram_fraction",
            &[-0.5, 0.5],
            "{{schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1}}",
            1.0,
        ),
        (
            215,
            "histogram_quantile",
            &[0.5],
            "{{schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1}}",
            0.0,
        ),
        (
            234,
            "histogram_fraction",
            &[-2.0, -1.0],
            "{{schema:0 sum:-5 count:4 n_buckets:[1 2 1]}}",
            0.5,
        ),
        (
            238,
            "histogram_quantile",
            &[0.5],
            "{{schema:0 sum:-5 count:4 n_buckets:[1 2 1]}}",
            -1.414213562373095,
        ),
        (
            332,
            "histogram_stddev",
            &[],
            "{{schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]}}",
            1.0787993180043811,
        ),
        (
            335,
            "histogram_stdvar",
            &[],
            "{{schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]}}",
            1.163807968526718,
        ),
        (
            344,
            "histogram_stddev",
            &[],
            "{{schema:8 count:10 sum:10 buckets:[1 2 3 4]}}",
            0.0048960313898237465,
        ),
        (
            347,
            "histogram_stdvar",
            &[],
            "{{schema:8 count:10 sum:10 buckets:[1 2 3 4]}}",
            2.3971123370139447e-05,
        ),
        (
            356,
            "histogram_stddev",
            &[],
            "{{schema:3 count:7 sum:62 z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]}}",
            42.94723640026,
        ),
        (
            359,
            "histogram_stdvar",
            &[],
            "{{schema:3 count:7 sum:62 z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]}}",
            1844.4651144196398,
        ),
        (
            368,
            "histogram_stddev",
            &[],
            "{{schema:0 count:10 sum:-112946 z_bucket:0 n_buckets:[0 0 1 1 1 0 1 1 0 0 3 0 0 0 1 0 0 1]}}",
            27556.344499842,
        ),
        (
            371,
            "histogram_stdvar",
            &[],
            "{{schema:0 count:10 sum:-112946 z_bucket:0 n_buckets:[0 0 1 1 1 0 1 1 0 0 3 0 0 0 1 0 0 1]}}",
            759352122.1939945,
        ),
        (
            380,
            "histogram_stddev",
            &[],
            "{{schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]}}",
            1.3137084989848,
        ),
        (
            383,
            "histogram_stdvar",
            &[],
            "{{schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]}}",
            1.725830020304794,
        ),
        (
            392,
            "histogram_stddev",
            &[],
            "{{schema:3 count:7 sum:NaN z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]}}",
            f64::NAN,
        ),
        (
            395,
            "histogram_stdvar",
            &[],
            "{{schema:3 count:7 sum:NaN z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]}}",
            f64::NAN,
        ),
        (
            404,
            "histogram_stddev",
            &[],
            "{{schema:3 count:7 sum:Inf z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]}}",
            f64::INFINITY,
        ),
        (
            407,
            "histogram_stdvar",
            &[],
            "{{schema:3 count:7 sum:Inf z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]}}",
            f64::INFINITY,
        ),
        (
            416,
            "histogram_quantile",
            &[1.001],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            f64::INFINITY,
        ),
        (
            420,
            "histogram_quantile",
            &[1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            16.0,
        ),
        (
            427,
            "histogram_quantile",
            &[0.99],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            15.67072476139083,
        ),
        (
            431,
            "histogram_quantile",
            &[0.9],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            12.99603834169977,
        ),
        (
            435,
            "histogram_quantile",
            &[0.6],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            4.594793419988138,
        ),
        (
            439,
            "histogram_quantile",
            &[0.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            1.5874010519681994,
        ),
        (
            444,
            "histogram_quantile",
            &[0.1],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0006,
        ),
        (
            448,
            "histogram_quantile",
            &[0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            452,
            "histogram_quantile",
            &[-1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            f64::NEG_INFINITY,
        ),
        (
            462,
            "histogram_quantile",
            &[1.001],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            f64::INFINITY,
        ),
        (
            466,
            "histogram_quantile",
            &[1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            473,
            "histogram_quantile",
            &[0.99],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -0.00006,
        ),
        (
            477,
            "histogram_quantile",
            &[0.9],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -0.0006,
        ),
        (
            481,
            "histogram_quantile",
            &[0.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -1.5874010519681996,
        ),
        (
            485,
            "histogram_quantile",
            &[0.1],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -12.996038341699768,
        ),
        (
            489,
            "histogram_quantile",
            &[0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -16.0,
        ),
        (
            493,
            "histogram_quantile",
            &[-1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            f64::NEG_INFINITY,
        ),
        (
            505,
            "histogram_quantile",
            &[1.001],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            f64::INFINITY,
        ),
        (
            509,
            "histogram_quantile",
            &[1.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            16.0,
        ),
        (
            513,
            "histogram_quantile",
            &[0.99],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            15.34822590920423,
        ),
        (
            517,
            "histogram_quantile",
            &[0.9],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            10.556063286183155,
        ),
        (
            521,
            "histogram_quantile",
            &[0.7],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            1.2030250360821164,
        ),
        (
            527,
            "histogram_quantile",
            &[0.55],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0006,
        ),
        (
            531,
            "histogram_quantile",
            &[0.5],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            535,
            "histogram_quantile",
            &[0.45],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            -0.0006,
        ),
        (
            540,
            "histogram_quantile",
            &[0.3],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            -1.2030250360821169,
        ),
        (
            544,
            "histogram_quantile",
            &[0.1],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            -10.556063286183155,
        ),
        (
            548,
            "histogram_quantile",
            &[0.01],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            -15.34822590920423,
        ),
        (
            552,
            "histogram_quantile",
            &[0.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            -16.0,
        ),
        (
            556,
            "histogram_quantile",
            &[-1.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            f64::NEG_INFINITY,
        ),
        (650, "histogram_fraction", &[3.1415, 42.0], "{{}}", f64::NAN),
        (
            659,
            "histogram_fraction",
            &[0.0, f64::INFINITY],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            1.0,
        ),
        (
            662,
            "histogram_fraction",
            &[f64::NEG_INFINITY, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            665,
            "histogram_fraction",
            &[-0.001, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            668,
            "histogram_fraction",
            &[0.0, 0.001],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.16666666666666666,
        ),
        (
            676,
            "histogram_fraction",
            &[0.0, 0.0005],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.08333333333333333,
        ),
        (
            681,
            "histogram_quantile",
            &[0.08333333333333333],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0005,
        ),
        (
            687,
            "histogram_fraction",
            &[1.0, 2.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.25,
        ),
        (
            694,
            "histogram_fraction",
            &[0.0, 1.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.4795739585136224,
        ),
        (
            697,
            "histogram_fraction",
            &[1.5, 2.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.10375937481971091,
        ),
        (
            700,
            "histogram_fraction",
            &[1.0, 8.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.3333333333333333,
        ),
        (
            703,
            "histogram_fraction",
            &[0.0, 6.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.6320802083934297,
        ),
        (
            706,
            "histogram_quantile",
            &[0.6320802083934297],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            6.0,
        ),
        (
            709,
            "histogram_fraction",
            &[1.0, 6.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.29874687506009634,
        ),
        (
            712,
            "histogram_fraction",
            &[1.5, 6.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.15250624987980724,
        ),
        (
            715,
            "histogram_fraction",
            &[-2.0, -1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            718,
            "histogram_fraction",
            &[-2.0, -1.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            721,
            "histogram_fraction",
            &[-8.0, -1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            724,
            "histogram_fraction",
            &[-6.0, -1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            727,
            "histogram_fraction",
            &[-6.0, -1.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            730,
            "histogram_fraction",
            &[42.0, 3.1415],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            733,
            "histogram_fraction",
            &[0.0, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            736,
            "histogram_fraction",
            &[0.000001, 0.000001],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            739,
            "histogram_fraction",
            &[42.0, 42.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            742,
            "histogram_fraction",
            &[-3.1, -3.1],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            745,
            "histogram_fraction",
            &[3.1415, f64::NAN],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            748,
            "histogram_fraction",
            &[f64::NAN, 42.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            751,
            "histogram_fraction",
            &[f64::NAN, f64::NAN],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            754,
            "histogram_fraction",
            &[f64::NEG_INFINITY, f64::INFINITY],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
            1.0,
        ),
        (
            761,
            "histogram_fraction",
            &[0.0, f64::INFINITY],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            764,
            "histogram_fraction",
            &[f64::NEG_INFINITY, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            1.0,
        ),
        (
            767,
            "histogram_fraction",
            &[-0.001, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.16666666666666666,
        ),
        (
            770,
            "histogram_fraction",
            &[0.0, 0.001],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            773,
            "histogram_fraction",
            &[-0.0005, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.08333333333333333,
        ),
        (
            779,
            "histogram_quantile",
            &[0.9166666666666666],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -0.0005,
        ),
        (
            788,
            "histogram_fraction",
            &[1.0, 2.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            791,
            "histogram_fraction",
            &[1.5, 2.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            794,
            "histogram_fraction",
            &[1.0, 8.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            797,
            "histogram_fraction",
            &[1.0, 6.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            800,
            "histogram_fraction",
            &[1.5, 6.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            803,
            "histogram_fraction",
            &[-2.0, -1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.25,
        ),
        (
            806,
            "histogram_fraction",
            &[-2.0, -1.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.10375937481971091,
        ),
        (
            809,
            "histogram_fraction",
            &[-8.0, -1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.3333333333333333,
        ),
        (
            815,
            "histogram_quantile",
            &[0.36791979160657035],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            -6.0,
        ),
        (
            818,
            "histogram_fraction",
            &[-6.0, -1.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.29874687506009634,
        ),
        (
            821,
            "histogram_fraction",
            &[-6.0, -1.5],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.15250624987980724,
        ),
        (
            824,
            "histogram_fraction",
            &[42.0, 3.1415],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            827,
            "histogram_fraction",
            &[0.0, 0.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            830,
            "histogram_fraction",
            &[0.000001, 0.000001],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            833,
            "histogram_fraction",
            &[42.0, 42.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            836,
            "histogram_fraction",
            &[-3.1, -3.1],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            839,
            "histogram_fraction",
            &[3.1415, f64::NAN],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            842,
            "histogram_fraction",
            &[f64::NAN, 42.0],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            845,
            "histogram_fraction",
            &[f64::NAN, f64::NAN],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            848,
            "histogram_fraction",
            &[f64::NEG_INFINITY, f64::INFINITY],
            "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}",
            1.0,
        ),
        (
            857,
            "histogram_fraction",
            &[0.0, f64::INFINITY],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.5,
        ),
        (
            860,
            "histogram_fraction",
            &[f64::NEG_INFINITY, 0.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.5,
        ),
        (
            863,
            "histogram_fraction",
            &[-0.001, 0.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.08333333333333333,
        ),
        (
            866,
            "histogram_fraction",
            &[0.0, 0.001],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.08333333333333333,
        ),
        (
            869,
            "histogram_fraction",
            &[-0.0005, 0.0005],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.08333333333333333,
        ),
        (
            875,
            "histogram_quantile",
            &[0.5416666666666666],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0005,
        ),
        (
            881,
            "histogram_quantile",
            &[0.4583333333333333],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            -0.0005,
        ),
        (
            890,
            "histogram_fraction",
            &[1.0, 2.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.125,
        ),
        (
            893,
            "histogram_fraction",
            &[1.5, 2.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.051879687409855414,
        ),
        (
            896,
            "histogram_fraction",
            &[1.0, 8.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.16666666666666666,
        ),
        (
            899,
            "histogram_fraction",
            &[1.0, 6.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.14937343753004825,
        ),
        (
            902,
            "histogram_fraction",
            &[1.5, 6.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.07625312493990366,
        ),
        (
            905,
            "histogram_fraction",
            &[-2.0, -1.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.125,
        ),
        (
            908,
            "histogram_fraction",
            &[-2.0, -1.5],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.051879687409855456,
        ),
        (
            911,
            "histogram_fraction",
            &[-8.0, -1.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.16666666666666666,
        ),
        (
            914,
            "histogram_fraction",
            &[-6.0, -1.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.14937343753004817,
        ),
        (
            917,
            "histogram_fraction",
            &[-6.0, -1.5],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.07625312493990362,
        ),
        (
            920,
            "histogram_fraction",
            &[42.0, 3.1415],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            923,
            "histogram_fraction",
            &[0.0, 0.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            926,
            "histogram_fraction",
            &[0.000001, 0.000001],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            929,
            "histogram_fraction",
            &[42.0, 42.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            932,
            "histogram_fraction",
            &[-3.1, -3.1],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            0.0,
        ),
        (
            935,
            "histogram_fraction",
            &[3.1415, f64::NAN],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            938,
            "histogram_fraction",
            &[f64::NAN, 42.0],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            941,
            "histogram_fraction",
            &[f64::NAN, f64::NAN],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            f64::NAN,
        ),
        (
            944,
            "histogram_fraction",
            &[f64::NEG_INFINITY, f64::INFINITY],
            "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
            1.0,
        ),
        (
            1080,
            "histogram_fraction",
            &[5.0, 10.0],
            "{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]}}",
            0.5,
        ),
        (
            1083,
            "histogram_quantile",
            &[0.5],
            "{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]}}",
            7.5,
        ),
    ];

    #[test]
    fn prometheus_test_file_cases() {
        let mut failures = Vec::new();
        for &(line, func, args, literal, want) in PROMETHEUS_CASES {
            let hist = h(literal);
            let got = match func {
                "histogram_quantile" => histogram_quantile(args[0], &hist),
                "histogram_fraction" => histogram_fraction(args[0], args[1], &hist),
                "histogram_stdvar" => hist.stdvar(),
                "histogram_stddev" => hist.stdvar().sqrt(),
                _ => unreachable!("{func}"),
            };
            if !close(got, want) {
                failures.push(format!(
                    "line {line}: {func}{args:?} of {literal}: got {got}, want {want}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn quantile_special_cases() {
        let hist = h("{{schema:0 count:4 sum:5 buckets:[1 2 1]}}");
        assert_eq!(histogram_quantile(-0.1, &hist), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &hist), f64::INFINITY);
        assert!(histogram_quantile(f64::NAN, &hist).is_nan());
        assert!(histogram_quantile(0.5, &h("{{schema:0 count:0 sum:0}}")).is_nan());
        // Below the median from the bottom, above it from the top: both interpolate
        // exponentially. Bucket (1,2] holds the 2nd and 3rd observation.
        assert!(close(
            histogram_quantile(0.5, &hist),
            std::f64::consts::SQRT_2
        ));
        assert_eq!(histogram_quantile(0.25, &hist), 1.0);
        assert_eq!(histogram_quantile(1.0, &hist), 4.0);
    }

    #[test]
    fn quantile_with_nan_observations() {
        // 4 observations in buckets, 1 NaN observation: count 5, sum NaN.
        let hist = h("{{schema:0 count:5 sum:NaN buckets:[1 2 1]}}");
        let (v, note) = histogram_quantile_noted(0.5, &hist);
        assert!(v > 1.0 && v < 2.0, "{v}");
        assert_eq!(note, Some(NanObservationsNote::QuantileSkewed));
        let (v, note) = histogram_quantile_noted(0.99, &hist);
        assert!(v.is_nan());
        assert_eq!(note, Some(NanObservationsNote::QuantileIsNaN));
        let (v, note) = histogram_fraction_noted(f64::NEG_INFINITY, f64::INFINITY, &hist);
        assert_eq!(v, 0.8);
        assert_eq!(note, Some(NanObservationsNote::FractionExcludesNaN));
        // Count above the buckets' total without a NaN sum (inconsistent input): the upper
        // bound of the last bucket passed, empty or not.
        let odd = h("{{schema:0 count:10 sum:3 buckets:[1 2 1 0]}}");
        assert_eq!(histogram_quantile_noted(0.45, &odd), (8.0, None));
        // NaN sum from +Inf and -Inf observations, no NaN observation: no note.
        let hist = h("{{schema:0 count:4 sum:NaN buckets:[1 2 1]}}");
        assert_eq!(histogram_quantile_noted(0.5, &hist).1, None);
    }

    #[test]
    fn quantile_of_custom_buckets_is_linear() {
        let hist = h("{{schema:-53 count:10 sum:30 custom_values:[1 5 10] buckets:[2 4 2 2]}}");
        // First bucket [-Inf, 1] interpolates from 0.
        assert_eq!(histogram_quantile(0.1, &hist), 0.5);
        // Rank 4 is halfway through (1, 5].
        assert_eq!(histogram_quantile(0.4, &hist), 3.0);
        // In the +Inf bucket: its lower bound.
        assert_eq!(histogram_quantile(0.95, &hist), 10.0);
        // A first bucket ending at or below zero answers its upper bound.
        let hist = h("{{schema:-53 count:2 sum:-3 custom_values:[-1 5] buckets:[1 1]}}");
        assert_eq!(histogram_quantile(0.2, &hist), -1.0);
        // Fractions: linear, nothing counted inside the -Inf and +Inf buckets' open ends.
        let hist = h("{{schema:-53 count:10 sum:30 custom_values:[1 5 10] buckets:[2 4 2 2]}}");
        assert_eq!(histogram_fraction(1.0, 3.0, &hist), 0.2);
        // Without negative buckets the first bucket counts as starting at 0 here.
        assert_eq!(histogram_fraction(f64::NEG_INFINITY, 0.5, &hist), 0.1);
        assert_eq!(histogram_fraction(10.0, 1e9, &hist), 0.0);
        assert_eq!(
            histogram_fraction(f64::NEG_INFINITY, f64::INFINITY, &hist),
            1.0
        );
    }

    #[test]
    fn fraction_and_quantile_are_inverse() {
        let hist = h(
            "{{schema:1 count:20 sum:40 z_bucket:2 z_bucket_w:0.01 buckets:[1 3 5 2] offset:1 n_buckets:[4 3]}}",
        );
        for q in [0.05, 0.2, 0.4, 0.6, 0.8, 0.95] {
            let v = histogram_quantile(q, &hist);
            let f = histogram_fraction(f64::NEG_INFINITY, v, &hist);
            assert!(close(f, q), "q {q}: quantile {v}, fraction {f}");
        }
    }

    #[test]
    fn stdvar_uses_bucket_midpoints() {
        // Custom buckets: arithmetic midpoints 2 and 6, mean 4.
        let hist = h("{{schema:-53 count:2 sum:8 custom_values:[0 4 8] buckets:[0 1 1]}}");
        assert_eq!(hist.stdvar(), 4.0);
        assert_eq!(hist.mean(), 4.0);
        // Exponential: geometric midpoint of (1,2] is sqrt 2; the zero bucket counts as 0.
        let hist = h("{{schema:0 count:2 sum:0 z_bucket:1 buckets:[1] offset:1}}");
        let d = std::f64::consts::SQRT_2;
        let want = (d * d + 0.0) / 2.0;
        assert!(close(hist.stdvar(), want));
    }

    #[test]
    fn display_matches_prometheus() {
        let hist = h(
            "{{schema:0 count:20 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 2] offset:0 n_buckets:[1 2]}}",
        );
        assert_eq!(
            hist.to_string(),
            "{count:20, sum:10, [-2,-1):2, [-1,-0.5):1, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}"
        );
        let hist =
            h("{{schema:-53 count:3 sum:1234567 custom_values:[0.5 1e-05] buckets:[1 0 2]}}");
        assert_eq!(
            hist.to_string(),
            "{count:3, sum:1.234567e+06, [-Inf,0.5]:1, (1e-05,+Inf]:2}"
        );
        assert_eq!(
            h("{{schema:0 count:0 sum:0}}").to_string(),
            "{count:0, sum:0}"
        );
        assert_eq!(go_format_g(0.0001), "0.0001");
        assert_eq!(go_format_g(0.00001), "1e-05");
        assert_eq!(go_format_g(123456.5), "123456.5");
        assert_eq!(go_format_g(-1e21), "-1e+21");
        assert_eq!(go_format_g(f64::NEG_INFINITY), "-Inf");
    }
}
