//! Hostile queries against the real binary: nesting deep enough to overflow a stack, and
//! queries that read little but compute millions of points. Each gets a clear error, the
//! process lives on, and other requests keep being answered meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The planner's nesting limit (`hypnos_planner::MAX_NESTING_DEPTH`).
const LIMIT: usize = 256;

fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// A query must be refused as bad data naming the nesting limit.
#[track_caller]
fn assert_nesting_refused(status: u16, v: &Value, what: &str) {
    assert_eq!(status, 400, "{what}: {v}");
    assert_eq!(v["errorType"], "bad_data", "{what}: {v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains("nesting limit"), "{what}: {e}");
}

/// Each of these aborted the process with a stack overflow: now 400 naming the limit,
/// and the server still answers.
#[test]
fn deeply_nested_queries_are_refused_and_the_server_lives() {
    let s = TestServer::start();
    let t = base_time();
    s.write(
        Tenant::Default,
        &request(vec![series("up", &[("job", "a")], &[(t, 1.0)])]),
    );
    let hostile = [
        ("abs( x400", nested("abs(", "up", ")", 400)),
        (
            "unary minus x1300 on a number",
            format!("{}1", "-".repeat(1300)),
        ),
        (
            "unary minus x1300 on a vector",
            format!("{}up", "-".repeat(1300)),
        ),
        ("parentheses x2000", nested("(", "up", ")", 2000)),
        ("1+1+... 3000 terms", format!("1{}", "+1".repeat(2999))),
        ("up+up+... 3000 terms", format!("up{}", "+up".repeat(2999))),
        (
            "nested subqueries x300",
            nested("max_over_time(", "up", "[5m:1m])", 300),
        ),
        ("nested aggregations x400", nested("sum(", "up", ")", 400)),
        (
            "unary minus x1,000,000",
            format!("{}up", "-".repeat(1_000_000)),
        ),
        ("parentheses x500,000", nested("(", "up", ")", 500_000)),
    ];
    for (what, q) in &hostile {
        let (status, v) = s.api_post(
            Tenant::Default,
            "query",
            &[("query", q.clone()), ("time", secs(t))],
        );
        assert_nesting_refused(status, &v, what);
    }
    // Range queries take the same path.
    let (status, v) = s.api_post(
        Tenant::Default,
        "query_range",
        &[
            ("query", hostile[0].1.clone()),
            ("start", secs(t - 60_000)),
            ("end", secs(t)),
            ("step", "15".into()),
        ],
    );
    assert_nesting_refused(status, &v, "range query");

    // At the limit, queries answer.
    for q in [
        nested("abs(", "up", ")", LIMIT - 1),
        format!("{}up", "-".repeat(LIMIT - 1)),
        format!("up{}", "+up".repeat(LIMIT - 1)),
    ] {
        let data = s.query(Tenant::Default, &q, t);
        assert_eq!(vector(&data).len(), 1, "{data}");
    }
    // The process is alive and still answers.
    assert_eq!(s.get("/-/healthy").0, 200);
    let data = s.query(Tenant::Default, "up", t);
    assert_eq!(vector(&data).len(), 1, "{data}");
}

/// The expensive query of issue 11: reads 20 x 49 samples, computes millions of points.
const EXPENSIVE: &str = "max_over_time(last_over_time(up[2d])[1d:10ms])";

const LIMITS: &str = r#"
tenants:
  timed:
    query_timeout: 1s
  capped:
    query_timeout: 1m
    max_samples_per_query: 100000
"#;

/// Writes 20 series with a sample every hour over the two days before `t` for `tenant`.
fn write_two_days(s: &TestServer, tenant: &str, t: i64) {
    let samples: Vec<(i64, f64)> = (0..=48)
        .map(|h| (t - 48 * 3_600_000 + h * 3_600_000, h as f64))
        .collect();
    let all = (0..20)
        .map(|i| series("up", &[("instance", &i.to_string())], &samples))
        .collect();
    s.write(Tenant::Thanos(tenant), &request(all));
}

fn get_with(s: &TestServer, path: &str, timeout: Duration) -> Result<u16, String> {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?
        .get(s.url(path))
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

fn running(s: &TestServer, tenant: &str) -> f64 {
    metric_value(
        &s.metrics(),
        "hypnos_queries_running",
        &[("tenant", tenant)],
    )
    .unwrap_or(0.0)
}

/// The timeout binds a CPU-bound query; the samples limit counts the points its subquery
/// materializes; while two such queries run, health checks, /metrics and writes answer.
#[test]
fn expensive_queries_stop_at_their_limits_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("limits.yml");
    std::fs::write(&limits, LIMITS).unwrap();
    let s = TestServer::with(Options::default().arg(format!("--limits-file={}", limits.display())));
    let t = base_time();
    for tenant in ["timed", "capped", "heavy"] {
        write_two_days(&s, tenant, t);
    }
    let params = |timeout: Option<&str>| {
        let mut p = vec![("query", EXPENSIVE.to_string()), ("time", secs(t))];
        if let Some(d) = timeout {
            p.push(("timeout", d.to_string()));
        }
        p
    };

    // query_timeout: 1s stops it soon after a second (it ran 12 s and took 4 GB).
    let started = Instant::now();
    let (status, v) = s.api(Tenant::Thanos("timed"), "query", &params(None));
    let took = started.elapsed();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["errorType"], "timeout", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("query_timeout"),
        "{v}"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");

    // 100,000 samples: the selection reads 980, the subquery would hold millions.
    let (status, v) = s.api(Tenant::Thanos("capped"), "query", &params(None));
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errorType"], "execution", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("query processing would load too many samples into memory"),
        "{v}"
    );
    let rejected = metric_value(
        &s.metrics(),
        "hypnos_query_rejected_total",
        &[("tenant", "capped"), ("reason", "max_samples_per_query")],
    );
    assert_eq!(rejected, Some(1.0));

    // Two of them at once, with no limit but a 20 s timeout: the server stays responsive.
    std::thread::scope(|scope| {
        let heavy: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| s.api(Tenant::Thanos("heavy"), "query", &params(Some("20s")))))
            .collect();
        eventually(
            Duration::from_secs(60),
            "two heavy queries in flight",
            || (running(&s, "heavy") == 2.0).then_some(()),
        );
        for _ in 0..3 {
            assert_eq!(
                get_with(&s, "/-/healthy", Duration::from_secs(5)),
                Ok(200),
                "/-/healthy while two heavy queries run"
            );
            assert_eq!(get_with(&s, "/metrics", Duration::from_secs(5)), Ok(200));
            s.write(
                Tenant::Thanos("other"),
                &request(vec![series("w", &[], &[(t, 1.0)])]),
            );
        }
        assert_eq!(running(&s, "heavy"), 2.0, "still running meanwhile");
        for h in heavy {
            let (status, v) = h.join().unwrap();
            // Stopped by the timeout, or by the engine's bound on points held (50,000,000).
            assert!(status == 503 || status == 422, "{status}: {v}");
        }
    });
    assert_eq!(s.get("/-/healthy").0, 200);
    let data = s.query(Tenant::Thanos("other"), "w", t);
    assert_eq!(vector(&data).len(), 1, "{data}");
}

