//! `/api/v1/query` and `/api/v1/query_range`: parameters checked in Prometheus' order and
//! with its messages, evaluation by the [`QueryEngine`](hypnos_engine::QueryEngine) over the
//! caller's tenants (several for a federated query) under their read limits, answers in
//! Prometheus' JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use hypnos_engine::QueryOptions;
use hypnos_planner::{AnnotatedResult, QueryError};

use super::errors::ApiError;
use super::params::{Params, now_ms};
use super::tenant::{Admitted, ReadScope, admit};
use super::{AppRef, json};
use hypnos_tenancy::LimitError;
use hypnos_tenancy::auth::Scope;

/// Prometheus' limit on the points of one series in a range query.
const MAX_POINTS: i128 = 11_000;

const NS_PER_MS: i64 = 1_000_000;

pub(super) async fn instant(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "instant", async |a| {
        instant_inner(&state, &scope, &params, a).await
    })
    .await
}

pub(super) async fn range(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "range", async |a| {
        range_inner(&state, &scope, &params, a).await
    })
    .await
}

/// Admits a read of `scope` under its limits, runs `f` and counts the outcome and the CPU
/// time it took ([`hypnos_tenancy::usage::cpu_time_of`]).
pub(super) async fn guarded(
    state: &AppRef,
    scope: &Scope,
    kind: &str,
    f: impl AsyncFnOnce(&Admitted) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let admitted = match admit(state, scope) {
        Ok(a) => a,
        Err(e) => return count(state, scope, kind, None, Err(e)),
    };
    let (r, cpu) = hypnos_tenancy::usage::cpu_time_of(f(&admitted)).await;
    super::tenant::count_cpu(state, &admitted, cpu + admitted.spawned_cpu());
    count(state, scope, kind, Some(&admitted), r)
}

/// Counts the read for each of its tenants: the query, the samples it scanned, and when it
/// failed, its error type and (for a limit) the rejection.
fn count<T>(
    state: &AppRef,
    scope: &Scope,
    kind: &str,
    admitted: Option<&Admitted>,
    r: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let m = &state.metrics;
    for t in scope.tenants() {
        m.queries.with_label_values(&[t.as_str(), kind]).inc();
    }
    if let Some(a) = admitted {
        for (t, n) in a.budget.samples_by_tenant() {
            m.query_samples
                .with_label_values(&[t.as_str()])
                .inc_by(n as u64);
        }
    }
    if let Err(e) = &r {
        let limit = match e {
            ApiError::Limit(l) => Some(l.limit()),
            _ => admitted.and_then(|a| a.budget.exceeded()),
        };
        for t in scope.tenants() {
            m.query_errors
                .with_label_values(&[t.as_str(), e.error_type()])
                .inc();
            if let Some(limit) = limit {
                m.query_rejected
                    .with_label_values(&[t.as_str(), limit])
                    .inc();
            }
        }
    }
    r
}

async fn instant_inner(
    state: &AppRef,
    tenant: &Scope,
    params: &Params,
    admitted: &Admitted,
) -> Result<Response, ApiError> {
    let tenant = tenant.tenants();
    let time = params.time("time", now_ms())?;
    let opts = options(state, params, admitted)?;
    let query = query_param(params)?;
    let (engine, tenant, query) = (state.engine.clone(), tenant.to_vec(), query.to_string());
    let o = opts.clone();
    if explain(params) {
        let plan = run(admitted, &opts, async move {
            engine.explain(&tenant, &query, time, time, 0, &o).await
        })
        .await?;
        return Ok(plan_response(&plan));
    }
    let result = run(admitted, &opts, async move {
        engine
            .instant_query_annotated(&tenant, &query, time, &o)
            .await
    })
    .await?;
    Ok(result_response(&result))
}

