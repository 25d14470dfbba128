//! Hostile remote writes against the real binary: bodies that decompress into millions of
//! empty messages, a decoding budget smaller than a request, metric metadata meant to fill
//! memory, timestamps at the ends of i64. Each is refused with a status and a message naming
//! the limit, the process stays up with memory in proportion to the requests, and what was
//! written before is intact.

mod common;

use std::sync::Arc;

use common::*;
use hypnos_schemas::remote::{MetricMetadata, WriteRequest};
use prost::Message;

/// Limits of the server of the amplification tests: tenant `open` has no count limits, so
/// only the decoding amplification bound stands between it and the bombs; tenant `slow` has
/// a small ingestion rate.
const LIMITS: &str = "tenants:\n  \
    open: {max_series_per_request: 0, max_samples_per_request: 0, max_label_names_per_series: 0}\n  \
    slow: {ingestion_rate: 10, ingestion_burst: 100}\n";

fn server_with_limits(extra: &[&str]) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = dir.path().join("limits.yaml");
    std::fs::write(&limits, LIMITS).expect("write limits");
    let mut opts = Options::default().arg(format!("--limits-file={}", limits.display()));
    for a in extra {
        opts = opts.arg(*a);
    }
    let s = TestServer::with(opts);
    // The limits file must outlive the start; the server has read it by now.
    std::mem::forget(dir);
    s
}

/// A raw `WriteRequest` of one series `{__name__="bomb"}` holding `n` copies of the empty
/// message of `field` (1 labels, 2 samples, 3 exemplars, 4 histograms), or `n` empty series
/// when `field` is 0.
fn bomb(field: u8, n: usize) -> Vec<u8> {
    if field == 0 {
        return [0x0a, 0x00].repeat(n);
    }
    // TimeSeries.labels (field 1) holding Label { name: "__name__", value: "bomb" }.
    let mut inner = vec![0x0a, 16, 0x0a, 8];
    inner.extend_from_slice(b"__name__");
    inner.extend_from_slice(&[0x12, 4]);
    inner.extend_from_slice(b"bomb");
    inner.extend_from_slice(&[(field << 3) | 2, 0x00].repeat(n));
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(inner.len() as u64, &mut body);
    body.extend_from_slice(&inner);
    body
}

fn good_series(t: i64) -> WriteRequest {
    request(vec![series("kept", &[("job", "a")], &[(t, 42.0)])])
}

fn assert_kept(s: &TestServer, t: i64) {
    let data = s.query(Tenant::Default, "kept", t);
    let v = vector(&data);
    assert_eq!(v.len(), 1, "{data}");
    assert_eq!(v[0].2, 42.0, "{data}");
}

#[test]
fn decompression_bombs_are_refused_before_they_are_decoded() {
    let s = server_with_limits(&[]);
    let t = base_time();
    s.write(Tenant::Default, &good_series(t));
    let hwm_before = s.proc_status_bytes("VmHWM");

    // 24 MiB of empty histograms from a body of about a megabyte: the finding of issue 11.
    let raw = bomb(4, 12 << 20);
    let body = snappy(&raw);
    assert!(body.len() < 2 << 20, "{} bytes compressed", body.len());
    // Default limits: refused by the sample count, read on the wire.
    let (status, msg) = s.post(
        "/api/v1/receive",
        Tenant::Default,
        &RW_HEADERS,
        body.clone(),
    );
    assert_eq!(status, 413, "{msg}");
    assert!(msg.contains("max_samples_per_request"), "{msg}");
    // Without count limits: refused by the amplification bound.
    let (status, msg) = s.post("/api/v1/receive", Tenant::OrgId("open"), &RW_HEADERS, body);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("empty messages"), "{msg}");
    // Empty series, labels and metadata entries, the other large structs: refused by the
    // amplification bound (400) or, at exactly 24 times (labels), by the decoding budget
    // (413): 8 Mi empty labels would take 400 MB.
    let metadata = [0x1a, 0x00].repeat(8 << 20);
    for (raw, what) in [
        (bomb(0, 8 << 20), "series"),
        (bomb(1, 8 << 20), "labels"),
        (metadata, "metadata"),
    ] {
        let (status, msg) = s.post(
            "/api/v1/receive",
            Tenant::OrgId("open"),
            &RW_HEADERS,
            snappy(&raw),
        );
        match status {
            400 => assert!(msg.contains("empty messages"), "{what}: {msg}"),
            413 => assert!(
                msg.contains("--receive.max-inflight-decode-bytes"),
                "{what}: {msg}"
            ),
            _ => panic!("{what}: {status} {msg}"),
        }
    }

    let growth = s.proc_status_bytes("VmHWM").saturating_sub(hwm_before);
    eprintln!("peak RSS (VmHWM) grew by {} KiB", growth >> 10);
    assert!(growth < 300 << 20, "peak RSS grew by {} MiB", growth >> 20);
    assert_kept(&s, t);
    s.write(Tenant::Default, &good_series(t + 1000));
}

#[test]
fn the_decoding_budget_refuses_what_does_not_fit() {
    let s = TestServer::with(Options::default().arg("--receive.max-inflight-decode-bytes=1048576"));
    let t = base_time();
    s.write(Tenant::Default, &good_series(t));
    // 100k samples: about 2 MiB decompressed, more than the whole budget.
    let samples: Vec<(i64, f64)> = (0..100_000).map(|i| (t - i, i as f64)).collect();
    let big = request(vec![series("big", &[], &samples)]);
    let (status, msg) = s.send(Tenant::Default, &big);
    assert_eq!(status, 413, "{msg}");
    assert!(msg.contains("--receive.max-inflight-decode-bytes"), "{msg}");
    let rejected = metric_value(
        &s.metrics(),
        "hypnos_receive_rejected_total",
        &[("reason", "max_inflight_decode_bytes")],
    );
    assert_eq!(rejected, Some(1.0));
    // What fits still goes through, and nothing stays reserved.
    s.write(Tenant::Default, &good_series(t + 1000));
    assert_kept(&s, t);
}

