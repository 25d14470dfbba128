//! `load_with_nhcb`: besides the classic histogram series it loads, a native histogram with
//! custom buckets (NHCB) per classic histogram and timestamp, as Prometheus' test loader
//! builds them: the `_bucket` (with `le`), `_count` and `_sum` series of a histogram are
//! grouped by their labels without `le` and with the name without the suffix.

use std::collections::BTreeMap;

use hypnos_schemas::Labels;
use hypnos_schemas::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Span};

use crate::script::SeriesDesc;
use crate::series::Value;

/// What one timestamp of a classic histogram said.
#[derive(Default)]
struct Classic {
    /// Cumulative bucket counts, sorted by upper bound.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    error: Option<String>,
}

impl Classic {
    fn set_bucket(&mut self, le: f64, count: f64) {
        if self.error.is_some() {
            return;
        }
        if count < 0.0 {
            self.error = Some(format!(
                "bucket count must be non-negative: le={le}, count={count}"
            ));
            return;
        }
        let i = self.buckets.partition_point(|(b, _)| *b < le);
        if self.buckets.get(i).is_some_and(|(b, _)| *b == le) {
            // A second sample for the same bound is ignored.
            return;
        }
        if i > 0 && count < self.buckets[i - 1].1 {
            self.error = Some(format!(
                "count is not cumulative: {count} < {}",
                self.buckets[i - 1].1
            ));
            return;
        }
        if let Some((_, above)) = self.buckets.get(i)
            && count > *above
        {
            self.error = Some(format!("count is not cumulative: {count} > {above}"));
            return;
        }
        self.buckets.insert(i, (le, count));
    }

    fn set_count(&mut self, count: f64) {
        if self.error.is_some() {
            return;
        }
        if count < 0.0 {
            self.error = Some(format!("count must be non-negative: count={count}"));
            return;
        }
        self.count = Some(count);
    }

    /// The native histogram: bounds without +Inf as custom values, per-bucket counts. As
    /// upstream, a histogram whose counts are all integers is compacted keeping up to two
    /// empty buckets in a row (its integer form), any other one removing every empty bucket.
    fn convert(mut self) -> Result<FloatHistogram, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let count = match self.count {
            Some(c) => c,
            None => self.buckets.last().map_or(0.0, |b| b.1),
        };
        if self.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
            self.buckets.push((f64::INFINITY, count));
        }
        let last = self.buckets[self.buckets.len() - 1].1;
        if count != last {
            return Err(format!(
                "count mismatch: count={count} != le=+Inf count={last}"
            ));
        }
        let integral = |c: f64| c.is_finite() && c.fract() == 0.0 && c.abs() < 9.2e18;
        let integer = integral(count) && self.buckets.iter().all(|b| integral(b.1));
        let mut counts = Vec::with_capacity(self.buckets.len());
        let mut previous = 0.0;
        for (_, c) in &self.buckets {
            let n = c - previous;
            if n < 0.0 {
                return Err(format!(
                    "histogram has a bucket whose observation count is negative: {n}"
                ));
            }
            counts.push(n);
            previous = *c;
        }
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span {
                offset: 0,
                length: counts.len() as u32,
            }],
            positive_buckets: counts,
            custom_values: self.buckets[..self.buckets.len() - 1]
                .iter()
                .map(|b| b.0)
                .collect(),
            ..FloatHistogram::default()
        };
        crate::panics::catch(|| h.compact(if integer { 2 } else { 0 }))?;
        Ok(h)
    }
}

