//! `info(v, {selector})` (experimental in Prometheus 3): adds to each series of `v` the data
//! labels of the info series (`target_info` by default) that share its identifying labels
//! (`instance`, `job`) at the same step.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::labels::METRIC_NAME;
use hypnos_schemas::tenant::TENANT_LABEL;
use hypnos_schemas::{Labels, Matcher};

use super::{EvalError, NAME_DROPPED_LABEL};
use crate::vector::{VectorBuilder, series_rows};

/// The labels that tie a series to its info series.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

fn eval_error(msg: String) -> DataFusionError {
    DataFusionError::External(Box::new(EvalError(msg)))
}

/// Joins `base` with `infos`: the info series selected with `name_matchers` and the data
/// matchers, one sample per step whose value is the time (in seconds) of the info sample it
/// stands for (the newest one wins where two share identifying labels).
///
/// A base series whose name matches every `name_matcher` is an info series itself and
/// passes unchanged. Others get the labels of each matching info series that they do not
/// have yet (only those named by `data_matchers` when there are any); a series that
/// matches no info series is dropped when a data matcher does not match the empty value.
pub fn info_join(
    base: &[RecordBatch],
    infos: &[RecordBatch],
    name_matchers: &[Matcher],
    data_matchers: &[Matcher],
) -> Result<RecordBatch> {
    let is_info = |l: &Labels| {
        name_matchers
            .iter()
            .all(|m| m.matches_value(l.get(METRIC_NAME)))
    };
    let mut base_series = Vec::new();
    for b in base {
        for s in series_rows(b)? {
            let pts: Vec<(i64, f64)> = s.ts.iter().copied().zip(s.values.iter().copied()).collect();
            base_series.push((s.labels, pts));
        }
    }
    // The identifying values of the series to enrich: info series must have them.
    let mut id_values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (l, _) in base_series.iter().filter(|(l, _)| !is_info(l)) {
        for name in IDENTIFYING {
            let v = l.get(name);
            if !v.is_empty() {
                id_values.entry(name).or_default().insert(v.to_string());
            }
        }
    }
    let (info_names, by_step) = info_samples(infos, &id_values)?;
    let data_names: BTreeSet<&str> = data_matchers.iter().map(|m| m.name.as_str()).collect();
    let all_match_empty = data_matchers.iter().all(|m| m.matches_value(""));
    let empty = HashMap::new();
    let mut out: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    for (labels, pts) in &base_series {
        let ignored = is_info(labels);
        for &(t, v) in pts {
            let result = if ignored {
                labels.clone()
            } else {
                let infos_at = by_step.get(&t).unwrap_or(&empty);
                match enriched(labels, infos_at, &info_names, &data_names)? {
                    None if !all_match_empty => continue,
                    None => labels.clone(),
                    Some(r) => r,
                }
            };
            if out.entry(result).or_default().insert(t, v).is_some() {
                return Err(eval_error(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
        }
    }
    let mut b = VectorBuilder::new();
    for (labels, pts) in out {
        b.start_series(&labels);
        for (t, v) in pts {
            b.push(t, v);
        }
    }
    Ok(b.finish())
}

/// An info series' signature: its name, identifying labels and tenant.
type Sig = (String, String, String, String);

fn sig(name: &str, l: &Labels) -> Sig {
    (
        name.to_string(),
        l.get("instance").to_string(),
        l.get("job").to_string(),
        l.get(TENANT_LABEL).to_string(),
    )
}

/// Info samples at each step.
type InfoSteps = HashMap<i64, HashMap<Sig, (Labels, f64)>>;

/// The names of the info series whose identifying labels take values in `id_values`, and
/// their samples by step and signature (the newest info sample wins).
fn info_samples(
    infos: &[RecordBatch],
    id_values: &BTreeMap<&str, BTreeSet<String>>,
) -> Result<(BTreeSet<String>, InfoSteps)> {
    let mut info_names: BTreeSet<String> = BTreeSet::new();
    let mut by_step: InfoSteps = HashMap::new();
    if !id_values.is_empty() {
        for b in infos {
            for s in series_rows(b)? {
                let mut labels = s.labels.clone();
                labels.set(NAME_DROPPED_LABEL, "");
                if !id_values.iter().all(|(n, vs)| vs.contains(labels.get(n))) {
                    continue;
                }
                let name = labels.get(METRIC_NAME).to_string();
                info_names.insert(name.clone());
                let key = sig(&name, &labels);
                for (t, orig) in s.ts.iter().zip(s.values) {
                    let at = by_step.entry(*t).or_default();
                    match at.get(&key) {
                        Some((_, o)) if *o > *orig => {}
                        Some((existing, o)) if *o == *orig => {
                            return Err(eval_error(format!(
                                "found duplicate series for info metric: existing {existing} @ {}, new {labels} @ {}",
                                (*o * 1000.0) as i64,
                                (*orig * 1000.0) as i64
                            )));
                        }
                        _ => {
                            at.insert(key.clone(), (labels.clone(), *orig));
                        }
                    }
                }
            }
        }
    }
    Ok((info_names, by_step))
}

/// The labels of a series at one step with those of its info series added (none it
/// already has; only those named by a data matcher when there are any); `None` when no
/// info series matches.
fn enriched(
    labels: &Labels,
    infos_at: &HashMap<Sig, (Labels, f64)>,
    info_names: &BTreeSet<String>,
    data_names: &BTreeSet<&str>,
) -> Result<Option<Labels>> {
    let mut added = Labels::default();
    let mut seen = false;
    for name in info_names {
        let Some((info, _)) = infos_at.get(&sig(name, labels)) else {
            continue;
        };
        seen = true;
        for l in info.iter() {
            let n = l.name.as_str();
            if n == METRIC_NAME
                || n == TENANT_LABEL
                || (!data_names.is_empty() && !data_names.contains(n))
            {
                continue;
            }
            let have = added.get(n);
            if !have.is_empty() && have != l.value {
                return Err(eval_error(format!("conflicting label: {n}")));
            }
            if labels.get(n).is_empty() {
                added.set(n, &l.value);
            }
        }
    }
    if !seen {
        return Ok(None);
    }
    let mut r = labels.clone();
    for l in added.iter() {
        r.set(&l.name, &l.value);
    }
    Ok(Some(r))
}
