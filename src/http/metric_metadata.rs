//! `GET /api/v1/metadata`: metric metadata (type, help, unit) as remote write 1.0 carries it
//! in the `metadata` field of its requests (Prometheus sends it every minute by default,
//! usually in requests without samples).
//!
//! [`MetricMetadataStore`] keeps it in memory, per tenant: an accepted write records the
//! metadata of its request under the writer's tenant; a refused write records nothing. It is
//! not logged nor stored in blocks: after a restart it comes back with the senders' next
//! round. A read sees the metadata of its tenants only (the union, for a federated read).
//! Memory is bounded: at most [`MAX_METRICS_PER_TENANT`] metric names per tenant (names past
//! it are dropped until the process restarts) and [`MAX_ENTRIES_PER_METRIC`] distinct entries
//! per metric (the oldest goes first); help texts are cut at [`MAX_HELP_BYTES`].
//!
//! Parameters, as Prometheus: `metric` (one metric name), `limit` (metric names at most),
//! `limit_per_metric` (entries per metric at most); absent, `0` or negative means no limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use axum::extract::State;
use axum::response::Response;
use hypnos_schemas::TenantId;
use hypnos_schemas::remote::MetricMetadata;
use serde::Serialize;

use super::errors::ApiError;
use super::params::Params;
use super::query::guarded;
use super::tenant::ReadScope;
use super::{AppRef, json};

/// Metric names kept per tenant.
pub(crate) const MAX_METRICS_PER_TENANT: usize = 100_000;
/// Distinct entries kept per metric name.
pub(crate) const MAX_ENTRIES_PER_METRIC: usize = 10;
/// Longest help text kept (longer ones are cut at a character boundary).
pub(crate) const MAX_HELP_BYTES: usize = 4096;

/// One metadata entry, in the shape of Prometheus' answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct MetadataEntry {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) help: String,
    pub(crate) unit: String,
}

