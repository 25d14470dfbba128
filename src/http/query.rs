//! `/api/v1/query` and `/api/v1/query_range`: parameters checked in Prometheus' order and
//! with its messages, evaluation by the [`QueryEngine`](hypnos_planner::QueryEngine) for the
//! caller's tenant, answers in Prometheus' JSON.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use hypnos_planner::{QueryError, QueryOptions, QueryResult};
use hypnos_schemas::TenantId;

use super::errors::ApiError;
use super::params::{Params, now_ms};
use super::tenant::Tenant;
use super::{AppRef, json};

/// Prometheus' limit on the points of one series in a range query.
const MAX_POINTS: i128 = 11_000;

const NS_PER_MS: i64 = 1_000_000;

pub(super) async fn instant(
    State(state): State<AppRef>,
    Tenant(tenant): Tenant,
    params: Params,
) -> Result<Response, ApiError> {
    count(
        &state,
        &tenant,
        "instant",
        instant_inner(&state, &tenant, &params).await,
    )
}

pub(super) async fn range(
    State(state): State<AppRef>,
    Tenant(tenant): Tenant,
    params: Params,
) -> Result<Response, ApiError> {
    count(
        &state,
        &tenant,
        "range",
        range_inner(&state, &tenant, &params).await,
    )
}

/// Counts the query and, when it failed, its error type.
pub(super) fn count<T>(
    state: &AppRef,
    tenant: &TenantId,
    kind: &str,
    r: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let t = tenant.as_str();
    state.metrics.queries.with_label_values(&[t, kind]).inc();
    if let Err(e) = &r {
        state
            .metrics
            .query_errors
            .with_label_values(&[t, e.error_type()])
            .inc();
    }
    r
}

async fn instant_inner(
    state: &AppRef,
    tenant: &TenantId,
    params: &Params,
) -> Result<Response, ApiError> {
    let time = params.time("time", now_ms())?;
    let opts = options(state, params)?;
    let query = query_param(params)?;
    if explain(params) {
        let plan = run(
            &opts,
            state.engine.explain(tenant, query, time, time, 0, &opts),
        )
        .await?;
        return Ok(plan_response(&plan));
    }
    let result = run(
        &opts,
        state.engine.instant_query(tenant, query, time, &opts),
    )
    .await?;
    Ok(result_response(&result))
}

async fn range_inner(
    state: &AppRef,
    tenant: &TenantId,
    params: &Params,
) -> Result<Response, ApiError> {
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
    // The engine works in milliseconds; a sub-millisecond step would not advance.
    let step = (step_ns / NS_PER_MS).max(1);
    let opts = options(state, params)?;
    let query = query_param(params)?;
    if explain(params) {
        let plan = run(
            &opts,
            state.engine.explain(tenant, query, start, end, step, &opts),
        )
        .await?;
        return Ok(plan_response(&plan));
    }
    let result = run(
        &opts,
        state
            .engine
            .range_query(tenant, query, start, end, step, &opts),
    )
    .await?;
    Ok(result_response(&result))
}

fn required_time(params: &Params, name: &str) -> Result<i64, ApiError> {
    super::params::parse_time(params.get(name).unwrap_or_default())
        .map_err(|e| ApiError::invalid_param(name, e))
}

/// `timeout` and `lookback_delta`.
fn options(state: &AppRef, params: &Params) -> Result<QueryOptions, ApiError> {
    let mut opts = QueryOptions {
        timeout: state.query_timeout,
        ..QueryOptions::default()
    };
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

/// Awaits `fut`, failing with a timeout shortly after the query's own deadline in case the
/// engine does not stop by itself.
async fn run<T>(
    opts: &QueryOptions,
    fut: impl Future<Output = Result<T, QueryError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(opts.timeout + Duration::from_secs(1), fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(QueryError::Timeout("query evaluation").into()),
    }
}

fn result_response(result: &QueryResult) -> Response {
    json::success(&json::query_data(result), &[])
}

fn plan_response(plan: &str) -> Response {
    let mut data = String::from("{\"plan\":");
    json::push_str(&mut data, plan);
    data.push('}');
    json::success(&data, &[])
}
