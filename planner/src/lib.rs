//! PromQL to DataFusion logical plans: parses a query with promql-parser and lowers its AST
//! to a logical plan made of PromQL extension nodes ([`PromNode`]: vector selection with
//! lookback and staleness, range functions, aggregation, ...) and ordinary DataFusion
//! projections and filters. The planner owns the operator vocabulary ([`ops`], [`PromOp`],
//! [`annotations`]) and does no IO: `hypnos-engine` plans the nodes into physical operators
//! and runs them.
//!
//! Start at [`plan_query`]; the lowering is in `lower.rs`, the logical nodes in `nodes.rs`.

pub mod annotations;
mod error;
mod lower;
mod nesting;
mod nodes;
pub mod ops;
mod order;
mod parse;
mod plan;
mod positions;
mod result;
pub mod vector;

pub use error::QueryError;
pub use lower::Lowered;
pub use nesting::{MAX_NESTING_DEPTH, depth as nesting_depth};
pub use nodes::{MatcherSpec, PromNode, PromOp, SelectHints};
pub use order::ResultOrder;
pub use parse::parse_promql;
pub use plan::{MaxSourceResolution, PlanContext, PlannedQuery, plan_query};
pub use result::{AnnotatedResult, InstantSample, QueryAnnotations, QueryResult, RangeSeries};
