//! End to end through the real binary: remote write in, PromQL out, over heads and blocks,
//! across tenants, bad input, flushes and kill -9.

mod common;

use common::*;
use serde_json::Value;

const A: Tenant<'static> = Tenant::Thanos("tenant-a");
const B: Tenant<'static> = Tenant::Thanos("tenant-b");

const STEP: i64 = 15_000;
/// Samples 0..=20 of every counter: five minutes at 15 s.
const N: i64 = 21;

/// The gauge's values, one every 15 s: odd floats, infinities and a NaN.
fn gauge_values() -> Vec<f64> {
    vec![
        1.5,
        -2.25,
        0.0,
        1e300,
        -1e-300,
        f64::NAN,
        42.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1 + 0.2,
        7.0,
    ]
}

/// What tests write: three counters (job a: i1 counting by 10, i2 by 20; job b: i3 by 5),
/// a gauge of odd values, a series with a staleness marker, and a counter with a reset.
struct Data {
    t0: i64,
}

impl Data {
    fn new() -> Self {
        Self { t0: base_time() }
    }

    fn t(&self, k: i64) -> i64 {
        self.t0 + k * STEP
    }

    fn counter(&self, per_step: f64, ks: std::ops::Range<i64>) -> Vec<(i64, f64)> {
        ks.map(|k| (self.t(k), k as f64 * per_step)).collect()
    }

    fn gauge(&self) -> Vec<(i64, f64)> {
        gauge_values()
            .into_iter()
            .enumerate()
            .map(|(k, v)| (self.t(k as i64), v))
            .collect()
    }

    fn stale(&self) -> Vec<(i64, f64)> {
        vec![
            (self.t(0), 1.0),
            (self.t(1), 2.0),
            (self.t(2), stale_nan()),
            (self.t(4), 3.0),
        ]
    }

    fn reset(&self) -> Vec<(i64, f64)> {
        [0.0, 10.0, 20.0, 5.0, 15.0]
            .into_iter()
            .enumerate()
            .map(|(k, v)| (self.t(k as i64), v))
            .collect()
    }

    /// Tenant A's data for samples `ks`, in one request.
    fn tenant_a(&self, ks: std::ops::Range<i64>) -> Vec<hypnos_schemas::remote::TimeSeries> {
        let mut out = vec![
            series(
                "test_counter",
                &[("job", "a"), ("instance", "i1")],
                &self.counter(10.0, ks.clone()),
            ),
            series(
                "test_counter",
                &[("job", "a"), ("instance", "i2")],
                &self.counter(20.0, ks.clone()),
            ),
            series(
                "test_counter",
                &[("job", "b"), ("instance", "i3")],
                &self.counter(5.0, ks.clone()),
            ),
        ];
        let within = |s: Vec<(i64, f64)>| -> Vec<(i64, f64)> {
            s.into_iter()
                .filter(|(t, _)| ks.contains(&((t - self.t0) / STEP)))
                .collect()
        };
        for (name, labels, samples) in [
            ("test_gauge", vec![("instance", "g1")], within(self.gauge())),
            ("test_stale", vec![("instance", "s1")], within(self.stale())),
            ("test_reset", vec![("instance", "r1")], within(self.reset())),
        ] {
            if !samples.is_empty() {
                out.push(series(name, &labels, &samples));
            }
        }
        out
    }

    fn tenant_b(&self) -> Vec<hypnos_schemas::remote::TimeSeries> {
        vec![
            series(
                "test_counter",
                &[("job", "a"), ("instance", "i1")],
                &self.counter(1000.0, 0..N),
            ),
            series("only_b", &[("instance", "b1")], &[(self.t(0), 123.0)]),
        ]
    }

    /// Writes everything, tenant A in three requests of several series each.
    fn write_all(&self, s: &TestServer) {
        for ks in [0..7, 7..14, 14..N] {
            s.write(A, &request(self.tenant_a(ks)));
        }
        s.write(B, &request(self.tenant_b()));
    }

