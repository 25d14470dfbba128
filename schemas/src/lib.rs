//! The vocabulary every other Hypnos crate speaks: tenant ids, label sets and matchers, the
//! remote-write protobuf messages, the Arrow schemas of series and samples, the object-store
//! layout and the Parquet block format (writer and reader), and [`SeriesSource`], the one data
//! access interface that the in-memory heads, Parquet blocks and (later) remote stores
//! implement.
//!
//! Start with [`labels`] and [`source`]; [`block`] is the on-disk format (docs/format.md).

pub mod block;
pub mod code;
pub mod error;
pub mod histogram;
pub mod labels;
pub mod layout;
pub mod limits;
pub mod matcher;
pub mod remote;
pub mod source;
pub mod tenant;

pub use code::{ErrorCode, GrpcCode, ServiceError};
pub use error::SchemaError;
pub use labels::{Label, Labels};
pub use matcher::{MatchOp, Matcher};
pub use source::{
    AGGR_LABEL, BlockSink, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW, ReadAggregate, ReadHints,
    SeriesData, SeriesSource, TimeRange, raw_as_aggregate, sample_schema,
    sample_schema_with_histograms,
};
pub use tenant::TenantId;

/// Bit pattern of Prometheus' staleness marker (a NaN with a distinguished payload).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is a staleness marker (compared by bits, never by value).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
