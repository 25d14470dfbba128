//! The WAL writer thread: group commit, applying records to the heads in log order, and the
//! cut that starts a flush. Also the replay that runs before it starts.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hypnos_schemas::TenantId;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::Shared;
use crate::IngestError;
use crate::head::{AppendStats, Head};
use crate::size::format_bytes;
use crate::validate::ValidRequest;
use crate::wal::{self, SegmentWriter};

/// Most record bytes written by one group commit.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// A request to the writer thread.
pub(super) enum WalCmd {
    Append(Append),
    /// Seal the current segment, start a new one and move the active heads to the flushing
    /// list; answers the number of the sealed segment: every record of segments up to it is
    /// in the cut heads, none after it.
    Cut(oneshot::Sender<Result<u64, IngestError>>),
}

/// One validated request with its encoded WAL payload and who waits for it.
pub(super) struct Append {
    pub(super) tenant: TenantId,
    pub(super) req: ValidRequest,
    pub(super) payload: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<AppendStats, IngestError>>,
}

/// Owns the segment being appended to; lives on its own thread.
pub(super) struct WalWriter {
    dir: PathBuf,
    current: Option<SegmentWriter>,
    /// The highest segment number used so far.
    last: u64,
    buf: Vec<u8>,
    /// The budget-exceeded warning was logged and not yet followed by an accepted write.
    full_logged: bool,
}

impl WalWriter {
    pub(super) fn create(dir: &Path, n: u64) -> Result<Self, IngestError> {
        let seg = SegmentWriter::create(dir, n)
            .map_err(|e| IngestError::wal(format!("creating segment {n}"), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            current: Some(seg),
            last: n,
            buf: Vec::new(),
            full_logged: false,
        })
    }

