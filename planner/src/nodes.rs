//! The PromQL logical node of a DataFusion plan: [`PromNode`], one [`PromOp`] over its
//! inputs. `hypnos-engine` plans each node into its physical operator, `PromExec`, which
//! runs the same [`PromOp`].

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, LazyLock};

use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use hypnos_schemas::{Labels, MatchOp, Matcher, ReadAggregate, ReadHints, TenantId};

use crate::annotations::QueryPos;
use crate::ops::{
    AggOp, AggPositions, BinOp, Grouping, HistogramFunc, InstantFunc, RangeFunc, Relabel,
    StepValue, Steps, VectorMatching, VectorOp,
};
use crate::vector::vector_schema;

static VECTOR_DFSCHEMA: LazyLock<DFSchemaRef> = LazyLock::new(|| {
    Arc::new(DFSchema::try_from(vector_schema().as_ref().clone()).expect("valid schema"))
});

/// Tenants as shown in plans: `a`, or `a|b` for a federated selection.
pub(crate) fn tenant_list(tenants: &[TenantId]) -> String {
    let v: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
    v.join("|")
}

/// A label matcher as plain data (the compiled form is built when planning physically).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct MatcherSpec {
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    pub value: String,
}

impl MatcherSpec {
    /// The matcher itself (a regular expression compiled).
    pub fn compile(&self) -> std::result::Result<Matcher, hypnos_schemas::SchemaError> {
        let op = match self.op {
            "=" => MatchOp::Equal,
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::Re,
            _ => MatchOp::NotRe,
        };
        Matcher::new(op, self.name.clone(), self.value.clone())
    }
}

/// The read hints of a selection, ordered so that the logical node stays `PartialOrd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SelectHints(pub ReadHints);

impl SelectHints {
    pub(crate) fn new(max_resolution_ms: i64, aggregate: ReadAggregate) -> Self {
        Self(ReadHints {
            max_resolution_ms,
            aggregate,
        })
    }

    fn key(&self) -> (i64, Option<&'static str>) {
        (self.0.max_resolution_ms, self.0.aggregate.label_value())
    }
}

impl PartialOrd for SelectHints {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.key().cmp(&other.key()))
    }
}

/// One PromQL step of a plan: what a [`PromNode`] stands for and what `hypnos-engine`'s
/// `PromExec` evaluates. A selection has no input, the binary and per-step forms two (or
/// more: [`PromOp::InstantFunctionPerStep`]), every other operator one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum PromOp {
    Select {
        /// Read one after the other; series of different tenants differ by `tenant_id`.
        tenants: Vec<TenantId>,
        matchers: Vec<MatcherSpec>,
        min: i64,
        max: i64,
        drop_stale: bool,
        /// Which resolution and aggregate to read (default: raw values).
        hints: SelectHints,
        /// The histograms only feed `histogram_count`/`histogram_sum`/`histogram_avg`: they
        /// are read as Prometheus' histogram-stats iterator reads them, count and sum only,
        /// with counter resets detected between consecutive samples.
        histogram_stats: bool,
    },
    Instant {
        steps: Steps,
        lookback: i64,
        offset: i64,
    },
    RangeFunction {
        func: RangeFunc,
        steps: Steps,
        range: i64,
        offset: i64,
        /// Where the call's first argument is in the query (for annotations).
        pos: Option<QueryPos>,
    },
    Aggregate {
        op: AggOp,
        grouping: Grouping,
        /// Where the aggregation, its parameter and its vector are (for annotations).
        pos: AggPositions,
    },
    /// An aggregation with a per-step parameter: the node's two inputs, the vector then the
    /// per-step scalar.
    AggregatePerStep {
        op: AggOp,
        grouping: Grouping,
        pos: AggPositions,
    },
    /// A range function with a per-step parameter: the node's two inputs, the samples then
    /// the per-step scalar; `at` fixes every window's end (`@`).
    RangeFunctionPerStep {
        func: RangeFunc,
        steps: Steps,
        range: i64,
        offset: i64,
        at: Option<i64>,
        pos: Option<QueryPos>,
    },
    /// `info(v, {...})`: the node's two inputs, `v` then the info series' sample times.
    Info {
        name_matchers: Vec<MatcherSpec>,
        data_matchers: Vec<MatcherSpec>,
    },
    CountValues {
        label: String,
        grouping: Grouping,
    },
    Histogram {
        func: HistogramFunc,
        /// Where the quantile parameter and the vector argument are in the query.
        param_pos: Option<QueryPos>,
        vector_pos: Option<QueryPos>,
    },
    InstantFunction {
        func: InstantFunc,
    },
    /// An instant function with per-step parameters: the node's inputs are the vector, then
    /// one per-step scalar per parameter.
    InstantFunctionPerStep {
        func: InstantFunc,
    },
    Broadcast {
        steps: Steps,
    },
    /// A subquery's samples as a range function reads them.
    ForgetResetHints,
    InstantTimes {
        steps: Steps,
        lookback: i64,
        offset: i64,
    },
    StepValues {
        steps: Steps,
        value: StepValue,
    },
    ToScalar {
        steps: Steps,
    },
    Absent {
        steps: Steps,
        labels: Labels,
    },
    Relabel {
        rule: Relabel,
    },
    ScalarBinary {
        op: BinOp,
        /// The scalar's bits, so the node stays `Eq` and `Hash`.
        scalar_bits: u64,
        scalar_on_left: bool,
        return_bool: bool,
        /// Where the binary expression is in the query (for annotations).
        pos: Option<QueryPos>,
    },
    /// Between two instant vectors: the node's two inputs, left then right.
    VectorBinary {
        op: VectorOp,
        matching: VectorMatching,
        return_bool: bool,
        /// Where the binary expression is in the query (for annotations).
        pos: Option<QueryPos>,
    },
}

