//! One code per kind of failure, and the one mapping of each code to an HTTP status, a gRPC
//! status code and Prometheus' `errorType`.
//!
//! Every error type that can reach a caller (a query error, a write error, an authentication
//! failure, a limit) says which [`ErrorCode`] it is through [`ServiceError`]; the HTTP API and
//! the gRPC/Flight services turn the code into their protocol's status here and nowhere else,
//! so the same failure gets the same answer on every path.

/// The canonical gRPC status codes (the numbers are gRPC's, `google.rpc.Code`). Kept here so
/// that the vocabulary crate does not depend on a gRPC implementation; a service converts it
/// with its library's `from_i32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// What kind of failure an error is, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request or a parameter is malformed (a query that does not parse, a bad tenant
    /// header, a corrupt remote-write body, an invalid label).
    BadRequest,
    /// No credentials, or credentials that are not valid.
    Unauthenticated,
    /// Valid credentials that do not grant this tenant or scope.
    PermissionDenied,
    /// No such route or object.
    NotFound,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// Wrong `Content-Type` or `Content-Encoding`.
    UnsupportedMediaType,
    /// Valid input that cannot be evaluated: an unsupported construct, a many-to-many match.
    Execution,
    /// A read limit of the caller's tenant (series, samples, range): the answer would be too
    /// large, retrying the same request fails again.
    LimitExceeded,
    /// Too many requests or too much at once (a rate, concurrency or capacity limit): retry
    /// later.
    TooManyRequests,
    /// The caller did not send its request in time (a body that arrives too slowly): its
    /// fault, not the service's.
    RequestTimeout,
    /// The request ran past its deadline.
    Timeout,
    /// The service cannot serve this now (shutting down, a component that is turned off).
    Unavailable,
    /// A failure of the service itself (storage, the write-ahead log); the caller may retry.
    Internal,
}

impl ErrorCode {
    /// The HTTP status the Prometheus API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Execution | ErrorCode::LimitExceeded => 422,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Timeout | ErrorCode::Unavailable => 503,
        }
    }

    /// The gRPC status code the StoreAPI and Flight services answer with.
    pub fn grpc_code(self) -> GrpcCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::PayloadTooLarge => GrpcCode::InvalidArgument,
            ErrorCode::Unauthenticated => GrpcCode::Unauthenticated,
            ErrorCode::PermissionDenied => GrpcCode::PermissionDenied,
            ErrorCode::NotFound => GrpcCode::NotFound,
            ErrorCode::MethodNotAllowed | ErrorCode::UnsupportedMediaType => {
                GrpcCode::Unimplemented
            }
            ErrorCode::Execution => GrpcCode::FailedPrecondition,
            ErrorCode::RequestTimeout => GrpcCode::Cancelled,
            ErrorCode::LimitExceeded | ErrorCode::TooManyRequests => GrpcCode::ResourceExhausted,
            ErrorCode::Timeout => GrpcCode::DeadlineExceeded,
            ErrorCode::Unavailable => GrpcCode::Unavailable,
            ErrorCode::Internal => GrpcCode::Internal,
        }
    }

    /// Prometheus' `errorType` in the JSON error envelope.
    pub fn prometheus_error_type(self) -> &'static str {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::MethodNotAllowed
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType => "bad_data",
            ErrorCode::Unauthenticated => "unauthorized",
            ErrorCode::PermissionDenied => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Execution | ErrorCode::LimitExceeded => "execution",
            ErrorCode::TooManyRequests | ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout | ErrorCode::RequestTimeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }

    /// True when a well-behaved client should send the same request again later (Prometheus'
    /// remote-write sender retries 5xx and 429, never other 4xx).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::TooManyRequests
                | ErrorCode::Timeout
                | ErrorCode::Unavailable
                | ErrorCode::Internal
        )
    }
}

/// An error that can be answered to a caller: it knows its [`ErrorCode`].
pub trait ServiceError: std::error::Error {
    /// The kind of failure this is.
    fn error_code(&self) -> ErrorCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorCode; 14] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Execution,
        ErrorCode::LimitExceeded,
        ErrorCode::TooManyRequests,
        ErrorCode::RequestTimeout,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    #[test]
    fn retryable_codes_are_exactly_the_ones_prometheus_retries() {
        for code in ALL {
            let status = code.http_status();
            let retried_by_prometheus = status >= 500 || status == 429;
            assert_eq!(code.retryable(), retried_by_prometheus, "{code:?}");
        }
    }

    #[test]
    fn grpc_codes_keep_their_numbers_and_client_server_split() {
        assert_eq!(GrpcCode::Unauthenticated as i32, 16);
        assert_eq!(GrpcCode::ResourceExhausted as i32, 8);
        for code in ALL {
            let grpc = code.grpc_code();
            assert_ne!(grpc, GrpcCode::Ok, "{code:?}");
            // A server-side failure is never reported as the caller's fault, and the reverse.
            let server = code.http_status() >= 500;
            let grpc_server = matches!(
                grpc,
                GrpcCode::Internal | GrpcCode::Unavailable | GrpcCode::DeadlineExceeded
            );
            assert_eq!(server, grpc_server, "{code:?} -> {grpc:?}");
        }
    }
}
