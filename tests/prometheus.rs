//! A real Prometheus (Debian's `prometheus` package) scrapes Hypnos' own `/metrics` and
//! remote-writes to Hypnos; the scraped series must arrive and be queryable. A second test
//! has it scrape native histograms (protobuf exposition) and remote-write them. Without the
//! program the tests are skipped, except under `CI=true`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message;
use serde_json::Value;

use common::*;

const INSTALL: &str = "apt-get install prometheus  (or run .ci/run)";

fn prometheus_bin() -> Option<String> {
    if let Ok(p) = std::env::var("PROMETHEUS_BIN") {
        return Some(p);
    }
    let ok = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("prometheus".into());
    }
    Path::new("/usr/bin/prometheus")
        .is_file()
        .then(|| "/usr/bin/prometheus".into())
}

struct Prometheus {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "---- prometheus log (tail) ----\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// The Prometheus binary; `None` (the test then skips, except under `CI=true`, where it
/// fails) when it is not installed.
fn prometheus_or_skip() -> Option<String> {
    let bin = prometheus_bin();
    require(
        bin.is_some(),
        "prometheus (Debian package `prometheus`)",
        INSTALL,
    )
    .then_some(bin)
    .flatten()
}

/// Starts Prometheus with `config` (and extra flags), logging into `dir`.
fn start_prometheus(bin: &str, dir: &Path, config: &str, flags: &[&str]) -> (Prometheus, String) {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let prom_addr = free_addr();
    let log = dir.join("prometheus.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .args(flags)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    (Prometheus { child, log }, prom_addr.to_string())
}

#[test]
fn prometheus_scrapes_and_remote_writes_to_hypnos() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let s = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let http = s.http_addr();
    let config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hypnos
    scrape_interval: 1s
    static_configs:
      - targets: ["{http}"]
remote_write:
  - url: "http://{http}/api/v1/receive"
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#
    );
    let (_prom, _) = start_prometheus(&bin, dir.path(), &config, &[]);

    let up = eventually(
        Duration::from_secs(90),
        "up{job=\"hypnos\"} remote-written by Prometheus",
        || {
            let v = vector(&s.query(Tenant::Default, r#"up{job="hypnos"}"#, now_ms()));
            (!v.is_empty()).then_some(v)
        },
    );
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].0["tenant_id"], "default-tenant");
    assert_eq!(up[0].0["instance"], http.to_string());
    assert_eq!(up[0].2, 1.0, "Prometheus could not scrape /metrics");

    // Hypnos' own metrics made the round trip, as did its received-samples counter.
    let own = eventually(
        Duration::from_secs(60),
        "hypnos_receive_samples_total scraped and remote-written",
        || {
            let v = vector(&s.query(
                Tenant::Default,
                r#"hypnos_receive_samples_total{job="hypnos", tenant="default-tenant"}"#,
                now_ms(),
            ));
            (!v.is_empty()).then_some(v)
        },
    );
    assert_eq!(own[0].0["tenant_id"], "default-tenant");
    assert!(own[0].2 > 0.0, "{own:?}");

    // Nothing leaked into another tenant.
    assert!(vector(&s.query(Tenant::Thanos("other"), "up", now_ms())).is_empty());
    // A range query over what arrived so far.
    let now = now_ms();
    let m = matrix(&s.query_range(
        Tenant::Default,
        r#"rate(hypnos_http_requests_total{job="hypnos"}[10s])"#,
        now - 30_000,
        now,
        1_000,
    ));
    assert!(!m.is_empty(), "no rate of hypnos_http_requests_total");
}

// The protobuf exposition format (io.prometheus.client, metrics.proto): only what a native
// histogram needs.

