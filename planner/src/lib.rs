//! PromQL to DataFusion: parses a query with promql-parser, lowers its AST to a DataFusion
//! logical plan made of PromQL extension nodes (vector selection with lookback and staleness,
//! range functions, aggregation) and ordinary DataFusion projections and filters, then runs it
//! with the operators of `hypnos-engine`.
//!
//! Start at [`QueryEngine`]; the lowering is in `lower.rs`, the logical nodes in `nodes.rs`.

mod engine;
mod error;
mod lower;
mod nesting;
mod nodes;
mod order;
mod parse;
mod positions;
mod result;
mod runtime;

pub use engine::{
    DEFAULT_MAX_SAMPLES, MaxSourceResolution, QueryEngine, QueryOptions, TenantScope,
};
pub use error::QueryError;
pub use nesting::{MAX_NESTING_DEPTH, depth as nesting_depth};
pub use parse::parse_promql;
pub use result::{AnnotatedResult, InstantSample, QueryAnnotations, QueryResult, RangeSeries};
pub use runtime::{QUERY_THREAD_STACK, query_runtime, query_runtime_with_stack};
