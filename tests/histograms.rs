//! Native histograms end to end through the real binary: remote write (integer and float
//! histograms, exponential and custom buckets, a histogram staleness marker), instant and
//! range queries answering Prometheus' `histogram`/`histograms` JSON, a refused bad
//! histogram, kill -9 (the WAL) and a flush (the blocks).

mod common;

use common::*;
use hypnos_schemas::remote::{BucketSpan, Histogram, histogram as pb};
use serde_json::Value;

const T: Tenant<'static> = Tenant::Thanos("hist");
const STEP: i64 = 15_000;
/// Histogram samples 0..N of each series.
const N: i64 = 6;

/// An integer histogram, schema 0: `k` in the zero bucket `[-0.001, 0.001]`, `k` in the
/// negative bucket `[-1, -0.5)`, `k` in `(0.5, 1]` and `2k` in `(1, 2]`.
fn rpc_duration(t: i64, k: i64) -> Histogram {
    Histogram {
        count: Some(pb::Count::CountInt(5 * k as u64)),
        sum: 2.5 * k as f64,
        schema: 0,
        zero_threshold: 0.001,
        zero_count: Some(pb::ZeroCount::ZeroCountInt(k as u64)),
        negative_spans: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_deltas: vec![k],
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![k, k],
        timestamp: t,
        ..Default::default()
    }
}

/// A float gauge histogram with custom bounds 1 and 5: `1.5` in `(-Inf, 1]`, `k + 0.5` in
/// `(1, 5]`, `0.25` in `(5, +Inf]`.
fn queue_size(t: i64, k: i64) -> Histogram {
    Histogram {
        count: Some(pb::Count::CountFloat(k as f64 + 2.25)),
        sum: 10.0 * k as f64 + 0.5,
        schema: -53,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_counts: vec![1.5, k as f64 + 0.5, 0.25],
        custom_values: vec![1.0, 5.0],
        reset_hint: pb::RESET_GAUGE,
        timestamp: t,
        ..Default::default()
    }
}

struct Data {
    t0: i64,
}

impl Data {
    fn t(&self, k: i64) -> i64 {
        self.t0 + k * STEP
    }

    /// `up` floats and both histogram series at 0..N, a histogram staleness marker for
    /// `rpc_duration_seconds` at N.
    fn request(&self) -> hypnos_schemas::remote::WriteRequest {
        let ks = 0..N;
        let mut rpc = series("rpc_duration_seconds", &[("job", "api")], &[]);
        rpc.histograms = ks.clone().map(|k| rpc_duration(self.t(k), k)).collect();
        rpc.histograms.push(Histogram {
            count: Some(pb::Count::CountInt(0)),
            sum: stale_nan(),
            timestamp: self.t(N),
            ..Default::default()
        });
        let mut queue = series("queue_size", &[("job", "api")], &[]);
        queue.histograms = ks.clone().map(|k| queue_size(self.t(k), k)).collect();
        let up = series(
            "up",
            &[("job", "api")],
            &ks.map(|k| (self.t(k), 1.0)).collect::<Vec<_>>(),
        );
        request(vec![rpc, queue, up])
    }
}

/// A histogram as the API writes it: count, sum and buckets `[rule, lower, upper, count]`.
#[derive(Debug, PartialEq)]
struct JsonHist {
    count: f64,
    sum: f64,
    buckets: Vec<(i64, f64, f64, f64)>,
}

fn json_hist(p: &Value) -> (i64, JsonHist) {
    let a = p.as_array().unwrap_or_else(|| panic!("not [t, h]: {p}"));
    assert_eq!(a.len(), 2, "{p}");
    let h = &a[1];
    let buckets = match h.get("buckets") {
        None => Vec::new(),
        Some(b) => b
            .as_array()
            .unwrap_or_else(|| panic!("buckets not an array: {h}"))
            .iter()
            .map(|b| {
                let b = b.as_array().unwrap_or_else(|| panic!("bucket: {b}"));
                assert_eq!(b.len(), 4, "{b:?}");
                (
                    b[0].as_i64().unwrap_or_else(|| panic!("rule: {b:?}")),
                    parse_value(&b[1]),
                    parse_value(&b[2]),
                    parse_value(&b[3]),
                )
            })
            .collect(),
    };
    (
        parse_ts(&a[0]),
        JsonHist {
            count: parse_value(&h["count"]),
            sum: parse_value(&h["sum"]),
            buckets,
        },
    )
}

fn want_rpc(k: i64) -> JsonHist {
    let k = k as f64;
    let buckets = if k == 0.0 {
        // Empty buckets are left out, and with them the whole list.
        vec![]
    } else {
        vec![
            (1, -1.0, -0.5, k),
            (3, -0.001, 0.001, k),
            (0, 0.5, 1.0, k),
            (0, 1.0, 2.0, 2.0 * k),
        ]
    };
    JsonHist {
        count: 5.0 * k,
        sum: 2.5 * k,
        buckets,
    }
}

