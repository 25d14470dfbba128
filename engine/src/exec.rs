//! [`PromExec`], the DataFusion physical operator that runs one PromQL step of a plan: a
//! series selection from a [`SeriesSource`], or one of the [`crate::ops`] over its input.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt, stream};
use hypnos_schemas::histogram::{FloatHistogram, ResetHint};
use hypnos_schemas::{
    Labels, Matcher, ReadHints, SeriesData, SeriesSource, TenantId, TimeRange, is_stale_nan,
};

use crate::ops::annotations::{Annotations, QueryPos};
use crate::ops::{
    AggOp, AggPositions, BinOp, EvalError, Grouping, HistogramFunc, HistogramNotes, InstantFunc,
    RangeFunc, Relabel, StepParam, StepValue, Steps, VectorMatching, VectorOp, absent,
    aggregate_per_step_positioned, aggregate_positioned, broadcast, count_values,
    forget_reset_hints, histogram_function_annotated, histogram_quantile_per_step_annotated,
    info_join, instant_function, instant_function_per_step, instant_sample_times, instant_select,
    range_function_annotated, range_function_per_step, scalar_binary_annotated, step_values,
    to_scalar, vector_binary_annotated,
};
use crate::vector::{VectorBuilder, floats_only, vector_schema};

/// Rows per batch emitted by a selection (a series is never split, so batches may be larger).
const SELECT_BATCH_ROWS: usize = 8192;

/// What a [`PromExec`] does.
#[derive(Debug, Clone)]
pub enum PromOp {
    /// Raw samples of the tenant's series matching `matchers` within `range`.
    Select {
        /// Read one after the other and concatenated: series of different tenants differ by
        /// their `tenant_id` label, so nothing needs merging.
        tenants: Vec<TenantId>,
        matchers: Vec<Matcher>,
        range: TimeRange,
        /// Drop staleness markers (for range-vector results, which never show them).
        drop_stale: bool,
        /// The query fails when the selection holds more samples than this.
        max_samples: usize,
        /// The coarsest resolution it may read and the aggregate it wants (default: raw).
        hints: ReadHints,
        /// The histograms only feed `histogram_count`/`histogram_sum`/`histogram_avg`: they
        /// are read as Prometheus' histogram-stats iterator reads them, count and sum only,
        /// with counter resets detected between consecutive samples ([`stats_only`]).
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
        /// Where the call's first argument is in the query (for annotations; `rate` and
        /// `increase` give their counter hint only with one).
        pos: Option<QueryPos>,
    },
    Aggregate {
        op: AggOp,
        grouping: Grouping,
        /// Where the aggregation, its parameter and its vector are in the query (for
        /// annotations).
        pos: AggPositions,
    },
    /// An aggregation whose parameter (`topk(scalar(x), v)`) is evaluated per step. The
    /// children: the vector, then the per-step scalar.
    AggregatePerStep {
        op: AggOp,
        grouping: Grouping,
        pos: AggPositions,
    },
    /// A range function whose parameter (`quantile_over_time(scalar(x), m[5m])`) is
    /// evaluated per step. The children: the samples, then the per-step scalar. `at`: the
    /// fixed end of every window under `@`.
    RangeFunctionPerStep {
        func: RangeFunc,
        steps: Steps,
        range: i64,
        offset: i64,
        at: Option<i64>,
        pos: Option<QueryPos>,
    },
    /// `info(v, {...})`: the children are `v`, then the info series (their sample times
    /// as values).
    Info {
        name_matchers: Vec<Matcher>,
        data_matchers: Vec<Matcher>,
    },
    /// `count_values(label, v)` with its grouping.
    CountValues {
        label: String,
        grouping: Grouping,
    },
    /// `histogram_quantile` / `histogram_fraction` over classic buckets. A quantile
    /// evaluated per step is a second child (one label-less series).
    Histogram {
        func: HistogramFunc,
        /// Where the quantile parameter and the vector argument are in the query.
        param_pos: Option<QueryPos>,
        vector_pos: Option<QueryPos>,
    },
    InstantFunction {
        func: InstantFunc,
    },
    /// An instant function whose scalar parameters are evaluated per step. The children:
    /// the vector, then one per-step scalar per parameter, in argument order.
    InstantFunctionPerStep {
        func: InstantFunc,
    },
    /// `timestamp(selector)`: the selected samples' own timestamps.
    InstantTimes {
        steps: Steps,
        lookback: i64,
        offset: i64,
    },
    /// A leaf: `time()` or a constant, at every step.
    StepValues {
        steps: Steps,
        value: StepValue,
    },
    /// `scalar(v)`.
    ToScalar {
        steps: Steps,
    },
    /// Repeat the single-time result of `@` at every step.
    Broadcast {
        steps: Steps,
    },
    /// A subquery's samples as a range function reads them (histograms' reset hints
    /// forgotten: [`crate::ops::forget_reset_hints`]).
    ForgetResetHints,
    /// `absent`: 1 with `labels` where the input has no sample.
    Absent {
        steps: Steps,
        labels: Labels,
    },
    Relabel {
        rule: Relabel,
    },
    ScalarBinary {
        op: BinOp,
        scalar: f64,
        scalar_on_left: bool,
        return_bool: bool,
        /// Where the binary expression is in the query (for annotations).
        pos: Option<QueryPos>,
    },
    /// Two instant vectors (the children: left, right) matched at every step.
    VectorBinary {
        op: VectorOp,
        matching: VectorMatching,
        return_bool: bool,
        /// Where the binary expression is in the query (for annotations).
        pos: Option<QueryPos>,
    },
}

