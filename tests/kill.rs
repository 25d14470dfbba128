//! The kill test: rounds of concurrent remote write by several senders, each round cut by
//! SIGKILL, the four kinds in turn: at a random moment (heads are cut every 700 ms and the
//! compactor of `hypnos all` runs every second, so either may be under way), just after an
//! admin flush was asked for, just after a head cut (while its block is written), or in the
//! middle of a compaction, before one of its writes to the bucket (the compactor's test hook,
//! feature `testsuite`, logs each write and pauses before it). After every restart
//! each acknowledged sample must be there exactly once with its value (native histograms
//! compared whole: count, sum, zero and positive and negative buckets), each acknowledged
//! request's exemplar must be there, and each request that was in flight at the kill must be
//! there whole or not at all.
//!
//! - `HYPNOS_KILL_ROUNDS`: rounds (default 10, as CI runs it; the README gives the 100-round
//!   command).
//! - `HYPNOS_KILL_SEED`: replays a run; every run prints its seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hypnos_schemas::remote::{BucketSpan, Exemplar, Histogram, Label, TimeSeries, histogram};
use serde_json::Value;

/// Concurrent senders, each owning its series (as Prometheus' shards do).
const SENDERS: usize = 3;
/// Float series per sender (each request carries one sample of each).
const FLOAT_SERIES: usize = 32;
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

/// Sender `k`'s timeline: each sender writes at its own position in time, [`SPREAD`] apart,
/// [`STEP`] further for each request.
fn ts(base: i64, k: usize, seq: u64) -> i64 {
    base + (k as i64) * SPREAD + (seq as i64) * STEP
}

/// Time between two requests of a sender. Large, so that the senders cross the compactor's
/// 8h windows in a few rounds: the compactor merges the blocks of each window (a block
/// holds the three senders, so it ends after its window once sender 0 is 2h into it) and
/// then leaves them, instead of merging everything again every round.
const STEP: i64 = 30_000;
/// Between two senders' positions in time.
const SPREAD: i64 = 3 * 3_600_000;
/// The level after 2h of the compactor.
const WINDOW: i64 = 8 * 3_600_000;

/// Histogram series `i` of request `seq` (schema 0: bucket k of the positive side is
/// (2^(k-1), 2^k], of the negative side [-2^k, -2^(k-1))): zero count, positive buckets 0, 1
/// and 3, negative bucket 1.
struct Hist {
    zero: u64,
    positive: [(i32, u64); 3],
    negative: [(i32, u64); 1],
    sum: f64,
}

const ZERO_THRESHOLD: f64 = 1e-128;

fn hist(i: usize, seq: u64) -> Hist {
    Hist {
        zero: seq % 3,
        positive: [(0, seq + i as u64 + 1), (1, 2), (3, seq % 5 + 1)],
        negative: [(1, i as u64 + 1)],
        sum: seq as f64 * 1.5 - i as f64,
    }
}

impl Hist {
    fn count(&self) -> u64 {
        self.zero
            + self.positive.iter().map(|b| b.1).sum::<u64>()
            + self.negative.iter().map(|b| b.1).sum::<u64>()
    }

    /// Remote write's form: spans and deltas of the bucket counts.
    fn encode(&self, t: i64) -> Histogram {
        let deltas = |counts: &[u64]| {
            let mut prev = 0i64;
            counts
                .iter()
                .map(|c| {
                    let d = *c as i64 - prev;
                    prev = *c as i64;
                    d
                })
                .collect::<Vec<i64>>()
        };
        Histogram {
            count: Some(histogram::Count::CountInt(self.count())),
            sum: self.sum,
            schema: 0,
            zero_threshold: ZERO_THRESHOLD,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(self.zero)),
            // Buckets 0 and 1, a gap of one, bucket 3.
            positive_spans: vec![
                BucketSpan {
                    offset: 0,
                    length: 2,
                },
                BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_deltas: deltas(&self.positive.map(|b| b.1)),
            negative_spans: vec![BucketSpan {
                offset: 1,
                length: 1,
            }],
            negative_deltas: deltas(&self.negative.map(|b| b.1)),
            timestamp: t,
            ..Default::default()
        }
    }

