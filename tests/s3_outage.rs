//! The object store down while heads are cut and flushed, against the real binary and a
//! real S3 API (moto, as in `tests/s3.rs`) behind a relay the test cuts: writes go on being
//! acknowledged, queries go on answering from the heads, `/metrics` and the log say what
//! is happening, and once S3 is back the uploads resume; nothing acknowledged is lost or
//! duplicated, before and after a SIGKILL.
//!
//! The outage lasts 25 s (`HYPNOS_OUTAGE_SECS` to change it); a one-minute run:
//! `HYPNOS_OUTAGE_SECS=60 cargo test --features hypnos/testsuite --test s3_outage -- --nocapture`.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::moto::{Moto, Relay};
use common::*;
use hypnos_schemas::remote::WriteRequest;

const BUCKET: &str = "outage-bucket";
const METRIC: &str = "outage_test";
const SERIES: usize = 20;
/// Heads are cut (and flushed) this often.
const BLOCK_DURATION: &str = "3s";

fn outage_secs() -> u64 {
    std::env::var("HYPNOS_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

fn value(i: usize, t: i64) -> f64 {
    (t % 100_000_000) as f64 + i as f64 / 100.0
}

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

/// Every sample of [`METRIC`] in `[from, to]`, by job.
fn stored(s: &TestServer, from: i64, to: i64) -> BTreeMap<String, Vec<(i64, f64)>> {
    let q = format!("{METRIC}[{}ms]", to - from + 1);
    matrix(&s.query(Tenant::Default, &q, to))
        .into_iter()
        .map(|(m, pts)| (m["job"].clone(), pts))
        .collect()
}

fn expected(acked: &[i64]) -> BTreeMap<String, Vec<(i64, f64)>> {
    if acked.is_empty() {
        return BTreeMap::new();
    }
    (0..SERIES)
        .map(|i| {
            (
                format!("job-{i:02}"),
                acked.iter().map(|&t| (t, value(i, t))).collect(),
            )
        })
        .collect()
}

fn metric(s: &TestServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200);
    // A labelled counter is exported from its first increment on.
    metric_value(&body, name, labels).unwrap_or(0.0)
}

/// The sum of `num_samples` over every block's `meta.json` in the bucket, and the blocks.
fn samples_in_bucket(moto: &Moto) -> (u64, usize) {
    let metas: Vec<String> = moto
        .keys(BUCKET)
        .into_iter()
        .filter(|k| k.ends_with("/meta.json"))
        .collect();
    let total = metas
        .iter()
        .map(|k| {
            let json: serde_json::Value = serde_json::from_slice(&moto.get(BUCKET, k)).unwrap();
            json["num_samples"].as_u64().unwrap()
        })
        .sum();
    (total, metas.len())
}

#[test]
fn an_s3_outage_loses_and_duplicates_nothing_and_is_visible() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket(BUCKET);
    let relay = Relay::start(moto.port);
    let opts = Options::default()
        .arg("--objstore-url")
        .arg(format!("s3://{BUCKET}/o"))
        .arg("--block-duration")
        .arg(BLOCK_DURATION)
        .arg("--compact-interval")
        .arg("0s")
        .env("AWS_ENDPOINT_URL", relay.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    let mut s = TestServer::with(opts);
    let outage = Duration::from_secs(outage_secs());

    let acked = Mutex::new(Vec::<i64>::new());
    let refused = Mutex::new(Vec::<(u16, String)>::new());
    let stop = AtomicBool::new(false);
    let first = now_ms();
    let mut figures = Vec::new();
    std::thread::scope(|scope| {
        // The sender stops however this closure ends (a failed assertion included).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = StopOnDrop(&stop);
        // One sender, a request every 100 ms, each sample stamped with the wall clock.
        scope.spawn(|| {
            let mut last = 0;
            while !stop.load(Ordering::SeqCst) {
                let t = now_ms().max(last + 1);
                last = t;
                let (status, body) = s.send(Tenant::Default, &round(t));
                if status == 204 {
                    acked.lock().unwrap().push(t);
                } else {
                    refused.lock().unwrap().push((status, body));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });

        // Before: blocks reach S3.
        eventually(Duration::from_secs(30), "a first block in S3", || {
            (metric(&s, "hypnos_flushed_blocks_total", &[]) >= 1.0).then_some(())
        });
        let failures_before = metric(&s, "hypnos_upload_failures_total", &[]);
        assert_eq!(failures_before, 0.0);

        // The outage.
        relay.cut();
        let cut_at = now_ms();
        let started = Instant::now();
        let mut queries = 0;
        let mut saw_waiting = false;
        while started.elapsed() < outage {
            std::thread::sleep(Duration::from_secs(2));
            // Queries answer from the heads, those whose upload failed included: every
            // sample acknowledged since the outage began is there.
            let from = cut_at + 2_000;
            let since: Vec<i64> = acked
                .lock()
                .unwrap()
                .iter()
                .copied()
                .filter(|t| *t >= from)
                .collect();
            if let Some(&to) = since.last() {
                assert_eq!(
                    stored(&s, from, to),
                    expected(&since),
                    "query during the outage"
                );
                queries += 1;
            }
            if metric(&s, "hypnos_upload_failures_total", &[]) > 0.0 {
                let unflushed = metric(&s, "hypnos_unflushed_bytes", &[]);
                let oldest = metric(&s, "hypnos_oldest_unflushed_timestamp_seconds", &[]);
                if unflushed > 0.0 && oldest > 0.0 {
                    assert!(
                        oldest * 1000.0 <= cut_at as f64 + 1_000.0,
                        "oldest unflushed sample {oldest} s is after the outage began"
                    );
                    saw_waiting = true;
                }
            }
        }
        assert!(queries > 0, "no query ran during the outage");
        let failures = metric(&s, "hypnos_upload_failures_total", &[]);
        assert!(failures > 0.0, "no failed upload seen during the outage");
        assert!(
            saw_waiting,
            "no bytes waiting / oldest unflushed shown during the outage"
        );
        let unflushed_at_end = metric(&s, "hypnos_unflushed_bytes", &[]);
        let oldest_at_end = metric(&s, "hypnos_oldest_unflushed_timestamp_seconds", &[]);
        let failed_flushes = metric(&s, "hypnos_flushes_total", &[("result", "failure")]);
        let log = s.log();
        let warn_lines = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("uploading a head block failed"))
            .count();
        let retry_lines = log
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    && l.contains("flush failed; the heads and the write-ahead log are kept")
            })
            .count();
        assert!(warn_lines > 0, "no WARN line: {}", s.log_tail(20));
        figures.push(format!(
            "during a {outage:?} outage: {failures} failed uploads, {failed_flushes} failed \
             flushes, {warn_lines} WARN lines for failed uploads and {retry_lines} for retries; \
             at its end hypnos_unflushed_bytes={unflushed_at_end}, \
             hypnos_oldest_unflushed_timestamp_seconds={oldest_at_end} ({:.1} s before the end), \
             {queries} queries answered from the heads",
            now_ms() as f64 / 1000.0 - oldest_at_end
        ));

        // S3 is back: the retries upload the waiting heads.
        relay.restore();
        let back = Instant::now();
        eventually(Duration::from_secs(120), "the uploads to resume", || {
            (metric(&s, "hypnos_oldest_unflushed_timestamp_seconds", &[]) == 0.0
                && metric(&s, "hypnos_unflushed_bytes", &[]) == 0.0)
                .then_some(())
        });
        figures.push(format!(
            "uploads caught up {:?} after S3 came back",
            back.elapsed()
        ));
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
    });

    let refused = refused.into_inner().unwrap();
    assert!(refused.is_empty(), "writes refused: {refused:?}");
    let acked = acked.into_inner().unwrap();
    let last = *acked.last().unwrap();
    // Nothing lost, nothing twice: heads and blocks answer every sample exactly once.
    assert_eq!(stored(&s, first, last), expected(&acked));

    // Once everything is flushed, the bucket holds each sample exactly once.
    s.flush();
    let (in_bucket, blocks) = samples_in_bucket(&moto);
    let acked_samples = (acked.len() * SERIES) as u64;
    assert_eq!(
        in_bucket, acked_samples,
        "samples in the bucket's blocks vs acknowledged"
    );
    // After a SIGKILL the blocks (and what the log replays) still answer each sample once.
    s.kill9();
    s.restart();
    assert_eq!(stored(&s, first, last), expected(&acked));
    figures.push(format!(
        "{acked_samples} samples acknowledged ({} requests, none refused), lost 0, \
         duplicated 0; {in_bucket} samples in {blocks} blocks in S3",
        acked.len()
    ));
    for f in figures {
        println!("s3_outage: {f}");
    }
}
