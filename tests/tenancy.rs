//! Multi-tenancy end to end through the real binary: isolation on every read path (a
//! property-style test over random tenants, series and queries, heads and blocks),
//! federated reads, bearer-token authentication on every path, per-tenant limits and usage
//! tracking.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A raw HTTP request with any headers; status, headers and body.
fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    params: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let url = s.url(path);
    let mut rb = match method {
        "GET" => s.client().get(url).query(params),
        _ => s.client().post(url).query(params).body(body),
    };
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.text().unwrap_or_default())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Every label set in a query or metadata answer (`result[].metric` or `data[]`).
fn label_sets(data: &Value) -> Vec<BTreeMap<String, String>> {
    let items: Vec<&Value> = match data.get("result") {
        Some(Value::Array(r)) => r.iter().filter_map(|x| x.get("metric")).collect(),
        _ => match data {
            Value::Array(a) => a.iter().filter(|x| x.is_object()).collect(),
            _ => vec![],
        },
    };
    items
        .into_iter()
        .map(|m| {
            m.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .collect()
}

fn strings(data: &Value) -> Vec<String> {
    data.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

const TENANTS: [&str; 4] = ["red", "green", "blue", "gold"];
const METRICS: [&str; 3] = ["req_total", "mem_bytes", "up"];

/// What each tenant wrote: every label value is unique to its tenant (`inst` is
/// `<tenant>-<n>`, and each tenant has a label name of its own), so any leak shows.
#[derive(Default)]
struct Written {
    names: BTreeSet<String>,
    values: BTreeSet<String>,
    series: usize,
}

#[test]
fn no_read_path_ever_shows_another_tenants_series() {
    let s = TestServer::start();
    let t0 = now_ms() - 10 * 60_000;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut written: BTreeMap<&str, Written> = BTreeMap::new();
    // Two rounds: the first is flushed into blocks, the second stays in the heads.
    for round in 0..2 {
        for tenant in TENANTS {
            let w = written.entry(tenant).or_default();
            let own_label = format!("only_{tenant}");
            let mut batch = Vec::new();
            let mut families = Vec::new();
            for i in 0..(2 + rng.below(5)) {
                let metric = *rng.pick(&METRICS);
                let inst = format!("{tenant}-{round}-{i}");
                let job = format!("{tenant}-job{}", rng.below(2));
                let samples: Vec<(i64, f64)> = (0..5)
                    .map(|k| (t0 + round * 60_000 + k * 10_000, rng.below(100) as f64))
                    .collect();
                // Some series also carry a tenant_id of someone else: the server replaces it.
                let forged = if rng.below(3) == 0 {
                    vec![("tenant_id", "red")]
                } else {
                    vec![]
                };
                let mut labels = vec![
                    ("inst", inst.as_str()),
                    ("job", job.as_str()),
                    (own_label.as_str(), "1"),
                ];
                labels.extend(forged);
                // An exemplar whose trace id names the tenant.
                let mut ts = series(metric, &labels, &samples);
                ts.exemplars.push(hypnos_schemas::remote::Exemplar {
                    labels: vec![hypnos_schemas::remote::Label {
                        name: "trace_id".into(),
                        value: format!("trace-{tenant}"),
                    }],
                    value: 1.0,
                    timestamp: samples[0].0,
                });
                batch.push(ts);
                // Metric metadata whose help names the tenant.
                families.push(metadata(metric, 2, &format!("help of {tenant}")));
                for v in [metric, inst.as_str(), job.as_str(), tenant, "1"] {
                    w.values.insert(v.to_string());
                }
                for n in ["__name__", "inst", "job", own_label.as_str(), "tenant_id"] {
                    w.names.insert(n.to_string());
                }
                w.series += 1;
            }
            let mut req = request(batch);
            req.metadata = families;
            s.write(Tenant::Thanos(tenant), &req);
        }
        if round == 0 {
            s.flush();
        }
    }
    let t_end = t0 + 3 * 60_000;
    let selectors = |rng: &mut Rng, other: &str| -> String {
        let metric = *rng.pick(&METRICS);
        match rng.below(8) {
            0 => metric.to_string(),
            1 => format!(r#"{metric}{{tenant_id="{other}"}}"#),
            2 => format!(r#"{metric}{{tenant_id=~".+"}}"#),
            3 => format!(r#"{{__name__=~".+",tenant_id!="{other}"}}"#),
            4 => format!(r#"{{tenant_id=~"{other}|red|green|blue|gold"}}"#),
            5 => r#"{__name__=~".+",tenant_id=""}"#.to_string(),
            6 => format!(r#"{{job=~"{other}-job.*"}}"#),
            _ => format!(r#"{{inst=~"{other}-.*",tenant_id="{other}"}}"#),
        }
    };
    let check_labels = |caller: &[&str], sets: &[BTreeMap<String, String>], what: &str| {
        for set in sets {
            if let Some(t) = set.get("tenant_id") {
                assert!(
                    caller.contains(&t.as_str()),
                    "{what}: series of {t} shown to {caller:?}: {set:?}"
                );
            }
            for (k, v) in set {
                let ok = caller.iter().any(|c| {
                    let w = &written[c];
                    w.names.contains(k) && (w.values.contains(v) || v.parse::<f64>().is_ok())
                });
                assert!(
                    ok,
                    "{what}: label {k}={v} not written by {caller:?}: {set:?}"
                );
            }
        }
    };
    let check_strings = |caller: &[&str], items: &[String], names: bool, what: &str| {
        for v in items {
            let ok = caller.iter().any(|c| {
                let w = &written[c];
                if names {
                    w.names.contains(v)
                } else {
                    w.values.contains(v)
                }
            });
            assert!(ok, "{what}: {v:?} not written by {caller:?}");
        }
    };
    let callers: Vec<Vec<&str>> = vec![
        vec!["red"],
        vec!["green"],
        vec!["blue"],
        vec!["gold"],
        vec!["green", "blue"],
    ];
    let mut exemplars_seen = 0;
    for iteration in 0..60 {
        let caller = rng.pick(&callers).clone();
        let header = caller.join("|");
        let other = *rng.pick(&TENANTS);
        let sel = selectors(&mut rng, other);
        let h = [("X-Scope-OrgID", header.as_str())];
        let what = |p: &str| format!("#{iteration} {p} as {header}: {sel}");
        let queries = [
            sel.clone(),
            format!("sum by (tenant_id, job) ({sel})"),
            format!("count by (inst) ({sel})"),
            format!("{sel} * on (inst) group_left {sel}"),
        ];
        for q in &queries {
            let (st, _, body) = call(
                &s,
                "GET",
                "/api/v1/query",
                &h,
                &[("query", q.clone()), ("time", secs(t_end))],
                vec![],
            );
            if st == 422 || st == 400 {
                continue; // e.g. many-to-many matching: an error is no leak
            }
            assert_eq!(st, 200, "{}: {body}", what("query"));
            check_labels(&caller, &label_sets(&json(&body)["data"]), &what("query"));
            let (st, _, body) = call(
                &s,
                "GET",
                "/api/v1/query_range",
                &h,
                &[
                    ("query", q.clone()),
                    ("start", secs(t0)),
                    ("end", secs(t_end)),
                    ("step", "30".into()),
                ],
                vec![],
            );
            if st == 200 {
                check_labels(
                    &caller,
                    &label_sets(&json(&body)["data"]),
                    &what("query_range"),
                );
            }
        }
        let m = [("match[]", sel.clone())];
        let (st, _, body) = call(&s, "GET", "/api/v1/series", &h, &m, vec![]);
        assert_eq!(st, 200, "{}: {body}", what("series"));
        check_labels(&caller, &label_sets(&json(&body)["data"]), &what("series"));
        let (st, _, body) = call(
            &s,
            "GET",
            "/api/v1/query_exemplars",
            &h,
            &[("query", format!("rate({sel}[5m])"))],
            vec![],
        );
        assert_eq!(st, 200, "{}: {body}", what("query_exemplars"));
        for item in json(&body)["data"].as_array().unwrap() {
            let series = label_sets(&Value::Array(vec![item["seriesLabels"].clone()]));
            check_labels(&caller, &series, &what("query_exemplars"));
            for e in item["exemplars"].as_array().unwrap() {
                let trace = e["labels"]["trace_id"].as_str().unwrap();
                exemplars_seen += 1;
                assert!(
                    caller.iter().any(|c| trace == format!("trace-{c}")),
                    "{}: exemplar {trace} shown to {caller:?}",
                    what("query_exemplars")
                );
            }
        }
        let metric = [("metric", (*rng.pick(&METRICS)).to_string())];
        for params in [&metric[..], &[]] {
            let (st, _, body) = call(&s, "GET", "/api/v1/metadata", &h, params, vec![]);
            assert_eq!(st, 200, "{}: {body}", what("metadata"));
            let data = json(&body)["data"].clone();
            if params.is_empty() {
                // Every tenant wrote metadata: the caller sees its own.
                assert!(!data.as_object().unwrap().is_empty(), "{body}");
            }
            for (name, entries) in data.as_object().unwrap() {
                for e in entries.as_array().unwrap() {
                    let help = e["help"].as_str().unwrap();
                    assert!(
                        caller.iter().any(|c| help == format!("help of {c}")),
                        "{}: {name} {help:?}",
                        what("metadata")
                    );
                }
            }
        }
        for params in [&m[..], &[]] {
            let (st, _, body) = call(&s, "GET", "/api/v1/labels", &h, params, vec![]);
            assert_eq!(st, 200, "{}: {body}", what("labels"));
            check_strings(
                &caller,
                &strings(&json(&body)["data"]),
                true,
                &what("labels"),
            );
            for name in ["tenant_id", "inst", "job", "__name__", "only_red"] {
                let path = format!("/api/v1/label/{name}/values");
                let (st, _, body) = call(&s, "GET", &path, &h, params, vec![]);
                assert_eq!(st, 200, "{}: {body}", what(&path));
                check_strings(&caller, &strings(&json(&body)["data"]), false, &what(&path));
            }
        }
    }
    assert!(
        exemplars_seen > 0,
        "no query_exemplars answer had exemplars"
    );
    // A federated read sees exactly the union, each series with its tenant_id.
    let h = [("X-Scope-OrgID", "green|blue")];
    let (st, _, body) = call(
        &s,
        "GET",
        "/api/v1/series",
        &h,
        &[("match[]", r#"{__name__=~".+"}"#.into())],
        vec![],
    );
    assert_eq!(st, 200, "{body}");
    let sets = label_sets(&json(&body)["data"]);
    assert_eq!(
        sets.len(),
        written["green"].series + written["blue"].series,
        "{body}"
    );
    let tenants: BTreeSet<&str> = sets.iter().map(|s| s["tenant_id"].as_str()).collect();
    assert_eq!(tenants, BTreeSet::from(["blue", "green"]));
    // A tenant_id matcher narrows a federated read, never widens it.
    let data = s.query(
        Tenant::OrgId("green|blue"),
        r#"count({tenant_id="blue"})"#,
        t_end,
    );
    let n = vector(&data)[0].2 as usize;
    assert!(n > 0 && n <= written["blue"].series, "{data}");
    let (st, _, body) = call(
        &s,
        "GET",
        "/api/v1/query",
        &[("X-Scope-OrgID", "green")],
        &[
            ("query", r#"count({tenant_id="blue"})"#.into()),
            ("time", secs(t_end)),
        ],
        vec![],
    );
    assert_eq!(st, 200);
    assert_eq!(
        json(&body)["data"]["result"],
        serde_json::json!([]),
        "{body}"
    );
    // Writes go to exactly one tenant.
    let (st, _, body) = call(
        &s,
        "POST",
        "/api/v1/receive",
        &[
            RW_HEADERS[0],
            RW_HEADERS[1],
            RW_HEADERS[2],
            ("X-Scope-OrgID", "a|b"),
        ],
        &[],
        encode(&request(vec![series("x", &[], &[(t0, 1.0)])])),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("one tenant"), "{body}");
}

const TOKENS: &str = r#"
tokens:
  - name: alpha-prometheus
    token: tok-alpha-write-0123456789
    write: [alpha]
  - name: alpha-grafana
    token: tok-alpha-read-0123456789
    read: [alpha]
  - name: federation
    token: tok-fed-0123456789
    read_regex: "alpha|beta"
  - name: ops
    token: tok-ops-0123456789
    admin: true
  - name: beta-prometheus
    token: tok-beta-write-0123456789
    write: [beta]
  - name: scraper
    token: tok-scrape-0123456789
    metrics: true
"#;

/// A server with `--auth=token` reading `tokens` (YAML) from a file in the returned
/// directory, which must outlive the server.
fn token_server(tokens: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.yml");
    std::fs::write(&file, tokens).unwrap();
    let s = TestServer::with(
        Options::default()
            .arg("--auth=token")
            .arg(format!("--auth.tokens-file={}", file.display())),
    );
    (dir, s)
}

#[test]
fn tokens_are_checked_on_every_path() {
    let (dir, s) = token_server(TOKENS);
    let t = now_ms() - 60_000;
    let body = encode(&request(vec![series("up", &[("job", "a")], &[(t, 1.0)])]));
    let bearer = |tok: &str| format!("Bearer {tok}");
    let write = |auth: Option<&str>, tenant: Option<&str>| {
        let mut h: Vec<(&str, &str)> = RW_HEADERS.to_vec();
        let a = auth.map(bearer);
        if let Some(a) = &a {
            h.push(("Authorization", a.as_str()));
        }
        if let Some(t) = tenant {
            h.push(("THANOS-TENANT", t));
        }
        call(&s, "POST", "/api/v1/receive", &h, &[], body.clone())
    };
    // Writes: no token, a wrong token, a token for another tenant, a reader's token.
    let (st, h, b) = write(None, None);
    assert_eq!(st, 401, "{b}");
    assert_eq!(h["www-authenticate"], "Bearer");
    assert_eq!(write(Some("nope"), None).0, 401);
    let (st, _, b) = write(Some("tok-alpha-write-0123456789"), Some("beta"));
    assert_eq!(st, 403, "{b}");
    assert!(b.contains("alpha-prometheus") && b.contains("beta"), "{b}");
    assert_eq!(write(Some("tok-alpha-read-0123456789"), None).0, 403);
    assert_eq!(write(Some("tok-alpha-write-0123456789"), None).0, 204);

    let reads: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/api/v1/query",
            vec![("query", "up".into()), ("time", secs(t))],
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up".into()),
                ("start", secs(t - 60_000)),
                ("end", secs(t)),
                ("step", "15".into()),
            ],
        ),
        ("/api/v1/series", vec![("match[]", "up".into())]),
        ("/api/v1/labels", vec![]),
        ("/api/v1/labels", vec![("match[]", "up".into())]),
        ("/api/v1/label/job/values", vec![]),
        ("/api/v1/label/job/values", vec![("match[]", "up".into())]),
        ("/api/v1/status/tenants", vec![]),
        ("/api/v1/metadata", vec![]),
    ];
    for (path, params) in &reads {
        let get = |headers: &[(&str, &str)]| call(&s, "GET", path, headers, params, vec![]);
        let (st, h, b) = get(&[]);
        assert_eq!(st, 401, "{path}: {b}");
        assert_eq!(h["www-authenticate"], "Bearer", "{path}");
        assert_eq!(json(&b)["status"], "error", "{path}: {b}");
        assert_eq!(get(&[("Authorization", "Bearer wrong")]).0, 401, "{path}");
        assert_eq!(
            get(&[("Authorization", "Basic dXNlcjpwdw==")]).0,
            401,
            "{path}"
        );
        let (st, _, b) = get(&[
            ("Authorization", "Bearer tok-alpha-read-0123456789"),
            ("X-Scope-OrgID", "beta"),
        ]);
        assert_eq!(st, 403, "{path}: {b}");
        assert_eq!(
            get(&[("Authorization", "Bearer tok-alpha-write-0123456789")]).0,
            403,
            "{path}"
        );
        let (st, _, b) = get(&[("Authorization", "Bearer tok-alpha-read-0123456789")]);
        assert_eq!(st, 200, "{path}: {b}");
        let (st, _, b) = get(&[
            ("Authorization", "Bearer tok-fed-0123456789"),
            ("X-Scope-OrgID", "alpha|beta"),
        ]);
        assert_eq!(st, 200, "{path}: {b}");
    }
    // The reader sees alpha's data.
    let (_, _, b) = call(
        &s,
        "GET",
        "/api/v1/query",
        &[("Authorization", "Bearer tok-alpha-read-0123456789")],
        &[("query", "up".into()), ("time", secs(t))],
        vec![],
    );
    assert_eq!(vector(&json(&b)["data"]).len(), 1, "{b}");
    // Flush needs an admin token; probes and build info need none.
    assert_eq!(
        call(&s, "POST", "/api/v1/admin/flush", &[], &[], vec![]).0,
        401
    );
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/v1/admin/flush",
            &[("Authorization", "Bearer tok-alpha-read-0123456789")],
            &[],
            vec![]
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/v1/admin/flush",
            &[("Authorization", "Bearer tok-ops-0123456789")],
            &[],
            vec![]
        )
        .0,
        200
    );
    for open in ["/-/ready", "/-/healthy", "/api/v1/status/buildinfo"] {
        assert_eq!(s.get(open).0, 200, "{open}");
    }
    // /metrics lists every tenant's volumes: tokens with `metrics: true` or admins only.
    assert_eq!(s.get("/metrics").0, 401);
    let (st, _, b) = call(
        &s,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer tok-alpha-read-0123456789")],
        &[],
        vec![],
    );
    assert_eq!(st, 403, "{b}");
    assert!(b.contains("alpha-grafana") && b.contains("metrics"), "{b}");
    s.metrics_with_token("tok-ops-0123456789");
    let metrics = s.metrics_with_token("tok-scrape-0123456789");
    assert!(
        metric_value(
            &metrics,
            "hypnos_query_rejected_total",
            &[("reason", "unauthenticated")]
        )
        .unwrap_or(0.0)
            >= 8.0,
        "{metrics}"
    );
    assert!(
        metric_value(
            &metrics,
            "hypnos_receive_rejected_total",
            &[("reason", "forbidden"), ("tenant", "beta")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    // The tokens file is re-read: a new token works, a removed one no longer does.
    std::fs::write(
        dir.path().join("tokens.yml"),
        TOKENS.replace("tok-alpha-read-0123456789", "tok-alpha-read-rotated"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let st = call(
            &s,
            "GET",
            "/api/v1/labels",
            &[("Authorization", "Bearer tok-alpha-read-rotated")],
            &[],
            vec![],
        )
        .0;
        if st == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new token never worked"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/labels",
            &[("Authorization", "Bearer tok-alpha-read-0123456789")],
            &[],
            vec![]
        )
        .0,
        401
    );
    // Tokens never reach the log.
    let log = s.log();
    assert!(!log.contains("tok-"), "a token is in the log");
}

const LIMITS: &str = r#"
defaults:
  max_label_names_per_series: 4
  max_label_value_length: 20
  max_series_per_request: 10
  max_sample_age: 1h
  max_future_skew: 5m
  max_series: 15
  ingestion_rate: 20
  ingestion_burst: 100
  max_query_range: 1h
tenants:
  reader:
    max_series_per_query: 5
  big:
    max_series: 0
    ingestion_rate: 0
    max_series_per_query: 0
    max_query_range: 0s
"#;

#[test]
fn each_limit_refuses_the_crossing_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("limits.yml");
    std::fs::write(&limits, LIMITS).unwrap();
    let s = TestServer::with(Options::default().arg(format!("--limits-file={}", limits.display())));
    let now = now_ms();
    let t = now - 60_000;
    let one = |name: &str, labels: &[(&str, &str)], ts: i64| series(name, labels, &[(ts, 1.0)]);
    let many = |n: usize, prefix: &str| -> Vec<_> {
        (0..n)
            .map(|i| one("m", &[("i", &format!("{prefix}{i}"))], t))
            .collect()
    };
    let send = |tenant: &str, ts: Vec<hypnos_schemas::remote::TimeSeries>| {
        let (st, h, b) = call(
            &s,
            "POST",
            "/api/v1/receive",
            &[
                RW_HEADERS[0],
                RW_HEADERS[1],
                RW_HEADERS[2],
                ("THANOS-TENANT", tenant),
            ],
            &[],
            encode(&request(ts)),
        );
        (st, h, b)
    };
    let refused = |tenant: &str, ts, status: u16, limit: &str| {
        let (st, h, b) = send(tenant, ts);
        assert_eq!(st, status, "{limit}: {b}");
        assert!(
            b.contains(&format!("limit {limit} exceeded")),
            "{limit}: {b}"
        );
        h
    };
    let count = |tenant: &str| -> usize {
        let data = s.query(Tenant::Thanos(tenant), "count(m) or vector(0)", now);
        vector(&data)[0].2 as usize
    };

    // Validation limits: 400 (invalid) and 413 (oversized); the tenant's data stays.
    let tenant = "small";
    s.write(Tenant::Thanos(tenant), &request(many(3, "a")));
    refused(
        tenant,
        vec![one(
            "m",
            &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")],
            t,
        )],
        400,
        "max_label_names_per_series",
    );
    refused(
        tenant,
        vec![one("m", &[("a", &"v".repeat(21))], t)],
        400,
        "max_label_value_length",
    );
    refused(tenant, many(11, "b"), 413, "max_series_per_request");
    refused(
        tenant,
        vec![one("m", &[("i", "old")], now - 2 * 3_600_000)],
        400,
        "max_sample_age",
    );
    refused(
        tenant,
        vec![one("m", &[("i", "new")], now + 10 * 60_000)],
        400,
        "max_future_skew",
    );
    assert_eq!(count(tenant), 3);
    // The tenant next door has its own limits (overrides) and is unaffected.
    let (st, _, b) = send("big", many(10, "a"));
    assert_eq!(st, 204, "{b}");

    // Active series: 15 at most; series already there still take samples.
    let tenant = "series";
    s.write(Tenant::Thanos(tenant), &request(many(10, "a")));
    s.write(Tenant::Thanos(tenant), &request(many(5, "b")));
    refused(tenant, many(1, "c"), 429, "max_series");
    s.write(
        Tenant::Thanos(tenant),
        &request(vec![one("m", &[("i", "a0")], t + 1000)]),
    );
    assert_eq!(count(tenant), 15);

    // Ingestion rate: 20/s with a burst of 100 -> 429 with Retry-After.
    let tenant = "rate";
    let samples = |n: i64, from: i64| {
        series(
            "r",
            &[],
            &(0..n).map(|k| (t + from + k, 1.0)).collect::<Vec<_>>(),
        )
    };
    let (st, _, b) = send(tenant, vec![samples(90, 0)]);
    assert_eq!(st, 204, "{b}");
    let h = refused(tenant, vec![samples(50, 100)], 429, "ingestion_rate");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert_eq!(send("rate-neighbour", vec![samples(90, 0)]).0, 204);
    let data = s.query(Tenant::Thanos(tenant), "count_over_time(r[5m])", now);
    assert_eq!(vector(&data)[0].2, 90.0, "earlier data intact");

    // Reads: series per query (422), query range (422); the big tenant is not limited.
    for tenant in ["reader", "big"] {
        s.write(Tenant::Thanos(tenant), &request(many(6, "q")));
    }
    let (st, v) = s.api(
        Tenant::Thanos("reader"),
        "query",
        &[("query", "m".into()), ("time", secs(now))],
    );
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("limit max_series_per_query exceeded"),
        "{v}"
    );
    let (st, v) = s.api(
        Tenant::Thanos("reader"),
        "series",
        &[("match[]", "m".into())],
    );
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("max_series_per_query"),
        "{v}"
    );
    assert_eq!(
        s.api(
            Tenant::Thanos("reader"),
            "query",
            &[("query", r#"m{i="q1"}"#.into()), ("time", secs(now))]
        )
        .0,
        200
    );
    let range = [
        ("query", "m".to_string()),
        ("start", secs(now - 2 * 3_600_000)),
        ("end", secs(now)),
        ("step", "60".into()),
    ];
    let (st, v) = s.api(Tenant::Thanos("reader"), "query_range", &range);
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("limit max_query_range exceeded"),
        "{v}"
    );
    assert_eq!(s.api(Tenant::Thanos("big"), "query_range", &range).0, 200);
    assert_eq!(
        s.api(Tenant::Thanos("big"), "series", &[("match[]", "m".into())])
            .0,
        200
    );

    // Every rejection is counted per tenant and reason.
    let metrics = s.metrics();
    for (name, tenant, reason) in [
        (
            "hypnos_receive_rejected_total",
            "small",
            "max_label_names_per_series",
        ),
        (
            "hypnos_receive_rejected_total",
            "small",
            "max_series_per_request",
        ),
        ("hypnos_receive_rejected_total", "series", "max_series"),
        ("hypnos_receive_rejected_total", "rate", "ingestion_rate"),
        (
            "hypnos_receive_rejected_samples_total",
            "rate",
            "ingestion_rate",
        ),
        (
            "hypnos_query_rejected_total",
            "reader",
            "max_series_per_query",
        ),
        ("hypnos_query_rejected_total", "reader", "max_query_range"),
    ] {
        let v = metric_value(&metrics, name, &[("tenant", tenant), ("reason", reason)]);
        assert!(
            v.unwrap_or(0.0) >= 1.0,
            "{name}{{{tenant},{reason}}}: {v:?}"
        );
    }

    // Usage per tenant.
    s.flush();
    let (st, _, b) = call(
        &s,
        "GET",
        "/api/v1/status/tenants",
        &[("X-Scope-OrgID", "rate")],
        &[],
        vec![],
    );
    assert_eq!(st, 200, "{b}");
    let v = json(&b);
    let rows = v["data"]["tenants"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the caller's tenants: {b}");
    let r = &rows[0];
    assert_eq!(r["tenant"], "rate");
    assert_eq!(r["samples_received"], 90, "{b}");
    assert_eq!(r["samples_rejected"]["ingestion_rate"], 50, "{b}");
    assert!(r["bytes_received"].as_u64().unwrap() > 0, "{b}");
    assert!(r["bytes_stored"].as_u64().unwrap() > 0, "{b}");
    assert!(r["queries"].as_u64().unwrap() >= 1, "{b}");
    assert!(r["samples_scanned"].as_u64().unwrap() >= 90, "{b}");
    let metrics = s.metrics();
    assert!(
        metric_value(
            &metrics,
            "hypnos_tenant_stored_bytes",
            &[("tenant", "rate")]
        )
        .unwrap_or(0.0)
            > 0.0
    );

    // The limits file is re-read: a fifth label name is allowed once the limit is raised.
    std::fs::write(
        &limits,
        LIMITS.replace(
            "max_label_names_per_series: 4",
            "max_label_names_per_series: 8",
        ),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (st, _, _) = send(
            "small",
            vec![one(
                "m",
                &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")],
                t,
            )],
        );
        if st == 204 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new limits never applied"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const REGEX_TOKENS: &str = r#"
tokens:
  - name: ingest
    token: tok-ingest-0123456789
    write: [team-a, team-b, team-c, other]
  - name: teams
    token: tok-teams-0123456789
    read_regex: "team-.*"
  - name: ops
    token: tok-ops-0123456789
    admin: true
"#;

/// The `tenant_id`s of a query or metadata answer.
fn tenant_ids(body: &str) -> BTreeSet<String> {
    label_sets(&json(body)["data"])
        .into_iter()
        .map(|s| s.get("tenant_id").cloned().unwrap_or_default())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_regex_token_reads_its_matching_tenants_and_no_other() {
    let (_dir, s) = token_server(REGEX_TOKENS);
    let t = now_ms() - 60_000;
    let write = |tenant: &str| {
        let own = format!("only_{}", tenant.replace('-', "_"));
        let batch = (0..2)
            .map(|i| {
                let inst = format!("{tenant}-{i}");
                series("up", &[("inst", &inst), (&own, "1")], &[(t, 1.0)])
            })
            .collect();
        let mut h = RW_HEADERS.to_vec();
        h.push(("Authorization", "Bearer tok-ingest-0123456789"));
        h.push(("THANOS-TENANT", tenant));
        let (st, _, b) = call(
            &s,
            "POST",
            "/api/v1/receive",
            &h,
            &[],
            encode(&request(batch)),
        );
        assert_eq!(st, 204, "{tenant}: {b}");
    };
    // team-b and other only in blocks, team-a in a block and in its head.
    for tenant in ["team-a", "team-b", "other"] {
        write(tenant);
    }
    let ops = [("Authorization", "Bearer tok-ops-0123456789")];
    assert_eq!(
        call(&s, "POST", "/api/v1/admin/flush", &ops, &[], vec![]).0,
        200
    );
    write("team-a");

    let teams = |tenant: Option<&str>, path: &str, params: &[(&str, String)]| {
        let mut h = vec![("Authorization", "Bearer tok-teams-0123456789")];
        if let Some(t) = tenant {
            h.push(("X-Scope-OrgID", t));
        }
        call(&s, "GET", path, &h, params, vec![])
    };
    let at = |q: &str| vec![("query", q.to_string()), ("time", secs(t))];
    let ok = |(st, _, b): (u16, reqwest::header::HeaderMap, String)| {
        assert_eq!(st, 200, "{b}");
        b
    };
    // Naming no tenant: every known tenant the expression matches, on every read path.
    let both = set(&["team-a", "team-b"]);
    let b = ok(teams(None, "/api/v1/query", &at("up")));
    assert_eq!(tenant_ids(&b), both, "{b}");
    assert_eq!(vector(&json(&b)["data"]).len(), 4, "{b}");
    let b = ok(teams(
        None,
        "/api/v1/query",
        &at("count by (tenant_id) (up)"),
    ));
    assert_eq!(tenant_ids(&b), both, "{b}");
    let b = ok(teams(
        None,
        "/api/v1/query_range",
        &[
            ("query", "up".into()),
            ("start", secs(t - 60_000)),
            ("end", secs(t)),
            ("step", "15".into()),
        ],
    ));
    assert_eq!(tenant_ids(&b), both, "{b}");
    let every = [("match[]", r#"{__name__=~".+"}"#.to_string())];
    let b = ok(teams(None, "/api/v1/series", &every));
    assert_eq!(tenant_ids(&b), both, "{b}");
    let b = ok(teams(None, "/api/v1/label/tenant_id/values", &[]));
    assert_eq!(strings(&json(&b)["data"]), ["team-a", "team-b"], "{b}");
    let b = ok(teams(None, "/api/v1/labels", &[]));
    let names = strings(&json(&b)["data"]);
    assert!(
        names.contains(&"only_team_b".to_string()) && !names.contains(&"only_other".to_string()),
        "{b}"
    );
    let b = ok(teams(None, "/api/v1/status/tenants", &[]));
    let v = json(&b);
    let rows: Vec<&str> = v["data"]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["team-a", "team-b"], "{b}");
    // A tenant_id matcher narrows, never widens.
    let b = ok(teams(
        None,
        "/api/v1/query",
        &at(r#"up{tenant_id="other"}"#),
    ));
    assert_eq!(json(&b)["data"]["result"], serde_json::json!([]), "{b}");
    let b = ok(teams(
        None,
        "/api/v1/query",
        &at(r#"up{tenant_id=~"team-b|other"}"#),
    ));
    assert_eq!(tenant_ids(&b), set(&["team-b"]), "{b}");
    // Naming tenants: exactly those, each within the grant; outside it, 403.
    let b = ok(teams(Some("team-a"), "/api/v1/query", &at("up")));
    assert_eq!(tenant_ids(&b), set(&["team-a"]), "{b}");
    for named in ["other", "team-a|other"] {
        for path in ["/api/v1/query", "/api/v1/series", "/api/v1/labels"] {
            let params = if path == "/api/v1/query" {
                at("up")
            } else {
                every.to_vec()
            };
            let (st, _, b) = teams(Some(named), path, &params);
            assert_eq!(st, 403, "{named} {path}: {b}");
            assert!(b.contains("teams") && b.contains("other"), "{b}");
        }
    }
    // A pattern is not a tenant id.
    let (st, _, b) = teams(Some("team-.*"), "/api/v1/query", &at("up"));
    assert_eq!(st, 400, "{b}");
    // A tenant that appears later is read without a restart.
    write("team-c");
    let b = ok(teams(None, "/api/v1/query", &at("up")));
    assert_eq!(tenant_ids(&b), set(&["team-a", "team-b", "team-c"]), "{b}");
}

/// The blocks of `tenant` in a local bucket and the bytes of their data files (`meta.json`
/// and marks excluded).
fn bytes_on_disk(bucket: &std::path::Path, tenant: &str) -> (usize, u64) {
    let mut total = 0;
    let metas = find_meta_files(&bucket.join("tenants").join(tenant));
    for meta in &metas {
        for f in std::fs::read_dir(meta.parent().unwrap()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.ends_with(".parquet") {
                total += f.metadata().unwrap().len();
            }
        }
    }
    (metas.len(), total)
}

#[test]
fn query_cpu_and_stored_bytes_are_counted_per_tenant() {
    let s = TestServer::start();
    let t0 = now_ms() - 20 * 60_000;
    for tenant in ["cpu-a", "cpu-b", "idle"] {
        let batch = (0..5)
            .map(|i| {
                let samples: Vec<(i64, f64)> = (0..100)
                    .map(|k| (t0 + k * 10_000, (k * i) as f64))
                    .collect();
                series("work_total", &[("i", &i.to_string())], &samples)
            })
            .collect();
        s.write(Tenant::Thanos(tenant), &request(batch));
    }
    s.flush();
    let cpu = |m: &str, tenant: &str| {
        metric_value(m, "hypnos_query_cpu_seconds_total", &[("tenant", tenant)])
    };
    let range = |tenant: Tenant<'_>| {
        s.query_range(
            tenant,
            "sum(rate(work_total[5m]))",
            t0,
            t0 + 990_000,
            15_000,
        );
    };
    for _ in 0..3 {
        range(Tenant::Thanos("cpu-a"));
    }
    let m = s.metrics();
    let a1 = cpu(&m, "cpu-a").expect("cpu-a has CPU time");
    assert!(a1 > 0.0, "{a1}");
    assert_eq!(cpu(&m, "cpu-b"), None, "cpu-b ran nothing");
    // cpu-b's query is cpu-b's: cpu-a's figure does not move.
    range(Tenant::Thanos("cpu-b"));
    let m = s.metrics();
    assert!(cpu(&m, "cpu-b").unwrap() > 0.0);
    assert_eq!(cpu(&m, "cpu-a"), Some(a1));
    // A federated read is shared by its tenants; metadata reads count too.
    let b1 = cpu(&m, "cpu-b").unwrap();
    range(Tenant::OrgId("cpu-a|cpu-b"));
    let (st, _) = s.api(
        Tenant::Thanos("cpu-a"),
        "series",
        &[("match[]", "work_total".into())],
    );
    assert_eq!(st, 200);
    let m = s.metrics();
    let (a2, b2) = (cpu(&m, "cpu-a").unwrap(), cpu(&m, "cpu-b").unwrap());
    assert!(a2 > a1 && b2 > b1, "{a1} -> {a2}, {b1} -> {b2}");
    assert_eq!(cpu(&m, "idle"), None);

    // Bytes stored per resolution: what the bucket holds, on /metrics and in the usage.
    for tenant in ["cpu-a", "idle"] {
        let (blocks, on_disk) = bytes_on_disk(&s.bucket_dir(), tenant);
        assert!(blocks > 0 && on_disk > 0, "{tenant}");
        let stored = metric_value(
            &m,
            "hypnos_tenant_stored_bytes",
            &[("tenant", tenant), ("resolution", "raw")],
        );
        assert_eq!(stored, Some(on_disk as f64), "{tenant}");
        for res in ["5m", "1h"] {
            let v = metric_value(
                &m,
                "hypnos_tenant_stored_bytes",
                &[("tenant", tenant), ("resolution", res)],
            );
            assert_eq!(v, None, "no {res} blocks yet");
        }
        let (st, _, b) = call(
            &s,
            "GET",
            "/api/v1/status/tenants",
            &[("X-Scope-OrgID", tenant)],
            &[],
            vec![],
        );
        assert_eq!(st, 200, "{b}");
        let v = json(&b);
        let r = &v["data"]["tenants"][0];
        assert_eq!(r["tenant"], tenant, "{b}");
        assert_eq!(r["bytes_stored"], on_disk, "{b}");
        assert_eq!(
            r["bytes_stored_by_resolution"],
            serde_json::json!({ "raw": on_disk }),
            "{b}"
        );
        assert_eq!(r["blocks"], blocks, "{b}");
        let cpu_seconds = r["query_cpu_seconds"].as_f64().unwrap();
        if tenant == "cpu-a" {
            assert!((cpu_seconds - a2).abs() <= 1e-9 * a2.max(1.0), "{b}");
        } else {
            assert_eq!(cpu_seconds, 0.0, "{b}");
        }
    }
}

const READ_LIMITS: &str = r#"
defaults:
  max_concurrent_queries: 1
tenants:
  slow:
    query_timeout: 1ms
"#;

/// Read limits that need a query in flight. The server's test hook (the environment variable
/// `HYPNOS_TEST_HOLD_QUERIES_DIR`) holds an admitted query of a tenant for as long as a file
/// of that tenant's name exists in the directory, so the query in flight is there for sure,
/// however loaded the machine.
#[test]
fn concurrency_and_timeout_limits_refuse_only_that_tenant() {
    let hooks = std::hint::black_box(cfg!(feature = "testsuite"));
    assert!(
        hooks,
        "the query hold needs a binary built with the test hooks: \
         cargo test --features hypnos/testsuite (README)"
    );
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("limits.yml");
    std::fs::write(&limits, READ_LIMITS).unwrap();
    let hold = dir.path().join("hold");
    std::fs::create_dir(&hold).unwrap();
    let s = TestServer::with(
        Options::default()
            .arg(format!("--limits-file={}", limits.display()))
            .env("HYPNOS_TEST_HOLD_QUERIES_DIR", hold.display().to_string()),
    );
    let t = now_ms() - 60_000;
    for tenant in ["busy", "calm", "slow"] {
        s.write(
            Tenant::Thanos(tenant),
            &request(vec![series("up", &[("job", tenant)], &[(t, 1.0)])]),
        );
    }
    let query = |tenant: &str| {
        call(
            &s,
            "GET",
            "/api/v1/query",
            &[("THANOS-TENANT", tenant)],
            &[("query", "up".into()), ("time", secs(t))],
            vec![],
        )
    };
    let running = |tenant: &str| {
        metric_value(
            &s.metrics(),
            "hypnos_queries_running",
            &[("tenant", tenant)],
        )
        .unwrap_or(0.0)
    };

    // One query of busy in flight (held): the next one of busy is refused, calm's is not.
    std::fs::write(hold.join("busy"), "").unwrap();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| query("busy"));
        eventually(Duration::from_secs(30), "busy's query in flight", || {
            (running("busy") == 1.0).then_some(())
        });
        let (st, h, b) = query("busy");
        assert_eq!(st, 429, "{b}");
        assert_eq!(json(&b)["errorType"], "unavailable", "{b}");
        assert!(
            b.contains("limit max_concurrent_queries exceeded") && b.contains("busy"),
            "{b}"
        );
        assert!(h.contains_key("retry-after"), "{h:?}");
        let (st, _, b) = call(
            &s,
            "GET",
            "/api/v1/series",
            &[("THANOS-TENANT", "busy")],
            &[("match[]", "up".into())],
            vec![],
        );
        assert_eq!(st, 429, "{b}");
        let (st, _, b) = query("calm");
        assert_eq!(st, 200, "{b}");
        assert_eq!(vector(&json(&b)["data"]).len(), 1, "{b}");
        std::fs::remove_file(hold.join("busy")).unwrap();
        let (st, _, b) = first.join().unwrap();
        assert_eq!(st, 200, "the held query: {b}");
        assert_eq!(vector(&json(&b)["data"]).len(), 1, "{b}");
    });
    // The slot is free again and the data intact.
    assert_eq!(running("busy"), 0.0);
    let (st, _, b) = query("busy");
    assert_eq!(st, 200, "{b}");
    assert_eq!(vector(&json(&b)["data"]).len(), 1, "{b}");

    // A query of slow that outlives its 1ms timeout: 503 `timeout`, naming the limit.
    std::fs::write(hold.join("slow"), "").unwrap();
    let (st, _, b) = query("slow");
    std::fs::remove_file(hold.join("slow")).unwrap();
    assert_eq!(st, 503, "{b}");
    assert_eq!(json(&b)["errorType"], "timeout", "{b}");
    assert!(b.contains("limit query_timeout exceeded"), "{b}");
    assert_eq!(query("calm").0, 200);

    let m = s.metrics();
    for (tenant, reason, at_least) in [
        ("busy", "max_concurrent_queries", 2.0),
        ("slow", "query_timeout", 1.0),
    ] {
        let v = metric_value(
            &m,
            "hypnos_query_rejected_total",
            &[("tenant", tenant), ("reason", reason)],
        );
        assert!(v.unwrap_or(0.0) >= at_least, "{tenant} {reason}: {v:?}");
    }
    assert_eq!(
        metric_value(&m, "hypnos_query_rejected_total", &[("tenant", "calm")]),
        None
    );
}

fn metadata(name: &str, kind: i32, help: &str) -> hypnos_schemas::remote::MetricMetadata {
    hypnos_schemas::remote::MetricMetadata {
        r#type: kind,
        metric_family_name: name.into(),
        help: help.into(),
        unit: String::new(),
    }
}

#[test]
fn metric_metadata_is_kept_per_tenant() {
    let s = TestServer::start();
    let t = now_ms() - 60_000;
    // As Prometheus sends it: metadata in requests of its own, without samples.
    let send_md = |tenant: &str, md: Vec<hypnos_schemas::remote::MetricMetadata>| {
        let req = hypnos_schemas::remote::WriteRequest {
            timeseries: vec![],
            metadata: md,
        };
        s.write(Tenant::Thanos(tenant), &req);
    };
    send_md(
        "md-a",
        vec![
            metadata("http_requests_total", 1, "Requests served by a."),
            metadata("up", 2, "a's targets"),
        ],
    );
    send_md(
        "md-b",
        vec![
            metadata("queue_bytes", 2, "Bytes queued by b."),
            metadata("up", 2, "b's targets"),
        ],
    );
    // A refused write keeps none of its metadata.
    let mut refused = request(vec![series("x", &[("", "bad")], &[(t, 1.0)])]);
    refused.metadata = vec![metadata("leaked_total", 1, "must not be kept")];
    assert_eq!(s.send(Tenant::Thanos("md-a"), &refused).0, 400);

    let get = |tenant: &str, params: &[(&str, String)]| -> Value {
        let (st, v) = s.api(Tenant::OrgId(tenant), "metadata", params);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    };
    let names = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let a = get("md-a", &[]);
    assert_eq!(names(&a), ["http_requests_total", "up"], "{a}");
    assert_eq!(
        a["http_requests_total"],
        serde_json::json!([{"type": "counter", "help": "Requests served by a.", "unit": ""}])
    );
    assert_eq!(a["up"][0]["help"], "a's targets", "{a}");
    let b = get("md-b", &[]);
    assert_eq!(names(&b), ["queue_bytes", "up"], "{b}");
    assert_eq!(b["up"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(get("md-c", &[]), serde_json::json!({}));
    // A federated read sees both; filters and limits as Prometheus.
    let both = get("md-a|md-b", &[]);
    assert_eq!(names(&both), ["http_requests_total", "queue_bytes", "up"]);
    assert_eq!(both["up"].as_array().unwrap().len(), 2, "{both}");
    let up = get("md-a|md-b", &[("metric", "up".into())]);
    assert_eq!(names(&up), ["up"]);
    assert_eq!(
        get("md-a|md-b", &[("limit_per_metric", "1".into())])["up"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get("md-a|md-b", &[("limit", "2".into())])
            .as_object()
            .unwrap()
            .len(),
        2
    );
    let (st, v) = s.api(Tenant::OrgId("md-a"), "metadata", &[("limit", "x".into())]);
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("limit"), "{v}");
}
