use std::path::Path;
use std::sync::Mutex;

use hypnos_schemas::block::BlockReader;
use hypnos_schemas::remote::{self, Sample, TimeSeries};
use hypnos_schemas::{MatchOp, STALE_NAN_BITS};
use object_store::local::LocalFileSystem;
use prost::Message;

use super::*;

/// Remembers every block it is told about; optionally checks that the ingester still holds
/// the block's data in memory at that moment.
#[derive(Default)]
struct RecordingSink {
    metas: Mutex<Vec<BlockMeta>>,
    ingester: std::sync::OnceLock<Weak<Ingester>>,
    samples_in_memory_at_sink: Mutex<Vec<usize>>,
}

impl BlockSink for RecordingSink {
    fn block_written(&self, meta: &BlockMeta) {
        if let Some(i) = self.ingester.get().and_then(Weak::upgrade) {
            let in_memory = i
                .head_stats()
                .iter()
                .filter(|(t, _, _)| t.as_str() == meta.tenant)
                .map(|(_, _, samples)| *samples)
                .sum();
            self.samples_in_memory_at_sink
                .lock()
                .unwrap()
                .push(in_memory);
        }
        self.metas.lock().unwrap().push(meta.clone());
    }
}

struct Env {
    ingester: Arc<Ingester>,
    sink: Arc<RecordingSink>,
    store: Arc<dyn ObjectStore>,
    registry: prometheus::Registry,
}

async fn open(dir: &Path) -> Env {
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket).unwrap());
    let sink = Arc::new(RecordingSink::default());
    let registry = prometheus::Registry::new();
    let cfg = IngestConfig {
        data_dir: dir.to_path_buf(),
        block_duration: Duration::from_secs(3600),
        max_decompressed_bytes: 1 << 20,
    };
    let ingester = Ingester::open(
        cfg,
        Arc::clone(&store),
        Arc::clone(&sink) as Arc<dyn BlockSink>,
        &registry,
    )
    .await
    .unwrap();
    let _ = sink.ingester.set(Arc::downgrade(&ingester));
    Env {
        ingester,
        sink,
        store,
        registry,
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| remote::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: points
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn req(series: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
}

fn up(job: &str, points: &[(i64, f64)]) -> TimeSeries {
    series(&[("__name__", "up"), ("job", job)], points)
}

const ALL: TimeRange = TimeRange {
    min: i64::MIN,
    max: i64::MAX,
};

/// Everything a tenant has, as (labels, [(ts, value bits)]) sorted by labels.
async fn dump(src: &dyn SeriesSource, t: &TenantId) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut out: Vec<_> = src
        .select(t, &[], ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let pts = s
                .timestamps()
                .values()
                .iter()
                .zip(s.values().values())
                .map(|(t, v)| (*t, v.to_bits()))
                .collect();
            (s.labels.to_string(), pts)
        })
        .collect();
    out.sort();
    out
}

fn metric(registry: &prometheus::Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            label.is_none_or(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            })
        })
        // A sample is either a counter or a gauge; the other reads as 0.
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

fn wal_segments(dir: &Path) -> Vec<u64> {
    wal::list_segments(&dir.join("wal")).unwrap()
}

#[tokio::test]
async fn write_then_select_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let stale = f64::from_bits(STALE_NAN_BITS);
    let odd_nan = f64::from_bits(0x7ff8_0000_0000_0abc);
    let stats = env
        .ingester
        .write(
            &tenant("a"),
            req(vec![
                up(
                    "x",
                    &[(1000, 1.5), (2000, stale), (3000, odd_nan), (4000, -0.0)],
                ),
                up("y", &[(1000, f64::INFINITY)]),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        stats,
        WriteStats {
            series: 2,
            samples: 5,
            duplicates: 0
        }
    );
    let got = dump(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(
        got,
        vec![
            (
                r#"{__name__="up", job="x", tenant_id="a"}"#.to_string(),
                vec![
                    (1000, 1.5f64.to_bits()),
                    (2000, STALE_NAN_BITS),
                    (3000, odd_nan.to_bits()),
                    (4000, (-0.0f64).to_bits()),
                ]
            ),
            (
                r#"{__name__="up", job="y", tenant_id="a"}"#.to_string(),
                vec![(1000, f64::INFINITY.to_bits())]
            ),
        ]
    );
    // Range and matchers.
    let m = Matcher::new(MatchOp::Equal, "job", "x").unwrap();
    let got = env
        .ingester
        .select(&tenant("a"), &[m], TimeRange::new(2000, 3000))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].timestamps().values().to_vec(), vec![2000, 3000]);
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_receive_samples_total",
            Some(("tenant", "a"))
        ),
        5.0
    );
    assert_eq!(
        metric(&env.registry, "hypnos_receive_series_total", None),
        2.0
    );
    assert_eq!(
        metric(&env.registry, "hypnos_head_samples", Some(("tenant", "a"))),
        5.0
    );
    assert_eq!(
        metric(&env.registry, "hypnos_head_series", Some(("tenant", "a"))),
        2.0
    );
    assert!(metric(&env.registry, "hypnos_wal_fsyncs_total", None) >= 1.0);
    assert_eq!(env.ingester.head_stats(), vec![(tenant("a"), 2, 5)]);
}

