//! The compactor: merges a tenant's small Parquet blocks into larger ones in levels (2h ->
//! 8h -> 2d -> 14d by default), merging overlapping blocks (vertical compaction) and, with
//! replica labels, deduplicating HA replicas into one series; marks replaced blocks for
//! deletion, deletes them after a delay and applies retention. Only one compactor runs per
//! bucket, guarded by a lease ([`lock`]).
//!
//! Start at [`Compactor::run_once`]; [`plan`] decides what to merge, [`merge`] streams the
//! merge series by series. Once nothing is left to merge, long blocks are downsampled
//! ([`downsample`]): a raw block spanning 40h or more gets a 5m block, a 5m block spanning
//! 10 days or more a 1h block; each stores per window the count, sum, min, max and
//! reset-adjusted counter of every series (see `docs/format.md`), and takes part in level
//! compaction at its own resolution. Retention applies per resolution, with per-tenant
//! overrides ([`TenantRetention`]).

mod compactor;
pub mod downsample;
mod error;
pub mod lock;
pub mod merge;
pub mod plan;

pub use compactor::{
    CompactReport, Compactor, CompactorConfig, RetentionOverride, TenantRetention,
};
pub use error::CompactError;
