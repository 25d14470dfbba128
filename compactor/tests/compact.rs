//! Compaction end to end: levels, vertical compaction, replica deduplication,
//! downsampling, deletion after the delay, retention per tenant, and a crash injected at
//! every mutating step. Every test runs twice: on a local directory (`local::`) and on a
//! real S3 API, moto's server from PyPI started by the test (`s3::`; skipped when moto is
//! missing, except under `CI=true`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Array, Float64Array, Int64Array};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use hypnos_compactor::downsample::{AGGREGATES, aggregate_raw, reduce};
use hypnos_compactor::merge::Part;
use hypnos_compactor::{
    CompactError, Compactor, CompactorConfig, RetentionOverride, TenantRetention,
};
use hypnos_engine::BlockCatalog;
use hypnos_schemas::block::{BlockReader, read_meta, write_block};
use hypnos_schemas::histogram::{FloatHistogram, ResetHint, Span};
use hypnos_schemas::layout::BlockMeta;
use hypnos_schemas::source::{AGGR_LABEL, RESOLUTION_1H, RESOLUTION_5M};
use hypnos_schemas::{Labels, SeriesData, SeriesSource, TenantId, TimeRange};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const H: i64 = 3_600_000;

/// Fails every mutating call after the first `budget` ones, like a process killed there.
#[derive(Debug)]
struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    budget: usize,
    used: AtomicUsize,
}

impl FaultStore {
    fn step(&self) -> object_store::Result<()> {
        if self.used.fetch_add(1, Ordering::SeqCst) >= self.budget {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: "injected crash".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.step()?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.step()?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // One step per deletion.
        let ok = self.step().is_ok();
        let inner = Arc::clone(&self.inner);
        if ok {
            inner.delete_stream(locations)
        } else {
            futures::stream::once(async {
                Err(object_store::Error::Generic {
                    store: "fault",
                    source: "injected crash".into(),
                })
            })
            .boxed()
        }
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.step()?;
        self.inner.copy_opts(from, to, options).await
    }
}

fn series(labels: &[(&str, &str)], ts: &[i64], f: impl Fn(i64) -> f64) -> SeriesData {
    SeriesData::new(
        Labels::from_pairs(labels.iter().copied()),
        Int64Array::from(ts.to_vec()),
        Float64Array::from(ts.iter().map(|t| f(*t)).collect::<Vec<_>>()),
    )
}

fn scrape(from: i64, to: i64, phase: i64) -> Vec<i64> {
    (from / 15_000..to / 15_000)
        .map(|i| i * 15_000 + phase + (i * 31) % 7)
        .filter(|t| *t >= from && *t < to)
        .collect()
}

/// Four 2h head blocks of 8h window [0, 8h), the third overlapping the second (a retried
/// write), and one block after the window so that it is closed.
async fn seed(store: &Arc<dyn ObjectStore>, tenant: &TenantId) {
    let spans = [
        (0, 2 * H),
        (2 * H, 4 * H),
        (3 * H, 6 * H),
        (6 * H, 8 * H),
        (8 * H, 9 * H),
    ];
    for (from, to) in spans {
        let ts = scrape(from, to, 0);
        let blocks = vec![
            series(&[("__name__", "c"), ("job", "a")], &ts, |t| {
                (t / 1000) as f64 / 100.0
            }),
            series(&[("__name__", "g"), ("job", "a")], &ts, |t| {
                ((t / 7) % 4096) as f64
            }),
            series(&[("__name__", "f"), ("job", "a")], &ts, |t| {
                (t as f64).sqrt()
            }),
            series(
                &[("__name__", "stale"), ("job", "b")],
                &ts[..ts.len() / 2],
                |_| f64::from_bits(hypnos_schemas::STALE_NAN_BITS),
            ),
        ];
        write_block(store, tenant, blocks).await.unwrap();
    }
}

type Snapshot = Vec<(Labels, Vec<i64>, Vec<u64>)>;

async fn query(store: &Arc<dyn ObjectStore>, tenant: &TenantId) -> (Snapshot, u64, usize) {
    let catalog = BlockCatalog::new(Arc::clone(store));
    catalog.sync().await.unwrap();
    let all = TimeRange::new(i64::MIN, i64::MAX);
    let got = catalog.select(tenant, &[], all).await.unwrap();
    let blocks = catalog.blocks(tenant, all);
    let served: u64 = blocks.iter().map(|b| b.meta().num_samples).sum();
    let snap = got
        .into_iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.timestamps().values().to_vec(),
                s.values().values().iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect();
    (snap, served, blocks.len())
}

fn cfg() -> CompactorConfig {
    CompactorConfig {
        delete_delay: Duration::ZERO,
        partial_age: Duration::ZERO,
        owner: "test".into(),
        concurrency: 2,
        ..CompactorConfig::default()
    }
}

/// Which object store the tests of a module run on.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Local,
    S3,
}