#[derive(Clone, PartialEq, prost::Message)]
struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    help: Option<String>,
    /// `MetricType`: 4 is HISTOGRAM.
    #[prost(int32, optional, tag = "3")]
    r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    metric: Vec<ExpositionMetric>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExpositionMetric {
    #[prost(message, repeated, tag = "1")]
    label: Vec<LabelPair>,
    #[prost(message, optional, tag = "7")]
    histogram: Option<ExpositionHistogram>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LabelPair {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExpositionHistogram {
    #[prost(uint64, optional, tag = "1")]
    sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    sample_sum: Option<f64>,
    #[prost(sint32, optional, tag = "5")]
    schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    zero_count: Option<u64>,
    #[prost(message, repeated, tag = "9")]
    negative_span: Vec<ExpositionSpan>,
    #[prost(sint64, repeated, tag = "10")]
    negative_delta: Vec<i64>,
    #[prost(message, repeated, tag = "12")]
    positive_span: Vec<ExpositionSpan>,
    #[prost(sint64, repeated, tag = "13")]
    positive_delta: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExpositionSpan {
    #[prost(sint32, optional, tag = "1")]
    offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    length: Option<u32>,
}

/// The exposition of `test_latency_seconds` after `n` scrapes: a schema-0 native histogram
/// whose observations grow with `n` (positive buckets 1, 2 and 8: indexes 0, 1, 3; one
/// negative bucket -1; a zero bucket).
fn exposition(n: u64) -> Vec<u8> {
    let (b0, b1, b3, neg, zero) = (n, 2 * n, 3 * n, n, n);
    let count = b0 + b1 + b3 + neg + zero;
    let sum = b0 as f64 * 0.75 + b1 as f64 * 1.5 + b3 as f64 * 6.0 - neg as f64 * 0.75;
    let family = MetricFamily {
        name: Some("test_latency_seconds".into()),
        help: Some("A native histogram.".into()),
        r#type: Some(4),
        metric: vec![ExpositionMetric {
            label: vec![LabelPair {
                name: Some("path".into()),
                value: Some("/api".into()),
            }],
            histogram: Some(ExpositionHistogram {
                sample_count: Some(count),
                sample_sum: Some(sum),
                schema: Some(0),
                zero_threshold: Some(0.001),
                zero_count: Some(zero),
                negative_span: vec![ExpositionSpan {
                    offset: Some(0),
                    length: Some(1),
                }],
                negative_delta: vec![neg as i64],
                positive_span: vec![
                    ExpositionSpan {
                        offset: Some(0),
                        length: Some(2),
                    },
                    ExpositionSpan {
                        offset: Some(1),
                        length: Some(1),
                    },
                ],
                positive_delta: vec![b0 as i64, b1 as i64 - b0 as i64, b3 as i64 - b1 as i64],
            }),
        }],
    };
    family.encode_length_delimited_to_vec()
}

/// Serves `exposition(n)` on every request, `n` counting the requests.
fn serve_exposition() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&scrapes);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let body = exposition(n);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.google.protobuf; \
                 proto=io.prometheus.client.MetricFamily; encoding=delimited\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    (addr, scrapes)
}

/// Two `result` arrays of instant queries hold the same series and samples (values equal up to
/// rounding: Go and Rust may differ in the last bits of a computed float).
fn same_answer(ours: &Value, theirs: &Value) -> bool {
    let same_num = |a: &Value, b: &Value| {
        a.is_string() && b.is_string() && {
            let (a, b) = (parse_value(a), parse_value(b));
            same_float(a, b) || close(a, b)
        }
    };
    let (Some(a), Some(b)) = (ours.as_array(), theirs.as_array()) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            if x["metric"] != y["metric"] {
                return false;
            }
            if let (Some(xv), Some(yv)) = (x["value"].as_array(), y["value"].as_array()) {
                return xv[0] == yv[0] && same_num(&xv[1], &yv[1]);
            }
            let (xh, yh) = (&x["histogram"], &y["histogram"]);
            if xh[0] != yh[0]
                || !same_num(&xh[1]["count"], &yh[1]["count"])
                || !same_num(&xh[1]["sum"], &yh[1]["sum"])
            {
                return false;
            }
            let (Some(xb), Some(yb)) = (xh[1]["buckets"].as_array(), yh[1]["buckets"].as_array())
            else {
                return false;
            };
            xb.len() == yb.len()
                && xb
                    .iter()
                    .zip(yb)
                    .all(|(p, q)| p[0] == q[0] && (1..4).all(|i| same_num(&p[i], &q[i])))
        })
}

/// The `data.result` of a Prometheus HTTP API answer.
fn prometheus_query(prom: &str, query: &str, t_ms: i64) -> Value {
    let body: Value = http_client()
        .get(format!("http://{prom}/api/v1/query"))
        .query(&[("query", query), ("time", &secs(t_ms))])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    body["data"].clone()
}

#[test]
fn prometheus_remote_writes_native_histograms_to_hypnos() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let s = TestServer::start();
    let (target, scrapes) = serve_exposition();
    let dir = tempfile::tempdir().unwrap();
    let http = s.http_addr();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    scrape_interval: 1s
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: "http://{http}/api/v1/receive"
    send_native_histograms: true
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#
    );
    let (_prom, prom_addr) = start_prometheus(
        &bin,
        dir.path(),
        &config,
        &["--enable-feature=native-histograms"],
    );

    // Wait for a few scrapes to have been remote-written, then compare, at one time a few
    // seconds back, what Hypnos and Prometheus answer for the raw histogram and for
    // functions of it: they must be the same samples, bucket for bucket.
    let queries = [
        "test_latency_seconds",
        "histogram_count(test_latency_seconds)",
        "histogram_sum(rate(test_latency_seconds[10s]))",
        "histogram_fraction(0, 2, test_latency_seconds)",
    ];
    let compared = eventually(
        Duration::from_secs(120),
        "Hypnos answering native histogram queries as Prometheus does",
        || {
            if scrapes.load(Ordering::SeqCst) < 5 {
                return None;
            }
            let t = now_ms() - 3_000;
            for q in queries {
                let ours = s.query(Tenant::Default, q, t);
                let theirs = prometheus_query(&prom_addr, q, t);
                let mut ours = ours["result"].clone();
                // Hypnos adds the tenant label; Prometheus does not know tenants.
                for series in ours.as_array_mut()? {
                    series["metric"].as_object_mut()?.remove("tenant_id");
                }
                if ours.as_array()?.is_empty() || !same_answer(&ours, &theirs["result"]) {
                    return None;
                }
            }
            Some(t)
        },
    );
    // The raw sample really is a native histogram with buckets in Prometheus' JSON form.
    let raw = s.query(Tenant::Default, "test_latency_seconds", compared);
    let sample = &raw["result"][0];
    assert_eq!(sample["metric"]["path"], "/api", "{raw}");
    let buckets = sample["histogram"][1]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no histogram buckets in {raw}"));
    assert_eq!(
        buckets.len(),
        5,
        "negative, zero and three positive buckets: {raw}"
    );
}
