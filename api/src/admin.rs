//! Operations endpoints: flush, build info, readiness, health and `/metrics`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, TextEncoder};

use super::errors::{ApiError, MetricsError};
use super::tenant::{AdminScope, MetricsScope};
use super::{AppRef, json};

/// `POST /api/v1/admin/flush`: cuts every head now and answers once the blocks are written,
/// listing their metas. It touches every tenant: with `--auth=token` only admin tokens may,
/// in the other modes only when `--web.enable-admin-api` is given.
pub(super) async fn flush(
    State(state): State<AppRef>,
    AdminScope(admin): AdminScope,
) -> Result<Response, ApiError> {
    let blocks = state.ingester.flush().await.map_err(ApiError::Flush)?;
    tracing::info!(
        blocks = blocks.len(),
        by = admin.principal().unwrap_or("-"),
        "flushed on request"
    );
    let data = serde_json::json!({ "blocks": blocks });
    Ok(json::success(&data.to_string(), &[]))
}

/// `GET /api/v1/status/buildinfo`, with Prometheus' fields (Grafana reads `version`).
pub(super) async fn buildinfo() -> Response {
    let data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("HYPNOS_GIT_REVISION").unwrap_or("unknown"),
        "branch": option_env!("HYPNOS_GIT_BRANCH").unwrap_or("unknown"),
        "buildUser": "unknown",
        "buildDate": "unknown",
        "goVersion": "n/a (hypnos is written in Rust)",
        "application": "hypnos",
    });
    json::success(&data.to_string(), &[])
}

pub(super) async fn ready() -> Response {
    text(StatusCode::OK, "Hypnos is Ready.\n".into())
}

pub(super) async fn healthy() -> Response {
    text(StatusCode::OK, "Hypnos is Healthy.\n".into())
}

/// `GET /metrics`: every metric of the shared registry (ingester and HTTP layer). With
/// `--auth=token` only tokens with `metrics: true` or `admin: true` may read it.
pub(super) async fn metrics(State(state): State<AppRef>, _: MetricsScope) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    super::status::refresh_storage_gauges(&state);
    match encoder.encode(&state.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_str(encoder.format_type())
                    .unwrap_or(HeaderValue::from_static("text/plain")),
            )],
            buf,
        )
            .into_response(),
        Err(e) => MetricsError(e).into_response(),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
