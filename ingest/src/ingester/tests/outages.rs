//! The write path when its storage fails: a WAL at its budget or on a full disk, and an
//! object store that refuses uploads for a while.

use hypnos_schemas::{ErrorCode, ServiceError};

use super::*;

/// One request of one sample for each of `n` series of tenant `a`, at time `k`.
fn wide(k: i64, n: usize) -> WriteRequest {
    req((0..n)
        .map(|i| up(&format!("job-{i}"), &[(k, k as f64 + i as f64 / 10.0)]))
        .collect())
}

/// What `wide(k, n)` wrote, for each `k` of `ks`, in [`dump`]'s shape.
fn expected(ks: &[i64], n: usize) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut out: Vec<(String, Vec<(i64, u64)>)> = (0..n)
        .map(|i| {
            (
                format!("{{__name__=\"up\", job=\"job-{i}\", tenant_id=\"a\"}}"),
                ks.iter()
                    .map(|&k| (k, (k as f64 + i as f64 / 10.0).to_bits()))
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Makes the bucket refuse blocks of tenant `t`: a file where its directory would be.
fn block_uploads(dir: &Path, t: &str) -> PathBuf {
    let p = dir.join("bucket").join("tenants").join(t);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"not a directory").unwrap();
    p
}

fn gauge(env: &Env, name: &str) -> f64 {
    metric(&env.registry, name, None)
}

#[tokio::test]
async fn a_write_past_the_wal_budget_gets_wal_full_and_resumes_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let a = tenant("a");
    env.ingester.set_wal_max_bytes(8 << 10);
    assert_eq!(gauge(&env, "hypnos_wal_max_bytes"), 8192.0);
    let mut acked = Vec::new();
    let mut refused = None;
    for k in 0..1000 {
        match env.ingester.write(&a, wide(k, 10)).await {
            Ok(_) => acked.push(k),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the budget was never reached");
    assert!(matches!(e, IngestError::WalFull(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("WAL full: ") && msg.contains(" of 8.0 KiB used"),
        "{msg}"
    );
    assert_eq!(e.reason(), "wal_full");
    assert_eq!(e.error_code(), ErrorCode::Unavailable);
    assert_eq!(e.error_code().http_status(), 503);
    assert!(!acked.is_empty());
    assert!(env.ingester.wal_bytes() <= 8 << 10);
    assert_eq!(
        gauge(&env, "hypnos_wal_bytes"),
        env.ingester.wal_bytes() as f64
    );
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_wal_full_rejections_total",
            Some(("cause", "max_size"))
        ),
        1.0
    );
    // Still full: refused again, and nothing of it applied.
    let next = *acked.last().unwrap() + 1;
    assert!(matches!(
        env.ingester.write(&a, wide(next, 10)).await,
        Err(IngestError::WalFull(_))
    ));
    assert_eq!(dump(env.ingester.as_ref(), &a).await, expected(&acked, 10));

    // A flush truncates the log: writes are taken again.
    let metas = env.ingester.flush().await.unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].num_samples, 10 * acked.len() as u64);
    assert!(
        env.ingester.wal_bytes() < 1024,
        "{}",
        env.ingester.wal_bytes()
    );
    env.ingester.write(&a, wide(next, 10)).await.unwrap();
    drop(env);

    // Nothing acknowledged is lost: the block holds the flushed part, the log the rest.
    let env = open(dir.path()).await;
    assert_eq!(dump(env.ingester.as_ref(), &a).await, expected(&[next], 10));
    let reader = BlockReader::new(Arc::clone(&env.store), metas[0].clone()).unwrap();
    assert_eq!(dump(&reader, &a).await, expected(&acked, 10));
}

#[tokio::test]
async fn a_request_larger_than_the_budget_is_refused_without_a_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let a = tenant("a");
    env.ingester.write(&a, wide(1, 2)).await.unwrap();
    let before = env.ingester.wal_bytes();
    env.ingester.set_wal_max_bytes(before + 256);
    let e = env.ingester.write(&a, wide(2, 100)).await.unwrap_err();
    assert!(matches!(e, IngestError::WalFull(_)), "{e}");
    assert_eq!(env.ingester.wal_bytes(), before);
    // Small enough: taken.
    env.ingester.write(&a, wide(3, 1)).await.unwrap();
    drop(env);
    let env = open(dir.path()).await;
    let got = dump(env.ingester.as_ref(), &a).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(got[1].1.iter().map(|p| p.0).collect::<Vec<_>>(), [1]);
}

