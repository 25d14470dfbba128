//! Crash consistency of every file Hypnos writes: the last bytes of a WAL segment, the WAL
//! checkpoint, a block's `meta.json`, `series.parquet` or `samples.parquet`, and the
//! compactor's lease are cut off or overwritten with garbage. Hypnos must start anyway,
//! repair or skip the file with a log line naming it and a metric, and keep serving
//! everything that is intact.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Bytes cut off or overwritten at the end of the file.
const TAIL: usize = 8;

#[derive(Clone, Copy, Debug)]
enum Damage {
    Truncate,
    Garbage,
}

const BOTH: [Damage; 2] = [Damage::Truncate, Damage::Garbage];

fn damage(path: &Path, how: Damage) {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = TAIL.min(data.len());
    let mut out = data[..data.len() - n].to_vec();
    if let Damage::Garbage = how {
        let garbage: Vec<u8> = (0..n).map(|i| 0xA5 ^ (i as u8).wrapping_mul(37)).collect();
        assert_ne!(
            &data[data.len() - n..],
            &garbage[..],
            "garbage equals the data"
        );
        out.extend_from_slice(&garbage);
    }
    fs::write(path, out).unwrap();
}

/// A server that does not compact by itself (the blocks stay as written).
fn server() -> TestServer {
    TestServer::with(Options::default().arg("--compact-interval").arg("1h"))
}

/// The points of `metric` over the last hour before `end`.
fn points(s: &TestServer, metric: &str, end: i64) -> Vec<(i64, f64)> {
    let data = s.query(Tenant::Default, &format!("{metric}[1h]"), end);
    let m = matrix(&data);
    assert!(m.len() <= 1, "{metric}: {data}");
    m.into_iter().next().map(|(_, p)| p).unwrap_or_default()
}

fn corrupt_count(s: &TestServer, kind: &str) -> f64 {
    metric_value(
        &s.metrics(),
        "hypnos_corrupt_files_total",
        &[("kind", kind)],
    )
    .unwrap_or(0.0)
}

fn newest_segment(wal: &Path) -> PathBuf {
    let mut segs: Vec<(u64, PathBuf)> = fs::read_dir(wal)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n: u64 = e.file_name().to_str()?.parse().ok()?;
            (e.metadata().ok()?.len() > 0).then(|| (n, e.path()))
        })
        .collect();
    segs.sort();
    segs.pop().expect("a non-empty WAL segment").1
}

#[test]
fn a_damaged_wal_tail_loses_only_the_damaged_record() {
    for how in BOTH {
        let mut s = server();
        let t = base_time();
        s.write(
            Tenant::Default,
            &request(vec![series("dmg_wal", &[], &[(t, 1.0)])]),
        );
        s.write(
            Tenant::Default,
            &request(vec![series("dmg_wal", &[], &[(t + 1_000, 2.0)])]),
        );
        s.kill9();
        let seg = newest_segment(&s.data_dir().join("wal"));
        damage(&seg, how);
        s.restart();
        let name = seg.file_name().unwrap().to_str().unwrap().to_string();
        let log = s.log();
        assert!(
            log.lines().any(
                |l| l.contains("truncated a torn or corrupt write-ahead log tail")
                    && l.contains(&name)
            ),
            "{how:?}: no log line names {name}:\n{}",
            s.log_tail(40)
        );
        assert_eq!(corrupt_count(&s, "wal_segment"), 1.0, "{how:?}");
        // The first record is intact; the damaged one is gone, nothing else.
        assert_eq!(points(&s, "dmg_wal", t + 5_000), vec![(t, 1.0)], "{how:?}");
        // Writing goes on, and survives the next crash.
        s.write(
            Tenant::Default,
            &request(vec![series("dmg_wal", &[], &[(t + 2_000, 3.0)])]),
        );
        s.kill9();
        s.restart();
        assert_eq!(
            points(&s, "dmg_wal", t + 5_000),
            vec![(t, 1.0), (t + 2_000, 3.0)],
            "{how:?}"
        );
        assert_eq!(
            corrupt_count(&s, "wal_segment"),
            0.0,
            "{how:?}: repaired once"
        );
    }
}

