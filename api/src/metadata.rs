//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`, read from the
//! merged heads and blocks of the caller's tenants (one after the other; their series differ
//! by `tenant_id`) through [`SeriesSource::series`](hypnos_schemas::SeriesSource::series),
//! under the tenants' read limits.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::Response;
use hypnos_engine::QueryOptions;
use hypnos_planner::QueryError;
use hypnos_schemas::labels::METRIC_NAME;
use hypnos_schemas::{Labels, MatchOp, Matcher, TenantId, TimeRange};
use hypnos_tenancy::LimitError;
use promql_parser::label::{MatchOp as PMatchOp, Matcher as PMatcher};
use promql_parser::parser::Expr;

use super::errors::ApiError;
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use super::query::{guarded, interrupted, read_options, run};
use super::tenant::{Admitted, ReadScope};
use super::{AppRef, json};

const TRUNCATED: &str = "results truncated due to limit";

pub(super) async fn series(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "series", async |a| {
        let sets = selectors(&params);
        if sets.is_empty() {
            return Err(ApiError::BadData("no match[] parameter provided".into()));
        }
        let (range, limit) = (range(&params)?, limit(&params)?);
        let (data, warnings) = select(&state, scope.tenants(), sets, range, a, move |mut all| {
            let warnings = truncate(&mut all, limit);
            (json::labels_array(&all), warnings)
        })
        .await?;
        Ok(json::success(&data, &warnings))
    })
    .await
}

pub(super) async fn labels(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "labels", async |a| {
        let sets = selectors(&params);
        let (range, limit) = (range(&params)?, limit(&params)?);
        let (data, warnings) = select(&state, scope.tenants(), sets, range, a, move |series| {
            let names: BTreeSet<&str> = series
                .iter()
                .flat_map(|l| l.iter().map(|l| l.name.as_str()))
                .collect();
            let mut names: Vec<&str> = names.into_iter().collect();
            let warnings = truncate(&mut names, limit);
            (json::string_array(names), warnings)
        })
        .await?;
        Ok(json::success(&data, &warnings))
    })
    .await
}

pub(super) async fn label_values(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "label_values", async |a| {
        let sets = selectors(&params);
        let (range, limit) = (range(&params)?, limit(&params)?);
        let (data, warnings) = select(&state, scope.tenants(), sets, range, a, move |series| {
            let values: BTreeSet<&str> = series
                .iter()
                .map(|l| l.get(&name))
                .filter(|v| !v.is_empty())
                .collect();
            let mut values: Vec<&str> = values.into_iter().collect();
            let warnings = truncate(&mut values, limit);
            (json::string_array(values), warnings)
        })
        .await?;
        Ok(json::success(&data, &warnings))
    })
    .await
}

/// Every `match[]`, unparsed.
fn selectors(params: &Params) -> Vec<String> {
    params
        .all("match[]")
        .into_iter()
        .map(String::from)
        .collect()
}

/// The label sets of the series of `tenants` matching any of the selectors `sets` (every
/// series when there is none), sorted and unique, handed to `finish`. Runs on the query
/// runtime under the read's timeout ([`run`]), parsing included: identical matcher sets
/// (after parsing) are read once, the deadline and
/// cancellation are checked before each set, and each set's new series are charged to
/// the query's series budget as they are collected, so that what is held stays within it.
async fn select<R: Send + 'static>(
    state: &AppRef,
    tenants: &[TenantId],
    sets: Vec<String>,
    range: TimeRange,
    admitted: &Admitted,
    finish: impl FnOnce(Vec<Labels>) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let opts = read_options(state, admitted);
    let deadline = Instant::now().checked_add(opts.timeout);
    let (source, tenants) = (Arc::clone(&state.source), tenants.to_vec());
    let (budget, o) = (Arc::clone(&admitted.budget), opts.clone());
    let limits = admitted.limits.clone();
    run(admitted, &opts, async move {
        let sets = if sets.is_empty() {
            vec![Vec::new()]
        } else {
            dedup_sets(parse_sets(&sets, &o, deadline)?)
        };
        let mut all = Vec::new();
        for tenant in &tenants {
            let mut mine = BTreeSet::new();
            for set in &sets {
                interrupted(&o, deadline)?;
                let before = mine.len();
                mine.extend(source.series(tenant, set, range).await?);
                budget.charge(tenant, mine.len() - before, 0).map_err(|e| {
                    let name = budget.exceeded().unwrap_or("max_series_per_query");
                    LimitError::of_budget(name, &limits).map_or_else(
                        || ApiError::Query(QueryError::Execution(e.0)),
                        ApiError::Limit,
                    )
                })?;
            }
            all.extend(mine);
        }
        all.sort();
        Ok::<_, ApiError>(finish(all))
    })
    .await
}

