//! The trim operators `h </ x` (keep the observations below `x`) and `h >/ x` (keep those
//! above), as Prometheus' `FloatHistogram.TrimBuckets`: buckets entirely on the dropped side
//! are emptied, a bucket containing `x` keeps the interpolated part of its count, and count
//! and sum are re-estimated from what is left (each bucket's observations at its midpoint).

use super::FloatHistogram;
use super::ops::{Bucket, indexed};

impl FloatHistogram {
    /// Trims in place: with `upper` true keeps observations below `x` (`</`), otherwise
    /// those above `x` (`>/`). Count and sum change only when some bucket was trimmed; the
    /// result is compacted then.
    pub fn trim_buckets(&mut self, x: f64, upper: bool) {
        let custom = self.uses_custom_buckets();
        let mut kept_count = 0.0;
        let mut kept_sum = 0.0;
        let mut trimmed = false;
        let mut seen = [false, false];
        for positive in [true, false] {
            let entries = if positive {
                indexed(&self.positive_spans, &self.positive_buckets)
            } else {
                indexed(&self.negative_spans, &self.negative_buckets)
            };
            for (n, (index, count)) in entries.into_iter().enumerate() {
                if count == 0.0 {
                    continue;
                }
                seen[usize::from(positive)] = true;
                let b = self.bucket_at(index, count, positive);
                let whole = if upper { b.upper <= x } else { b.lower >= x };
                let partly = if upper { b.lower < x } else { b.upper > x };
                let new_count = if whole {
                    kept_count += count;
                    kept_sum += midpoint(b.lower, b.upper, positive, custom) * count;
                    continue;
                } else if partly {
                    let (keep, mid) = trim_bucket(&b, x, upper, positive, custom);
                    kept_count += keep;
                    kept_sum += mid * keep;
                    keep
                } else {
                    0.0
                };
                let slot = if positive {
                    &mut self.positive_buckets[n]
                } else {
                    &mut self.negative_buckets[n]
                };
                if *slot != new_count {
                    *slot = new_count;
                    trimmed = true;
                }
            }
        }
        if self.zero_count > 0.0 {
            let (has_positive, has_negative) = (seen[1], seen[0]);
            let (keep, mid) =
                trim_zero_bucket(&self.zero_bucket(), x, has_negative, has_positive, upper);
            if self.zero_count != keep {
                self.zero_count = keep;
                trimmed = true;
            }
            kept_sum += mid * keep;
            kept_count += keep;
        }
        if trimmed {
            self.count = kept_count;
            self.sum = kept_sum;
            self.compact(0);
        }
    }
}

/// The representative value of the observations in `[lower, upper]`: arithmetic midpoint
/// for linear (custom) buckets, geometric (signed) for exponential ones; with an infinite
/// bound, the finite one (or half of a positive upper bound below -Inf).
fn midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let geometric = (lower * upper).abs().sqrt();
    if positive { geometric } else { -geometric }
}

/// Count kept and its midpoint for a bucket that `x` cuts.
fn trim_bucket(b: &Bucket, x: f64, upper: bool, positive: bool, custom: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return trim_infinite_bucket(b, x, upper);
    }
    let below = if x <= b.lower {
        0.0
    } else if x >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(x, custom)
    };
    if upper {
        (below, midpoint(b.lower, x, positive, custom))
    } else {
        (b.count - below, midpoint(x, b.upper, positive, custom))
    }
}

