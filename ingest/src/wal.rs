//! The write-ahead log: numbered segment files in `data_dir/wal`, a checkpoint file naming
//! the last segment whose data is safely in blocks, and the record format.
//!
//! ```text
//! wal/00000000000000000007      segment 7: records, appended and fsynced in groups
//! wal/checkpoint                "5\n": segments <= 5 are in blocks; skipped and deleted
//!
//! record  = len: u32 LE | crc32(payload): u32 LE | payload (len bytes)
//! payload = version: u8 (1, 2 or 3) | tenant_len: u16 LE | tenant
//!           | n_series: u32 LE | n_series x series
//! series  = labels_len: u32 LE | labels (Labels::encode) | n: u32 LE
//!           | n x timestamp: i64 LE | n x value bits: u64 LE
//!           | versions 2 and 3: n_ex: u32 LE | n_ex x exemplar
//!           | version 3 only: n_h: u32 LE | n_h x histogram
//! exemplar = labels_len: u32 LE | labels (Labels::encode) | timestamp: i64 LE
//!           | value bits: u64 LE
//! histogram = timestamp: i64 LE | len: u32 LE | len bytes (FloatHistogram::encode)
//! ```
//!
//! A request without exemplars nor histograms is written as version 1, byte for byte as
//! before exemplars were kept; one with exemplars and no histograms as version 2, one with
//! histograms as version 3. Records of every version replay (a version 1 record has no
//! exemplars, versions 1 and 2 no histograms). A cut starts the new segment with the
//! exemplars held, one version 2 record per tenant whose series have exemplars and no
//! samples.
//!
//! A segment holds every record appended between two cuts. A record that is cut short or
//! fails its checksum ends the segment on replay: it and anything after it are truncated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use hypnos_schemas::histogram::FloatHistogram;
use hypnos_schemas::remote::Sample;
use hypnos_schemas::{Labels, TenantId};

use crate::IngestError;
use crate::exemplars::Exemplar;
use crate::validate::{HistogramSample, ValidRequest, ValidSeries};

pub(crate) const CHECKPOINT: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
const HEADER_LEN: usize = 8;
/// Records without exemplars.
const PAYLOAD_VERSION: u8 = 1;
/// Records with exemplars: every series ends with its exemplars.
const PAYLOAD_VERSION_EXEMPLARS: u8 = 2;
/// Records with histograms: every series ends with its exemplars, then its histograms.
const PAYLOAD_VERSION_HISTOGRAMS: u8 = 3;
/// Longest payload a record can frame.
const MAX_PAYLOAD: usize = u32::MAX as usize;

/// The file of segment `n`.
pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}"))
}