#[tokio::test]
async fn duplicates_are_dropped_and_out_of_order_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let t = tenant("a");
    let first = req(vec![up("x", &[(10, 1.0), (20, 2.0), (30, 3.0)])]);
    env.ingester.write(&t, first.clone()).await.unwrap();
    // A retried request is all duplicates: idempotent.
    let again = env.ingester.write(&t, first).await.unwrap();
    assert_eq!(
        again,
        WriteStats {
            series: 1,
            samples: 0,
            duplicates: 3
        }
    );
    let stats = env
        .ingester
        .write(
            &t,
            req(vec![up(
                "x",
                &[(20, 9.0), (15, 1.5), (5, 0.5), (15, 9.0), (40, 4.0)],
            )]),
        )
        .await
        .unwrap();
    assert_eq!(
        stats,
        WriteStats {
            series: 1,
            samples: 3,
            duplicates: 2
        }
    );
    let got = dump(env.ingester.as_ref(), &t).await;
    let want: Vec<(i64, u64)> = [
        (5, 0.5),
        (10, 1.0),
        (15, 1.5),
        (20, 2.0),
        (30, 3.0),
        (40, 4.0),
    ]
    .iter()
    .map(|(t, v): &(i64, f64)| (*t, v.to_bits()))
    .collect();
    assert_eq!(got[0].1, want);
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_receive_duplicate_samples_total",
            Some(("tenant", "a"))
        ),
        5.0
    );
}

#[tokio::test]
async fn tenants_are_isolated_and_the_tenant_label_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let spoof = series(&[("__name__", "up"), ("tenant_id", "b")], &[(1, 1.0)]);
    env.ingester
        .write(&tenant("a"), req(vec![spoof]))
        .await
        .unwrap();
    env.ingester
        .write(&tenant("b"), req(vec![up("x", &[(1, 2.0)])]))
        .await
        .unwrap();
    let a = dump(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, r#"{__name__="up", tenant_id="a"}"#);
    let b = dump(env.ingester.as_ref(), &tenant("b")).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0, r#"{__name__="up", job="x", tenant_id="b"}"#);
    // Even a matcher on another tenant's label finds nothing across the boundary.
    let m = Matcher::new(MatchOp::Equal, "tenant_id", "b").unwrap();
    assert!(
        env.ingester
            .select(&tenant("a"), &[m], ALL)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(dump(env.ingester.as_ref(), &tenant("c")).await.is_empty());
    let labels = env.ingester.series(&tenant("b"), &[], ALL).await.unwrap();
    assert_eq!(labels.len(), 1);
}

#[tokio::test]
async fn an_invalid_request_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let t = tenant("a");
    env.ingester
        .write(&t, req(vec![up("x", &[(1, 1.0)])]))
        .await
        .unwrap();
    let before = dump(env.ingester.as_ref(), &t).await;
    let e = env
        .ingester
        .write(
            &t,
            req(vec![
                up("x", &[(2, 2.0)]),
                series(&[("job", "y"), ("__name__", "up")], &[(2, 2.0)]),
            ]),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IngestError::Invalid(_)));
    assert!(e.to_string().contains(r#""job" before "__name__""#), "{e}");
    assert_eq!(dump(env.ingester.as_ref(), &t).await, before);
    // Nothing reached the WAL either.
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(dump(env.ingester.as_ref(), &t).await, before);
}

#[tokio::test]
async fn decode_goes_through_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let small = req(vec![up("x", &[(1, 1.0)])]);
    let body = snap::raw::Encoder::new()
        .compress_vec(&small.encode_to_vec())
        .unwrap();
    assert_eq!(
        env.ingester.decode(Some("snappy"), None, &body).unwrap(),
        small
    );
    let big = req(vec![up(&"x".repeat(2 << 20), &[(1, 1.0)])]);
    let body = snap::raw::Encoder::new()
        .compress_vec(&big.encode_to_vec())
        .unwrap();
    let e = env
        .ingester
        .decode(Some("snappy"), None, &body)
        .unwrap_err();
    assert!(matches!(e, IngestError::TooLarge(_)), "{e}");
}

