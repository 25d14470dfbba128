//! The one error type of the crate; [`IngestError::reason`] gives the metric label.

use hypnos_schemas::SchemaError;
use hypnos_schemas::code::{ErrorCode, ServiceError};
use thiserror::Error;

use crate::limits::LimitError;

/// One failure of the write path.
#[derive(Debug, Error)]
pub enum IngestError {
    /// Wrong `Content-Encoding` or `Content-Type` (HTTP 415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Corrupt snappy or protobuf (HTTP 400).
    #[error("cannot decode request: {0}")]
    Decode(String),
    /// Invalid series: a bad label or native histogram; the message names the problem and
    /// the series (HTTP 400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The decompressed body exceeds the configured limit (HTTP 413).
    #[error("request too large: {0}")]
    TooLarge(String),
    /// Reading or writing the write-ahead log failed (HTTP 500).
    #[error("write-ahead log: {0}")]
    Wal(#[source] std::io::Error),
    /// The write-ahead log cannot take the request now: it is at its size budget
    /// (`--wal.max-size`) or its disk is full. Nothing of the request was logged; writes
    /// resume once a flush has truncated the log (HTTP 503, senders retry).
    #[error("{0}")]
    WalFull(String),
    /// Writing a block to the object store failed (HTTP 500).
    #[error("flushing head block: {0}")]
    Store(#[from] SchemaError),
    /// Registering the metrics failed (a startup error).
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The configuration cannot work (a startup error).
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    /// The request crosses one of its tenant's limits; nothing of it was written (HTTP
    /// 400, 413 or 429 by [`LimitError::kind`]).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The WAL writer thread is gone (the ingester is shutting down).
    #[error("ingester is shutting down")]
    ShutDown,
}

impl IngestError {
    /// A short label for the rejection metric of the HTTP layer.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::Decode(_) => "decode",
            IngestError::Invalid(_) => "invalid_labels",
            IngestError::TooLarge(_) => "too_large",
            IngestError::Limit(l) => l.limit,
            IngestError::WalFull(_) => "wal_full",
            IngestError::Wal(_)
            | IngestError::Store(_)
            | IngestError::Metrics(_)
            | IngestError::Config(_)
            | IngestError::ShutDown => "internal",
        }
    }

    /// An I/O error of the log with what was being done, keeping the error kind.
    pub(crate) fn wal(what: impl std::fmt::Display, e: std::io::Error) -> Self {
        IngestError::Wal(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

impl ServiceError for IngestError {
    /// The kind of failure, for the protocols' status codes: bad input is 4xx (senders do
    /// not retry), anything else 5xx (senders retry, and writes are idempotent).
    fn error_code(&self) -> ErrorCode {
        match self {
            IngestError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            IngestError::Decode(_) | IngestError::Invalid(_) => ErrorCode::BadRequest,
            IngestError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            IngestError::Limit(l) => match l.kind {
                crate::LimitKind::Invalid => ErrorCode::BadRequest,
                crate::LimitKind::TooLarge => ErrorCode::PayloadTooLarge,
                crate::LimitKind::Rate { .. } | crate::LimitKind::Capacity => {
                    ErrorCode::TooManyRequests
                }
            },
            IngestError::WalFull(_) | IngestError::ShutDown => ErrorCode::Unavailable,
            IngestError::Wal(_)
            | IngestError::Store(_)
            | IngestError::Metrics(_)
            | IngestError::Config(_) => ErrorCode::Internal,
        }
    }
}
