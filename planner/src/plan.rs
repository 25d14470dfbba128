//! The planner's entry point: a query's text to what it lowers to ([`plan_query`]), with
//! the options that shape the plan.

use hypnos_schemas::{RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW, TenantId};

use crate::QueryError;
use crate::annotations::Annotations;
use crate::lower::{Lowered, Lowering};
use crate::ops::Steps;
use crate::order::{ResultOrder, result_order};
use crate::positions::Positions;

/// The coarsest resolution a query may read (Thanos' `max_source_resolution`). Where data of
/// that resolution is missing, finer data (down to raw) answers instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxSourceResolution {
    /// Raw data only: every answer is exactly what was written.
    #[default]
    Raw,
    /// 5-minute downsampled data, or finer.
    FiveMinutes,
    /// 1-hour downsampled data, or finer.
    OneHour,
    /// The coarsest of 1h, 5m and raw not coarser than a fifth of the step, so that every
    /// step still spans at least five points; instant queries read raw data.
    Auto,
}

impl MaxSourceResolution {
    /// Parses the HTTP parameter: `auto`, `raw`, or a duration that is 0 (`0`, `0s`), `5m`
    /// or `1h` (also in other spellings of the same duration, such as `300s` or `60m`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => return Some(Self::Auto),
            // promql-parser refuses zero durations.
            "raw" | "0" | "0ms" | "0s" | "0m" | "0h" | "0d" | "0w" | "0y" => {
                return Some(Self::Raw);
            }
            _ => {}
        }
        let ms = if let Ok(secs) = s.parse::<f64>() {
            if !secs.is_finite() {
                return None;
            }
            (secs * 1000.0).round() as i64
        } else {
            promql_parser::util::parse_duration(s).ok()?.as_millis() as i64
        };
        match ms {
            RESOLUTION_RAW => Some(Self::Raw),
            RESOLUTION_5M => Some(Self::FiveMinutes),
            RESOLUTION_1H => Some(Self::OneHour),
            _ => None,
        }
    }

    /// The coarsest resolution (milliseconds, 0 for raw) a query over `steps` may read.
    pub fn resolve_ms(self, steps: Steps) -> i64 {
        match self {
            Self::Raw => RESOLUTION_RAW,
            Self::FiveMinutes => RESOLUTION_5M,
            Self::OneHour => RESOLUTION_1H,
            Self::Auto if steps.start == steps.end => RESOLUTION_RAW,
            Self::Auto => [RESOLUTION_1H, RESOLUTION_5M]
                .into_iter()
                .find(|r| *r <= steps.step / 5)
                .unwrap_or(RESOLUTION_RAW),
        }
    }
}

/// What one query is planned for.
#[derive(Clone, Copy)]
pub struct PlanContext<'a> {
    /// The tenants every selection reads (several for a federated query); at least one.
    pub tenants: &'a [TenantId],
    /// The evaluation times.
    pub steps: Steps,
    /// Lookback delta of instant-vector selection, milliseconds.
    pub lookback_delta_ms: i64,
    /// The coarsest resolution selections may read.
    pub max_source_resolution: MaxSourceResolution,
    /// Where the warnings and infos the planner can tell from the query alone go.
    pub notes: &'a Annotations,
}

/// A planned query: what it lowers to, and the order its outermost expression imposes on
/// an instant vector result.
#[derive(Debug)]
pub struct PlannedQuery {
    pub lowered: Lowered,
    pub order: Option<ResultOrder>,
}

/// Parses `query`, checks it and lowers it to a plan of PromQL nodes (or a constant).
pub fn plan_query(query: &str, ctx: &PlanContext<'_>) -> Result<PlannedQuery, QueryError> {
    let expr = crate::parse_promql(query).map_err(|e| QueryError::parse(query, &e))?;
    if ctx.tenants.is_empty() {
        return Err(QueryError::BadData("a query needs a tenant".into()));
    }
    crate::lower::check_times(&expr, ctx.steps, ctx.lookback_delta_ms)?;
    let positions = Positions::new(query, &expr);
    let lowered = Lowering {
        tenants: ctx.tenants,
        steps: ctx.steps,
        lookback: ctx.lookback_delta_ms,
        query_range: (ctx.steps.start, ctx.steps.end),
        query_step: ctx.steps.step,
        max_resolution: ctx.max_source_resolution.resolve_ms(ctx.steps),
        positions: &positions,
        notes: ctx.notes,
        histogram_stats: false,
    }
    .lower(&expr)?;
    Ok(PlannedQuery {
        lowered,
        order: result_order(&expr),
    })
}