async fn write_mixed(i: &Ingester) {
    for k in 0..5i64 {
        i.write(
            &tenant("a"),
            req(vec![
                up(
                    "x",
                    &[
                        (k * 100, k as f64),
                        (k * 100 + 1, f64::from_bits(STALE_NAN_BITS)),
                    ],
                ),
                up("y", &[(1000 - k, -(k as f64))]),
            ]),
        )
        .await
        .unwrap();
        i.write(&tenant("b"), req(vec![up("z", &[(k, 0.1 * k as f64)])]))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn replay_after_a_crash_restores_identical_data() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    write_mixed(&env.ingester).await;
    let a = dump(env.ingester.as_ref(), &tenant("a")).await;
    let b = dump(env.ingester.as_ref(), &tenant("b")).await;
    assert_eq!(a.iter().map(|s| s.1.len()).sum::<usize>(), 15);
    // No flush: dropping is as good as a crash for the WAL (every write was fsynced).
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(dump(env.ingester.as_ref(), &tenant("a")).await, a);
    assert_eq!(dump(env.ingester.as_ref(), &tenant("b")).await, b);
    assert_eq!(
        metric(&env.registry, "hypnos_wal_replayed_records_total", None),
        10.0
    );
    assert_eq!(
        metric(&env.registry, "hypnos_head_samples", Some(("tenant", "b"))),
        5.0
    );
    // New writes after a replay land in a new segment and survive another restart.
    env.ingester
        .write(&tenant("b"), req(vec![up("z", &[(99, 9.0)])]))
        .await
        .unwrap();
    assert_eq!(wal_segments(dir.path()), vec![1, 2]);
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(
        dump(env.ingester.as_ref(), &tenant("b")).await[0].1.len(),
        6
    );
    assert_eq!(dump(env.ingester.as_ref(), &tenant("a")).await, a);
}

#[tokio::test]
async fn a_torn_tail_keeps_every_earlier_record() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    for k in 0..3 {
        env.ingester
            .write(&tenant("a"), req(vec![up("x", &[(k, k as f64)])]))
            .await
            .unwrap();
    }
    drop(env);
    let seg = wal::segment_path(&dir.path().join("wal"), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let env = open(dir.path()).await;
    let got = dump(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(got[0].1.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
    drop(env);

    // Garbage appended after complete records: all of them are kept.
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, b"\x05\x00\x00\x00garbagegarbage").unwrap();
    drop(f);
    let env = open(dir.path()).await;
    let got = dump(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(got[0].1.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
}

#[tokio::test]
async fn flush_writes_blocks_sinks_them_and_truncates_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    write_mixed(&env.ingester).await;
    let a = dump(env.ingester.as_ref(), &tenant("a")).await;
    let b = dump(env.ingester.as_ref(), &tenant("b")).await;
    assert_eq!(wal_segments(dir.path()), vec![1]);

    let metas = env.ingester.flush().await.unwrap();
    assert_eq!(metas.len(), 2);
    assert_eq!(*env.sink.metas.lock().unwrap(), metas);
    // At the moment the sink heard of each block, its head was still served from memory.
    let in_memory = env.sink.samples_in_memory_at_sink.lock().unwrap().clone();
    assert_eq!(in_memory, vec![15, 5]);
    let meta_a = metas.iter().find(|m| m.tenant == "a").unwrap();
    assert_eq!((meta_a.num_series, meta_a.num_samples), (2, 15));
    assert_eq!((meta_a.min_time, meta_a.max_time), (0, 1000));

    // The blocks hold exactly what the heads held.
    for (m, want) in metas.iter().zip([&a, &b]) {
        let reader = BlockReader::new(Arc::clone(&env.store), m.clone()).unwrap();
        assert_eq!(dump(&reader, &tenant(&m.tenant)).await, *want);
    }
    // Heads are gone, the WAL is truncated and checkpointed.
    assert!(dump(env.ingester.as_ref(), &tenant("a")).await.is_empty());
    assert!(env.ingester.head_stats().is_empty());
    assert_eq!(wal_segments(dir.path()), vec![2]);
    assert_eq!(
        wal::read_checkpoint(&dir.path().join("wal")).unwrap(),
        Some(1)
    );
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_flushes_total",
            Some(("result", "success"))
        ),
        1.0
    );
    assert_eq!(
        metric(&env.registry, "hypnos_flushed_blocks_total", None),
        2.0
    );
    assert_eq!(
        metric(&env.registry, "hypnos_head_samples", Some(("tenant", "a"))),
        0.0
    );

    // Writes after the flush go to the new head; a restart replays only those.
    env.ingester
        .write(&tenant("a"), req(vec![up("x", &[(5000, 1.0)])]))
        .await
        .unwrap();
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(env.ingester.head_stats(), vec![(tenant("a"), 1, 1)]);
    assert_eq!(
        metric(&env.registry, "hypnos_wal_replayed_records_total", None),
        1.0
    );

    // An empty flush writes no block but still succeeds.
    env.ingester.flush().await.unwrap();
    assert!(env.ingester.flush().await.unwrap().is_empty());
    assert!(env.ingester.head_stats().is_empty());
}

#[tokio::test]
async fn a_checkpointed_segment_is_not_replayed() {
    // A crash after the checkpoint was written but before the segment was deleted.
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    env.ingester
        .write(&tenant("a"), req(vec![up("x", &[(1, 1.0)])]))
        .await
        .unwrap();
    drop(env);
    let wal_dir = dir.path().join("wal");
    wal::write_checkpoint(&wal_dir, 1).unwrap();
    let env = open(dir.path()).await;
    assert!(env.ingester.head_stats().is_empty());
    assert_eq!(wal_segments(dir.path()), vec![2]);
    // Numbering continues after the checkpoint even with no segment left, so a new
    // segment is never mistaken for a flushed one.
    drop(env);
    std::fs::remove_file(wal::segment_path(&wal_dir, 2)).unwrap();
    wal::write_checkpoint(&wal_dir, 5).unwrap();
    let _env = open(dir.path()).await;
    assert_eq!(wal_segments(dir.path()), vec![6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_fsyncs_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let mut tasks = Vec::new();
    for w in 0..64i64 {
        let i = Arc::clone(&env.ingester);
        tasks.push(tokio::spawn(async move {
            for k in 0..10 {
                i.write(
                    &tenant("a"),
                    req(vec![up(&format!("w{w}"), &[(k, k as f64)])]),
                )
                .await
                .unwrap();
            }
        }));
    }
    // A flush racing with the writers loses nothing either.
    let flusher = {
        let i = Arc::clone(&env.ingester);
        tokio::spawn(async move { i.flush().await.unwrap() })
    };
    for t in tasks {
        t.await.unwrap();
    }
    let flushed = flusher.await.unwrap();
    let fsyncs = metric(&env.registry, "hypnos_wal_fsyncs_total", None);
    assert!((1.0..=640.0).contains(&fsyncs), "{fsyncs}");
    let mut total: u64 = flushed.iter().map(|m| m.num_samples).sum();
    total += env
        .ingester
        .head_stats()
        .iter()
        .map(|s| s.2 as u64)
        .sum::<u64>();
    assert_eq!(total, 640);
    // And a restart brings back exactly the unflushed part.
    let in_memory = dump(env.ingester.as_ref(), &tenant("a")).await;
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(dump(env.ingester.as_ref(), &tenant("a")).await, in_memory);
}

#[tokio::test]
async fn select_merges_a_flushing_head_with_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let t = tenant("a");
    env.ingester
        .write(&t, req(vec![up("x", &[(1, 1.0), (3, 3.0)])]))
        .await
        .unwrap();
    // Cut without flushing, as a flush does first, then write to the new head.
    let (reply, rx) = oneshot::channel();
    env.ingester.wal_tx.send(WalCmd::Cut(reply)).await.unwrap();
    assert_eq!(rx.await.unwrap().unwrap(), 1);
    let st = env
        .ingester
        .write(&t, req(vec![up("x", &[(2, 2.0), (3, 9.0)])]))
        .await
        .unwrap();
    // The new head cannot see the old head's sample at 3; select still answers it once.
    assert_eq!(st.duplicates, 0);
    let got = dump(env.ingester.as_ref(), &t).await;
    let want: Vec<(i64, u64)> = [(1, 1.0f64), (2, 2.0), (3, 3.0)]
        .iter()
        .map(|(t, v)| (*t, v.to_bits()))
        .collect();
    assert_eq!(got[0].1, want);
    assert_eq!(env.ingester.head_stats(), vec![(t.clone(), 2, 4)]);
    // The next flush writes both heads.
    let metas = env.ingester.flush().await.unwrap();
    assert_eq!(metas.len(), 2);
    assert_eq!(wal_segments(dir.path()), vec![3]);
}

#[tokio::test]
async fn the_flush_loop_flushes_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket).unwrap());
    let sink = Arc::new(RecordingSink::default());
    let cfg = IngestConfig {
        block_duration: Duration::from_millis(50),
        ..IngestConfig::new(dir.path())
    };
    let ingester = Ingester::open(
        cfg,
        store,
        Arc::clone(&sink) as Arc<dyn BlockSink>,
        &prometheus::Registry::new(),
    )
    .await
    .unwrap();
    let handle = ingester.spawn_flush_loop();
    ingester
        .write(&tenant("a"), req(vec![up("x", &[(1, 1.0)])]))
        .await
        .unwrap();
    for _ in 0..100 {
        if !sink.metas.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.metas.lock().unwrap().len(), 1);
    // The loop holds no strong reference: dropping the ingester ends it.
    drop(ingester);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn config_and_registry_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let sink: Arc<dyn BlockSink> = Arc::new(RecordingSink::default());
    let registry = prometheus::Registry::new();
    let zero = IngestConfig {
        block_duration: Duration::ZERO,
        ..IngestConfig::new(dir.path())
    };
    let e = Ingester::open(zero, Arc::clone(&store), Arc::clone(&sink), &registry)
        .await
        .unwrap_err();
    assert!(matches!(e, IngestError::Config(_)));
    let _first = Ingester::open(
        IngestConfig::new(dir.path()),
        Arc::clone(&store),
        Arc::clone(&sink),
        &registry,
    )
    .await
    .unwrap();
    let e = Ingester::open(
        IngestConfig::new(dir.path().join("other")),
        store,
        sink,
        &registry,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, IngestError::Metrics(_)));
    assert_eq!(e.reason(), "internal");
}