/// [`trim_bucket`] for a bucket with an infinite bound (custom buckets only): interpolated
/// linearly from 0 where that makes sense, else kept whole or dropped whole.
fn trim_infinite_bucket(b: &Bucket, x: f64, upper: bool) -> (f64, f64) {
    let finite_or_zero = |v: f64| if v.is_infinite() { 0.0 } else { v };
    if b.lower == f64::NEG_INFINITY {
        if upper {
            if x >= b.upper {
                return (b.count, 0.0);
            }
            if x > 0.0 && b.upper > 0.0 && b.upper.is_finite() {
                // Treat the bucket as starting at 0.
                return (b.count * x / b.upper, x / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, x);
            }
            return (0.0, finite_or_zero(b.upper));
        }
        if x <= b.lower {
            return (b.count, 0.0);
        }
        if x >= 0.0 && b.upper > x && b.upper.is_finite() {
            return (b.count * (1.0 - x / b.upper), (x + b.upper) / 2.0);
        }
        return (0.0, finite_or_zero(b.upper));
    }
    // Upper bound +Inf.
    if upper {
        // Some of it may lie above x, and where is unknown: drop it all.
        return (0.0, finite_or_zero(b.lower));
    }
    if x >= b.lower {
        return (b.count, x);
    }
    (0.0, finite_or_zero(b.lower))
}

