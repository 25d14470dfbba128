//! The API's own metrics (HTTP, remote-write rejections, queries, per-tenant usage),
//! registered into the shared registry that `/metrics` serves next to the ingester's.
//!
//! Query CPU time (`hypnos_query_cpu_seconds_total{tenant}`) is measured by
//! [`hypnos_tenancy::usage`]: the thread CPU time spent inside each poll of a read's future
//! (parsing, planning, DataFusion execution, reading heads, decoding Parquet, shaping the JSON
//! answer; the engine runs with one partition and spawns no tasks of its own, so the
//! operators run inside those polls). Not counted: file and object-store IO that
//! `object_store` runs on tokio's blocking pool or in its HTTP client, writing the answer to
//! the socket, the WAL writer thread, and the time a query waits.
//!
//! Tenant labels are bounded: only tenants that hold data (heads or blocks) or that the
//! tokens or limits file names become `tenant` label values ([`TenantLabels`]); every other
//! tenant id is counted under [`OTHER_TENANT`], and requests whose tenant is not known at
//! all under [`UNAUTHENTICATED_TENANT`] or [`INVALID_TENANT`]. The placeholders contain
//! `<` and `>`, which no tenant id may contain, so they never collide with a tenant.

use std::sync::{Arc, OnceLock};

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{
    CounterVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The `tenant` label of tenants that are not known (hold no data, named by no file).
pub(crate) const OTHER_TENANT: &str = "<other>";
/// The `tenant` label of requests refused before a tenant could be trusted (no or an
/// unknown token).
pub(crate) const UNAUTHENTICATED_TENANT: &str = "<unauthenticated>";
/// The `tenant` label of requests whose tenant header is not a valid tenant id.
pub(crate) const INVALID_TENANT: &str = "<invalid>";

/// Says whether a tenant id may be a label value on its own.
type IsKnown = dyn Fn(&str) -> bool + Send + Sync;

/// Decides which tenant ids become `tenant` label values (see the module). Until a
/// provider is installed ([`TenantLabels::set_known`]) every valid tenant id does.
#[derive(Clone, Default)]
pub(crate) struct TenantLabels(Arc<OnceLock<Box<IsKnown>>>);

impl std::fmt::Debug for TenantLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantLabels")
    }
}

impl TenantLabels {
    /// Installs the provider of known tenants (once; later calls are ignored).
    pub(crate) fn set_known(&self, known: impl Fn(&str) -> bool + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(known));
    }

    /// The label value for `tenant`: itself when known, a placeholder kept as is, else
    /// [`OTHER_TENANT`].
    pub(crate) fn label<'a>(&self, tenant: &'a str) -> &'a str {
        if matches!(
            tenant,
            OTHER_TENANT | UNAUTHENTICATED_TENANT | INVALID_TENANT
        ) {
            return tenant;
        }
        if hypnos_schemas::TenantId::new(tenant).is_err() {
            return OTHER_TENANT;
        }
        match self.0.get() {
            Some(known) if !known(tenant) => OTHER_TENANT,
            _ => tenant,
        }
    }
}

/// A metric vector whose first label is `tenant`, bounded by [`TenantLabels`]: the same
/// `with_label_values` as prometheus' vectors, with the tenant replaced by its label.
#[derive(Clone, Debug)]
pub(crate) struct ByTenant<V> {
    vec: V,
    labels: TenantLabels,
}

impl<P: MetricVecBuilder> ByTenant<MetricVec<P>> {
    /// The child of `values` (the first being the tenant).
    pub(crate) fn with_label_values<V: AsRef<str> + std::fmt::Debug>(&self, values: &[V]) -> P::M {
        let mut v: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        if let Some(t) = v.first_mut() {
            *t = self.labels.label(t);
        }
        self.vec.with_label_values(&v)
    }
}

/// Metrics of the HTTP layer.
#[derive(Clone, Debug)]
pub(crate) struct HttpMetrics {
    /// Which tenants the `tenant` labels below may name.
    pub(crate) tenant_labels: TenantLabels,
    /// `hypnos_http_requests_total{handler,code}`.
    pub(crate) requests: IntCounterVec,
    /// `hypnos_http_request_duration_seconds{handler}`.
    pub(crate) duration: HistogramVec,
    /// `hypnos_receive_rejected_total{tenant,reason}`.
    pub(crate) receive_rejected: ByTenant<IntCounterVec>,
    /// `hypnos_queries_total{tenant,kind}`.
    pub(crate) queries: ByTenant<IntCounterVec>,
    /// `hypnos_query_errors_total{tenant,error_type}`.
    pub(crate) query_errors: ByTenant<IntCounterVec>,
    /// `hypnos_query_rejected_total{tenant,reason}`: refused by authentication or a limit.
    pub(crate) query_rejected: ByTenant<IntCounterVec>,
    /// `hypnos_query_samples_scanned_total{tenant}`.
    pub(crate) query_samples: ByTenant<IntCounterVec>,
    /// `hypnos_query_cpu_seconds_total{tenant}`: thread CPU time of reads (see the module).
    pub(crate) query_cpu: ByTenant<CounterVec>,
    /// `hypnos_queries_running{tenant}`: reads admitted and not yet answered.
    pub(crate) queries_running: ByTenant<IntGaugeVec>,
    /// `hypnos_receive_bytes_total{tenant}`: compressed remote-write bodies.
    pub(crate) receive_bytes: ByTenant<IntCounterVec>,
    /// `hypnos_receive_rejected_samples_total{tenant,reason}`.
    pub(crate) receive_rejected_samples: ByTenant<IntCounterVec>,
    /// `hypnos_tenant_stored_bytes{tenant,resolution}`: block files in the object store.
    pub(crate) stored_bytes: IntGaugeVec,
    /// `hypnos_tenant_blocks{tenant}`.
    pub(crate) stored_blocks: IntGaugeVec,
    /// `hypnos_catalog_blocks_skipped{reason}`: blocks of the bucket not served.
    pub(crate) blocks_skipped: IntGaugeVec,
}