#[test]
fn queued_appends_share_one_fsync_and_a_cut_splits_them_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let shared = Arc::new(Shared {
        heads: RwLock::new(HeadSet::default()),
        exemplars: ExemplarStore::new(10),
        metrics: Metrics::new(&registry).unwrap(),
        wal_full: tokio::sync::Notify::new(),
    });
    let w = writer::WalWriter::create(dir.path(), 1).unwrap();
    let (tx, rx) = mpsc::channel(64);
    let t = tenant("a");
    let mut replies = Vec::new();
    let mut append = |k: i64| {
        let req = validate(&t, req(vec![up("x", &[(k, k as f64)])])).unwrap();
        let payload = wal::encode_payload(&t, &req).unwrap();
        let (reply, rx) = oneshot::channel();
        tx.try_send(WalCmd::Append(Append {
            tenant: t.clone(),
            req,
            payload,
            reply,
        }))
        .unwrap_or_else(|_| panic!("queue full"));
        replies.push(rx);
    };
    // Everything is queued before the writer starts: it must drain the queue in groups.
    for k in 0..5 {
        append(k);
    }
    let (cut_reply, cut_rx) = oneshot::channel();
    tx.try_send(WalCmd::Cut(cut_reply))
        .unwrap_or_else(|_| panic!("queue full"));
    for k in 5..8 {
        append(k);
    }
    drop(tx);
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || w.run(rx, shared))
    };
    thread.join().unwrap();
    for r in replies {
        assert_eq!(r.blocking_recv().unwrap().unwrap().appended, 1);
    }
    assert_eq!(cut_rx.blocking_recv().unwrap().unwrap(), 1);
    // One fsync before the cut, one after.
    assert_eq!(shared.metrics.wal_fsyncs.get(), 2);
    let ts_of = |h: &Arc<RwLock<Head>>| -> Vec<i64> {
        h.read().all_series()[0].timestamps().values().to_vec()
    };
    let hs = shared.heads.read();
    assert_eq!(ts_of(&hs.flushing[0].1), vec![0, 1, 2, 3, 4]);
    assert_eq!(ts_of(&hs.active[&t]), vec![5, 6, 7]);
    // And the log agrees: segment 1 holds exactly the cut records, segment 2 the others.
    let count = |n| {
        wal::replay_segment(&wal::segment_path(dir.path(), n), |_| true)
            .unwrap()
            .records
    };
    assert_eq!((count(1), count(2)), (5, 3));
}

