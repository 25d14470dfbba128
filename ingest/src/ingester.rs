//! [`Ingester`]: the write path end to end (validate, log, apply, acknowledge), the flush
//! protocol, and the heads as a [`SeriesSource`].
//!
//! Invariants:
//! - a write is answered only after its record is fsynced and applied to its tenant's head;
//! - records are applied in log order, by the single writer thread;
//! - a cut happens on that thread between two group commits, so the segments up to the
//!   sealed one hold exactly the records of the cut heads;
//! - a cut head stays readable until the sink has been told about its block; segments are
//!   deleted (and the checkpoint advanced) only once every cut head is in a block.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use hypnos_schemas::block::write_block;
use hypnos_schemas::layout::BlockMeta;
use hypnos_schemas::remote::{MetricMetadata, WriteRequest};
use hypnos_schemas::{
    BlockSink, Labels, Matcher, SchemaError, SeriesData, SeriesSource, TenantId, TimeRange,
};
use object_store::ObjectStore;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::decode::budget::DecodeBudget;
use crate::decode::{
    DEFAULT_MAX_DECOMPRESSED_BYTES, DEFAULT_MAX_INFLIGHT_DECODE_BYTES, Reservation, decode_limited,
};
use crate::exemplars::{
    DEFAULT_MAX_EXEMPLARS_PER_TENANT, ExemplarStats, ExemplarStore, SeriesExemplars,
};
use crate::head::{AppendStats, Head, merge_selections};
use crate::limits::{LimitError, LimitKind, RateLimiter, WriteLimits};
use crate::metrics::Metrics;
#[cfg(test)]
use crate::validate::validate;
use crate::validate::{ValidRequest, check_metadata, validate_limited};
use crate::{IngestError, wal};

mod writer;

use writer::{Append, WalCmd};

/// Requests queued for the writer thread before writers wait.
const WAL_QUEUE: usize = 4096;

/// Shortest pause between two early flushes started by a full WAL.
const EARLY_FLUSH_SPACING: Duration = Duration::from_secs(1);

/// Longest pause between two attempts to upload the heads of a failed flush.
const MAX_FLUSH_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The pause before the next upload attempt after `failures` failed ones in a row: 1 s,
/// doubling, at most [`MAX_FLUSH_RETRY_DELAY`].
fn flush_retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (Duration::from_secs(1) * (1u32 << doublings)).min(MAX_FLUSH_RETRY_DELAY)
}

/// Configuration of the write path.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The WAL lives in `data_dir/wal`.
    pub data_dir: PathBuf,
    /// Heads are cut and flushed this often.
    pub block_duration: Duration,
    /// Larger decompressed bodies are refused with [`IngestError::TooLarge`].
    pub max_decompressed_bytes: usize,
}

impl IngestConfig {
    /// The defaults (2h blocks, 64 MiB bodies) with data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            block_duration: Duration::from_secs(2 * 60 * 60),
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// What a write did. `samples` were added; `duplicates` were dropped because their series
/// already had a sample at that timestamp (a retried request is all duplicates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Series with at least one sample in the request.
    pub series: usize,
    pub samples: usize,
    pub duplicates: usize,
}

/// The heads of every tenant: the active ones taking writes, and cut ones until their
/// blocks are written.
#[derive(Debug, Default)]
struct HeadSet {
    active: HashMap<TenantId, Arc<RwLock<Head>>>,
    /// In cut order: older heads first.
    flushing: Vec<(TenantId, Arc<RwLock<Head>>)>,
}

/// What the writer thread and the ingester share.
#[derive(Debug)]
struct Shared {
    heads: RwLock<HeadSet>,
    /// Exemplars of every tenant; not cut with the heads.
    exemplars: ExemplarStore,
    metrics: Metrics,
    /// Signalled by the writer when it refuses a write because the log is full: the flush
    /// loop flushes early to free space.
    wal_full: tokio::sync::Notify,
}