impl HttpMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "hypnos_http_request_duration_seconds",
                "Time to answer HTTP requests, by handler.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                120.0,
            ]),
            &["handler"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let tenant_labels = TenantLabels::default();
        let by_tenant = |vec| ByTenant {
            vec,
            labels: tenant_labels.clone(),
        };
        Ok(Self {
            tenant_labels: tenant_labels.clone(),
            requests: counter(
                "hypnos_http_requests_total",
                "HTTP requests answered, by handler and status code.",
                &["handler", "code"],
            )?,
            duration,
            receive_rejected: by_tenant(counter(
                "hypnos_receive_rejected_total",
                "Remote-write requests refused, by tenant and reason.",
                &["tenant", "reason"],
            )?),
            queries: by_tenant(counter(
                "hypnos_queries_total",
                "Queries received, by tenant and kind (instant, range, series, labels, label_values, metadata).",
                &["tenant", "kind"],
            )?),
            query_errors: by_tenant(counter(
                "hypnos_query_errors_total",
                "Queries that failed, by tenant and Prometheus errorType.",
                &["tenant", "error_type"],
            )?),
            query_rejected: by_tenant(counter(
                "hypnos_query_rejected_total",
                "Queries refused before or while running, by tenant and reason (unauthenticated, forbidden, invalid_tenant, or the limit's name).",
                &["tenant", "reason"],
            )?),
            query_samples: by_tenant(counter(
                "hypnos_query_samples_scanned_total",
                "Samples read by queries, by tenant.",
                &["tenant"],
            )?),
            query_cpu: {
                let c = CounterVec::new(
                    Opts::new(
                        "hypnos_query_cpu_seconds_total",
                        "CPU time spent evaluating reads (queries, series, labels), by tenant.",
                    ),
                    &["tenant"],
                )?;
                registry.register(Box::new(c.clone()))?;
                ByTenant {
                    vec: c,
                    labels: tenant_labels.clone(),
                }
            },
            queries_running: ByTenant {
                vec: gauge(
                    "hypnos_queries_running",
                    "Reads admitted and still running, by tenant (max_concurrent_queries applies to it).",
                    &["tenant"],
                )?,
                labels: tenant_labels.clone(),
            },
            receive_bytes: by_tenant(counter(
                "hypnos_receive_bytes_total",
                "Bytes of remote-write bodies received (compressed), by tenant.",
                &["tenant"],
            )?),
            receive_rejected_samples: by_tenant(counter(
                "hypnos_receive_rejected_samples_total",
                "Samples of refused remote-write requests (when the body could be decoded), by tenant and reason.",
                &["tenant", "reason"],
            )?),
            stored_bytes: gauge(
                "hypnos_tenant_stored_bytes",
                "Bytes of block files in the object store, by tenant and resolution (raw, 5m, 1h).",
                &["tenant", "resolution"],
            )?,
            stored_blocks: gauge(
                "hypnos_tenant_blocks",
                "Blocks in the object store, by tenant.",
                &["tenant"],
            )?,
            blocks_skipped: gauge(
                "hypnos_catalog_blocks_skipped",
                "Blocks of the bucket not served because their meta.json cannot be read or parsed (unreadable, invalid_meta, unsupported_version) or names another tenant or block than its path (tenant_mismatch, ulid_mismatch), by reason; the log says which.",
                &["reason"],
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    #[test]
    fn registers_and_encodes() {
        let r = Registry::new();
        let m = HttpMetrics::new(&r).unwrap();
        m.requests
            .with_label_values(&["/api/v1/query", "200"])
            .inc();
        m.duration
            .with_label_values(&["/api/v1/query"])
            .observe(0.01);
        let mut out = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#"hypnos_http_requests_total{code="200",handler="/api/v1/query"} 1"#)
        );
        assert!(text.contains("hypnos_http_request_duration_seconds_bucket"));
        // A second registration into the same registry is an error, not a silent duplicate.
        assert!(HttpMetrics::new(&r).is_err());
    }
}