/// Series, each with a sample and an exemplar, for the metadata and exemplar reads.
const META_SERIES: usize = 20_000;

/// Writes [`META_SERIES`] series `m{id="<i>"}` with a sample and an exemplar at `t`.
fn write_with_exemplars(s: &TestServer, tenant: &str, t: i64) {
    for chunk in (0..META_SERIES).collect::<Vec<_>>().chunks(2_000) {
        let all = chunk
            .iter()
            .map(|i| {
                let mut ts = series("m", &[("id", &i.to_string())], &[(t, *i as f64)]);
                ts.exemplars.push(hypnos_schemas::remote::Exemplar {
                    labels: vec![hypnos_schemas::remote::Label {
                        name: "trace_id".into(),
                        value: format!("trace-{i}"),
                    }],
                    value: *i as f64,
                    timestamp: t,
                });
                ts
            })
            .collect();
        s.write(Tenant::Thanos(tenant), &request(all));
    }
}

/// POSTs `params` form-encoded to `/api/v1/<endpoint>` with a client that gives up after
/// `timeout`: the status and body, or the client's error.
fn post_with(
    s: &TestServer,
    tenant: &str,
    endpoint: &str,
    params: &[(&str, String)],
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let r = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?
        .post(s.url(&format!("/api/v1/{endpoint}")))
        .header("THANOS-TENANT", tenant)
        .form(params)
        .send()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// `/api/v1/series` with one selector repeated 200 times, and `/api/v1/query_exemplars`
/// with 1,000 identical `or` groups, ran for minutes on the server's runtime whatever the
/// query timeout, holding a copy of every series per repetition. They now run on the query
/// runtime under `query_timeout`, read each distinct matcher set once, and answer in time
/// (or with the timeout error) while `/-/healthy` keeps answering.
#[test]
fn repeated_matchers_in_series_and_exemplar_reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("limits.yml");
    std::fs::write(&limits, "tenants:\n  meta:\n    query_timeout: 2s\n").unwrap();
    let s = TestServer::with(Options::default().arg(format!("--limits-file={}", limits.display())));
    let t = base_time();
    write_with_exemplars(&s, "meta", t);

    let series_params: Vec<(&str, String)> = (0..200)
        .map(|_| ("match[]", r#"{__name__=~".+"}"#.to_string()))
        .collect();
    let groups = vec![r#"id=~".*1.*""#; 1_000].join(" or ");
    let exemplar_params = vec![
        ("query", format!("{{{groups}}}")),
        ("start", secs(t - 60_000)),
        ("end", secs(t + 60_000)),
    ];
    // Generous for a 2 s timeout on a loaded machine; before, these took minutes.
    let bound = Duration::from_secs(30);
    let answered = |r: Result<(u16, Value), String>, what: &str| {
        let (status, v) = r.unwrap_or_else(|e| panic!("{what}: no answer within {bound:?}: {e}"));
        eprintln!("{what}: {status}");
        match status {
            200 => v,
            503 => {
                assert_eq!(v["errorType"], "timeout", "{what}: {v}");
                assert!(
                    v["error"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("query_timeout"),
                    "{what}: {v}"
                );
                Value::Null
            }
            other => panic!("{what}: {other}: {v}"),
        }
    };
    std::thread::scope(|scope| {
        let reads: Vec<_> = (0..2)
            .flat_map(|_| {
                [
                    scope.spawn(|| post_with(&s, "meta", "series", &series_params, bound)),
                    scope.spawn(|| {
                        post_with(&s, "meta", "query_exemplars", &exemplar_params, bound)
                    }),
                ]
            })
            .collect();
        for _ in 0..3 {
            assert_eq!(
                get_with(&s, "/-/healthy", Duration::from_secs(5)),
                Ok(200),
                "/-/healthy while the reads run"
            );
        }
        for (i, r) in reads.into_iter().enumerate() {
            let what = if i % 2 == 0 { "series" } else { "exemplars" };
            let v = answered(r.join().unwrap(), what);
            if v.is_null() {
                continue;
            }
            // Each series once, however often it was asked for.
            let data = v["data"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: {v}"));
            let want = if what == "series" {
                META_SERIES
            } else {
                (0..META_SERIES)
                    .filter(|i| i.to_string().contains('1'))
                    .count()
            };
            assert_eq!(data.len(), want, "{what}");
        }
    });
    assert_eq!(s.get("/-/healthy").0, 200);
}
