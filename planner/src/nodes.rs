//! The PromQL logical node of a DataFusion plan, and the extension planner that turns it
//! into `hypnos-engine`'s [`PromExec`].

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use hypnos_engine::exec::{PromExec, PromOp};
use hypnos_engine::ops::annotations::QueryPos;
use hypnos_engine::ops::{
    AggOp, AggPositions, BinOp, Grouping, HistogramFunc, InstantFunc, RangeFunc, Relabel,
    StepValue, Steps, VectorMatching, VectorOp,
};
use hypnos_engine::vector::vector_schema;
use hypnos_schemas::{
    Labels, MatchOp, Matcher, ReadAggregate, ReadHints, SeriesSource, TenantId, TimeRange,
};

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
pub(crate) struct MatcherSpec {
    pub(crate) name: String,
    pub(crate) op: &'static str,
    pub(crate) value: String,
}

impl MatcherSpec {
    pub(crate) fn compile(&self) -> std::result::Result<Matcher, hypnos_schemas::SchemaError> {
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
pub(crate) struct SelectHints(pub(crate) ReadHints);

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

/// One PromQL step of a logical plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) enum PromLogicalOp {
    Select {
        /// Read one after the other; series of different tenants differ by `tenant_id`.
        tenants: Vec<TenantId>,
        matchers: Vec<MatcherSpec>,
        min: i64,
        max: i64,
        drop_stale: bool,
        /// Which resolution and aggregate to read (default: raw values).
        hints: SelectHints,
        /// Histograms read for their count and sum only (Prometheus' histogram-stats
        /// iterator): see `PromOp::Select`.
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

/// The logical node: a [`PromLogicalOp`] over its inputs (none for a selection, two for
/// [`PromLogicalOp::VectorBinary`], one otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PromNode {
    op: PromLogicalOp,
    inputs: Vec<LogicalPlan>,
}

impl PromNode {
    /// Wraps the node as a logical plan.
    pub(crate) fn plan(op: PromLogicalOp, input: Option<LogicalPlan>) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(PromNode {
                op,
                inputs: input.into_iter().collect(),
            }),
        })
    }

    /// Wraps a node over any number of inputs as a logical plan.
    pub(crate) fn plan_all(op: PromLogicalOp, inputs: Vec<LogicalPlan>) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(PromNode { op, inputs }),
        })
    }

    /// Wraps a node over two inputs as a logical plan.
    pub(crate) fn plan_binary(
        op: PromLogicalOp,
        lhs: LogicalPlan,
        rhs: LogicalPlan,
    ) -> LogicalPlan {
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

impl UserDefinedLogicalNodeCore for PromNode {
    fn name(&self) -> &str {
        match self.op {
            PromLogicalOp::Select { .. } => "PromSelect",
            PromLogicalOp::Instant { .. } => "PromInstant",
            PromLogicalOp::RangeFunction { .. } => "PromRangeFunction",
            PromLogicalOp::Aggregate { .. } => "PromAggregate",
            PromLogicalOp::AggregatePerStep { .. } => "PromAggregatePerStep",
            PromLogicalOp::RangeFunctionPerStep { .. } => "PromRangeFunctionPerStep",
            PromLogicalOp::Info { .. } => "PromInfo",
            PromLogicalOp::CountValues { .. } => "PromCountValues",
            PromLogicalOp::Histogram { .. } => "PromHistogram",
            PromLogicalOp::InstantFunction { .. } => "PromInstantFunction",
            PromLogicalOp::InstantFunctionPerStep { .. } => "PromInstantFunctionPerStep",
            PromLogicalOp::Broadcast { .. } => "PromBroadcast",
            PromLogicalOp::ForgetResetHints => "PromForgetResetHints",
            PromLogicalOp::InstantTimes { .. } => "PromInstantTimes",
            PromLogicalOp::StepValues { .. } => "PromStepValues",
            PromLogicalOp::ToScalar { .. } => "PromToScalar",
            PromLogicalOp::Absent { .. } => "PromAbsent",
            PromLogicalOp::Relabel { .. } => "PromRelabel",
            PromLogicalOp::ScalarBinary { .. } => "PromScalarBinary",
            PromLogicalOp::VectorBinary { .. } => "PromVectorBinary",
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
            PromLogicalOp::Select {
                tenants,
                matchers,
                min,
                max,
                drop_stale,
                hints,
                histogram_stats,
            } => {
                let tenant = tenant_list(tenants);
                let m: Vec<String> = matchers
                    .iter()
                    .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
                    .collect();
                write!(
                    f,
                    "tenant={tenant}, matchers=[{}], time=[{min}, {max}], drop_stale={drop_stale}",
                    m.join(", ")
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
            PromLogicalOp::Instant {
                steps,
                lookback,
                offset,
            } => write!(
                f,
                "steps={}..{} by {}, lookback={lookback}ms, offset={offset}ms",
                steps.start, steps.end, steps.step
            ),
            PromLogicalOp::RangeFunction {
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
            PromLogicalOp::Aggregate { op, grouping, .. } => {
                write!(f, "{} {grouping:?}", op.name())
            }
            PromLogicalOp::AggregatePerStep { op, grouping, .. } => {
                write!(f, "{} {grouping:?}, per-step parameter", op.name())
            }
            PromLogicalOp::Info {
                name_matchers,
                data_matchers,
            } => {
                let show = |ms: &[MatcherSpec]| {
                    ms.iter()
                        .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(
                    f,
                    "names=[{}], data=[{}]",
                    show(name_matchers),
                    show(data_matchers)
                )
            }
            PromLogicalOp::RangeFunctionPerStep {
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
            PromLogicalOp::CountValues { label, grouping } => {
                write!(f, "count_values({label:?}) {grouping:?}")
            }
            PromLogicalOp::Histogram { func, .. } => write!(f, "{func:?}"),
            PromLogicalOp::InstantFunction { func } => write!(f, "{func:?}"),
            PromLogicalOp::InstantFunctionPerStep { func } => write!(f, "{func:?} per step"),
            PromLogicalOp::Broadcast { steps } => {
                write!(f, "steps={}..{} by {}", steps.start, steps.end, steps.step)
            }
            PromLogicalOp::ForgetResetHints => Ok(()),
            PromLogicalOp::Absent { labels, .. } => write!(f, "labels={labels}"),
            PromLogicalOp::InstantTimes {
                steps,
                lookback,
                offset,
            } => write!(
                f,
                "steps={}..{} by {}, lookback={lookback}ms, offset={offset}ms",
                steps.start, steps.end, steps.step
            ),
            PromLogicalOp::StepValues { steps, value } => write!(
                f,
                "{value:?}, steps={}..{} by {}",
                steps.start, steps.end, steps.step
            ),
            PromLogicalOp::ToScalar { .. } => Ok(()),
            PromLogicalOp::Relabel { rule } => write!(f, "{rule:?}"),
            PromLogicalOp::ScalarBinary {
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
            PromLogicalOp::VectorBinary {
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

/// Plans [`PromNode`]s as [`PromExec`]s reading `source`.
#[derive(Debug)]
pub(crate) struct PromExtensionPlanner {
    pub(crate) source: Arc<dyn SeriesSource>,
    /// Samples one selection may load before the query fails.
    pub(crate) max_samples: usize,
}

#[async_trait]
impl ExtensionPlanner for PromExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<PromNode>() else {
            return Ok(None);
        };
        let op = match &node.op {
            PromLogicalOp::Select {
                tenants,
                matchers,
                min,
                max,
                drop_stale,
                hints,
                histogram_stats,
            } => {
                let matchers = matchers
                    .iter()
                    .map(MatcherSpec::compile)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let op = PromOp::Select {
                    tenants: tenants.clone(),
                    matchers,
                    range: TimeRange::new(*min, *max),
                    drop_stale: *drop_stale,
                    max_samples: self.max_samples,
                    hints: hints.0,
                    histogram_stats: *histogram_stats,
                };
                return Ok(Some(Arc::new(PromExec::select(
                    op,
                    Arc::clone(&self.source),
                ))));
            }
            PromLogicalOp::Instant {
                steps,
                lookback,
                offset,
            } => PromOp::Instant {
                steps: *steps,
                lookback: *lookback,
                offset: *offset,
            },
            PromLogicalOp::RangeFunction {
                func,
                steps,
                range,
                offset,
                pos,
            } => PromOp::RangeFunction {
                func: *func,
                steps: *steps,
                range: *range,
                offset: *offset,
                pos: *pos,
            },
            PromLogicalOp::InstantFunction { func } => PromOp::InstantFunction { func: *func },
            PromLogicalOp::Broadcast { steps } => PromOp::Broadcast { steps: *steps },
            PromLogicalOp::ForgetResetHints => PromOp::ForgetResetHints,
            PromLogicalOp::Absent { steps, labels } => PromOp::Absent {
                steps: *steps,
                labels: labels.clone(),
            },
            PromLogicalOp::Relabel { rule } => PromOp::Relabel { rule: rule.clone() },
            PromLogicalOp::InstantTimes {
                steps,
                lookback,
                offset,
            } => PromOp::InstantTimes {
                steps: *steps,
                lookback: *lookback,
                offset: *offset,
            },
            PromLogicalOp::ToScalar { steps } => PromOp::ToScalar { steps: *steps },
            PromLogicalOp::StepValues { steps, value } => {
                return Ok(Some(Arc::new(PromExec::leaf(PromOp::StepValues {
                    steps: *steps,
                    value: *value,
                }))));
            }
            PromLogicalOp::CountValues { label, grouping } => PromOp::CountValues {
                label: label.clone(),
                grouping: grouping.clone(),
            },
            PromLogicalOp::Histogram {
                func,
                param_pos,
                vector_pos,
            } => {
                let op = PromOp::Histogram {
                    func: func.clone(),
                    param_pos: *param_pos,
                    vector_pos: *vector_pos,
                };
                // A quantile evaluated per step is the second input.
                if let [data, param] = physical_inputs {
                    return Ok(Some(Arc::new(PromExec::binary(
                        op,
                        Arc::clone(data),
                        Arc::clone(param),
                    ))));
                }
                op
            }
            PromLogicalOp::Aggregate { op, grouping, pos } => PromOp::Aggregate {
                op: *op,
                grouping: grouping.clone(),
                pos: *pos,
            },
            PromLogicalOp::ScalarBinary {
                op,
                scalar_bits,
                scalar_on_left,
                return_bool,
                pos,
            } => PromOp::ScalarBinary {
                op: *op,
                scalar: f64::from_bits(*scalar_bits),
                scalar_on_left: *scalar_on_left,
                return_bool: *return_bool,
                pos: *pos,
            },
            PromLogicalOp::InstantFunctionPerStep { func } => {
                if physical_inputs.len() < 2 {
                    return Err(DataFusionError::Internal(
                        "a per-step instant function needs its vector and parameters".into(),
                    ));
                }
                return Ok(Some(Arc::new(PromExec::over_all(
                    PromOp::InstantFunctionPerStep { func: *func },
                    physical_inputs.to_vec(),
                ))));
            }
            PromLogicalOp::AggregatePerStep { .. }
            | PromLogicalOp::RangeFunctionPerStep { .. }
            | PromLogicalOp::Info { .. } => {
                let [data, param] = physical_inputs else {
                    return Err(DataFusionError::Internal(
                        "a per-step parameter node needs two inputs".into(),
                    ));
                };
                let op = match &node.op {
                    PromLogicalOp::AggregatePerStep { op, grouping, pos } => {
                        PromOp::AggregatePerStep {
                            op: *op,
                            grouping: grouping.clone(),
                            pos: *pos,
                        }
                    }
                    PromLogicalOp::RangeFunctionPerStep {
                        func,
                        steps,
                        range,
                        offset,
                        at,
                        pos,
                    } => PromOp::RangeFunctionPerStep {
                        func: *func,
                        steps: *steps,
                        range: *range,
                        offset: *offset,
                        at: *at,
                        pos: *pos,
                    },
                    PromLogicalOp::Info {
                        name_matchers,
                        data_matchers,
                    } => {
                        let compile = |ms: &[MatcherSpec]| {
                            ms.iter()
                                .map(MatcherSpec::compile)
                                .collect::<std::result::Result<Vec<_>, _>>()
                                .map_err(|e| DataFusionError::External(Box::new(e)))
                        };
                        PromOp::Info {
                            name_matchers: compile(name_matchers)?,
                            data_matchers: compile(data_matchers)?,
                        }
                    }
                    _ => unreachable!("matched above"),
                };
                return Ok(Some(Arc::new(PromExec::binary(
                    op,
                    Arc::clone(data),
                    Arc::clone(param),
                ))));
            }
            PromLogicalOp::VectorBinary {
                op,
                matching,
                return_bool,
                pos,
            } => {
                let [lhs, rhs] = physical_inputs else {
                    return Err(DataFusionError::Internal(
                        "PromVectorBinary needs two inputs".into(),
                    ));
                };
                let op = PromOp::VectorBinary {
                    op: *op,
                    matching: matching.clone(),
                    return_bool: *return_bool,
                    pos: *pos,
                };
                return Ok(Some(Arc::new(PromExec::binary(
                    op,
                    Arc::clone(lhs),
                    Arc::clone(rhs),
                ))));
            }
        };
        let input = physical_inputs.first().cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{} has no input",
                UserDefinedLogicalNodeCore::name(node)
            ))
        })?;
        Ok(Some(Arc::new(PromExec::over(op, input))))
    }
}
