use super::*;
use arrow::array::{Float64Array, Int64Array};
use async_trait::async_trait;
use hypnos_schemas::matcher::matches_all;
use hypnos_schemas::{Matcher, SchemaError, SeriesData, ServiceError, TimeRange};

/// A source over fixed series, for planner tests.
#[derive(Debug)]
struct Fixed(Vec<SeriesData>);

#[async_trait]
impl SeriesSource for Fixed {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        Ok(self
            .0
            .iter()
            .filter(|s| {
                s.labels.get("tenant_id") == tenant.as_str() && matches_all(matchers, &s.labels)
            })
            .map(|s| {
                let (t, v): (Vec<i64>, Vec<f64>) = s
                    .timestamps()
                    .values()
                    .iter()
                    .zip(s.values().values())
                    .filter(|(t, _)| **t >= range.min && **t <= range.max)
                    .map(|(t, v)| (*t, *v))
                    .unzip();
                SeriesData::new(s.labels.clone(), Int64Array::from(t), Float64Array::from(v))
            })
            .filter(|s| !s.is_empty())
            .collect())
    }
}

fn counter(tenant: &str, job: &str, instance: &str, step_value: f64) -> SeriesData {
    // 0, step_value, 2*step_value, ... every 15s for 10 minutes.
    let ts: Vec<i64> = (0..=40).map(|i| i * 15_000).collect();
    let vs: Vec<f64> = (0..=40).map(|i| i as f64 * step_value).collect();
    SeriesData::new(
        Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("job", job),
            ("instance", instance),
            ("tenant_id", tenant),
        ]),
        Int64Array::from(ts),
        Float64Array::from(vs),
    )
}

fn engine() -> QueryEngine {
    QueryEngine::new(Arc::new(Fixed(vec![
        counter("a", "api", "1", 10.0),
        counter("a", "api", "2", 20.0),
        counter("a", "db", "1", 1.0),
        counter("b", "api", "1", 1000.0),
    ])))
}

fn tenant(t: &str) -> TenantId {
    TenantId::new(t).unwrap()
}

async fn instant(q: &str, t: i64) -> Result<QueryResult, QueryError> {
    engine()
        .instant_query(&tenant("a"), q, t, &QueryOptions::default())
        .await
}

fn vector(r: QueryResult) -> Vec<(String, f64)> {
    match r {
        QueryResult::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("not a vector: {other:?}"),
    }
}

