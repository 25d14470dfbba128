//! `GET /api/v1/metadata`: metric metadata (type, help, unit) as remote write 1.0 carries it
//! in the `metadata` field of its requests (Prometheus sends it every minute by default,
//! usually in requests without samples).
//!
//! [`MetricMetadataStore`] keeps it in memory, per tenant: an accepted write records the
//! metadata of its request under the writer's tenant; a refused write records nothing. It is
//! not logged nor stored in blocks: after a restart it comes back with the senders' next
//! round. A read sees the metadata of its tenants only (the union, for a federated read).
//! Memory is bounded by the tenant's write limits: at most `max_metadata_per_user` metric
//! names per tenant (a request bringing more new names is refused whole with 400, before
//! anything of it is written), `max_metadata_per_metric` distinct entries per metric (the
//! oldest goes first), metric names and units of at most `max_metadata_length` bytes (the
//! ingester refuses longer ones) and help texts cut at that length. Metadata entries count
//! against the ingestion rate as samples do.
//!
//! Parameters, as Prometheus: `metric` (one metric name), `limit` (metric names at most),
//! `limit_per_metric` (entries per metric at most); absent, `0` or negative means no limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use axum::extract::State;
use axum::response::Response;
use hypnos_ingest::{LimitError, LimitKind, WriteLimits};
use hypnos_schemas::TenantId;
use hypnos_schemas::remote::MetricMetadata;
use serde::Serialize;

use super::errors::ApiError;
use super::params::Params;
use super::query::guarded;
use super::tenant::ReadScope;
use super::{AppRef, json};

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

/// `s` cut at `max` bytes (0: not cut), at a character boundary.
fn cut(s: &str, max: usize) -> String {
    if max == 0 || s.len() <= max {
        return s.to_string();
    }
    s[..s.floor_char_boundary(max)].to_string()
}

type TenantMetadata = BTreeMap<String, Vec<MetadataEntry>>;

/// Metric metadata by tenant and metric name (see the module).
#[derive(Debug, Default)]
pub(crate) struct MetricMetadataStore {
    tenants: RwLock<HashMap<TenantId, TenantMetadata>>,
}

impl MetricMetadataStore {
    /// Refuses `metadata` when its new metric names would take `tenant` past
    /// `max_metadata_per_user`. Concurrent writes of one tenant may overshoot the limit by
    /// the names of one request.
    pub(crate) fn check(
        &self,
        tenant: &TenantId,
        limits: &WriteLimits,
        metadata: &[MetricMetadata],
    ) -> Result<(), LimitError> {
        let max = limits.max_metadata_per_user;
        if max == 0 || metadata.is_empty() {
            return Ok(());
        }
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        let mine = tenants.get(tenant);
        let known = mine.map_or(0, BTreeMap::len);
        let mut new: Vec<&str> = metadata
            .iter()
            .map(|m| m.metric_family_name.as_str())
            .filter(|n| !n.is_empty() && !mine.is_some_and(|m| m.contains_key(*n)))
            .collect();
        new.sort_unstable();
        new.dedup();
        if known + new.len() > max {
            return Err(LimitError {
                limit: "max_metadata_per_user",
                kind: LimitKind::Invalid,
                message: format!(
                    "tenant {tenant} has metadata for {known} metric names, the request adds \
                     {}, more than the limit of {max}",
                    new.len()
                ),
            });
        }
        Ok(())
    }