fn with_exemplars(mut ts: TimeSeries, exemplars: &[(i64, f64, &str)]) -> TimeSeries {
    ts.exemplars = exemplars
        .iter()
        .map(|&(timestamp, value, trace)| remote::Exemplar {
            labels: vec![remote::Label {
                name: "trace_id".into(),
                value: trace.into(),
            }],
            value,
            timestamp,
        })
        .collect();
    ts
}

/// `(timestamp, value, trace_id)` of an exemplar.
type ExemplarRow = (i64, f64, String);

/// `(series, [(ts, value, trace_id)])` of a tenant's exemplars.
fn exemplars_of(i: &Ingester, t: &str) -> Vec<(String, Vec<ExemplarRow>)> {
    i.query_exemplars(&tenant(t), &[vec![]], i64::MIN, i64::MAX)
        .into_iter()
        .map(|s| {
            (
                s.series.to_string(),
                s.exemplars
                    .iter()
                    .map(|e| (e.timestamp, e.value, e.labels.get("trace_id").to_string()))
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn exemplars_are_kept_per_tenant_counted_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let long = "x".repeat(200);
    env.ingester
        .write(
            &tenant("a"),
            req(vec![
                with_exemplars(
                    up("x", &[(10, 1.0)]),
                    &[(10, 1.5, "aa"), (11, 2.5, &long), (12, 3.0, "bb")],
                ),
                // Exemplars without samples, as Prometheus sends them.
                with_exemplars(up("y", &[]), &[(20, 4.0, "cc")]),
            ]),
        )
        .await
        .unwrap();
    env.ingester
        .write(
            &tenant("b"),
            req(vec![with_exemplars(
                up("x", &[(10, 1.0)]),
                &[(10, 9.0, "zz")],
            )]),
        )
        .await
        .unwrap();
    // A retry adds nothing, an older exemplar is out of order.
    let stats = env
        .ingester
        .write(
            &tenant("a"),
            req(vec![with_exemplars(
                up("x", &[(10, 1.0)]),
                &[(10, 1.5, "aa"), (5, 0.5, "old")],
            )]),
        )
        .await
        .unwrap();
    assert_eq!(stats.duplicates, 1);
    let a = exemplars_of(&env.ingester, "a");
    assert_eq!(
        a,
        vec![
            (
                r#"{__name__="up", job="x", tenant_id="a"}"#.to_string(),
                vec![(10, 1.5, "aa".into()), (12, 3.0, "bb".into())]
            ),
            (
                r#"{__name__="up", job="y", tenant_id="a"}"#.to_string(),
                vec![(20, 4.0, "cc".into())]
            ),
        ]
    );
    let b = exemplars_of(&env.ingester, "b");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1, vec![(10, 9.0, "zz".to_string())]);
    // The exemplar-only series did not become a series of the head.
    assert_eq!(dump(env.ingester.as_ref(), &tenant("a")).await.len(), 1);
    let dropped = |reason| {
        env.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "hypnos_receive_exemplars_dropped_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                let has = |k: &str, v: &str| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == k && l.value() == v)
                };
                has("tenant", "a") && has("reason", reason)
            })
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    assert_eq!(dropped("label_length"), 1.0);
    assert_eq!(dropped("duplicate"), 1.0);
    assert_eq!(dropped("out_of_order"), 1.0);
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_receive_exemplars_total",
            Some(("tenant", "a"))
        ),
        3.0
    );
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_head_exemplars",
            Some(("tenant", "b"))
        ),
        1.0
    );
    // A restart restores them from the WAL, per tenant.
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(exemplars_of(&env.ingester, "a"), a);
    assert_eq!(exemplars_of(&env.ingester, "b"), b);
    assert!(exemplars_of(&env.ingester, "c").is_empty());
    assert_eq!(
        metric(
            &env.registry,
            "hypnos_head_exemplars",
            Some(("tenant", "a"))
        ),
        3.0
    );
}