impl fmt::Display for PromOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromOp::Select {
                tenants,
                matchers,
                range,
                drop_stale,
                hints,
                ..
            } => {
                let tenant: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
                let tenant = tenant.join("|");
                let m: Vec<String> = matchers
                    .iter()
                    .map(|m| format!("{}{}{:?}", m.name, op_str(m.op), m.value))
                    .collect();
                write!(
                    f,
                    "PromSelectExec: tenant={tenant}, matchers=[{}], range=[{}, {}], drop_stale={drop_stale}",
                    m.join(", "),
                    range.min,
                    range.max
                )?;
                if hints.max_resolution_ms > 0 {
                    write!(
                        f,
                        ", max_resolution={}ms, aggregate={:?}",
                        hints.max_resolution_ms, hints.aggregate
                    )?;
                }
                Ok(())
            }
            PromOp::Instant {
                steps,
                lookback,
                offset,
            } => write!(
                f,
                "PromInstantExec: steps={}..{} by {}, lookback={lookback}ms, offset={offset}ms",
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
                "PromRangeFunctionExec: func={}, range={range}ms, offset={offset}ms, steps={}..{} by {}",
                func.name(),
                steps.start,
                steps.end,
                steps.step
            ),
            PromOp::Aggregate { op, grouping, .. } => {
                write!(f, "PromAggregateExec: op={}, {grouping:?}", op.name())
            }
            PromOp::AggregatePerStep { op, grouping, .. } => {
                write!(
                    f,
                    "PromAggregateExec: op={}, {grouping:?}, per-step parameter",
                    op.name()
                )
            }
            PromOp::RangeFunctionPerStep {
                func,
                steps,
                range,
                offset,
                at,
                ..
            } => write!(
                f,
                "PromRangeFunctionExec: func={}, range={range}ms, offset={offset}ms, at={at:?}, steps={}..{} by {}, per-step parameter",
                func.name(),
                steps.start,
                steps.end,
                steps.step
            ),
            PromOp::Info {
                name_matchers,
                data_matchers,
            } => {
                let show = |ms: &[Matcher]| {
                    ms.iter()
                        .map(|m| format!("{}{}{:?}", m.name, op_str(m.op), m.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(
                    f,
                    "PromInfoExec: names=[{}], data=[{}]",
                    show(name_matchers),
                    show(data_matchers)
                )
            }
            PromOp::CountValues { label, grouping } => {
                write!(f, "PromCountValuesExec: label={label:?}, {grouping:?}")
            }
            PromOp::Histogram { func, .. } => write!(f, "PromHistogramExec: {func:?}"),
            PromOp::InstantFunction { func } => write!(f, "PromInstantFunctionExec: {func:?}"),
            PromOp::InstantFunctionPerStep { func } => {
                write!(f, "PromInstantFunctionPerStepExec: {func:?}")
            }
            PromOp::Broadcast { steps } => write!(
                f,
                "PromBroadcastExec: steps={}..{} by {}",
                steps.start, steps.end, steps.step
            ),
            PromOp::ForgetResetHints => write!(f, "PromForgetResetHintsExec"),
            PromOp::Absent { labels, .. } => write!(f, "PromAbsentExec: labels={labels}"),
            PromOp::InstantTimes {
                lookback, offset, ..
            } => write!(
                f,
                "PromInstantTimesExec: lookback={lookback}ms, offset={offset}ms"
            ),
            PromOp::StepValues { value, .. } => write!(f, "PromStepValuesExec: {value:?}"),
            PromOp::ToScalar { .. } => write!(f, "PromToScalarExec"),
            PromOp::Relabel { rule } => write!(f, "PromRelabelExec: {rule:?}"),
            PromOp::ScalarBinary {
                op,
                scalar,
                scalar_on_left,
                return_bool,
                ..
            } => write!(
                f,
                "PromScalarBinaryExec: op={op:?}, scalar={scalar}, scalar_on_left={scalar_on_left}, bool={return_bool}"
            ),
            PromOp::VectorBinary {
                op,
                matching,
                return_bool,
                ..
            } => write!(
                f,
                "PromVectorBinaryExec: op={op:?}, {matching:?}, bool={return_bool}"
            ),
        }
    }
}

