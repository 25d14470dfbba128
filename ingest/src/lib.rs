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
mod size;
mod validate;
mod wal;

pub use decode::{
    DEFAULT_MAX_DECOMPRESSED_BYTES, DEFAULT_MAX_INFLIGHT_DECODE_BYTES, MAX_DECODE_AMPLIFICATION,
    Reservation, decode_write_request,
};
pub use error::IngestError;
pub use exemplars::{
    DEFAULT_MAX_EXEMPLARS_PER_TENANT, Exemplar, MAX_EXEMPLAR_LABEL_RUNES, SeriesExemplars,
};
pub use ingester::{DecodedRequest, IngestConfig, Ingester, PreparedWrite, WriteStats};
pub use limits::{
    DEFAULT_MAX_FUTURE_SKEW_MS, DEFAULT_MAX_LABEL_NAME_LENGTH, DEFAULT_MAX_LABEL_NAMES_PER_SERIES,
    DEFAULT_MAX_LABEL_VALUE_LENGTH, DEFAULT_MAX_METADATA_LENGTH, DEFAULT_MAX_METADATA_PER_METRIC,
    DEFAULT_MAX_METADATA_PER_USER, DEFAULT_MAX_SAMPLES_PER_REQUEST, DEFAULT_MAX_SERIES_PER_REQUEST,
    LimitError, LimitKind, RateLimiter, WriteLimits,
};
pub use size::{format_bytes, parse_byte_size};