    /// A fixed set of queries over both tenants, normalized, to compare answers before and
    /// after flushes and restarts.
    fn snapshot(&self, s: &TestServer) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let end = self.t(N - 1);
        for (tenant, name) in [(A, "a"), (B, "b")] {
            for q in [
                "test_counter",
                "test_gauge",
                "test_stale",
                "only_b",
                "test_counter[1h]",
                "test_gauge[1h]",
                "test_stale[1h]",
                "test_reset[1h]",
                "rate(test_counter[1m])",
                "sum by (job) (rate(test_counter[1m]))",
            ] {
                for t in [self.t(3), self.t(10) + 1_000, end] {
                    out.push((
                        format!("{name}: {q} @ {t}"),
                        normalize(&s.query(tenant, q, t)),
                    ));
                }
            }
            for q in [
                "test_counter",
                "test_gauge",
                "test_stale",
                "increase(test_counter[1m])",
            ] {
                out.push((
                    format!("{name}: range {q}"),
                    normalize(&s.query_range(tenant, q, self.t0, end + 60_000, 10_000)),
                ));
            }
        }
        out
    }

    /// The exact answers of the raw data (checked right after writing, and after every flush
    /// or restart).
    fn check_values(&self, s: &TestServer) {
        let t0 = self.t0;
        // Instant selectors see the newest sample of the lookback window.
        for k in 0..N {
            let got = vector(&s.query(A, r#"test_counter{instance="i1"}"#, self.t(k) + 5_000));
            assert_eq!(got.len(), 1, "test_counter i1 at step {k}: {got:?}");
            assert_eq!(got[0].1, self.t(k) + 5_000, "instant result timestamp");
            assert!(same_float(got[0].2, k as f64 * 10.0), "i1 at {k}: {got:?}");
            assert_eq!(
                got[0].0,
                labels(&[
                    ("__name__", "test_counter"),
                    ("instance", "i1"),
                    ("job", "a"),
                    ("tenant_id", "tenant-a")
                ])
            );
        }
        for (k, want) in gauge_values().into_iter().enumerate() {
            let got = vector(&s.query(A, "test_gauge", self.t(k as i64)));
            assert_eq!(got.len(), 1, "test_gauge at step {k}: {got:?}");
            assert!(
                same_float(got[0].2, want),
                "test_gauge at step {k}: got {} want {want}",
                got[0].2
            );
        }
        // Range selectors give every sample of the window, bit-exact.
        let m = matrix(&s.query(A, "test_gauge[1h]", self.t(N)));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_points(&m[0].1, &self.gauge(), "test_gauge[1h]");
        let m = matrix(&s.query(A, "test_counter[1h]", self.t(N)));
        assert_eq!(m.len(), 3, "{m:?}");
        assert_points(&m[0].1, &self.counter(10.0, 0..N), "test_counter i1 [1h]");
        assert_points(&m[1].1, &self.counter(20.0, 0..N), "test_counter i2 [1h]");
        assert_points(&m[2].1, &self.counter(5.0, 0..N), "test_counter i3 [1h]");
        // Windows are left-open: (t - range, t].
        let m = matrix(&s.query(A, r#"test_counter{instance="i1"}[1m]"#, self.t(8)));
        assert_points(&m[0].1, &self.counter(10.0, 5..9), "left-open [1m] window");
        // Lookback is 5 minutes, also left-open.
        let last = self.t(N - 1);
        assert_eq!(
            vector(&s.query(A, r#"test_counter{instance="i1"}"#, last + 299_000)).len(),
            1,
            "sample inside the lookback window"
        );
        assert_eq!(
            vector(&s.query(A, r#"test_counter{instance="i1"}"#, last + 300_000)).len(),
            0,
            "sample exactly 5m old is outside the lookback window"
        );
        assert_eq!(
            vector(&s.query(A, r#"test_counter{instance="i1"}"#, t0 - 1)).len(),
            0,
            "nothing before the first sample"
        );
        // A staleness marker ends the series until the next sample; range selectors skip it.
        let stale = |t: i64| vector(&s.query(A, "test_stale", t));
        assert_eq!(stale(self.t(1) + 1_000)[0].2, 2.0);
        assert!(stale(self.t(2)).is_empty(), "stale marker hides the series");
        assert!(stale(self.t(3)).is_empty(), "stale marker hides the series");
        assert_eq!(stale(self.t(4))[0].2, 3.0);
        let m = matrix(&s.query(A, "test_stale[1h]", self.t(N)));
        assert_points(
            &m[0].1,
            &[(self.t(0), 1.0), (self.t(1), 2.0), (self.t(4), 3.0)],
            "test_stale[1h] without the marker",
        );
        // A range query evaluates at every step.
        let m =
            matrix(&s.query_range(A, r#"test_counter{instance="i2"}"#, t0, self.t(N - 1), STEP));
        assert_eq!(m.len(), 1);
        assert_points(
            &m[0].1,
            &self.counter(20.0, 0..N),
            "range query at 15s steps",
        );
        let m = matrix(&s.query_range(
            A,
            r#"test_counter{instance="i3"}"#,
            t0 + 7_000,
            t0 + 187_000,
            60_000,
        ));
        assert_points(
            &m[0].1,
            &[
                (t0 + 7_000, 0.0),
                (t0 + 67_000, 20.0),
                (t0 + 127_000, 40.0),
                (t0 + 187_000, 60.0),
            ],
            "range query at 60s steps between samples",
        );
        // Tenant B's same-named series is its own.
        let got = vector(&s.query(B, "test_counter", self.t(2)));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0["tenant_id"], "tenant-b");
        assert_eq!(got[0].2, 2000.0);
    }
}

#[test]
fn write_then_query_exact_values() {
    let s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    d.check_values(&s);
    // /api/v1/write is the same receiver.
    let (status, body) = s.post(
        "/api/v1/write",
        Tenant::OrgId("tenant-c"),
        &RW_HEADERS,
        encode(&request(vec![series(
            "via_write",
            &[("instance", "w")],
            &[(d.t(0), 9.5)],
        )])),
    );
    assert_eq!(status, 204, "/api/v1/write: {body}");
    let got = vector(&s.query(Tenant::OrgId("tenant-c"), "via_write", d.t(1)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0["tenant_id"], "tenant-c");
    assert_eq!(got[0].2, 9.5);
}

#[test]
fn tenants_are_isolated() {
    let s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    s.write(
        Tenant::Default,
        &request(vec![series("default_only", &[], &[(d.t(0), 1.0)])]),
    );
    let t = d.t(5);

    let a = vector(&s.query(A, "test_counter", t));
    assert_eq!(a.len(), 3);
    assert!(
        a.iter().all(|(m, _, _)| m["tenant_id"] == "tenant-a"),
        "{a:?}"
    );
    let b = vector(&s.query(B, "test_counter", t));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0["tenant_id"], "tenant-b");

    // Series of another tenant are invisible, even when asked for by tenant_id.
    assert!(vector(&s.query(B, "test_gauge", t)).is_empty());
    assert!(vector(&s.query(A, "only_b", t)).is_empty());
    assert!(vector(&s.query(B, r#"test_counter{tenant_id="tenant-a"}"#, t)).is_empty());
    assert!(
        vector(&s.query(B, r#"{tenant_id=~".+", __name__=~".+"}"#, t))
            .iter()
            .all(|(m, _, _)| m["tenant_id"] == "tenant-b")
    );
    assert!(vector(&s.query(Tenant::Default, "test_counter", t)).is_empty());
    assert!(vector(&s.query(Tenant::Thanos("nobody"), "test_counter", t)).is_empty());

    // Without a header: default-tenant.
    let d0 = vector(&s.query(Tenant::Default, "default_only", t));
    assert_eq!(d0.len(), 1);
    assert_eq!(d0[0].0["tenant_id"], "default-tenant");
    assert!(vector(&s.query(A, "default_only", t)).is_empty());

    // X-Scope-OrgID names the same tenant as THANOS-TENANT.
    assert_eq!(
        normalize(&s.query(Tenant::OrgId("tenant-a"), "test_counter", t)),
        normalize(&s.query(A, "test_counter", t))
    );

    // A tenant id that cannot be one (it becomes an object-store path) is refused.
    for bad in ["a/b", "..", "x y"] {
        let (st, body) = s.send(
            Tenant::Thanos(bad),
            &request(vec![series("bad_tenant", &[], &[(d.t(0), 1.0)])]),
        );
        assert_eq!(st, 400, "write as tenant {bad:?}: {body}");
        let (st, v) = s.api(
            Tenant::Thanos(bad),
            "query",
            &[("query", "bad_tenant".into()), ("time", secs(t))],
        );
        assert_eq!(st, 400, "query as tenant {bad:?}: {v}");
    }

    // The metadata endpoints are scoped too.
    let range = |extra: (&'static str, String)| {
        vec![("start", secs(d.t0 - 60_000)), ("end", secs(d.t(N))), extra]
    };
    let (st, v) = s.api(B, "label/__name__/values", &range(("limit", "100".into())));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!(["only_b", "test_counter"]),
        "{v}"
    );
    let (st, v) = s.api(B, "series", &range(("match[]", "test_gauge".into())));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!([]),
        "tenant-b sees tenant-a's series: {v}"
    );
    let (st, v) = s.api(A, "series", &range(("match[]", "test_gauge".into())));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"][0]["tenant_id"], "tenant-a", "{v}");

    // Aggregations keep within the tenant.
    let sum = vector(&s.query(B, "sum(test_counter)", t));
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0].2, 5000.0);
}

#[test]
fn bad_requests_are_rejected_and_leave_data_intact() {
    let s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    let before = d.snapshot(&s);

    let good = encode(&request(vec![series(
        "bad_test",
        &[("instance", "x")],
        &[(d.t(0), 1.0)],
    )]));
    let with = |ce: &str, ct: &str| {
        s.post(
            "/api/v1/receive",
            A,
            &[
                ("Content-Encoding", ce),
                ("Content-Type", ct),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            good.clone(),
        )
    };
    let (st, body) = with("gzip", "application/x-protobuf");
    assert_eq!(st, 415, "Content-Encoding gzip: {body}");
    let (st, body) = with("snappy", "application/json");
    assert_eq!(st, 415, "Content-Type application/json: {body}");

    // Corrupt snappy: a valid request cut in half.
    let mut cut = encode(&request(d.tenant_a(0..N)));
    cut.truncate(cut.len() / 2);
    let (st, body) = s.post("/api/v1/receive", A, &RW_HEADERS, cut);
    assert_eq!(st, 400, "truncated snappy: {body}");
    // A header claiming 10 bytes, then a literal of one byte that is missing.
    let (st, body) = s.post("/api/v1/receive", A, &RW_HEADERS, vec![0x0a, 0x00]);
    assert_eq!(st, 400, "corrupt snappy: {body}");

    // Corrupt protobuf inside valid snappy: field 1 claims 100 bytes, has one.
    let (st, body) = s.post("/api/v1/receive", A, &RW_HEADERS, snappy(b"\x0a\x64\x01"));
    assert_eq!(st, 400, "corrupt protobuf: {body}");

    // Label rules, each answered 400 with a message naming the label.
    let ts = [(d.t(0), 1.0)];
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "unsorted",
            vec![
                ("__name__", "bad_test"),
                ("zzz_label", "1"),
                ("aaa_label", "2"),
            ],
            vec!["aaa_label", "zzz_label"],
        ),
        (
            "duplicated",
            vec![
                ("__name__", "bad_test"),
                ("dup_label", "1"),
                ("dup_label", "2"),
            ],
            vec!["dup_label"],
        ),
        (
            "empty name",
            vec![("", "empty_name_value"), ("__name__", "bad_test")],
            vec!["empty", "label"],
        ),
        (
            "invalid name",
            vec![("0bad-name", "v"), ("__name__", "bad_test")],
            vec!["0bad-name"],
        ),
    ];
    for (what, lbls, mentions) in cases {
        let req = request(vec![
            series("valid_partner", &[("instance", "ok")], &ts),
            raw_series(&lbls, &ts),
        ]);
        let (st, body) = s.send(A, &req);
        assert_eq!(st, 400, "{what} labels: {body}");
        assert!(
            mentions
                .iter()
                .any(|m| body.to_lowercase().contains(&m.to_lowercase())),
            "{what} labels: the error {body:?} names none of {mentions:?}"
        );
    }

    // An empty label value means "no such label" (Prometheus) or is refused (Thanos); either
    // way no series carries an empty label.
    let (st, body) = s.send(
        A,
        &request(vec![raw_series(
            &[("__name__", "empty_value_test"), ("e", "")],
            &ts,
        )]),
    );
    assert!(
        st == 204 || st == 400,
        "empty label value answered {st}: {body}"
    );
    if st == 204 {
        for (m, _, _) in vector(&s.query(A, "empty_value_test", d.t(1))) {
            assert!(!m.contains_key("e"), "series kept an empty label: {m:?}");
        }
    }

    // Too large: a snappy header claiming a 2 GiB body.
    let mut huge = vec![0x80, 0x80, 0x80, 0x80, 0x08];
    huge.extend_from_slice(&[0u8; 64]);
    let (st, body) = s.post("/api/v1/receive", A, &RW_HEADERS, huge);
    assert_eq!(st, 413, "2 GiB decompressed length: {body}");

    // Nothing of the rejected requests was stored, everything earlier still is.
    assert!(vector(&s.query(A, "bad_test", d.t(1))).is_empty());
    assert_eq!(d.snapshot(&s), before);
    d.check_values(&s);
}

#[test]
fn flush_keeps_answers_over_heads_and_blocks() {
    let s = TestServer::start();
    let d = Data::new();
    // First half, flushed to blocks; second half stays in the head.
    for ks in [0..7, 7..11] {
        s.write(A, &request(d.tenant_a(ks)));
    }
    let before = d.snapshot(&s);
    s.flush();
    assert_eq!(d.snapshot(&s), before, "answers changed by a flush");

    let metas = find_meta_files(&s.bucket_dir());
    assert!(
        !metas.is_empty(),
        "no meta.json under {}",
        s.bucket_dir().display()
    );
    for m in &metas {
        let rel = m
            .strip_prefix(s.bucket_dir())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            rel.starts_with("tenants/tenant-a/"),
            "block outside the tenant's prefix: {rel}"
        );
        let meta: Value = serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap();
        for f in [
            "ulid",
            "tenant",
            "min_time",
            "max_time",
            "num_series",
            "num_samples",
            "schema_version",
        ] {
            assert!(meta.get(f).is_some(), "{rel} lacks {f}: {meta}");
        }
        assert_eq!(meta["tenant"], "tenant-a");
        let dir = m.parent().unwrap();
        assert!(
            dir.join("series.parquet").is_file(),
            "{} lacks series.parquet",
            dir.display()
        );
        assert!(
            dir.join("samples.parquet").is_file(),
            "{} lacks samples.parquet",
            dir.display()
        );
    }
    let blocks: Vec<Value> = metas
        .iter()
        .map(|m| serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap())
        .collect();
    let samples: u64 = blocks
        .iter()
        .map(|b| b["num_samples"].as_u64().unwrap())
        .sum();
    let want: usize = d.tenant_a(0..11).iter().map(|t| t.samples.len()).sum();
    assert_eq!(samples as usize, want, "samples in blocks");
    let min = blocks
        .iter()
        .map(|b| b["min_time"].as_i64().unwrap())
        .min()
        .unwrap();
    let max = blocks
        .iter()
        .map(|b| b["max_time"].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!((min, max), (d.t(0), d.t(10)), "block time range");

    // The rest goes to the head; queries span both.
    s.write(A, &request(d.tenant_a(11..N)));
    s.write(B, &request(d.tenant_b()));
    d.check_values(&s);
    let all = d.snapshot(&s);
    // A second flush moves the rest to blocks, answers unchanged.
    s.flush();
    assert_eq!(d.snapshot(&s), all, "answers changed by the second flush");
    d.check_values(&s);
    assert!(find_meta_files(&s.bucket_dir()).len() > metas.len());
    let flushes = metric_value(&s.metrics(), "hypnos_flushes_total", &[]);
    assert!(
        flushes.is_some_and(|f| f >= 2.0),
        "hypnos_flushes_total = {flushes:?}"
    );
    // A flush of empty heads is harmless.
    s.flush();
    assert_eq!(d.snapshot(&s), all);
}

#[test]
fn kill9_and_restart_keep_every_acknowledged_sample_once() {
    let mut s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    let before = d.snapshot(&s);

    // Crash with everything in the WAL.
    s.kill9();
    s.restart();
    assert_eq!(
        d.snapshot(&s),
        before,
        "answers changed by kill -9 and restart (WAL only)"
    );
    d.check_values(&s);

    // Part in blocks, part in the WAL, then crash.
    s.flush();
    let extra = d.t(N + 4);
    s.write(
        A,
        &request(vec![series(
            "test_counter",
            &[("job", "a"), ("instance", "i1")],
            &[(extra, 1000.0)],
        )]),
    );
    let with_extra = d.snapshot(&s);
    let range_before = matrix(&s.query(A, r#"test_counter{instance="i1"}[1h]"#, extra));
    s.kill9();
    s.restart();
    assert_eq!(
        d.snapshot(&s),
        with_extra,
        "answers changed by kill -9 (blocks + WAL)"
    );
    let range_after = matrix(&s.query(A, r#"test_counter{instance="i1"}[1h]"#, extra));
    assert_eq!(range_after, range_before, "samples duplicated or lost");
    let mut want = d.counter(10.0, 0..N);
    want.push((extra, 1000.0));
    assert_points(&range_after[0].1, &want, "test_counter i1 after restarts");

    // Replaying twice, and restarting cleanly after a restart, adds nothing.
    s.kill9();
    s.restart();
    s.restart();
    assert_eq!(
        d.snapshot(&s),
        with_extra,
        "answers changed by a second restart"
    );
    // Writes after a restart work and survive the next crash.
    s.write(
        B,
        &request(vec![series("after_restart", &[], &[(d.t(1), 5.0)])]),
    );
    s.kill9();
    s.restart();
    let got = vector(&s.query(B, "after_restart", d.t(2)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, 5.0);
}

#[test]
fn resending_a_request_does_not_duplicate_samples() {
    // Senders retry on 5xx and timeouts: the same samples twice must count once.
    let s = TestServer::start();
    let d = Data::new();
    let req = request(d.tenant_a(0..N));
    s.write(A, &req);
    s.write(A, &req);
    let m = matrix(&s.query(A, r#"test_counter{instance="i1"}[1h]"#, d.t(N)));
    assert_points(&m[0].1, &d.counter(10.0, 0..N), "after a resend");
    s.flush();
    // Samples already in blocks may be ignored (204) or refused as too old (400).
    let (st, body) = s.send(A, &req);
    assert!(
        st == 204 || st == 400,
        "resend after flush answered {st}: {body}"
    );
    let m = matrix(&s.query(A, r#"test_counter{instance="i1"}[1h]"#, d.t(N)));
    assert_points(
        &m[0].1,
        &d.counter(10.0, 0..N),
        "after a resend of flushed samples",
    );
}

#[test]
fn promql_functions_and_aggregations() {
    let s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    let q = |expr: &str, t: i64| vector(&s.query(A, expr, t));

    // A counter rising 10 per 15 s: rate over [1m] at a sample = 30 * (60/45) / 60 = 2/3.
    let r = q("rate(test_counter[1m])", d.t(8));
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(
        r[0].0,
        labels(&[("instance", "i1"), ("job", "a"), ("tenant_id", "tenant-a")]),
        "rate drops the metric name"
    );
    assert_close(r[0].2, 2.0 / 3.0, "rate i1");
    assert_close(r[1].2, 4.0 / 3.0, "rate i2");
    assert_close(r[2].2, 1.0 / 3.0, "rate i3");
    let inc = q(r#"increase(test_counter{instance="i1"}[1m])"#, d.t(8));
    assert_close(inc[0].2, 40.0, "increase i1");
    // Counter reset: 10, 20, 5, 15 in the window -> 25, extrapolated by 60/45.
    let inc = q("increase(test_reset[1m])", d.t(4));
    assert_close(inc[0].2, 100.0 / 3.0, "increase across a reset");

    let sum = q("sum by (job) (rate(test_counter[1m]))", d.t(8));
    assert_eq!(sum.len(), 2, "{sum:?}");
    assert_eq!(sum[0].0, labels(&[("job", "a")]));
    assert_close(sum[0].2, 2.0, "sum by job a");
    assert_eq!(sum[1].0, labels(&[("job", "b")]));
    assert_close(sum[1].2, 1.0 / 3.0, "sum by job b");

    // At step 10: i1 = 100, i2 = 200, i3 = 50.
    let t = d.t(10);
    let v = q("max by (job) (test_counter)", t);
    assert_eq!(
        v.iter().map(|x| (x.0.clone(), x.2)).collect::<Vec<_>>(),
        vec![
            (labels(&[("job", "a")]), 200.0),
            (labels(&[("job", "b")]), 50.0)
        ]
    );
    let v = q("min without (instance) (test_counter)", t);
    assert_eq!(
        v.iter().map(|x| (x.0.clone(), x.2)).collect::<Vec<_>>(),
        vec![
            (labels(&[("job", "a"), ("tenant_id", "tenant-a")]), 100.0),
            (labels(&[("job", "b"), ("tenant_id", "tenant-a")]), 50.0)
        ]
    );
    let v = q("avg by (job) (test_counter)", t);
    assert_eq!(v[0].2, 150.0);
    let v = q("count(test_counter)", t);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, labels(&[]));
    assert_eq!(v[0].2, 3.0);
    let v = q("sum(test_counter)", t);
    assert_eq!(v[0].2, 350.0);

    // Arithmetic and comparison with scalars.
    let v = q(r#"test_counter{instance="i1"} * 2 + 1"#, t);
    assert_eq!(v.len(), 1);
    assert!(
        !v[0].0.contains_key("__name__"),
        "arithmetic keeps __name__: {v:?}"
    );
    assert_eq!(v[0].2, 201.0);
    let v = q(r#"10 - test_counter{instance="i3"} / 5"#, t);
    assert_eq!(v[0].2, 0.0);
    let v = q("test_counter > 150", t);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0["instance"], "i2");
    assert_eq!(v[0].2, 200.0);
    let v = q("test_counter <= 50", t);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0["instance"], "i3");
    let (_, one) = scalar(&s.query(A, "1 + 1", t));
    assert_eq!(one, 2.0);

    // offset
    let v = q(r#"test_counter{instance="i1"} offset 1m"#, t);
    assert_eq!(v[0].2, 60.0);
    assert_eq!(v[0].1, t, "offset keeps the evaluation timestamp");
    let v = q(
        r#"rate(test_counter{instance="i1"}[1m] offset 30s)"#,
        d.t(10),
    );
    assert_close(v[0].2, 2.0 / 3.0, "rate with offset");

    // Matchers, regexes fully anchored.
    let n = |expr: &str| q(expr, t).len();
    assert_eq!(
        n(r#"test_counter{instance=~"i"}"#),
        0,
        "regex must be anchored"
    );
    assert_eq!(n(r#"test_counter{instance=~"i[12]"}"#), 2);
    assert_eq!(n(r#"test_counter{instance=~"i1|i3"}"#), 2);
    assert_eq!(n(r#"test_counter{job!="a"}"#), 1);
    assert_eq!(n(r#"test_counter{instance!~"i1|i3"}"#), 1);
    assert_eq!(
        n(r#"test_counter{instance!~"i"}"#),
        3,
        "negative regex must be anchored"
    );
    assert_eq!(n(r#"{__name__=~"test_c.*"}"#), 3);
    assert_eq!(
        n(r#"test_counter{nonexistent=""}"#),
        3,
        "empty matcher matches absent"
    );
    assert_eq!(n(r#"test_counter{job="a", instance="i2"}"#), 1);

    // Range queries of functions and aggregations.
    let m = matrix(&s.query_range(
        A,
        "sum by (job) (rate(test_counter[1m]))",
        d.t(4),
        d.t(N - 1),
        STEP,
    ));
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].1.len() as i64, N - 4, "{m:?}");
    for (ts, v) in &m[0].1 {
        assert_close(*v, 2.0, &format!("sum rate job a at {ts}"));
    }
}

#[test]
fn unsupported_and_invalid_queries() {
    let s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    let t = secs(d.t(5));
    for (q, names) in [
        // Per-step parameters of these two are not supported yet.
        (
            "double_exponential_smoothing(test_counter[5m], scalar(test_counter), 0.5)",
            "double_exponential_smoothing",
        ),
        (
            "histogram_fraction(scalar(test_counter), 1, test_counter)",
            "histogram_fraction",
        ),
    ] {
        let (st, v) = s.api(A, "query", &[("query", q.to_string()), ("time", t.clone())]);
        assert_eq!(st, 422, "{q}: {v}");
        assert_eq!(v["status"], "error", "{q}: {v}");
        assert!(
            v["errorType"].as_str().is_some_and(|e| !e.is_empty()),
            "{q}: {v}"
        );
        let msg = v["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            msg.contains(names),
            "{q}: the error {msg:?} does not name {names}"
        );
    }
    for q in [
        "sum(",
        "test_counter{",
        "rate(test_counter)",
        "1 +",
        "foo bar",
    ] {
        let (st, v) = s.api(A, "query", &[("query", q.to_string()), ("time", t.clone())]);
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(v["status"], "error", "{q}: {v}");
        assert_eq!(v["errorType"], "bad_data", "{q}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{q}: {v}"
        );
    }
    // Missing or malformed parameters.
    let (st, v) = s.api(A, "query", &[("time", t.clone())]);
    assert_eq!(st, 400, "query without query: {v}");
    let (st, v) = s.api(
        A,
        "query",
        &[("query", "up".into()), ("time", "yesterday".into())],
    );
    assert_eq!(st, 400, "bad time: {v}");
    assert_eq!(v["errorType"], "bad_data");
    let (st, v) = s.api(
        A,
        "query_range",
        &[
            ("query", "up".into()),
            ("start", t.clone()),
            ("end", t.clone()),
        ],
    );
    assert_eq!(st, 400, "query_range without step: {v}");
    let (st, v) = s.api(
        A,
        "query_range",
        &[
            ("query", "up".into()),
            ("start", secs(d.t(5))),
            ("end", secs(d.t(1))),
            ("step", "15".into()),
        ],
    );
    assert_eq!(st, 400, "end before start: {v}");
    // The server is still fine.
    assert_eq!(vector(&s.query(A, "test_counter", d.t(5))).len(), 3);
}

#[test]
fn post_form_queries_match_get() {
    let s = TestServer::start();
    let d = Data::new();
    d.write_all(&s);
    let p = [
        ("query", "sum by (job) (rate(test_counter[1m]))".to_string()),
        ("time", secs(d.t(9))),
    ];
    let (st1, get) = s.api(A, "query", &p);
    let (st2, post) = s.api_post(A, "query", &p);
    assert_eq!((st1, st2), (200, 200), "{get} / {post}");
    assert_eq!(normalize(&get["data"]), normalize(&post["data"]));
    let p = [
        ("query", "test_counter".to_string()),
        ("start", secs(d.t(0))),
        ("end", secs(d.t(N - 1))),
        ("step", "30".to_string()),
    ];
    let (st1, get) = s.api(A, "query_range", &p);
    let (st2, post) = s.api_post(A, "query_range", &p);
    assert_eq!((st1, st2), (200, 200), "{get} / {post}");
    assert_eq!(normalize(&get["data"]), normalize(&post["data"]));
    assert_eq!(matrix(&get["data"]).len(), 3);
    // A step as a duration, as Grafana may send it.
    let (st, v) = s.api(
        A,
        "query_range",
        &[
            ("query", "test_counter".to_string()),
            ("start", secs(d.t(0))),
            ("end", secs(d.t(N - 1))),
            ("step", "30s".to_string()),
        ],
    );
    assert_eq!(st, 200, "step=30s: {v}");
    assert_eq!(normalize(&v["data"]), normalize(&get["data"]));
}

#[test]
fn health_and_own_metrics() {
    let s = TestServer::start();
    for p in ["/-/ready", "/-/healthy"] {
        let (st, body) = s.get(p);
        assert_eq!(st, 200, "{p}: {body}");
    }
    let d = Data::new();
    d.write_all(&s);
    let sent_a: usize = (0..N)
        .step_by(7)
        .map(|k| d.tenant_a(k..(k + 7).min(N)))
        .flat_map(|r| r.into_iter().map(|t| t.samples.len()))
        .sum();
    let sent_b: usize = d.tenant_b().iter().map(|t| t.samples.len()).sum();
    s.query(A, "sum(rate(test_counter[1m]))", d.t(8));
    let text = s.metrics();
    assert_eq!(
        metric_value(
            &text,
            "hypnos_receive_samples_total",
            &[("tenant", "tenant-a")]
        ),
        Some(sent_a as f64),
        "samples received of tenant-a in:\n{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "hypnos_receive_samples_total",
            &[("tenant", "tenant-b")]
        ),
        Some(sent_b as f64),
        "samples received of tenant-b in:\n{text}"
    );
    assert!(
        metric_value(&text, "hypnos_http_requests_total", &[]).is_some_and(|n| n >= 4.0),
        "hypnos_http_requests_total missing in:\n{text}"
    );
    let series = metric_value(&text, "hypnos_head_series", &[]);
    assert!(
        series.is_some_and(|n| n >= 8.0),
        "hypnos_head_series = {series:?} in:\n{text}"
    );
    assert!(
        metric_value(&text, "hypnos_flushes_total", &[]).is_some(),
        "hypnos_flushes_total missing in:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("hypnos_") && l.contains("quer") && !l.starts_with('#')),
        "no query metric in:\n{text}"
    );
    // Every line is valid text format: `# HELP`/`# TYPE` or `name{labels} value`.
    for l in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (_, v) = l
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {l:?}"));
        assert!(
            v.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&v),
            "bad value in {l:?}"
        );
    }
}