fn op_str(op: hypnos_schemas::MatchOp) -> &'static str {
    match op {
        hypnos_schemas::MatchOp::Equal => "=",
        hypnos_schemas::MatchOp::NotEqual => "!=",
        hypnos_schemas::MatchOp::Re => "=~",
        hypnos_schemas::MatchOp::NotRe => "!~",
    }
}

/// A PromQL operator in a DataFusion physical plan. Single partition, vector schema in and
/// out. A selection has no input, [`PromOp::VectorBinary`] two, every other operator one.
#[derive(Debug)]
pub struct PromExec {
    op: PromOp,
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    source: Option<Arc<dyn SeriesSource>>,
    props: Arc<PlanProperties>,
}

impl PromExec {
    /// A selection leaf reading `source`.
    pub fn select(op: PromOp, source: Arc<dyn SeriesSource>) -> Self {
        Self::build(op, Vec::new(), Some(source))
    }

    /// A leaf that reads nothing (`time()`, constants).
    pub fn leaf(op: PromOp) -> Self {
        Self::build(op, Vec::new(), None)
    }

    /// An operator over `input`.
    pub fn over(op: PromOp, input: Arc<dyn ExecutionPlan>) -> Self {
        Self::build(op, vec![input], None)
    }

    /// An operator over two inputs ([`PromOp::VectorBinary`]).
    pub fn binary(op: PromOp, lhs: Arc<dyn ExecutionPlan>, rhs: Arc<dyn ExecutionPlan>) -> Self {
        Self::build(op, vec![lhs, rhs], None)
    }

    /// An operator over any number of inputs ([`PromOp::InstantFunctionPerStep`]).
    pub fn over_all(op: PromOp, inputs: Vec<Arc<dyn ExecutionPlan>>) -> Self {
        Self::build(op, inputs, None)
    }

