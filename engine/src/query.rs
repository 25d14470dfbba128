//! The entry point: [`QueryEngine`] runs instant and range queries for one tenant.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::ensure_coop::EnsureCooperative;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;
use futures::FutureExt;
use futures::future::BoxFuture;
use hypnos_planner::annotations::{AnnotationKind, Annotations};
use hypnos_planner::ops::{EvalError, Steps, name_dropped, remove_dropped_name};
use hypnos_planner::{
    AnnotatedResult, InstantSample, Lowered, MaxSourceResolution, PlanContext, PlannedQuery,
    PromNode, QueryAnnotations, QueryError, QueryResult, RangeSeries, plan_query,
};
use hypnos_schemas::histogram::FloatHistogram;
use hypnos_schemas::{Labels, SeriesSource, TenantId};

use crate::guard::Interrupted;
use crate::planning::PromExtensionPlanner;
use crate::vector::series_rows;
use crate::{QueryBudget, QueryGuard};

/// The tenants a query reads: one ([`TenantId`]) or several (a slice, for a federated query
/// whose results carry each series' `tenant_id`).
pub trait TenantScope {
    fn tenant_ids(&self) -> &[TenantId];
}

impl TenantScope for TenantId {
    fn tenant_ids(&self) -> &[TenantId] {
        std::slice::from_ref(self)
    }
}

impl TenantScope for [TenantId] {
    fn tenant_ids(&self) -> &[TenantId] {
        self
    }
}

impl TenantScope for Vec<TenantId> {
    fn tenant_ids(&self) -> &[TenantId] {
        self
    }
}

/// Prometheus' default `--query.max-samples`.
pub const DEFAULT_MAX_SAMPLES: usize = 50_000_000;

/// Per-query options (from the HTTP parameters).
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Lookback delta of instant-vector selection, milliseconds (Prometheus' default 5m).
    pub lookback_delta_ms: i64,
    /// The query fails with [`QueryError::Timeout`] past this.
    pub timeout: Duration,
    /// What the query may read; charged by every selection (see [`QueryBudget`]).
    pub budget: Option<Arc<QueryBudget>>,
    /// The coarsest resolution selections may read (default: raw).
    pub max_source_resolution: MaxSourceResolution,
    /// Raised by the caller when it gives up on the query: the operators stop at their next
    /// check ([`QueryGuard`]).
    pub cancel: Arc<AtomicBool>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            timeout: Duration::from_secs(120),
            budget: None,
            max_source_resolution: MaxSourceResolution::Raw,
            cancel: Arc::default(),
        }
    }
}

/// Evaluates PromQL over a [`SeriesSource`] with DataFusion.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    planner: Arc<DefaultPhysicalPlanner>,
    /// The planner of `PromNode`s, also called directly (see [`Self::plan_prom`]).
    prom: Arc<PromExtensionPlanner>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine").finish_non_exhaustive()
    }
}

fn df_error(e: DataFusionError) -> QueryError {
    match e {
        DataFusionError::External(inner) => match inner.downcast::<EvalError>() {
            Ok(e) => QueryError::Execution(e.0),
            Err(inner) => match inner.downcast::<Interrupted>() {
                Ok(_) => QueryError::Timeout("query execution"),
                Err(inner) => QueryError::Internal(inner.to_string()),
            },
        },
        DataFusionError::Context(_, inner) => df_error(*inner),
        other => QueryError::Internal(other.to_string()),
    }
}

impl QueryEngine {
    pub fn new(source: Arc<dyn SeriesSource>) -> Self {
        Self::with_max_samples(source, DEFAULT_MAX_SAMPLES)
    }

    /// An engine whose queries fail with an execution error (422) when one selection would
    /// load more than `max_samples` samples.
    pub fn with_max_samples(source: Arc<dyn SeriesSource>, max_samples: usize) -> Self {
        // PromQL operators work on one ordered stream; parallelism comes from concurrent
        // queries and, later, from partitioning by series.
        let config = SessionConfig::new().with_target_partitions(1);
        let prom = Arc::new(PromExtensionPlanner {
            source,
            max_samples,
        });
        Self {
            ctx: SessionContext::new_with_config(config),
            planner: Arc::new(DefaultPhysicalPlanner::with_extension_planners(vec![
                Arc::clone(&prom) as Arc<dyn ExtensionPlanner + Send + Sync>,
            ])),
            prom,
        }
    }

