//! The one place where every error of the HTTP API gets its [`ErrorCode`], which gives
//! its status and Prometheus `errorType` ([`hypnos_schemas::code`], the mapping gRPC uses
//! too): query errors, parameter errors, tenant errors, limits (JSON envelope), and the
//! remote-write errors (plain text, as Prometheus' receiver answers). Authentication and
//! limit errors know their own code (`hypnos_tenancy`); query and ingest errors get theirs
//! here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hypnos_ingest::{IngestError, LimitKind};
use hypnos_planner::QueryError;
use hypnos_schemas::{ErrorCode, SchemaError, ServiceError};
use hypnos_tenancy::{AuthError, LimitError};
use thiserror::Error;

use super::json;

/// An error of the JSON API, answered with Prometheus' error envelope.
#[derive(Debug, Error)]
pub enum ApiError {
    /// An invalid parameter or request: 400 `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// Authentication or authorisation failed: 401 (with `WWW-Authenticate: Bearer`), 403,
    /// or 400 for invalid tenant headers.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A read limit of the tenant: 422 (series, samples, range), 429 (concurrency, with
    /// `Retry-After`) or 503 (timeout), as its [`ErrorCode`] says.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A query failed: 400, 422, 503 or 500 by its kind (its `ServiceError` code).
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
        status_of(self.error_code())
    }

    /// Prometheus' `errorType`.
    pub(crate) fn error_type(&self) -> &'static str {
        self.error_code().prometheus_error_type()
    }
}

impl ServiceError for ApiError {
    fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::BadData(_) => ErrorCode::BadRequest,
            ApiError::Auth(e) => e.error_code(),
            ApiError::Limit(e) => e.error_code(),
            ApiError::Query(e) => e.error_code(),
            // Whatever the storage error, it is the service's failure here: the request's
            // own input was checked before anything was read.
            ApiError::Storage(_) | ApiError::Flush(_) => ErrorCode::Internal,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
        }
    }
}

/// The HTTP status of `code`.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
        status_of(self.error_code())
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

impl ServiceError for WriteError {
    fn error_code(&self) -> ErrorCode {
        match self {
            WriteError::Auth(e) => e.error_code(),
            WriteError::BodyTooLarge { .. } => ErrorCode::PayloadTooLarge,
            WriteError::Body(_) => ErrorCode::BadRequest,
            WriteError::Ingest(e) => e.error_code(),
        }
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

/// `/metrics` could not be encoded: answered in plain text (what scrapers read), with the
/// status of its code.
#[derive(Debug, Error)]
#[error("encoding metrics: {0}")]
pub(crate) struct MetricsError(#[from] pub(crate) prometheus::Error);

impl ServiceError for MetricsError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

impl IntoResponse for MetricsError {
    fn into_response(self) -> Response {
        (
            status_of(self.error_code()),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            format!("{self}\n"),
        )
            .into_response()
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
    fn limit_and_auth_errors_take_their_code() {
        use std::time::Duration;
        let t = hypnos_schemas::TenantId::new("a").unwrap();
        for (e, status, ty) in [
            (
                ApiError::Limit(LimitError::ConcurrentQueries { tenant: t, max: 1 }),
                429,
                "unavailable",
            ),
            (
                ApiError::Limit(LimitError::QueryTimeout {
                    timeout: Duration::from_secs(1),
                }),
                503,
                "timeout",
            ),
            (
                ApiError::Limit(LimitError::SeriesPerQuery { max: 1 }),
                422,
                "execution",
            ),
            (
                ApiError::Auth(AuthError::Unauthenticated("no")),
                401,
                "unauthorized",
            ),
            (ApiError::Auth(AuthError::AdminDisabled), 503, "unavailable"),
            (ApiError::MethodNotAllowed("x".into()), 405, "bad_data"),
            (
                ApiError::Query(QueryError::BadData("x".into())),
                400,
                "bad_data",
            ),
            (
                ApiError::Query(QueryError::Internal("x".into())),
                500,
                "internal",
            ),
        ] {
            assert_eq!((e.status().as_u16(), e.error_type()), (status, ty), "{e}");
        }
        let e = ApiError::Limit(LimitError::SeriesPerQuery { max: 1 });
        assert_eq!(
            e.to_string(),
            "limit max_series_per_query exceeded: the query selects more than 1 series"
        );
        let resp = ApiError::Limit(LimitError::ConcurrentQueries {
            tenant: hypnos_schemas::TenantId::new("a").unwrap(),
            max: 1,
        })
        .into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let resp = ApiError::Auth(AuthError::Unauthenticated("no")).into_response();
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn metrics_errors_are_internal_in_plain_text() {
        let e = MetricsError(prometheus::Error::Msg("x".into()));
        assert_eq!(e.to_string(), "encoding metrics: Error: x");
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
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