    fn build(
        op: PromOp,
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        source: Option<Arc<dyn SeriesSource>>,
    ) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(vector_schema()),
            Partitioning::UnknownPartitioning(1),
            if matches!(
                op,
                PromOp::Aggregate { .. }
                    | PromOp::AggregatePerStep { .. }
                    | PromOp::RangeFunctionPerStep { .. }
                    | PromOp::InstantFunctionPerStep { .. }
                    | PromOp::Info { .. }
                    | PromOp::CountValues { .. }
                    | PromOp::Histogram { .. }
                    | PromOp::Absent { .. }
                    | PromOp::ToScalar { .. }
                    | PromOp::VectorBinary { .. }
            ) {
                EmissionType::Final
            } else {
                EmissionType::Incremental
            },
            Boundedness::Bounded,
        );
        Self {
            op,
            inputs,
            source,
            props: Arc::new(props),
        }
    }

    pub fn op(&self) -> &PromOp {
        &self.op
    }
}

impl DisplayAs for PromExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.op)
    }
}

impl ExecutionPlan for PromExec {
    fn name(&self) -> &'static str {
        "PromExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true; self.inputs.len()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.len() {
            n if n != self.inputs.len() => Err(DataFusionError::Internal(
                "PromExec: wrong number of children".into(),
            )),
            0 => Ok(self),
            _ => Ok(Arc::new(Self::build(
                self.op.clone(),
                children,
                self.source.clone(),
            ))),
        }
    }

    /// The operator's output, under the query's [`crate::QueryGuard`] when the session
    /// has one ([`crate::guard::GuardedStream`]).
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let guard = context
            .session_config()
            .get_extension::<crate::QueryGuard>();
        let inputs = guard
            .as_ref()
            .map(|g| crate::guard::Inputs::new(Arc::clone(g)));
        let stream = self.execute_op(partition, context, inputs.as_ref())?;
        Ok(match guard {
            Some(g) => Box::pin(crate::guard::GuardedStream::new(stream, g, inputs)),
            None => stream,
        })
    }
}