/// Reads an `le` label as Go's `strconv.ParseFloat` does (None when it is no number).
fn parse_le(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity") {
        return Some(if lower.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    s.parse::<f64>().ok()
}

/// Which part of a classic histogram a series is.
#[derive(Clone, Copy)]
enum Part {
    /// A `_bucket` series, with its upper bound.
    Bucket(f64),
    Sum,
    Count,
}

impl Classic {
    fn set(&mut self, part: Part, v: f64) {
        match part {
            Part::Bucket(le) => self.set_bucket(le, v),
            Part::Sum => self.sum = v,
            Part::Count => self.set_count(v),
        }
    }
}

/// A series of native histograms: labels, and histograms by timestamp.
pub(crate) type HistogramSeries = (Labels, Vec<(i64, FloatHistogram)>);

/// The NHCB series built from the classic histograms among `series` (points `interval`
/// apart from 0).
pub(crate) fn custom_bucket_series(
    series: &[&SeriesDesc],
    interval: i64,
) -> Result<Vec<HistogramSeries>, String> {
    let mut by_base: BTreeMap<Labels, BTreeMap<i64, Classic>> = BTreeMap::new();
    for s in series {
        let name = s.labels.metric_name();
        let (base, part) = if let Some(base) = name.strip_suffix("_bucket") {
            let le = s.labels.get("le");
            if le.is_empty() {
                return Err(format!("expected bucket label in metric {}", s.labels));
            }
            let Some(le) = parse_le(le).filter(|v| !v.is_nan()) else {
                continue;
            };
            (base, Part::Bucket(le))
        } else if let Some(base) = name.strip_suffix("_sum") {
            (base, Part::Sum)
        } else if let Some(base) = name.strip_suffix("_count") {
            (base, Part::Count)
        } else {
            continue;
        };
        let mut labels = s.labels.clone();
        labels.set("__name__", base);
        labels.set("le", "");
        let per_time = by_base.entry(labels).or_default();
        for (i, p) in s.points.iter().enumerate() {
            if let Some(Value::Float(v)) = p {
                per_time
                    .entry(i as i64 * interval)
                    .or_default()
                    .set(part, *v);
            }
        }
    }
    by_base
        .into_iter()
        .map(|(labels, per_time)| {
            let points = per_time
                .into_iter()
                .map(|(t, c)| {
                    c.convert()
                        .map(|h| (t, h))
                        .map_err(|e| format!("{labels} at {t}ms: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((labels, points))
        })
        .collect()
}

/// The conversion on hand-worked classic histograms.
pub(crate) fn self_check() {
    let classic = |le: &[(f64, f64)], count: Option<f64>, sum: f64| {
        let mut c = Classic::default();
        for (b, v) in le {
            c.set_bucket(*b, *v);
        }
        if let Some(n) = count {
            c.set_count(n);
        }
        c.sum = sum;
        c
    };
    // Bounds arrive in any order; a missing +Inf bucket takes the count.
    let c = classic(&[(5.0, 3.0), (1.0, 1.0)], Some(4.0), 7.5);
    assert_eq!(c.buckets, vec![(1.0, 1.0), (5.0, 3.0)]);
    let mut c = c;
    c.buckets.push((f64::INFINITY, 4.0));
    let mut fresh = Classic::default();
    fresh.set_bucket(f64::INFINITY, 4.0);
    fresh.set_bucket(1.0, 1.0);
    fresh.set_bucket(5.0, 3.0);
    assert_eq!(fresh.buckets, c.buckets);
    // Not cumulative, negative, mismatching: refused.
    assert!(
        classic(&[(1.0, 3.0), (5.0, 2.0)], None, 0.0)
            .error
            .is_some()
    );
    assert!(
        classic(&[(5.0, 2.0), (1.0, 3.0)], None, 0.0)
            .error
            .is_some()
    );
    assert!(classic(&[(1.0, -1.0)], None, 0.0).error.is_some());
    assert!(
        classic(&[(1.0, 1.0), (f64::INFINITY, 2.0)], Some(3.0), 0.0)
            .convert()
            .is_err()
    );
    assert!(classic(&[(1.0, 5.0)], Some(3.0), 0.0).convert().is_err());
    // Integer counts keep up to two empty buckets in a row; trailing empty ones go.
    let converted = classic(&[(1.0, 1.0), (2.0, 1.0), (5.0, 3.0)], Some(3.0), 7.5).convert();
    match converted {
        Ok(h) => {
            assert_eq!(h.schema, CUSTOM_BUCKETS_SCHEMA);
            assert_eq!((h.count, h.sum), (3.0, 7.5));
            assert_eq!(h.custom_values, vec![1.0, 2.0, 5.0]);
            assert_eq!(
                h.positive_spans,
                vec![Span {
                    offset: 0,
                    length: 3
                }]
            );
            assert_eq!(h.positive_buckets, vec![1.0, 0.0, 2.0]);
        }
        // Compaction itself not written yet: nothing of ours to check here.
        Err(e) if e.starts_with("panicked") => {}
        Err(e) => panic!("conversion failed: {e}"),
    }
    // Float counts remove every empty bucket.
    let converted = classic(&[(1.0, 0.5), (2.0, 0.5), (5.0, 3.0)], None, 1.0).convert();
    if let Err(e) = &converted {
        assert!(e.starts_with("panicked"), "conversion failed: {e}");
    }
    if let Ok(h) = converted {
        assert_eq!(h.count, 3.0);
        assert_eq!(h.custom_values, vec![1.0, 2.0, 5.0]);
        assert_eq!(
            h.positive_spans,
            vec![
                Span {
                    offset: 0,
                    length: 1
                },
                Span {
                    offset: 1,
                    length: 1
                }
            ]
        );
        assert_eq!(h.positive_buckets, vec![0.5, 2.5]);
    }
    assert_eq!(parse_le("+Inf"), Some(f64::INFINITY));
    assert_eq!(parse_le("0.25"), Some(0.25));
    assert_eq!(parse_le("abc"), None);
}