    /// The buckets the query API must show, as (boundary rule, lower, upper, count), sorted
    /// by lower bound.
    fn buckets(&self) -> Vec<(u64, f64, f64, f64)> {
        let up = |k: i32| 2f64.powi(k);
        let mut out: Vec<(u64, f64, f64, f64)> = self
            .negative
            .iter()
            .map(|(k, c)| (1, -up(*k), -up(k - 1), *c as f64))
            .chain(
                self.positive
                    .iter()
                    .map(|(k, c)| (0, up(k - 1), up(*k), *c as f64)),
            )
            .collect();
        if self.zero > 0 {
            out.push((3, -ZERO_THRESHOLD, ZERO_THRESHOLD, self.zero as f64));
        }
        out.sort_by(|a, b| a.1.total_cmp(&b.1));
        out
    }
}

/// Compares a histogram of the query API with the one sent, whole.
fn same_hist(got: &Value, want: &Hist) -> Result<(), String> {
    let num = |v: &Value| -> f64 {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_f64())
            .unwrap_or(f64::NAN)
    };
    if num(&got["count"]) != want.count() as f64 {
        return Err(format!("count {} (sent {})", got["count"], want.count()));
    }
    if num(&got["sum"]) != want.sum {
        return Err(format!("sum {} (sent {})", got["sum"], want.sum));
    }
    let mut buckets: Vec<(u64, f64, f64, f64)> = got["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b[0].as_u64().unwrap_or(99),
                num(&b[1]),
                num(&b[2]),
                num(&b[3]),
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.1.total_cmp(&b.1));
    if buckets != want.buckets() {
        return Err(format!("buckets {buckets:?} (sent {:?})", want.buckets()));
    }
    Ok(())
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
        s.histograms.push(hist(i, seq).encode(t));
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
    let range = end - first + STEP;
    let seq_of = |t: i64| ((t - first) / STEP) as u64;
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
                    if let Err(e) = same_hist(v, &self::hist(i, seq)) {
                        panic!("{ctx}: {metric}{{i={i_label}}} at {t}: {e}; got {v}");
                    }
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

/// How a round is cut.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    /// At a random moment.
    Random,
    /// Just after an admin flush was asked for.
    AdminFlush,
    /// Just after a head cut (every --block-duration), while its block is written.
    Head,
    /// In a compaction of `hypnos all`, before one of its writes to the bucket.
    Compaction,
}