/// The name Prometheus' API gives to `prometheus.MetricMetadata.MetricType`.
fn kind(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

type TenantMetadata = BTreeMap<String, Vec<MetadataEntry>>;

/// Metric metadata by tenant and metric name (see the module).
#[derive(Debug, Default)]
pub(crate) struct MetricMetadataStore {
    tenants: RwLock<HashMap<TenantId, TenantMetadata>>,
}

impl MetricMetadataStore {
    /// Records the metadata of an accepted write of `tenant`; entries without a metric name
    /// are skipped.
    pub(crate) fn record(&self, tenant: &TenantId, metadata: &[MetricMetadata]) {
        if metadata.is_empty() {
            return;
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let mine = tenants.entry(tenant.clone()).or_default();
        for m in metadata {
            if m.metric_family_name.is_empty() {
                continue;
            }
            let entry = MetadataEntry {
                kind: kind(m.r#type),
                help: cut(&m.help, MAX_HELP_BYTES),
                unit: m.unit.clone(),
            };
            if !mine.contains_key(&m.metric_family_name) && mine.len() >= MAX_METRICS_PER_TENANT {
                continue;
            }
            let entries = mine.entry(m.metric_family_name.clone()).or_default();
            // The newest last; a repeated entry moves to the end.
            entries.retain(|e| *e != entry);
            entries.push(entry);
            if entries.len() > MAX_ENTRIES_PER_METRIC {
                entries.remove(0);
            }
        }
    }

    /// The metadata of `tenants` (unique entries per metric, in name order), of `metric`
    /// only when given, at most `limit` metrics and `limit_per_metric` entries each (0: no
    /// limit).
    pub(crate) fn get(
        &self,
        tenants: &[TenantId],
        metric: Option<&str>,
        limit: usize,
        limit_per_metric: usize,
    ) -> TenantMetadata {
        let map = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        let mut out: TenantMetadata = BTreeMap::new();
        for t in tenants {
            let Some(mine) = map.get(t) else { continue };
            let selected: Box<dyn Iterator<Item = (&String, &Vec<MetadataEntry>)>> = match metric {
                Some(name) => Box::new(mine.get_key_value(name).into_iter()),
                None => Box::new(mine.iter()),
            };
            for (name, entries) in selected {
                let all = out.entry(name.clone()).or_default();
                for e in entries {
                    if !all.contains(e) {
                        all.push(e.clone());
                    }
                }
            }
        }
        if limit > 0 {
            while out.len() > limit {
                out.pop_last();
            }
        }
        if limit_per_metric > 0 {
            for entries in out.values_mut() {
                entries.truncate(limit_per_metric);
            }
        }
        out
    }
}

/// A count parameter: absent, 0 or negative is no limit.
fn count_param(params: &Params, name: &str) -> Result<usize, ApiError> {
    match params.get(name) {
        None => Ok(0),
        Some(s) => {
            let n: i64 = s
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid_param(name, format!("{s:?} is not an integer")))?;
            Ok(usize::try_from(n).unwrap_or(0))
        }
    }
}

pub(super) async fn metadata(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "metadata", async |_| {
        let limit = count_param(&params, "limit")?;
        let per_metric = count_param(&params, "limit_per_metric")?;
        let data =
            state
                .metric_metadata
                .get(scope.tenants(), params.get("metric"), limit, per_metric);
        let body = serde_json::to_string(&data)
            .map_err(|e| ApiError::BadData(format!("encoding metadata: {e}")))?;
        Ok(json::success(&body, &[]))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(name: &str, t: i32, help: &str) -> MetricMetadata {
        MetricMetadata {
            r#type: t,
            metric_family_name: name.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn kept_per_tenant_unique_and_bounded() {
        let s = MetricMetadataStore::default();
        let (a, b) = (tenant("a"), tenant("b"));
        s.record(
            &a,
            &[
                md("up", 2, "up help"),
                md("req_total", 1, "requests"),
                md("", 1, "x"),
            ],
        );
        s.record(&a, &[md("up", 2, "up help")]);
        s.record(&b, &[md("up", 2, "b's help"), md("b_only", 9, "")]);
        let only_a = s.get(std::slice::from_ref(&a), None, 0, 0);
        assert_eq!(only_a.keys().collect::<Vec<_>>(), ["req_total", "up"]);
        assert_eq!(
            only_a["up"],
            [MetadataEntry {
                kind: "gauge",
                help: "up help".into(),
                unit: String::new()
            }]
        );
        assert_eq!(only_a["req_total"][0].kind, "counter");
        let only_b = s.get(std::slice::from_ref(&b), None, 0, 0);
        assert_eq!(only_b.keys().collect::<Vec<_>>(), ["b_only", "up"]);
        assert_eq!(only_b["b_only"][0].kind, "unknown");
        assert_eq!(only_b["up"][0].help, "b's help");
        // A federated read: the union, entries unique per metric.
        let both = s.get(&[a.clone(), b.clone()], None, 0, 0);
        assert_eq!(both.len(), 3);
        assert_eq!(both["up"].len(), 2);
        // Filters and limits.
        assert_eq!(s.get(&[a.clone(), b.clone()], Some("up"), 0, 0).len(), 1);
        assert!(
            s.get(std::slice::from_ref(&a), Some("b_only"), 0, 0)
                .is_empty()
        );
        assert_eq!(
            s.get(&[a.clone(), b.clone()], None, 2, 0)
                .keys()
                .collect::<Vec<_>>(),
            ["b_only", "req_total"]
        );
        assert_eq!(s.get(&[a.clone(), b.clone()], None, 0, 1)["up"].len(), 1);
        assert!(s.get(&[tenant("c")], None, 0, 0).is_empty());
        // Entries per metric: the newest kept.
        for i in 0..(MAX_ENTRIES_PER_METRIC + 3) {
            s.record(&a, &[md("churn", 2, &format!("help {i}"))]);
        }
        let churn = &s.get(std::slice::from_ref(&a), Some("churn"), 0, 0)["churn"];
        assert_eq!(churn.len(), MAX_ENTRIES_PER_METRIC);
        assert_eq!(
            churn.last().unwrap().help,
            format!("help {}", MAX_ENTRIES_PER_METRIC + 2)
        );
        // Long help texts are cut at a character boundary.
        s.record(&a, &[md("long", 2, &"é".repeat(MAX_HELP_BYTES))]);
        let long = &s.get(&[a], Some("long"), 0, 0)["long"][0].help;
        assert!(long.len() <= MAX_HELP_BYTES && long.chars().all(|c| c == 'é'));
    }

    #[test]
    fn metric_names_per_tenant_are_capped() {
        let s = MetricMetadataStore::default();
        let a = tenant("a");
        let many: Vec<MetricMetadata> = (0..MAX_METRICS_PER_TENANT + 5)
            .map(|i| md(&format!("m{i}"), 2, ""))
            .collect();
        s.record(&a, &many);
        assert_eq!(
            s.get(std::slice::from_ref(&a), None, 0, 0).len(),
            MAX_METRICS_PER_TENANT
        );
        // Known names still take new entries; other tenants are not affected.
        s.record(&a, &[md("m0", 1, "now a counter")]);
        assert_eq!(s.get(&[a], Some("m0"), 0, 0)["m0"].len(), 2);
        let b = tenant("b");
        s.record(&b, &[md("x", 2, "")]);
        assert_eq!(s.get(&[b], None, 0, 0).len(), 1);
    }
}
