//! The kill test: rounds of concurrent remote write by several senders, each round cut by
//! SIGKILL at a random moment (some while a head flush or a compaction runs); after every
//! restart each acknowledged sample must be there exactly once with its value, and each
//! request that was in flight at the kill must be there whole or not at all.
//!
//! - `HYPNOS_KILL_ROUNDS`: rounds (default 10, as CI runs it; the README gives the 100-round
//!   command).
//! - `HYPNOS_KILL_SEED`: replays a run; every run prints its seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use hypnos_schemas::remote::{BucketSpan, Exemplar, Histogram, Label, TimeSeries, histogram};
use serde_json::Value;

/// Concurrent senders, each owning its series (as Prometheus' shards do).
const SENDERS: usize = 3;
/// Float series per sender (each request carries one sample of each).
const FLOAT_SERIES: usize = 120;
/// Native-histogram series per sender.
const HIST_SERIES: usize = 8;

/// What one sender sent and what was acknowledged, across rounds.
#[derive(Default)]
struct Ledger {
    /// The next request's sequence number.
    next: u64,
    acked: BTreeSet<u64>,
    /// Sent but not acknowledged (the server died under it): may be stored, whole or not.
    unacked: BTreeSet<u64>,
}

/// Sender `k`'s timeline: each sender writes at its own position in time, one second per
/// request.
fn ts(base: i64, k: usize, seq: u64) -> i64 {
    base - (k as i64) * 20 * 60_000 + (seq as i64) * 1_000
}

fn float_value(k: usize, i: usize, seq: u64) -> f64 {
    (seq * 1_000 + i as u64) as f64 + (k as f64) / 8.0
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

/// Sender `k`'s request `seq`: a sample of each float series, a histogram of each histogram
/// series, an exemplar on the first float series.
fn build(base: i64, k: usize, seq: u64) -> Vec<u8> {
    let t = ts(base, k, seq);
    let mut out: Vec<TimeSeries> = (0..FLOAT_SERIES)
        .map(|i| {
            series(
                &format!("kill_f{k}"),
                &[("i", &format!("{i:03}"))],
                &[(t, float_value(k, i, seq))],
            )
        })
        .collect();
    out[0].exemplars.push(Exemplar {
        labels: vec![label("trace_id", &format!("{k}-{seq}"))],
        value: seq as f64,
        timestamp: t,
    });
    for i in 0..HIST_SERIES {
        let mut s = series(&format!("kill_h{k}"), &[("i", &format!("{i:03}"))], &[]);
        s.histograms.push(Histogram {
            count: Some(histogram::Count::CountInt(seq + i as u64)),
            sum: seq as f64,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 1,
            }],
            positive_deltas: vec![(seq + i as u64) as i64],
            timestamp: t,
            ..Default::default()
        });
        out.push(s);
    }
    encode(&request(out))
}

/// Sends sender `k`'s requests to `url` until `stop` or the server dies.
fn send_loop(url: String, base: i64, k: usize, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    while !stop.load(Ordering::Relaxed) {
        let seq = {
            let mut l = ledger.lock().unwrap();
            let s = l.next;
            l.next += 1;
            s
        };
        let mut rb = client.post(&url).body(build(base, k, seq));
        for (h, v) in RW_HEADERS {
            rb = rb.header(h, v);
        }
        let status = rb.send().map(|r| r.status().as_u16());
        let mut l = ledger.lock().unwrap();
        match status {
            Ok(204) => {
                l.acked.insert(seq);
            }
            Ok(s) if s < 500 && s != 429 => {
                panic!("sender {k}: request {seq} refused with {s}")
            }
            _ => {
                // No answer (the kill) or a retryable error: stored whole or not at all.
                l.unacked.insert(seq);
                return;
            }
        }
    }
}

/// The samples of `metric` per series (`i` label), over the whole timeline.
fn read(
    s: &TestServer,
    metric: &str,
    end: i64,
    range_ms: i64,
) -> BTreeMap<String, Vec<(i64, Value)>> {
    let (status, v) = s.api(
        Tenant::Default,
        "query",
        &[
            ("query", format!("{metric}[{range_ms}ms]")),
            ("time", secs(end)),
        ],
    );
    assert_eq!(status, 200, "{metric}: {v}");
    let mut out = BTreeMap::new();
    for r in v["data"]["result"].as_array().expect("matrix") {
        let i = r["metric"]["i"].as_str().expect("label i").to_string();
        let mut points: Vec<(i64, Value)> = Vec::new();
        for key in ["values", "histograms"] {
            for p in r[key].as_array().into_iter().flatten() {
                points.push((parse_ts(&p[0]), p[1].clone()));
            }
        }
        points.sort_by_key(|p| p.0);
        out.insert(i, points);
    }
    out
}

