//! Aggregations over vectors holding native histogram samples: `sum` and `avg` add
//! histograms (with Kahan-Neumaier compensation, field by field), `count` and `group` count
//! them, and `min`, `max`, `stddev` and `stdvar` ignore them with an info. A group mixing
//! floats and histograms, or exponential and custom-bucket histograms, has no result.

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::{CombineOutcome, FloatHistogram, HistogramError, ResetHint};
use hypnos_schemas::labels::METRIC_NAME;

use super::annotations::{self, Annotations};
use super::{Acc, AggOp, AggPositions, Grouping, name_dropped};
use crate::vector::{VectorBuilder, histogram_column, series_rows};

/// The operation named in the annotations of combined histograms.
const AGGREGATION: &str = "aggregation";

/// True when any of `inputs` holds a histogram sample.
pub(super) fn any_histograms(inputs: &[RecordBatch]) -> bool {
    inputs.iter().any(|b| histogram_column(b).is_some())
}

/// The state of one group at one timestamp.
#[derive(Default)]
struct GroupAcc {
    /// Samples taken so far (floats and histograms; `avg`'s divisor for histograms).
    count: f64,
    float: Acc,
    has_float: bool,
    has_histogram: bool,
    /// An exponential and a custom-bucket histogram met: the group has no result.
    incompatible: bool,
    reset_seen: bool,
    not_reset_seen: bool,
    /// The running sum (for `avg`, until it would overflow).
    value: Option<FloatHistogram>,
    /// The Kahan compensation of `value` (or of `mean`).
    comp: Option<FloatHistogram>,
    /// `avg`'s incremental mean, once the direct sum would overflow.
    mean: Option<FloatHistogram>,
}

/// What one sample is.
enum Sample<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

impl GroupAcc {
    fn note_hint(&mut self, h: &FloatHistogram) {
        match h.counter_reset_hint {
            ResetHint::Reset => self.reset_seen = true,
            ResetHint::NotReset => self.not_reset_seen = true,
            ResetHint::Unknown | ResetHint::Gauge => {}
        }
    }

    /// Adds one sample of series `metric` (for messages) to `sum` or `avg`.
    fn add_sum_avg(&mut self, avg: bool, s: Sample<'_>, metric: &str, ctx: &Ctx<'_>) {
        let first = self.count == 0.0;
        if !first && self.incompatible {
            return;
        }
        self.count += 1.0;
        match s {
            Sample::Float(f) => {
                self.has_float = true;
                self.float.add(if avg { AggOp::Avg } else { AggOp::Sum }, f);
            }
            Sample::Histogram(h) => {
                self.has_histogram = true;
                if first {
                    self.value = Some(h.clone());
                    self.note_hint(h);
                    return;
                }
                // After a float first sample the group has no result anyway: nothing to add.
                if self.value.is_none() {
                    return;
                }
                self.note_hint(h);
                let res = match (avg, self.value.as_mut()) {
                    (false, Some(value)) => value.kahan_add(h, &mut self.comp),
                    _ => self.add_to_mean(h),
                };
                match res {
                    Ok(outcome) => ctx.note_outcome(outcome),
                    Err(e) => {
                        ctx.combine_error(&e, metric);
                        self.incompatible = true;
                    }
                }
            }
        }
    }

    /// `avg`: the direct sum while it stays finite, then an incremental mean (Prometheus'
    /// way, for both precision and range).
    fn add_to_mean(&mut self, h: &FloatHistogram) -> Result<CombineOutcome, HistogramError> {
        let n = self.count;
        let mut outcome = CombineOutcome::default();
        if self.mean.is_none()
            && let Some(value) = &self.value
        {
            let mut v = value.clone();
            let mut c = self.comp.clone();
            outcome = v.kahan_add(h, &mut c)?;
            if !v.has_overflow() {
                self.value = Some(v);
                self.comp = c;
                return Ok(outcome);
            }
            let mut mean = value.clone();
            mean.div(n - 1.0);
            if let Some(c) = self.comp.as_mut() {
                c.div(n - 1.0);
            }
            self.mean = Some(mean);
        }
        let q = (n - 1.0) / n;
        if let Some(c) = self.comp.as_mut() {
            c.mul(q);
        }
        let mut to_add = h.clone();
        to_add.div(n);
        let Some(mean) = self.mean.as_mut() else {
            // No first histogram to average with (cannot happen: callers check).
            return Ok(outcome);
        };
        mean.mul(q);
        let o = mean.kahan_add(&to_add, &mut self.comp)?;
        outcome.nhcb_bounds_reconciled |= o.nhcb_bounds_reconciled;
        outcome.counter_reset_collision |= o.counter_reset_collision;
        Ok(outcome)
    }