impl PromExec {
    /// The operator's output; what its inputs hand it counts in `inputs` when given.
    fn execute_op(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
        inputs: Option<&crate::guard::Inputs>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "PromExec has one partition, asked for {partition}"
            )));
        }
        let schema = vector_schema();
        // The query's annotations collector; a plan run without one annotates into the void.
        let notes = context
            .session_config()
            .get_extension::<Annotations>()
            .unwrap_or_default();
        if let PromOp::StepValues { steps, value } = &self.op {
            let (steps, value) = (*steps, *value);
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(async move { step_values(steps, value) }),
            )));
        }
        if let PromOp::Select {
            tenants,
            matchers,
            range,
            drop_stale,
            max_samples,
            hints,
            histogram_stats,
        } = &self.op
        {
            let histogram_stats = *histogram_stats;
            let max_samples = *max_samples;
            // The caller's budget (series and samples this query may read), if any.
            let budget = context
                .session_config()
                .get_extension::<crate::QueryBudget>();
            let source = self
                .source
                .clone()
                .ok_or_else(|| DataFusionError::Internal("selection without a source".into()))?;
            let (tenants, matchers, range, drop_stale, hints) = (
                tenants.clone(),
                matchers.clone(),
                *range,
                *drop_stale,
                *hints,
            );
            let fut = async move {
                let mut series = Vec::new();
                for tenant in &tenants {
                    let part = source
                        .select_hinted(tenant, &matchers, range, hints)
                        .await
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    if let Some(b) = &budget {
                        let samples = part.iter().map(SeriesData::len).sum();
                        b.charge(tenant, part.len(), samples)
                            .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    }
                    series.extend(part);
                }
                let loaded: usize = series.iter().map(|s| s.len()).sum();
                if loaded > max_samples {
                    return Err(DataFusionError::External(Box::new(EvalError(
                        "query processing would load too many samples into memory in query execution"
                            .into(),
                    ))));
                }
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                Ok::<_, DataFusionError>(stream::iter(
                    series_batches(series, drop_stale, histogram_stats)?
                        .into_iter()
                        .map(Ok),
                ))
            };
            let s = stream::once(fut).try_flatten();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, s)));
        }
        if let (PromOp::InstantFunctionPerStep { func }, [data, params @ ..]) =
            (&self.op, self.inputs.as_slice())
        {
            let data = self.child(data, Arc::clone(&context), inputs)?;
            let params = params
                .iter()
                .map(|p| self.child(p, Arc::clone(&context), inputs))
                .collect::<Result<Vec<_>>>()?;
            let func = *func;
            let fut = async move {
                let d: Vec<RecordBatch> = data.try_collect().await?;
                let mut ps = Vec::with_capacity(params.len());
                for p in params {
                    let batches: Vec<RecordBatch> = p.try_collect().await?;
                    ps.push(StepParam::from_batches(&batches)?);
                }
                let out = d
                    .iter()
                    .map(|b| instant_function_per_step(b, func, &ps))
                    .collect::<Result<Vec<RecordBatch>>>()?;
                Ok::<_, DataFusionError>(stream::iter(out.into_iter().map(Ok)))
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut).try_flatten(),
            )));
        }
        if let PromOp::VectorBinary {
            op,
            matching,
            return_bool,
            pos,
        } = &self.op
        {
            let [lhs, rhs] = self.inputs.as_slice() else {
                return Err(DataFusionError::Internal(
                    "vector binary operation without two inputs".into(),
                ));
            };
            let (lhs, rhs) = (
                self.child(lhs, Arc::clone(&context), inputs)?,
                self.child(rhs, context, inputs)?,
            );
            let (op, matching, return_bool, pos) = (*op, matching.clone(), *return_bool, *pos);
            let notes = Arc::clone(&notes);
            let fut = async move {
                let (l, r): (Vec<RecordBatch>, Vec<RecordBatch>) =
                    futures::try_join!(lhs.try_collect(), rhs.try_collect())?;
                vector_binary_annotated(&l, &r, op, &matching, return_bool, &notes, pos)
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut),
            )));
        }
        if let (
            PromOp::AggregatePerStep { .. }
            | PromOp::RangeFunctionPerStep { .. }
            | PromOp::Info { .. }
            | PromOp::Histogram {
                func: HistogramFunc::Quantile(_),
                ..
            },
            [data, param],
        ) = (&self.op, self.inputs.as_slice())
        {
            let (data, param) = (
                self.child(data, Arc::clone(&context), inputs)?,
                self.child(param, context, inputs)?,
            );
            let op = self.op.clone();
            let notes = Arc::clone(&notes);
            let fut = async move {
                let (d, p): (Vec<RecordBatch>, Vec<RecordBatch>) =
                    futures::try_join!(data.try_collect(), param.try_collect())?;
                let out: Vec<RecordBatch> = match op {
                    PromOp::AggregatePerStep { op, grouping, pos } => {
                        vec![aggregate_per_step_positioned(
                            &d, &p, op, &grouping, &notes, pos,
                        )?]
                    }
                    PromOp::Info {
                        name_matchers,
                        data_matchers,
                    } => vec![info_join(&d, &p, &name_matchers, &data_matchers)?],
                    PromOp::Histogram {
                        param_pos,
                        vector_pos,
                        ..
                    } => vec![histogram_quantile_per_step_annotated(
                        &d,
                        &p,
                        HistogramNotes {
                            notes: Some(&notes),
                            param_pos,
                            vector_pos,
                        },
                    )?],
                    PromOp::RangeFunctionPerStep {
                        func,
                        steps,
                        range,
                        offset,
                        at,
                        pos,
                    } => {
                        let param = StepParam::from_batches(&p)?;
                        d.iter()
                            .map(|b| {
                                range_function_per_step(
                                    b, &param, func, steps, range, offset, at, &notes, pos,
                                )
                            })
                            .collect::<Result<Vec<RecordBatch>>>()?
                    }
                    _ => {
                        return Err(DataFusionError::Internal(
                            "per-step parameter on another operator".into(),
                        ));
                    }
                };
                Ok::<_, DataFusionError>(stream::iter(out.into_iter().map(Ok)))
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut).try_flatten(),
            )));
        }
        let input = self.child(
            self.inputs
                .first()
                .ok_or_else(|| DataFusionError::Internal("operator without input".into()))?,
            context,
            inputs,
        )?;
        let op = self.op.clone();
        if let PromOp::Aggregate { op, grouping, pos } = op {
            let fut = async move {
                let batches: Vec<RecordBatch> = input.try_collect().await?;
                aggregate_positioned(&batches, op, &grouping, &notes, pos)
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut),
            )));
        }
        if let PromOp::CountValues { label, grouping } = op {
            let fut = async move {
                let batches: Vec<RecordBatch> = input.try_collect().await?;
                count_values(&batches, &label, &grouping)
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut),
            )));
        }
        if let PromOp::Histogram {
            func,
            param_pos,
            vector_pos,
        } = op
        {
            let fut = async move {
                let batches: Vec<RecordBatch> = input.try_collect().await?;
                histogram_function_annotated(
                    &batches,
                    &func,
                    HistogramNotes {
                        notes: Some(&notes),
                        param_pos,
                        vector_pos,
                    },
                )
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut),
            )));
        }
        if let PromOp::ToScalar { steps } = op {
            let fut = async move {
                let batches: Vec<RecordBatch> = input.try_collect().await?;
                to_scalar(&batches, steps)
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut),
            )));
        }
        if let PromOp::Absent { steps, labels } = op {
            let fut = async move {
                let batches: Vec<RecordBatch> = input.try_collect().await?;
                absent(&batches, steps, &labels)
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                stream::once(fut),
            )));
        }
        let s = input.map(move |batch| {
            let batch = batch?;
            match &op {
                PromOp::Instant {
                    steps,
                    lookback,
                    offset,
                } => instant_select(&batch, *steps, *lookback, *offset),
                PromOp::RangeFunction {
                    func,
                    steps,
                    range,
                    offset,
                    pos,
                } => range_function_annotated(&batch, *func, *steps, *range, *offset, &notes, *pos),
                PromOp::ScalarBinary {
                    op,
                    scalar,
                    scalar_on_left,
                    return_bool,
                    pos,
                } => scalar_binary_annotated(
                    &batch,
                    *op,
                    *scalar,
                    *scalar_on_left,
                    *return_bool,
                    &notes,
                    *pos,
                ),
                PromOp::InstantFunction { func } => instant_function(&batch, *func),
                PromOp::Broadcast { steps } => broadcast(&batch, *steps),
                PromOp::ForgetResetHints => forget_reset_hints(&batch),
                PromOp::InstantTimes {
                    steps,
                    lookback,
                    offset,
                } => instant_sample_times(&batch, *steps, *lookback, *offset),
                PromOp::Relabel { rule } => rule.apply(&batch),
                PromOp::Select { .. }
                | PromOp::Aggregate { .. }
                | PromOp::AggregatePerStep { .. }
                | PromOp::RangeFunctionPerStep { .. }
                | PromOp::InstantFunctionPerStep { .. }
                | PromOp::Info { .. }
                | PromOp::CountValues { .. }
                | PromOp::Histogram { .. }
                | PromOp::Absent { .. }
                | PromOp::ToScalar { .. }
                | PromOp::StepValues { .. }
                | PromOp::VectorBinary { .. } => {
                    unreachable!("handled above")
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, s)))
    }
}