    /// Records the metadata of an accepted write of `tenant`; entries without a metric name
    /// are skipped, names past `max_metadata_per_user` dropped (see [`Self::check`]).
    pub(crate) fn record(
        &self,
        tenant: &TenantId,
        limits: &WriteLimits,
        metadata: &[MetricMetadata],
    ) {
        if metadata.is_empty() {
            return;
        }
        let max_len = limits.max_metadata_length;
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let mine = tenants.entry(tenant.clone()).or_default();
        for m in metadata {
            if m.metric_family_name.is_empty() {
                continue;
            }
            let entry = MetadataEntry {
                kind: kind(m.r#type),
                help: cut(&m.help, max_len),
                unit: cut(&m.unit, max_len),
            };
            if !mine.contains_key(&m.metric_family_name)
                && limits.max_metadata_per_user > 0
                && mine.len() >= limits.max_metadata_per_user
            {
                continue;
            }
            let name = cut(&m.metric_family_name, max_len);
            let entries = mine.entry(name).or_default();
            // The newest last; a repeated entry moves to the end.
            entries.retain(|e| *e != entry);
            entries.push(entry);
            let per_metric = limits.max_metadata_per_metric;
            if per_metric > 0 && entries.len() > per_metric {
                entries.drain(..entries.len() - per_metric);
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
    use std::sync::LazyLock;

    use super::*;

    /// The limits of a server without a limits file.
    static L: LazyLock<WriteLimits> = LazyLock::new(WriteLimits::default);

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
            &L,
            &[
                md("up", 2, "up help"),
                md("req_total", 1, "requests"),
                md("", 1, "x"),
            ],
        );
        s.record(&a, &L, &[md("up", 2, "up help")]);
        s.record(&b, &L, &[md("up", 2, "b's help"), md("b_only", 9, "")]);
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
        for i in 0..(L.max_metadata_per_metric + 3) {
            s.record(&a, &L, &[md("churn", 2, &format!("help {i}"))]);
        }
        let churn = &s.get(std::slice::from_ref(&a), Some("churn"), 0, 0)["churn"];
        assert_eq!(churn.len(), L.max_metadata_per_metric);
        assert_eq!(
            churn.last().unwrap().help,
            format!("help {}", L.max_metadata_per_metric + 2)
        );
        // Long help texts are cut at a character boundary.
        s.record(&a, &L, &[md("long", 2, &"é".repeat(L.max_metadata_length))]);
        let long = &s.get(&[a], Some("long"), 0, 0)["long"][0].help;
        assert!(long.len() <= L.max_metadata_length && long.chars().all(|c| c == 'é'));
    }

    #[test]
    fn metric_names_per_tenant_are_capped() {
        let s = MetricMetadataStore::default();
        let a = tenant("a");
        let many: Vec<MetricMetadata> = (0..L.max_metadata_per_user + 5)
            .map(|i| md(&format!("m{i}"), 2, ""))
            .collect();
        s.record(&a, &L, &many);
        assert_eq!(
            s.get(std::slice::from_ref(&a), None, 0, 0).len(),
            L.max_metadata_per_user
        );
        // Known names still take new entries; other tenants are not affected.
        s.record(&a, &L, &[md("m0", 1, "now a counter")]);
        assert_eq!(s.get(&[a], Some("m0"), 0, 0)["m0"].len(), 2);
        let b = tenant("b");
        s.record(&b, &L, &[md("x", 2, "")]);
        assert_eq!(s.get(&[b], None, 0, 0).len(), 1);
    }

    #[test]
    fn new_names_past_the_limit_are_refused_before_writing() {
        let s = MetricMetadataStore::default();
        let a = tenant("a");
        let l = WriteLimits {
            max_metadata_per_user: 2,
            max_metadata_per_metric: 1,
            max_metadata_length: 4,
            ..WriteLimits::default()
        };
        let two = [md("m1", 1, ""), md("m2", 1, ""), md("m1", 2, "")];
        s.check(&a, &l, &two).unwrap();
        s.record(&a, &l, &two);
        // Known names pass, a new one does not; the message names the limit.
        s.check(&a, &l, &[md("m2", 2, "")]).unwrap();
        let e = s.check(&a, &l, &[md("m3", 1, "")]).unwrap_err();
        assert_eq!(
            (e.limit, e.kind),
            ("max_metadata_per_user", LimitKind::Invalid)
        );
        assert!(
            e.message.contains("adds 1, more than the limit of 2"),
            "{e}"
        );
        // Another tenant has its own count.
        s.check(&tenant("b"), &l, &[md("m3", 1, "")]).unwrap();
        // One entry per metric, the newest; help and unit cut at max_metadata_length.
        s.record(&a, &l, &[md("m1", 1, "a long help"), md("m3", 1, "")]);
        let got = s.get(std::slice::from_ref(&a), None, 0, 0);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["m1", "m2"]);
        assert_eq!(got["m1"].len(), 1);
        assert_eq!(got["m1"][0].help, "a lo");
    }
}