#[tokio::test]
async fn a_zero_exemplar_limit_drops_them_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket).unwrap());
    let i = Ingester::open_with_exemplar_limit(
        IngestConfig::new(dir.path()),
        0,
        store,
        Arc::new(RecordingSink::default()),
        &prometheus::Registry::new(),
    )
    .await
    .unwrap();
    let stats = i
        .write(
            &tenant("a"),
            req(vec![with_exemplars(up("x", &[(1, 1.0)]), &[(1, 1.0, "t")])]),
        )
        .await
        .unwrap();
    assert_eq!(stats.samples, 1);
    assert!(exemplars_of(&i, "a").is_empty());
    // Nothing of them is logged: the record is the one of a request without exemplars.
    let seg = wal::segment_path(&dir.path().join("wal"), 1);
    let bytes = std::fs::read(seg).unwrap();
    assert_eq!(bytes[8], 1, "payload version");
}

#[tokio::test]
async fn exemplars_outlive_a_flush_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    env.ingester
        .write(
            &tenant("a"),
            req(vec![with_exemplars(
                up("x", &[(10, 1.0)]),
                &[(10, 1.5, "aa"), (11, 2.5, "bb")],
            )]),
        )
        .await
        .unwrap();
    env.ingester.flush().await.unwrap();
    // The segments of the flushed heads are gone; the exemplars were logged again.
    assert_eq!(wal_segments(dir.path()), vec![2]);
    env.ingester
        .write(
            &tenant("a"),
            req(vec![with_exemplars(
                up("x", &[(12, 1.0)]),
                &[(12, 3.5, "cc")],
            )]),
        )
        .await
        .unwrap();
    let before = exemplars_of(&env.ingester, "a");
    assert_eq!(before[0].1.len(), 3);
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(exemplars_of(&env.ingester, "a"), before);
    // A second flush and restart: still there, once.
    env.ingester.flush().await.unwrap();
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(exemplars_of(&env.ingester, "a"), before);
}