/// The logical node: a [`PromOp`] over its inputs (none for a selection, two for
/// [`PromOp::VectorBinary`], one otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromNode {
    op: PromOp,
    inputs: Vec<LogicalPlan>,
}

impl PromNode {
    /// The operator of this node.
    pub fn op(&self) -> &PromOp {
        &self.op
    }

    /// Wraps the node as a logical plan.
    pub(crate) fn plan(op: PromOp, input: Option<LogicalPlan>) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(PromNode {
                op,
                inputs: input.into_iter().collect(),
            }),
        })
    }

    /// Wraps a node over any number of inputs as a logical plan.
    pub(crate) fn plan_all(op: PromOp, inputs: Vec<LogicalPlan>) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(PromNode { op, inputs }),
        })
    }

    /// Wraps a node over two inputs as a logical plan.
    pub(crate) fn plan_binary(op: PromOp, lhs: LogicalPlan, rhs: LogicalPlan) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(PromNode {
                op,
                inputs: vec![lhs, rhs],
            }),
        })
    }
}

impl PartialOrd for PromNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.op.partial_cmp(&other.op)
    }
}

/// Matchers as the logical plan shows them: `name="value", ...`.
fn show_matchers(ms: &[MatcherSpec]) -> String {
    ms.iter()
        .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PromNode {
    /// A selection as the logical plan shows it (after its name).
    fn fmt_select(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let PromOp::Select {
            tenants,
            matchers,
            min,
            max,
            drop_stale,
            hints,
            histogram_stats,
        } = &self.op
        else {
            return Ok(());
        };
        let tenant = tenant_list(tenants);
        write!(
            f,
            "tenant={tenant}, matchers=[{}], time=[{min}, {max}], drop_stale={drop_stale}",
            show_matchers(matchers)
        )?;
        if hints.0.max_resolution_ms > 0 {
            write!(
                f,
                ", max_resolution={}ms, aggregate={:?}",
                hints.0.max_resolution_ms, hints.0.aggregate
            )?;
        }
        if *histogram_stats {
            write!(f, ", histogram_stats")?;
        }
        Ok(())
    }
}

impl UserDefinedLogicalNodeCore for PromNode {
    fn name(&self) -> &str {
        match self.op {
            PromOp::Select { .. } => "PromSelect",
            PromOp::Instant { .. } => "PromInstant",
            PromOp::RangeFunction { .. } => "PromRangeFunction",
            PromOp::Aggregate { .. } => "PromAggregate",
            PromOp::AggregatePerStep { .. } => "PromAggregatePerStep",
            PromOp::RangeFunctionPerStep { .. } => "PromRangeFunctionPerStep",
            PromOp::Info { .. } => "PromInfo",
            PromOp::CountValues { .. } => "PromCountValues",
            PromOp::Histogram { .. } => "PromHistogram",
            PromOp::InstantFunction { .. } => "PromInstantFunction",
            PromOp::InstantFunctionPerStep { .. } => "PromInstantFunctionPerStep",
            PromOp::Broadcast { .. } => "PromBroadcast",
            PromOp::ForgetResetHints => "PromForgetResetHints",
            PromOp::InstantTimes { .. } => "PromInstantTimes",
            PromOp::StepValues { .. } => "PromStepValues",
            PromOp::ToScalar { .. } => "PromToScalar",
            PromOp::Absent { .. } => "PromAbsent",
            PromOp::Relabel { .. } => "PromRelabel",
            PromOp::ScalarBinary { .. } => "PromScalarBinary",
            PromOp::VectorBinary { .. } => "PromVectorBinary",
        }
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &VECTOR_DFSCHEMA
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: ", UserDefinedLogicalNodeCore::name(self))?;
        match &self.op {
            PromOp::Select { .. } => self.fmt_select(f),
            PromOp::Instant {
                steps,
                lookback,
                offset,
            } => write!(
                f,
                "steps={}..{} by {}, lookback={lookback}ms, offset={offset}ms",
                steps.start, steps.end, steps.step
            ),
            PromOp::RangeFunction {
                func,
                steps,
                range,
                offset,
                ..
            } => write!(
                f,
                "{}[{range}ms], offset={offset}ms, steps={}..{} by {}",
                func.name(),
                steps.start,
                steps.end,
                steps.step
            ),
            PromOp::Aggregate { op, grouping, .. } => {
                write!(f, "{} {grouping:?}", op.name())
            }
            PromOp::AggregatePerStep { op, grouping, .. } => {
                write!(f, "{} {grouping:?}, per-step parameter", op.name())
            }
            PromOp::Info {
                name_matchers,
                data_matchers,
            } => write!(
                f,
                "names=[{}], data=[{}]",
                show_matchers(name_matchers),
                show_matchers(data_matchers)
            ),
            PromOp::RangeFunctionPerStep {
                func,
                steps,
                range,
                offset,
                at,
                ..
            } => write!(
                f,
                "{}[{range}ms], offset={offset}ms, at={at:?}, steps={}..{} by {}, per-step parameter",
                func.name(),
                steps.start,
                steps.end,
                steps.step
            ),
            PromOp::CountValues { label, grouping } => {
                write!(f, "count_values({label:?}) {grouping:?}")
            }
            PromOp::Histogram { func, .. } => write!(f, "{func:?}"),
            PromOp::InstantFunction { func } => write!(f, "{func:?}"),
            PromOp::InstantFunctionPerStep { func } => write!(f, "{func:?} per step"),
            PromOp::Broadcast { steps } => {
                write!(f, "steps={}..{} by {}", steps.start, steps.end, steps.step)
            }
            PromOp::ForgetResetHints => Ok(()),
            PromOp::Absent { labels, .. } => write!(f, "labels={labels}"),
            PromOp::InstantTimes {
                steps,
                lookback,
                offset,
            } => write!(
                f,
                "steps={}..{} by {}, lookback={lookback}ms, offset={offset}ms",
                steps.start, steps.end, steps.step
            ),
            PromOp::StepValues { steps, value } => write!(
                f,
                "{value:?}, steps={}..{} by {}",
                steps.start, steps.end, steps.step
            ),
            PromOp::ToScalar { .. } => Ok(()),
            PromOp::Relabel { rule } => write!(f, "{rule:?}"),
            PromOp::ScalarBinary {
                op,
                scalar_bits,
                scalar_on_left,
                return_bool,
                ..
            } => write!(
                f,
                "{op:?} scalar={}, scalar_on_left={scalar_on_left}, bool={return_bool}",
                f64::from_bits(*scalar_bits)
            ),
            PromOp::VectorBinary {
                op,
                matching,
                return_bool,
                ..
            } => write!(f, "{op:?} {matching:?}, bool={return_bool}"),
        }
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if inputs.len() != self.inputs.len() {
            return Err(DataFusionError::Internal(format!(
                "{} takes {} inputs, got {}",
                UserDefinedLogicalNodeCore::name(self),
                self.inputs.len(),
                inputs.len()
            )));
        }
        Ok(Self {
            op: self.op.clone(),
            inputs,
        })
    }
}