/// A moto S3 server on a free loopback port, killed when dropped.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    /// Starts moto, or returns `None` after saying why (a failure under `CI=true`).
    fn start() -> Option<Self> {
        use std::process::{Command, Stdio};
        let installed = Command::new("python3")
            .args(["-c", "import moto.server, flask, flask_cors"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let why =
                "moto's S3 server is not installed: pip install 'moto[server]' (or run .ci/run)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipping the S3 run: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 -m moto.server");
        let moto = Self { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// A new, empty bucket (moto checks no signature on bucket creation).
    fn bucket(&self) -> Arc<dyn ObjectStore> {
        use std::io::{Read, Write};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("compact-{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("moto");
        write!(
            conn,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("PUT bucket");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("moto answers");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
        Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(format!("http://127.0.0.1:{}", self.port))
                .with_allow_http(true)
                .with_bucket_name(name)
                .with_region("us-east-1")
                .with_access_key_id("test")
                .with_secret_access_key("test")
                .build()
                .expect("S3 store"),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes fresh buckets of one kind for a test.
struct Buckets {
    moto: Option<Moto>,
    dirs: Vec<tempfile::TempDir>,
}

impl Buckets {
    fn new(kind: Kind) -> Option<Self> {
        let moto = match kind {
            Kind::Local => None,
            Kind::S3 => Some(Moto::start()?),
        };
        Some(Self {
            moto,
            dirs: Vec::new(),
        })
    }

    fn fresh(&mut self) -> Arc<dyn ObjectStore> {
        match &self.moto {
            Some(m) => m.bucket(),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
                self.dirs.push(dir);
                store
            }
        }
    }
}

/// Block folders of tenant `t` holding any object.
async fn block_folders(store: &Arc<dyn ObjectStore>) -> usize {
    let objects: Vec<ObjectMeta> = store
        .list(Some(&Path::from("tenants/t")))
        .map(|o| o.unwrap())
        .collect()
        .await;
    let folders: std::collections::BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o.location.parts().nth(2).map(|p| p.as_ref().to_string()))
        .collect();
    folders.len()
}

async fn exists(store: &Arc<dyn ObjectStore>, path: &str) -> bool {
    match store.head(&Path::from(path)).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("head {path}: {e}"),
    }
}

fn unique_samples(s: &Snapshot) -> u64 {
    s.iter().map(|x| x.1.len() as u64).sum()
}

async fn compacts_levels_and_deletes_after_delay(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let tenant = TenantId::new("t").unwrap();
    seed(&store, &tenant).await;
    let (before, served_before, n_before) = query(&store, &tenant).await;
    assert_eq!(n_before, 5);
    assert!(
        served_before > unique_samples(&before),
        "the overlap is served twice before"
    );

    let c = Compactor::new(Arc::clone(&store), cfg()).unwrap();
    let report = c.run_once().await.unwrap();
    assert_eq!(report.written.len(), 1);
    let m = &report.written[0];
    assert_eq!(
        (m.level, m.source.as_str(), m.sources.len()),
        (2, "compactor", 4)
    );
    assert_eq!(report.marked, 4);

    let (after, served, n) = query(&store, &tenant).await;
    assert_eq!(after, before);
    assert_eq!(n, 2, "the compacted block and the newest head block");
    assert_eq!(served, unique_samples(&after), "nothing served twice");

    // The next run deletes the marked blocks (delay zero); data unchanged.
    let report = c.run_once().await.unwrap();
    assert_eq!(report.deleted, 4);
    assert!(report.written.is_empty());
    assert_eq!(query(&store, &tenant).await.0, before);
    assert_eq!(block_folders(&store).await, 2);
    assert!(!exists(&store, "compactor.lock").await);
}

async fn blocks_whose_meta_cannot_be_trusted_are_skipped_and_kept(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let tenant = TenantId::new("t").unwrap();
    seed(&store, &tenant).await;
    let (before, _, _) = query(&store, &tenant).await;
    // A block of tenant "u" copied under "t"'s path, and a meta.json that does not parse.
    let other = TenantId::new("u").unwrap();
    let ts = scrape(0, H, 0);
    let foreign = write_block(
        &store,
        &other,
        vec![series(&[("__name__", "secret"), ("job", "u")], &ts, |_| {
            1.0
        })],
    )
    .await
    .unwrap();
    let mut foreign_files: Vec<String> = foreign.files.iter().map(|f| f.name.clone()).collect();
    foreign_files.push("meta.json".into());
    for name in &foreign_files {
        let from = Path::from(format!("tenants/u/{}/{name}", foreign.ulid));
        let bytes = store.get(&from).await.unwrap().bytes().await.unwrap();
        let to = Path::from(format!("tenants/t/{}/{name}", foreign.ulid));
        store.put(&to, bytes.into()).await.unwrap();
    }
    let garbage = ulid::Ulid::new();
    let garbage_meta = format!("tenants/t/{garbage}/meta.json");
    store
        .put(
            &Path::from(garbage_meta.as_str()),
            b"{not json".to_vec().into(),
        )
        .await
        .unwrap();

    let c = Compactor::new(Arc::clone(&store), cfg()).unwrap();
    let report = c.run_once().await.unwrap();
    assert_eq!(report.skipped, 2, "the foreign and the garbage block");
    assert_eq!(
        report.written.len(),
        1,
        "the good blocks are still compacted"
    );
    let report = c.run_once().await.unwrap();
    assert_eq!(
        report.deleted, 4,
        "only the replaced good blocks are deleted"
    );
    assert_eq!(report.skipped, 2);
    // Neither skipped block was touched, and t's data is what it was.
    assert!(exists(&store, &garbage_meta).await);
    assert!(exists(&store, &format!("tenants/t/{}/meta.json", foreign.ulid)).await);
    assert_eq!(query(&store, &tenant).await.0, before);
}

async fn replicas_are_deduplicated_into_one_series(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let tenant = TenantId::new("t").unwrap();
    for (from, to) in [(0, 4 * H), (4 * H, 8 * H), (8 * H, 9 * H)] {
        let a = scrape(from, to, 0);
        // Replica B misses an hour that A has, and A misses the hour after.
        let a: Vec<i64> = a
            .into_iter()
            .filter(|t| !(2 * H..3 * H).contains(t))
            .collect();
        let b: Vec<i64> = scrape(from, to, 5000)
            .into_iter()
            .filter(|t| !(3 * H..4 * H).contains(t))
            .collect();
        write_block(
            &store,
            &tenant,
            vec![
                series(&[("__name__", "up"), ("replica", "A")], &a, |_| 1.0),
                series(&[("__name__", "up"), ("replica", "B")], &b, |_| 2.0),
            ],
        )
        .await
        .unwrap();
    }
    let c = Compactor::new(
        Arc::clone(&store),
        CompactorConfig {
            replica_labels: vec!["replica".into()],
            ..cfg()
        },
    )
    .unwrap();
    c.run_once().await.unwrap();
    let (snap, _, _) = query(&store, &tenant).await;
    // The compacted window [0, 8h) has one series without the replica label; the newest
    // block still has both replicas.
    let up: Vec<_> = snap
        .iter()
        .filter(|s| s.0 == Labels::from_pairs([("__name__", "up")]))
        .collect();
    assert_eq!(up.len(), 1);
    let ts = &up[0].1;
    assert!(
        ts.windows(2)
            .all(|w| w[1] - w[0] >= 10_000 && w[1] - w[0] <= 20_000 + 7)
    );
    // The gaps of either replica are filled by the other.
    assert!(ts.iter().any(|t| (2 * H..3 * H).contains(t)));
    assert!(ts.iter().any(|t| (3 * H..4 * H).contains(t)));
    assert!(*ts.last().unwrap() < 8 * H);
}

async fn a_crash_at_any_step_is_finished_by_the_next_run(kind: Kind) {
    // Count the mutating steps of a clean run first.
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let tenant = TenantId::new("t").unwrap();
    let store = buckets.fresh();
    seed(&store, &tenant).await;
    let (expected, served_seeded, _) = query(&store, &tenant).await;
    let counting = Arc::new(FaultStore {
        inner: Arc::clone(&store),
        budget: usize::MAX,
        used: AtomicUsize::new(0),
    });
    Compactor::new(Arc::clone(&counting) as Arc<dyn ObjectStore>, cfg())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let steps = counting.used.load(Ordering::SeqCst);
    assert!(steps > 5, "{steps}");

    for budget in 0..steps {
        let store = buckets.fresh();
        seed(&store, &tenant).await;
        let faulty: Arc<dyn ObjectStore> = Arc::new(FaultStore {
            inner: Arc::clone(&store),
            budget,
            used: AtomicUsize::new(0),
        });
        let r = Compactor::new(faulty, cfg()).unwrap().run_once().await;
        // The last step is releasing the lease, whose failure only logs (it expires).
        assert!(
            r.is_err() || budget + 1 == steps,
            "budget {budget}: the fault must hit"
        );
        // Readers see the same data right after the crash ...
        let (snap, served, _) = query(&store, &tenant).await;
        assert_eq!(snap, expected, "budget {budget}: after the crash");
        // Either the new block is not there yet, or it hides all of its sources (their
        // deletion marks may be missing): never both served.
        assert!(
            served == served_seeded || served == unique_samples(&snap),
            "budget {budget}: {served} samples served"
        );
        // ... and after the next runs, which finish the work.
        let c = Compactor::new(Arc::clone(&store), cfg()).unwrap();
        c.run_once().await.unwrap();
        c.run_once().await.unwrap();
        let (snap, served_after, n) = query(&store, &tenant).await;
        assert_eq!(snap, expected, "budget {budget}: after the rerun");
        assert_eq!(n, 2, "budget {budget}");
        assert_eq!(served_after, unique_samples(&snap), "budget {budget}");
        assert!(served_after <= served);
        assert_eq!(
            block_folders(&store).await,
            2,
            "budget {budget}: leftovers deleted"
        );
    }
}

async fn a_second_compactor_is_refused_while_the_lease_is_held(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    hypnos_compactor::lock::acquire(&store, "other", Duration::from_secs(60))
        .await
        .unwrap();
    let r = Compactor::new(Arc::clone(&store), cfg())
        .unwrap()
        .run_once()
        .await;
    assert!(matches!(r, Err(CompactError::Locked { .. })), "{r:?}");
}

/// Every complete block of `tenant` with whether it carries a deletion mark.
async fn metas(store: &Arc<dyn ObjectStore>, tenant: &TenantId) -> Vec<(BlockMeta, bool)> {
    let objects: Vec<ObjectMeta> = store
        .list(Some(&Path::from(format!("tenants/{tenant}"))))
        .map(|o| o.unwrap())
        .collect()
        .await;
    let mut out = Vec::new();
    for o in &objects {
        if o.location.filename() == Some("meta.json") {
            let meta = read_meta(store, &o.location).await.unwrap();
            let marked = objects.iter().any(|x| {
                x.location.filename() == Some("deletion-mark.json")
                    && x.location
                        .prefix_matches(&o.location.parts().take(3).collect())
            });
            out.push((meta, marked));
        }
    }
    out
}

type Aggregated = Vec<(Labels, Vec<i64>, Vec<u64>)>;

/// The series of the one unmarked block of resolution `res` (it must be exactly one).
async fn downsampled(store: &Arc<dyn ObjectStore>, tenant: &TenantId, res: i64) -> Aggregated {
    let live: Vec<BlockMeta> = metas(store, tenant)
        .await
        .into_iter()
        .filter(|(m, marked)| !marked && m.resolution_ms == res)
        .map(|(m, _)| m)
        .collect();
    assert_eq!(live.len(), 1, "one block of resolution {res}: {live:?}");
    let r = BlockReader::new(Arc::clone(store), live[0].clone()).unwrap();
    let labels = r.all_series().await.unwrap();
    let refs: Vec<u32> = (0..labels.len() as u32).collect();
    r.read_refs(&refs, TimeRange::new(i64::MIN, i64::MAX))
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                labels[s.series_ref as usize].clone(),
                s.timestamps.values().to_vec(),
                s.values.values().iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

/// Downsampling after 6h: the compacted 8h block gets a 5m block and that one a 1h block.
fn downsample_cfg() -> CompactorConfig {
    CompactorConfig {
        downsample_5m_min_span: Duration::from_secs(6 * 3600),
        downsample_1h_min_span: Duration::from_secs(6 * 3600),
        ..cfg()
    }
}

async fn long_blocks_are_downsampled_once(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let tenant = TenantId::new("t").unwrap();
    seed(&store, &tenant).await;
    let (raw, _, _) = query(&store, &tenant).await;

    let c = Compactor::new(Arc::clone(&store), downsample_cfg()).unwrap();
    let report = c.run_once().await.unwrap();
    assert_eq!(report.written.len(), 1);
    let merged = &report.written[0];
    let res: Vec<i64> = report.downsampled.iter().map(|m| m.resolution_ms).collect();
    assert_eq!(res, vec![RESOLUTION_5M, RESOLUTION_1H]);
    let (m5, h1) = (&report.downsampled[0], &report.downsampled[1]);
    assert_eq!(m5.sources, vec![merged.ulid]);
    assert_eq!(h1.sources, vec![m5.ulid]);
    for m in [m5, h1] {
        assert_eq!(
            (m.min_time, m.max_time, m.level, m.source.as_str()),
            (merged.min_time, merged.max_time, merged.level, "downsample")
        );
    }
    // Raw reads are unchanged.
    assert_eq!(query(&store, &tenant).await.0, raw);

    // The 5m block holds the aggregates of the raw data of the compacted window (the
    // all-stale series has none), the 1h block those of the 5m block.
    let got5 = downsampled(&store, &tenant, RESOLUTION_5M).await;
    let mut want5 = Vec::new();
    for (labels, ts, bits) in &raw {
        let n = ts.iter().filter(|t| **t <= merged.max_time).count();
        let values: Vec<f64> = bits[..n].iter().map(|b| f64::from_bits(*b)).collect();
        let aggs = aggregate_raw(&ts[..n], &values, RESOLUTION_5M);
        for kind in AGGREGATES {
            let part = aggs.get(kind).unwrap();
            if part.ts.is_empty() {
                continue;
            }
            let mut l = labels.clone();
            l.set(AGGR_LABEL, kind.label_value().unwrap());
            want5.push((
                l,
                part.ts.clone(),
                part.values.iter().map(|v| v.to_bits()).collect(),
            ));
        }
    }
    want5.sort();
    assert_eq!(got5, want5);
    assert_eq!(got5.len(), 15);
    let got1 = downsampled(&store, &tenant, RESOLUTION_1H).await;
    let want1: Aggregated = got5
        .iter()
        .map(|(l, ts, bits)| {
            let kind = AGGREGATES
                .into_iter()
                .find(|a| a.label_value() == Some(l.get(AGGR_LABEL)))
                .unwrap();
            let values = bits.iter().map(|b| f64::from_bits(*b)).collect();
            let p = reduce(kind, &Part::new(ts.clone(), values), RESOLUTION_1H);
            (
                l.clone(),
                p.ts,
                p.values.iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect();
    assert_eq!(got1, want1);

    // The next runs delete the replaced raw blocks and downsample nothing again.
    let report = c.run_once().await.unwrap();
    assert!(report.written.is_empty() && report.downsampled.is_empty());
    assert_eq!(report.deleted, 4);
    assert!(c.run_once().await.unwrap().downsampled.is_empty());
    assert_eq!(
        block_folders(&store).await,
        4,
        "two raw blocks, one 5m, one 1h"
    );

    // Switched off: nothing is downsampled.
    let store = buckets.fresh();
    seed(&store, &tenant).await;
    let off = CompactorConfig {
        downsample: false,
        ..downsample_cfg()
    };
    let report = Compactor::new(Arc::clone(&store), off)
        .unwrap()
        .run_once()
        .await
        .unwrap();
    assert!(report.downsampled.is_empty() && report.written.len() == 1);
}

async fn a_crash_while_downsampling_is_finished_by_the_next_run(kind: Kind) {
    let tenant = TenantId::new("t").unwrap();
    // The reference: a clean run, and the mutating steps it takes.
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    seed(&store, &tenant).await;
    let (raw, _, _) = query(&store, &tenant).await;
    let counting = Arc::new(FaultStore {
        inner: Arc::clone(&store),
        budget: usize::MAX,
        used: AtomicUsize::new(0),
    });
    let report = Compactor::new(
        Arc::clone(&counting) as Arc<dyn ObjectStore>,
        downsample_cfg(),
    )
    .unwrap()
    .run_once()
    .await
    .unwrap();
    assert_eq!(report.downsampled.len(), 2);
    let steps = counting.used.load(Ordering::SeqCst);
    let want5 = downsampled(&store, &tenant, RESOLUTION_5M).await;
    let want1 = downsampled(&store, &tenant, RESOLUTION_1H).await;

    for budget in 0..steps {
        let store = buckets.fresh();
        seed(&store, &tenant).await;
        let faulty: Arc<dyn ObjectStore> = Arc::new(FaultStore {
            inner: Arc::clone(&store),
            budget,
            used: AtomicUsize::new(0),
        });
        let r = Compactor::new(faulty, downsample_cfg())
            .unwrap()
            .run_once()
            .await;
        assert!(r.is_err() || budget + 1 == steps, "budget {budget}");
        // Never two complete blocks of one resolution for the same data.
        for res in [RESOLUTION_5M, RESOLUTION_1H] {
            let n = metas(&store, &tenant)
                .await
                .iter()
                .filter(|(m, marked)| m.resolution_ms == res && !marked)
                .count();
            assert!(n <= 1, "budget {budget}: {n} blocks of resolution {res}");
        }
        let c = Compactor::new(Arc::clone(&store), downsample_cfg()).unwrap();
        c.run_once().await.unwrap();
        c.run_once().await.unwrap();
        assert_eq!(query(&store, &tenant).await.0, raw, "budget {budget}");
        assert_eq!(
            downsampled(&store, &tenant, RESOLUTION_5M).await,
            want5,
            "budget {budget}"
        );
        assert_eq!(
            downsampled(&store, &tenant, RESOLUTION_1H).await,
            want1,
            "budget {budget}"
        );
        assert_eq!(
            block_folders(&store).await,
            4,
            "budget {budget}: leftovers deleted"
        );
    }
}

async fn retention_is_overridden_per_tenant(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let names = ["short", "forever", "default"];
    for name in names {
        let tenant = TenantId::new(name).unwrap();
        // Samples of 1970: older than any retention.
        let ts = scrape(0, H, 0);
        write_block(
            &store,
            &tenant,
            vec![series(&[("__name__", "up")], &ts, |_| 1.0)],
        )
        .await
        .unwrap();
    }
    let overrides = TenantRetention::new(|t: &TenantId| match t.as_str() {
        "short" => RetentionOverride {
            raw: Some(Duration::from_secs(3600)),
            ..RetentionOverride::default()
        },
        "forever" => RetentionOverride {
            raw: Some(Duration::ZERO),
            ..RetentionOverride::default()
        },
        _ => RetentionOverride::default(),
    });
    let run = |retention_raw: Option<Duration>| {
        let store = Arc::clone(&store);
        let overrides = overrides.clone();
        async move {
            let cfg = CompactorConfig {
                retention_raw,
                tenant_retention: Some(overrides),
                ..cfg()
            };
            Compactor::new(store, cfg)
                .unwrap()
                .run_once()
                .await
                .unwrap()
        }
    };
    let marked = |store: Arc<dyn ObjectStore>| async move {
        let mut out = Vec::new();
        for name in names {
            let m = metas(&store, &TenantId::new(name).unwrap()).await;
            out.push(m.iter().filter(|(_, marked)| *marked).count());
        }
        out
    };
    // No retention by flag: only the tenant with an override loses its block.
    assert_eq!(run(None).await.marked, 1);
    assert_eq!(marked(Arc::clone(&store)).await, vec![1, 0, 0]);
    // A flag of one day: the neighbour without an override follows it, the tenant whose
    // override is 0 keeps its block forever.
    let r = run(Some(Duration::from_secs(86_400))).await;
    assert_eq!((r.marked, r.deleted), (1, 1));
    let left: Vec<usize> = {
        let mut v = Vec::new();
        for name in names {
            v.push(metas(&store, &TenantId::new(name).unwrap()).await.len());
        }
        v
    };
    assert_eq!(left, vec![0, 1, 1]);
    assert_eq!(marked(Arc::clone(&store)).await, vec![0, 0, 1]);
}

async fn a_block_that_cannot_be_downsampled_does_not_stop_the_others(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let ts = scrape(0, 7 * H, 0);
    for (tenant, labels) in [
        ("bad", [("__name__", "up"), (AGGR_LABEL, "sum")]),
        ("good", [("__name__", "up"), ("job", "a")]),
    ] {
        let tenant = TenantId::new(tenant).unwrap();
        write_block(&store, &tenant, vec![series(&labels, &ts, |_| 1.0)])
            .await
            .unwrap();
    }
    let c = Compactor::new(Arc::clone(&store), downsample_cfg()).unwrap();
    let report = c.run_once().await.unwrap();
    let tenants: Vec<&str> = report
        .downsampled
        .iter()
        .map(|m| m.tenant.as_str())
        .collect();
    assert_eq!(tenants, vec!["good", "good"], "5m, then 1h");
    let bad = metas(&store, &TenantId::new("bad").unwrap()).await;
    assert_eq!(bad.len(), 1, "the bad block is left as it is");
}

/// A histogram standing for the observations of a series up to `t` (any `t` gives a
/// different one).
fn histogram_at(t: i64, k: i64) -> FloatHistogram {
    let n = (t / 15_000) as f64;
    FloatHistogram {
        counter_reset_hint: ResetHint::NotReset,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: n,
        count: 4.0 * n + k as f64,
        sum: n * 0.1 + (t % 7) as f64,
        positive_spans: vec![Span {
            offset: (k % 3) as i32,
            length: 3,
        }],
        positive_buckets: vec![n, 2.0 * n, n + k as f64],
        negative_spans: Vec::new(),
        negative_buckets: Vec::new(),
        custom_values: Vec::new(),
    }
}

/// A series whose samples at `is_histogram` times are histograms, the others floats.
fn hseries(
    labels: &[(&str, &str)],
    ts: &[i64],
    k: i64,
    is_histogram: impl Fn(i64) -> bool,
) -> SeriesData {
    let values: Vec<f64> = ts
        .iter()
        .map(|t| {
            if is_histogram(*t) {
                0.0
            } else {
                (*t / 1000) as f64
            }
        })
        .collect();
    let encoded: Vec<Option<Vec<u8>>> = ts
        .iter()
        .map(|t| is_histogram(*t).then(|| histogram_at(*t, k).encode()))
        .collect();
    SeriesData::with_histograms(
        Labels::from_pairs(labels.iter().copied()),
        Int64Array::from(ts.to_vec()),
        Float64Array::from(values),
        encoded.iter().map(|h| h.as_deref()).collect(),
    )
}

/// Every sample of every raw series: a float's bits or a histogram's stored bytes.
type Samples = Vec<(Labels, Vec<(i64, Result<u64, Vec<u8>>)>)>;

async fn query_samples(store: &Arc<dyn ObjectStore>, tenant: &TenantId) -> Samples {
    let catalog = BlockCatalog::new(Arc::clone(store));
    catalog.sync().await.unwrap();
    let got = catalog
        .select(tenant, &[], TimeRange::new(i64::MIN, i64::MAX))
        .await
        .unwrap();
    got.into_iter()
        .map(|s| {
            let h = s.histograms();
            let samples = (0..s.len())
                .map(|i| {
                    let t = s.timestamps().value(i);
                    match h.filter(|h| h.is_valid(i)) {
                        Some(h) => (t, Err(h.value(i).to_vec())),
                        None => (t, Ok(s.values().value(i).to_bits())),
                    }
                })
                .collect();
            (s.labels, samples)
        })
        .collect()
}

/// Blocks holding native histograms (alone, mixed with floats, in HA replicas, in
/// overlapping blocks) are merged and deduplicated with their histograms kept bit for bit,
/// and downsampled into the aggregates of their float samples only.
async fn histograms_survive_merge_dedup_and_downsampling(kind: Kind) {
    let Some(mut buckets) = Buckets::new(kind) else {
        return;
    };
    let store = buckets.fresh();
    let tenant = TenantId::new("t").unwrap();
    // [0, 4h) and [3h, 8h) overlap (a retried write); [8h, 9h) closes the 8h window.
    for (from, to) in [(0, 4 * H), (3 * H, 8 * H), (8 * H, 9 * H)] {
        let ts = scrape(from, to, 0);
        // Replica A misses [2h, 3h), replica B [3h, 4h).
        let a: Vec<i64> = ts
            .iter()
            .copied()
            .filter(|t| !(2 * H..3 * H).contains(t))
            .collect();
        let b: Vec<i64> = scrape(from, to, 5000)
            .into_iter()
            .filter(|t| !(3 * H..4 * H).contains(t))
            .collect();
        write_block(
            &store,
            &tenant,
            vec![
                hseries(&[("__name__", "h"), ("job", "a")], &ts, 1, |_| true),
                // Floats for 5h, then histograms (a metric changing type).
                hseries(&[("__name__", "mixed"), ("job", "a")], &ts, 2, |t| {
                    t >= 5 * H
                }),
                series(&[("__name__", "g"), ("job", "a")], &ts, |t| {
                    ((t / 7) % 4096) as f64
                }),
                hseries(&[("__name__", "rh"), ("replica", "A")], &a, 3, |_| true),
                hseries(&[("__name__", "rh"), ("replica", "B")], &b, 4, |_| true),
            ],
        )
        .await
        .unwrap();
    }
    let before = query_samples(&store, &tenant).await;

    let c = Compactor::new(
        Arc::clone(&store),
        CompactorConfig {
            replica_labels: vec!["replica".into()],
            ..downsample_cfg()
        },
    )
    .unwrap();
    let report = c.run_once().await.unwrap();
    assert_eq!(report.written.len(), 1);
    let merged = report.written[0].clone();
    assert_eq!(merged.sources.len(), 2);
    let res: Vec<i64> = report.downsampled.iter().map(|m| m.resolution_ms).collect();
    assert_eq!(res, vec![RESOLUTION_5M, RESOLUTION_1H]);

    let after = query_samples(&store, &tenant).await;
    // Series without replicas read back exactly as before, histograms included.
    let plain = |s: &Samples| -> Samples {
        s.iter()
            .filter(|(l, _)| l.get("replica").is_empty() && l.metric_name() != "rh")
            .cloned()
            .collect()
    };
    let kept = plain(&after);
    assert_eq!(kept, plain(&before));
    let names: Vec<&str> = kept.iter().map(|(l, _)| l.metric_name()).collect();
    assert_eq!(names, vec!["g", "h", "mixed"]);
    let (_, h) = &after[1];
    assert!(h.iter().all(|s| s.1.is_err()), "h holds histograms only");
    assert_eq!(
        h.iter().map(|s| s.0).collect::<Vec<_>>(),
        scrape(0, 9 * H, 0),
        "each sample once, the overlap included"
    );
    let (_, mixed) = &after[2];
    assert!(mixed.iter().all(|(t, s)| s.is_err() == (*t >= 5 * H)));
    // In the compacted window the replicas are one series of histograms, each gap filled
    // by the other replica; the newest block still has both.
    let rh = Labels::from_pairs([("__name__", "rh")]);
    let (_, deduped) = after.iter().find(|(l, _)| *l == rh).expect("deduplicated");
    assert!(deduped.iter().all(|(t, s)| s.is_err() && *t < 8 * H));
    let from_a = |t: i64| (t - 5000).rem_euclid(15_000) > 10;
    assert!(
        deduped
            .iter()
            .any(|(t, _)| (2 * H..3 * H).contains(t) && !from_a(*t))
    );
    assert!(
        deduped
            .iter()
            .any(|(t, _)| (3 * H..4 * H).contains(t) && from_a(*t))
    );
    for (t, s) in deduped {
        let k = if from_a(*t) { 3 } else { 4 };
        assert_eq!(s, &Err(histogram_at(*t, k).encode()), "at {t}");
    }
    assert!(
        deduped
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= 10_000 && w[1].0 - w[0].0 <= 20_000 + 7)
    );

    // Downsampled: the float samples only. `h` and `rh` hold none, `mixed` its first 5h.
    let got5 = downsampled(&store, &tenant, RESOLUTION_5M).await;
    let series5: std::collections::BTreeSet<&str> =
        got5.iter().map(|(l, _, _)| l.metric_name()).collect();
    assert_eq!(series5.into_iter().collect::<Vec<_>>(), vec!["g", "mixed"]);
    assert_eq!(got5.len(), 10);
    let mixed_ts: Vec<i64> = mixed
        .iter()
        .filter(|(t, s)| s.is_ok() && *t <= merged.max_time)
        .map(|(t, _)| *t)
        .collect();
    let values: Vec<f64> = mixed_ts.iter().map(|t| (t / 1000) as f64).collect();
    let want = aggregate_raw(&mixed_ts, &values, RESOLUTION_5M);
    for kind in AGGREGATES {
        let (_, ts, bits) = got5
            .iter()
            .find(|(l, _, _)| {
                l.metric_name() == "mixed" && l.get(AGGR_LABEL) == kind.label_value().unwrap()
            })
            .unwrap();
        let part = want.get(kind).unwrap();
        assert_eq!(ts, &part.ts, "{kind:?}");
        assert_eq!(
            bits,
            &part.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    let got1 = downsampled(&store, &tenant, RESOLUTION_1H).await;
    assert_eq!(got1.len(), 10);
}

/// Runs each test body once per store kind, as `local::<name>` and `s3::<name>`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Local).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::S3).await
                }
            )*
        }
    };
}

on_both_stores!(
    compacts_levels_and_deletes_after_delay,
    blocks_whose_meta_cannot_be_trusted_are_skipped_and_kept,
    replicas_are_deduplicated_into_one_series,
    a_crash_at_any_step_is_finished_by_the_next_run,
    a_second_compactor_is_refused_while_the_lease_is_held,
    long_blocks_are_downsampled_once,
    a_crash_while_downsampling_is_finished_by_the_next_run,
    retention_is_overridden_per_tenant,
    a_block_that_cannot_be_downsampled_does_not_stop_the_others,
    histograms_survive_merge_dedup_and_downsampling,
);