/// `/dev/full` answers every write with ENOSPC: a segment on it is a segment on a full disk.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_refuses_the_batch_and_the_next_append_uses_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let shared = Arc::new(Shared {
        heads: RwLock::new(HeadSet::default()),
        exemplars: ExemplarStore::new(10),
        metrics: Metrics::new(&registry).unwrap(),
        wal_full: tokio::sync::Notify::new(),
    });
    let full = std::fs::OpenOptions::new()
        .append(true)
        .open("/dev/full")
        .unwrap();
    let w = writer::WalWriter::with_segment(dir.path(), wal::SegmentWriter::from_file(full, 1));
    let (tx, rx) = mpsc::channel(64);
    let t = tenant("a");
    let append = |k: i64| {
        let req = validate(&t, wide(k, 3)).unwrap();
        let payload = wal::encode_payload(&t, &req).unwrap();
        let (reply, rx) = oneshot::channel();
        (
            WalCmd::Append(Append {
                tenant: t.clone(),
                req,
                payload,
                reply,
            }),
            rx,
        )
    };
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || w.run(rx, shared))
    };
    let (cmd, first) = append(1);
    tx.blocking_send(cmd)
        .unwrap_or_else(|_| panic!("writer gone"));
    let e = first.blocking_recv().unwrap().unwrap_err();
    assert!(matches!(e, IngestError::WalFull(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("no space left on device writing the WAL"),
        "{e}"
    );
    assert_eq!(e.error_code().http_status(), 503);
    assert_eq!(
        shared
            .metrics
            .wal_full_rejections
            .with_label_values(&["no_space"])
            .get(),
        1
    );
    assert!(shared.heads.read().active.is_empty(), "nothing applied");
    // Space is back (a regular file): the next append goes to segment 2 and is applied.
    let (cmd, second) = append(2);
    tx.blocking_send(cmd)
        .unwrap_or_else(|_| panic!("writer gone"));
    assert_eq!(second.blocking_recv().unwrap().unwrap().appended, 3);
    drop(tx);
    thread.join().unwrap();
    assert_eq!(wal::list_segments(dir.path()).unwrap(), vec![2]);
    let n = wal::replay_segment(&wal::segment_path(dir.path(), 2), |p| {
        wal::decode_payload(p).is_some()
    })
    .unwrap();
    assert_eq!((n.records, n.truncated_at), (1, None));
    assert_eq!(
        shared.metrics.wal_bytes.get() as u64,
        std::fs::metadata(wal::segment_path(dir.path(), 2))
            .unwrap()
            .len()
    );
}

#[tokio::test]
async fn a_failed_upload_keeps_the_head_and_the_log_until_a_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let a = tenant("a");
    env.ingester.write(&a, wide(1_000, 4)).await.unwrap();
    env.ingester.write(&a, wide(2_000, 4)).await.unwrap();
    let blocker = block_uploads(dir.path(), "a");

    let e = env.ingester.flush().await.unwrap_err();
    assert!(matches!(e, IngestError::Store(_)), "{e:?}");
    assert_eq!(gauge(&env, "hypnos_upload_failures_total"), 1.0);
    assert!(gauge(&env, "hypnos_unflushed_bytes") > 0.0);
    assert_eq!(
        gauge(&env, "hypnos_oldest_unflushed_timestamp_seconds"),
        1.0
    );
    // Still readable, still in the log, and writes go on.
    assert_eq!(
        dump(env.ingester.as_ref(), &a).await,
        expected(&[1_000, 2_000], 4)
    );
    env.ingester.write(&a, wide(3_000, 4)).await.unwrap();
    assert!(env.ingester.retry_uploads().await.is_err());
    assert_eq!(gauge(&env, "hypnos_upload_failures_total"), 2.0);
    assert!(env.sink.metas.lock().unwrap().is_empty());

    // The store is back: the retry uploads the cut head only, once, and truncates the log.
    std::fs::remove_file(blocker).unwrap();
    let metas = env.ingester.retry_uploads().await.unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].num_samples, 8);
    let reader = BlockReader::new(Arc::clone(&env.store), metas[0].clone()).unwrap();
    assert_eq!(dump(&reader, &a).await, expected(&[1_000, 2_000], 4));
    assert_eq!(gauge(&env, "hypnos_unflushed_bytes"), 0.0);
    assert_eq!(
        gauge(&env, "hypnos_oldest_unflushed_timestamp_seconds"),
        0.0
    );
    assert!(env.ingester.retry_uploads().await.unwrap().is_empty());
    assert_eq!(
        dump(env.ingester.as_ref(), &a).await,
        expected(&[3_000], 4),
        "the uploaded head left memory, the new one stayed"
    );
    drop(env);
    // After a restart the log holds exactly what is in no block.
    let env = open(dir.path()).await;
    assert_eq!(dump(env.ingester.as_ref(), &a).await, expected(&[3_000], 4));
}

