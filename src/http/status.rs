//! `GET /api/v1/status/tenants`: usage per tenant (samples and bytes received, rejections by
//! reason, active series, bytes stored per resolution, queries, samples scanned), the same
//! figures `/metrics` exports with a `tenant` label. [`usage`] returns them as plain rows so
//! that other front ends (a later Flight SQL `tenant_usage` table) can serve them too.
//!
//! A caller sees the tenants of its scope; with `--auth=token`, admin tokens see every tenant.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::Response;
use hypnos_schemas::TenantId;
use prometheus::proto::MetricFamily;
use serde::Serialize;

use super::errors::ApiError;
use super::tenant::ReadScope;
use super::{AppRef, json};
use crate::auth::AuthMode;

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
    for m in state.catalog.metas() {
        if let Some(r) = row(&mut rows, only, &m.tenant) {
            let bytes: u64 = m.files.iter().map(|f| f.size_bytes).sum();
            r.blocks += 1;
            r.bytes_stored += bytes;
            *r.bytes_stored_by_resolution
                .entry(resolution(m.resolution_ms))
                .or_default() += bytes;
        }
    }
    // Label values that are not tenants ("unknown", "invalid") are no tenant's usage.
    rows.into_values()
        .filter(|r| {
            TenantId::new(&r.tenant).is_ok() && r.tenant != "unknown" && r.tenant != "invalid"
        })
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

/// Calls `f(tenant, reason, value)` for every series of the counter family `name`
/// (`reason` is "" when the family has no such label).
fn for_each(families: &[MetricFamily], name: &str, mut f: impl FnMut(&str, &str, u64)) {
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
        f(label("tenant"), label("reason"), v.max(0.0) as u64);
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

/// Sets the stored-bytes and block gauges from the catalog (called before `/metrics` is
/// encoded, so tenants whose blocks are gone disappear).
pub(crate) fn refresh_storage_gauges(state: &AppRef) {
    let m = &state.metrics;
    m.stored_bytes.reset();
    m.stored_blocks.reset();
    for meta in state.catalog.metas() {
        let bytes: u64 = meta.files.iter().map(|f| f.size_bytes).sum();
        m.stored_bytes
            .with_label_values(&[meta.tenant.as_str(), &resolution(meta.resolution_ms)])
            .add(bytes as i64);
        m.stored_blocks
            .with_label_values(&[meta.tenant.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions() {
        assert_eq!(resolution(0), "raw");
        assert_eq!(resolution(300_000), "5m");
        assert_eq!(resolution(3_600_000), "1h");
        assert_eq!(resolution(10), "10ms");
    }
}
