//! DataFusion execution for PromQL: the storage view that merges heads and Parquet blocks
//! ([`MergedSource`], [`BlockCatalog`]) and the PromQL physical operators.

mod budget;
mod catalog;
mod merge;
mod series_merge;

pub use budget::QueryBudget;
pub use catalog::{BlockCatalog, DEFAULT_SAMPLE_CACHE_BYTES, SkippedBlock};
pub use guard::QueryGuard;
pub use merge::MergedSource;
pub mod exec;
pub mod guard;
pub mod ops;
pub mod vector;
