//! The write path of Hypnos: decodes Prometheus remote-write 1.0 requests (float samples,
//! native histograms and exemplars), validates them, makes them durable in a write-ahead log
//! (one writer thread, group commit), keeps them in per-tenant in-memory columnar heads that
//! queries read through [`hypnos_schemas::SeriesSource`], and every block duration cuts the
//! heads, writes them as Parquet blocks to the object store and truncates the log.
//!
//! Start reading at [`Ingester`] (`ingester.rs`): `open` replays the log, `write` is the
//! acknowledged path, `flush` the cut-and-persist protocol. `decode.rs` and `validate.rs` are
//! the edge checks, `head.rs` the in-memory store, `exemplars.rs` the per-tenant exemplar
//! buffers, `wal.rs` the on-disk log format.

mod decode;
mod error;
mod exemplars;
mod head;
mod ingester;
mod limits;
mod metrics;
mod validate;
mod wal;

pub use decode::{DEFAULT_MAX_DECOMPRESSED_BYTES, decode_write_request};
pub use error::IngestError;
pub use exemplars::{
    DEFAULT_MAX_EXEMPLARS_PER_TENANT, Exemplar, MAX_EXEMPLAR_LABEL_RUNES, SeriesExemplars,
};
pub use ingester::{IngestConfig, Ingester, WriteStats};
pub use limits::{LimitError, LimitKind, RateLimiter, WriteLimits};