/// Count kept and its midpoint for the zero bucket, which counts as `[0, zt]` when only
/// positive buckets are populated and `[-zt, 0]` when only negative ones are.
fn trim_zero_bucket(
    zero: &Bucket,
    x: f64,
    has_negative: bool,
    has_positive: bool,
    upper: bool,
) -> (f64, f64) {
    let mut lower = zero.lower;
    let mut top = zero.upper;
    if has_negative && !has_positive {
        top = 0.0;
    }
    if has_positive && !has_negative {
        lower = 0.0;
    }
    if upper {
        if x <= lower {
            return (0.0, 0.0);
        }
        if x >= top {
            return (zero.count, (lower + top) / 2.0);
        }
        (
            zero.count * ((x - lower) / (top - lower)),
            (lower + x) / 2.0,
        )
    } else {
        if x <= lower {
            return (zero.count, (lower + top) / 2.0);
        }
        if x >= top {
            return (0.0, 0.0);
        }
        (zero.count * ((top - x) / (top - lower)), (x + top) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Span;
    use crate::histogram::test_literal::h;

    fn close(a: f64, b: f64) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
    }

    /// As the PromQL test runner compares: compacted, same layout, values within 1e-6.
    fn matches(got: &FloatHistogram, want: &FloatHistogram) -> bool {
        let (mut got, mut want) = (got.clone(), want.clone());
        got.compact(0);
        want.compact(0);
        let side = |a: &[Span], ab: &[f64], b: &[Span], bb: &[f64]| {
            let (x, y) = (indexed(a, ab), indexed(b, bb));
            x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| p.0 == q.0 && close(p.1, q.1))
        };
        got.schema == want.schema
            && close(got.count, want.count)
            && close(got.sum, want.sum)
            && got.zero_threshold == want.zero_threshold
            && close(got.zero_count, want.zero_count)
            && got.custom_values == want.custom_values
            && side(
                &got.positive_spans,
                &got.positive_buckets,
                &want.positive_spans,
                &want.positive_buckets,
            )
            && side(
                &got.negative_spans,
                &got.negative_buckets,
                &want.negative_spans,
                &want.negative_buckets,
            )
    }

    /// Every trim evaluation of native_histograms.test on a one-histogram series: (line,
    /// input, `</` or not, operand, expected).
    #[allow(clippy::excessive_precision, clippy::approx_constant)]
    const PROMETHEUS_CASES: &[(u32, &str, bool, f64, &str)] = &[
        (
            2043,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            false,
            f64::NEG_INFINITY,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
        ),
        (
            2046,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            true,
            f64::INFINITY,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
        ),
        (
            2049,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            false,
            f64::INFINITY,
            "{{schema:0 z_bucket_w:0.001}}",
        ),
        (
            2052,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            true,
            f64::NEG_INFINITY,
            "{{schema:0 z_bucket_w:0.001}}",
        ),
        (
            2055,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            false,
            0.0,
            "{{schema:0 sum:120.20840280171308 count:30.5 z_bucket:0.5 z_bucket_w:0.001 buckets:[2 4 8 16]}}",
        ),
        (
            2058,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            true,
            0.0,
            "{{schema:0 sum:-3.53578390593273768 count:3.5 z_bucket:0.5 z_bucket_w:0.001 n_buckets:[1 2]}}",
        ),
        (
            2063,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            true,
            1.4142135624,
            "{{count:8 sum:0.2570938865989847 z_bucket:1 z_bucket_w:0.001 buckets:[2 2] n_buckets:[1 2]}}",
        ),
        (
            2066,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            false,
            1.4142135624,
            "{{count:26 sum:116.50067065070982 z_bucket_w:0.001 buckets:[0 2 8 16]}}",
        ),
        (
            2073,
            "{{schema:2 sum:12.8286080906 count:28 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 3 1]}}",
            true,
            1.13,
            "{{schema:2 count:13.410582181123704 sum:-9.385798726068233 z_bucket:1 z_bucket_w:0.001 buckets:[1 1.410582181123704] n_buckets:[1 5 3 1]}}",
        ),
        (
            2076,
            "{{schema:2 sum:12.8286080906 count:28 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 3 1]}}",
            false,
            1.13,
            "{{schema:2 count:14.589417818876296 sum:22.168126492693734 z_bucket_w:0.001 offset:1 buckets:[0.589417818876296 4 7 3]}}",
        ),
        (
            2079,
            "{{schema:2 sum:12.8286080906 count:28 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 3 1]}}",
            false,
            -1.3,
            "{{schema:2 count:25.54213947904476 sum:16.29588491217537 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 1.54213947904476]}}",
        ),
        (
            2082,
            "{{schema:2 sum:12.8286080906 count:28 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 3 1]}}",
            true,
            -1.3,
            "{{schema:2 count:2.45786052095524 sum:-3.5189307983595066 z_bucket_w:0.001 n_offset:2 n_buckets:[1.45786052095524 1]}}",
        ),
        (
            2086,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            true,
            2.0,
            "{{count:10 sum:3.5355339059327373 z_bucket:1 z_bucket_w:0.001 buckets:[2 4] n_buckets:[1 2]}}",
        ),
        (
            2089,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            false,
            2.0,
            "{{count:24 sum:113.13708498984761 z_bucket_w:0.001 offset:2 buckets:[8 16]}}",
        ),
        (
            2092,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            false,
            -1.0,
            "{{count:32 sum:119.50104602052653 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1]}}",
        ),
        (
            2095,
            "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}",
            true,
            -1.0,
            "{{count:2 sum:-2.8284271247461903 z_bucket_w:0.001 n_offset:1 n_buckets:[2]}}",
        ),
        (
            2103,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
            false,
            0.5,
            "{{schema:0 count:10 sum:7.0710678118654755 z_bucket:0 z_bucket_w:0.5 buckets:[10]}}",
        ),
        (
            2106,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
            false,
            0.1,
            "{{schema:0 count:11.6 sum:7.551067811865476 z_bucket:1.6 z_bucket_w:0.5 buckets:[10]}}",
        ),
        (
            2109,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
            false,
            0.0,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
        ),
        (
            2112,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
            true,
            0.5,
            "{{schema:0 count:2 sum:0.5 z_bucket:2 z_bucket_w:0.5}}",
        ),
        (
            2115,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
            true,
            0.1,
            "{{schema:0 count:0.4 sum:0.02 z_bucket:0.4 z_bucket_w:0.5}}",
        ),
        (
            2118,
            "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}",
            true,
            0.0,
            "{{schema:0 z_bucket_w:0.5}}",
        ),
        (
            2126,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
            true,
            -0.5,
            "{{schema:0 count:10 sum:-7.0710678118654755 z_bucket:0 z_bucket_w:0.5 n_buckets:[10]}}",
        ),
        (
            2129,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
            true,
            -0.1,
            "{{schema:0 count:11.6 sum:-7.551067811865476 z_bucket:1.6 z_bucket_w:0.5 n_buckets:[10]}}",
        ),
        (
            2132,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
            true,
            0.0,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
        ),
        (
            2135,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
            false,
            -0.5,
            "{{schema:0 count:2 sum:-0.5 z_bucket:2 z_bucket_w:0.5}}",
        ),
        (
            2138,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
            false,
            -0.1,
            "{{schema:0 count:0.4 sum:-0.02 z_bucket:0.4 z_bucket_w:0.5}}",
        ),
        (
            2141,
            "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}",
            false,
            0.0,
            "{{schema:0 z_bucket_w:0.5}}",
        ),
        (
            2149,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            false,
            0.1,
            "{{schema:0 count:0 sum:0 z_bucket:0 z_bucket_w:0.1 }}",
        ),
        (
            2152,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            true,
            0.1,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
        ),
        (
            2155,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            false,
            0.05,
            "{{schema:0 count:1.25 sum:0.09375 z_bucket:1.25 z_bucket_w:0.1 }}",
        ),
        (
            2158,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            true,
            0.05,
            "{{schema:0 count:3.75 sum:-0.09375 z_bucket:3.75 z_bucket_w:0.1 }}",
        ),
        (
            2161,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            false,
            0.0,
            "{{schema:0 count:2.5 sum:0.125 z_bucket:2.5 z_bucket_w:0.1 }}",
        ),
        (
            2164,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            true,
            0.0,
            "{{schema:0 count:2.5 sum:-0.125 z_bucket:2.5 z_bucket_w:0.1 }}",
        ),
        (
            2167,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            false,
            -0.05,
            "{{schema:0 count:3.75 sum:0.09375 z_bucket:3.75 z_bucket_w:0.1 }}",
        ),
        (
            2170,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            true,
            -0.05,
            "{{schema:0 count:1.25 sum:-0.09375 z_bucket:1.25 z_bucket_w:0.1 }}",
        ),
        (
            2173,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            true,
            -0.1,
            "{{schema:0 count:0 sum:0 z_bucket:0 z_bucket_w:0.1 }}",
        ),
        (
            2176,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
            false,
            -0.1,
            "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}",
        ),
        (
            2184,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            15.0,
            "{{schema:-53 count:11 sum:97.5 custom_values:[5 10 15 20] buckets:[1 6 4]}}",
        ),
        (
            2187,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            false,
            15.0,
            "{{schema:-53 count:4 sum:72.5 custom_values:[5 10 15 20] offset:3 buckets:[3 1]}}",
        ),
        (
            2191,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            13.0,
            "{{schema:-53 count:9.4 sum:75.1 custom_values:[5 10 15 20] buckets:[1 6 2.4]}}",
        ),
        (
            2194,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            false,
            13.0,
            "{{schema:-53 count:5.6 sum:94.9 custom_values:[5 10 15 20] offset:2 buckets:[1.6 3 1]}}",
        ),
        (
            2197,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            7.5,
            "{{schema:-53 count:4 sum:21.25 custom_values:[5 10 15 20] buckets:[1 3]}}",
        ),
        (
            2201,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            50.0,
            "{{schema:-53 count:14 sum:150.0 custom_values:[5 10 15 20] buckets:[1 6 4 3]}}",
        ),
        (
            2204,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            f64::NEG_INFINITY,
            "{{schema:-53 custom_values:[5 10 15 20]}}",
        ),
        (
            2207,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            false,
            f64::INFINITY,
            "{{schema:-53 custom_values:[5 10 15 20]}}",
        ),
        (
            2210,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            f64::INFINITY,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
        ),
        (
            2213,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            false,
            f64::NEG_INFINITY,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
        ),
        (
            2217,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            false,
            0.0,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
        ),
        (
            2220,
            "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}",
            true,
            0.0,
            "{{schema:-53 custom_values:[5 10 15 20]}}",
        ),
        (
            2228,
            "{{schema:-53 sum:172.5 count:15 custom_values:[-10 5 10 15 20] buckets:[2 1 6 4 3 1]}}",
            true,
            2.0,
            "{{schema:-53 count:2.8 sum:-23.2 custom_values:[-10 5 10 15 20] buckets:[2 0.8]}}",
        ),
        (
            2231,
            "{{schema:-53 sum:172.5 count:15 custom_values:[-10 5 10 15 20] buckets:[2 1 6 4 3 1]}}",
            true,
            -4.0,
            "{{schema:-53 count:2.4 sum:-22.8 custom_values:[-10 5 10 15 20] buckets:[2 0.4]}}",
        ),
        (
            2234,
            "{{schema:-53 sum:172.5 count:15 custom_values:[-10 5 10 15 20] buckets:[2 1 6 4 3 1]}}",
            true,
            -15.0,
            "{{schema:-53 count:2 sum:-30 custom_values:[-10 5 10 15 20] buckets:[2]}}",
        ),
        (
            2242,
            "{{schema:0 sum:-6.75 z_bucket:5 z_bucket_w:0.01 buckets:[2 3] n_buckets:[1 2 3]}}",
            true,
            -0.005,
            "{{count:7.25 sum:-12.03019028017131 z_bucket:1.25 z_bucket_w:0.01 n_buckets:[1 2 3]}}",
        ),
        (
            2245,
            "{{schema:0 sum:-6.75 z_bucket:5 z_bucket_w:0.01 buckets:[2 3] n_buckets:[1 2 3]}}",
            false,
            0.0,
            "{{count:7.5 sum:5.669354249492381 z_bucket:2.5 z_bucket_w:0.01 buckets:[2 3]}}",
        ),
        (
            2253,
            "{{schema:-53 sum:100.0 count:100 buckets:[100]}}",
            true,
            10.0,
            "{{schema:-53 sum:0.0 count:0 buckets:[0]}}",
        ),
        (
            2257,
            "{{schema:-53 sum:100.0 count:100 buckets:[100]}}",
            false,
            10.0,
            "{{schema:-53 sum:0.0 count:0 buckets:[0]}}",
        ),
        (
            2261,
            "{{schema:-53 sum:100.0 count:100 buckets:[100]}}",
            true,
            f64::INFINITY,
            "{{schema:-53 sum:100 count:100 buckets:[100]}}",
        ),
        (
            2265,
            "{{schema:-53 sum:100.0 count:100 buckets:[100]}}",
            false,
            f64::INFINITY,
            "{{schema:-53 sum:0 count:0 buckets:[0]}}",
        ),
        (
            2269,
            "{{schema:-53 sum:100.0 count:100 buckets:[100]}}",
            false,
            f64::NEG_INFINITY,
            "{{schema:-53 sum:100 count:100 buckets:[100]}}",
        ),
        (
            2273,
            "{{schema:-53 sum:100.0 count:100 buckets:[100]}}",
            true,
            f64::NEG_INFINITY,
            "{{schema:-53 sum:0 count:0 buckets:[0]}}",
        ),
        (
            2281,
            "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}",
            true,
            10.0,
            "{{schema:-53 sum:0.0 count:1 custom_values:[0] buckets:[1 0]}}",
        ),
        (
            2285,
            "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}",
            true,
            0.0,
            "{{schema:-53 sum:0.0 count:1 custom_values:[0] buckets:[1 0]}}",
        ),
        (
            2289,
            "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}",
            true,
            -10.0,
            "{{schema:-53 sum:-10.0 count:1 custom_values:[0] buckets:[1 0]}}",
        ),
        (
            2293,
            "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}",
            false,
            -10.0,
            "{{schema:-53 sum:0.0 count:100 custom_values:[0] buckets:[0 100]}}",
        ),
        (
            2297,
            "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}",
            false,
            0.0,
            "{{schema:-53 sum:0.0 count:100 custom_values:[0] buckets:[0 100]}}",
        ),
        (
            2301,
            "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}",
            false,
            10.0,
            "{{schema:-53 sum:1000.0 count:100 custom_values:[0] buckets:[0 100]}}",
        ),
        (
            2309,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            true,
            10.0,
            "{{schema:-53 sum:2.5 count:1 custom_values:[5] buckets:[1 0]}}",
        ),
        (
            2313,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            true,
            2.0,
            "{{schema:-53 sum:0.4 count:0.4 custom_values:[5] buckets:[0.4 0]}}",
        ),
        (
            2317,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            true,
            0.0,
            "{{schema:-53 custom_values:[5]}}",
        ),
        (
            2321,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            true,
            -10.0,
            "{{schema:-53 sum:0.0 count:0 custom_values:[5] buckets:[0 0]}}",
        ),
        (
            2325,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            false,
            -10.0,
            "{{schema:-53 sum:500.0 count:100 custom_values:[5] buckets:[0 100]}}",
        ),
        (
            2329,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            false,
            0.0,
            "{{schema:-53 sum:33.0 count:101 custom_values:[5] buckets:[1 100]}}",
        ),
        (
            2333,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            false,
            2.0,
            "{{schema:-53 sum:502.1 count:100.6 custom_values:[5] buckets:[0.6 100]}}",
        ),
        (
            2337,
            "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}",
            false,
            10.0,
            "{{schema:-53 sum:1000.0 count:100 custom_values:[5] buckets:[0 100]}}",
        ),
        (
            2345,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            true,
            10.0,
            "{{schema:-53 sum:-5.0 count:1 custom_values:[-5] buckets:[1 0]}}",
        ),
        (
            2349,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            true,
            0.0,
            "{{schema:-53 sum:-5 count:1 custom_values:[-5] buckets:[1 0]}}",
        ),
        (
            2353,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            true,
            -2.0,
            "{{schema:-53 sum:-5.0 count:1 custom_values:[-5] buckets:[1 0]}}",
        ),
        (
            2357,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            true,
            -10.0,
            "{{schema:-53 sum:-10.0 count:1 custom_values:[-5] buckets:[1 0]}}",
        ),
        (
            2361,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            false,
            -10.0,
            "{{schema:-53 sum:-500 count:100 custom_values:[-5] buckets:[0 100]}}",
        ),
        (
            2365,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            false,
            -2.0,
            "{{schema:-53 sum:-200 count:100 custom_values:[-5] buckets:[0 100]}}",
        ),
        (
            2369,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            false,
            0.0,
            "{{schema:-53 sum:0.0 count:100 custom_values:[-5] buckets:[0 100]}}",
        ),
        (
            2373,
            "{{schema:-53 sum:33 count:101 custom_values:[-5] buckets:[1 100]}}",
            false,
            10.0,
            "{{schema:-53 sum:1000.0 count:100 custom_values:[-5] buckets:[0 100]}}",
        ),
    ];

    #[test]
    fn prometheus_test_file_cases() {
        let mut failures = Vec::new();
        for &(line, input, upper, x, want) in PROMETHEUS_CASES {
            let mut got = h(input);
            got.trim_buckets(x, upper);
            if !matches(&got, &h(want)) {
                let op = if upper { "</" } else { ">/" };
                failures.push(format!(
                    "line {line}: {input} {op} {x}: got {got}, want {want}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn untouched_histograms_keep_count_and_sum() {
        // Nothing trimmed: count and sum stay as they were, not re-estimated.
        let mut x = h("{{schema:0 count:3 sum:100 buckets:[1 2]}}");
        x.trim_buckets(10.0, true);
        assert_eq!((x.count, x.sum), (3.0, 100.0));
        x.trim_buckets(1.5, true);
        assert!(x.count < 3.0 && x.sum < 100.0);
    }
}