mod histograms;
mod outages;

/// The `tenant` label values of every metric in `registry`.
fn tenant_labels(registry: &prometheus::Registry) -> std::collections::BTreeSet<String> {
    registry
        .gather()
        .iter()
        .flat_map(|f| f.get_metric().iter())
        .flat_map(|m| m.get_label().iter())
        .filter(|l| l.name() == "tenant")
        .map(|l| l.value().to_string())
        .collect()
}

#[tokio::test]
async fn dropped_exemplars_of_refused_or_empty_requests_make_no_tenant_label() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let long = "x".repeat(200);
    // The reviewer's repro: a series without samples and one exemplar too long, for a
    // tenant that holds nothing; accepted (nothing to keep) but no label value.
    let stats = env
        .ingester
        .write(
            &tenant("ghost-1"),
            req(vec![with_exemplars(up("y", &[]), &[(20, 4.0, &long)])]),
        )
        .await
        .unwrap();
    assert_eq!(stats.samples, 0);
    // A request refused by the ingestion rate counts nothing either.
    let limits = WriteLimits {
        ingestion_rate: 1.0,
        ingestion_burst: 1,
        ..WriteLimits::unlimited()
    };
    let refused = env
        .ingester
        .write_limited(
            &tenant("ghost-2"),
            req(vec![with_exemplars(
                up("x", &[(10, 1.0), (11, 1.0), (12, 1.0)]),
                &[(10, 1.0, &long)],
            )]),
            &limits,
            0,
        )
        .await;
    assert!(matches!(refused, Err(IngestError::Limit(_))), "{refused:?}");
    let labels = tenant_labels(&env.registry);
    assert!(!labels.iter().any(|t| t.starts_with("ghost")), "{labels:?}");
    // A tenant that holds data has its dropped exemplars counted, with or without samples
    // in the request.
    env.ingester
        .write(
            &tenant("a"),
            req(vec![with_exemplars(
                up("x", &[(10, 1.0)]),
                &[(10, 1.0, &long)],
            )]),
        )
        .await
        .unwrap();
    env.ingester
        .write(
            &tenant("a"),
            req(vec![with_exemplars(up("y", &[]), &[(20, 4.0, &long)])]),
        )
        .await
        .unwrap();
    let dropped: f64 = env
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "hypnos_receive_exemplars_dropped_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == "a"))
        .map(|m| m.get_counter().get_value())
        .sum();
    assert_eq!(dropped, 2.0);
    assert!(
        !tenant_labels(&env.registry)
            .iter()
            .any(|t| t.starts_with("ghost"))
    );
}
