//! A `hypnos compact` process over the bucket of a running `hypnos all`, cut by SIGKILL at a
//! chosen step of its run (between two of its writes to the bucket: the lease, a merged
//! block's data files, its meta.json, the deletion marks of its inputs), round after round,
//! while `all` keeps ingesting, flushing and answering: no answer ever shows a sample twice or
//! misses an acknowledged one, during the runs, after each kill, after a crash and restart of
//! `all` (its catalog read afresh from what the killed compactor left), and after a run that
//! completes.
//!
//! The steps come from the compactor's test hook (feature `testsuite`, the variable
//! `HYPNOS_TEST_COMPACTOR_PAUSE`): it logs each write it is about to make and waits before
//! making it, so the kill lands exactly between two writes. The compactor inside `hypnos all`
//! killed the same way (the whole server with it) is a kind of round of `tests/kill.rs`.
//!
//! - `HYPNOS_COMPACT_KILL_ROUNDS`: rounds (default 8).
//! - `HYPNOS_COMPACT_KILL_SEED`: replays a run; every run prints its seed.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;

/// Series written by every request (one sample each).
const SERIES: usize = 40;
/// Requests per round; each round flushes twice, so the compactor has blocks to merge.
const REQUESTS: u64 = 30;
/// The level after 2h: windows of 8h are merged once closed.
const WINDOW: i64 = 8 * 3_600_000;

fn value(i: usize, seq: u64) -> f64 {
    (seq * 100 + i as u64) as f64
}

/// `hypnos compact` (one run) over the bucket of `s`, pausing before each bucket write,
/// logging to `log`.
fn spawn_compactor(s: &TestServer, log: &Path) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("compact log");
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str()
            && (k.starts_with("HYPNOS_") || k.starts_with("AWS_"))
        {
            cmd.env_remove(k);
        }
    }
    cmd.arg("compact")
        .arg("--data-dir")
        .arg(s.data_dir())
        .env(COMPACTOR_PAUSE_VAR, "250ms")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn hypnos compact")
}

/// Every sample of `kc` must be the acknowledged one of its timestamp, once, and every
/// acknowledged sample must be there.
fn check(s: &TestServer, base: i64, acked: u64, ctx: &str) {
    let end = base + acked as i64 * 1_000;
    let data = s.query(
        Tenant::Default,
        &format!("kc[{}ms]", acked as i64 * 1_000 + 1_000),
        end,
    );
    let got: BTreeMap<String, Vec<(i64, f64)>> = matrix(&data)
        .into_iter()
        .map(|(m, p)| (m["i"].clone(), p))
        .collect();
    assert_eq!(got.len(), SERIES, "{ctx}: series");
    for (i_label, points) in &got {
        let i: usize = i_label.parse().expect("i");
        let want: Vec<(i64, f64)> = (0..acked)
            .map(|seq| (base + seq as i64 * 1_000, value(i, seq)))
            .collect();
        assert_eq!(points, &want, "{ctx}: kc{{i={i_label}}}");
    }
}

/// The writes the compactor hook logged in `log`, short: `put meta.json`, `delete
/// compactor.lock`, ...
fn writes(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| compactor_step(l).is_some())
        .map(|l| {
            let op = l
                .split("op=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?");
            let path = l.split("path=").nth(1).unwrap_or("?").trim();
            let file = path.rsplit('/').next().unwrap_or(path);
            format!("{op} {file}")
        })
        .collect()
}