    /// A writer appending to `seg` (a test's stand-in for a segment on a full disk), with
    /// new segments in `dir`.
    #[cfg(test)]
    pub(super) fn with_segment(dir: &Path, seg: SegmentWriter) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: seg.number(),
            current: Some(seg),
            buf: Vec::new(),
            full_logged: false,
        }
    }

    /// Serves commands until every sender is gone.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<WalCmd>, shared: Arc<Shared>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Vec::new();
            let mut cut = None;
            match first {
                WalCmd::Append(a) => batch.push(a),
                WalCmd::Cut(c) => cut = Some(c),
            }
            let mut bytes = batch.iter().map(|a| a.payload.len()).sum::<usize>();
            while cut.is_none() && bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(WalCmd::Append(a)) => {
                        bytes += a.payload.len();
                        batch.push(a);
                    }
                    Ok(WalCmd::Cut(c)) => cut = Some(c),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch, &shared);
            }
            if let Some(reply) = cut {
                let _ = reply.send(self.cut(&shared));
            }
        }
    }

    /// Writes the batch, fsyncs once, applies it to the heads in order, then answers.
    /// Requests that would take the log past its budget are refused first, each with
    /// [`IngestError::WalFull`]; a full disk refuses the whole batch the same way.
    fn commit(&mut self, batch: Vec<Append>, shared: &Shared) {
        let batch = self.within_budget(batch, shared);
        if batch.is_empty() {
            return;
        }
        self.buf.clear();
        for a in &batch {
            wal::frame_record(&mut self.buf, &a.payload);
        }
        if let Err(f) = self.write_synced(shared) {
            let segment = self.last;
            let no_space = is_no_space(&f.error);
            if no_space {
                warn!(segment, error = %f.error, requests = batch.len(), "no space left on device writing the write-ahead log; refusing writes until a flush frees space");
                shared
                    .metrics
                    .wal_full_rejections
                    .with_label_values(&["no_space"])
                    .inc_by(batch.len() as u64);
                shared.wal_full.notify_one();
            } else {
                error!(segment, error = %f.error, "write-ahead log append failed");
            }
            for a in batch {
                let e = if no_space {
                    IngestError::WalFull(format!(
                        "no space left on device writing the WAL (segment {segment}): {}; \
                         writes resume once a flush has freed space",
                        f.error
                    ))
                } else {
                    IngestError::Wal(std::io::Error::new(
                        f.error.kind(),
                        format!("appending to segment {segment}: {}", f.error),
                    ))
                };
                let _ = a.reply.send(Err(e));
            }
            return;
        }
        shared.metrics.wal_fsyncs.inc();
        let mut touched: Vec<TenantId> = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for a in batch {
            let stats = shared.apply(&a.tenant, a.req);
            if !touched.contains(&a.tenant) {
                touched.push(a.tenant);
            }
            replies.push((a.reply, stats));
        }
        // Gauges first: a writer that has its answer sees its samples counted.
        for t in &touched {
            shared.update_gauges(t);
        }
        for (reply, stats) in replies {
            let _ = reply.send(Ok(stats));
        }
    }

    /// The requests of `batch` that fit in the log's budget (`--wal.max-size`), in order;
    /// the others are answered [`IngestError::WalFull`] and a flush is asked for.
    fn within_budget(&mut self, batch: Vec<Append>, shared: &Shared) -> Vec<Append> {
        let max = shared.metrics.wal_max_bytes.get().max(0) as u64;
        if max == 0 {
            return batch;
        }
        let used = shared.metrics.wal_bytes.get().max(0) as u64;
        let mut taken = 0u64;
        let mut kept = Vec::with_capacity(batch.len());
        let mut refused = 0u64;
        for a in batch {
            let need = wal::framed_len(&a.payload);
            if used + taken + need <= max {
                taken += need;
                kept.push(a);
                continue;
            }
            refused += 1;
            let _ = a.reply.send(Err(IngestError::WalFull(format!(
                "WAL full: {} of {} used (--wal.max-size), the request needs {} more; \
                 writes resume once a flush has truncated the log",
                format_bytes(used + taken),
                format_bytes(max),
                format_bytes(need)
            ))));
        }
        if refused > 0 {
            if !self.full_logged {
                warn!(
                    used = used + taken,
                    max,
                    "write-ahead log at its size budget (--wal.max-size); refusing writes \
                     with 503 until a flush truncates it"
                );
                self.full_logged = true;
            }
            shared
                .metrics
                .wal_full_rejections
                .with_label_values(&["max_size"])
                .inc_by(refused);
            shared.wal_full.notify_one();
        } else if self.full_logged && !kept.is_empty() {
            info!(
                used,
                max, "write-ahead log below its size budget again; taking writes"
            );
            self.full_logged = false;
        }
        kept
    }

    /// Appends `self.buf` to the current segment (opening the next one when there is none)
    /// and counts the bytes. After a failure the segment is kept when it was cut back
    /// cleanly, otherwise closed so that the next append starts a new one.
    fn write_synced(&mut self, shared: &Shared) -> Result<(), wal::AppendFailure> {
        if self.current.is_none() {
            let seg = SegmentWriter::create(&self.dir, self.last + 1).map_err(|error| {
                wal::AppendFailure {
                    error,
                    reusable: false,
                    left_behind: 0,
                }
            })?;
            self.current = Some(seg);
            self.last += 1;
        }
        let seg = self.current.as_mut().expect("opened above");
        match seg.write_synced(&self.buf) {
            Ok(()) => {
                shared.metrics.wal_bytes.add(self.buf.len() as i64);
                Ok(())
            }
            Err(f) => {
                shared.metrics.wal_bytes.add(f.left_behind as i64);
                if !f.reusable {
                    error!(segment = self.last, error = %f.error, "closing the write-ahead log segment after a failed append; the next append starts a new one");
                    self.current = None;
                }
                Err(f)
            }
        }
    }

    /// Logs every exemplar held at the start of the new segment: the segments before it
    /// go once the cut heads are in blocks, and the exemplars must outlive them. A failure
    /// only costs the exemplars at the next restart, so it is logged, not returned.
    fn log_exemplars(&mut self, shared: &Shared) {
        let snapshot = shared.exemplars.snapshot();
        if snapshot.is_empty() {
            return;
        }
        self.buf.clear();
        let mut exemplars = 0;
        for (tenant, runs) in snapshot {
            let req = ValidRequest::from_exemplars(runs);
            match wal::encode_payload(&tenant, &req) {
                Ok(p) => {
                    wal::frame_record(&mut self.buf, &p);
                    exemplars += req.num_exemplars;
                }
                Err(e) => error!(tenant = %tenant, error = %e, "cannot log the exemplars"),
            }
        }
        match self.write_synced(shared) {
            Ok(()) => {
                shared.metrics.wal_fsyncs.inc();
                info!(segment = self.last, exemplars, "logged the exemplars held");
            }
            Err(f) => {
                error!(segment = self.last, error = %f.error, "logging the exemplars failed; they are lost at the next restart");
            }
        }
    }

    fn cut(&mut self, shared: &Shared) -> Result<u64, IngestError> {
        let sealed = self.last;
        // Every segment up to the sealed one waits for the upload of the cut heads.
        let sealed_bytes = shared.metrics.wal_bytes.get();
        let next = SegmentWriter::create(&self.dir, sealed + 1).map_err(|e| {
            // Leave the current segment closed so the next append retries a fresh one.
            self.current = None;
            IngestError::wal(format!("creating segment {}", sealed + 1), e)
        })?;
        self.last = next.number();
        self.current = Some(next);
        shared.metrics.unflushed_bytes.set(sealed_bytes);
        self.log_exemplars(shared);
        let mut heads = shared.heads.write();
        let mut cut: Vec<_> = std::mem::take(&mut heads.active).into_iter().collect();
        cut.sort_by(|a, b| a.0.cmp(&b.0));
        let tenants = cut.len();
        heads.flushing.extend(cut);
        drop(heads);
        info!(sealed, segment = self.last, tenants, "cut heads");
        Ok(sealed)
    }
}