#[tokio::test]
async fn selectors_and_tenant_scope() {
    let v = vector(
        instant(r#"http_requests_total{job="api"}"#, 60_000)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|(l, _)| l.contains(r#"tenant_id="a""#)));
    assert_eq!(v[0].1, 40.0);
    let v = vector(
        instant(r#"http_requests_total{job=~"a.*", instance!="1"}"#, 60_000)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, 80.0);
    let v = vector(
        instant(r#"http_requests_total{job!~"api"}"#, 60_000)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 1);
    // Past the last sample plus lookback: nothing.
    let v = vector(
        instant("http_requests_total", 600_000 + 300_000)
            .await
            .unwrap(),
    );
    assert!(v.is_empty());
    // Offset looks back in time.
    let v = vector(
        instant(r#"http_requests_total{job="db"} offset 1m"#, 120_000)
            .await
            .unwrap(),
    );
    assert_eq!(v[0].1, 4.0);
}

#[tokio::test]
async fn rate_sum_and_arithmetic() {
    let v = vector(
        instant(r#"sum by (job) (rate(http_requests_total[1m]))"#, 300_000)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].0, r#"{job="api"}"#);
    // 10/15 + 20/15 per second.
    assert!((v[0].1 - 2.0).abs() < 1e-9, "{v:?}");
    let v = vector(
        instant(
            r#"increase(http_requests_total{job="db"}[5m]) * 2"#,
            300_000,
        )
        .await
        .unwrap(),
    );
    assert!((v[0].1 - 40.0).abs() < 1e-9, "{v:?}");
    assert!(!v[0].0.contains("__name__"));
    let v = vector(
        instant("count without (instance) (http_requests_total)", 60_000)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 2);
    let v = vector(instant("http_requests_total > 50", 60_000).await.unwrap());
    assert_eq!(v.len(), 1);
    assert!(v[0].0.contains("__name__"));
    let v = vector(instant("-max(http_requests_total)", 60_000).await.unwrap());
    assert_eq!(v[0].1, -80.0);
}

#[tokio::test]
async fn scalars_strings_and_range_queries() {
    assert_eq!(
        instant("1+1", 1000).await.unwrap(),
        QueryResult::Scalar { t: 1000, v: 2.0 }
    );
    assert_eq!(
        instant("2 > bool 1", 1000).await.unwrap(),
        QueryResult::Scalar { t: 1000, v: 1.0 }
    );
    let e = engine();
    let r = e
        .range_query(
            &tenant("a"),
            r#"avg(http_requests_total{job="api"})"#,
            0,
            60_000,
            30_000,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let QueryResult::Matrix(m) = r else { panic!() };
    assert_eq!(m[0].points, vec![(0, 0.0), (30_000, 30.0), (60_000, 60.0)]);
    let r = e
        .range_query(
            &tenant("a"),
            "http_requests_total[1m]",
            0,
            60_000,
            30_000,
            &QueryOptions::default(),
        )
        .await;
    assert!(matches!(r, Err(QueryError::BadData(_))), "{r:?}");
    let r = e
        .range_query(&tenant("a"), "1", 0, 60_000, 0, &QueryOptions::default())
        .await;
    assert!(matches!(r, Err(QueryError::BadData(_))));
}

#[tokio::test]
async fn range_selector_instant_query_returns_raw_samples() {
    let r = instant(r#"http_requests_total{job="db"}[1m]"#, 60_000)
        .await
        .unwrap();
    let QueryResult::Matrix(m) = r else { panic!() };
    // (0, 60s]: 15s, 30s, 45s, 60s.
    assert_eq!(
        m[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![15_000, 30_000, 45_000, 60_000]
    );
}

#[tokio::test]
async fn at_modifier_and_subqueries() {
    // `@ 60` pins the evaluation time for every step of a range query.
    let r = engine()
        .range_query(
            &tenant("a"),
            r#"http_requests_total{job="db"} @ 60"#,
            0,
            120_000,
            60_000,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let QueryResult::Matrix(m) = r else { panic!() };
    assert_eq!(m[0].points, vec![(0, 4.0), (60_000, 4.0), (120_000, 4.0)]);
    // max_over_time of a rate subquery: the db counter rises 1 per 15s everywhere.
    let v = vector(
        instant(
            r#"max_over_time(rate(http_requests_total{job="db"}[1m])[5m:1m])"#,
            300_000,
        )
        .await
        .unwrap(),
    );
    assert!((v[0].1 - 1.0 / 15.0).abs() < 1e-9, "{v:?}");
    // A bare subquery in an instant query is a range vector aligned to its step.
    let r = instant(r#"http_requests_total{job="db"}[2m:1m]"#, 150_000)
        .await
        .unwrap();
    let QueryResult::Matrix(m) = r else { panic!() };
    assert_eq!(m[0].points, vec![(60_000, 4.0), (120_000, 8.0)]);
}

#[tokio::test]
async fn errors_name_the_problem() {
    let e = instant(r#"start_timestamp(http_requests_total)"#, 0)
        .await
        .unwrap_err();
    assert!(matches!(e, QueryError::Unsupported(_)));
    assert!(e.to_string().contains("start_timestamp"), "{e}");
    // Both sides hold two series of job "api": Prometheus' many-to-many error, a 422.
    let e = instant("http_requests_total + on(job) http_requests_total", 60_000)
        .await
        .unwrap_err();
    assert!(matches!(e, QueryError::Execution(_)), "{e:?}");
    assert_eq!(e.error_code().http_status(), 422);
    assert!(
        e.to_string().ends_with(
            "many-to-many matching not allowed: matching labels must be unique on one side"
        ),
        "{e}"
    );
    let e = instant("sum(", 0).await.unwrap_err();
    assert_eq!(e.error_code().prometheus_error_type(), "bad_data");
    let e = instant("start_timestamp(x)", 0).await.unwrap_err();
    assert!(e.to_string().contains("start_timestamp"), "{e}");
    let e = instant(r#"x{a=~"("}"#, 0).await.unwrap_err();
    assert_eq!(e.error_code().http_status(), 400, "{e}");
    // Two series colliding once the name is dropped.
    let e = instant(r#"rate({job="api", instance="1"}[1m])"#, 60_000).await;
    assert!(e.is_ok(), "one series per tenant here: {e:?}");
}

#[tokio::test]
async fn explain_shows_both_plans() {
    let text = engine()
        .explain(
            &tenant("a"),
            "sum(rate(http_requests_total[5m]))",
            0,
            0,
            1,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert!(text.contains("PromAggregate"), "{text}");
    assert!(text.contains("PromSelectExec"), "{text}");
}

#[tokio::test]
async fn too_many_samples_is_an_execution_error() {
    let source = || Arc::new(Fixed(vec![counter("a", "api", "1", 1.0)]));
    let query = "rate(http_requests_total[10m])";
    let err = QueryEngine::with_max_samples(source(), 10)
        .instant_query(&tenant("a"), query, 600_000, &QueryOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_code().http_status(), 422, "{err}");
    assert!(err.to_string().contains("too many samples"), "{err}");
    // Within the limit the same query answers.
    let ok = QueryEngine::with_max_samples(source(), 100)
        .instant_query(&tenant("a"), query, 600_000, &QueryOptions::default())
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn max_source_resolution_takes_thanos_values() {
    use MaxSourceResolution as R;
    for (s, want) in [
        ("raw", Some(R::Raw)),
        ("0", Some(R::Raw)),
        ("0s", Some(R::Raw)),
        ("5m", Some(R::FiveMinutes)),
        ("300s", Some(R::FiveMinutes)),
        ("300", Some(R::FiveMinutes)),
        ("1h", Some(R::OneHour)),
        ("60m", Some(R::OneHour)),
        ("auto", Some(R::Auto)),
        ("10m", None),
        ("1d", None),
        ("-5m", None),
        ("NaN", None),
        ("", None),
        ("5M", None),
    ] {
        assert_eq!(R::parse(s), want, "{s:?}");
    }
    let steps = |step| Steps {
        start: 0,
        end: 86_400_000,
        step,
    };
    // Auto: the coarsest resolution not coarser than a fifth of the step.
    assert_eq!(R::Auto.resolve_ms(steps(60_000)), 0);
    assert_eq!(R::Auto.resolve_ms(steps(1_499_999)), 0);
    assert_eq!(R::Auto.resolve_ms(steps(1_500_000)), 300_000);
    assert_eq!(R::Auto.resolve_ms(steps(17_999_999)), 300_000);
    assert_eq!(R::Auto.resolve_ms(steps(18_000_000)), 3_600_000);
    assert_eq!(R::Auto.resolve_ms(Steps::instant(86_400_000)), 0);
    assert_eq!(R::OneHour.resolve_ms(Steps::instant(0)), 3_600_000);
    assert_eq!(R::Raw.resolve_ms(steps(18_000_000)), 0);
}

/// The logical plan of `query` over two hours at 1h steps.
async fn logical_plan(query: &str, res: MaxSourceResolution) -> String {
    let opts = QueryOptions {
        max_source_resolution: res,
        ..QueryOptions::default()
    };
    let text = engine()
        .explain(&tenant("a"), query, 0, 7_200_000, 3_600_000, &opts)
        .await
        .unwrap();
    let end = text.find("physical plan:").unwrap();
    text[..end].to_string()
}

#[tokio::test]
async fn each_selection_reads_the_aggregate_its_consumer_needs() {
    let m5 = MaxSourceResolution::FiveMinutes;
    for (query, aggregates) in [
        ("min_over_time(http_requests_total[1h])", &["Min"][..]),
        ("max_over_time(http_requests_total[1h])", &["Max"]),
        ("sum_over_time(http_requests_total[1h])", &["Sum"]),
        ("count_over_time(http_requests_total[1h])", &["Count"]),
        ("avg_over_time(http_requests_total[1h])", &["Sum", "Count"]),
        ("rate(http_requests_total[1h])", &["Counter"]),
        ("increase(http_requests_total[1h])", &["Counter"]),
        ("irate(http_requests_total[1h])", &["Counter"]),
        ("resets(http_requests_total[1h])", &["Counter"]),
        ("http_requests_total", &["Value"]),
        ("changes(http_requests_total[1h])", &["Value"]),
        ("last_over_time(http_requests_total[1h])", &["Value"]),
        ("max_over_time(http_requests_total[1h:5m])", &["Value"]),
        (
            "sum(rate(http_requests_total[1h])) / sum(http_requests_total)",
            &["Counter", "Value"],
        ),
    ] {
        let plan = logical_plan(query, m5).await;
        let got: Vec<&str> = plan
            .match_indices("aggregate=")
            .map(|(i, _)| {
                let rest = &plan[i + "aggregate=".len()..];
                &rest[..rest
                    .find(|c: char| !c.is_alphanumeric())
                    .unwrap_or(rest.len())]
            })
            .collect();
        assert_eq!(got, aggregates, "{query}: {plan}");
        assert!(plan.contains("max_resolution=300000ms"), "{plan}");
        // Counting sums the counts; an average divides the sums by the counts.
        if query.starts_with("count_over_time") || query.starts_with("avg_over_time") {
            assert!(plan.contains("sum_over_time"), "{plan}");
            assert!(!plan.contains("count_over_time"), "{plan}");
        }
        // Raw reads stay as they always were.
        let raw = logical_plan(query, MaxSourceResolution::Raw).await;
        assert!(!raw.contains("max_resolution"), "{raw}");
        assert!(
            !raw.contains("PromVectorBinary") || query.contains('/'),
            "{raw}"
        );
    }
}

#[tokio::test]
async fn rewritten_functions_answer_like_raw_over_raw_data() {
    for query in [
        "count_over_time(http_requests_total[2m])",
        "avg_over_time(http_requests_total[2m])",
        "rate(http_requests_total[2m])",
    ] {
        let mut answers = Vec::new();
        for res in [MaxSourceResolution::Raw, MaxSourceResolution::OneHour] {
            let opts = QueryOptions {
                max_source_resolution: res,
                ..QueryOptions::default()
            };
            let r = engine()
                .range_query(&tenant("a"), query, 120_000, 600_000, 60_000, &opts)
                .await
                .unwrap();
            let QueryResult::Matrix(m) = r else {
                panic!("{query}: not a matrix")
            };
            answers.push(m);
        }
        assert!(!answers[0].is_empty(), "{query}");
        assert_eq!(answers[0].len(), answers[1].len(), "{query}");
        for (a, b) in answers[0].iter().zip(&answers[1]) {
            assert_eq!(a.labels, b.labels, "{query}");
            assert_eq!(a.points.len(), b.points.len(), "{query}");
            for (p, q) in a.points.iter().zip(&b.points) {
                assert_eq!(p.0, q.0, "{query}");
                assert!(
                    (p.1 - q.1).abs() <= 1e-12 * p.1.abs().max(1.0),
                    "{query}: {p:?} {q:?}"
                );
            }
        }
    }
}

/// Found by the `promql_parse_plan` fuzz target (fuzz/): `@` times, offsets and ranges past
/// what `i64` milliseconds can hold used to overflow (a panic) or wrap during lowering.
#[tokio::test]
async fn times_out_of_bounds_are_bad_data() {
    for query in [
        "http_requests_total @ 9223372036854775",
        "http_requests_total @ -9223372036854775",
        "max_over_time(http_requests_total[1000000000y])",
        "http_requests_total offset 1000000000y",
        "sum_over_time(http_requests_total[1m:1000000000y])",
    ] {
        match instant(query, 60_000).await {
            Err(QueryError::BadData(m)) => assert!(m.contains("out of bounds"), "{query}: {m}"),
            other => panic!("{query}: {other:?}"),
        }
    }
    let opts = QueryOptions::default();
    let r = engine()
        .range_query(
            &tenant("a"),
            "http_requests_total",
            i64::MIN,
            0,
            60_000,
            &opts,
        )
        .await;
    assert!(matches!(r, Err(QueryError::BadData(_))), "{r:?}");
    // Offsets and `@` times within bounds still evaluate.
    let v = vector(
        instant("http_requests_total @ 120 offset -1m", 0)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 3, "{v:?}");
}

/// Found by the fuzz target: `x[292y:1ms]` evaluated its subquery at 9.2e12 steps, a hang
/// that the query timeout could not interrupt.
#[tokio::test]
async fn subquery_over_too_many_steps_is_refused() {
    match instant("http_requests_total[292y:1ms]", 60_000).await {
        Err(QueryError::Execution(m)) => assert!(m.contains("steps"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A subquery well inside the limit runs.
    let v = vector(
        instant("max_over_time(http_requests_total[10m:1s])", 600_000)
            .await
            .unwrap(),
    );
    assert_eq!(v.len(), 3, "{v:?}");
}

/// Planning `PromNode`s directly gives the plan DataFusion's planner and optimizers give.
#[tokio::test]
async fn direct_planning_matches_datafusion_planning() {
    let e = engine();
    let queries = [
        "http_requests_total",
        "http_requests_total offset 1m",
        "http_requests_total @ 300",
        "rate(http_requests_total[5m])",
        "sum by (job) (rate(http_requests_total[5m]))",
        "topk(1, http_requests_total)",
        "count_values(\"v\", http_requests_total)",
        "histogram_quantile(0.9, sum by (le) (rate(http_requests_total[5m])))",
        "http_requests_total * on(instance) group_left(job) http_requests_total",
        "http_requests_total > 10 and http_requests_total < 1000 or up",
        "max_over_time(rate(http_requests_total[1m])[5m:1m])",
        "label_replace(http_requests_total, \"x\", \"$1\", \"job\", \"(.*)\")",
        "absent(nope)",
        "scalar(sum(http_requests_total)) * vector(2) + time()",
        "sort_desc(http_requests_total)",
        "-http_requests_total ^ 2",
    ];
    for (start, end) in [(600_000, 600_000), (0, 600_000)] {
        let steps = if start == end {
            Steps::instant(start)
        } else {
            Steps {
                start,
                end,
                step: 60_000,
            }
        };
        for q in queries {
            let notes = Annotations::new();
            let planned = e
                .lower(&[tenant("a")], q, steps, &QueryOptions::default(), &notes)
                .unwrap_or_else(|err| panic!("{q}: {err:?}"));
            let plan = match planned.lowered {
                Lowered::Vector(p) | Lowered::Matrix(p) | Lowered::ScalarPlan(p) => p,
                other => panic!("{q}: not a plan: {other:?}"),
            };
            let state = e.ctx.state();
            let direct = e
                .prom_physical(&plan, &state)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{q}: not planned directly"));
            let (optimized, planned) = e.physical(&plan, &state).await.unwrap();
            assert_eq!(
                optimized.display_indent().to_string(),
                plan.display_indent().to_string(),
                "{q}: the logical optimizer changed the plan"
            );
            assert_eq!(
                displayable(direct.as_ref()).indent(true).to_string(),
                displayable(planned.as_ref()).indent(true).to_string(),
                "{q}"
            );
        }
    }
}

/// Queries of every shape of nesting at the limit (`depth` levels; `None`: one more).
fn nested_queries(depth: usize) -> Vec<String> {
    let sel = "http_requests_total";
    let wrap =
        |open: &str, close: &str, n: usize| format!("{}{sel}{}", open.repeat(n), close.repeat(n));
    let n = depth - 1;
    vec![
        wrap("abs(", ")", n),
        wrap("(", ")", n),
        wrap("sum(", ")", n),
        format!("{}{sel}", "-".repeat(n)),
        format!("{sel}{}", format!(" + {sel}").repeat(n)),
        format!("{}{}", "1 + ".repeat(n), sel),
        // A subquery inside a function call is two levels.
        wrap("max_over_time(", "[1m:30s])", n / 2),
        wrap("sum by (job) (", ")", n),
    ]
}

/// Every shape of nesting runs at the limit on a query thread, with a quarter of its stack
/// for margin, and one level more is refused as bad data naming the limit.
#[test]
fn queries_at_the_nesting_limit_run_on_query_threads() {
    let rt = crate::query_runtime_with_stack(1, crate::QUERY_THREAD_STACK / 4).unwrap();
    let run = rt.spawn(async {
        let engine = engine();
        let opts = QueryOptions::default();
        for q in nested_queries(hypnos_planner::MAX_NESTING_DEPTH) {
            let r = engine.instant_query(&tenant("a"), &q, 600_000, &opts).await;
            assert!(r.is_ok(), "{}...: {r:?}", &q[..40]);
            let r = engine
                .range_query(&tenant("a"), &q, 0, 600_000, 60_000, &opts)
                .await;
            assert!(r.is_ok(), "{}...: {r:?}", &q[..40]);
        }
        for q in nested_queries(hypnos_planner::MAX_NESTING_DEPTH + 1) {
            match engine.instant_query(&tenant("a"), &q, 600_000, &opts).await {
                Err(QueryError::BadData(e)) => assert!(e.contains("nesting limit"), "{e}"),
                other => panic!("{}...: {other:?}", &q[..40]),
            }
        }
    });
    rt.block_on(run).expect("no stack overflow");
}

/// A query whose selections read little but whose subquery computes millions of points.
const EXPENSIVE: &str = "max_over_time(last_over_time(http_requests_total[2d])[1d:10ms])";

/// The timeout binds CPU-bound operators: the query stops soon after it, not when the
/// operators are done (minutes in the debug build, gigabytes of points).
#[tokio::test]
async fn timeout_stops_cpu_bound_operators() {
    let opts = QueryOptions {
        timeout: Duration::from_millis(500),
        ..QueryOptions::default()
    };
    let started = std::time::Instant::now();
    let r = engine()
        .instant_query(&tenant("a"), EXPENSIVE, 86_400_000, &opts)
        .await;
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
    // Generous for a slow machine; without the checks in the operators it runs for minutes.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A raised cancellation flag stops a running query.
#[tokio::test]
async fn cancellation_stops_cpu_bound_operators() {
    let opts = QueryOptions::default();
    let cancel = Arc::clone(&opts.cancel);
    // Another thread: the query does not yield to this test's runtime while it computes.
    let raise = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let r = engine()
        .instant_query(&tenant("a"), EXPENSIVE, 86_400_000, &opts)
        .await;
    raise.join().unwrap();
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
}

/// The points a subquery materializes count against the samples limit, although its
/// selection reads few samples (Prometheus' max-samples counts what is held in memory).
#[tokio::test]
async fn points_held_by_operators_count_against_the_samples_limit() {
    let budget = Arc::new(QueryBudget::new(0, 100_000));
    let opts = QueryOptions {
        budget: Some(Arc::clone(&budget)),
        ..QueryOptions::default()
    };
    let r = engine()
        .instant_query(&tenant("a"), EXPENSIVE, 86_400_000, &opts)
        .await;
    match r {
        Err(QueryError::Execution(e)) => {
            assert_eq!(e, crate::guard::TOO_MANY_SAMPLES);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(budget.exceeded(), Some("max_samples_per_query"));
    assert!(budget.samples() < 1000, "{}", budget.samples());
    // The engine's own bound (Prometheus' --query.max-samples) applies without a budget.
    let small = QueryEngine::with_max_samples(
        Arc::new(Fixed(vec![counter("a", "api", "1", 1.0)])),
        100_000,
    );
    let r = small
        .instant_query(
            &tenant("a"),
            EXPENSIVE,
            86_400_000,
            &QueryOptions::default(),
        )
        .await;
    assert!(
        matches!(&r, Err(QueryError::Execution(e)) if e.contains("too many samples")),
        "{r:?}"
    );
    // A query within the bound still answers.
    let r = small
        .instant_query(
            &tenant("a"),
            "max_over_time(http_requests_total[10m:1s])",
            600_000,
            &QueryOptions::default(),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
}

/// The samples limit binds the query as a whole: in `m + (m + (m + ...))` every level
/// holds its left side while the right one is evaluated, so the query holds about depth x
/// series x steps points at once, although each operator alone stays far below the limit.
#[tokio::test]
async fn points_held_across_operators_count_against_the_samples_limit() {
    let series: Vec<SeriesData> = (0..200)
        .map(|i| {
            let id = i.to_string();
            let ts: Vec<i64> = (0..=40).map(|k| k * 15_000).collect();
            let vs: Vec<f64> = (0..=40).map(f64::from).collect();
            SeriesData::new(
                Labels::from_pairs([("__name__", "m"), ("id", &id), ("tenant_id", "a")]),
                Int64Array::from(ts),
                Float64Array::from(vs),
            )
        })
        .collect();
    // 200 series x 41 steps = 8,200 points per operand; one level holds 16,400.
    let engine = QueryEngine::with_max_samples(Arc::new(Fixed(series.clone())), 30_000);
    let nested = |depth: usize| "(m + ".repeat(depth) + "m" + &")".repeat(depth);
    let range = |q: String| {
        let engine = &engine;
        async move {
            engine
                .range_query(
                    &tenant("a"),
                    &q,
                    0,
                    600_000,
                    15_000,
                    &QueryOptions::default(),
                )
                .await
        }
    };
    let ok = range(nested(1)).await.unwrap();
    let QueryResult::Matrix(m) = ok else {
        panic!("{ok:?}")
    };
    assert_eq!(m.len(), 200);
    let r = range(nested(20)).await;
    assert!(
        matches!(&r, Err(QueryError::Execution(e)) if e == crate::guard::TOO_MANY_SAMPLES),
        "{r:?}"
    );
    // The same under the tenant's max_samples_per_query, which is named as the reason.
    let budget = Arc::new(QueryBudget::new(0, 30_000));
    let opts = QueryOptions {
        budget: Some(Arc::clone(&budget)),
        ..QueryOptions::default()
    };
    let unlimited = QueryEngine::new(Arc::new(Fixed(series)));
    let r = unlimited
        .range_query(&tenant("a"), &nested(20), 0, 600_000, 15_000, &opts)
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(budget.exceeded(), Some("max_samples_per_query"));
}
