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
use hypnos_ingest::WriteStats;
use hypnos_schemas::TenantId;

use super::AppRef;
use super::errors::{TenantError, WriteError};
use super::tenant::tenant_from_headers;

/// Bodies up to this size are decoded on the request's task; larger ones on the blocking
/// pool, so that a big snappy block does not stall other requests.
const INLINE_DECODE_BYTES: usize = 1 << 20;

pub(super) async fn receive(
    State(state): State<AppRef>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let tenant = tenant_from_headers(&headers);
    let tenant_label = match &tenant {
        Ok(t) => t.to_string(),
        Err(_) => "invalid".into(),
    };
    match write(&state, tenant, &headers, body).await {
        Ok(stats) => {
            tracing::debug!(
                series = stats.series,
                samples = stats.samples,
                duplicates = stats.duplicates,
                "remote write accepted"
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            state
                .metrics
                .receive_rejected
                .with_label_values(&[tenant_label.as_str(), e.reason()])
                .inc();
            e.into_response()
        }
    }
}

async fn write(
    state: &AppRef,
    tenant: Result<TenantId, TenantError>,
    headers: &HeaderMap,
    body: Body,
) -> Result<WriteStats, WriteError> {
    let tenant = tenant?;
    let body = read_body(headers, body, state.max_request_bytes).await?;
    let encoding = header_str(headers, header::CONTENT_ENCODING);
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let req = if body.len() <= INLINE_DECODE_BYTES {
        state.ingester.decode(encoding, content_type, &body)?
    } else {
        let ingester = Arc::clone(&state.ingester);
        let (encoding, content_type) =
            (encoding.map(str::to_owned), content_type.map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            ingester.decode(encoding.as_deref(), content_type.as_deref(), &body)
        })
        .await
        .map_err(|e| WriteError::Body(format!("decoding task failed: {e}")))??
    };
    Ok(state.ingester.write(&tenant, req).await?)
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
