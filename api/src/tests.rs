//! Route-level tests: the real router over a real ingester and block catalog in a temporary
//! directory, driven with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hypnos_schemas::remote::{Label, Sample, TimeSeries, WriteRequest};
use hypnos_tenancy::AuthMode;
use prost::Message;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

struct Fixture {
    app: Router,
    _dir: tempfile::TempDir,
}

async fn fixture_with(max_request_bytes: usize) -> Fixture {
    fixture_args(max_request_bytes, |c| c.enable_admin_api = true).await
}

/// The state of `hypnos all` with its defaults (the file bucket in the data directory),
/// as `configure` changes them.
async fn state_with(
    dir: &tempfile::TempDir,
    configure: impl FnOnce(&mut ApiConfig),
) -> Arc<AppState> {
    let data_dir = dir.path().join("data");
    let mut config = ApiConfig::new(&data_dir);
    configure(&mut config);
    let bucket = data_dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&bucket).unwrap());
    let (state, _catalog) = AppState::open(&config, store, "test bucket").await.unwrap();
    state
}

/// A fixture with the configuration changed by `configure`.
async fn fixture_args(max_request_bytes: usize, configure: impl FnOnce(&mut ApiConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with(&dir, |c| {
        c.max_request_bytes = max_request_bytes;
        configure(c);
    })
    .await;
    Fixture {
        app: router(state),
        _dir: dir,
    }
}

async fn fixture() -> Fixture {
    fixture_with(32 << 20).await
}

impl Fixture {
    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(&self, uri: &str, tenant: Option<&str>) -> (StatusCode, String) {
        let mut b = Request::get(uri);
        if let Some(t) = tenant {
            b = b.header("THANOS-TENANT", t);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn get_json(&self, uri: &str, tenant: Option<&str>) -> (StatusCode, Value) {
        let (s, body) = self.get(uri, tenant).await;
        (
            s,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}")),
        )
    }

    async fn write(
        &self,
        tenant: Option<&str>,
        encoding: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let mut b = Request::post("/api/v1/receive")
            .header("Content-Encoding", encoding)
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let Some(t) = tenant {
            b = b.header("X-Scope-OrgID", t);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }
}

fn request(name: &str, job: &str, samples: &[(i64, f64)]) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "job".into(),
                    value: job.into(),
                },
            ],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }],
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

