//! The compactor: merges a tenant's small Parquet blocks into larger ones in levels (2h ->
//! 8h -> 2d -> 14d by default), merging overlapping blocks (vertical compaction) and, with
//! replica labels, deduplicating HA replicas into one series; marks replaced blocks for
//! deletion, deletes them after a delay and applies retention. Only one compactor runs per
//! bucket, guarded by a lease ([`lock`]).
//!
//! Start at [`Compactor::run_once`]; [`plan`] decides what to merge, [`merge`] streams the
//! merge series by series. Downsampling is not implemented yet.

mod compactor;
mod error;
pub mod lock;
pub mod merge;
pub mod plan;

pub use compactor::{CompactReport, Compactor, CompactorConfig};
pub use error::CompactError;