#[test]
fn extreme_timestamps_are_refused() {
    let s = TestServer::start();
    let t = base_time();
    s.write(Tenant::Default, &good_series(t));
    for (ts, want) in [
        (i64::MAX, "max_future_skew"),
        (now_ms() + 3_600_000, "max_future_skew"),
        (i64::MIN, "1970"),
        (-1, "1970"),
    ] {
        let req = request(vec![series("kept", &[("job", "a")], &[(ts, 1.0)])]);
        let (status, msg) = s.send(Tenant::Default, &req);
        assert_eq!(status, 400, "{ts}: {msg}");
        assert!(msg.contains(want), "{ts}: {msg}");
    }
    // A little ahead is fine (clocks drift), time 0 too.
    let req = request(vec![
        series("kept", &[("job", "b")], &[(now_ms() + 60_000, 1.0)]),
        series("kept", &[("job", "c")], &[(0, 1.0)]),
    ]);
    s.write(Tenant::Default, &req);
    s.flush();
    assert_kept(&s, t);
}

#[test]
fn blocks_of_any_time_are_listed() {
    use arrow::array::{Float64Array, Int64Array};
    use hypnos_schemas::{Labels, SeriesData, TenantId};
    use object_store::ObjectStore;
    use object_store::local::LocalFileSystem;

    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&bucket).expect("store"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tenant = TenantId::new("t").expect("tenant");
    for (a, b) in [(i64::MIN, i64::MAX), (-5, 253_402_300_800_000), (0, 1)] {
        let s = SeriesData::new(
            Labels::from_pairs([("__name__", "x")]),
            Int64Array::from(vec![a, b]),
            Float64Array::from(vec![1.0, 2.0]),
        );
        rt.block_on(hypnos_schemas::block::write_block(&store, &tenant, vec![s]))
            .expect("write block");
    }
    for cmd in ["ls", "inspect"] {
        let out = std::process::Command::new(BIN)
            .args(["tools", "bucket", cmd, "--objstore-url"])
            .arg(format!("file://{}", bucket.display()))
            .output()
            .expect("run hypnos tools");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd}: {stdout}\n{stderr}");
        for want in [
            format!("{}ms", i64::MIN),
            format!("{}ms", i64::MAX),
            "-5ms".to_string(),
            "253402300800000ms".to_string(),
            "1970-01-01T00:00:00Z".to_string(),
        ] {
            assert!(stdout.contains(&want), "{cmd}: no {want} in\n{stdout}");
        }
    }
}

/// `n` metadata entries named `metric_<tag>_<i>` with a help text and a unit of `text`.
fn metadata(tag: &str, n: usize, text: &str) -> WriteRequest {
    WriteRequest {
        timeseries: vec![],
        metadata: (0..n)
            .map(|i| MetricMetadata {
                r#type: 1,
                metric_family_name: format!("metric_{tag}_{i}"),
                help: text.to_string(),
                unit: text.to_string(),
            })
            .collect(),
    }
}

#[test]
fn metric_metadata_is_bounded_and_rate_limited() {
    let s = server_with_limits(&[]);
    let t = base_time();
    s.write(Tenant::Default, &good_series(t));
    // A metric name or unit longer than max_metadata_length: refused, and said so.
    let mut long = metadata("long", 1, "x");
    long.metadata[0].unit = "u".repeat(10 << 20);
    let (status, msg) = s.send(Tenant::Default, &long);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("max_metadata_length"), "{msg}");
    let mut long = metadata("long", 1, "x");
    long.metadata[0].metric_family_name = "m".repeat(2000);
    let (status, msg) = s.send(Tenant::Default, &long);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("max_metadata_length"), "{msg}");

    // 20 requests of 10 MiB of metadata: 5,000 new metric names each, with 1,000-byte help
    // texts and units. The first two fill the 10,000 names of max_metadata_per_user; the
    // others are refused whole.
    let rss_before = s.proc_status_bytes("VmRSS");
    let text = "h".repeat(1000);
    let mut accepted = 0;
    for r in 0..20 {
        let req = metadata(&r.to_string(), 5000, &text);
        assert!(req.encoded_len() > 10_000_000);
        let (status, msg) = s.send(Tenant::Default, &req);
        match status {
            204 => accepted += 1,
            400 => assert!(msg.contains("max_metadata_per_user"), "{msg}"),
            _ => panic!("request {r}: {status} {msg}"),
        }
    }
    assert_eq!(accepted, 2);
    let growth = s.proc_status_bytes("VmRSS").saturating_sub(rss_before);
    eprintln!("RSS grew by {} KiB over 20 metadata requests", growth >> 10);
    assert!(growth < 150 << 20, "RSS grew by {} MiB", growth >> 20);
    let (status, body) = s.get("/api/v1/metadata?limit=0");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"].as_object().expect("data").len(), 10_000);

    // Metadata entries count against the ingestion rate: 10/s with a burst of 100.
    let slow = Tenant::OrgId("slow");
    let (status, msg) = s.send(slow, &metadata("slow", 101, "x"));
    assert_eq!(status, 413, "{msg}");
    assert!(msg.contains("ingestion_burst"), "{msg}");
    s.write(slow, &metadata("slow", 90, "x"));
    let (status, msg) = s.send(slow, &metadata("slow", 90, "x"));
    assert_eq!(status, 429, "{msg}");
    assert!(msg.contains("ingestion_rate"), "{msg}");
    assert_kept(&s, t);
}