#[track_caller]
fn assert_error(status: StatusCode, v: &Value, want_status: u16, want_type: &str) {
    assert_eq!(status.as_u16(), want_status, "{v}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], want_type, "{v}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_error_envelopes() {
    let f = fixture().await;
    let (s, v) = f.get_json("/api/v1/nope", None).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = f.get_json("/api/v1/receive", None).await;
    assert_error(s, &v, 405, "bad_data");
    let (s, body) = f.get("/-/ready", None).await;
    assert_eq!((s.as_u16(), body.as_str()), (200, "Hypnos is Ready.\n"));
    let (s, _) = f.get("/-/healthy", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = f.get_json("/api/v1/status/buildinfo", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn query_parameter_errors_like_prometheus() {
    let f = fixture().await;
    for (uri, msg) in [
        (
            "/api/v1/query?query=up&time=x",
            r#"invalid parameter "time": cannot parse "x" to a valid timestamp"#,
        ),
        (
            "/api/v1/query",
            r#"invalid parameter "query": the query is missing or empty"#,
        ),
        (
            "/api/v1/query?query=up&timeout=soon",
            r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
        ),
        (
            "/api/v1/query?query=up&lookback_delta=x",
            r#"error parsing lookback delta duration: cannot parse "x" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=x&end=1&step=1",
            r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_range?query=up&end=1&step=1",
            r#"invalid parameter "start": cannot parse "" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=1&step=1",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range?query=up&start=1&end=10&step=x",
            r#"invalid parameter "step": cannot parse "x" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=1&end=10&step=0",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "/api/v1/query_range?query=up&start=1&end=10&step=-1s",
            r#"invalid parameter "step": cannot parse "-1s" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=11001&step=1",
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        ("/api/v1/series?start=0", "no match[] parameter provided"),
        (
            "/api/v1/series?match[]=rate(x[5m])",
            r#"invalid parameter "match[]": "rate(x[5m])" is not a series selector"#,
        ),
    ] {
        let (s, v) = f.get_json(uri, None).await;
        assert_error(s, &v, 400, "bad_data");
        assert_eq!(v["error"], msg, "{uri}");
    }
    // Exactly 11,000 points is fine (the answer then comes from the engine).
    let (s, v) = f
        .get_json(
            "/api/v1/query_range?query=up&start=0&end=11000&step=1",
            None,
        )
        .await;
    assert_ne!(s, StatusCode::BAD_REQUEST, "{v}");
    // Form-encoded POST bodies are read, and win over the URL.
    let req = Request::post("/api/v1/query?time=1")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::from("query=up&time=bad"))
        .unwrap();
    let (s, body) = f.send(req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#"cannot parse \"bad\""#), "{body}");
    // An invalid tenant is refused before anything else.
    let (s, v) = f.get_json("/api/v1/query?query=up", Some("a/b")).await;
    assert_error(s, &v, 400, "bad_data");
    assert!(
        v["error"].as_str().unwrap().contains("THANOS-TENANT"),
        "{v}"
    );
}

#[tokio::test]
async fn remote_write_refuses_bad_input_in_plain_text() {
    let f = fixture_with(1024).await;
    let ok = request("m", "a", &[(1000, 1.0)]);
    let (s, body) = f.write(None, "gzip", ok.clone()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body.contains("gzip"), "{body}");
    let (s, body) = f
        .write(None, "snappy", b"\xff\xff\xff\xff not snappy".to_vec())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = f.write(None, "snappy", vec![0; 4096]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body, "request body exceeds the limit of 1024 bytes\n");
    let (s, body) = f.write(Some("no such/tenant"), "snappy", ok.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("X-Scope-OrgID"), "{body}");

    let (s, metrics) = f.get("/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    for line in [
        r#"hypnos_receive_rejected_total{reason="unsupported_media_type",tenant="default-tenant"} 1"#,
        r#"hypnos_receive_rejected_total{reason="decode",tenant="default-tenant"} 1"#,
        r#"hypnos_receive_rejected_total{reason="too_large",tenant="default-tenant"} 1"#,
        r#"hypnos_receive_rejected_total{reason="invalid_tenant",tenant="<invalid>"} 1"#,
        r#"hypnos_http_requests_total{code="415",handler="/api/v1/receive"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn written_series_are_served_per_tenant_before_and_after_flush() {
    let f = fixture().await;
    let (s, body) = f
        .write(
            Some("team-a"),
            "snappy",
            request("up", "api", &[(1000, 1.0), (2000, 2.0)]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let (s, body) = f
        .write(
            Some("team-b"),
            "snappy",
            request("up", "db", &[(1000, 1.0)]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");

    for round in ["head", "block"] {
        let (s, v) = f
            .get_json("/api/v1/series?match[]=up", Some("team-a"))
            .await;
        assert_eq!(s, StatusCode::OK, "{round}: {v}");
        assert_eq!(
            v["data"],
            serde_json::json!([{"__name__": "up", "job": "api", "tenant_id": "team-a"}]),
            "{round}"
        );
        let (_, v) = f.get_json("/api/v1/labels", Some("team-a")).await;
        assert_eq!(
            v["data"],
            serde_json::json!(["__name__", "job", "tenant_id"]),
            "{round}"
        );
        let (_, v) = f.get_json("/api/v1/label/job/values", Some("team-b")).await;
        assert_eq!(v["data"], serde_json::json!(["db"]), "{round}");
        let (_, v) = f
            .get_json(
                "/api/v1/label/job/values?match[]=%7Bjob%3D~%22a.*%22%7D",
                Some("team-b"),
            )
            .await;
        assert_eq!(v["data"], serde_json::json!([]), "{round}");
        let (_, v) = f.get_json("/api/v1/series?match[]=up", None).await;
        assert_eq!(
            v["data"],
            serde_json::json!([]),
            "{round}: default tenant sees nothing"
        );
        let (_, v) = f
            .get_json("/api/v1/series?match[]=up&start=3&end=4", Some("team-a"))
            .await;
        assert_eq!(v["data"], serde_json::json!([]), "{round}: out of range");

        let req = Request::post("/api/v1/admin/flush")
            .body(Body::empty())
            .unwrap();
        let (s, body) = f.send(req).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let n = v["data"]["blocks"].as_array().unwrap().len();
        assert_eq!(n, if round == "head" { 2 } else { 0 }, "{round}: {body}");
    }
}

#[tokio::test]
async fn max_source_resolution_is_parsed_and_reaches_the_selections() {
    let f = fixture().await;
    for bad in ["10m", "x", "-5m", "5", "1d", "auto5m"] {
        for path in [
            "/api/v1/query?query=up&time=1",
            "/api/v1/query_range?query=up&start=0&end=60&step=15",
        ] {
            let uri = format!("{path}&max_source_resolution={bad}");
            let (s, v) = f.get_json(&uri, None).await;
            assert_error(s, &v, 400, "bad_data");
            assert_eq!(
                v["error"],
                format!(
                    r#"invalid parameter "max_source_resolution": "{bad}" is not one of auto, raw, 0s, 5m or 1h"#
                ),
                "{uri}"
            );
        }
    }
    // What each value lets `rate` read, seen in the plan of a range query with a 1h step
    // (auto: a fifth of the step is 12m, so 5m data).
    for (param, want) in [
        ("", None),
        ("&max_source_resolution=raw", None),
        ("&max_source_resolution=0", None),
        ("&max_source_resolution=0s", None),
        ("&max_source_resolution=5m", Some(300_000)),
        ("&max_source_resolution=300s", Some(300_000)),
        ("&max_source_resolution=1h", Some(3_600_000)),
        ("&max_source_resolution=auto", Some(300_000)),
    ] {
        let uri = format!(
            "/api/v1/query_range?query=rate(up[1h])&start=0&end=7200&step=3600&explain=true{param}"
        );
        let (s, v) = f.get_json(&uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        let plan = v["data"]["plan"].as_str().unwrap();
        match want {
            None => assert!(!plan.contains("max_resolution"), "{param}: {plan}"),
            Some(ms) => assert!(
                plan.contains(&format!("max_resolution={ms}ms, aggregate=Counter")),
                "{param}: {plan}"
            ),
        }
    }
}

#[tokio::test]
async fn auto_downsampling_flag_makes_auto_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with(&dir, |c| c.query_auto_downsampling = true).await;
    let f = Fixture {
        app: router(state),
        _dir: dir,
    };
    let uri = "/api/v1/query_range?query=rate(up[1h])&start=0&end=7200&step=3600&explain=true";
    let (s, v) = f.get_json(uri, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let plan = v["data"]["plan"].as_str().unwrap();
    assert!(plan.contains("max_resolution=300000ms"), "{plan}");
    // The parameter still wins.
    let (_, v) = f
        .get_json(&format!("{uri}&max_source_resolution=raw"), None)
        .await;
    let plan = v["data"]["plan"].as_str().unwrap();
    assert!(!plan.contains("max_resolution"), "{plan}");
}

#[tokio::test]
async fn explain_and_query_answer_envelopes() {
    let f = fixture().await;
    // Whatever the engine answers, it is one of Prometheus' envelopes.
    for uri in [
        "/api/v1/query?query=up&time=1",
        "/api/v1/query?query=up&time=1&explain=true",
        "/api/v1/query_range?query=up&start=0&end=60&step=15",
    ] {
        let (s, v) = f.get_json(uri, None).await;
        match v["status"].as_str() {
            Some("success") => assert_eq!(s, StatusCode::OK),
            Some("error") => assert!(v["errorType"].is_string(), "{v}"),
            _ => panic!("{uri}: not an envelope: {v}"),
        }
    }
    let (_, metrics) = f.get("/metrics", None).await;
    assert!(
        metrics.contains(r#"hypnos_queries_total{kind="instant",tenant="default-tenant"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn query_answers_carry_warnings_and_infos_like_prometheus() {
    let f = fixture().await;
    let (s, body) = f
        .write(
            Some("team-a"),
            "snappy",
            request("requests", "api", &[(0, 1.0), (15_000, 5.0), (30_000, 9.0)]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    // A name that does not look like a counter's: an info, with the position of the range.
    let (s, v) = f
        .get_json(
            "/api/v1/query?query=rate(requests%5B1m%5D)&time=30",
            Some("team-a"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["infos"],
        serde_json::json!([
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"requests\" (1:6)"
        ]),
        "{v}"
    );
    assert!(v.get("warnings").is_none(), "{v}");
    // A quantile out of range: a warning, on the range query too.
    let (s, v) = f
        .get_json(
            "/api/v1/query_range?query=quantile(2,%20requests)&start=0&end=30&step=15",
            Some("team-a"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["warnings"],
        serde_json::json!([
            "PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"
        ]),
        "{v}"
    );
    assert!(v.get("infos").is_none(), "{v}");
    // Nothing to say: neither key.
    let (_, v) = f
        .get_json("/api/v1/query?query=requests&time=30", Some("team-a"))
        .await;
    assert_eq!(v["status"], "success", "{v}");
    assert!(
        v.get("warnings").is_none() && v.get("infos").is_none(),
        "{v}"
    );
}

mod hardening;