    /// The histogram result of `sum` / `avg`.
    fn histogram_result(&self, avg: bool) -> Result<FloatHistogram> {
        let internal = |e: HistogramError| DataFusionError::Internal(e.to_string());
        let mut out = if let Some(mean) = &self.mean {
            let mut m = mean.clone();
            if let Some(c) = &self.comp {
                m.add(c).map_err(internal)?;
            }
            m
        } else {
            let mut v = self
                .value
                .clone()
                .ok_or_else(|| DataFusionError::Internal("histogram group without value".into()))?;
            if avg {
                v.div(self.count);
            }
            if let Some(c) = &self.comp {
                let mut c = c.clone();
                if avg {
                    c.div(self.count);
                }
                v.add(&c).map_err(internal)?;
            }
            v
        };
        out.compact(0);
        Ok(out)
    }
}

/// Where the annotations of one aggregation go.
struct Ctx<'a> {
    notes: &'a Annotations,
    pos: AggPositions,
}

impl Ctx<'_> {
    fn note_outcome(&self, o: CombineOutcome) {
        if o.nhcb_bounds_reconciled {
            self.notes.info(
                &annotations::mismatched_custom_buckets(AGGREGATION),
                self.pos.expr,
            );
        }
    }

    fn combine_error(&self, e: &HistogramError, metric: &str) {
        // Only the schema mix has an annotation in Prometheus; other errors cannot come from
        // valid histograms.
        if matches!(e, HistogramError::MixedExponentialCustom) {
            self.notes.warn(
                &annotations::mixed_exponential_custom_histograms(metric),
                self.pos.expr,
            );
        }
    }

    fn ignored(&self, op: AggOp) {
        self.notes.info(
            &annotations::histogram_ignored_in_aggregation(op.name()),
            self.pos.expr,
        );
    }
}