fn want_queue(k: i64) -> JsonHist {
    let k = k as f64;
    JsonHist {
        count: k + 2.25,
        sum: 10.0 * k + 0.5,
        buckets: vec![
            (3, f64::NEG_INFINITY, 1.0, 1.5),
            (0, 1.0, 5.0, k + 0.5),
            (0, 5.0, f64::INFINITY, 0.25),
        ],
    }
}

/// The one sample of an instant query for `q` at `t`: its labels and histogram.
fn instant_hist(s: &TestServer, q: &str, t: i64) -> (Metric, i64, JsonHist) {
    let data = s.query(T, q, t);
    assert_eq!(data["resultType"], "vector", "{data}");
    let r = data["result"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{q} at {t}: {data}");
    assert!(
        r[0].get("value").is_none(),
        "a histogram has no value: {data}"
    );
    let metric: Metric = r[0]["metric"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let (ts, h) = json_hist(&r[0]["histogram"]);
    (metric, ts, h)
}

/// Everything the data must answer, wherever it is stored.
fn check(s: &TestServer, d: &Data, when: &str) {
    let (metric, ts, h) = instant_hist(s, "rpc_duration_seconds", d.t(N - 1));
    assert_eq!(
        metric,
        labels(&[
            ("__name__", "rpc_duration_seconds"),
            ("job", "api"),
            ("tenant_id", "hist")
        ]),
        "{when}"
    );
    assert_eq!((ts, h), (d.t(N - 1), want_rpc(N - 1)), "{when}");
    let (_, ts, h) = instant_hist(s, "queue_size", d.t(2) + 1000);
    assert_eq!((ts, h), (d.t(2) + 1000, want_queue(2)), "{when}");

    // The histogram staleness marker ends the series like a float one.
    let data = s.query(T, "rpc_duration_seconds", d.t(N) + 1000);
    assert_eq!(data["result"], Value::Array(vec![]), "{when}: {data}");
    let data = s.query(T, "queue_size", d.t(N) + 1000);
    assert_eq!(data["result"].as_array().unwrap().len(), 1, "{when}");

    // Range queries: histograms only, no float values.
    for (q, want) in [
        ("rpc_duration_seconds", want_rpc as fn(i64) -> JsonHist),
        ("queue_size", want_queue),
    ] {
        let data = s.query_range(T, q, d.t(0), d.t(N - 1), STEP);
        assert_eq!(data["resultType"], "matrix", "{data}");
        let r = data["result"].as_array().unwrap();
        assert_eq!(r.len(), 1, "{when} {q}: {data}");
        assert!(r[0].get("values").is_none(), "{when} {q}: {data}");
        let got: Vec<(i64, JsonHist)> = r[0]["histograms"]
            .as_array()
            .unwrap_or_else(|| panic!("{when} {q}: no histograms: {data}"))
            .iter()
            .map(json_hist)
            .collect();
        let expected: Vec<(i64, JsonHist)> = (0..N).map(|k| (d.t(k), want(k))).collect();
        assert_eq!(got, expected, "{when} {q}");
    }
    // Floats next to histograms are untouched.
    let data = s.query(T, "count_over_time(up[10m])", d.t(N + 2));
    let v = vector(&data);
    assert_eq!(v.len(), 1, "{when}: {data}");
    assert_eq!(v[0].2, N as f64, "{when}");
}

#[test]
fn histograms_through_write_query_crash_and_flush() {
    let mut s = TestServer::start();
    let d = Data { t0: base_time() };
    s.write(T, &d.request());
    check(&s, &d, "in the head");
    // Histograms count as samples: N floats, 2N histograms, one staleness marker.
    let metrics = s.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            "hypnos_receive_samples_total",
            &[("tenant", "hist")]
        ),
        Some((3 * N + 1) as f64),
        "{metrics}"
    );

    // A bad histogram refuses the whole request, naming the series and the problem.
    let mut bad = series("rpc_duration_seconds", &[("job", "api")], &[]);
    let mut h = rpc_duration(d.t(N + 1), 1);
    h.positive_spans[0].length = 3;
    bad.histograms = vec![rpc_duration(d.t(N + 2), 1), h];
    let up = series("up", &[("job", "api")], &[(d.t(N + 1), 1.0)]);
    let (status, body) = s.send(T, &request(vec![up, bad]));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("positive side: spans need 3 buckets, have 2 buckets"),
        "{body}"
    );
    assert!(body.contains("rpc_duration_seconds"), "{body}");
    assert!(body.contains(&format!("at {} ms", d.t(N + 1))), "{body}");
    check(&s, &d, "after a refused request");

    s.kill9();
    s.restart();
    check(&s, &d, "after kill -9 (WAL replay)");

    s.flush();
    assert_eq!(
        find_meta_files(&s.bucket_dir()).len(),
        1,
        "one block written"
    );
    check(&s, &d, "after a flush (blocks)");
    s.restart();
    check(&s, &d, "after a restart with blocks only");
}
