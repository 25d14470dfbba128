//! One compaction run: take the lease, delete what was marked long enough ago, mark what
//! is replaced or past retention, then plan and merge level by level; when nothing is left
//! to merge, downsample long blocks (raw to 5m, 5m to 1h) and merge again.
//!
//! Crash safety: a new block is complete once its `meta.json` exists, and from then on it
//! hides its sources from readers (they are listed in its `sources`). Deletion marks on the
//! sources come after, and deletions after the delay. A run killed anywhere leaves either a
//! folder without `meta.json` (ignored, deleted once older than `partial_age`) or a complete
//! block whose sources lack their marks: the next run adds them first thing. So a rerun
//! finishes the work and nothing is lost or served twice. Downsampling writes a new block
//! of another resolution and marks nothing: a crash leaves a partial folder (deleted later,
//! and the block made again) or the complete block, which the next run sees and skips.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use hypnos_schemas::TenantId;
use hypnos_schemas::block::{BlockReader, read_meta};
use hypnos_schemas::layout::{
    BlockMeta, DELETION_MARK_FILE, DeletionMark, META_FILE, TENANTS_DIR, block_file,
    parse_block_path,
};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use tracing::{error, info, warn};
use ulid::Ulid;

use crate::CompactError;
use crate::downsample::downsample_block;
use crate::lock::{self, now_ms};
use crate::merge::merge_blocks;
use crate::plan::{DEFAULT_RANGES, plan, plan_downsample, replaced};

pub use hypnos_schemas::limits::RetentionOverride;

/// Looks up the retention overrides of a tenant (called at every run, so a reloaded limits
/// file takes effect at the next run).
#[derive(Clone)]
pub struct TenantRetention(pub Arc<dyn Fn(&TenantId) -> RetentionOverride + Send + Sync>);

impl TenantRetention {
    pub fn new(f: impl Fn(&TenantId) -> RetentionOverride + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for TenantRetention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantRetention(..)")
    }
}

/// How a compactor behaves.
#[derive(Clone, Debug)]
pub struct CompactorConfig {
    /// Level ranges in ms, smallest first (the first is the head block duration).
    pub ranges: Vec<i64>,
    /// Labels telling HA replicas apart; removed, and replicas merged into one series.
    pub replica_labels: Vec<String>,
    /// How long a block marked for deletion stays (readers may still be reading it).
    pub delete_delay: Duration,
    /// Blocks of raw, 5m and 1h resolution are marked for deletion once they end this long
    /// ago; `None` keeps them forever.
    pub retention_raw: Option<Duration>,
    pub retention_5m: Option<Duration>,
    pub retention_1h: Option<Duration>,
    /// Per-tenant overrides of the three retentions; `None`: the same for every tenant.
    pub tenant_retention: Option<TenantRetention>,
    /// Downsample long blocks (raw to 5m, 5m to 1h) once nothing is left to merge.
    pub downsample: bool,
    /// A raw block spanning at least this long gets a 5m block (Thanos: 40h).
    pub downsample_5m_min_span: Duration,
    /// A 5m block spanning at least this long gets a 1h block (Thanos: 10 days).
    pub downsample_1h_min_span: Duration,
    /// A block folder without `meta.json` nor a deletion mark (a writer that died) is
    /// deleted once all its files are this old.
    pub partial_age: Duration,
    /// Who we are in the lease.
    pub owner: String,
    /// Lease duration (renewed between compaction steps).
    pub lease: Duration,
    /// Parallel merges (rayon threads).
    pub concurrency: usize,
    /// Upper bound on plan-merge passes per run.
    pub max_passes: usize,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            ranges: DEFAULT_RANGES.to_vec(),
            replica_labels: Vec::new(),
            delete_delay: Duration::from_secs(48 * 3600),
            retention_raw: None,
            retention_5m: None,
            retention_1h: None,
            tenant_retention: None,
            downsample: true,
            downsample_5m_min_span: Duration::from_secs(40 * 3600),
            downsample_1h_min_span: Duration::from_secs(10 * 24 * 3600),
            partial_age: Duration::from_secs(48 * 3600),
            owner: format!("pid-{}-{}", std::process::id(), Ulid::new()),
            lease: Duration::from_secs(300),
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            max_passes: 16,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct CompactReport {
    /// Blocks written by merges.
    pub written: Vec<BlockMeta>,
    /// Blocks written by downsampling.
    pub downsampled: Vec<BlockMeta>,
    /// Deletion marks written.
    pub marked: usize,
    /// Blocks (or partial folders) deleted.
    pub deleted: usize,
    /// Blocks left alone because their `meta.json` cannot be trusted: it does not parse, has
    /// a schema version this build cannot read, or names another tenant or block than its
    /// path. Counted once per listing (a run may list several times).
    pub skipped: usize,
}

/// One block folder as listed.
#[derive(Debug, Default)]
struct Folder {
    files: Vec<ObjectMeta>,
}

impl Folder {
    fn has(&self, name: &str) -> bool {
        self.files
            .iter()
            .any(|f| f.location.filename() == Some(name))
    }
}

/// The compactor of one bucket.
pub struct Compactor {
    store: Arc<dyn ObjectStore>,
    cfg: CompactorConfig,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor").field("cfg", &self.cfg).finish()
    }
}