impl PromOp {
    /// True for the operators that evaluate native histogram samples; every other operator
    /// gets its input without them (see [`crate::vector::floats_only`]).
    pub fn accepts_histograms(&self) -> bool {
        matches!(
            self,
            PromOp::Select { .. }
                | PromOp::Instant { .. }
                | PromOp::InstantTimes { .. }
                | PromOp::Broadcast { .. }
                | PromOp::ForgetResetHints
                | PromOp::Relabel { .. }
                | PromOp::Histogram { .. }
                | PromOp::InstantFunction { .. }
                | PromOp::InstantFunctionPerStep { .. }
                | PromOp::ScalarBinary { .. }
                | PromOp::VectorBinary { .. }
                | PromOp::RangeFunction { .. }
                | PromOp::RangeFunctionPerStep { .. }
                | PromOp::Aggregate { .. }
                | PromOp::AggregatePerStep { .. }
                | PromOp::CountValues { .. }
                | PromOp::Absent { .. }
                | PromOp::ToScalar { .. }
        )
    }
}

impl PromExec {
    /// Runs one input of this operator, without its histogram rows unless the operator
    /// evaluates histograms.
    fn child(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        context: Arc<TaskContext>,
        inputs: Option<&crate::guard::Inputs>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = input.execute(0, context)?;
        let stream = match inputs {
            Some(i) => i.counted(stream),
            None => stream,
        };
        if self.op.accepts_histograms() {
            return Ok(stream);
        }
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.map(|b| b.and_then(|b| floats_only(&b))),
        )))
    }
}

