//! `POST /api/v1/receive` and `/api/v1/write`: Prometheus remote write 1.0. Answers 204 once
//! the samples are durable; errors are plain text, 4xx for bad input (never retried by
//! senders) and 5xx for failures of ours (retried; writes are idempotent).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hypnos_ingest::{IngestError, WriteStats};
use hypnos_schemas::TenantId;

use super::AppRef;
use super::errors::WriteError;
use super::params::now_ms;
use crate::auth::{Access, AuthError, Scope};

pub(super) async fn receive(
    State(state): State<AppRef>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let scope = state.auth.authenticate(&headers, Access::Write);
    // Unauthenticated callers are not trusted to name a tenant in a metric label.
    let tenant_label = match &scope {
        Ok(s) => s.first().to_string(),
        Err(e) => super::tenant::rejection_label(e).to_string(),
    };
    let mut samples = None;
    match write(&state, scope, &headers, body, &mut samples).await {
        Ok(stats) => {
            tracing::debug!(
                tenant = %tenant_label,
                series = stats.series,
                samples = stats.samples,
                duplicates = stats.duplicates,
                "remote write accepted"
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            let labels = [tenant_label.as_str(), e.reason()];
            state
                .metrics
                .receive_rejected
                .with_label_values(&labels)
                .inc();
            if let Some(n) = samples {
                state
                    .metrics
                    .receive_rejected_samples
                    .with_label_values(&labels)
                    .inc_by(n as u64);
            }
            e.into_response()
        }
    }
}

/// Authenticates, reads, decodes and writes under the tenant's limits; `samples` is set to
/// the request's sample count (floats and histograms) once it is decoded (for the rejection
/// metrics).
async fn write(
    state: &AppRef,
    scope: Result<Scope, AuthError>,
    headers: &HeaderMap,
    body: Body,
    samples: &mut Option<usize>,
) -> Result<WriteStats, WriteError> {
    let tenant: TenantId = scope?.first().clone();
    let body = read_body(headers, body, state.max_request_bytes).await?;
    state
        .metrics
        .receive_bytes
        .with_label_values(&[tenant.as_str()])
        .inc_by(body.len() as u64);
    let encoding = header_str(headers, header::CONTENT_ENCODING).map(str::to_owned);
    let content_type = header_str(headers, header::CONTENT_TYPE).map(str::to_owned);
    let limits = state.limits.get().for_tenant(&tenant).write.clone();
    // Decompression, decoding, validation and the WAL encoding are CPU-bound: off the async
    // workers. The decoding budget bounds how much memory these tasks hold together.
    let st = Arc::clone(state);
    let now = now_ms();
    let task_limits = limits.clone();
    let (count, prepared) = tokio::task::spawn_blocking(move || {
        let decoded = match st.ingester.decode_limited(
            encoding.as_deref(),
            content_type.as_deref(),
            &body,
            &task_limits,
        ) {
            Ok(d) => d,
            Err(e) => return (None, Err(e)),
        };
        drop(body);
        let count: usize = decoded
            .req
            .timeseries
            .iter()
            .map(|t| t.samples.len() + t.histograms.len())
            .sum();
        // Metadata names past the tenant's limit refuse the request before it takes
        // anything from the ingestion rate or the log.
        let prepared = st
            .metric_metadata
            .check(&tenant, &task_limits, &decoded.req.metadata)
            .map_err(IngestError::from)
            .and_then(|()| st.ingester.prepare(&tenant, decoded, &task_limits, now));
        (Some(count), prepared)
    })
    .await
    .map_err(|e| WriteError::Body(format!("decoding task failed: {e}")))?;
    *samples = count;
    let mut prepared = prepared?;
    let metadata = prepared.take_metadata();
    let tenant = prepared.tenant().clone();
    let stats = state.ingester.commit(prepared).await?;
    // Only an accepted request's metadata is kept.
    state.metric_metadata.record(&tenant, &limits, &metadata);
    Ok(stats)
}

/// The body, refused with 413 past `limit` bytes (by `Content-Length` before reading when
/// the sender declares it).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, WriteError> {
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(WriteError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(WriteError::BodyTooLarge { limit }),
        Err(e) => Err(WriteError::Body(e.to_string())),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
