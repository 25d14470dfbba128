//! A real Prometheus (Debian's `prometheus` package) scrapes Hypnos' own `/metrics` and
//! remote-writes to Hypnos; the scraped series must arrive and be queryable. Without the
//! program the test is skipped, except under `CI=true`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

#[test]
fn prometheus_scrapes_and_remote_writes_to_hypnos() {
    let bin = prometheus_bin();
    if !require(
        bin.is_some(),
        "prometheus (Debian package `prometheus`)",
        INSTALL,
    ) {
        return;
    }
    let bin = bin.unwrap();
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
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let prom_addr = free_addr();
    let log = dir.path().join("prometheus.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let _prom = Prometheus { child, log };

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