impl Compactor {
    pub fn new(store: Arc<dyn ObjectStore>, cfg: CompactorConfig) -> Result<Self, CompactError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.concurrency.max(1))
            .thread_name(|i| format!("hypnos-compact-{i}"))
            .build()
            .map_err(|e| CompactError::Task(e.to_string()))?;
        Ok(Self { store, cfg, pool })
    }

    /// One run under the lease: cleanup, marks, then compaction passes until nothing is left
    /// to merge. Fails with [`CompactError::Locked`] when another compactor holds the bucket.
    pub async fn run_once(&self) -> Result<CompactReport, CompactError> {
        lock::acquire(&self.store, &self.cfg.owner, self.cfg.lease).await?;
        let result = self.run_locked().await;
        if let Err(e) = lock::release(&self.store, &self.cfg.owner).await {
            warn!(error = %e, "cannot release the compactor lease; it expires by itself");
        }
        result
    }

    async fn run_locked(&self) -> Result<CompactReport, CompactError> {
        let mut report = CompactReport::default();
        report.deleted += self.delete_marked_and_partial().await?;
        // Blocks whose downsampling failed on their content: not tried again in this run.
        let mut failed: HashSet<Ulid> = HashSet::new();
        for _ in 0..self.cfg.max_passes.max(1) {
            let (tenants, skipped) = self.list_blocks().await?;
            report.skipped = skipped;
            let mut jobs: Vec<Vec<Arc<BlockReader>>> = Vec::new();
            let mut downsample_jobs: Vec<(Arc<BlockReader>, i64)> = Vec::new();
            for (tenant, blocks) in &tenants {
                let (visible, marks) = self.mark(tenant, blocks).await?;
                report.marked += marks;
                if self.cfg.downsample {
                    for (m, res) in self.plan_downsample(tenant, &visible) {
                        if failed.contains(&m.ulid) {
                            continue;
                        }
                        let reader = BlockReader::new(Arc::clone(&self.store), m)?;
                        downsample_jobs.push((Arc::new(reader), res));
                    }
                }
                for group in plan(&visible, &self.cfg.ranges) {
                    let readers = group
                        .into_iter()
                        .map(|m| BlockReader::new(Arc::clone(&self.store), m).map(Arc::new))
                        .collect::<Result<Vec<_>, _>>()?;
                    jobs.push(readers);
                }
            }
            if jobs.is_empty() {
                // Nothing left to merge: downsample, then merge what that made.
                if downsample_jobs.is_empty() {
                    break;
                }
                lock::acquire(&self.store, &self.cfg.owner, self.cfg.lease).await?;
                let written = self.downsample_all(downsample_jobs.clone()).await;
                for ((input, res), result) in downsample_jobs.iter().zip(written) {
                    let meta = match result {
                        Ok(meta) => meta,
                        // A block that cannot be downsampled (bad input, not IO) does not
                        // stop the compaction of the others.
                        Err(e @ CompactError::Downsample(_)) => {
                            warn!(block = %input.meta().ulid, error = %e, "block not downsampled");
                            failed.insert(input.meta().ulid);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    info!(
                        tenant = %meta.tenant,
                        block = %meta.ulid,
                        from = %input.meta().ulid,
                        resolution_ms = res,
                        series = meta.num_series,
                        samples = meta.num_samples,
                        "downsampled block"
                    );
                    report.downsampled.push(meta);
                }
                continue;
            }
            lock::acquire(&self.store, &self.cfg.owner, self.cfg.lease).await?;
            let written = self.merge_all(jobs.clone()).await;
            for (inputs, result) in jobs.iter().zip(written) {
                let meta = result?;
                info!(
                    tenant = %meta.tenant,
                    block = %meta.ulid,
                    level = meta.level,
                    inputs = inputs.len(),
                    series = meta.num_series,
                    samples = meta.num_samples,
                    "compacted blocks"
                );
                for b in inputs {
                    self.write_mark(b.meta(), &format!("compacted into {}", meta.ulid))
                        .await?;
                    report.marked += 1;
                }
                report.written.push(meta);
            }
        }
        Ok(report)
    }

    /// Merges every group, in parallel on the rayon pool; IO goes through the tokio runtime
    /// of the caller.
    async fn merge_all(
        &self,
        jobs: Vec<Vec<Arc<BlockReader>>>,
    ) -> Vec<Result<BlockMeta, CompactError>> {
        let handle = tokio::runtime::Handle::current();
        let store = Arc::clone(&self.store);
        let replica = self.cfg.replica_labels.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let n = jobs.len();
        self.pool.spawn(move || {
            use rayon::prelude::*;
            let out: Vec<_> = jobs
                .par_iter()
                .map(|inputs| handle.block_on(merge_blocks(&store, inputs, &replica)))
                .collect();
            let _ = tx.send(out);
        });
        rx.await.unwrap_or_else(|_| {
            (0..n)
                .map(|_| Err(CompactError::Task("merge worker panicked".into())))
                .collect()
        })
    }

    /// Downsamples every block, in parallel on the rayon pool like merges.
    async fn downsample_all(
        &self,
        jobs: Vec<(Arc<BlockReader>, i64)>,
    ) -> Vec<Result<BlockMeta, CompactError>> {
        let handle = tokio::runtime::Handle::current();
        let store = Arc::clone(&self.store);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let n = jobs.len();
        self.pool.spawn(move || {
            use rayon::prelude::*;
            let out: Vec<_> = jobs
                .par_iter()
                .map(|(input, res)| handle.block_on(downsample_block(&store, input, *res)))
                .collect();
            let _ = tx.send(out);
        });
        rx.await.unwrap_or_else(|_| {
            (0..n)
                .map(|_| Err(CompactError::Task("downsampling worker panicked".into())))
                .collect()
        })
    }

    /// The downsampling jobs of one tenant's visible blocks, leaving out those whose result
    /// would be past its retention at once (it would be marked, and made again, every run).
    fn plan_downsample(&self, tenant: &TenantId, visible: &[BlockMeta]) -> Vec<(BlockMeta, i64)> {
        let span = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        plan_downsample(
            visible,
            span(self.cfg.downsample_5m_min_span),
            span(self.cfg.downsample_1h_min_span),
        )
        .into_iter()
        .filter(|(m, res)| {
            self.retention(tenant, *res)
                .is_none_or(|d| m.max_time >= now - span(d))
        })
        .collect()
    }

    /// The retention of one tenant's blocks of resolution `res` (`None`: forever).
    fn retention(&self, tenant: &TenantId, res: i64) -> Option<Duration> {
        let o = self
            .cfg
            .tenant_retention
            .as_ref()
            .map(|f| (f.0)(tenant))
            .unwrap_or_default();
        match res {
            0 => o.raw.or(self.cfg.retention_raw),
            300_000 => o.res_5m.or(self.cfg.retention_5m),
            _ => o.res_1h.or(self.cfg.retention_1h),
        }
        .filter(|d| !d.is_zero())
    }

    /// Lists every block folder by tenant and ULID.
    async fn list_folders(&self) -> Result<BTreeMap<(TenantId, Ulid), Folder>, CompactError> {
        let objects: Vec<ObjectMeta> = self
            .store
            .list(Some(&Path::from(TENANTS_DIR)))
            .try_collect()
            .await?;
        let mut folders: BTreeMap<(TenantId, Ulid), Folder> = BTreeMap::new();
        for o in objects {
            if let Some((t, u, _)) = parse_block_path(&o.location) {
                folders.entry((t, u)).or_default().files.push(o);
            }
        }
        Ok(folders)
    }

    /// The metas of every complete block, with whether it is marked, by tenant.
    /// The blocks of every tenant with whether each is marked for deletion, and how many
    /// blocks were skipped. A block whose `meta.json` cannot be trusted (it does not parse,
    /// is of a newer schema, or names another tenant or block than its path) is skipped with
    /// an error log: never compacted, marked or deleted, and it stops nothing else. An
    /// object-store failure still fails the run (a block missing from a listing could be
    /// compacted twice).
    async fn list_blocks(
        &self,
    ) -> Result<(BTreeMap<TenantId, Vec<(BlockMeta, bool)>>, usize), CompactError> {
        use hypnos_schemas::SchemaError;
        let mut out: BTreeMap<TenantId, Vec<(BlockMeta, bool)>> = BTreeMap::new();
        let mut skipped = 0;
        for ((t, u), f) in self.list_folders().await? {
            if !f.has(META_FILE) {
                continue;
            }
            let meta = match read_meta(&self.store, &block_file(&t, u, META_FILE)).await {
                Ok(m) => m,
                Err(SchemaError::ObjectStore(object_store::Error::NotFound { .. })) => continue,
                Err(e @ SchemaError::ObjectStore(_)) => return Err(e.into()),
                Err(e) => {
                    error!(tenant = %t, block = %u, error = %e, "block skipped by the compactor: its meta.json cannot be read");
                    skipped += 1;
                    continue;
                }
            };
            if meta.tenant != t.as_str() || meta.ulid != u {
                error!(
                    tenant = %t,
                    block = %u,
                    meta_tenant = %meta.tenant,
                    meta_block = %meta.ulid,
                    "block skipped by the compactor: its meta.json names another tenant or block than its path"
                );
                skipped += 1;
                continue;
            }
            out.entry(t)
                .or_default()
                .push((meta, f.has(DELETION_MARK_FILE)));
        }
        Ok((out, skipped))
    }

    /// Marks the blocks of one tenant that are replaced (their new block exists) or past
    /// retention; returns the blocks left to compact and how many marks were written.
    async fn mark(
        &self,
        tenant: &TenantId,
        blocks: &[(BlockMeta, bool)],
    ) -> Result<(Vec<BlockMeta>, usize), CompactError> {
        let metas: Vec<BlockMeta> = blocks.iter().map(|(m, _)| m.clone()).collect();
        let gone = replaced(&metas);
        let now = now_ms();
        let mut visible = Vec::new();
        let mut marks = 0;
        for (m, marked) in blocks {
            let retention = self.retention(tenant, m.resolution_ms);
            let expired = retention.is_some_and(|d| m.max_time < now - d.as_millis() as i64);
            let why = if gone.contains(&m.ulid) {
                Some("replaced by a compacted block")
            } else if expired {
                Some("past retention")
            } else {
                None
            };
            match why {
                Some(why) if !marked => {
                    self.write_mark(m, why).await?;
                    marks += 1;
                }
                Some(_) => {}
                None if !marked => visible.push(m.clone()),
                None => {}
            }
        }
        Ok((visible, marks))
    }

    async fn write_mark(&self, meta: &BlockMeta, details: &str) -> Result<(), CompactError> {
        let tenant = TenantId::new(&meta.tenant)?;
        let mark = DeletionMark {
            id: meta.ulid,
            deletion_time: now_ms() / 1000,
            version: 1,
            details: details.to_string(),
        };
        let json = serde_json::to_vec_pretty(&mark).expect("mark serializes");
        self.store
            .put(
                &block_file(&tenant, meta.ulid, DELETION_MARK_FILE),
                json.into(),
            )
            .await?;
        Ok(())
    }

    /// Deletes blocks marked longer than the delete delay ago (meta first, the mark last),
    /// and folders that never got a meta once they are older than `partial_age`.
    async fn delete_marked_and_partial(&self) -> Result<usize, CompactError> {
        let now = now_ms();
        let mut deleted = 0;
        for ((t, u), f) in self.list_folders().await? {
            let due = if f.has(DELETION_MARK_FILE) {
                let path = block_file(&t, u, DELETION_MARK_FILE);
                let bytes = self.store.get(&path).await?.bytes().await?;
                let marked_ms = match serde_json::from_slice::<DeletionMark>(&bytes) {
                    Ok(mark) => mark.deletion_time * 1000,
                    // A torn mark still says "delete": it counts from when it was written.
                    Err(e) => {
                        let written = f
                            .files
                            .iter()
                            .find(|o| o.location.filename() == Some(DELETION_MARK_FILE))
                            .map_or(now, |o| o.last_modified.timestamp_millis());
                        warn!(file = %path, error = %e, marked_at_ms = written, "damaged deletion mark: the block is deleted after the delay from when the mark was written");
                        written
                    }
                };
                marked_ms + self.cfg.delete_delay.as_millis() as i64 <= now
            } else if !f.has(META_FILE) {
                f.files.iter().all(|o| {
                    o.last_modified.timestamp_millis() + self.cfg.partial_age.as_millis() as i64
                        <= now
                })
            } else {
                false
            };
            if !due {
                continue;
            }
            // meta.json first: the block disappears for readers; the mark last, so a
            // crash half-way leaves a marked folder that the next run finishes.
            let mut order: Vec<&ObjectMeta> = f.files.iter().collect();
            let rank = |o: &ObjectMeta| match o.location.filename() {
                Some(META_FILE) => 0,
                Some(DELETION_MARK_FILE) => 2,
                _ => 1,
            };
            order.sort_by_key(|o| rank(o));
            for o in order {
                match self.store.delete(&o.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            info!(tenant = %t, block = %u, "deleted block");
            deleted += 1;
        }
        Ok(deleted)
    }
}