/// `sets` without repetitions: sets of the same matchers (in any order) are read once.
pub(super) fn dedup_sets(sets: Vec<Vec<Matcher>>) -> Vec<Vec<Matcher>> {
    let mut seen = HashSet::new();
    sets.into_iter()
        .filter(|set| {
            let mut key: Vec<String> = set
                .iter()
                .map(|m| format!("{}\0{:?}\0{}", m.name, m.op, m.value))
                .collect();
            key.sort();
            seen.insert(key)
        })
        .collect()
}

/// `start` and `end`, by default the whole time range.
fn range(params: &Params) -> Result<TimeRange, ApiError> {
    Ok(TimeRange::new(
        params.time("start", MIN_TIME_MS)?,
        params.time("end", MAX_TIME_MS)?,
    ))
}

/// `limit`: 0 or absent for none.
fn limit(params: &Params) -> Result<usize, ApiError> {
    let Some(s) = params.get("limit") else {
        return Ok(0);
    };
    let n: i64 = s.parse().map_err(|_| {
        ApiError::invalid_param(
            "limit",
            format!("strconv.Atoi: parsing {s:?}: invalid syntax"),
        )
    })?;
    usize::try_from(n).map_err(|_| ApiError::invalid_param("limit", "limit must be non-negative"))
}

/// Cuts `items` to `limit` (0: no limit), with Prometheus' warning when it cut anything.
fn truncate<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        vec![TRUNCATED.to_string()]
    } else {
        Vec::new()
    }
}

/// Every `match[]`, each parsed as a series selector into one or more matcher sets (one per
/// `or` branch).
#[cfg(test)]
fn matcher_sets(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    parse_sets(&selectors(params), &QueryOptions::default(), None)
}

/// The selectors `all`, each parsed into one or more matcher sets (one per `or` branch),
/// with the read's deadline and cancellation checked before each.
fn parse_sets(
    all: &[String],
    opts: &QueryOptions,
    deadline: Option<Instant>,
) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for s in all {
        interrupted(opts, deadline)?;
        sets.extend(parse_selector(s).map_err(|e| ApiError::invalid_param("match[]", e))?);
    }
    Ok(sets)
}

/// Parses one series selector (`up{job="a"}`, `{__name__=~"x.*"}`) into matcher sets.
pub(super) fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = hypnos_planner::parse_promql(s)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(format!(
            "{s:?} is not a series selector: offset and @ are not allowed"
        ));
    }
    selector_sets(&vs)
}

/// The matcher sets of a vector selector (one per `or` branch); offset and @ are ignored.
pub(super) fn selector_sets(
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Vec<Vec<Matcher>>, String> {
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(new_matcher(MatchOp::Equal, METRIC_NAME, name)?);
    }
    for m in &vs.matchers.matchers {
        base.push(convert(m)?);
    }
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![base]);
    }
    // Identical `or` groups (in any order) are converted once: converting compiles regexes.
    let mut seen = HashSet::new();
    vs.matchers
        .or_matchers
        .iter()
        .filter(|group| {
            let mut key: Vec<(&str, u8, &str)> = group
                .iter()
                .map(|m| (m.name.as_str(), op_of(&m.op) as u8, m.value.as_str()))
                .collect();
            key.sort_unstable();
            seen.insert(key)
        })
        .map(|group| {
            let mut set = base.clone();
            for m in group {
                set.push(convert(m)?);
            }
            Ok(set)
        })
        .collect()
}

