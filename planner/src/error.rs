//! Query errors, each mapping to one Prometheus `errorType`.

use thiserror::Error;

/// Why a query failed. The HTTP layer maps each variant to a status and `errorType`.
#[derive(Debug, Error)]
pub enum QueryError {
    /// The query does not parse, or a parameter is invalid: 400 `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// Valid PromQL that Hypnos cannot evaluate yet: 422 `execution`, naming the construct.
    #[error("unsupported PromQL construct: {0}")]
    Unsupported(String),
    /// Evaluation failed (e.g. many-to-many matching): 422 `execution`.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout: 503 `timeout`.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// A storage or engine failure: 500 `internal`.
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// Prometheus' `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Unsupported(_) | QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Internal(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Unsupported(_) | QueryError::Execution(_) => 422,
            QueryError::Timeout(_) => 503,
            QueryError::Internal(_) => 500,
        }
    }
}
