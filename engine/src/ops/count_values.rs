//! `count_values("label", v)`: per group and timestamp, how many samples have each value,
//! the value becoming the label `label` of the result.

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::FloatHistogram;

use super::Grouping;
use crate::vector::{VectorBuilder, series_rows};

/// A sample value as a label value, as Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the
/// shortest decimal that reads back to the same value, never an exponent.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// `count_values`: the value label is set on each sample's labels first, then samples are
/// grouped as `grouping` says, with `by` also keeping the value label. A histogram's value
/// is its text form (Prometheus' `String()`).
pub fn count_values(
    inputs: &[RecordBatch],
    label: &str,
    grouping: &Grouping,
) -> Result<RecordBatch> {
    let grouping = match grouping {
        Grouping::By(names) => {
            let mut names = names.clone();
            names.push(label.to_string());
            Grouping::By(names)
        }
        g @ Grouping::Without(_) => g.clone(),
    };
    let mut groups: HashMap<Labels, BTreeMap<i64, f64>> = HashMap::new();
    for batch in inputs {
        for s in series_rows(batch)? {
            // Samples of one series usually repeat values: reuse the labels per value.
            let mut cache: HashMap<u64, Labels> = HashMap::new();
            let mut hist_cache: HashMap<&[u8], Labels> = HashMap::new();
            let with_value = |value: &str| {
                let mut l = s.labels.clone();
                l.set(label, value);
                grouping.group_labels(&l)
            };
            for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
                let key = match s.histogram_bytes(i) {
                    Some(bytes) => match hist_cache.get(bytes) {
                        Some(l) => l.clone(),
                        None => {
                            let h = FloatHistogram::decode(bytes)
                                .map_err(|e| DataFusionError::Internal(e.to_string()))?;
                            let l = with_value(&h.to_string());
                            hist_cache.insert(bytes, l.clone());
                            l
                        }
                    },
                    None => cache
                        .entry(v.to_bits())
                        .or_insert_with(|| with_value(&format_value(*v)))
                        .clone(),
                };
                *groups.entry(key).or_default().entry(*t).or_default() += 1.0;
            }
        }
    }
    let mut keys: Vec<&Labels> = groups.keys().collect();
    keys.sort();
    let mut out = VectorBuilder::new();
    for k in keys {
        out.start_series(k);
        for (t, n) in &groups[k] {
            out.push(*t, *n);
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> RecordBatch {
        let mut b = VectorBuilder::new();
        for (inst, job, v) in [("0", "a", 6.0), ("1", "a", 6.0), ("2", "b", 7.5)] {
            b.start_series(&Labels::from_pairs([
                ("__name__", "version"),
                ("instance", inst),
                ("job", job),
            ]));
            b.push(0, v);
            b.push(10, if inst == "0" { 8.0 } else { v });
        }
        b.finish()
    }

    fn collect(out: &RecordBatch) -> Vec<(String, Vec<(i64, f64)>)> {
        crate::vector::batch_points(out)
    }

    #[test]
    fn counts_per_value_and_timestamp() {
        let out = count_values(&[input()], "version", &Grouping::By(vec![])).unwrap();
        let got = collect(&out);
        let want = vec![
            (
                Labels::from_pairs([("version", "6")]).to_string(),
                vec![(0, 2.0), (10, 1.0)],
            ),
            (
                Labels::from_pairs([("version", "7.5")]).to_string(),
                vec![(0, 1.0), (10, 1.0)],
            ),
            (
                Labels::from_pairs([("version", "8")]).to_string(),
                vec![(10, 1.0)],
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn without_keeps_other_labels_and_value_overwrites() {
        let out = count_values(
            &[input()],
            "job",
            &Grouping::Without(vec!["instance".into()]),
        )
        .unwrap();
        let got = collect(&out);
        assert_eq!(got[0].0, Labels::from_pairs([("job", "6")]).to_string());
        assert_eq!(got[0].1, vec![(0, 2.0), (10, 1.0)]);
    }

    #[test]
    fn histograms_count_by_their_text() {
        use hypnos_schemas::histogram::Span;
        let h = FloatHistogram {
            count: 3.0,
            sum: 4.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![3.0],
            ..Default::default()
        };
        let mut b = VectorBuilder::new();
        for inst in ["0", "1"] {
            b.start_series(&Labels::from_pairs([("__name__", "v"), ("instance", inst)]));
            b.push_histogram(0, &h);
        }
        b.start_series(&Labels::from_pairs([("__name__", "v"), ("instance", "2")]));
        b.push(0, 1.0);
        let out = count_values(&[b.finish()], "v", &Grouping::By(vec![])).unwrap();
        let got = collect(&out);
        assert_eq!(
            got,
            vec![
                (Labels::from_pairs([("v", "1")]).to_string(), vec![(0, 1.0)]),
                (
                    Labels::from_pairs([("v", h.to_string().as_str())]).to_string(),
                    vec![(0, 2.0)]
                ),
            ]
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_value(6.0), "6");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    }
}
