//! `GET /api/v1/status/tenants`: usage per tenant (samples and bytes received, rejections by
//! reason, active series, bytes stored per resolution, queries, samples scanned, query CPU
//! seconds), the same figures `/metrics` exports with a `tenant` label. [`usage`] returns
//! them as plain rows so that other front ends (a later Flight SQL `tenant_usage` table) can
//! serve them too.
//!
//! Bytes stored are the sizes of the data files (`series.parquet`, `samples.parquet`) of
//! every block in the catalog, by resolution (`raw`, `5m`, `1h`), blocks replaced by a
//! compaction and not yet deleted included (they take space until they are deleted).
//!
//! A caller sees the tenants of its scope; with `--auth=token`, admin tokens see every tenant.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::Response;
use hypnos_schemas::TenantId;
use hypnos_schemas::layout::BlockMeta;
use prometheus::proto::MetricFamily;
use serde::Serialize;

use super::errors::ApiError;
use super::tenant::ReadScope;
use super::{AppRef, json};
use hypnos_tenancy::auth::AuthMode;

/// The usage of one tenant since the process started (stored bytes and active series: now).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct TenantUsage {
    pub(crate) tenant: String,
    pub(crate) samples_received: u64,
    pub(crate) bytes_received: u64,
    /// Samples of refused requests, by reason (the limit's name, `invalid_labels`, ...).
    pub(crate) samples_rejected: BTreeMap<String, u64>,
    /// Refused remote-write requests, by reason.
    pub(crate) requests_rejected: BTreeMap<String, u64>,
    pub(crate) active_series: u64,
    pub(crate) head_samples: u64,
    pub(crate) blocks: u64,
    pub(crate) bytes_stored: u64,
    pub(crate) bytes_stored_by_resolution: BTreeMap<String, u64>,
    pub(crate) queries: u64,
    /// Reads refused, by reason.
    pub(crate) queries_rejected: BTreeMap<String, u64>,
    pub(crate) samples_scanned: u64,
    /// Thread CPU time of the tenant's reads (see [`crate::metrics`] for what counts).
    pub(crate) query_cpu_seconds: f64,
}

pub(super) async fn tenants(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
) -> Result<Response, ApiError> {
    let all = state.auth.mode() == AuthMode::Token && scope.is_admin();
    let only: Option<BTreeSet<TenantId>> =
        (!all).then(|| scope.tenants().iter().cloned().collect());
    let rows = usage(&state, only.as_ref());
    let data = serde_json::json!({ "tenants": rows });
    Ok(json::success(&data.to_string(), &[]))
}

/// The usage rows of every tenant known (or of `only`), sorted by tenant.
pub(crate) fn usage(state: &AppRef, only: Option<&BTreeSet<TenantId>>) -> Vec<TenantUsage> {
    let families = state.registry.gather();
    let mut rows: BTreeMap<String, TenantUsage> = BTreeMap::new();
    if let Some(only) = only {
        for t in only {
            row(&mut rows, Some(only), t.as_str());
        }
    }
    for_each(&families, "hypnos_receive_samples_total", |t, _, v| {
        if let Some(r) = row(&mut rows, only, t) {
            r.samples_received += v;
        }
    });
    for_each(&families, "hypnos_receive_bytes_total", |t, _, v| {
        if let Some(r) = row(&mut rows, only, t) {
            r.bytes_received += v;
        }
    });
    for_each(
        &families,
        "hypnos_receive_rejected_samples_total",
        |t, reason, v| {
            if let Some(r) = row(&mut rows, only, t) {
                *r.samples_rejected.entry(reason.into()).or_default() += v;
            }
        },
    );
    for_each(
        &families,
        "hypnos_receive_rejected_total",
        |t, reason, v| {
            if let Some(r) = row(&mut rows, only, t) {
                *r.requests_rejected.entry(reason.into()).or_default() += v;
            }
        },
    );
    for_each(&families, "hypnos_queries_total", |t, _, v| {
        if let Some(r) = row(&mut rows, only, t) {
            r.queries += v;
        }
    });
    for_each(&families, "hypnos_query_rejected_total", |t, reason, v| {
        if let Some(r) = row(&mut rows, only, t) {
            *r.queries_rejected.entry(reason.into()).or_default() += v;
        }
    });
    for_each(
        &families,
        "hypnos_query_samples_scanned_total",
        |t, _, v| {
            if let Some(r) = row(&mut rows, only, t) {
                r.samples_scanned += v;
            }
        },
    );
    for (t, series, samples) in state.ingester.head_stats() {
        if let Some(r) = row(&mut rows, only, t.as_str()) {
            r.active_series = series as u64;
            r.head_samples = samples as u64;
        }
    }
    for_each_f64(&families, "hypnos_query_cpu_seconds_total", |t, _, v| {
        if let Some(r) = row(&mut rows, only, t) {
            r.query_cpu_seconds += v;
        }
    });
    for ((t, res), s) in stored(&state.catalog.metas()) {
        if let Some(r) = row(&mut rows, only, &t) {
            r.blocks += s.blocks;
            r.bytes_stored += s.bytes;
            *r.bytes_stored_by_resolution.entry(res).or_default() += s.bytes;
        }
    }
    // Label values that are not tenants (the placeholders of `crate::metrics`, which no
    // tenant id can spell) are no tenant's usage.
    rows.into_values()
        .filter(|r| TenantId::new(&r.tenant).is_ok())
        .collect()
}