/// The segment numbers in `dir`, ascending; other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = name.parse()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The last segment recorded as flushed, if any.
pub(crate) fn read_checkpoint(dir: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(dir.join(CHECKPOINT)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("checkpoint file holds {s:?}: {e}"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records atomically that segments `<= n` are flushed (tmp file, fsync, rename, fsync dir).
pub(crate) fn write_checkpoint(dir: &Path, n: u64) -> io::Result<()> {
    let tmp = dir.join(CHECKPOINT_TMP);
    let mut f = File::create(&tmp)?;
    writeln!(f, "{n}")?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(CHECKPOINT))?;
    sync_dir(dir)
}

/// Marks segments `<= n` flushed and deletes them.
pub(crate) fn truncate(dir: &Path, n: u64) -> io::Result<usize> {
    write_checkpoint(dir, n)?;
    let mut deleted = 0;
    for s in list_segments(dir)?.into_iter().take_while(|s| *s <= n) {
        fs::remove_file(segment_path(dir, s))?;
        deleted += 1;
    }
    sync_dir(dir)?;
    Ok(deleted)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes of the segment files `<= up_to` (every segment when `None`); a segment deleted
/// meanwhile counts 0.
pub(crate) fn segments_size(dir: &Path, up_to: Option<u64>) -> io::Result<u64> {
    let mut total = 0;
    for n in list_segments(dir)? {
        if up_to.is_some_and(|m| n > m) {
            break;
        }
        match fs::metadata(segment_path(dir, n)) {
            Ok(m) => total += m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    file: File,
    number: u64,
    /// Bytes of the complete records written so far.
    len: u64,
}

/// A failed append: the error, and what became of the segment.
#[derive(Debug)]
pub(crate) struct AppendFailure {
    pub(crate) error: io::Error,
    /// The segment was cut back to its records before the append and can take more; when
    /// false it must not be appended to again (it may end in a partial record, which the
    /// replay truncates, or its cached pages cannot be trusted after a failed fsync).
    pub(crate) reusable: bool,
    /// Bytes the failed append left in the file (0 when it was cut back).
    pub(crate) left_behind: u64,
}

impl SegmentWriter {
    /// Creates segment `n` (it must not exist) and makes its directory entry durable.
    pub(crate) fn create(dir: &Path, n: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(segment_path(dir, n))?;
        sync_dir(dir)?;
        Ok(Self {
            file,
            number: n,
            len: 0,
        })
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Writes already framed records and waits until they are on disk. When the write
    /// fails (a full disk: `ErrorKind::StorageFull`) the file is cut back to the records
    /// before it, so that no partial record stays in the log.
    pub(crate) fn write_synced(&mut self, records: &[u8]) -> Result<(), AppendFailure> {
        let (error, fsync_failed) = match self.file.write_all(records) {
            Ok(()) => match self.file.sync_data() {
                Ok(()) => {
                    self.len += records.len() as u64;
                    return Ok(());
                }
                Err(e) => (e, true),
            },
            Err(e) => (e, false),
        };
        // Shrinking a file needs no free space; the fsync makes the cut durable.
        let cut_back = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_data())
            .is_ok();
        let left_behind = if cut_back {
            0
        } else {
            self.file
                .metadata()
                .map_or(records.len() as u64, |m| m.len().saturating_sub(self.len))
        };
        Err(AppendFailure {
            error,
            reusable: cut_back && !fsync_failed,
            left_behind,
        })
    }

    /// A writer over an already open `file` (a test's stand-in for a full disk).
    #[cfg(test)]
    pub(crate) fn from_file(file: File, number: u64) -> Self {
        Self {
            file,
            number,
            len: 0,
        }
    }
}

/// Bytes `payload` takes in a segment once framed.
pub(crate) fn framed_len(payload: &[u8]) -> u64 {
    (HEADER_LEN + payload.len()) as u64
}

/// Appends `payload` to `out` as one framed record.
pub(crate) fn frame_record(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// How replaying one segment went.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentReplay {
    pub(crate) records: usize,
    /// Where a torn or corrupt record started, when the segment was truncated there.
    pub(crate) truncated_at: Option<u64>,
    pub(crate) reason: Option<String>,
}

/// Reads the records of segment file `path` in order, handing each payload to `apply`
/// (which returns false when the payload does not decode). At the first torn or corrupt
/// record the file is truncated to the records before it.
pub(crate) fn replay_segment(
    path: &Path,
    mut apply: impl FnMut(&[u8]) -> bool,
) -> io::Result<SegmentReplay> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut out = SegmentReplay::default();
    let mut offset = 0u64;
    let mut payload = Vec::new();
    let bad = loop {
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut r, &mut header)? {
            0 => break None,
            n if n < HEADER_LEN => break Some(format!("torn record header ({n} bytes)")),
            _ => {}
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        // Checked before allocating: a garbage header must not claim gigabytes.
        let remaining = file_len.saturating_sub(offset + HEADER_LEN as u64);
        if len as u64 > remaining {
            break Some(format!("torn record: {remaining} of {len} payload bytes"));
        }
        payload.resize(len, 0);
        let n = read_full(&mut r, &mut payload)?;
        if n < len {
            break Some(format!("torn record: {n} of {len} payload bytes"));
        }
        if crc32fast::hash(&payload) != crc {
            break Some("record checksum mismatch".to_string());
        }
        if !apply(&payload) {
            break Some("record payload does not decode".to_string());
        }
        out.records += 1;
        offset += (HEADER_LEN + len) as u64;
    };
    if let Some(reason) = bad {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(offset)?;
        f.sync_all()?;
        out.truncated_at = Some(offset);
        out.reason = Some(reason);
    }
    Ok(out)
}

/// Reads until `buf` is full or the end of the input; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encodes a validated request of `tenant` as a record payload.
pub(crate) fn encode_payload(
    tenant: &TenantId,
    req: &ValidRequest,
) -> Result<Vec<u8>, IngestError> {
    let with_histograms = req.series.iter().any(|s| !s.histograms.is_empty());
    let with_exemplars = req.num_exemplars > 0 || with_histograms;
    let size = 1
        + 2
        + tenant.as_str().len()
        + 4
        + req
            .series
            .iter()
            .map(|s| {
                8 + s
                    .labels
                    .iter()
                    .map(|l| l.name.len() + l.value.len() + 2)
                    .sum::<usize>()
                    + 16 * s.samples.len()
                    + if with_exemplars {
                        4 + s
                            .exemplars
                            .iter()
                            .map(|e| 16 + labels_size(&e.labels))
                            .sum::<usize>()
                    } else {
                        0
                    }
                    + if with_histograms {
                        4 + s
                            .histograms
                            .iter()
                            .map(|h| 12 + h.encoded.len())
                            .sum::<usize>()
                    } else {
                        0
                    }
            })
            .sum::<usize>();
    if size > MAX_PAYLOAD {
        return Err(IngestError::TooLarge(format!(
            "request needs {size} bytes in the write-ahead log, more than a record holds"
        )));
    }
    let mut out = Vec::with_capacity(size);
    out.push(if with_histograms {
        PAYLOAD_VERSION_HISTOGRAMS
    } else if with_exemplars {
        PAYLOAD_VERSION_EXEMPLARS
    } else {
        PAYLOAD_VERSION
    });
    out.extend_from_slice(&(tenant.as_str().len() as u16).to_le_bytes());
    out.extend_from_slice(tenant.as_str().as_bytes());
    out.extend_from_slice(&(req.series.len() as u32).to_le_bytes());
    for s in &req.series {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        s.labels.encode_into(&mut out);
        let labels_len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&labels_len.to_le_bytes());
        out.extend_from_slice(&(s.samples.len() as u32).to_le_bytes());
        for x in &s.samples {
            out.extend_from_slice(&x.timestamp.to_le_bytes());
        }
        for x in &s.samples {
            out.extend_from_slice(&x.value.to_bits().to_le_bytes());
        }
        if with_exemplars {
            out.extend_from_slice(&(s.exemplars.len() as u32).to_le_bytes());
            for e in &s.exemplars {
                push_labels(&mut out, &e.labels);
                out.extend_from_slice(&e.timestamp.to_le_bytes());
                out.extend_from_slice(&e.value.to_bits().to_le_bytes());
            }
        }
        if with_histograms {
            out.extend_from_slice(&(s.histograms.len() as u32).to_le_bytes());
            for h in &s.histograms {
                out.extend_from_slice(&h.timestamp.to_le_bytes());
                out.extend_from_slice(&(h.encoded.len() as u32).to_le_bytes());
                out.extend_from_slice(&h.encoded);
            }
        }
    }
    debug_assert_eq!(out.len(), size);
    Ok(out)
}

/// Bytes of `labels_len` and `labels` in a record.
fn labels_size(labels: &Labels) -> usize {
    4 + labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 2)
        .sum::<usize>()
}

/// Appends `labels_len: u32 LE | labels`.
fn push_labels(out: &mut Vec<u8>, labels: &Labels) {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    labels.encode_into(out);
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Decodes [`encode_payload`]'s output; `None` when `b` is not such a payload.
pub(crate) fn decode_payload(b: &[u8]) -> Option<(TenantId, ValidRequest)> {
    let mut r = Cursor(b);
    let (with_exemplars, with_histograms) = match r.take(1)?[0] {
        PAYLOAD_VERSION => (false, false),
        PAYLOAD_VERSION_EXEMPLARS => (true, false),
        PAYLOAD_VERSION_HISTOGRAMS => (true, true),
        _ => return None,
    };
    let tenant_len = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
    let tenant = TenantId::new(std::str::from_utf8(r.take(tenant_len)?).ok()?).ok()?;
    let n_series = r.u32()? as usize;
    let mut req = ValidRequest::default();
    req.series.reserve(n_series.min(b.len() / 8));
    for _ in 0..n_series {
        let labels_len = r.u32()? as usize;
        let labels = Labels::decode(r.take(labels_len)?)?;
        let n = r.u32()? as usize;
        let ts = r.take(n.checked_mul(8)?)?;
        let values = r.take(n.checked_mul(8)?)?;
        let samples: Vec<Sample> = ts
            .chunks_exact(8)
            .zip(values.chunks_exact(8))
            .map(|(t, v)| Sample {
                timestamp: i64::from_le_bytes(t.try_into().expect("8 bytes")),
                value: f64::from_bits(u64::from_le_bytes(v.try_into().expect("8 bytes"))),
            })
            .collect();
        let mut exemplars = Vec::new();
        if with_exemplars {
            let n_ex = r.u32()? as usize;
            exemplars.reserve(n_ex.min(r.0.len() / 24));
            for _ in 0..n_ex {
                let labels_len = r.u32()? as usize;
                let labels = Labels::decode(r.take(labels_len)?)?;
                let timestamp = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
                let value = f64::from_bits(u64::from_le_bytes(r.take(8)?.try_into().ok()?));
                exemplars.push(Exemplar {
                    labels,
                    value,
                    timestamp,
                });
            }
        }
        let mut histograms = Vec::new();
        if with_histograms {
            let n_h = r.u32()? as usize;
            histograms.reserve(n_h.min(r.0.len() / 12));
            for _ in 0..n_h {
                let timestamp = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
                let len = r.u32()? as usize;
                let encoded = r.take(len)?;
                // The checksum guards the bytes; this guards against a writer's bug.
                FloatHistogram::decode(encoded).ok()?;
                histograms.push(HistogramSample {
                    timestamp,
                    encoded: encoded.to_vec(),
                });
            }
        }
        let series = ValidSeries {
            labels,
            samples,
            histograms,
            exemplars,
        };
        req.num_samples += series.num_samples();
        req.num_exemplars += series.exemplars.len();
        req.series.push(series);
    }
    r.0.is_empty().then_some((tenant, req))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests;