impl Shared {
    /// Applies a logged request to its tenant's active head.
    fn apply(&self, tenant: &TenantId, mut req: ValidRequest) -> AppendStats {
        let head = self.heads.read().active.get(tenant).cloned();
        let head = head.unwrap_or_else(|| {
            Arc::clone(self.heads.write().active.entry(tenant.clone()).or_default())
        });
        let mut ex = ExemplarStats::default();
        if req.num_exemplars > 0 {
            for s in &mut req.series {
                if !s.exemplars.is_empty() {
                    let a = self
                        .exemplars
                        .add(tenant, &s.labels, std::mem::take(&mut s.exemplars));
                    ex.stored += a.stored;
                    ex.duplicates += a.duplicates;
                    ex.out_of_order += a.out_of_order;
                }
            }
            self.count_exemplars(tenant, ex);
        }
        let mut head = head.write();
        let mut stats = AppendStats::default();
        for s in req.series {
            let a = head.append_mixed(s.labels, &s.samples, s.histograms);
            stats.appended += a.appended;
            stats.duplicates += a.duplicates;
        }
        stats
    }

    fn count_exemplars(&self, tenant: &TenantId, ex: ExemplarStats) {
        let m = &self.metrics;
        let t = tenant.as_str();
        if ex.stored > 0 {
            m.exemplars.with_label_values(&[t]).inc_by(ex.stored as u64);
        }
        for (reason, n) in [
            ("duplicate", ex.duplicates),
            ("out_of_order", ex.out_of_order),
        ] {
            if n > 0 {
                m.exemplars_dropped
                    .with_label_values(&[t, reason])
                    .inc_by(n as u64);
            }
        }
    }