/// `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev` and `stdvar` over vectors that may
/// hold histogram samples, per (group labels, timestamp), as Prometheus does.
pub(super) fn aggregate_mixed(
    inputs: &[RecordBatch],
    op: AggOp,
    grouping: &Grouping,
    notes: &Annotations,
    pos: AggPositions,
) -> Result<RecordBatch> {
    let ctx = Ctx { notes, pos };
    let mut groups: HashMap<Labels, BTreeMap<i64, GroupAcc>> = HashMap::new();
    let mut dropped: HashMap<Labels, bool> = HashMap::new();
    for batch in inputs {
        for s in series_rows(batch)? {
            let key = grouping.group_labels(&s.labels);
            *dropped.entry(key.clone()).or_default() |= name_dropped(&s.labels);
            let metric = s.labels.get(METRIC_NAME).to_string();
            let g = groups.entry(key).or_default();
            for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
                let is_histogram = s.is_histogram(i);
                let acc = g.entry(*t).or_default();
                match op {
                    AggOp::Sum | AggOp::Avg => {
                        let h = s.histogram(i)?;
                        let sample = match &h {
                            Some(h) => Sample::Histogram(h),
                            None => Sample::Float(*v),
                        };
                        acc.add_sum_avg(op == AggOp::Avg, sample, &metric, &ctx);
                    }
                    // A histogram counts as a sample; its value does not matter.
                    AggOp::Count | AggOp::Group => {
                        acc.count += 1.0;
                        acc.has_float = true;
                        acc.float.add(op, if is_histogram { 0.0 } else { *v });
                    }
                    _ if is_histogram => ctx.ignored(op),
                    _ => {
                        acc.count += 1.0;
                        acc.has_float = true;
                        acc.float.add(op, *v);
                    }
                }
            }
        }
    }
    let mut keys: Vec<&Labels> = groups.keys().collect();
    keys.sort();
    let mut out = VectorBuilder::new();
    for k in keys {
        out.start_series(&grouping.output_labels(k, dropped[k]));
        for (t, acc) in &groups[k] {
            if acc.count == 0.0 {
                // Only ignored histograms.
                continue;
            }
            if acc.has_float && acc.has_histogram {
                notes.warn(annotations::MIXED_FLOATS_HISTOGRAMS_AGGREGATION, pos.expr);
                continue;
            }
            if acc.incompatible {
                continue;
            }
            if acc.has_histogram {
                out.push_histogram(*t, &acc.histogram_result(op == AggOp::Avg)?);
            } else {
                out.push(*t, acc.float.result(op));
            }
            if acc.reset_seen && acc.not_reset_seen {
                notes.warn(
                    &annotations::histogram_counter_reset_collision(AGGREGATION),
                    pos.expr,
                );
            }
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::annotations::{AnnotationKind, QueryPos};
    use crate::vector::batch_points;
    use hypnos_schemas::histogram::Span;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    fn hist(count: f64, sum: f64, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            count,
            sum,
            positive_spans: vec![span(0, buckets.len() as u32)],
            positive_buckets: buckets.to_vec(),
            ..Default::default()
        }
    }

    fn pos(col: u32) -> Option<QueryPos> {
        Some(QueryPos { line: 1, col })
    }

    /// One series per entry (labels `i`, plus `g`), each a single sample at t=0.
    fn input(samples: &[(&str, &str, Option<f64>, Option<&FloatHistogram>)]) -> RecordBatch {
        let mut b = VectorBuilder::new();
        for (i, g, f, h) in samples {
            b.start_series(&Labels::from_pairs([
                ("__name__", "m"),
                ("g", *g),
                ("i", *i),
            ]));
            match (f, h) {
                (_, Some(h)) => b.push_histogram(0, h),
                (Some(f), None) => b.push(0, *f),
                (None, None) => {}
            }
        }
        b.finish()
    }

    fn histograms(batch: &RecordBatch) -> Vec<(String, Option<FloatHistogram>)> {
        series_rows(batch)
            .unwrap()
            .iter()
            .map(|s| (s.labels.to_string(), s.histogram(0).unwrap()))
            .collect()
    }

    fn by_g() -> Grouping {
        Grouping::By(vec!["g".into()])
    }

    fn at() -> AggPositions {
        AggPositions {
            param: None,
            expr: pos(5),
            start: pos(1),
        }
    }

    #[test]
    fn sum_compensates_cancelling_magnitudes() {
        let batch = input(&[
            ("0", "a", None, Some(&hist(1.0, 3.1, &[1.0]))),
            ("1", "a", None, Some(&hist(1.0, 1e100, &[1.0]))),
            ("2", "a", None, Some(&hist(1.0, -1e100, &[1.0]))),
            ("3", "a", None, Some(&hist(1.0, 1.3, &[1.0]))),
        ]);
        let out =
            aggregate_mixed(&[batch], AggOp::Sum, &by_g(), &Annotations::new(), at()).unwrap();
        let got = histograms(&out)[0].1.clone().unwrap();
        assert_eq!((got.count, got.sum), (4.0, 4.4));
        assert_eq!(got.positive_buckets, vec![4.0]);
    }

    #[test]
    fn count_and_group_count_histograms_others_ignore_them() {
        let h = hist(4.0, 10.0, &[1.0, 3.0]);
        let b = input(&[
            ("0", "a", Some(1.0), None),
            ("1", "a", Some(3.0), None),
            ("2", "a", None, Some(&h)),
            ("3", "b", None, Some(&h)),
        ]);
        let count = aggregate_mixed(
            std::slice::from_ref(&b),
            AggOp::Count,
            &by_g(),
            &Annotations::new(),
            at(),
        )
        .unwrap();
        assert_eq!(
            batch_points(&count),
            vec![
                (r#"{g="a"}"#.to_string(), vec![(0, 3.0)]),
                (r#"{g="b"}"#.to_string(), vec![(0, 1.0)]),
            ]
        );
        for (op, want) in [
            (AggOp::Max, 3.0),
            (AggOp::Min, 1.0),
            (AggOp::Stdvar, 1.0),
            (AggOp::Stddev, 1.0),
            (AggOp::Group, 1.0),
        ] {
            let notes = Annotations::new();
            let out = aggregate_mixed(std::slice::from_ref(&b), op, &by_g(), &notes, at()).unwrap();
            let pts = batch_points(&out);
            assert_eq!(
                pts[0],
                (r#"{g="a"}"#.to_string(), vec![(0, want)]),
                "{op:?}"
            );
            if op == AggOp::Group {
                assert_eq!(pts.len(), 2);
                assert!(notes.is_empty());
            } else {
                // The group of only a histogram has no result.
                assert_eq!(pts.len(), 1, "{op:?}");
                assert_eq!(
                    notes.texts(AnnotationKind::Info),
                    vec![format!(
                        "PromQL info: ignored histogram in {} aggregation (1:5)",
                        op.name()
                    )]
                );
            }
        }
    }

    #[test]
    fn mixing_floats_and_histograms_leaves_the_group_out() {
        let h = hist(4.0, 10.0, &[1.0, 3.0]);
        for first_float in [true, false] {
            let b = if first_float {
                input(&[("0", "a", Some(1.0), None), ("1", "a", None, Some(&h))])
            } else {
                input(&[("0", "a", None, Some(&h)), ("1", "a", Some(1.0), None)])
            };
            for op in [AggOp::Sum, AggOp::Avg] {
                let notes = Annotations::new();
                let out =
                    aggregate_mixed(std::slice::from_ref(&b), op, &by_g(), &notes, at()).unwrap();
                assert_eq!(out.num_rows(), 0);
                assert_eq!(
                    notes.texts(AnnotationKind::Warning),
                    vec![
                        "PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"
                    ]
                );
            }
        }
    }

    #[test]
    fn single_histogram_sum_and_avg_are_the_histogram() {
        let mut h = hist(4.0, 10.0, &[1.0, 3.0]);
        h.counter_reset_hint = ResetHint::Gauge;
        let b = input(&[("0", "a", None, Some(&h))]);
        for op in [AggOp::Sum, AggOp::Avg] {
            let notes = Annotations::new();
            let out = aggregate_mixed(std::slice::from_ref(&b), op, &by_g(), &notes, at()).unwrap();
            let got = histograms(&out);
            assert_eq!(got, vec![(r#"{g="a"}"#.to_string(), Some(h.clone()))]);
            assert!(notes.is_empty());
        }
    }

    #[test]
    fn sum_and_avg_add_histograms() {
        let a = hist(4.0, 10.0, &[1.0, 3.0]);
        let b = hist(2.0, 2.0, &[2.0, 0.0]);
        let batch = input(&[("0", "a", None, Some(&a)), ("1", "a", None, Some(&b))]);
        let out = aggregate_mixed(
            std::slice::from_ref(&batch),
            AggOp::Sum,
            &by_g(),
            &Annotations::new(),
            at(),
        )
        .unwrap();
        let got = histograms(&out)[0].1.clone().unwrap();
        assert_eq!((got.count, got.sum), (6.0, 12.0));
        assert_eq!(got.positive_buckets, vec![3.0, 3.0]);
        let out =
            aggregate_mixed(&[batch], AggOp::Avg, &by_g(), &Annotations::new(), at()).unwrap();
        let got = histograms(&out)[0].1.clone().unwrap();
        assert_eq!((got.count, got.sum), (3.0, 6.0));
        assert_eq!(got.positive_buckets, vec![1.5, 1.5]);
    }

    #[test]
    fn avg_switches_to_an_incremental_mean_before_overflowing() {
        let big = hist(f64::MAX, 1.0, &[f64::MAX]);
        let batch = input(&[
            ("0", "a", None, Some(&big)),
            ("1", "a", None, Some(&big)),
            ("2", "a", None, Some(&hist(0.0, 4.0, &[0.0]))),
        ]);
        let out =
            aggregate_mixed(&[batch], AggOp::Avg, &by_g(), &Annotations::new(), at()).unwrap();
        let got = histograms(&out)[0].1.clone().unwrap();
        let want = f64::MAX / 3.0 * 2.0;
        assert!((got.count - want).abs() / want < 1e-12, "{}", got.count);
        assert!((got.sum - 2.0).abs() < 1e-12, "{}", got.sum);
    }

    #[test]
    fn conflicting_counter_resets_warn() {
        let mut a = hist(4.0, 10.0, &[1.0, 3.0]);
        a.counter_reset_hint = ResetHint::Reset;
        let mut b = a.clone();
        b.counter_reset_hint = ResetHint::NotReset;
        let batch = input(&[("0", "a", None, Some(&a)), ("1", "a", None, Some(&b))]);
        for op in [AggOp::Sum, AggOp::Avg] {
            let notes = Annotations::new();
            let out =
                aggregate_mixed(std::slice::from_ref(&batch), op, &by_g(), &notes, at()).unwrap();
            assert_eq!(out.num_rows(), 1);
            assert_eq!(
                notes.texts(AnnotationKind::Warning),
                vec![
                    "PromQL warning: conflicting counter resets during histogram aggregation (1:5)"
                ]
            );
        }
    }

    #[test]
    fn exponential_and_custom_buckets_do_not_mix() {
        let a = hist(4.0, 10.0, &[1.0, 3.0]);
        let mut c = hist(1.0, 1.0, &[1.0]);
        c.schema = hypnos_schemas::histogram::CUSTOM_BUCKETS_SCHEMA;
        c.custom_values = vec![5.0];
        let batch = input(&[("0", "a", None, Some(&a)), ("1", "a", None, Some(&c))]);
        for op in [AggOp::Sum, AggOp::Avg] {
            let notes = Annotations::new();
            let out =
                aggregate_mixed(std::slice::from_ref(&batch), op, &by_g(), &notes, at()).unwrap();
            assert_eq!(out.num_rows(), 0);
            assert_eq!(
                notes.texts(AnnotationKind::Warning),
                vec![
                    "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"m\" (1:5)"
                ]
            );
        }
    }

    #[test]
    fn float_only_selections_ignore_histograms_with_an_info() {
        let h = hist(4.0, 10.0, &[1.0, 3.0]);
        let b = input(&[
            ("0", "a", Some(1.0), None),
            ("1", "a", Some(3.0), None),
            ("2", "a", None, Some(&h)),
        ]);
        let positions = AggPositions {
            param: pos(3),
            expr: pos(9),
            start: pos(1),
        };
        let cases = [
            (AggOp::Topk(5), "topk", 1, vec![1.0, 3.0]),
            (AggOp::Bottomk(1), "bottomk", 1, vec![1.0]),
            (AggOp::Quantile(0.5f64.to_bits()), "quantile", 9, vec![2.0]),
        ];
        for (op, name, col, want) in cases {
            let notes = Annotations::new();
            let out = crate::ops::aggregate_positioned(
                std::slice::from_ref(&b),
                op,
                &by_g(),
                &notes,
                positions,
            )
            .unwrap();
            let got: Vec<f64> = batch_points(&out)
                .into_iter()
                .flat_map(|(_, pts)| pts.into_iter().map(|p| p.1))
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(
                notes.texts(AnnotationKind::Info),
                vec![format!(
                    "PromQL info: ignored histogram in {name} aggregation (1:{col})"
                )]
            );
        }
        // A k below 1 looks at nothing, so says nothing.
        let notes = Annotations::new();
        crate::ops::aggregate_positioned(&[b], AggOp::Topk(0), &by_g(), &notes, positions).unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn scalar_ignores_histograms() {
        let h = hist(4.0, 10.0, &[1.0, 3.0]);
        let one = input(&[("0", "a", Some(7.0), None), ("1", "a", None, Some(&h))]);
        let out = crate::ops::to_scalar(&[one], crate::ops::Steps::instant(0)).unwrap();
        assert_eq!(batch_points(&out)[0].1, vec![(0, 7.0)]);
        let none = input(&[("1", "a", None, Some(&h))]);
        let out = crate::ops::to_scalar(&[none], crate::ops::Steps::instant(0)).unwrap();
        assert!(batch_points(&out)[0].1[0].1.is_nan());
    }
}
