//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction`. Over classic
//! histograms, series that differ only in their `le` label are the cumulative buckets of one
//! histogram, evaluated per timestamp as Prometheus' `BucketQuantile` and `BucketFraction`.
//! Native histogram samples are evaluated each on its own; a series that is at the same
//! time a native histogram and classic buckets (same labels but `le`) gives neither, with a
//! warning, as in Prometheus.

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::FloatHistogram;
use hypnos_schemas::labels::METRIC_NAME;

use super::annotations::{self, Annotations, QueryPos};
use super::hist_fn::{native_fraction, native_quantile};
use super::{EvalError, HistogramFunc, without_metadata_labels};
use crate::vector::{VectorBuilder, series_rows};

/// The label holding a classic bucket's upper bound.
const BUCKET_LABEL: &str = "le";

/// Relative difference below which neighbouring bucket counts are taken as equal (floating
/// point noise), as Prometheus' `smallDeltaTolerance`.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// The evaluation of a [`HistogramFunc`] over one histogram's buckets.
trait BucketEval {
    fn eval<'a>(
        &'a self,
        buckets: &mut Vec<(f64, f64)>,
        out: &mut Vec<(Option<(&'a str, String)>, f64)>,
    ) -> bool;

    fn eval_native<'a>(
        &'a self,
        h: &FloatHistogram,
        metric_name: &str,
        out: &mut Vec<(Option<(&'a str, String)>, f64)>,
        notes: &mut Vec<String>,
    );
}

impl BucketEval for HistogramFunc {
    /// The results for one histogram: (label to set, if any, and value). Returns whether
    /// a quantile had to force the bucket counts to be monotonic.
    fn eval<'a>(
        &'a self,
        buckets: &mut Vec<(f64, f64)>,
        out: &mut Vec<(Option<(&'a str, String)>, f64)>,
    ) -> bool {
        match self {
            HistogramFunc::Quantile(q) => {
                let (v, forced) = bucket_quantile_forced(f64::from_bits(*q), buckets);
                out.push((None, v));
                forced
            }
            HistogramFunc::Fraction(lo, hi) => {
                out.push((
                    None,
                    bucket_fraction(f64::from_bits(*lo), f64::from_bits(*hi), buckets),
                ));
                false
            }
            HistogramFunc::Quantiles { label, qs } => {
                let mut any_forced = false;
                for q in qs {
                    let q = f64::from_bits(*q);
                    let (v, forced) = bucket_quantile_forced(q, buckets);
                    any_forced |= forced;
                    out.push((Some((label.as_str(), format_openmetrics_float(q))), v));
                }
                any_forced
            }
        }
    }

    /// The results for one native histogram, as [`Self::eval`]; infos about NaN
    /// observations go to `notes`.
    fn eval_native<'a>(
        &'a self,
        h: &FloatHistogram,
        metric_name: &str,
        out: &mut Vec<(Option<(&'a str, String)>, f64)>,
        notes: &mut Vec<String>,
    ) {
        let mut push = |set, (v, note): (f64, Option<String>)| {
            out.push((set, v));
            notes.extend(note);
        };
        match self {
            HistogramFunc::Quantile(q) => {
                push(None, native_quantile(f64::from_bits(*q), h, metric_name))
            }
            HistogramFunc::Fraction(lo, hi) => push(
                None,
                native_fraction(f64::from_bits(*lo), f64::from_bits(*hi), h, metric_name),
            ),
            HistogramFunc::Quantiles { label, qs } => {
                for q in qs {
                    let q = f64::from_bits(*q);
                    push(
                        Some((label.as_str(), format_openmetrics_float(q))),
                        native_quantile(q, h, metric_name),
                    );
                }
            }
        }
    }
}

/// Where a histogram function adds its annotations: the positions of its quantile
/// parameter and of its vector argument.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistogramNotes<'a> {
    pub notes: Option<&'a Annotations>,
    pub param_pos: Option<QueryPos>,
    pub vector_pos: Option<QueryPos>,
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` with ".0" appended when the result has
/// neither "." nor "e", as Prometheus' `labels.FormatOpenMetricsFloat`.
pub fn format_openmetrics_float(f: f64) -> String {
    if f == 0.0 {
        return "0.0".into();
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Shortest digits and decimal exponent; Go's 'g' uses an exponent below 1e-4 and from
    // 1e21 on.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let s = if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    };
    if s.contains(['.', 'e']) { s } else { s + ".0" }
}

/// Parses an `le` value as Go's `strconv.ParseFloat` does for the forms Prometheus exposes
/// (decimal, exponent, `+Inf`, `-Inf`, `NaN`, any case); anything else is not a bucket.
fn parse_upper_bound(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// Evaluates `func` over the classic histograms in `inputs`: per group of series that are
/// equal but for `le`, and per timestamp. Series whose `le` is missing or not a number are
/// ignored. Results drop the metric name; two groups that become the same label set at
/// the same timestamp are an error, as in Prometheus.
pub fn histogram_function(inputs: &[RecordBatch], func: &HistogramFunc) -> Result<RecordBatch> {
    histogram_function_annotated(inputs, func, HistogramNotes::default())
}

/// [`histogram_function`] adding its annotations (quantiles outside [0, 1], buckets without
/// a valid `le`, counts forced to be monotonic) where `notes` says.
pub fn histogram_function_annotated(
    inputs: &[RecordBatch],
    func: &HistogramFunc,
    notes: HistogramNotes<'_>,
) -> Result<RecordBatch> {
    if let Some(n) = notes.notes {
        for q in func.quantiles() {
            annotations::check_quantile(n, q, notes.param_pos);
        }
    }
    histogram_function_with(inputs, &|_| func.clone(), notes)
}

/// `histogram_quantile` whose quantile is a scalar evaluated per step: the one label-less
/// series of `params` gives the quantile at each step.
pub fn histogram_quantile_per_step(
    inputs: &[RecordBatch],
    params: &[RecordBatch],
) -> Result<RecordBatch> {
    histogram_quantile_per_step_annotated(inputs, params, HistogramNotes::default())
}

/// [`histogram_quantile_per_step`] adding its annotations where `notes` says.
pub fn histogram_quantile_per_step_annotated(
    inputs: &[RecordBatch],
    params: &[RecordBatch],
    notes: HistogramNotes<'_>,
) -> Result<RecordBatch> {
    let param = super::StepParam::from_batches(params)?;
    if let Some(n) = notes.notes {
        for q in param.values() {
            annotations::check_quantile(n, q, notes.param_pos);
        }
    }
    histogram_function_with(
        inputs,
        &|t| HistogramFunc::Quantile(param.at(t).to_bits()),
        notes,
    )
}

fn histogram_function_with(
    inputs: &[RecordBatch],
    func_at: &dyn Fn(i64) -> HistogramFunc,
    notes: HistogramNotes<'_>,
) -> Result<RecordBatch> {
    let warn = |msg: &str| {
        if let Some(n) = notes.notes {
            n.warn(msg, notes.vector_pos);
        }
    };
    let info = |msg: &str| {
        if let Some(n) = notes.notes {
            n.info(msg, notes.vector_pos);
        }
    };
    // Classic buckets per group (labels without `le`) and time; native histograms per
    // series and time.
    let mut groups: HashMap<Labels, BTreeMap<i64, Vec<(f64, f64)>>> = HashMap::new();
    let mut natives: HashMap<Labels, BTreeMap<i64, FloatHistogram>> = HashMap::new();
    for batch in inputs {
        for s in series_rows(batch)? {
            if s.has_histograms() {
                let n = natives.entry(s.labels.clone()).or_default();
                for (i, t) in s.ts.iter().enumerate() {
                    if let Some(h) = s.histogram(i)? {
                        n.insert(*t, h);
                    }
                }
            }
            let floats = (0..s.ts.len()).filter(|i| !s.is_histogram(*i));
            let le = s.labels.get(BUCKET_LABEL);
            let Some(upper) = parse_upper_bound(le) else {
                if floats.count() > 0 {
                    warn(&annotations::bad_bucket_label(
                        super::metric_name(&s.labels),
                        le,
                    ));
                }
                continue;
            };
            let key = s.labels.drop_bucket_label();
            let g = groups.entry(key).or_default();
            for i in floats {
                g.entry(s.ts[i]).or_default().push((upper, s.values[i]));
            }
        }
    }
    // A native histogram and classic buckets of the same series at the same time: neither
    // is evaluated.
    for (labels, by_t) in &mut natives {
        let Some(g) = groups.get_mut(labels) else {
            continue;
        };
        by_t.retain(|t, _| {
            if g.remove(t).is_some() {
                warn(&annotations::mixed_classic_native_histograms(
                    labels.get(METRIC_NAME),
                ));
                false
            } else {
                true
            }
        });
    }
    // Output label sets (metric name dropped), each with its points; two results with the
    // same labels at the same time are an error.
    let mut outputs: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut add = |labels: &Labels, set: Option<(&str, String)>, t: i64, v: f64| {
        let labels = match set {
            None => labels.clone(),
            Some((name, value)) => {
                let mut l = labels.clone();
                l.set(name, &value);
                l
            }
        };
        if outputs.entry(labels).or_default().insert(t, v).is_some() {
            return Err(DataFusionError::External(Box::new(EvalError(
                "vector cannot contain metrics with the same labelset".into(),
            ))));
        }
        Ok(())
    };
    for (k, g) in groups {
        let base = without_metadata_labels(&k);
        for (t, mut buckets) in g {
            let func = func_at(t);
            let mut results = Vec::new();
            if func.eval(&mut buckets, &mut results) {
                // Prometheus names no metric here: the name is gone with the `le` label.
                info(&annotations::forced_monotonicity(""));
            }
            for (set, v) in results {
                add(&base, set, t, v)?;
            }
        }
    }
    let mut nan_notes = Vec::new();
    for (labels, by_t) in natives {
        // The name is marked dropped, not removed: later label functions still see it.
        let base = super::mark_name_dropped(&labels);
        for (t, h) in by_t {
            let func = func_at(t);
            let mut results = Vec::new();
            func.eval_native(&h, labels.get(METRIC_NAME), &mut results, &mut nan_notes);
            for (set, v) in results {
                add(&base, set, t, v)?;
            }
            for note in nan_notes.drain(..) {
                info(&note);
            }
        }
    }
    let mut out = VectorBuilder::new();
    for (labels, points) in outputs {
        out.start_series(&labels);
        for (t, v) in points {
            out.push(t, v);
        }
    }
    Ok(out.finish())
}

trait DropBucket {
    fn drop_bucket_label(&self) -> Labels;
}

impl DropBucket for Labels {
    fn drop_bucket_label(&self) -> Labels {
        Labels::from_sorted(
            self.iter()
                .filter(|l| l.name != BUCKET_LABEL)
                .cloned()
                .collect(),
        )
    }
}

/// Sorts buckets by upper bound and merges those with the same bound. `None` when the
/// highest bound is not +Inf (not a valid histogram).
fn prepare(buckets: &mut Vec<(f64, f64)>) -> Option<()> {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last()?.0 != f64::INFINITY {
        return None;
    }
    buckets.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            true
        } else {
            false
        }
    });
    Some(())
}

/// Whether `a` and `b` differ by less than `epsilon` relative to their size, as Prometheus'
/// `almost.Equal` (staleness markers only equal each other; two NaNs are equal).
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let (sa, sb) = (
        hypnos_schemas::is_stale_nan(a),
        hypnos_schemas::is_stale_nan(b),
    );
    if sa || sb {
        return sa && sb;
    }
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let min_normal = f64::MIN_POSITIVE;
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < epsilon * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Makes cumulative counts non-decreasing: differences that are only floating point noise
/// are ignored in either direction, and any real decrease is raised to the previous count
/// (Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`). Returns whether monotonicity had to
/// be forced.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) -> bool {
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in &mut buckets[1..] {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    forced
}

/// The φ-quantile of cumulative `(upper bound, count)` buckets, by linear interpolation
/// within the bucket holding the rank (Prometheus' `BucketQuantile`). The first bucket
/// starts at 0 when its upper bound is positive; a rank in the +Inf bucket gives the
/// highest finite bound.
pub fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    bucket_quantile_forced(q, buckets).0
}

/// [`bucket_quantile`], and whether the bucket counts had to be forced to be monotonic.
fn bucket_quantile_forced(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    if buckets.is_empty() || prepare(buckets).is_none() {
        return (f64::NAN, false);
    }
    let forced = ensure_monotonic(buckets);
    (bucket_quantile_prepared(q, buckets), forced)
}

/// The quantile of buckets already sorted, merged and made monotonic.
fn bucket_quantile_prepared(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let n = buckets.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = buckets[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // The first bucket (not counting +Inf) whose count reaches the rank.
    let b = buckets[..n - 1].partition_point(|b| b.1 < rank);
    if b == n - 1 {
        return buckets[n - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// The estimated fraction of observations between `lower` and `upper`, interpolating
/// linearly within buckets (Prometheus' `BucketFraction`).
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if buckets.is_empty() || prepare(buckets).is_none() {
        return f64::NAN;
    }
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    // Positive buckets only when the first bound is above 0: they start at 0.
    let mut lower_bound = if buckets[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &(upper_bound, bucket_count)) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        // No interpolation inside a bucket of infinite width: +Inf gives the previous
        // count through the arithmetic, -Inf is handled explicitly.
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bucket_count
            } else {
                rank + (bucket_count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bucket_count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::series_rows;

    const INF: f64 = f64::INFINITY;

    type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn batch(series: &[Series]) -> RecordBatch {
        let mut sorted: Vec<(Labels, &[(i64, f64)])> = series
            .iter()
            .map(|(l, p)| (Labels::from_pairs(l.iter().copied()), *p))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut b = VectorBuilder::new();
        for (l, points) in sorted {
            b.start_series(&l);
            for (t, v) in points {
                b.push(*t, *v);
            }
        }
        b.finish()
    }

    #[test]
    fn annotations_name_bad_buckets_quantiles_and_forced_monotonicity() {
        use super::annotations::AnnotationKind;
        let input = batch(&[
            (&[("__name__", "h_bucket"), ("le", "1")], &[(0, 5.0)]),
            (&[("__name__", "h_bucket"), ("le", "+Inf")], &[(0, 3.0)]),
            (&[("__name__", "h_bucket"), ("le", "one")], &[(0, 1.0)]),
        ]);
        let notes = Annotations::new();
        let at = |col| Some(QueryPos { line: 1, col });
        let where_ = HistogramNotes {
            notes: Some(&notes),
            param_pos: at(20),
            vector_pos: at(25),
        };
        let func = HistogramFunc::Quantiles {
            label: "q".into(),
            qs: vec![0.5f64.to_bits(), 7f64.to_bits()],
        };
        histogram_function_annotated(std::slice::from_ref(&input), &func, where_).unwrap();
        assert_eq!(
            notes.texts(AnnotationKind::Warning),
            vec![
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"one\" for metric name \"h_bucket\" (1:25)",
                "PromQL warning: quantile value should be between 0 and 1, got 7 (1:20)",
            ]
        );
        assert_eq!(notes.texts(AnnotationKind::Info).len(), 1);
        assert!(notes.texts(AnnotationKind::Info)[0].starts_with(
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see"
        ));
        // histogram_fraction has no quantile and forces nothing.
        let notes = Annotations::new();
        let frac = HistogramFunc::Fraction(0f64.to_bits(), 1f64.to_bits());
        let where_ = HistogramNotes {
            notes: Some(&notes),
            ..where_
        };
        histogram_function_annotated(&[input], &frac, where_).unwrap();
        assert_eq!(notes.texts(AnnotationKind::Warning).len(), 1);
        assert!(notes.texts(AnnotationKind::Info).is_empty());
    }

    #[test]
    fn quantile_interpolates_within_buckets() {
        let mut b = vec![(0.1, 10.0), (0.2, 20.0), (INF, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut b.clone()), 0.1);
        assert!((bucket_quantile(0.75, &mut b) - 0.15).abs() < 1e-12);
        // First bucket starts at 0 for a positive bound.
        let mut b = vec![(1.0, 4.0), (INF, 4.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 0.5);
        // ... and is its bound for a bound <= 0.
        let mut b = vec![(-1.0, 4.0), (INF, 4.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), -1.0);
    }

    #[test]
    fn quantile_edge_cases() {
        let b = vec![(1.0, 1.0), (INF, 2.0)];
        assert!(bucket_quantile(f64::NAN, &mut b.clone()).is_nan());
        assert_eq!(bucket_quantile(-0.1, &mut b.clone()), f64::NEG_INFINITY);
        assert_eq!(bucket_quantile(1.1, &mut b.clone()), INF);
        // Rank in the +Inf bucket: the highest finite bound.
        assert_eq!(bucket_quantile(0.9, &mut b.clone()), 1.0);
        // No +Inf bucket, only +Inf, or no observations: NaN.
        assert!(bucket_quantile(0.5, &mut vec![(1.0, 1.0)]).is_nan());
        assert!(bucket_quantile(0.5, &mut vec![(INF, 3.0)]).is_nan());
        assert!(bucket_quantile(0.5, &mut vec![(1.0, 0.0), (INF, 0.0)]).is_nan());
    }

    #[test]
    fn quantile_forces_monotonicity_and_merges_bounds() {
        // 2 -> 1 is a decrease: raised to 2.
        let mut b = vec![(1.0, 2.0), (2.0, 1.0), (3.0, 4.0), (INF, 4.0)];
        assert!(ensure_monotonic(&mut b.clone()));
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
        // Same bound twice (e.g. "1" and "1.0"): counts add up.
        let mut b = vec![(1.0, 1.0), (INF, 4.0), (1.0, 1.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
    }

    #[test]
    fn fraction() {
        let b = vec![(1.0, 2.0), (2.0, 4.0), (INF, 4.0)];
        assert_eq!(bucket_fraction(0.0, 1.0, &mut b.clone()), 0.5);
        assert_eq!(bucket_fraction(0.5, 1.5, &mut b.clone()), 0.5);
        assert_eq!(bucket_fraction(f64::NEG_INFINITY, INF, &mut b.clone()), 1.0);
        assert_eq!(bucket_fraction(2.0, 1.0, &mut b.clone()), 0.0);
        assert!(bucket_fraction(f64::NAN, 1.0, &mut b.clone()).is_nan());
        // A -Inf lower bound is not interpolated.
        let b = vec![(-1.0, 2.0), (1.0, 4.0), (INF, 4.0)];
        assert_eq!(bucket_fraction(-2.0, 0.0, &mut b.clone()), 0.25);
    }

    #[test]
    fn groups_by_labels_without_le_and_drops_name() {
        let input = batch(&[
            (
                &[("__name__", "h"), ("le", "1"), ("a", "x")],
                &[(0, 2.0), (10, 4.0)],
            ),
            (
                &[("__name__", "h"), ("le", "+Inf"), ("a", "x")],
                &[(0, 4.0), (10, 4.0)],
            ),
            (
                &[("__name__", "h"), ("le", "bad"), ("a", "x")],
                &[(0, 100.0)],
            ),
            (&[("__name__", "h"), ("a", "y")], &[(0, 100.0)]),
        ]);
        let out = histogram_function(&[input], &HistogramFunc::Quantile(0.5f64.to_bits())).unwrap();
        let s = series_rows(&out).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels, Labels::from_pairs([("a", "x")]));
        assert_eq!(s[0].ts, &[0, 10]);
        assert_eq!(s[0].values, &[1.0, 0.5]);
    }

    #[test]
    fn same_labelset_after_dropping_name_is_an_error() {
        let input = batch(&[
            (&[("__name__", "h1"), ("le", "+Inf")], &[(0, 1.0)]),
            (&[("__name__", "h2"), ("le", "+Inf")], &[(0, 1.0)]),
        ]);
        assert!(histogram_function(&[input], &HistogramFunc::Quantile(0.5f64.to_bits())).is_err());
    }

    #[test]
    fn quantiles_label_each_result() {
        let input = batch(&[
            (&[("le", "1"), ("a", "x")], &[(0, 2.0)]),
            (&[("le", "+Inf"), ("a", "x")], &[(0, 4.0)]),
        ]);
        let func = HistogramFunc::Quantiles {
            label: "q".into(),
            qs: vec![0.25f64.to_bits(), 1.0f64.to_bits()],
        };
        let out = histogram_function(std::slice::from_ref(&input), &func).unwrap();
        let s = series_rows(&out).unwrap();
        assert_eq!(s[0].labels, Labels::from_pairs([("a", "x"), ("q", "0.25")]));
        assert_eq!(s[0].values, &[0.5]);
        assert_eq!(s[1].labels, Labels::from_pairs([("a", "x"), ("q", "1.0")]));
        assert_eq!(s[1].values, &[1.0]);
        // A label that makes results collide.
        let func = HistogramFunc::Quantiles {
            label: "a".into(),
            qs: vec![0.5f64.to_bits(), 0.5f64.to_bits()],
        };
        assert!(histogram_function(&[input], &func).is_err());
    }

    #[test]
    fn openmetrics_floats() {
        assert_eq!(format_openmetrics_float(0.0), "0.0");
        assert_eq!(format_openmetrics_float(-0.0), "0.0");
        assert_eq!(format_openmetrics_float(1.0), "1.0");
        assert_eq!(format_openmetrics_float(0.25), "0.25");
        assert_eq!(format_openmetrics_float(-0.1), "-0.1");
        assert_eq!(format_openmetrics_float(100.0), "100.0");
        assert_eq!(format_openmetrics_float(1e21), "1e+21");
        assert_eq!(format_openmetrics_float(1.5e-5), "1.5e-05");
        assert_eq!(format_openmetrics_float(0.0001), "0.0001");
        assert_eq!(format_openmetrics_float(f64::NAN), "NaN");
        assert_eq!(format_openmetrics_float(f64::NEG_INFINITY), "-Inf");
    }

    /// Classic buckets of `h{a="x"}` (at 0 and 10: 2 of 4 at or below 1), and
    /// native histograms of `h{a="x"}` (10, beside the classic buckets) and `h{a="y"}`
    /// (0 and 10: 4 observations, 2 in (0.5, 1] and 2 in (1, 2]).
    fn mixed_input() -> RecordBatch {
        use hypnos_schemas::histogram::Span;
        let native = FloatHistogram {
            count: 4.0,
            sum: 5.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![2.0, 2.0],
            ..Default::default()
        };
        let mut b = VectorBuilder::new();
        for (le, v) in [("+Inf", 4.0), ("1", 2.0)] {
            b.start_series(&Labels::from_pairs([
                ("__name__", "h"),
                ("a", "x"),
                ("le", le),
            ]));
            b.push(0, v);
            b.push(10, v);
        }
        b.start_series(&Labels::from_pairs([("__name__", "h"), ("a", "x")]));
        b.push_histogram(10, &native);
        b.start_series(&Labels::from_pairs([("__name__", "h"), ("a", "y")]));
        b.push_histogram(0, &native);
        b.push_histogram(10, &native);
        b.finish()
    }

    #[test]
    fn native_histograms_beside_classic_buckets() {
        use super::annotations::AnnotationKind;
        let notes = Annotations::new();
        let where_ = HistogramNotes {
            notes: Some(&notes),
            param_pos: None,
            vector_pos: Some(QueryPos { line: 1, col: 25 }),
        };
        let out = histogram_function_annotated(
            &[mixed_input()],
            &HistogramFunc::Quantile(0.5f64.to_bits()),
            where_,
        )
        .unwrap();
        let got = crate::vector::batch_points(&out);
        assert_eq!(
            got,
            vec![
                (
                    "{__hypnos_name_dropped__=\"true\", __name__=\"h\", a=\"y\"}".to_string(),
                    vec![(0, 1.0), (10, 1.0)]
                ),
                // At 10, `h{a="x"}` is both native and classic: neither is evaluated.
                ("{a=\"x\"}".to_string(), vec![(0, 1.0)]),
            ]
        );
        assert_eq!(
            notes.texts(AnnotationKind::Warning),
            vec![
                "PromQL warning: vector contains a mix of classic and native histograms for metric name \"h\" (1:25)"
            ]
        );
    }

    #[test]
    fn native_fraction_and_quantiles() {
        let input = mixed_input();
        let frac = HistogramFunc::Fraction(0.0f64.to_bits(), 1.0f64.to_bits());
        let out = histogram_function(std::slice::from_ref(&input), &frac).unwrap();
        let y = series_rows(&out)
            .unwrap()
            .into_iter()
            .find(|s| s.labels.get("a") == "y")
            .map(|s| s.values.to_vec());
        assert_eq!(y, Some(vec![0.5, 0.5]));
        let qs = HistogramFunc::Quantiles {
            label: "q".into(),
            qs: vec![0.5f64.to_bits(), 1.0f64.to_bits()],
        };
        let out = histogram_function(&[input], &qs).unwrap();
        let y: Vec<(String, Vec<f64>)> = series_rows(&out)
            .unwrap()
            .into_iter()
            .filter(|s| s.labels.get("a") == "y")
            .map(|s| (s.labels.get("q").to_string(), s.values.to_vec()))
            .collect();
        assert_eq!(
            y,
            vec![
                ("0.5".to_string(), vec![1.0, 1.0]),
                ("1.0".to_string(), vec![2.0, 2.0])
            ]
        );
    }

    #[test]
    fn parses_bounds_like_go() {
        assert_eq!(parse_upper_bound("+Inf"), Some(INF));
        assert_eq!(parse_upper_bound("1e3"), Some(1000.0));
        assert_eq!(parse_upper_bound("0.5"), Some(0.5));
        assert_eq!(parse_upper_bound(""), None);
        assert_eq!(parse_upper_bound("x"), None);
    }
}
