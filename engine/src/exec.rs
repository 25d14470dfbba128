//! [`PromExec`], the DataFusion physical operator that runs one PromQL step of a plan (the
//! planner's [`PromOp`]): a series selection from a [`SeriesSource`], or one of the
//! [`crate::ops`] over its input.

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
use hypnos_planner::annotations::Annotations;
use hypnos_planner::ops::{EvalError, HistogramFunc, InstantFunc, StepValue, Steps};
use hypnos_planner::{MatcherSpec, PromOp};
use hypnos_schemas::histogram::{FloatHistogram, ResetHint};
use hypnos_schemas::{
    Matcher, ReadHints, SeriesData, SeriesSource, TenantId, TimeRange, is_stale_nan,
};

use crate::ops::{
    HistogramNotes, StepParam, absent, aggregate_per_step_positioned, aggregate_positioned,
    broadcast, count_values, forget_reset_hints, histogram_function_annotated,
    histogram_quantile_per_step_annotated, info_join, instant_function, instant_function_per_step,
    instant_sample_times, instant_select, range_function_annotated, range_function_per_step,
    relabel, scalar_binary_annotated, step_values, to_scalar, vector_binary_annotated,
};
use crate::vector::{VectorBuilder, floats_only, vector_schema};

/// Rows per batch emitted by a selection (a series is never split, so batches may be larger).
const SELECT_BATCH_ROWS: usize = 8192;

/// What a [`PromExec`] fixes when it is planned: the compiled label matchers of a selection
/// or of `info`, and the bound of a selection.
#[derive(Debug, Clone, Default)]
struct Compiled {
    /// A selection's matchers, or `info`'s matchers of the info series' names.
    matchers: Vec<Matcher>,
    /// `info`'s matchers of the data labels.
    data_matchers: Vec<Matcher>,
    /// A selection fails when it holds more samples than this.
    max_samples: usize,
}

fn compile(specs: &[MatcherSpec]) -> Result<Vec<Matcher>> {
    specs
        .iter()
        .map(MatcherSpec::compile)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

fn op_str(op: hypnos_schemas::MatchOp) -> &'static str {
    match op {
        hypnos_schemas::MatchOp::Equal => "=",
        hypnos_schemas::MatchOp::NotEqual => "!=",
        hypnos_schemas::MatchOp::Re => "=~",
        hypnos_schemas::MatchOp::NotRe => "!~",
    }
}