/// The block folders of the bucket holding a `meta.json`, and those without (partial).
fn block_folders(bucket: &Path) -> (usize, usize) {
    let (mut whole, mut partial) = (0, 0);
    for tenant in std::fs::read_dir(bucket.join("tenants"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if !tenant.path().is_dir() {
            continue;
        }
        for block in std::fs::read_dir(tenant.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if !block.path().is_dir() {
                continue;
            }
            if block.path().join("meta.json").exists() {
                whole += 1;
            } else {
                partial += 1;
            }
        }
    }
    (whole, partial)
}

#[test]
fn a_compactor_killed_at_each_step_never_shows_a_sample_twice_or_misses_one() {
    let hooks = std::hint::black_box(cfg!(feature = "testsuite"));
    assert!(
        hooks,
        "the compactor's pause before each write is a test hook: \
         cargo test --features hypnos/testsuite (README)"
    );
    let rounds: usize = std::env::var("HYPNOS_COMPACT_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("HYPNOS_COMPACT_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| now_ms() as u64 | 1);
    println!(
        "compactor kill test: {rounds} rounds, seed {seed} (replay with HYPNOS_COMPACT_KILL_SEED={seed})"
    );
    let mut rng = Rng(seed);
    // All data in one 8h window, a day back; a block after it closes the window, so that
    // the level-0 blocks of every round are merged.
    let base = ((now_ms() - 24 * 3_600_000) / WINDOW) * WINDOW;
    // The compactor of `all` is off: the separate process is the only one.
    let mut s = TestServer::with(Options::default().arg("--compact-interval").arg("0s"));
    s.write(
        Tenant::Default,
        &request(vec![series(
            "kc_closer",
            &[],
            &[(base + WINDOW + 60_000, 1.0)],
        )]),
    );
    s.flush();
    let mut seq = 0u64;
    let write = |s: &TestServer, seq: &mut u64| {
        let t = base + *seq as i64 * 1_000;
        let req = request(
            (0..SERIES)
                .map(|i| series("kc", &[("i", &format!("{i:03}"))], &[(t, value(i, *seq))]))
                .collect(),
        );
        s.write(Tenant::Default, &req);
        *seq += 1;
    };
    // Writes in a complete run, as far as seen; the kill step is drawn up to a bit past it,
    // so that some runs complete.
    let mut run_len = 12u64;
    let (mut queries, mut kills, mut completed) = (0usize, 0usize, 0usize);
    for round in 0..rounds {
        let ctx = format!("seed {seed}, round {round}");
        for r in 0..REQUESTS {
            write(&s, &mut seq);
            if r == REQUESTS / 2 || r == REQUESTS - 1 {
                s.flush();
            }
        }
        let log = s.work_dir().join(format!("compact-{round}.log"));
        let target = 1 + rng.below(run_len as usize + 2) as u64;
        let mut compactor = spawn_compactor(&s, &log);
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = kill_at_log_line(log.clone(), 0, compactor.id(), Arc::clone(&stop), {
            move |line| compactor_step(line) == Some(target)
        });
        let started = Instant::now();
        // Ingesting and answering while it runs, until it is killed or done.
        let status = loop {
            write(&s, &mut seq);
            check(&s, base, seq, &format!("{ctx}, during the compactor run"));
            queries += 1;
            if let Some(st) = compactor.try_wait().expect("compactor status") {
                break st;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{ctx}: the compactor run takes more than 5 minutes"
            );
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let killed = watcher.join().expect("watcher");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().filter_map(compactor_step).max().unwrap_or(0);
        let what = match &killed {
            Some(line) => {
                kills += 1;
                assert_eq!(
                    last, target,
                    "{ctx}: the compactor went on after the step it was killed at"
                );
                // Its lease would hold the bucket for 5 minutes: expire it as time would.
                let _ = std::fs::remove_file(s.bucket_dir().join("compactor.lock"));
                let op = writes(line).pop().unwrap_or_default();
                format!("killed before write {target} ({op})")
            }
            None => {
                assert!(status.success(), "{ctx}: the compactor run failed:\n{text}");
                completed += 1;
                run_len = run_len.max(last);
                format!("completed after {last} writes")
            }
        };
        check(
            &s,
            base,
            seq,
            &format!("{ctx}, after the compactor was {what}"),
        );
        // `all` crashes too, and reads the bucket afresh as the compactor left it.
        s.kill9();
        s.restart();
        check(&s, base, seq, &format!("{ctx}, after a restart of `all`"));
        let (whole, partial) = block_folders(&s.bucket_dir());
        println!(
            "round {round}: compactor {what}; {seq} requests acknowledged; bucket: {whole} blocks, {partial} partial folders; writes made: {:?}",
            writes(&text)
        );
    }
    // A run to the end, then a restart of `all`.
    let status = Command::new(BIN)
        .arg("compact")
        .arg("--data-dir")
        .arg(s.data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("hypnos compact");
    assert!(status.success(), "the final compaction run failed");
    check(&s, base, seq, "after the final run");
    s.restart();
    check(&s, base, seq, "after the final run and a restart");
    println!(
        "compactor kill test: {rounds} rounds ({kills} killed mid-run, {completed} completed), {} samples acknowledged, {queries} exact answers during runs, 0 lost, 0 duplicated",
        seq as usize * SERIES
    );
}