/// Checks everything sender `k` got acknowledged; returns how many samples that was.
fn check_sender(
    s: &TestServer,
    base: i64,
    k: usize,
    ledger: &Ledger,
    seed: u64,
    round: usize,
) -> usize {
    let ctx = format!("seed {seed}, round {round}, sender {k}");
    let first = ts(base, k, 0);
    let end = ts(base, k, ledger.next);
    let range = end - first + 1_000;
    let seq_of = |t: i64| ((t - first) / 1_000) as u64;
    let mut checked = 0;
    // Per in-flight request: how many series hold it (whole or nothing).
    let mut partial: BTreeMap<u64, usize> = BTreeMap::new();
    for (metric, n, hist) in [
        (format!("kill_f{k}"), FLOAT_SERIES, false),
        (format!("kill_h{k}"), HIST_SERIES, true),
    ] {
        let got = read(s, &metric, end, range);
        for (i_label, points) in &got {
            let i: usize = i_label.parse().expect("i");
            let mut seen = BTreeSet::new();
            for (t, v) in points {
                let seq = seq_of(*t);
                assert!(
                    seen.insert(seq),
                    "{ctx}: {metric}{{i={i_label}}} has {t} twice"
                );
                assert!(
                    ledger.acked.contains(&seq) || ledger.unacked.contains(&seq),
                    "{ctx}: {metric}{{i={i_label}}} holds a sample at {t} that was never sent"
                );
                if hist {
                    let count = v["count"].as_str().expect("histogram count");
                    assert_eq!(
                        count,
                        (seq + i as u64).to_string(),
                        "{ctx}: {metric} at {t}"
                    );
                } else {
                    let got = parse_value(v);
                    assert_eq!(
                        got,
                        float_value(k, i, seq),
                        "{ctx}: {metric}{{i={i_label}}} at {t}"
                    );
                }
                if ledger.unacked.contains(&seq) {
                    *partial.entry(seq).or_default() += 1;
                }
            }
            for seq in &ledger.acked {
                assert!(
                    seen.contains(seq),
                    "{ctx}: {metric}{{i={i_label}}} lost the acknowledged sample at {}",
                    ts(base, k, *seq)
                );
                checked += 1;
            }
        }
        if !ledger.acked.is_empty() {
            assert_eq!(got.len(), n, "{ctx}: series of {metric}");
        }
    }
    // Exemplars ride in the same WAL records: each acknowledged request's is there.
    let (status, v) = s.api(
        Tenant::Default,
        "query_exemplars",
        &[
            ("query", format!("kill_f{k}")),
            ("start", secs(first)),
            ("end", secs(end)),
        ],
    );
    assert_eq!(status, 200, "{ctx}: query_exemplars: {v}");
    let traces: BTreeSet<String> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(String::from))
        .collect();
    for seq in &ledger.acked {
        assert!(
            traces.contains(&format!("{k}-{seq}")),
            "{ctx}: the exemplar of acknowledged request {seq} is missing"
        );
    }
    for (seq, n) in partial {
        assert_eq!(
            n,
            FLOAT_SERIES + HIST_SERIES,
            "{ctx}: request {seq}, in flight at the kill, is stored in {n} of {} series (not all or nothing)",
            FLOAT_SERIES + HIST_SERIES
        );
    }
    checked
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("HYPNOS_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("HYPNOS_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| now_ms() as u64 | 1);
    println!("kill test: {rounds} rounds, seed {seed} (replay with HYPNOS_KILL_SEED={seed})");
    let mut rng = Rng(seed);
    // Senders start hours back, so that even 100 rounds stay in the past.
    let base = (now_ms() / 1_000) * 1_000 - 3 * 3_600_000;
    let mut server = TestServer::with(
        Options::default()
            .arg("--compact-interval")
            .arg("2s")
            .arg("--block-duration")
            .arg("2h"),
    );
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..SENDERS).map(|_| Default::default()).collect();
    let (mut acked_total, mut kills_during_flush) = (0usize, 0usize);
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let url = server.url("/api/v1/receive");
        let senders: Vec<_> = (0..SENDERS)
            .map(|k| {
                let (url, ledger, stop) = (url.clone(), Arc::clone(&ledgers[k]), Arc::clone(&stop));
                thread::spawn(move || send_loop(url, base, k, ledger, stop))
            })
            .collect();
        let delay = 50 + rng.below(1_450) as u64;
        // A third of the rounds cut a head flush (and so a block upload) short.
        let flush = rng.below(3) == 0;
        thread::sleep(Duration::from_millis(delay));
        if flush {
            kills_during_flush += 1;
            let flush_url = server.url("/api/v1/admin/flush");
            thread::spawn(move || {
                let _ = reqwest::blocking::Client::new().post(flush_url).send();
            });
            thread::sleep(Duration::from_millis(rng.below(40) as u64));
        }
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().expect("sender panicked");
        }
        server.restart();
        let mut acked = 0;
        for (k, l) in ledgers.iter().enumerate() {
            acked += check_sender(&server, base, k, &l.lock().unwrap(), seed, round);
        }
        acked_total = acked;
        println!(
            "round {round}: killed after {delay} ms{}; {acked} acknowledged samples, all present once",
            if flush { " during a flush" } else { "" }
        );
    }
    let unacked: usize = ledgers
        .iter()
        .map(|l| l.lock().unwrap().unacked.len())
        .sum();
    println!(
        "kill test: {rounds} rounds ({kills_during_flush} during a flush), {acked_total} acknowledged samples, 0 lost, 0 duplicated; {unacked} requests in flight at a kill, each whole or absent"
    );
}
