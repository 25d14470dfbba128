//! Whole-system benchmarks of Hypnos against Prometheus and VictoriaMetrics.
//!
//! Start at [`compare::run`], the one entry point (`hypnos-bench compare`): it generates a
//! data set ([`gen`](r#gen)), encodes it ([`encode`]), starts each system ([`systems`]), runs the
//! workloads ([`workloads`], [`compaction`]) and renders the table ([`report`]).

pub mod compaction;
pub mod compare;
pub mod encode;
pub mod r#gen;
pub mod report;
pub mod systems;
pub mod workloads;