    fn lower(
        &self,
        tenants: &[TenantId],
        query: &str,
        steps: Steps,
        opts: &QueryOptions,
        notes: &Annotations,
    ) -> Result<PlannedQuery, QueryError> {
        plan_query(
            query,
            &PlanContext {
                tenants,
                steps,
                lookback_delta_ms: opts.lookback_delta_ms,
                max_source_resolution: opts.max_source_resolution,
                notes,
            },
        )
    }

    async fn physical(
        &self,
        plan: &LogicalPlan,
        state: &SessionState,
    ) -> Result<(LogicalPlan, Arc<dyn ExecutionPlan>), QueryError> {
        let optimized = state.optimize(plan).map_err(df_error)?;
        let physical = self
            .planner
            .create_physical_plan(&optimized, state)
            .await
            .map_err(df_error)?;
        Ok((optimized, physical))
    }

    /// The physical plan of a plan made of `PromNode`s only, planned directly
    /// ([`Self::plan_prom`]); `None` for any other plan.
    async fn prom_physical(
        &self,
        plan: &LogicalPlan,
        state: &SessionState,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>, QueryError> {
        let Some(p) = self.plan_prom(plan, state).await? else {
            return Ok(None);
        };
        // The one physical optimizer rule that changes such a plan: leaves get a
        // `CooperativeExec`, so that long reads yield to the runtime.
        EnsureCooperative::new()
            .optimize(p, state.config_options())
            .map(Some)
            .map_err(df_error)
    }

    /// Plans a plan made of `PromNode`s only straight into `PromExec`s, bottom up, without
    /// DataFusion's logical and physical optimizer passes: their rules rewrite standard
    /// operators and leave these nodes as they are (but for [`EnsureCooperative`], which
    /// the caller applies), and running them costs a fixed part of a short query. `None`
    /// for any other plan.
    fn plan_prom<'a>(
        &'a self,
        plan: &'a LogicalPlan,
        state: &'a SessionState,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn ExecutionPlan>>, QueryError>> {
        async move {
            let LogicalPlan::Extension(ext) = plan else {
                return Ok(None);
            };
            if ext.node.as_any().downcast_ref::<PromNode>().is_none() {
                return Ok(None);
            }
            let inputs = ext.node.inputs();
            let mut physical_inputs = Vec::with_capacity(inputs.len());
            for input in &inputs {
                match self.plan_prom(input, state).await? {
                    Some(p) => physical_inputs.push(p),
                    None => return Ok(None),
                }
            }
            self.prom
                .plan_extension(
                    self.planner.as_ref(),
                    ext.node.as_ref(),
                    &inputs,
                    &physical_inputs,
                    state,
                    &PhysicalPlanningContext::default(),
                )
                .await
                .map_err(df_error)
        }
        .boxed()
    }