/// Replays the log in `dir` (skipping and deleting segments the checkpoint covers) into
/// heads, then opens the next segment for appending.
pub(super) fn replay(
    dir: &Path,
    shared: &Shared,
) -> Result<(HashMap<TenantId, Head>, WalWriter), IngestError> {
    fs::create_dir_all(dir).map_err(|e| IngestError::wal(dir.display(), e))?;
    let checkpoint = match wal::read_checkpoint(dir) {
        Ok(c) => c,
        // Written by rename, so only damage from outside makes it unreadable. Without it
        // every segment left is replayed: segments it covered are deleted right after it
        // is written, and one replayed again only repeats samples already in blocks, which
        // queries merge as duplicates. Nothing acknowledged is dropped.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            let aside = dir.join("checkpoint.corrupt");
            let moved = fs::rename(dir.join(wal::CHECKPOINT), &aside);
            warn!(
                file = %dir.join(wal::CHECKPOINT).display(),
                error = %e,
                moved_to = %aside.display(),
                moved = moved.is_ok(),
                "damaged write-ahead log checkpoint set aside; replaying every segment left"
            );
            shared
                .metrics
                .corrupt_files
                .with_label_values(&["wal_checkpoint"])
                .inc();
            None
        }
        Err(e) => return Err(IngestError::wal("reading checkpoint", e)),
    };
    let segments = wal::list_segments(dir).map_err(|e| IngestError::wal(dir.display(), e))?;
    let mut heads: HashMap<TenantId, Head> = HashMap::new();
    let mut last = checkpoint.unwrap_or(0);
    for n in segments {
        last = last.max(n);
        let path = wal::segment_path(dir, n);
        if checkpoint.is_some_and(|c| n <= c) {
            info!(segment = n, "deleting segment already flushed to blocks");
            fs::remove_file(&path)
                .map_err(|e| IngestError::wal(format!("deleting segment {n}"), e))?;
            continue;
        }
        let report = wal::replay_segment(&path, |payload| {
            let Some((tenant, mut req)) = wal::decode_payload(payload) else {
                return false;
            };
            if req.num_exemplars > 0 {
                for s in &mut req.series {
                    if !s.exemplars.is_empty() {
                        shared
                            .exemplars
                            .add(&tenant, &s.labels, std::mem::take(&mut s.exemplars));
                    }
                }
            }
            if req.num_samples > 0 {
                let head = heads.entry(tenant).or_default();
                for s in req.series {
                    head.append_mixed(s.labels, &s.samples, s.histograms);
                }
            }
            true
        })
        .map_err(|e| IngestError::wal(format!("replaying segment {n}"), e))?;
        if let Some(offset) = report.truncated_at {
            shared
                .metrics
                .corrupt_files
                .with_label_values(&["wal_segment"])
                .inc();
            warn!(
                file = %path.display(),
                segment = n,
                offset,
                reason = report.reason.as_deref().unwrap_or_default(),
                records_kept = report.records,
                "truncated a torn or corrupt write-ahead log tail"
            );
        }
        info!(segment = n, records = report.records, "replayed segment");
        shared
            .metrics
            .wal_replayed_records
            .inc_by(report.records as u64);
    }
    for (tenant, head) in &heads {
        info!(
            tenant = %tenant,
            series = head.num_series(),
            samples = head.num_samples(),
            "head restored from the write-ahead log"
        );
    }
    let writer = WalWriter::create(dir, last + 1)?;
    let bytes = wal::segments_size(dir, None)
        .map_err(|e| IngestError::wal("measuring the write-ahead log", e))?;
    shared.metrics.wal_bytes.set(bytes as i64);
    Ok((heads, writer))
}

/// Whether `e` says the disk (or the user's quota) is full.
pub(super) fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Heads keyed by tenant, for [`Shared`].
pub(super) fn into_shared_heads(
    heads: HashMap<TenantId, Head>,
) -> HashMap<TenantId, Arc<RwLock<Head>>> {
    heads
        .into_iter()
        .map(|(t, h)| (t, Arc::new(RwLock::new(h))))
        .collect()
}