#[test]
fn a_damaged_wal_checkpoint_is_set_aside_and_every_segment_replayed() {
    for how in BOTH {
        let mut s = server();
        let t = base_time();
        s.write(
            Tenant::Default,
            &request(vec![series("dmg_ckpt", &[], &[(t, 1.0)])]),
        );
        s.flush();
        s.write(
            Tenant::Default,
            &request(vec![series("dmg_ckpt", &[], &[(t + 1_000, 2.0)])]),
        );
        s.kill9();
        let ckpt = s.data_dir().join("wal").join("checkpoint");
        damage(&ckpt, how);
        s.restart();
        let log = s.log();
        assert!(
            log.lines().any(
                |l| l.contains("damaged write-ahead log checkpoint set aside")
                    && l.contains("checkpoint")
            ),
            "{how:?}: no log line about the checkpoint:\n{}",
            s.log_tail(40)
        );
        assert_eq!(corrupt_count(&s, "wal_checkpoint"), 1.0, "{how:?}");
        // The flushed sample from its block, the logged one from the WAL, each once.
        assert_eq!(
            points(&s, "dmg_ckpt", t + 5_000),
            vec![(t, 1.0), (t + 1_000, 2.0)],
            "{how:?}"
        );
        // The next flush writes a good checkpoint again.
        s.flush();
        s.kill9();
        s.restart();
        assert_eq!(corrupt_count(&s, "wal_checkpoint"), 0.0, "{how:?}");
        assert_eq!(
            points(&s, "dmg_ckpt", t + 5_000),
            vec![(t, 1.0), (t + 1_000, 2.0)],
            "{how:?}"
        );
    }
}

/// Two blocks, `dmg_a` in the first and `dmg_b` in the second; returns the first's folder.
fn two_blocks(s: &TestServer, t: i64) -> PathBuf {
    s.write(
        Tenant::Default,
        &request(vec![series("dmg_a", &[], &[(t, 1.0)])]),
    );
    s.flush();
    std::thread::sleep(Duration::from_millis(5));
    s.write(
        Tenant::Default,
        &request(vec![series("dmg_b", &[], &[(t, 2.0)])]),
    );
    s.flush();
    let mut dirs: Vec<PathBuf> = find_meta_files(&s.bucket_dir())
        .into_iter()
        .map(|m| m.parent().unwrap().to_path_buf())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    dirs.remove(0)
}

#[test]
fn a_damaged_block_file_is_skipped_and_named_and_the_rest_is_served() {
    for file in ["meta.json", "series.parquet", "samples.parquet"] {
        for how in BOTH {
            let ctx = format!("{file}, {how:?}");
            let mut s = server();
            let t = base_time();
            let block = two_blocks(&s, t);
            let ulid = block.file_name().unwrap().to_str().unwrap().to_string();
            s.terminate();
            damage(&block.join(file), how);
            s.restart();
            // The intact block answers.
            assert_eq!(points(&s, "dmg_b", t + 5_000), vec![(t, 2.0)], "{ctx}");
            // The damaged one is skipped at startup: named in the log, counted; a query
            // over it answers from the rest.
            let skipped = metric_value(&s.metrics(), "hypnos_catalog_blocks_skipped", &[]);
            assert_eq!(skipped, Some(1.0), "{ctx}: not skipped at startup");
            assert!(
                s.log()
                    .lines()
                    .any(|l| l.contains("block skipped") && l.contains(&ulid)),
                "{ctx}: no log line names block {ulid}:\n{}",
                s.log_tail(40)
            );
            assert!(points(&s, "dmg_a", t + 5_000).is_empty(), "{ctx}");
            assert_eq!(
                points(&s, "{__name__=~\"dmg_.\"}", t + 5_000),
                vec![(t, 2.0)],
                "{ctx}"
            );
            // Writes and queries of other data go on.
            s.write(
                Tenant::Default,
                &request(vec![series("dmg_c", &[], &[(t, 3.0)])]),
            );
            assert_eq!(points(&s, "dmg_c", t + 5_000), vec![(t, 3.0)], "{ctx}");
        }
    }
}

#[test]
fn a_damaged_compactor_lease_counts_as_expired() {
    for how in BOTH {
        let s = TestServer::with(Options::default().arg("--compact-interval").arg("1s"));
        let bucket = s.bucket_dir();
        fs::create_dir_all(&bucket).unwrap();
        // Another owner's lease, valid for a day: intact, it would stop every compaction.
        let lease = format!(
            "{{\"owner\":\"someone-else\",\"expires_at_ms\":{}}}",
            now_ms() + 86_400_000
        );
        let tmp = bucket.join("compactor.lock.tmp");
        fs::write(&tmp, lease).unwrap();
        damage(&tmp, how);
        fs::rename(&tmp, bucket.join("compactor.lock")).unwrap();
        eventually(
            Duration::from_secs(30),
            "the damaged lease replaced by a compaction run",
            || {
                let log = s.log();
                let named = log
                    .lines()
                    .any(|l| l.contains("damaged compactor lease") && l.contains("compactor.lock"));
                // Taken over and released: the lease is gone, or a readable one of ours.
                let replaced = match fs::read(bucket.join("compactor.lock")) {
                    Err(_) => true,
                    Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
                        .is_ok_and(|v| v["owner"] != "someone-else"),
                };
                (named && replaced).then_some(())
            },
        );
    }
}