    /// The heads of `tenant`, oldest first.
    fn tenant_heads(&self, tenant: &TenantId) -> Vec<Arc<RwLock<Head>>> {
        let hs = self.heads.read();
        hs.flushing
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, h)| Arc::clone(h))
            .chain(hs.active.get(tenant).cloned())
            .collect()
    }

    /// Series and samples of `tenant` in memory.
    fn tenant_stats(&self, tenant: &TenantId) -> (usize, usize) {
        self.tenant_heads(tenant)
            .iter()
            .map(|h| {
                let h = h.read();
                (h.num_series(), h.num_samples())
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    fn update_gauges(&self, tenant: &TenantId) {
        let (series, samples) = self.tenant_stats(tenant);
        let t = [tenant.as_str()];
        self.metrics
            .head_series
            .with_label_values(&t)
            .set(series as i64);
        self.metrics
            .head_samples
            .with_label_values(&t)
            .set(samples as i64);
        if self.exemplars.enabled() {
            self.metrics
                .head_exemplars
                .with_label_values(&t)
                .set(self.exemplars.len(tenant) as i64);
        }
    }
}

/// The remote-write receiver: WAL, per-tenant heads and flushes. Cheap to share as
/// `Arc<Ingester>`; dropping the last reference stops the WAL writer thread.
pub struct Ingester {
    cfg: IngestConfig,
    wal_dir: PathBuf,
    shared: Arc<Shared>,
    store: Arc<dyn ObjectStore>,
    sink: Arc<dyn BlockSink>,
    wal_tx: mpsc::Sender<WalCmd>,
    wal_thread: Option<std::thread::JoinHandle<()>>,
    /// Serializes flushes; holds the segment sealed by a cut whose heads are not all in
    /// blocks yet (the log is truncated up to it once they are).
    flush_lock: tokio::sync::Mutex<Option<u64>>,
    /// Ingestion-rate buckets of every tenant.
    rates: RateLimiter,
    /// Bytes of requests being decoded, validated or logged, across tenants.
    budget: DecodeBudget,
}

/// A decoded request with the bytes it holds reserved in the decoding budget.
#[derive(Debug)]
pub struct DecodedRequest {
    pub req: WriteRequest,
    reservation: Reservation,
}

/// A request validated under its tenant's limits and encoded for the WAL
/// ([`Ingester::prepare`]), ready for [`Ingester::commit`]. Its metadata entries are handed
/// back to the caller ([`Self::take_metadata`]), who keeps them.
#[derive(Debug)]
pub struct PreparedWrite {
    tenant: TenantId,
    req: ValidRequest,
    payload: Option<Vec<u8>>,
    series: usize,
    metadata: Vec<MetricMetadata>,
    /// Exemplars dropped for their label length, counted once the write is committed.
    exemplars_too_long: usize,
    _reservation: Reservation,
}

impl PreparedWrite {
    /// The metadata entries of the request (checked against `max_metadata_length`).
    pub fn take_metadata(&mut self) -> Vec<MetricMetadata> {
        std::mem::take(&mut self.metadata)
    }

    /// The tenant written to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester")
            .field("cfg", &self.cfg)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Ingester {
    /// Opens the WAL under `data_dir/wal`, replays it into heads (a torn or corrupt tail
    /// record is truncated with a warning; everything before it is kept) and starts the WAL
    /// writer thread. Metrics are registered into `registry`. Keeps up to
    /// [`DEFAULT_MAX_EXEMPLARS_PER_TENANT`] exemplars per tenant.
    pub async fn open(
        cfg: IngestConfig,
        store: Arc<dyn ObjectStore>,
        sink: Arc<dyn BlockSink>,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, IngestError> {
        Self::open_with_exemplar_limit(cfg, DEFAULT_MAX_EXEMPLARS_PER_TENANT, store, sink, registry)
            .await
    }

    /// [`Self::open`] keeping at most `max_exemplars_per_tenant` exemplars per tenant in
    /// memory (the oldest are overwritten first); 0 drops every exemplar at ingest. The
    /// exemplars in the WAL are restored by the replay.
    pub async fn open_with_exemplar_limit(
        cfg: IngestConfig,
        max_exemplars_per_tenant: usize,
        store: Arc<dyn ObjectStore>,
        sink: Arc<dyn BlockSink>,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, IngestError> {
        if cfg.block_duration.is_zero() {
            return Err(IngestError::Config(
                "block duration must be positive".into(),
            ));
        }
        let shared = Arc::new(Shared {
            heads: RwLock::new(HeadSet::default()),
            exemplars: ExemplarStore::new(max_exemplars_per_tenant),
            metrics: Metrics::new(registry)?,
            wal_full: tokio::sync::Notify::new(),
        });
        let wal_dir = cfg.data_dir.join("wal");
        let (heads, wal_writer) = {
            let (dir, shared) = (wal_dir.clone(), Arc::clone(&shared));
            tokio::task::spawn_blocking(move || writer::replay(&dir, &shared))
                .await
                .map_err(|e| IngestError::Wal(std::io::Error::other(e)))??
        };
        let mut tenants: Vec<TenantId> = heads.keys().cloned().collect();
        tenants.extend(
            shared
                .exemplars
                .tenants()
                .into_iter()
                .filter(|t| !heads.contains_key(t)),
        );
        shared.heads.write().active = writer::into_shared_heads(heads);
        for t in &tenants {
            shared.update_gauges(t);
        }
        let (wal_tx, rx) = mpsc::channel(WAL_QUEUE);
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("hypnos-wal".into())
                .spawn(move || wal_writer.run(rx, shared))
                .map_err(|e| IngestError::wal("starting the writer thread", e))?
        };
        info!(wal = %wal_dir.display(), tenants = tenants.len(), "ingester open");
        let budget = DecodeBudget::with_gauge(
            DEFAULT_MAX_INFLIGHT_DECODE_BYTES,
            shared.metrics.inflight_decode_bytes.clone(),
        );
        Ok(Arc::new(Self {
            cfg,
            wal_dir,
            shared,
            store,
            sink,
            wal_tx,
            wal_thread: Some(thread),
            flush_lock: tokio::sync::Mutex::new(None),
            rates: RateLimiter::default(),
            budget,
        }))
    }

    /// Sets the bytes that requests being decoded, validated and logged may hold at once,
    /// across tenants (0: unlimited); past it a request is refused with
    /// [`crate::LimitKind::Rate`], never queued.
    pub fn set_max_inflight_decode_bytes(&self, max: usize) {
        self.budget.set_max(max);
    }

    /// Sets the write-ahead log's budget in bytes (`--wal.max-size`; 0: unlimited). A write
    /// that would take the segments on disk past it is refused with
    /// [`IngestError::WalFull`] (HTTP 503) and a flush is started early (by the flush loop,
    /// [`Self::spawn_flush_loop`]); writes resume once the flush has truncated the log.
    pub fn set_wal_max_bytes(&self, max: u64) {
        self.shared
            .metrics
            .wal_max_bytes
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// Bytes of the write-ahead log's segments on disk.
    pub fn wal_bytes(&self) -> u64 {
        self.shared.metrics.wal_bytes.get().max(0) as u64
    }

    /// Bytes held now by requests being decoded, validated or logged.
    pub fn inflight_decode_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Decodes a remote-write 1.0 body (see [`crate::decode_write_request`]) with this
    /// ingester's size limit and decoding budget, without request limits.
    pub fn decode(
        &self,
        content_encoding: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<WriteRequest, IngestError> {
        self.decode_limited(
            content_encoding,
            content_type,
            body,
            &WriteLimits::unlimited(),
        )
        .map(|d| d.req)
    }

    /// Decodes a remote-write 1.0 body under the request limits of `limits` (series,
    /// samples, label names per series; counted on the wire before anything is decoded),
    /// reserving its memory in the decoding budget (see
    /// [`Self::set_max_inflight_decode_bytes`]). CPU-bound: call it off the async workers.
    pub fn decode_limited(
        &self,
        content_encoding: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
        limits: &WriteLimits,
    ) -> Result<DecodedRequest, IngestError> {
        self.decode_reserved(
            content_encoding,
            content_type,
            body,
            limits,
            self.budget.reservation(),
        )
    }

    /// An empty reservation in the decoding budget, for a request body being received:
    /// grow it with the body's size ([`Reservation::grow`]) before or while collecting it,
    /// then hand it to [`Self::decode_reserved`], so that bodies being received count
    /// against the budget as much as bodies being decoded.
    pub fn body_reservation(&self) -> Reservation {
        self.budget.reservation()
    }

    /// [`Self::decode_limited`] adding its reservations to `reservation` (which holds the
    /// body's bytes, see [`Self::body_reservation`]); the whole is held until the write is
    /// done. The body's bytes stay reserved after the body is dropped: a request holds
    /// its body's size more than it needs once decoded, a bound on the safe side.
    pub fn decode_reserved(
        &self,
        content_encoding: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
        limits: &WriteLimits,
        mut reservation: Reservation,
    ) -> Result<DecodedRequest, IngestError> {
        let req = decode_limited(
            content_encoding,
            content_type,
            body,
            self.cfg.max_decompressed_bytes,
            limits,
            &mut reservation,
        )?;
        Ok(DecodedRequest { req, reservation })
    }

    /// Validates the whole request (nothing is applied when any series is invalid), attaches
    /// `tenant_id=<tenant>` to every series, appends it to the WAL, waits for the fsync (shared
    /// with concurrent writers), applies it to the tenant's head and only then returns: after
    /// `Ok` the samples are visible to `select`.
    pub async fn write(
        &self,
        tenant: &TenantId,
        req: WriteRequest,
    ) -> Result<WriteStats, IngestError> {
        self.write_limited(tenant, req, &WriteLimits::unlimited(), 0)
            .await
    }

    /// [`Self::write`] under the tenant's `limits` (sample ages measured from `now_ms`):
    /// the request is checked whole against every limit before anything of it is logged, so
    /// a refused request ([`IngestError::Limit`]) changes nothing. The series limits are
    /// checked against the active head without holding it across the log write, so
    /// concurrent requests of one tenant may overshoot them by the series of one request.
    pub async fn write_limited(
        &self,
        tenant: &TenantId,
        req: WriteRequest,
        limits: &WriteLimits,
        now_ms: i64,
    ) -> Result<WriteStats, IngestError> {
        let decoded = DecodedRequest {
            req,
            reservation: self.budget.reservation(),
        };
        let prepared = self.prepare(tenant, decoded, limits, now_ms)?;
        self.commit(prepared).await
    }

    /// The CPU-bound half of [`Self::write_limited`], to run off the async workers:
    /// validates `req` under `limits`, checks the series limits, takes its samples and
    /// metadata entries from the tenant's ingestion rate and encodes its WAL record.
    /// `reservation` (from [`Self::decode_limited`]) stays held until the write is done.
    pub fn prepare(
        &self,
        tenant: &TenantId,
        decoded: DecodedRequest,
        limits: &WriteLimits,
        now_ms: i64,
    ) -> Result<PreparedWrite, IngestError> {
        let DecodedRequest {
            mut req,
            reservation,
        } = decoded;
        let metadata = std::mem::take(&mut req.metadata);
        check_metadata(&metadata, limits)?;
        if !self.shared.exemplars.enabled() {
            for ts in &mut req.timeseries {
                ts.exemplars.clear();
            }
        }
        let req = validate_limited(tenant, req, limits, now_ms)?;
        // Exemplars dropped for their length are counted by `commit`: a request refused
        // below must not make its tenant a label value.
        let exemplars_too_long = req.exemplars_too_long;
        if limits.max_series > 0 || limits.max_series_per_metric > 0 {
            self.check_series_limits(tenant, &req, limits)?;
        }
        // Metadata entries cost as much as samples: a metadata-only request is no free ride.
        self.rates
            .take(tenant, req.num_samples + metadata.len(), limits)?;
        let series = req.series.iter().filter(|s| s.num_samples() > 0).count();
        let payload = if req.num_samples == 0 && req.num_exemplars == 0 {
            None
        } else {
            Some(wal::encode_payload(tenant, &req)?)
        };
        Ok(PreparedWrite {
            tenant: tenant.clone(),
            req,
            payload,
            series,
            metadata,
            exemplars_too_long,
            _reservation: reservation,
        })
    }

    /// Logs a prepared request, waits for the fsync (shared with concurrent writers) and its
    /// application to the head; after `Ok` its samples are visible to `select`.
    pub async fn commit(&self, prepared: PreparedWrite) -> Result<WriteStats, IngestError> {
        let PreparedWrite {
            tenant,
            req,
            payload,
            series,
            exemplars_too_long,
            _reservation,
            ..
        } = prepared;
        let Some(payload) = payload else {
            // Nothing to log: the dropped exemplars are counted only for a tenant that holds
            // data in memory, so a request of a tenant that holds none (any id in header
            // mode) creates no label value.
            if exemplars_too_long > 0 && !self.shared.tenant_heads(&tenant).is_empty() {
                self.count_too_long(&tenant, exemplars_too_long);
            }
            return Ok(WriteStats {
                series,
                ..WriteStats::default()
            });
        };
        let (reply, rx) = oneshot::channel();
        self.wal_tx
            .send(WalCmd::Append(Append {
                tenant: tenant.clone(),
                req,
                payload,
                reply,
            }))
            .await
            .map_err(|_| IngestError::ShutDown)?;
        let stats = rx.await.map_err(|_| IngestError::ShutDown)??;
        if exemplars_too_long > 0 {
            self.count_too_long(&tenant, exemplars_too_long);
        }
        let m = &self.shared.metrics;
        let t = [tenant.as_str()];
        m.samples
            .with_label_values(&t)
            .inc_by((stats.appended + stats.duplicates) as u64);
        m.series.with_label_values(&t).inc_by(series as u64);
        if stats.duplicates > 0 {
            m.duplicates
                .with_label_values(&t)
                .inc_by(stats.duplicates as u64);
        }
        Ok(WriteStats {
            series,
            samples: stats.appended,
            duplicates: stats.duplicates,
        })
    }

    /// Counts `n` exemplars of a committed request dropped for their label length.
    fn count_too_long(&self, tenant: &TenantId, n: usize) {
        self.shared
            .metrics
            .exemplars_dropped
            .with_label_values(&[tenant.as_str(), "label_length"])
            .inc_by(n as u64);
    }

    /// Cuts every head now, writes each non-empty one as a Parquet block, tells the sink
    /// about each block, then truncates the WAL. Returns the metas of the blocks written.
    /// Concurrent flushes are serialized. Heads whose block could not be written stay in
    /// memory (and in the WAL) and are retried by the next flush.
    pub async fn flush(&self) -> Result<Vec<BlockMeta>, IngestError> {
        self.flush_with(true).await
    }

    /// Retries the uploads of the heads a failed flush left behind, without cutting the
    /// active heads, and truncates the WAL once every cut head is in a block. Does nothing
    /// when no head is waiting.
    pub async fn retry_uploads(&self) -> Result<Vec<BlockMeta>, IngestError> {
        self.flush_with(false).await
    }

    async fn flush_with(&self, cut: bool) -> Result<Vec<BlockMeta>, IngestError> {
        let mut sealed = self.flush_lock.lock().await;
        let result = self.flush_locked(cut, &mut sealed).await;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.shared
            .metrics
            .flushes
            .with_label_values(&[outcome])
            .inc();
        result
    }

    async fn flush_locked(
        &self,
        cut: bool,
        sealed_slot: &mut Option<u64>,
    ) -> Result<Vec<BlockMeta>, IngestError> {
        if cut {
            let (reply, rx) = oneshot::channel();
            self.wal_tx
                .send(WalCmd::Cut(reply))
                .await
                .map_err(|_| IngestError::ShutDown)?;
            *sealed_slot = Some(rx.await.map_err(|_| IngestError::ShutDown)??);
        }
        let Some(sealed) = *sealed_slot else {
            return Ok(Vec::new());
        };
        // Heads left over by a failed flush are retried along with the new cut.
        let pending = self.shared.heads.read().flushing.clone();
        self.update_oldest_unflushed();
        let mut metas = Vec::new();
        let mut failure = None;
        for (tenant, head) in pending {
            let series = head.read().all_series();
            if !series.is_empty() {
                match write_block(&self.store, &tenant, series).await {
                    Ok(meta) => {
                        info!(
                            tenant = %tenant,
                            block = %meta.ulid,
                            series = meta.num_series,
                            samples = meta.num_samples,
                            min_time = meta.min_time,
                            max_time = meta.max_time,
                            "wrote head block"
                        );
                        self.sink.block_written(&meta);
                        self.shared
                            .metrics
                            .flushed_blocks
                            .with_label_values(&[tenant.as_str()])
                            .inc();
                        metas.push(meta);
                    }
                    Err(e) => {
                        self.shared.metrics.upload_failures.inc();
                        warn!(
                            tenant = %tenant,
                            error = %e,
                            unflushed_bytes = self.shared.metrics.unflushed_bytes.get(),
                            "uploading a head block failed; the head stays in memory and in \
                             the write-ahead log until an upload succeeds"
                        );
                        failure.get_or_insert(e);
                        continue;
                    }
                }
            }
            // The block is visible through the sink now: the head can go.
            self.shared
                .heads
                .write()
                .flushing
                .retain(|(_, h)| !Arc::ptr_eq(h, &head));
            self.shared.update_gauges(&tenant);
        }
        self.update_oldest_unflushed();
        if let Some(e) = failure {
            return Err(IngestError::Store(e));
        }
        let dir = self.wal_dir.clone();
        let (deleted, freed) = tokio::task::spawn_blocking(move || {
            let freed = wal::segments_size(&dir, Some(sealed))?;
            wal::truncate(&dir, sealed).map(|deleted| (deleted, freed))
        })
        .await
        .map_err(|e| IngestError::Wal(std::io::Error::other(e)))?
        .map_err(|e| IngestError::wal(format!("truncating up to segment {sealed}"), e))?;
        *sealed_slot = None;
        let m = &self.shared.metrics;
        m.wal_bytes.sub(i64::try_from(freed).unwrap_or(i64::MAX));
        m.unflushed_bytes.set(0);
        if metas.is_empty() {
            debug!(segment = sealed, deleted, "flush: nothing to write");
        } else {
            info!(
                segment = sealed,
                deleted,
                freed,
                blocks = metas.len(),
                "flushed heads and truncated the write-ahead log"
            );
        }
        Ok(metas)
    }

    /// Sets the oldest-unflushed gauge from the cut heads waiting for their upload.
    fn update_oldest_unflushed(&self) {
        let oldest = self
            .shared
            .heads
            .read()
            .flushing
            .iter()
            .filter_map(|(_, h)| h.read().min_time())
            .min();
        self.shared
            .metrics
            .oldest_unflushed
            .set(oldest.map_or(0.0, |ms| ms as f64 / 1000.0));
    }

    /// Spawns the task that flushes every block duration. A failed flush is retried with
    /// backoff ([`flush_retry_delay`]: 1 s doubling up to 30 s) by [`Self::retry_uploads`]
    /// (no new cut) until it succeeds, with a warning per failed attempt; the ticks go on
    /// meanwhile. When the WAL is full ([`IngestError::WalFull`]) it flushes early, at most
    /// once a second and not while retrying. The task ends when the ingester is dropped.
    pub fn spawn_flush_loop(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this: Weak<Self> = Arc::downgrade(self);
        let shared = Arc::clone(&self.shared);
        let period = self.cfg.block_duration;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failures = 0u32;
            let mut last_done = tokio::time::Instant::now();
            loop {
                let retry_in = flush_retry_delay(failures);
                let cut = tokio::select! {
                    _ = tick.tick() => true,
                    _ = tokio::time::sleep(retry_in), if failures > 0 => false,
                    _ = shared.wal_full.notified(), if failures == 0 => {
                        let since = last_done.elapsed();
                        if since < EARLY_FLUSH_SPACING {
                            tokio::time::sleep(EARLY_FLUSH_SPACING - since).await;
                        }
                        info!("write-ahead log full: flushing early to free space");
                        true
                    }
                };
                let Some(this) = this.upgrade() else { break };
                let result = if cut {
                    this.flush().await
                } else {
                    this.retry_uploads().await
                };
                last_done = tokio::time::Instant::now();
                match result {
                    Ok(_) if failures > 0 => {
                        info!(
                            failed_attempts = failures,
                            "flush succeeded again; every cut head is in a block"
                        );
                        failures = 0;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let m = &this.shared.metrics;
                        warn!(
                            error = %e,
                            attempt = failures,
                            retry_in = ?flush_retry_delay(failures),
                            unflushed_bytes = m.unflushed_bytes.get(),
                            wal_bytes = m.wal_bytes.get(),
                            oldest_unflushed_seconds = m.oldest_unflushed.get(),
                            "flush failed; the heads and the write-ahead log are kept, retrying"
                        );
                    }
                }
            }
        })
    }

    /// Refuses `req` when the series it would add to `tenant`'s active head take the head
    /// past `max_series`, or one metric past `max_series_per_metric`.
    fn check_series_limits(
        &self,
        tenant: &TenantId,
        req: &ValidRequest,
        limits: &WriteLimits,
    ) -> Result<(), LimitError> {
        let head = self.shared.heads.read().active.get(tenant).cloned();
        let head = head.as_ref().map(|h| h.read());
        let mut new_series = 0usize;
        let mut new_by_metric: HashMap<&str, usize> = HashMap::new();
        for s in &req.series {
            if s.num_samples() == 0 || head.as_ref().is_some_and(|h| h.contains(&s.labels)) {
                continue;
            }
            new_series += 1;
            *new_by_metric
                .entry(s.labels.get(hypnos_schemas::labels::METRIC_NAME))
                .or_default() += 1;
        }
        if new_series == 0 {
            return Ok(());
        }
        let current = head.as_ref().map_or(0, |h| h.num_series());
        if limits.max_series > 0 && current + new_series > limits.max_series {
            return Err(LimitError::new(
                "max_series",
                LimitKind::Capacity,
                format!(
                    "tenant {tenant} has {current} active series, the request adds \
                     {new_series}, more than the limit of {}",
                    limits.max_series
                ),
            ));
        }
        if limits.max_series_per_metric > 0 {
            for (metric, n) in new_by_metric {
                let current = head.as_ref().map_or(0, |h| h.num_series_of_metric(metric));
                if current + n > limits.max_series_per_metric {
                    return Err(LimitError::new(
                        "max_series_per_metric",
                        LimitKind::Capacity,
                        format!(
                            "metric {metric:?} of tenant {tenant} has {current} active series, \
                             the request adds {n}, more than the limit of {}",
                            limits.max_series_per_metric
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every tenant with a head in memory (heads being flushed included) or exemplars.
    pub fn tenants(&self) -> BTreeSet<TenantId> {
        let mut out: BTreeSet<TenantId> = {
            let hs = self.shared.heads.read();
            hs.active
                .keys()
                .chain(hs.flushing.iter().map(|(t, _)| t))
                .cloned()
                .collect()
        };
        out.extend(self.shared.exemplars.tenants());
        out
    }

    /// Per tenant: series and samples in memory (heads being flushed included), by tenant.
    pub fn head_stats(&self) -> Vec<(TenantId, usize, usize)> {
        self.tenants()
            .into_iter()
            .map(|t| {
                let (series, samples) = self.shared.tenant_stats(&t);
                (t, series, samples)
            })
            .filter(|(_, _, samples)| *samples > 0)
            .collect()
    }

    /// The exemplars of `tenant` in `[start_ms, end_ms]` of the series matching any of the
    /// matcher `sets`, sorted by series labels (`tenant_id` included).
    pub fn query_exemplars(
        &self,
        tenant: &TenantId,
        sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<SeriesExemplars> {
        self.shared.exemplars.select(tenant, sets, start_ms, end_ms)
    }

    fn select_heads(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Vec<SeriesData> {
        let parts = self
            .shared
            .tenant_heads(tenant)
            .iter()
            .map(|h| h.read().select(matchers, range))
            .collect();
        merge_selections(parts)
    }
}

impl Drop for Ingester {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread once it has served what is queued.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.wal_tx, closed));
        if let Some(t) = self.wal_thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl SeriesSource for Ingester {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        Ok(self.select_heads(tenant, matchers, range))
    }

    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        let mut out: Vec<Labels> = self
            .shared
            .tenant_heads(tenant)
            .iter()
            .flat_map(|h| h.read().series_labels(matchers, range))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