    async fn run(
        &self,
        plan: &LogicalPlan,
        opts: &QueryOptions,
        notes: &Arc<Annotations>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        // Operators check the deadline, the cancellation and the points they hold as they
        // compute; the timeout around the whole also covers the time between checks.
        let guard = Arc::new(QueryGuard::new(
            Instant::now().checked_add(opts.timeout),
            Arc::clone(&opts.cancel),
            self.prom.max_samples,
            opts.budget.clone(),
        ));
        let work = async {
            // One copy of the session state per query (copying it is not free).
            let state = self.ctx.state();
            let physical = match self.prom_physical(plan, &state).await? {
                Some(p) => p,
                None => self.physical(plan, &state).await?.1,
            };
            // The operators find the query's budget and annotations collector here.
            let mut config = state
                .config()
                .clone()
                .with_extension(Arc::clone(notes))
                .with_extension(guard);
            if let Some(budget) = &opts.budget {
                config = config.with_extension(Arc::clone(budget));
            }
            let task = Arc::new(TaskContext::from(&state).with_session_config(config));
            collect(physical, task).await.map_err(df_error)
        };
        tokio::time::timeout(opts.timeout, work)
            .await
            .map_err(|_| QueryError::Timeout("query execution"))?
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn instant_query(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        time_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        Ok(self
            .instant_query_annotated(tenant, query, time_ms, opts)
            .await?
            .result)
    }

    /// [`Self::instant_query`] with the query's warnings and infos.
    pub async fn instant_query_annotated(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        time_ms: i64,
        opts: &QueryOptions,
    ) -> Result<AnnotatedResult, QueryError> {
        let notes = Arc::new(Annotations::new());
        let result = self
            .instant_inner(tenant, query, time_ms, opts, &notes)
            .await?;
        Ok(annotated(result, &notes))
    }

    async fn instant_inner(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        time_ms: i64,
        opts: &QueryOptions,
        notes: &Arc<Annotations>,
    ) -> Result<QueryResult, QueryError> {
        let PlannedQuery { lowered, order } = self.lower(
            tenant.tenant_ids(),
            query,
            Steps::instant(time_ms),
            opts,
            notes,
        )?;
        match lowered {
            Lowered::Scalar(v) => Ok(QueryResult::Scalar { t: time_ms, v }),
            Lowered::String(v) => Ok(QueryResult::String { t: time_ms, v }),
            Lowered::Vector(plan) => {
                let series = to_series(&self.run(&plan, opts, notes).await?)?;
                let mut samples: Vec<InstantSample> = Vec::with_capacity(series.len());
                for s in series {
                    let n = s.points.len() + s.histograms.len();
                    let floats = s.points.into_iter().map(|(t, v)| (t, v, None));
                    let histograms = s.histograms.into_iter().map(|(t, h)| (t, 0.0, Some(h)));
                    // The last sample takes the labels, the others a copy.
                    let mut labels = Some(s.labels);
                    for (i, (t, v, h)) in floats.chain(histograms).enumerate() {
                        let labels = if i + 1 == n {
                            labels.take()
                        } else {
                            labels.clone()
                        }
                        .expect("taken at the last sample only");
                        samples.push(InstantSample { labels, t, v, h });
                    }
                }
                if let Some(order) = order {
                    order.apply(&mut samples);
                }
                Ok(QueryResult::Vector(samples))
            }
            Lowered::Matrix(plan) => Ok(QueryResult::Matrix(to_series(
                &self.run(&plan, opts, notes).await?,
            )?)),
            Lowered::ScalarPlan(plan) => {
                let series = to_series(&self.run(&plan, opts, notes).await?)?;
                let v = series
                    .first()
                    .and_then(|s| s.points.iter().find(|p| p.0 == time_ms))
                    .map_or(f64::NAN, |p| p.1);
                Ok(QueryResult::Scalar { t: time_ms, v })
            }
        }
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` (inclusive); always a
    /// matrix (or an error when the query is not a scalar or instant vector).
    pub async fn range_query(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        Ok(self
            .range_query_annotated(tenant, query, start_ms, end_ms, step_ms, opts)
            .await?
            .result)
    }

    /// [`Self::range_query`] with the query's warnings and infos.
    pub async fn range_query_annotated(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<AnnotatedResult, QueryError> {
        let notes = Arc::new(Annotations::new());
        let steps = range_steps(start_ms, end_ms, step_ms)?;
        let result = self.range_inner(tenant, query, steps, opts, &notes).await?;
        Ok(annotated(result, &notes))
    }

    async fn range_inner(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        steps: Steps,
        opts: &QueryOptions,
        notes: &Arc<Annotations>,
    ) -> Result<QueryResult, QueryError> {
        match self.lower(tenant.tenant_ids(), query, steps, opts, notes)?.lowered {
            Lowered::Scalar(v) => Ok(QueryResult::Matrix(vec![RangeSeries {
                labels: Labels::default(),
                points: steps.iter().map(|t| (t, v)).collect(),
                histograms: Vec::new(),
            }])),
            Lowered::Vector(plan) | Lowered::ScalarPlan(plan) => Ok(QueryResult::Matrix(
                to_series(&self.run(&plan, opts, notes).await?)?,
            )),
            Lowered::String(_) => Err(QueryError::BadData(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector"
                    .into(),
            )),
            Lowered::Matrix(_) => Err(QueryError::BadData(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                    .into(),
            )),
        }
    }

    /// The logical and physical plans of `query` as text (for `explain=true`).
    pub async fn explain(
        &self,
        tenant: &(impl TenantScope + ?Sized),
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<String, QueryError> {
        let steps = if start_ms == end_ms {
            Steps::instant(start_ms)
        } else {
            range_steps(start_ms, end_ms, step_ms)?
        };
        let notes = Annotations::new();
        match self
            .lower(tenant.tenant_ids(), query, steps, opts, &notes)?
            .lowered
        {
            Lowered::Scalar(v) => Ok(format!("constant scalar {v} (folded by the planner)")),
            Lowered::String(v) => Ok(format!("constant string {v:?}")),
            Lowered::Vector(plan) | Lowered::Matrix(plan) | Lowered::ScalarPlan(plan) => {
                let (optimized, physical) = self.physical(&plan, &self.ctx.state()).await?;
                Ok(format!(
                    "logical plan:\n{}\nphysical plan:\n{}",
                    optimized.display_indent(),
                    displayable(physical.as_ref()).indent(true)
                ))
            }
        }
    }
}

/// The result with the annotations `notes` collected.
fn annotated(result: QueryResult, notes: &Annotations) -> AnnotatedResult {
    AnnotatedResult {
        result,
        annotations: QueryAnnotations {
            warnings: notes.texts(AnnotationKind::Warning),
            infos: notes.texts(AnnotationKind::Info),
        },
    }
}

fn range_steps(start: i64, end: i64, step: i64) -> Result<Steps, QueryError> {
    if step <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if end < start {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    Ok(Steps { start, end, step })
}

/// Collects vector batches into series sorted by labels. Two series that end up with the
/// same labels at the same timestamp (e.g. `rate` dropping the only distinguishing name) are
/// an error, as in Prometheus.
fn to_series(batches: &[RecordBatch]) -> Result<Vec<RangeSeries>, QueryError> {
    let mut parts: Vec<RangeSeries> = Vec::new();
    for b in batches {
        for s in series_rows(b).map_err(df_error)? {
            let mut points = Vec::new();
            let mut histograms: Vec<(i64, FloatHistogram)> = Vec::new();
            if s.has_histograms() {
                for (i, t) in s.ts.iter().enumerate() {
                    match s.histogram(i).map_err(df_error)? {
                        Some(h) => histograms.push((*t, h)),
                        None => points.push((*t, s.values[i])),
                    }
                }
            } else {
                points = s.ts.iter().copied().zip(s.values.iter().copied()).collect();
            }
            let labels = if name_dropped(&s.labels) {
                remove_dropped_name(&s.labels)
            } else {
                s.labels
            };
            parts.push(RangeSeries {
                labels,
                points,
                histograms,
            });
        }
    }
    // Stable, so that the parts of one label set stay in the order they came.
    parts.sort_by(|a, b| a.labels.cmp(&b.labels));
    if parts.windows(2).all(|w| w[0].labels != w[1].labels) {
        return Ok(parts);
    }
    let mut out: Vec<RangeSeries> = Vec::with_capacity(parts.len());
    for p in parts {
        match out.last_mut() {
            Some(last) if last.labels == p.labels => {
                last.points.extend(p.points);
                last.histograms.extend(p.histograms);
            }
            _ => out.push(p),
        }
    }
    for s in &mut out {
        s.points.sort_by_key(|p| p.0);
        s.histograms.sort_by_key(|p| p.0);
        let mut times: Vec<i64> = s.points.iter().map(|p| p.0).collect();
        times.extend(s.histograms.iter().map(|p| p.0));
        times.sort_unstable();
        if times.windows(2).any(|w| w[0] == w[1]) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod annotated_tests;
#[cfg(test)]
mod tests;
