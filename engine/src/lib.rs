//! Runs PromQL: [`QueryEngine`] plans a query with `hypnos-planner`, turns the planner's
//! logical nodes into DataFusion physical operators ([`exec::PromExec`], over the operators
//! of [`ops`]) and runs them under the query's guard; below it, the storage view that merges
//! heads and Parquet blocks ([`MergedSource`], [`BlockCatalog`]).

mod budget;
mod catalog;
mod merge;
mod planning;
mod query;
mod runtime;
mod series_merge;

pub use budget::QueryBudget;
pub use catalog::{BlockCatalog, DEFAULT_SAMPLE_CACHE_BYTES, SkippedBlock};
pub use guard::QueryGuard;
pub use merge::MergedSource;
pub use query::{DEFAULT_MAX_SAMPLES, QueryEngine, QueryOptions, TenantScope};
pub use runtime::{QUERY_THREAD_STACK, query_runtime, query_runtime_with_stack};
pub mod exec;
pub mod guard;
pub mod ops;
pub mod vector;