async fn range_inner(
    state: &AppRef,
    tenant: &Scope,
    params: &Params,
    admitted: &Admitted,
) -> Result<Response, ApiError> {
    let tenant = tenant.tenants();
    // Unlike `time`, Prometheus has no default for these three.
    let start = required_time(params, "start")?;
    let end = required_time(params, "end")?;
    if end < start {
        return Err(ApiError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let step_ns = super::params::parse_duration(params.get("step").unwrap_or_default())
        .map_err(|e| ApiError::invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(ApiError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    // For safety, limit the number of returned points per timeseries.
    if (i128::from(end - start) * i128::from(NS_PER_MS)) / i128::from(step_ns) > MAX_POINTS {
        return Err(ApiError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the \
             query resolution (?step=XX)"
                .into(),
        ));
    }
    if let Some(max) = admitted.limits.max_query_range
        && u128::try_from(end - start).unwrap_or(0) > max.as_millis()
    {
        return Err(ApiError::Limit(LimitError::QueryRange {
            range: Duration::from_millis((end - start) as u64),
            max,
        }));
    }
    // The engine works in milliseconds; a sub-millisecond step would not advance.
    let step = (step_ns / NS_PER_MS).max(1);
    let opts = options(state, params, admitted)?;
    let query = query_param(params)?;
    let (engine, tenant, query) = (state.engine.clone(), tenant.to_vec(), query.to_string());
    let o = opts.clone();
    if explain(params) {
        let plan = run(admitted, &opts, async move {
            engine.explain(&tenant, &query, start, end, step, &o).await
        })
        .await?;
        return Ok(plan_response(&plan));
    }
    let result = run(admitted, &opts, async move {
        engine
            .range_query_annotated(&tenant, &query, start, end, step, &o)
            .await
    })
    .await?;
    Ok(result_response(&result))
}

fn required_time(params: &Params, name: &str) -> Result<i64, ApiError> {
    super::params::parse_time(params.get(name).unwrap_or_default())
        .map_err(|e| ApiError::invalid_param(name, e))
}

/// `timeout`, `lookback_delta` and `max_source_resolution`, under the tenant's timeout and
/// with its budget.
fn options(state: &AppRef, params: &Params, admitted: &Admitted) -> Result<QueryOptions, ApiError> {
    let mut opts = QueryOptions {
        timeout: state.query_timeout,
        budget: Some(Arc::clone(&admitted.budget)),
        cancel: Arc::default(),
        ..QueryOptions::default()
    };
    if let Some(t) = admitted.limits.query_timeout {
        opts.timeout = opts.timeout.min(t);
    }
    opts.max_source_resolution =
        params.max_source_resolution(state.default_max_source_resolution)?;
    if let Some(ns) = params.duration("timeout")? {
        opts.timeout = opts
            .timeout
            .min(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)));
    }
    if let Some(s) = params.get("lookback_delta") {
        let ns = super::params::parse_duration(s).map_err(|e| {
            ApiError::BadData(format!("error parsing lookback delta duration: {e}"))
        })?;
        if ns > 0 {
            opts.lookback_delta_ms = (ns / NS_PER_MS).max(1);
        }
    }
    Ok(opts)
}

fn query_param(params: &Params) -> Result<&str, ApiError> {
    params
        .get("query")
        .ok_or_else(|| ApiError::invalid_param("query", "the query is missing or empty"))
}

fn explain(params: &Params) -> bool {
    params
        .get("explain")
        .is_some_and(|v| matches!(v, "true" | "1" | "t" | "TRUE" | "True"))
}

/// The options of a read that is not a query (`/api/v1/series`, labels, label values,
/// exemplars): the server's query timeout, or the tenant's `query_timeout` when shorter,
/// and a cancellation flag of its own.
pub(super) fn read_options(state: &AppRef, admitted: &Admitted) -> QueryOptions {
    let mut timeout = state.query_timeout;
    if let Some(t) = admitted.limits.query_timeout {
        timeout = timeout.min(t);
    }
    QueryOptions {
        timeout,
        budget: Some(Arc::clone(&admitted.budget)),
        cancel: Arc::default(),
        ..QueryOptions::default()
    }
}

/// Runs `fut` on the query runtime ([`super::query_runtime`]), failing with a timeout
/// shortly after the query's own deadline in case the engine does not stop by itself (the
/// query is then cancelled: dropping its task raises `opts.cancel`). The CPU time of the
/// query counts for the read. A timeout that the tenant's `query_timeout` decided names
/// that limit. Metadata and exemplar reads run here too ([`read_options`]).
pub(super) async fn run<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    admitted: &Admitted,
    opts: &QueryOptions,
    fut: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, ApiError> {
    let timeout = opts.timeout + Duration::from_secs(1);
    let joined = tokio::time::timeout(timeout, async {
        #[cfg(feature = "testsuite")]
        super::tenant::test_hold(admitted.tenants()).await;
        super::query_runtime::spawn(Arc::clone(&opts.cancel), fut)?
            .join()
            .await
    })
    .await;
    let r = match joined {
        Ok(joined) => {
            let (r, cpu) = joined?;
            admitted.add_cpu(cpu);
            r.map_err(Into::into)
        }
        Err(_) => Err(ApiError::Query(QueryError::Timeout("query evaluation"))),
    };
    match r {
        Err(ApiError::Query(QueryError::Timeout(_)))
            if admitted
                .limits
                .query_timeout
                .is_some_and(|t| t <= opts.timeout) =>
        {
            Err(ApiError::Limit(LimitError::QueryTimeout {
                timeout: opts.timeout,
            }))
        }
        r => r,
    }
}

/// An error once `opts`' read is cancelled or has run past `deadline`, for the loops of
/// reads that are not queries (checked between matcher sets).
pub(super) fn interrupted(
    opts: &QueryOptions,
    deadline: Option<std::time::Instant>,
) -> Result<(), ApiError> {
    if opts.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Query(QueryError::Timeout("cancelled")));
    }
    if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
        return Err(ApiError::Query(QueryError::Timeout("series selection")));
    }
    Ok(())
}

fn result_response(r: &AnnotatedResult) -> Response {
    json::success_annotated(
        &json::query_data(&r.result),
        &r.annotations.warnings,
        &r.annotations.infos,
    )
}

fn plan_response(plan: &str) -> Response {
    let mut data = String::from("{\"plan\":");
    json::push_str(&mut data, plan);
    data.push('}');
    json::success(&data, &[])
}
