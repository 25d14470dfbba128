//! The HTTP API (`hypnos-api`): Prometheus' remote-write receiver and query API, Thanos'
//! paths, health, readiness and `/metrics`; the servers it runs on (`serve.rs` for HTTP,
//! [`grpc`] for gRPC, both with the connection limits of [`ServeLimits`]); and the building
//! of its state from an [`ApiConfig`] (`state.rs`). Every request runs in a span carrying its tenant and is counted
//! in the HTTP metrics.
//!
//! Handlers are grouped by concern: `remote_write.rs`, `query.rs` (PromQL), `metadata.rs`
//! (series, labels, label values), `exemplars.rs` (exemplars of a query's selectors),
//! `metric_metadata.rs` (metric metadata from remote write),
//! `admin.rs` (flush, build info, health, metrics),
//! `status.rs` (per-tenant usage). `errors.rs` maps every error to its
//! [`hypnos_schemas::ErrorCode`], which gives the status and `errorType`;
//! `json.rs` writes Prometheus' JSON; `params.rs` reads requests; `tenant.rs` turns the
//! caller's identity ([`hypnos_tenancy::auth`]) into the tenants a handler may touch and
//! admits queries under their tenants' limits ([`hypnos_tenancy::limits`]); `metrics.rs`
//! holds the API's metrics (bounded tenant labels).
//!
//! Identity applies to every `/api/v1` endpoint except `status/buildinfo`; health,
//! readiness and `/metrics` are open (probes and scrapers carry no tenant).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hypnos_engine::{BlockCatalog, QueryEngine};
use hypnos_ingest::Ingester;
use hypnos_planner::MaxSourceResolution;
use hypnos_schemas::SeriesSource;
use tracing::Instrument;

use hypnos_tenancy::{Authenticator, Limits, RELOAD_INTERVAL};

use crate::metrics::HttpMetrics;

mod admin;
mod errors;
mod exemplars;
pub mod grpc;
mod json;
mod metadata;
mod metric_metadata;
mod metrics;
mod params;
mod query;
mod query_runtime;
mod remote_write;
mod serve;
mod state;
mod status;
mod tenant;
mod timeout_io;

pub use errors::ApiError;
pub use serve::{ServeLimits, serve};
pub use state::{
    ApiConfig, DEFAULT_BLOCK_DURATION, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_MAX_REQUEST_BYTES,
};
pub use timeout_io::TimeoutIo;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub ingester: Arc<Ingester>,
    /// Heads and blocks merged: what queries and metadata read.
    pub(crate) source: Arc<dyn SeriesSource>,
    pub(crate) engine: QueryEngine,
    pub(crate) registry: prometheus::Registry,
    pub(crate) metrics: HttpMetrics,
    /// Largest compressed remote-write body.
    pub(crate) max_request_bytes: usize,
    /// Longest a query may run (a `timeout` parameter can only shorten it).
    pub(crate) query_timeout: Duration,
    /// The `max_source_resolution` of queries that do not give one.
    pub(crate) default_max_source_resolution: MaxSourceResolution,
    /// Who may use which tenant (shared with the gRPC services).
    pub(crate) auth: Arc<Authenticator>,
    /// Per-tenant limits and query concurrency.
    pub limits: Limits,
    /// Metric metadata from remote write, per tenant (`/api/v1/metadata`).
    pub(crate) metric_metadata: metric_metadata::MetricMetadataStore,
    /// The blocks of every tenant (stored bytes for usage tracking).
    pub(crate) catalog: Arc<BlockCatalog>,
    /// Longest a request body may take to arrive (`--http.body-read-timeout`).
    pub(crate) body_read_timeout: Duration,
}

impl AppState {
    /// Starts watching the tokens and limits files; the tasks end when the state is dropped.
    pub fn spawn_reloads(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(t) = self.auth.tokens() {
            tasks.push(t.spawn_watch(RELOAD_INTERVAL));
        }
        if let Some(l) = self.limits.file() {
            tasks.push(l.spawn_watch(RELOAD_INTERVAL));
        }
        tasks
    }
}

type AppRef = Arc<AppState>;

/// The router of the whole HTTP API.
pub fn router(state: AppRef) -> Router {
    Router::new()
        .route("/api/v1/receive", post(remote_write::receive))
        .route("/api/v1/write", post(remote_write::receive))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/query_exemplars",
            get(exemplars::query_exemplars).post(exemplars::query_exemplars),
        )
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route("/api/v1/label/{name}/values", get(metadata::label_values))
        .route("/api/v1/metadata", get(metric_metadata::metadata))
        .route("/api/v1/status/buildinfo", get(admin::buildinfo))
        .route("/api/v1/status/tenants", get(status::tenants))
        .route("/api/v1/admin/flush", post(admin::flush))
        .route("/-/ready", get(admin::ready))
        .route("/-/healthy", get(admin::healthy))
        .route("/metrics", get(admin::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Remote write enforces its own limit; other bodies are small forms.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            serve::body_deadline,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// Span, metrics and a debug log line for every request.
async fn observe(State(state): State<AppRef>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    // The tenants asked for (not yet authenticated: for the log line only).
    let tenant = tenant::requested_label(req.headers());
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        path = %req.uri().path(),
        tenant = %tenant,
    );
    let start = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    state
        .metrics
        .requests
        .with_label_values(&[handler.as_str(), &status.to_string()])
        .inc();
    state
        .metrics
        .duration
        .with_label_values(&[handler.as_str()])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "answered"));
    resp
}

async fn not_found(req: Request) -> Response {
    ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::MethodNotAllowed(format!(
        "method {} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

#[cfg(test)]
mod tests;
