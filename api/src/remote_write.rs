//! `POST /api/v1/receive` and `/api/v1/write`: Prometheus remote write 1.0. Answers 204 once
//! the samples are durable; errors are plain text, 4xx for bad input (never retried by
//! senders) and 5xx for failures of ours (retried; writes are idempotent).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hypnos_ingest::{IngestError, Reservation, WriteStats};
use hypnos_schemas::TenantId;

use super::AppRef;
use super::errors::WriteError;
use super::params::now_ms;
use hypnos_tenancy::auth::{Access, AuthError, Scope};

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
    // The body counts against the decoding budget from its first byte; decoding adds to
    // the same reservation, held until the write is done.
    let mut reservation = state.ingester.body_reservation();
    let body = read_body(headers, body, state.max_request_bytes, &mut reservation).await?;
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
        let decoded = match st.ingester.decode_reserved(
            encoding.as_deref(),
            content_type.as_deref(),
            &body,
            &task_limits,
            reservation,
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
/// the sender declares it), with the bytes it holds reserved in `reservation` (the decoding
/// budget): the declared length before reading, else the buffer's capacity as chunks
/// arrive. Past the budget the request is refused (429 with `Retry-After`, 413 when the
/// body alone exceeds the whole budget) before more of it is read.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Bytes, WriteError> {
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(WriteError::BodyTooLarge { limit });
    }
    let budget_error = |e| WriteError::Ingest(IngestError::Limit(e));
    // `declared` is at most `limit` here; hyper ends the body at the declared length.
    let declared = declared.map(|n| n as usize);
    let mut buf = BytesMut::new();
    if let Some(n) = declared {
        reservation.grow(n).map_err(budget_error)?;
        buf.reserve(n);
    }
    let mut body = Limited::new(body, limit);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) if e.is::<LengthLimitError>() => {
                return Err(WriteError::BodyTooLarge { limit });
            }
            Err(e) => return Err(WriteError::Body(e.to_string())),
        };
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        if declared.is_none() {
            let need = buf.len() + chunk.len();
            if need > buf.capacity() {
                // Grow the reservation by what the buffer will hold, before it holds it.
                let cap = need.max(buf.capacity().saturating_mul(2)).min(limit);
                reservation
                    .grow(cap.saturating_sub(reservation.bytes()))
                    .map_err(budget_error)?;
                buf.reserve(cap - buf.len());
            }
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
