//! Errors of the compactor.

use thiserror::Error;

/// One failure of a compaction run.
#[derive(Debug, Error)]
pub enum CompactError {
    #[error(transparent)]
    Schema(#[from] hypnos_schemas::SchemaError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("{path}: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("another compactor holds the bucket lock ({owner}, until {expires_at_ms} ms)")]
    Locked { owner: String, expires_at_ms: i64 },
    #[error("cannot downsample: {0}")]
    Downsample(String),
    #[error("compaction task failed: {0}")]
    Task(String),
}
