//! `/api/v1/query_exemplars`: the exemplars of the series that the vector selectors of a
//! PromQL expression select, in `[start, end]`, from the ingester's per-tenant exemplar
//! buffers. As every read, it sees the caller's tenants only (one after the other; their
//! series differ by `tenant_id`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use hypnos_ingest::SeriesExemplars;
use hypnos_schemas::{Labels, Matcher};
use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};

use super::errors::ApiError;
use super::metadata::{dedup_sets, selector_sets};
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use super::query::{guarded, interrupted, read_options, run};
use super::tenant::ReadScope;
use super::{AppRef, json};

pub(super) async fn query_exemplars(
    State(state): State<AppRef>,
    ReadScope(scope): ReadScope,
    params: Params,
) -> Result<Response, ApiError> {
    guarded(&state, &scope, "query_exemplars", async |a| {
        let start = params.time("start", MIN_TIME_MS)?;
        let end = params.time("end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::BadData(
                "end timestamp must not be before start timestamp".into(),
            ));
        }
        let query = params.get("query").unwrap_or_default().to_string();
        let opts = read_options(&state, a);
        let deadline = Instant::now().checked_add(opts.timeout);
        let (ingester, tenants, o) = (
            Arc::clone(&state.ingester),
            scope.tenants().to_vec(),
            opts.clone(),
        );
        // The ingester's search is synchronous: it runs on the query runtime, one matcher
        // set at a time, with the deadline and cancellation checked between sets.
        let data = run(a, &opts, async move {
            let sets = dedup_sets(query_sets(&query)?);
            let mut all: BTreeMap<Labels, SeriesExemplars> = BTreeMap::new();
            for tenant in &tenants {
                for set in &sets {
                    interrupted(&o, deadline)?;
                    for s in ingester.query_exemplars(tenant, std::slice::from_ref(set), start, end)
                    {
                        all.entry(s.series.clone()).or_insert(s);
                    }
                }
            }
            let all: Vec<SeriesExemplars> = all.into_values().collect();
            Ok::<_, ApiError>(render(&all))
        })
        .await?;
        Ok(json::success(&data, &[]))
    })
    .await
}

/// The matcher sets of every vector selector of the expression `query` (matrix selectors
/// and selectors inside functions, aggregations and subqueries included).
fn query_sets(query: &str) -> Result<Vec<Vec<Matcher>>, ApiError> {
    if query.trim().is_empty() {
        return Err(ApiError::BadData(
            "missing parameter \"query\": a PromQL expression is required".into(),
        ));
    }
    let expr =
        hypnos_planner::parse_promql(query).map_err(|e| ApiError::invalid_param("query", e))?;
    let mut v = Selectors(Vec::new());
    walk_expr(&mut v, &expr).map_err(|e| ApiError::invalid_param("query", e))?;
    Ok(v.0)
}

/// Collects the matcher sets of the selectors it visits.
struct Selectors(Vec<Vec<Matcher>>);

impl ExprVisitor for Selectors {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        match expr {
            Expr::VectorSelector(vs) => self.0.extend(selector_sets(vs)?),
            Expr::MatrixSelector(ms) => self.0.extend(selector_sets(&ms.vs)?),
            _ => {}
        }
        Ok(true)
    }
}

/// Prometheus' answer: `[{"seriesLabels":{..},"exemplars":[{"labels":{..},"value":"1.5",
/// "timestamp":1600000000.123}]}]`.
fn render(all: &[SeriesExemplars]) -> String {
    let mut out = String::from("[");
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"seriesLabels\":");
        json::push_labels(&mut out, &s.series);
        out.push_str(",\"exemplars\":[");
        for (k, e) in s.exemplars.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            json::push_labels(&mut out, &e.labels);
            out.push_str(",\"value\":\"");
            out.push_str(&json::format_value(e.value));
            out.push_str("\",\"timestamp\":");
            json::push_timestamp(&mut out, e.timestamp);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_ingest::Exemplar;
    use hypnos_schemas::Labels;

    fn names(sets: &[Vec<Matcher>]) -> Vec<String> {
        sets.iter()
            .map(|s| {
                s.iter()
                    .map(|m| format!("{}{:?}{}", m.name, m.op, m.value))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn every_selector_of_the_expression() {
        let sets = query_sets(
            r#"sum by (job) (rate(http_requests_total{job="a"}[5m])) / on() group_left up offset 1m
               + max_over_time(x[10m:1m])"#,
        )
        .unwrap();
        assert_eq!(
            names(&sets),
            vec![
                "__name__Equalhttp_requests_total,jobEquala",
                "__name__Equalup",
                "__name__Equalx",
            ]
        );
        assert!(query_sets("1 + 2").unwrap().is_empty());
        assert_eq!(query_sets(r#"{a="1" or b="2"}"#).unwrap().len(), 2);
    }

    #[test]
    fn bad_queries_are_bad_data() {
        for q in ["", "  ", "sum(", "up{", r#"{a=""}"#] {
            let e = query_sets(q).unwrap_err();
            assert!(matches!(e, ApiError::BadData(_)), "{q}: {e}");
        }
        let e = query_sets("sum(").unwrap_err().to_string();
        assert!(e.starts_with("invalid parameter \"query\": "), "{e}");
    }

    #[test]
    fn renders_prometheus_shape() {
        let all = vec![SeriesExemplars {
            series: Labels::from_pairs([("__name__", "up"), ("tenant_id", "a")]),
            exemplars: vec![
                Exemplar {
                    labels: Labels::from_pairs([("trace_id", "ab<")]),
                    value: 1.5,
                    timestamp: 1_600_000_000_123,
                },
                Exemplar {
                    labels: Labels::default(),
                    value: f64::NAN,
                    timestamp: 2000,
                },
            ],
        }];
        assert_eq!(
            render(&all),
            r#"[{"seriesLabels":{"__name__":"up","tenant_id":"a"},"exemplars":[{"labels":{"trace_id":"ab\u003c"},"value":"1.5","timestamp":1600000000.123},{"labels":{},"value":"NaN","timestamp":2}]}]"#
        );
        assert_eq!(render(&[]), "[]");
    }
}
