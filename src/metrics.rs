//! The binary's own metrics (HTTP, remote-write rejections, queries, per-tenant usage),
//! registered into the shared registry that `/metrics` serves next to the ingester's.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metrics of the HTTP layer.
#[derive(Clone, Debug)]
pub(crate) struct HttpMetrics {
    /// `hypnos_http_requests_total{handler,code}`.
    pub(crate) requests: IntCounterVec,
    /// `hypnos_http_request_duration_seconds{handler}`.
    pub(crate) duration: HistogramVec,
    /// `hypnos_receive_rejected_total{tenant,reason}`.
    pub(crate) receive_rejected: IntCounterVec,
    /// `hypnos_queries_total{tenant,kind}`.
    pub(crate) queries: IntCounterVec,
    /// `hypnos_query_errors_total{tenant,error_type}`.
    pub(crate) query_errors: IntCounterVec,
    /// `hypnos_query_rejected_total{tenant,reason}`: refused by authentication or a limit.
    pub(crate) query_rejected: IntCounterVec,
    /// `hypnos_query_samples_scanned_total{tenant}`.
    pub(crate) query_samples: IntCounterVec,
    /// `hypnos_receive_bytes_total{tenant}`: compressed remote-write bodies.
    pub(crate) receive_bytes: IntCounterVec,
    /// `hypnos_receive_rejected_samples_total{tenant,reason}`.
    pub(crate) receive_rejected_samples: IntCounterVec,
    /// `hypnos_tenant_stored_bytes{tenant,resolution}`: block files in the object store.
    pub(crate) stored_bytes: IntGaugeVec,
    /// `hypnos_tenant_blocks{tenant}`.
    pub(crate) stored_blocks: IntGaugeVec,
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
        Ok(Self {
            requests: counter(
                "hypnos_http_requests_total",
                "HTTP requests answered, by handler and status code.",
                &["handler", "code"],
            )?,
            duration,
            receive_rejected: counter(
                "hypnos_receive_rejected_total",
                "Remote-write requests refused, by tenant and reason.",
                &["tenant", "reason"],
            )?,
            queries: counter(
                "hypnos_queries_total",
                "Queries received, by tenant and kind (instant, range, series, labels, label_values).",
                &["tenant", "kind"],
            )?,
            query_errors: counter(
                "hypnos_query_errors_total",
                "Queries that failed, by tenant and Prometheus errorType.",
                &["tenant", "error_type"],
            )?,
            query_rejected: counter(
                "hypnos_query_rejected_total",
                "Queries refused before or while running, by tenant and reason (unauthenticated, forbidden, invalid_tenant, or the limit's name).",
                &["tenant", "reason"],
            )?,
            query_samples: counter(
                "hypnos_query_samples_scanned_total",
                "Samples read by queries, by tenant.",
                &["tenant"],
            )?,
            receive_bytes: counter(
                "hypnos_receive_bytes_total",
                "Bytes of remote-write bodies received (compressed), by tenant.",
                &["tenant"],
            )?,
            receive_rejected_samples: counter(
                "hypnos_receive_rejected_samples_total",
                "Samples of refused remote-write requests (when the body could be decoded), by tenant and reason.",
                &["tenant", "reason"],
            )?,
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
