//! Operators that reshape vectors rather than compute values: `@` broadcasting, `absent`,
//! and `label_replace` / `label_join`.

use std::collections::BTreeSet;

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::ResetHint;
use hypnos_schemas::labels::METRIC_NAME;
use regex::Regex;

use super::{Relabel, Steps};
use crate::vector::{VectorBuilder, histogram_column, series_rows};

/// Repeats each series' value (computed at one fixed time, for `@`) at every step.
pub fn broadcast(input: &RecordBatch, steps: Steps) -> Result<RecordBatch> {
    let mut out = VectorBuilder::new();
    for s in series_rows(input)? {
        if let Some(last) = s.ts.len().checked_sub(1) {
            out.start_series(&s.labels);
            for t in steps.iter() {
                out.push_row(t, &s, last);
            }
        }
    }
    Ok(out.finish())
}

/// The samples of a subquery as a range function reads them: histograms' "reset" and "not
/// reset" hints become "unknown", as in Prometheus. A subquery may skip the sample where a
/// counter reset happened or repeat it at several steps, so those hints would make the
/// function miss or double-count resets; without them it detects resets as for floats.
pub fn forget_reset_hints(input: &RecordBatch) -> Result<RecordBatch> {
    if histogram_column(input).is_none() {
        return Ok(input.clone());
    }
    let mut out = VectorBuilder::new();
    for s in series_rows(input)? {
        out.start_series(&s.labels);
        for (i, t) in s.ts.iter().enumerate() {
            match s.histogram(i)? {
                Some(mut h)
                    if matches!(h.counter_reset_hint, ResetHint::Reset | ResetHint::NotReset) =>
                {
                    h.counter_reset_hint = ResetHint::Unknown;
                    out.push_histogram(*t, &h);
                }
                _ => out.push_row(*t, &s, i),
            }
        }
    }
    Ok(out.finish())
}

/// `absent`: 1 with `labels` at every step where the input has no sample (a histogram
/// sample is a sample).
pub fn absent(inputs: &[RecordBatch], steps: Steps, labels: &Labels) -> Result<RecordBatch> {
    let mut present = BTreeSet::new();
    for b in inputs {
        for s in series_rows(b)? {
            present.extend(s.ts.iter().copied());
        }
    }
    let mut out = VectorBuilder::new();
    out.start_series(labels);
    for t in steps.iter().filter(|t| !present.contains(t)) {
        out.push(t, 1.0);
    }
    Ok(out.finish())
}

/// `label_replace` and `label_join`: applies `rule` to every series.
pub fn relabel(input: &RecordBatch, rule: &Relabel) -> Result<RecordBatch> {
    let re = match rule {
        Relabel::Replace { regex, .. } => Some(
            Regex::new(&format!("^(?s:{regex})$"))
                .map_err(|e| DataFusionError::Execution(e.to_string()))?,
        ),
        Relabel::Join { .. } => None,
    };
    let mut out = VectorBuilder::new();
    for s in series_rows(input)? {
        // The rules see a name marked dropped; writing `__name__` keeps the new name.
        let visible = &s.labels;
        let mut labels = s.labels.clone();
        let mut set = |dst: &str, value: &str| {
            if dst == METRIC_NAME {
                labels.set(super::NAME_DROPPED_LABEL, "");
            }
            labels.set(dst, value);
        };
        match rule {
            Relabel::Replace {
                dst,
                replacement,
                src,
                ..
            } => {
                let value = visible.get(src);
                if let Some(caps) = re.as_ref().and_then(|r| r.captures(value)) {
                    let mut res = String::new();
                    caps.expand(replacement, &mut res);
                    set(dst, &res);
                }
            }
            Relabel::Join {
                dst,
                separator,
                srcs,
            } => {
                let joined: Vec<&str> = srcs.iter().map(|n| visible.get(n)).collect();
                set(dst, &joined.join(separator));
            }
        }
        out.start_series(&labels);
        for (t, v) in s.ts.iter().zip(s.values) {
            out.push(*t, *v);
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relabel_and_absent() {
        let mut b = VectorBuilder::new();
        b.start_series(&Labels::from_pairs([
            ("__name__", "up"),
            ("instance", "host:9100"),
        ]));
        b.push(0, 1.0);
        let batch = b.finish();
        let r = Relabel::Replace {
            dst: "host".into(),
            replacement: "$1".into(),
            src: "instance".into(),
            regex: "(.*):.*".into(),
        };
        let out = relabel(&batch, &r).unwrap();
        assert_eq!(series_rows(&out).unwrap()[0].labels.get("host"), "host");
        let j = Relabel::Join {
            dst: "both".into(),
            separator: "-".into(),
            srcs: vec!["__name__".into(), "instance".into()],
        };
        let out = relabel(&batch, &j).unwrap();
        assert_eq!(
            series_rows(&out).unwrap()[0].labels.get("both"),
            "up-host:9100"
        );
        assert!(
            Relabel::Replace {
                dst: "1x".into(),
                replacement: String::new(),
                src: "a".into(),
                regex: ".*".into()
            }
            .validate()
            .is_err()
        );
        let steps = Steps {
            start: 0,
            end: 2,
            step: 1,
        };
        let a = absent(&[batch], steps, &Labels::from_pairs([("job", "x")])).unwrap();
        assert_eq!(series_rows(&a).unwrap()[0].ts, &[1, 2]);
    }

    #[test]
    fn a_histogram_is_present_for_absent() {
        let h = hypnos_schemas::histogram::FloatHistogram {
            count: 1.0,
            ..Default::default()
        };
        let mut b = VectorBuilder::new();
        b.start_series(&Labels::from_pairs([("__name__", "h")]));
        b.push_histogram(1, &h);
        let steps = Steps {
            start: 0,
            end: 2,
            step: 1,
        };
        let a = absent(&[b.finish()], steps, &Labels::default()).unwrap();
        assert_eq!(series_rows(&a).unwrap()[0].ts, &[0, 2]);
    }
}
