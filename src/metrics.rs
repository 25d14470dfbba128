//! The binary's own metrics (HTTP, remote-write rejections, queries, per-tenant usage),
//! registered into the shared registry that `/metrics` serves next to the ingester's, and
//! the measurement of the CPU time queries take ([`cpu_time_of`]).
//!
//! Query CPU time (`hypnos_query_cpu_seconds_total{tenant}`) is the thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) spent inside each poll of a read's future: parsing, planning,
//! DataFusion execution (the engine runs with one partition and spawns no tasks of its own,
//! so the operators run inside those polls), reading heads, decoding Parquet, and shaping the
//! JSON answer. Not counted: file and object-store IO that `object_store` runs on tokio's
//! blocking pool or in its HTTP client, writing the answer to the socket, the WAL writer
//! thread, and the time a query waits (for IO, a lock or a CPU). A read of several tenants
//! splits its CPU time among them in proportion to the samples it scanned of each (evenly
//! when it scanned none).
//!
//! Tenant labels are bounded: only tenants that hold data (heads or blocks) or that the
//! tokens or limits file names become `tenant` label values ([`TenantLabels`]); every other
//! tenant id is counted under [`OTHER_TENANT`], and requests whose tenant is not known at
//! all under [`UNAUTHENTICATED_TENANT`] or [`INVALID_TENANT`]. The placeholders contain
//! `<` and `>`, which no tenant id may contain, so they never collide with a tenant.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

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

/// CPU time the calling thread has used so far.
#[cfg(unix)]
pub(crate) fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Thread CPU time is not measured on this platform: always zero.
#[cfg(not(unix))]
pub(crate) fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

/// Runs `fut` and returns its output with the thread CPU time its polls took (wherever
/// the runtime ran them: each poll is measured on its own thread).
pub(crate) async fn cpu_time_of<F: Future>(fut: F) -> (F::Output, Duration) {
    let mut fut = std::pin::pin!(fut);
    let mut spent = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let start = thread_cpu_time();
        let r = fut.as_mut().poll(cx);
        spent += thread_cpu_time().saturating_sub(start);
        r
    })
    .await;
    (out, spent)
}

/// Splits `total` among tenants in proportion to `weights` (evenly when they are all 0).
pub(crate) fn split_by_weight<'a, T>(
    total: Duration,
    weights: &'a [(T, u64)],
) -> impl Iterator<Item = (&'a T, f64)> + 'a {
    let secs = total.as_secs_f64();
    let sum: u64 = weights.iter().map(|(_, w)| *w).sum();
    let n = weights.len().max(1) as f64;
    weights.iter().map(move |(t, w)| {
        let share = if sum == 0 {
            secs / n
        } else {
            secs * (*w as f64) / (sum as f64)
        };
        (t, share)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    #[tokio::test]
    async fn cpu_time_counts_work_not_waiting() {
        // Work: hashing until the thread clock has moved by at least 5 ms.
        let (x, busy) = cpu_time_of(async {
            let start = thread_cpu_time();
            let mut x = 0u64;
            while thread_cpu_time() - start < Duration::from_millis(5) {
                for i in 0..10_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
                }
            }
            x
        })
        .await;
        std::hint::black_box(x);
        assert!(busy >= Duration::from_millis(5), "{busy:?}");
        // Waiting: a 100 ms sleep costs next to no CPU.
        let ((), idle) = cpu_time_of(tokio::time::sleep(Duration::from_millis(100))).await;
        assert!(idle < Duration::from_millis(50), "{idle:?}");
    }

    #[test]
    fn cpu_split_by_samples() {
        let s = Duration::from_secs(3);
        let w = [("a", 1u64), ("b", 2)];
        let got: Vec<(&&str, f64)> = split_by_weight(s, &w).collect();
        assert_eq!(got, [(&"a", 1.0), (&"b", 2.0)]);
        let w = [("a", 0u64), ("b", 0)];
        let got: Vec<f64> = split_by_weight(s, &w).map(|(_, v)| v).collect();
        assert_eq!(got, [1.5, 1.5]);
        let empty: [(&str, u64); 0] = [];
        assert_eq!(split_by_weight(s, &empty).count(), 0);
    }

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
