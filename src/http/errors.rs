//! The one place where every error of the HTTP API gets its status and Prometheus
//! `errorType`: query errors, parameter errors, tenant errors (JSON envelope), and the
//! remote-write errors (plain text, as Prometheus' receiver answers).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hypnos_ingest::{IngestError, LimitKind};
use hypnos_planner::QueryError;
use hypnos_schemas::SchemaError;
use thiserror::Error;

use crate::auth::AuthError;

use super::json;

/// An error of the JSON API, answered with Prometheus' error envelope.
#[derive(Debug, Error)]
pub(crate) enum ApiError {
    /// An invalid parameter or request: 400 `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// Authentication or authorisation failed: 401 (with `WWW-Authenticate: Bearer`), 403,
    /// or 400 for invalid tenant headers.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A read limit of the tenant: 422 (series, samples, range), 429 (concurrency, with
    /// `Retry-After`) or 503 (timeout); the message names the limit.
    #[error("limit {limit} exceeded: {message}")]
    Limit {
        limit: &'static str,
        status: StatusCode,
        message: String,
    },
    /// A query failed; status and type come from [`QueryError`].
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Reading series from storage failed: 500 `internal`.
    #[error("reading series: {0}")]
    Storage(#[from] SchemaError),
    /// Flushing heads failed: 500 `internal`.
    #[error("flush failed: {0}")]
    Flush(#[source] IngestError),
    /// No such route: 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method: 405 `bad_data`.
    #[error("{0}")]
    MethodNotAllowed(String),
}

impl ApiError {
    /// `invalid parameter "<name>": <message>`, as Prometheus words parameter errors.
    pub(crate) fn invalid_param(name: &str, message: impl std::fmt::Display) -> Self {
        ApiError::BadData(format!("invalid parameter {name:?}: {message}"))
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadData(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(e) => auth_status(e),
            ApiError::Limit { status, .. } => *status,
            ApiError::Query(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Storage(_) | ApiError::Flush(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Prometheus' `errorType`.
    pub(crate) fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadData(_) | ApiError::MethodNotAllowed(_) => "bad_data",
            ApiError::Auth(AuthError::Unauthenticated(_)) => "unauthorized",
            ApiError::Auth(AuthError::Forbidden { .. }) => "forbidden",
            ApiError::Auth(AuthError::Tenant(_)) => "bad_data",
            ApiError::Auth(AuthError::NotAllowed { .. }) => "forbidden",
            ApiError::Auth(AuthError::AdminDisabled) => "unavailable",
            ApiError::Limit { status, .. } => match status.as_u16() {
                429 => "unavailable",
                503 => "timeout",
                _ => "execution",
            },
            ApiError::Query(e) => e.error_type(),
            ApiError::Storage(_) | ApiError::Flush(_) => "internal",
            ApiError::NotFound(_) => "not_found",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, error_type = self.error_type(), "request failed");
        } else {
            tracing::debug!(error = %self, error_type = self.error_type(), "request refused");
        }
        let mut resp = json::json_response(
            status,
            json::error_body(self.error_type(), &self.to_string()),
        );
        add_retry_headers(&mut resp, status, 1);
        resp
    }
}

/// The status of an authentication failure.
pub(crate) fn auth_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
        AuthError::Tenant(_) => StatusCode::BAD_REQUEST,
        AuthError::NotAllowed { .. } => StatusCode::FORBIDDEN,
        AuthError::AdminDisabled => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `WWW-Authenticate: Bearer` on 401, `Retry-After` on 429.
fn add_retry_headers(resp: &mut Response, status: StatusCode, retry_after_secs: u64) {
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs.max(1)),
        );
    }
}

/// An error of the remote-write endpoints, answered in plain text.
#[derive(Debug, Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("reading request body: {0}")]
    Body(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl WriteError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WriteError::Auth(e) => auth_status(e),
            WriteError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WriteError::Body(_) => StatusCode::BAD_REQUEST,
            WriteError::Ingest(e) => ingest_status(e),
        }
    }

    /// The `reason` label of `hypnos_receive_rejected_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            WriteError::Auth(e) => e.reason(),
            WriteError::BodyTooLarge { .. } => "too_large",
            WriteError::Body(_) => "body",
            WriteError::Ingest(e) => e.reason(),
        }
    }
}

/// The HTTP status of a write-path error: bad input is 4xx (senders do not retry), anything
/// else 5xx (senders retry, and writes are idempotent).
pub(crate) fn ingest_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        IngestError::Decode(_) | IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
        IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::Limit(l) => match l.kind {
            LimitKind::Invalid => StatusCode::BAD_REQUEST,
            LimitKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            LimitKind::Rate { .. } | LimitKind::Capacity => StatusCode::TOO_MANY_REQUESTS,
        },
        IngestError::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
        IngestError::WalFull(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for WriteError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, reason = self.reason(), "remote write failed");
        } else {
            tracing::debug!(error = %self, reason = self.reason(), "remote write refused");
        }
        let retry_after = match &self {
            WriteError::Ingest(IngestError::Limit(l)) => match l.kind {
                LimitKind::Rate { retry_after_secs } => retry_after_secs,
                _ => 1,
            },
            _ => 1,
        };
        let mut resp = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            format!("{self}\n"),
        )
            .into_response();
        add_retry_headers(&mut resp, status, retry_after);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_prometheus() {
        for (e, status, ty) in [
            (ApiError::BadData("x".into()), 400, "bad_data"),
            (
                ApiError::Query(QueryError::Unsupported("@".into())),
                422,
                "execution",
            ),
            (ApiError::Query(QueryError::Timeout("eval")), 503, "timeout"),
            (
                ApiError::Storage(SchemaError::Other("x".into())),
                500,
                "internal",
            ),
            (ApiError::NotFound("x".into()), 404, "not_found"),
        ] {
            assert_eq!((e.status().as_u16(), e.error_type()), (status, ty), "{e}");
        }
        assert_eq!(
            ApiError::invalid_param("start", "cannot parse \"x\" to a valid timestamp").to_string(),
            r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#
        );
    }

    #[test]
    fn write_errors_map_to_statuses() {
        for (e, status) in [
            (IngestError::UnsupportedMediaType("x".into()), 415),
            (IngestError::Decode("x".into()), 400),
            (IngestError::Invalid("x".into()), 400),
            (IngestError::TooLarge("x".into()), 413),
            (IngestError::ShutDown, 503),
            (IngestError::WalFull("WAL full".into()), 503),
            (IngestError::Config("x".into()), 500),
        ] {
            assert_eq!(WriteError::from(e).status().as_u16(), status);
        }
        assert_eq!(WriteError::BodyTooLarge { limit: 1 }.status().as_u16(), 413);
    }
}