/// SIGKILLs `server` at the first line of its log from now on for which `at` is true
/// (waiting up to 2 minutes for it); gives back that line and the log from then on.
fn kill_at(
    server: &mut TestServer,
    ctx: &str,
    at: impl FnMut(&str) -> bool + Send + 'static,
) -> (String, String) {
    let from = file_len(server.log_path());
    let done = Arc::new(AtomicBool::new(false));
    let watcher = kill_at_log_line(
        server.log_path().to_path_buf(),
        from,
        server.pid(),
        Arc::clone(&done),
        at,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !watcher.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    let line = watcher.join().expect("watcher");
    server.kill9();
    let log = server.log();
    let after = log.get(from as usize..).unwrap_or_default().to_string();
    let line = line.unwrap_or_else(|| {
        panic!(
            "{ctx}: the awaited log line did not come within 2 minutes\n{}",
            server.log_tail(30)
        )
    });
    let rest = after
        .split_once(line.as_str())
        .map_or(String::new(), |(_, r)| r.to_string());
    (line, rest)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let hooks = std::hint::black_box(cfg!(feature = "testsuite"));
    assert!(
        hooks,
        "the kill during a compaction needs the compactor's test hook: \
         cargo test --features hypnos/testsuite (README)"
    );
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
    // Two weeks back, at the start of an 8h window: 100 rounds stay in the past.
    let base = ((now_ms() - 14 * 24 * 3_600_000) / WINDOW) * WINDOW;
    let mut server = TestServer::with(
        Options::default()
            .arg("--block-duration")
            .arg("700ms")
            .arg("--compact-interval")
            .arg("1s")
            // Replaced blocks go 30 s after their deletion mark (a block's deletion is one
            // more step a kill can cut), and the bucket does not grow round after round.
            .arg("--delete-delay")
            .arg("30s")
            .env(COMPACTOR_PAUSE_VAR, "100ms"),
    );
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..SENDERS).map(|_| Default::default()).collect();
    let mut acked_total = 0usize;
    // Each kind of kill in turn, from a kind drawn at random.
    const KINDS: [Cut; 4] = [Cut::Random, Cut::AdminFlush, Cut::Head, Cut::Compaction];
    let first_kind = rng.below(KINDS.len());
    let mut kills: BTreeMap<Cut, usize> = BTreeMap::new();
    // Kills that cut a flush short (its WAL not yet truncated, or the admin flush unanswered).
    let mut flushes_cut = 0usize;
    for round in 0..rounds {
        let started = Instant::now();
        let cut = KINDS[(round + first_kind) % KINDS.len()];
        let ctx = format!("seed {seed}, round {round}");
        let delay = 50 + rng.below(1_950) as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let url = server.url("/api/v1/receive");
        let senders: Vec<_> = (0..SENDERS)
            .map(|k| {
                let (url, ledger, stop) = (url.clone(), Arc::clone(&ledgers[k]), Arc::clone(&stop));
                thread::spawn(move || send_loop(url, base, k, ledger, stop))
            })
            .collect();
        thread::sleep(Duration::from_millis(delay));
        let how = match cut {
            Cut::Random => {
                server.kill9();
                format!("after {delay} ms")
            }
            Cut::AdminFlush => {
                let flush_url = server.url("/api/v1/admin/flush");
                let flush = thread::spawn(move || {
                    reqwest::blocking::Client::new()
                        .post(flush_url)
                        .send()
                        .is_ok_and(|r| r.status().is_success())
                });
                thread::sleep(Duration::from_millis(rng.below(40) as u64));
                server.kill9();
                if flush.join().expect("flush thread") {
                    format!("after {delay} ms, just after an admin flush")
                } else {
                    flushes_cut += 1;
                    format!("after {delay} ms, during an admin flush")
                }
            }
            Cut::Head => {
                let (_, rest) = kill_at(&mut server, &ctx, |l| l.contains("cut heads"));
                if rest.contains("flushed heads and truncated") {
                    format!("after {delay} ms and a head cut, its flush done")
                } else {
                    flushes_cut += 1;
                    format!("after {delay} ms and a head cut, during its flush")
                }
            }
            Cut::Compaction => {
                // The `nth` write of the first compaction to write something else than its
                // lease from now on.
                let nth = rng.below(6) as u64;
                let mut first = None;
                let (line, _) = kill_at(&mut server, &ctx, move |l| {
                    let Some(step) = compactor_step(l) else {
                        return false;
                    };
                    if first.is_none() && !l.contains("compactor.lock") {
                        first = Some(step);
                    }
                    first.is_some_and(|f| step == f + nth)
                });
                // `op="put" path=tenants/<tenant>/<block>/meta.json`: `put <block>/meta.json`.
                let op = line.split("op=\"").nth(1).and_then(|r| r.split('"').next());
                let path = line.split("path=").nth(1).unwrap_or("?");
                let file = path.rsplitn(3, '/').take(2).collect::<Vec<_>>();
                let file = file.into_iter().rev().collect::<Vec<_>>().join("/");
                format!(
                    "after {delay} ms, in a compaction, before its write {} {file}",
                    op.unwrap_or("?")
                )
            }
        };
        *kills.entry(cut).or_default() += 1;
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().expect("sender panicked");
        }
        // A compactor killed under its lease holds the bucket for 5 minutes (the lease's
        // term; the restarted process is another owner): expire it as time would.
        let _ = std::fs::remove_file(server.bucket_dir().join("compactor.lock"));
        server.restart();
        let mut acked = 0;
        for (k, l) in ledgers.iter().enumerate() {
            acked += check_sender(&server, base, k, &l.lock().unwrap(), seed, round);
        }
        acked_total = acked;
        println!(
            "round {round}: killed {how}; {acked} acknowledged samples, all present once ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    let unacked: usize = ledgers
        .iter()
        .map(|l| l.lock().unwrap().unacked.len())
        .sum();
    let blocks = server.log().matches("wrote head block").count();
    let compactions = server.log().matches("compacted blocks").count();
    let n = |c: Cut| kills.get(&c).copied().unwrap_or(0);
    println!(
        "kill test: {rounds} rounds ({} at a random moment, {} just after an admin flush, {} just after a head cut, {} in a compaction; {flushes_cut} cut a flush short), {blocks} head blocks written and {compactions} compactions made in all; {acked_total} acknowledged samples, 0 lost, 0 duplicated; {unacked} requests in flight at a kill, each whole or absent; seed {seed}",
        n(Cut::Random),
        n(Cut::AdminFlush),
        n(Cut::Head),
        n(Cut::Compaction),
    );
}