/// Matchers as the physical plan shows them: `name="value", ...`.
fn show_matchers(ms: &[Matcher]) -> String {
    ms.iter()
        .map(|m| format!("{}{}{:?}", m.name, op_str(m.op), m.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stream of the batches `fut` computes, in order.
fn batches_stream<F>(fut: F) -> SendableRecordBatchStream
where
    F: Future<Output = Result<Vec<RecordBatch>>> + Send + 'static,
{
    let s = stream::once(async move { fut.await.map(|out| stream::iter(out.into_iter().map(Ok))) })
        .try_flatten();
    Box::pin(RecordBatchStreamAdapter::new(vector_schema(), s))
}

/// A stream of the one batch `fut` computes.
fn batch_stream<F>(fut: F) -> SendableRecordBatchStream
where
    F: Future<Output = Result<RecordBatch>> + Send + 'static,
{
    Box::pin(RecordBatchStreamAdapter::new(
        vector_schema(),
        stream::once(fut),
    ))
}

/// A PromQL operator in a DataFusion physical plan. Single partition, vector schema in and
/// out. A selection has no input, [`PromOp::VectorBinary`] two, every other operator one.
#[derive(Debug)]
pub struct PromExec {
    op: PromOp,
    compiled: Compiled,
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    source: Option<Arc<dyn SeriesSource>>,
    props: Arc<PlanProperties>,
}

impl PromExec {
    /// Plans one node of a plan: `op` over `inputs`, the physical plans of the node's
    /// inputs; a selection reads `source` and fails past `max_samples` samples. `name` is the
    /// node's, for the error when an input is missing.
    pub fn plan(
        op: PromOp,
        inputs: &[Arc<dyn ExecutionPlan>],
        source: &Arc<dyn SeriesSource>,
        max_samples: usize,
        name: &str,
    ) -> Result<Self> {
        let none = Compiled::default();
        match &op {
            PromOp::Select { matchers, .. } => {
                let compiled = Compiled {
                    matchers: compile(matchers)?,
                    max_samples,
                    ..Compiled::default()
                };
                Ok(Self::build(
                    op,
                    compiled,
                    Vec::new(),
                    Some(Arc::clone(source)),
                ))
            }
            // A leaf that reads nothing (`time()`, constants).
            PromOp::StepValues { .. } => Ok(Self::build(op, none, Vec::new(), None)),
            // A quantile evaluated per step is the second input.
            PromOp::Histogram { .. } if inputs.len() == 2 => {
                Ok(Self::build(op, none, inputs.to_vec(), None))
            }
            PromOp::InstantFunctionPerStep { .. } => {
                if inputs.len() < 2 {
                    return Err(DataFusionError::Internal(
                        "a per-step instant function needs its vector and parameters".into(),
                    ));
                }
                Ok(Self::build(op, none, inputs.to_vec(), None))
            }
            PromOp::AggregatePerStep { .. }
            | PromOp::RangeFunctionPerStep { .. }
            | PromOp::Info { .. } => {
                let [data, param] = inputs else {
                    return Err(DataFusionError::Internal(
                        "a per-step parameter node needs two inputs".into(),
                    ));
                };
                let compiled = match &op {
                    PromOp::Info {
                        name_matchers,
                        data_matchers,
                    } => Compiled {
                        matchers: compile(name_matchers)?,
                        data_matchers: compile(data_matchers)?,
                        max_samples: 0,
                    },
                    _ => none,
                };
                let inputs = vec![Arc::clone(data), Arc::clone(param)];
                Ok(Self::build(op, compiled, inputs, None))
            }
            PromOp::VectorBinary { .. } => {
                let [lhs, rhs] = inputs else {
                    return Err(DataFusionError::Internal(
                        "PromVectorBinary needs two inputs".into(),
                    ));
                };
                let inputs = vec![Arc::clone(lhs), Arc::clone(rhs)];
                Ok(Self::build(op, none, inputs, None))
            }
            _ => {
                let input = inputs
                    .first()
                    .cloned()
                    .ok_or_else(|| DataFusionError::Internal(format!("{name} has no input")))?;
                Ok(Self::build(op, none, vec![input], None))
            }
        }
    }

    fn build(
        op: PromOp,
        compiled: Compiled,
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
            compiled,
            inputs,
            source,
            props: Arc::new(props),
        }
    }

    pub fn op(&self) -> &PromOp {
        &self.op
    }

    /// A selection as the physical plan shows it.
    fn fmt_select(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PromOp::Select {
            tenants,
            min,
            max,
            drop_stale,
            hints,
            ..
        } = &self.op
        else {
            return Ok(());
        };
        let tenant: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        let tenant = tenant.join("|");
        write!(
            f,
            "PromSelectExec: tenant={tenant}, matchers=[{}], range=[{min}, {max}], drop_stale={drop_stale}",
            show_matchers(&self.compiled.matchers),
        )?;
        if hints.0.max_resolution_ms > 0 {
            write!(
                f,
                ", max_resolution={}ms, aggregate={:?}",
                hints.0.max_resolution_ms, hints.0.aggregate
            )?;
        }
        Ok(())
    }
}

impl DisplayAs for PromExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.op {
            PromOp::Select { .. } => self.fmt_select(f),
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
            PromOp::Info { .. } => write!(
                f,
                "PromInfoExec: names=[{}], data=[{}]",
                show_matchers(&self.compiled.matchers),
                show_matchers(&self.compiled.data_matchers)
            ),
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
                scalar_bits,
                scalar_on_left,
                return_bool,
                ..
            } => write!(
                f,
                "PromScalarBinaryExec: op={op:?}, scalar={}, scalar_on_left={scalar_on_left}, bool={return_bool}",
                f64::from_bits(*scalar_bits)
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
                self.compiled.clone(),
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
        // The query's annotations collector; a plan run without one annotates into the void.
        let notes = context
            .session_config()
            .get_extension::<Annotations>()
            .unwrap_or_default();
        match (&self.op, self.inputs.as_slice()) {
            (PromOp::StepValues { steps, value }, _) => Ok(step_values_stream(*steps, *value)),
            (PromOp::Select { .. }, _) => self.execute_select(&context),
            (PromOp::InstantFunctionPerStep { func }, [data, params @ ..]) => {
                self.execute_instant_per_step(*func, data, params, context, inputs)
            }
            (PromOp::VectorBinary { .. }, _) => self.execute_vector_binary(context, inputs, notes),
            (
                PromOp::AggregatePerStep { .. }
                | PromOp::RangeFunctionPerStep { .. }
                | PromOp::Info { .. }
                | PromOp::Histogram {
                    func: HistogramFunc::Quantile(_),
                    ..
                },
                [data, param],
            ) => self.execute_per_step(data, param, context, inputs, notes),
            _ => self.execute_over_input(context, inputs, notes),
        }
    }

    /// A selection: the series of every tenant, charged to the query's budget, sorted by
    /// labels.
    fn execute_select(&self, context: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let PromOp::Select {
            tenants,
            min,
            max,
            drop_stale,
            hints,
            histogram_stats,
            ..
        } = &self.op
        else {
            return Err(DataFusionError::Internal("not a selection".into()));
        };
        let histogram_stats = *histogram_stats;
        let max_samples = self.compiled.max_samples;
        // The caller's budget (series and samples this query may read), if any.
        let budget = context
            .session_config()
            .get_extension::<crate::QueryBudget>();
        let source = self
            .source
            .clone()
            .ok_or_else(|| DataFusionError::Internal("selection without a source".into()))?;
        let (tenants, matchers, range, drop_stale, hints): (_, _, _, _, ReadHints) = (
            tenants.clone(),
            self.compiled.matchers.clone(),
            TimeRange::new(*min, *max),
            *drop_stale,
            hints.0,
        );
        Ok(batches_stream(async move {
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
            series_batches(series, drop_stale, histogram_stats)
        }))
    }

    /// An instant function whose parameters are evaluated per step: the vector, then one
    /// per-step scalar per parameter.
    fn execute_instant_per_step(
        &self,
        func: InstantFunc,
        data: &Arc<dyn ExecutionPlan>,
        params: &[Arc<dyn ExecutionPlan>],
        context: Arc<TaskContext>,
        inputs: Option<&crate::guard::Inputs>,
    ) -> Result<SendableRecordBatchStream> {
        let data = self.child(data, Arc::clone(&context), inputs)?;
        let params = params
            .iter()
            .map(|p| self.child(p, Arc::clone(&context), inputs))
            .collect::<Result<Vec<_>>>()?;
        Ok(batches_stream(async move {
            let d: Vec<RecordBatch> = data.try_collect().await?;
            let mut ps = Vec::with_capacity(params.len());
            for p in params {
                let batches: Vec<RecordBatch> = p.try_collect().await?;
                ps.push(StepParam::from_batches(&batches)?);
            }
            d.iter()
                .map(|b| instant_function_per_step(b, func, &ps))
                .collect::<Result<Vec<RecordBatch>>>()
        }))
    }

    /// Two instant vectors matched at every step.
    fn execute_vector_binary(
        &self,
        context: Arc<TaskContext>,
        inputs: Option<&crate::guard::Inputs>,
        notes: Arc<Annotations>,
    ) -> Result<SendableRecordBatchStream> {
        let PromOp::VectorBinary {
            op,
            matching,
            return_bool,
            pos,
        } = &self.op
        else {
            return Err(DataFusionError::Internal(
                "not a vector binary operation".into(),
            ));
        };
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
        Ok(batch_stream(async move {
            let (l, r): (Vec<RecordBatch>, Vec<RecordBatch>) =
                futures::try_join!(lhs.try_collect(), rhs.try_collect())?;
            vector_binary_annotated(&l, &r, op, &matching, return_bool, &notes, pos)
        }))
    }

    /// An operator with a per-step parameter: the data, then the parameter's values.
    fn execute_per_step(
        &self,
        data: &Arc<dyn ExecutionPlan>,
        param: &Arc<dyn ExecutionPlan>,
        context: Arc<TaskContext>,
        inputs: Option<&crate::guard::Inputs>,
        notes: Arc<Annotations>,
    ) -> Result<SendableRecordBatchStream> {
        let (data, param) = (
            self.child(data, Arc::clone(&context), inputs)?,
            self.child(param, context, inputs)?,
        );
        let op = self.op.clone();
        let compiled = self.compiled.clone();
        Ok(batches_stream(async move {
            let (d, p): (Vec<RecordBatch>, Vec<RecordBatch>) =
                futures::try_join!(data.try_collect(), param.try_collect())?;
            let out: Vec<RecordBatch> = match op {
                PromOp::AggregatePerStep { op, grouping, pos } => {
                    vec![aggregate_per_step_positioned(
                        &d, &p, op, &grouping, &notes, pos,
                    )?]
                }
                PromOp::Info { .. } => vec![info_join(
                    &d,
                    &p,
                    &compiled.matchers,
                    &compiled.data_matchers,
                )?],
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
            Ok(out)
        }))
    }

    /// An operator over its one input: those that need the whole input at once, then those
    /// that work batch by batch.
    fn execute_over_input(
        &self,
        context: Arc<TaskContext>,
        inputs: Option<&crate::guard::Inputs>,
        notes: Arc<Annotations>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.child(
            self.inputs
                .first()
                .ok_or_else(|| DataFusionError::Internal("operator without input".into()))?,
            context,
            inputs,
        )?;
        let op = self.op.clone();
        match op {
            PromOp::Aggregate { .. }
            | PromOp::CountValues { .. }
            | PromOp::Histogram { .. }
            | PromOp::ToScalar { .. }
            | PromOp::Absent { .. } => Ok(batch_stream(async move {
                let batches: Vec<RecordBatch> = input.try_collect().await?;
                whole_input(&batches, op, &notes)
            })),
            op => {
                let s = input.map(move |batch| batch_by_batch(&batch?, &op, &notes));
                Ok(Box::pin(RecordBatchStreamAdapter::new(vector_schema(), s)))
            }
        }
    }
}

/// A leaf: `time()` or a constant, at every step.
fn step_values_stream(steps: Steps, value: StepValue) -> SendableRecordBatchStream {
    batch_stream(async move { step_values(steps, value) })
}

/// The operators that need their whole input at once.
fn whole_input(batches: &[RecordBatch], op: PromOp, notes: &Annotations) -> Result<RecordBatch> {
    match op {
        PromOp::Aggregate { op, grouping, pos } => {
            aggregate_positioned(batches, op, &grouping, notes, pos)
        }
        PromOp::CountValues { label, grouping } => count_values(batches, &label, &grouping),
        PromOp::Histogram {
            func,
            param_pos,
            vector_pos,
        } => histogram_function_annotated(
            batches,
            &func,
            HistogramNotes {
                notes: Some(notes),
                param_pos,
                vector_pos,
            },
        ),
        PromOp::ToScalar { steps } => to_scalar(batches, steps),
        PromOp::Absent { steps, labels } => absent(batches, steps, &labels),
        _ => Err(DataFusionError::Internal(
            "a whole-input operator expected".into(),
        )),
    }
}

/// The operators that work batch by batch.
fn batch_by_batch(batch: &RecordBatch, op: &PromOp, notes: &Annotations) -> Result<RecordBatch> {
    match op {
        PromOp::Instant {
            steps,
            lookback,
            offset,
        } => instant_select(batch, *steps, *lookback, *offset),
        PromOp::RangeFunction {
            func,
            steps,
            range,
            offset,
            pos,
        } => range_function_annotated(batch, *func, *steps, *range, *offset, notes, *pos),
        PromOp::ScalarBinary {
            op,
            scalar_bits,
            scalar_on_left,
            return_bool,
            pos,
        } => scalar_binary_annotated(
            batch,
            *op,
            f64::from_bits(*scalar_bits),
            *scalar_on_left,
            *return_bool,
            notes,
            *pos,
        ),
        PromOp::InstantFunction { func } => instant_function(batch, *func),
        PromOp::Broadcast { steps } => broadcast(batch, *steps),
        PromOp::ForgetResetHints => forget_reset_hints(batch),
        PromOp::InstantTimes {
            steps,
            lookback,
            offset,
        } => instant_sample_times(batch, *steps, *lookback, *offset),
        PromOp::Relabel { rule } => relabel(batch, rule),
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
}

/// True for the operators that evaluate native histogram samples; every other operator
/// gets its input without them (see [`crate::vector::floats_only`]).
fn accepts_histograms(op: &PromOp) -> bool {
    matches!(
        op,
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
        if accepts_histograms(&self.op) {
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
