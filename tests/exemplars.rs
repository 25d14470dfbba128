//! Exemplars end to end through the real binary: remote write with exemplars under two
//! tenants, `/api/v1/query_exemplars` per tenant and across tenants (Prometheus' JSON shape),
//! invalid exemplars dropped without failing the write, kill -9 and restart, before and
//! after a flush (the exemplars come back from the WAL), bad queries and times, and
//! `--exemplars.max-per-tenant`.

mod common;

use std::collections::BTreeMap;

use common::*;
use hypnos_schemas::remote::{Exemplar, Label, TimeSeries};
use serde_json::{Value, json};

const A: Tenant<'static> = Tenant::Thanos("tenant-a");
const B: Tenant<'static> = Tenant::Thanos("tenant-b");

fn with_exemplars(mut ts: TimeSeries, exemplars: &[(i64, f64, &str)]) -> TimeSeries {
    ts.exemplars = exemplars
        .iter()
        .map(|&(timestamp, value, trace)| Exemplar {
            labels: vec![Label {
                name: "trace_id".into(),
                value: trace.into(),
            }],
            value,
            timestamp,
        })
        .collect();
    ts
}

/// `(timestamp ms, value, trace_id)` of an exemplar.
type ExemplarRow = (i64, f64, String);

/// `query_exemplars` as `tenant`, asserting success; returns `data`.
#[track_caller]
fn exemplars(s: &TestServer, tenant: Tenant<'_>, params: &[(&str, String)]) -> Value {
    let (status, v) = s.api(tenant, "query_exemplars", params);
    assert_eq!(status, 200, "query_exemplars {params:?}: {v}");
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

/// `(series labels, [(timestamp ms, value, trace_id)])` of an answer, checking the shape of
/// every item on the way.
fn summary(data: &Value) -> Vec<(BTreeMap<String, String>, Vec<ExemplarRow>)> {
    data.as_array()
        .unwrap_or_else(|| panic!("data is not an array: {data}"))
        .iter()
        .map(|item| {
            let mut keys: Vec<&String> = item.as_object().expect("object").keys().collect();
            keys.sort();
            assert_eq!(keys, ["exemplars", "seriesLabels"], "{item}");
            let series = serde_json::from_value(item["seriesLabels"].clone()).expect("labels");
            let ex = item["exemplars"]
                .as_array()
                .expect("exemplars array")
                .iter()
                .map(|e| {
                    let mut keys: Vec<&String> = e.as_object().expect("object").keys().collect();
                    keys.sort();
                    assert_eq!(keys, ["labels", "timestamp", "value"], "{e}");
                    assert!(e["value"].is_string(), "values are strings: {e}");
                    assert!(e["timestamp"].is_number(), "timestamps are numbers: {e}");
                    (
                        parse_ts(&e["timestamp"]),
                        parse_value(&e["value"]),
                        e["labels"]["trace_id"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            (series, ex)
        })
        .collect()
}

fn series_labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn exemplars_per_tenant_survive_a_crash() {
    let mut s = TestServer::start();
    let t0 = base_time();
    let long_trace = "x".repeat(200);
    s.write(
        A,
        &request(vec![
            with_exemplars(
                series("http_requests_total", &[("job", "api")], &[(t0, 1.0)]),
                &[
                    (t0, 1.5, "trace-a1"),
                    (t0 + 1_000, 2.5, "trace-a2"),
                    // Over 128 runes of labels: dropped, the write still succeeds.
                    (t0 + 2_000, 3.5, &long_trace),
                ],
            ),
            // Exemplars without samples, as Prometheus sends them.
            with_exemplars(
                series("http_requests_total", &[("job", "web")], &[]),
                &[(t0 + 500, 7.0, "trace-a3")],
            ),
            series("other", &[], &[(t0, 1.0)]),
        ]),
    );
    s.write(
        B,
        &request(vec![with_exemplars(
            series("http_requests_total", &[("job", "api")], &[(t0, 1.0)]),
            &[(t0 + 123, 9.25, "trace-b1")],
        )]),
    );
    // A retry adds nothing.
    s.write(
        B,
        &request(vec![with_exemplars(
            series("http_requests_total", &[("job", "api")], &[(t0, 1.0)]),
            &[(t0 + 123, 9.25, "trace-b1")],
        )]),
    );
    let q = |query: &str| {
        vec![
            ("query", query.to_string()),
            ("start", secs(t0 - 60_000)),
            ("end", secs(t0 + 60_000)),
        ]
    };
    let want_a = vec![
        (
            series_labels(&[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("tenant_id", "tenant-a"),
            ]),
            vec![
                (t0, 1.5, "trace-a1".to_string()),
                (t0 + 1_000, 2.5, "trace-a2".to_string()),
            ],
        ),
        (
            series_labels(&[
                ("__name__", "http_requests_total"),
                ("job", "web"),
                ("tenant_id", "tenant-a"),
            ]),
            vec![(t0 + 500, 7.0, "trace-a3".to_string())],
        ),
    ];
    let want_b = vec![(
        series_labels(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("tenant_id", "tenant-b"),
        ]),
        vec![(t0 + 123, 9.25, "trace-b1".to_string())],
    )];
    let check = |s: &TestServer| {
        // Every selector of the expression counts; each tenant sees its own only.
        let query = "sum(rate(http_requests_total[5m])) / sum(other)";
        assert_eq!(summary(&exemplars(s, A, &q(query))), want_a);
        assert_eq!(summary(&exemplars(s, B, &q(query))), want_b);
        // POST reads the same.
        let (status, v) = s.api_post(B, "query_exemplars", &q(query));
        assert_eq!(status, 200, "{v}");
        assert_eq!(summary(&v["data"]), want_b);
        // Exactly Prometheus' JSON.
        let (_, v) = s.api(
            B,
            "query_exemplars",
            &q(r#"http_requests_total{job="api"}"#),
        );
        assert_eq!(
            v,
            json!({"status": "success", "data": [{
                "seriesLabels": {
                    "__name__": "http_requests_total",
                    "job": "api",
                    "tenant_id": "tenant-b"
                },
                "exemplars": [{
                    "labels": {"trace_id": "trace-b1"},
                    "value": "9.25",
                    "timestamp": serde_json::from_str::<Value>(&secs(t0 + 123)).unwrap()
                }]
            }]})
        );
        // Matchers and the time range select.
        let a_web = summary(&exemplars(s, A, &q(r#"http_requests_total{job="web"}"#)));
        assert_eq!(a_web, want_a[1..].to_vec());
        let narrow = exemplars(
            s,
            A,
            &[
                ("query", "http_requests_total".into()),
                ("start", secs(t0 + 500)),
                ("end", secs(t0 + 999)),
            ],
        );
        assert_eq!(summary(&narrow), want_a[1..].to_vec());
        assert_eq!(exemplars(s, A, &q("nothing_here")), json!([]));
        assert_eq!(exemplars(s, A, &q("1 + 1")), json!([]));
        // A tenant without exemplars sees none, even asking for the others' labels.
        let stranger = Tenant::Thanos("tenant-c");
        let spy = q(r#"{tenant_id=~"tenant-.*"}"#);
        assert_eq!(exemplars(s, stranger, &spy), json!([]));
        // A federated read shows each tenant's, told apart by tenant_id.
        let both = summary(&exemplars(
            s,
            Tenant::OrgId("tenant-a|tenant-b"),
            &q("http_requests_total"),
        ));
        let mut want_both = want_a.clone();
        want_both.extend(want_b.clone());
        want_both.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(both, want_both);
    };
    check(&s);
    let metrics = s.get("/metrics").1;
    assert_eq!(
        metric_value(
            &metrics,
            "hypnos_receive_exemplars_dropped_total",
            &[("tenant", "tenant-a"), ("reason", "label_length")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "hypnos_receive_exemplars_dropped_total",
            &[("tenant", "tenant-b"), ("reason", "duplicate")]
        ),
        Some(1.0)
    );
    // kill -9: the exemplars come back from the write-ahead log.
    s.kill9();
    s.restart();
    check(&s);
    // A flush deletes the segments they came in; they were logged again and come back.
    s.flush();
    s.kill9();
    s.restart();
    check(&s);
}

#[test]
fn bad_queries_and_times_are_bad_data() {
    let s = TestServer::start();
    for (params, wants) in [
        (
            vec![("query", "sum(".to_string())],
            "invalid parameter \"query\"",
        ),
        (vec![], "missing parameter \"query\""),
        (
            vec![("query", "up".into()), ("start", "yesterday".into())],
            "invalid parameter \"start\"",
        ),
        (
            vec![("query", "up".into()), ("end", "soon".into())],
            "invalid parameter \"end\"",
        ),
        (
            vec![
                ("query", "up".into()),
                ("start", "100".into()),
                ("end", "50".into()),
            ],
            "end timestamp must not be before start timestamp",
        ),
    ] {
        let (status, v) = s.api(A, "query_exemplars", &params);
        assert_eq!(status, 400, "{params:?}: {v}");
        assert_eq!(v["status"], "error", "{v}");
        assert_eq!(v["errorType"], "bad_data", "{v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(wants), "{params:?}: {msg}");
    }
}

#[test]
fn a_zero_limit_keeps_no_exemplars_and_a_small_one_keeps_the_newest() {
    let t0 = base_time();
    let write = |s: &TestServer| {
        let ex: Vec<(i64, f64, String)> = (0..5)
            .map(|i| (t0 + i, i as f64, format!("t{i}")))
            .collect();
        let ex: Vec<(i64, f64, &str)> = ex.iter().map(|(t, v, s)| (*t, *v, s.as_str())).collect();
        s.write(
            A,
            &request(vec![with_exemplars(series("m", &[], &[(t0, 1.0)]), &ex)]),
        );
    };
    let q = vec![("query", "m".to_string())];
    let off = TestServer::with(Options::default().arg("--exemplars.max-per-tenant=0"));
    write(&off);
    assert_eq!(exemplars(&off, A, &q), json!([]));
    let small = TestServer::with(Options::default().arg("--exemplars.max-per-tenant=2"));
    write(&small);
    let got = summary(&exemplars(&small, A, &q));
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1,
        vec![
            (t0 + 3, 3.0, "t3".to_string()),
            (t0 + 4, 4.0, "t4".to_string())
        ]
    );
}
