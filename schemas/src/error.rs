//! Errors of the schema crate: invalid identifiers, malformed blocks, object-store failures.

use thiserror::Error;

/// One failure of this crate, with its source where there is one.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("invalid tenant id {0:?}: {1}")]
    InvalidTenant(String, &'static str),
    #[error("invalid regular expression {pattern:?}: {source}")]
    InvalidRegex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("block {block}: {message}")]
    CorruptBlock { block: String, message: String },
    #[error("block meta {path}: {source}")]
    Meta {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "block {block} has schema version {found}, this build reads versions up to {supported}: upgrade hypnos"
    )]
    UnsupportedVersion {
        block: String,
        found: u32,
        supported: u32,
    },
    #[error("{0}")]
    Other(String),
}

impl crate::code::ServiceError for SchemaError {
    fn error_code(&self) -> crate::code::ErrorCode {
        use crate::code::ErrorCode;
        match self {
            SchemaError::InvalidTenant(..) | SchemaError::InvalidRegex { .. } => {
                ErrorCode::BadRequest
            }
            _ => ErrorCode::Internal,
        }
    }
}
