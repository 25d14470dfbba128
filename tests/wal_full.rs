//! A full write-ahead log against the real binary: with a small `--wal.max-size`, writes
//! get 503 naming the cause, nothing acknowledged is lost (before or after a SIGKILL), and
//! writing resumes by itself once the early flush has truncated the log.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use hypnos_schemas::remote::WriteRequest;

const SERIES: usize = 40;
const METRIC: &str = "wal_full_test";

/// One sample for each of [`SERIES`] series at `t`; the value tells series and time apart.
fn round(t: i64) -> WriteRequest {
    request(
        (0..SERIES)
            .map(|i| {
                series(
                    METRIC,
                    &[("job", &format!("job-{i:02}"))],
                    &[(t, value(i, t))],
                )
            })
            .collect(),
    )
}

fn value(i: usize, t: i64) -> f64 {
    (t % 1_000_000) as f64 + i as f64 / 100.0
}

/// Every sample of [`METRIC`] in `[from, to]`, by job.
fn stored(s: &TestServer, from: i64, to: i64) -> BTreeMap<String, Vec<(i64, f64)>> {
    let window = (to - from) / 1000 + 1;
    let data = s.query(Tenant::Default, &format!("{METRIC}[{window}s]"), to);
    matrix(&data)
        .into_iter()
        .map(|(m, pts)| (m["job"].clone(), pts))
        .collect()
}

fn expected(acked: &[i64]) -> BTreeMap<String, Vec<(i64, f64)>> {
    (0..SERIES)
        .map(|i| {
            (
                format!("job-{i:02}"),
                acked.iter().map(|&t| (t, value(i, t))).collect(),
            )
        })
        .collect()
}

fn metrics(s: &TestServer) -> String {
    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200);
    body
}

#[test]
fn a_full_wal_refuses_writes_with_503_loses_nothing_and_resumes() {
    let mut s = TestServer::with(Options::default().arg("--wal.max-size").arg("32KiB"));
    let t0 = base_time();
    let mut acked = Vec::new();
    let mut t = t0;
    // Write until the log is full.
    let body = loop {
        let (status, body) = s.send(Tenant::Default, &round(t));
        match status {
            204 => acked.push(t),
            503 => break body,
            other => panic!("write answered {other}: {body}"),
        }
        t += 1_000;
        assert!(acked.len() < 10_000, "the WAL never filled up");
    };
    assert!(
        body.starts_with("WAL full: ") && body.contains(" of 32.0 KiB used (--wal.max-size)"),
        "{body}"
    );
    assert!(!acked.is_empty());
    let m = metrics(&s);
    assert!(
        metric_value(
            &m,
            "hypnos_wal_full_rejections_total",
            &[("cause", "max_size")]
        )
        .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "hypnos_receive_rejected_total",
            &[("reason", "wal_full")]
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert_eq!(metric_value(&m, "hypnos_wal_max_bytes", &[]), Some(32768.0));
    assert!(metric_value(&m, "hypnos_wal_bytes", &[]).is_some_and(|v| v <= 32768.0));
    assert!(
        s.log().contains("write-ahead log at its size budget"),
        "{}",
        s.log_tail(20)
    );

    // Every acknowledged sample is there, once.
    let last = *acked.last().unwrap();
    assert_eq!(stored(&s, t0, last), expected(&acked));

    // The refusal started an early flush: the same request is taken again without any
    // action from outside.
    let started = Instant::now();
    loop {
        let (status, body) = s.send(Tenant::Default, &round(t));
        match status {
            204 => break,
            503 => assert!(
                started.elapsed() < Duration::from_secs(30),
                "writes did not resume: {body}\n{}",
                s.log_tail(30)
            ),
            other => panic!("write answered {other}: {body}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    acked.push(t);
    println!(
        "wal_full: {} requests ({} samples) acknowledged before the WAL filled; writes resumed {:?} after the first 503",
        acked.len() - 1,
        (acked.len() - 1) * SERIES,
        started.elapsed()
    );
    // And it keeps filling and emptying under a steady load.
    let mut refused = 0;
    for _ in 0..60 {
        t += 1_000;
        loop {
            let (status, body) = s.send(Tenant::Default, &round(t));
            match status {
                204 => break,
                503 => {
                    assert!(body.starts_with("WAL full: "), "{body}");
                    refused += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => panic!("write answered {other}: {body}"),
            }
        }
        acked.push(t);
    }
    println!("wal_full: 60 more requests acknowledged, {refused} 503s meanwhile");
    let last = *acked.last().unwrap();
    assert_eq!(stored(&s, t0, last), expected(&acked));

    // A SIGKILL loses nothing acknowledged: blocks plus the replayed log hold it all, once.
    s.kill9();
    s.restart();
    assert_eq!(stored(&s, t0, last), expected(&acked));
    println!(
        "wal_full: {} samples acknowledged, all present exactly once after SIGKILL and restart",
        acked.len() * SERIES
    );
}

#[test]
fn a_bad_wal_size_is_refused_at_startup() {
    let out = std::process::Command::new(BIN)
        .args(["all", "--wal.max-size", "12 parsecs"])
        .output()
        .expect("run hypnos");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--wal.max-size") && err.contains("unknown unit"),
        "{err}"
    );
}