/// Packs selected series into vector batches of about [`SELECT_BATCH_ROWS`] rows, their
/// histograms reduced by [`stats_only`] when `histogram_stats`.
fn series_batches(
    series: Vec<SeriesData>,
    drop_stale: bool,
    histogram_stats: bool,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut b = VectorBuilder::new();
    for s in series {
        b.start_series(&s.labels);
        let histograms = s.histograms();
        if histogram_stats && let Some(h) = histograms {
            stats_only(
                &mut b,
                s.timestamps().values(),
                s.values().values(),
                h,
                drop_stale,
            )?;
        } else {
            for (i, (t, v)) in s
                .timestamps()
                .values()
                .iter()
                .zip(s.values().values())
                .enumerate()
            {
                match histograms.filter(|h| h.is_valid(i)) {
                    Some(h) => b.push_histogram_bytes(*t, h.value(i).to_vec()),
                    None if drop_stale && is_stale_nan(*v) => {}
                    None => b.push(*t, *v),
                }
            }
        }
        if b.rows() >= SELECT_BATCH_ROWS {
            out.push(std::mem::take(&mut b).finish());
        }
    }
    if b.rows() > 0 {
        out.push(b.finish());
    }
    Ok(out)
}

/// One series' samples as Prometheus' histogram-stats iterator yields them: a histogram
/// keeps its schema, count, sum and counter-reset hint only (its buckets are not needed),
/// and an "unknown" hint becomes "reset" or "not reset" by comparing the whole histogram
/// with the series' previous one, so resets stay detectable without the buckets.
fn stats_only(
    b: &mut VectorBuilder,
    ts: &[i64],
    values: &[f64],
    histograms: &arrow::array::BinaryArray,
    drop_stale: bool,
) -> Result<()> {
    let mut last: Option<FloatHistogram> = None;
    for (i, (t, v)) in ts.iter().zip(values).enumerate() {
        if !histograms.is_valid(i) {
            if !(drop_stale && is_stale_nan(*v)) {
                b.push(*t, *v);
            }
            continue;
        }
        let h = FloatHistogram::decode(histograms.value(i))
            .map_err(|e| DataFusionError::Internal(e.to_string()))?;
        let hint = match (h.counter_reset_hint, &last) {
            (ResetHint::Unknown, Some(previous)) if h.detect_reset(previous) => ResetHint::Reset,
            (ResetHint::Unknown, Some(_)) => ResetHint::NotReset,
            (hint, _) => hint,
        };
        b.push_histogram(
            *t,
            &FloatHistogram {
                counter_reset_hint: hint,
                schema: h.schema,
                count: h.count,
                sum: h.sum,
                ..FloatHistogram::default()
            },
        );
        last = Some(h);
    }
    Ok(())
}