#[tokio::test]
async fn the_flush_loop_retries_with_backoff_and_a_full_wal_flushes_early() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await; // block duration 1h: no tick during the test
    let a = tenant("a");
    let handle = env.ingester.spawn_flush_loop();
    env.ingester.set_wal_max_bytes(4 << 10);
    let blocker = block_uploads(dir.path(), "a");
    let mut acked = Vec::new();
    let mut k = 0;
    // Fill the log: the refusal starts an early flush, which fails while the store is down.
    loop {
        k += 1;
        match env.ingester.write(&a, wide(k, 10)).await {
            Ok(_) => acked.push(k),
            Err(IngestError::WalFull(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let waited = std::time::Instant::now();
    while gauge(&env, "hypnos_upload_failures_total") < 2.0 {
        assert!(waited.elapsed() < Duration::from_secs(10), "no retry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first retry comes about a second after the failure, not at once.
    assert!(
        waited.elapsed() >= Duration::from_millis(500),
        "{:?}",
        waited.elapsed()
    );
    assert!(matches!(
        env.ingester.write(&a, wide(k, 10)).await,
        Err(IngestError::WalFull(_))
    ));
    std::fs::remove_file(blocker).unwrap();
    // The store is back: a retry succeeds and writes resume by themselves.
    let waited = std::time::Instant::now();
    loop {
        match env.ingester.write(&a, wide(k, 10)).await {
            Ok(_) => break,
            Err(IngestError::WalFull(_)) => {
                assert!(
                    waited.elapsed() < Duration::from_secs(10),
                    "writes never resumed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    acked.push(k);
    assert!(!env.sink.metas.lock().unwrap().is_empty());
    let in_blocks: u64 = env
        .sink
        .metas
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.num_samples)
        .sum();
    let in_heads = env
        .ingester
        .head_stats()
        .iter()
        .map(|(_, _, s)| *s as u64)
        .sum::<u64>();
    assert_eq!(in_blocks + in_heads, 10 * acked.len() as u64);
    let Env { ingester, .. } = env;
    drop(ingester);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn flush_retries_back_off_to_thirty_seconds() {
    let d: Vec<u64> = (1..=8).map(|n| flush_retry_delay(n).as_secs()).collect();
    assert_eq!(d, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(flush_retry_delay(u32::MAX).as_secs(), 30);
}