/// The row of `t`, created on first use; `None` for a tenant outside `only`.
fn row<'a>(
    rows: &'a mut BTreeMap<String, TenantUsage>,
    only: Option<&BTreeSet<TenantId>>,
    t: &str,
) -> Option<&'a mut TenantUsage> {
    if let Some(only) = only
        && !only.iter().any(|o| o.as_str() == t)
    {
        return None;
    }
    Some(rows.entry(t.to_string()).or_insert_with(|| TenantUsage {
        tenant: t.to_string(),
        ..TenantUsage::default()
    }))
}

/// Calls `f(tenant, reason, value)` for every series of the integer counter family `name`
/// (`reason` is "" when the family has no such label).
fn for_each(families: &[MetricFamily], name: &str, mut f: impl FnMut(&str, &str, u64)) {
    for_each_f64(families, name, |t, reason, v| {
        f(t, reason, v.max(0.0) as u64)
    });
}

/// [`for_each`] for a float counter.
fn for_each_f64(families: &[MetricFamily], name: &str, mut f: impl FnMut(&str, &str, f64)) {
    let Some(fam) = families.iter().find(|f| f.name() == name) else {
        return;
    };
    for m in fam.get_metric() {
        let label = |n: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == n)
                .map_or("", |l| l.value())
        };
        let v = m.get_counter().get_value();
        f(label("tenant"), label("reason"), v);
    }
}

/// `raw`, `5m`, `1h`, or the resolution in milliseconds.
fn resolution(ms: i64) -> String {
    match ms {
        0 => "raw".into(),
        300_000 => "5m".into(),
        3_600_000 => "1h".into(),
        other => format!("{other}ms"),
    }
}

/// Blocks and data bytes of one tenant at one resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) blocks: u64,
    pub(crate) bytes: u64,
}

/// What `metas` store, by tenant and resolution name ([`resolution`]).
pub(crate) fn stored(metas: &[BlockMeta]) -> BTreeMap<(String, String), Stored> {
    let mut out: BTreeMap<(String, String), Stored> = BTreeMap::new();
    for m in metas {
        let s = out
            .entry((m.tenant.clone(), resolution(m.resolution_ms)))
            .or_default();
        s.blocks += 1;
        s.bytes += m.data_bytes();
    }
    out
}

/// Sets the stored-bytes, block and skipped-block gauges from the catalog (called before `/metrics` is
/// encoded, so tenants whose blocks are gone disappear).
pub(crate) fn refresh_storage_gauges(state: &AppRef) {
    let m = &state.metrics;
    m.stored_bytes.reset();
    m.stored_blocks.reset();
    for ((tenant, res), s) in stored(&state.catalog.metas()) {
        m.stored_bytes
            .with_label_values(&[tenant.as_str(), res.as_str()])
            .set(i64::try_from(s.bytes).unwrap_or(i64::MAX));
        m.stored_blocks
            .with_label_values(&[tenant.as_str()])
            .add(i64::try_from(s.blocks).unwrap_or(i64::MAX));
    }
    m.blocks_skipped.reset();
    for reason in [
        "unreadable",
        "invalid_meta",
        "unsupported_version",
        "tenant_mismatch",
    ] {
        m.blocks_skipped.with_label_values(&[reason]);
    }
    for b in state.catalog.skipped() {
        m.blocks_skipped.with_label_values(&[b.reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(tenant: &str, resolution_ms: i64, sizes: &[u64]) -> BlockMeta {
        let files: Vec<serde_json::Value> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({"name": format!("f{i}"), "size_bytes": s}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "ulid": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "tenant": tenant,
            "min_time": 0,
            "max_time": 1,
            "resolution_ms": resolution_ms,
            "level": 1,
            "num_series": 1,
            "num_samples": 1,
            "schema_version": 1,
            "source": "head",
            "files": files,
        }))
        .unwrap()
    }

    #[test]
    fn stored_bytes_by_tenant_and_resolution() {
        let got = stored(&[
            meta("a", 0, &[10, 5]),
            meta("a", 0, &[1]),
            meta("a", 300_000, &[7]),
            meta("a", 3_600_000, &[3, 3]),
            meta("b", 300_000, &[100]),
        ]);
        let key = |t: &str, r: &str| (t.to_string(), r.to_string());
        let s = |blocks, bytes| Stored { blocks, bytes };
        assert_eq!(
            got,
            BTreeMap::from([
                (key("a", "raw"), s(2, 16)),
                (key("a", "5m"), s(1, 7)),
                (key("a", "1h"), s(1, 6)),
                (key("b", "5m"), s(1, 100)),
            ])
        );
    }

    #[test]
    fn resolutions() {
        assert_eq!(resolution(0), "raw");
        assert_eq!(resolution(300_000), "5m");
        assert_eq!(resolution(3_600_000), "1h");
        assert_eq!(resolution(10), "10ms");
    }
}