fn convert(m: &PMatcher) -> Result<Matcher, String> {
    new_matcher(op_of(&m.op), &m.name, &m.value)
}

fn op_of(op: &PMatchOp) -> MatchOp {
    match op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::Re,
        PMatchOp::NotRe(_) => MatchOp::NotRe,
    }
}

fn new_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher, String> {
    Matcher::new(op, name, value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(sets: &[Vec<Matcher>]) -> Vec<Vec<String>> {
        sets.iter()
            .map(|s| {
                s.iter()
                    .map(|m| format!("{}{:?}{}", m.name, m.op, m.value))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn durations_no_parser_can_hold_are_errors_not_panics() {
        // promql-parser panics on these; the planner's parse_promql refuses them.
        for s in ["up offset NaN", "up offset 1e308", "up[1e20]"] {
            assert!(parse_selector(s).is_err(), "{s}");
        }
    }

    #[test]
    fn selectors() {
        assert_eq!(
            show(&parse_selector(r#"up{job="a",env!="b",i=~"x.*",j!~"y"}"#).unwrap()),
            vec![vec![
                "__name__Equalup",
                "jobEquala",
                "envNotEqualb",
                "iRex.*",
                "jNotRey"
            ]]
        );
        assert_eq!(
            show(&parse_selector(r#"{__name__=~"up|down"}"#).unwrap()),
            vec![vec!["__name__Reup|down"]]
        );
        let or = parse_selector(r#"{a="1" or b="2"}"#).unwrap();
        assert_eq!(or.len(), 2, "{:?}", show(&or));
    }

    #[test]
    fn bad_selectors() {
        for bad in [
            "rate(up[5m])",
            "up offset 5m",
            "{",
            "1+1",
            r#"{a=""}"#,
            "up[5m]",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad} accepted");
        }
        let e = matcher_sets(&Params::from_query("match[]=rate(x[1m])")).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid parameter \"match[]\": "),
            "{e}"
        );
    }

    #[test]
    fn limits() {
        assert_eq!(limit(&Params::from_query("")).unwrap(), 0);
        assert_eq!(limit(&Params::from_query("limit=5")).unwrap(), 5);
        assert!(limit(&Params::from_query("limit=-1")).is_err());
        assert!(limit(&Params::from_query("limit=x")).is_err());
        let mut v = vec![1, 2, 3];
        assert_eq!(truncate(&mut v, 2), vec![TRUNCATED.to_string()]);
        assert_eq!(v, vec![1, 2]);
        assert!(truncate(&mut v, 0).is_empty());
    }

    #[test]
    fn identical_sets_are_read_once() {
        let mut sets = parse_selector(r#"{a="1" or a="1" or b=~"x.*"}"#).unwrap();
        assert_eq!(sets.len(), 2, "identical or groups are converted once");
        sets.extend(parse_selector(r#"{a="1"}"#).unwrap());
        sets.extend(parse_selector(r#"{b=~"x.*"}"#).unwrap());
        sets.extend(parse_selector(r#"up{a="1"}"#).unwrap());
        sets.extend(parse_selector(r#"{a="1",__name__="up"}"#).unwrap());
        assert_eq!(sets.len(), 6);
        assert_eq!(
            show(&dedup_sets(sets)),
            vec![
                vec!["aEqual1"],
                vec!["bRex.*"],
                vec!["__name__Equalup", "aEqual1"]
            ]
        );
    }
}
