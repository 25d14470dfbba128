//! The blocks of every tenant known to this process: discovered by listing the bucket and
//! told about by writers ([`BlockSink`]), read through [`BlockReader`].
//!
//! Raw and downsampled blocks live side by side. [`SeriesSource::select`] reads raw blocks
//! only; [`SeriesSource::select_hinted`] may answer from downsampled blocks (see
//! [`BlockCatalog`]'s implementation for how a resolution is chosen), and the metadata path
//! ([`SeriesSource::series`]) lists the series of every resolution, without the
//! [`AGGR_LABEL`] of downsampled blocks.
//!
//! A block's tenant is the one of its path, `tenants/<tenant>/<ULID>/meta.json`: a block
//! whose `meta.json` names another tenant or another ULID, or cannot be read or parsed, is
//! skipped (logged once as an error, listed by [`BlockCatalog::skipped`]) and the rest of
//! the bucket is served; it is looked at again at every [`BlockCatalog::sync`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, BinaryArray, BinaryBuilder, Float64Array, Float64Builder, Int64Builder, UInt32Array,
};
use arrow::compute::take_record_batch;
use async_trait::async_trait;
use futures::TryStreamExt;
use futures::future::{join_all, try_join_all};
use hypnos_schemas::block::{BlockReader, SampleCache, read_meta};
use hypnos_schemas::layout::{BlockMeta, TENANTS_DIR, block_file, parse_meta_path};
use hypnos_schemas::{
    AGGR_LABEL, BlockSink, Labels, MatchOp, Matcher, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW,
    ReadAggregate, ReadHints, SchemaError, SeriesData, SeriesSource, TenantId, TimeRange,
    is_stale_nan, raw_as_aggregate,
};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parking_lot::RwLock;
use ulid::Ulid;

use crate::series_merge::{merge_parts, union_labels};

/// A block the catalog does not serve, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedBlock {
    /// The path of its `meta.json`.
    pub path: String,
    /// `unreadable`, `invalid_meta`, `unsupported_version`, `tenant_mismatch`,
    /// `ulid_mismatch`, `size_mismatch` (a data file cut short, grown or missing) or
    /// `bad_footer` (a Parquet file whose end is garbled).
    pub reason: &'static str,
    /// The error, for the log.
    pub error: String,
}

/// Every block of every tenant, by tenant and ULID.
#[derive(Debug)]
pub struct BlockCatalog {
    store: Arc<dyn ObjectStore>,
    blocks: RwLock<BTreeMap<TenantId, BTreeMap<Ulid, Arc<BlockReader>>>>,
    /// Blocks found at the last sync and not served, by the path's tenant and ULID.
    skipped: RwLock<BTreeMap<(TenantId, Ulid), SkippedBlock>>,
    /// Decoded samples of every block, kept across queries.
    cache: Arc<SampleCache>,
}

/// How many bytes of decoded block samples a catalog keeps by default: 24 h of a
/// thousand series scraped every 15 s take about 50 MiB (8 bytes per value; series
/// scraped together share one timestamp vector).
pub const DEFAULT_SAMPLE_CACHE_BYTES: usize = 256 << 20;

/// The `reason` of a block whose meta could not be loaded; `gone` when it no longer exists.
fn skip_reason(e: &SchemaError) -> &'static str {
    match e {
        SchemaError::ObjectStore(object_store::Error::NotFound { .. }) => "gone",
        SchemaError::ObjectStore(_) => "unreadable",
        SchemaError::UnsupportedVersion { .. } => "unsupported_version",
        _ => "invalid_meta",
    }
}

/// Checks the end of each Parquet file `meta` lists: a footer length that fits the file
/// and the `PAR1` magic. A garbled tail is reported here, at load, instead of failing every
/// query whose range touches the block. Read failures are left to the readers.
async fn parquet_tails(
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
    ulid: Ulid,
    meta: &BlockMeta,
) -> Option<String> {
    for f in meta.files.iter().filter(|f| f.name.ends_with(".parquet")) {
        let Some(start) = f.size_bytes.checked_sub(8) else {
            return Some(format!(
                "{} is {} bytes, too short for Parquet",
                f.name, f.size_bytes
            ));
        };
        let Ok(tail) = store
            .get_range(&block_file(tenant, ulid, &f.name), start..f.size_bytes)
            .await
        else {
            continue;
        };
        let footer_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
        if &tail[4..] != b"PAR1" || footer_len > start {
            return Some(format!("{} does not end in a Parquet footer", f.name));
        }
    }
    None
}

impl BlockCatalog {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self::with_sample_cache_bytes(store, DEFAULT_SAMPLE_CACHE_BYTES)
    }

    /// A catalog keeping at most `bytes` of decoded samples (0: none).
    pub fn with_sample_cache_bytes(store: Arc<dyn ObjectStore>, bytes: usize) -> Self {
        Self {
            store,
            blocks: RwLock::new(BTreeMap::new()),
            skipped: RwLock::new(BTreeMap::new()),
            cache: Arc::new(SampleCache::new(bytes)),
        }
    }

    /// The cache of decoded samples: entries and bytes held.
    pub fn sample_cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    /// Lists the bucket and brings the catalog in line with it: new blocks are added, blocks
    /// that are gone are dropped. Returns how many blocks are known.
    pub async fn sync(&self) -> Result<usize, SchemaError> {
        let prefix = Path::from(TENANTS_DIR);
        let listed: Vec<ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        // Listed sizes, to catch a data file cut short (its meta.json records its size).
        let sizes: HashMap<&Path, u64> = listed.iter().map(|o| (&o.location, o.size)).collect();
        let metas: Vec<(TenantId, Ulid, Path)> = listed
            .iter()
            .filter_map(|o| parse_meta_path(&o.location).map(|(t, u)| (t, u, o.location.clone())))
            .collect();
        let known = self.blocks.read().clone();
        let new = metas
            .iter()
            .filter(|(t, u, _)| !known.get(t).is_some_and(|b| b.contains_key(u)));
        let loaded = join_all(new.map(|(t, u, p)| async move {
            let meta = read_meta(&self.store, p).await;
            let tail = match &meta {
                Ok(m) => parquet_tails(&self.store, t, *u, m).await,
                Err(_) => None,
            };
            ((t, u, p), meta, tail)
        }))
        .await;
        let mut next: BTreeMap<TenantId, BTreeMap<Ulid, Arc<BlockReader>>> = BTreeMap::new();
        for (t, u, _) in &metas {
            if let Some(r) = known.get(t).and_then(|b| b.get(u)) {
                next.entry(t.clone()).or_default().insert(*u, Arc::clone(r));
            }
        }
        let mut skipped = BTreeMap::new();
        for ((t, u, path), meta, tail) in loaded {
            let checked = meta
                .map_err(|e| (skip_reason(&e), e.to_string()))
                .and_then(|m| {
                    if m.tenant != t.as_str() {
                        Err((
                            "tenant_mismatch",
                            format!("meta.json names tenant {:?}, the path tenant {t}", m.tenant),
                        ))
                    } else if m.ulid != *u {
                        Err((
                            "ulid_mismatch",
                            format!("meta.json names block {}, the path block {u}", m.ulid),
                        ))
                    } else if let Some((f, size)) = m.files.iter().find_map(|f| {
                        let size = sizes.get(&block_file(t, *u, &f.name)).copied();
                        (size != Some(f.size_bytes)).then_some((f, size))
                    }) {
                        Err((
                            "size_mismatch",
                            match size {
                                Some(n) => format!(
                                    "{} is {n} bytes, meta.json records {}",
                                    f.name, f.size_bytes
                                ),
                                None => format!("{} is missing", f.name),
                            },
                        ))
                    } else if let Some(error) = tail {
                        Err(("bad_footer", error))
                    } else {
                        Ok(m)
                    }
                });
            match checked {
                Ok(m) => self.insert_into(&mut next, m)?,
                // Deleted between the listing and the read (a compactor's deletion).
                Err(("gone", _)) => {}
                Err((reason, error)) => {
                    let block = SkippedBlock {
                        path: path.to_string(),
                        reason,
                        error,
                    };
                    skipped.insert((t.clone(), *u), block);
                }
            }
        }
        {
            let before = self.skipped.read();
            for (key, b) in &skipped {
                if before.get(key) != Some(b) {
                    tracing::error!(block = %b.path, reason = b.reason, error = %b.error, "block skipped: it is not served until it is fixed");
                }
            }
        }
        *self.skipped.write() = skipped;
        let mut current = self.blocks.write();
        // Blocks announced through `block_written` while the bucket was being listed are
        // newer than the listing: keep them.
        for (t, blocks) in current.iter() {
            for (u, r) in blocks {
                if !known.get(t).is_some_and(|b| b.contains_key(u)) {
                    next.entry(t.clone()).or_default().insert(*u, Arc::clone(r));
                }
            }
        }
        let n = next.values().map(|b| b.len()).sum();
        *current = next;
        Ok(n)
    }

    /// The blocks found at the last sync and not served.
    pub fn skipped(&self) -> Vec<SkippedBlock> {
        self.skipped.read().values().cloned().collect()
    }

    fn insert_into(
        &self,
        map: &mut BTreeMap<TenantId, BTreeMap<Ulid, Arc<BlockReader>>>,
        meta: BlockMeta,
    ) -> Result<(), SchemaError> {
        let tenant = TenantId::new(&meta.tenant)?;
        let ulid = meta.ulid;
        let reader = Arc::new(
            BlockReader::new(Arc::clone(&self.store), meta)?.with_cache(Arc::clone(&self.cache)),
        );
        map.entry(tenant).or_default().insert(ulid, reader);
        Ok(())
    }

    /// The blocks of `tenant` overlapping `range`, without those replaced by a compacted
    /// block: a block listed in the `sources` of another known block of the same resolution
    /// is hidden, so its data is never served twice, even before its deletion mark lands.
    pub fn blocks(&self, tenant: &TenantId, range: TimeRange) -> Vec<Arc<BlockReader>> {
        let map = self.blocks.read();
        let Some(b) = map.get(tenant) else {
            return Vec::new();
        };
        let replaced: HashSet<(i64, Ulid)> = b
            .values()
            .flat_map(|r| {
                let res = r.meta().resolution_ms;
                r.meta().sources.iter().map(move |u| (res, *u))
            })
            .collect();
        b.values()
            .filter(|r| {
                range.overlaps(r.meta().min_time, r.meta().max_time)
                    && !replaced.contains(&(r.meta().resolution_ms, r.meta().ulid))
            })
            .cloned()
            .collect()
    }

    /// Every tenant with at least one block.
    pub fn tenants(&self) -> Vec<TenantId> {
        let map = self.blocks.read();
        map.iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Whether `tenant` has a block.
    pub fn has_tenant(&self, tenant: &TenantId) -> bool {
        self.blocks
            .read()
            .get(tenant)
            .is_some_and(|b| !b.is_empty())
    }

    /// The metas of every block, by tenant.
    pub fn metas(&self) -> Vec<BlockMeta> {
        self.blocks
            .read()
            .values()
            .flat_map(|b| b.values().map(|r| r.meta().clone()))
            .collect()
    }
}

impl BlockSink for BlockCatalog {
    fn block_written(&self, meta: &BlockMeta) {
        let mut map = self.blocks.write();
        if let Err(e) = self.insert_into(&mut map, meta.clone()) {
            tracing::error!(block = %meta.ulid, error = %e, "cannot register written block");
        }
    }
}

/// The resolutions a read with `max_resolution_ms` may use, coarsest first (raw is always
/// last, so data that was never downsampled is still answered).
fn allowed_resolutions(max_resolution_ms: i64) -> Vec<i64> {
    [RESOLUTION_1H, RESOLUTION_5M]
        .into_iter()
        .filter(|r| *r <= max_resolution_ms)
        .chain([RESOLUTION_RAW])
        .collect()
}

/// The caller's matchers as they apply to a downsampled block, where [`AGGR_LABEL`] is
/// internal: a matcher on it is decided against the label being absent (it gives the caller
/// no access to the aggregate series). `None` when such a matcher can match nothing.
fn downsampled_matchers(matchers: &[Matcher]) -> Option<Vec<Matcher>> {
    let mut out = Vec::with_capacity(matchers.len() + 1);
    for m in matchers {
        if m.name == AGGR_LABEL {
            if !m.matches_empty() {
                return None;
            }
        } else {
            out.push(m.clone());
        }
    }
    Some(out)
}

/// `labels` without [`AGGR_LABEL`].
fn strip_aggr(labels: &Labels) -> Labels {
    let mut l = labels.clone();
    l.set(AGGR_LABEL, "");
    l
}

/// The matcher selecting the aggregate series `value` of a downsampled block.
fn aggr_matcher(op: MatchOp, value: &str) -> Matcher {
    Matcher::new(op, AGGR_LABEL, value).expect("a constant, valid matcher")
}

/// Time intervals (both ends included), kept sorted and disjoint.
#[derive(Clone, Debug, Default)]
struct Covered(Vec<(i64, i64)>);

impl Covered {
    fn add(&mut self, min: i64, max: i64) {
        self.0.push((min, max));
        self.0.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.0.len());
        for &(lo, hi) in &self.0 {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        self.0 = merged;
    }

    /// Whether `[lo, hi]` is covered whole (intervals that touch are merged, so one holds it).
    fn covers(&self, lo: i64, hi: i64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < lo);
        self.0
            .get(i)
            .is_some_and(|&(start, end)| start <= lo && hi <= end)
    }

    /// Whether `[lo, hi]` meets a covered interval.
    fn overlaps(&self, lo: i64, hi: i64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < lo);
        self.0.get(i).is_some_and(|&(start, _)| start <= hi)
    }

    /// The histogram samples of raw series `s` that lie in covered time (`None` when there
    /// are none).
    fn histograms_within(&self, s: SeriesData) -> Option<SeriesData> {
        let hs = s.histograms()?;
        let ts = s.timestamps();
        let keep: Vec<u32> = (0..s.len())
            .filter(|&i| hs.is_valid(i) && self.overlaps(ts.value(i), ts.value(i)))
            .map(|i| i as u32)
            .collect();
        if keep.is_empty() {
            return None;
        }
        let idx = UInt32Array::from(keep);
        let samples = take_record_batch(&s.samples, &idx).expect("indices are in bounds");
        Some(SeriesData {
            labels: s.labels,
            samples,
        })
    }

    /// `s`, read from a block of resolution `res` starting at `block_min`, without the
    /// points that stand for covered time (`None` when none is left). A raw sample stands
    /// for its own time; a downsampled point for its window `(k*res - res, t]` within the
    /// block, so a window partly covered is dropped whole: time is never answered twice.
    fn remove_from(&self, s: SeriesData, res: i64, block_min: i64) -> Option<SeriesData> {
        if self.0.is_empty() {
            return Some(s);
        }
        let ts = s.timestamps();
        let keep: Vec<usize> = (0..s.len())
            .filter(|&i| {
                let t = ts.value(i);
                let lo = if res > 0 {
                    ((t - 1).div_euclid(res) * res + 1).max(block_min)
                } else {
                    t
                };
                !self.overlaps(lo, t)
            })
            .collect();
        if keep.len() == s.len() {
            return Some(s);
        }
        if keep.is_empty() {
            return None;
        }
        // Every column (histograms of raw data included) keeps the rows kept.
        let idx = UInt32Array::from_iter_values(keep.into_iter().map(|i| i as u32));
        let samples = take_record_batch(&s.samples, &idx).expect("indices are in bounds");
        Some(SeriesData {
            labels: s.labels,
            samples,
        })
    }
}

/// Divides each `sum` point by the `count` point at the same timestamp: the average of every
/// window (a window's aggregates all share the timestamp of its last raw sample).
fn average(sum: &SeriesData, count: &SeriesData, labels: Labels) -> SeriesData {
    let (st, sv) = (sum.timestamps(), sum.values());
    let (ct, cv) = (count.timestamps(), count.values());
    let mut tb = Int64Builder::with_capacity(sum.len());
    let mut vb = Float64Builder::with_capacity(sum.len());
    let (mut i, mut j) = (0, 0);
    while i < sum.len() && j < count.len() {
        let (a, b) = (st.value(i), ct.value(j));
        if a < b {
            i += 1;
        } else if b < a {
            j += 1;
        } else {
            tb.append_value(a);
            vb.append_value(sv.value(i) / cv.value(j));
            i += 1;
            j += 1;
        }
    }
    SeriesData::new(labels, tb.finish(), vb.finish())
}

/// Reads `aggregate` of the series matching `matchers` (already through
/// [`downsampled_matchers`]) from a downsampled block, labels without [`AGGR_LABEL`].
async fn read_downsampled(
    block: &BlockReader,
    tenant: &TenantId,
    matchers: &[Matcher],
    range: TimeRange,
    aggregate: ReadAggregate,
) -> Result<Vec<SeriesData>, SchemaError> {
    let mut m = matchers.to_vec();
    if let Some(v) = aggregate.label_value() {
        m.push(aggr_matcher(MatchOp::Equal, v));
        let series = block.select(tenant, &m, range).await?;
        return Ok(series
            .into_iter()
            .map(|s| SeriesData {
                labels: strip_aggr(&s.labels),
                samples: s.samples,
            })
            .collect());
    }
    // The value of a window is its average: sum / count, point by point.
    let (sum, count) = (
        ReadAggregate::Sum.label_value().expect("sum is stored"),
        ReadAggregate::Count.label_value().expect("count is stored"),
    );
    m.push(aggr_matcher(MatchOp::Re, &format!("{sum}|{count}")));
    let mut pairs: BTreeMap<Labels, (Option<SeriesData>, Option<SeriesData>)> = BTreeMap::new();
    for s in block.select(tenant, &m, range).await? {
        let is_sum = s.labels.get(AGGR_LABEL) == sum;
        let entry = pairs.entry(strip_aggr(&s.labels)).or_default();
        if is_sum {
            entry.0 = Some(s);
        } else {
            entry.1 = Some(s);
        }
    }
    Ok(pairs
        .into_iter()
        .filter_map(|(labels, p)| match p {
            (Some(s), Some(c)) => Some(average(&s, &c, labels)),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect())
}

/// One block's (or one source's) answer for one series.
pub(crate) struct Piece {
    pub(crate) series: SeriesData,
    /// The resolution of the block it comes from.
    pub(crate) res: i64,
    /// `None` for a raw block; for a downsampled block, its `max` aggregate when reading
    /// counters (the raw counter at the end of a window where the counter did not reset).
    pub(crate) max: Option<Option<SeriesData>>,
}

/// The value of sample `i` of `s` when it is a point of a float counter: a float that is not
/// a staleness marker. Histogram samples (raw data only) are no such point: counter joining
/// passes them through as they are.
fn counter_point(s: &SeriesData, i: usize, hs: Option<&BinaryArray>) -> Option<f64> {
    if hs.is_some_and(|h| h.is_valid(i)) {
        return None;
    }
    Some(s.values().value(i)).filter(|v| !is_stale_nan(*v))
}

impl Piece {
    /// The raw counter value at the piece's last point (estimated for downsampled data: the
    /// largest sample of the last window, exact unless the counter reset in that window).
    fn raw_end(&self) -> Option<f64> {
        let (ts, hs) = (self.series.timestamps(), self.series.histograms());
        let (last, v) = (0..self.series.len())
            .rev()
            .find_map(|i| counter_point(&self.series, i, hs).map(|v| (i, v)))?;
        if let Some(Some(max)) = &self.max {
            let t = ts.value(last);
            if let Ok(i) = max.timestamps().values().binary_search(&t) {
                return Some(max.values().value(i));
            }
        }
        Some(v)
    }
}

/// The first counter point of a piece (see [`counter_point`]).
fn first_value(p: &Piece) -> Option<f64> {
    let hs = p.series.histograms();
    (0..p.series.len()).find_map(|i| counter_point(&p.series, i, hs))
}

/// The last counter point of a piece (see [`counter_point`]).
fn last_value(p: &Piece) -> Option<f64> {
    let hs = p.series.histograms();
    (0..p.series.len())
        .rev()
        .find_map(|i| counter_point(&p.series, i, hs))
}

/// Pieces sorted by their first timestamp, each cut to the points after the end of those
/// before it (overlapping pieces: blocks not yet compacted together, or heads replayed
/// over a block), so that they follow one another.
fn without_overlaps(group: Vec<Piece>) -> Vec<Piece> {
    let mut out = Vec::with_capacity(group.len());
    let mut end = i64::MIN;
    for p in group {
        let ts = p.series.timestamps();
        let from = ts.values().partition_point(|t| *t <= end);
        if from == ts.len() {
            continue;
        }
        end = ts.value(ts.len() - 1);
        let series = if from == 0 {
            p.series
        } else {
            SeriesData {
                samples: p.series.samples.slice(from, ts.len() - from),
                labels: p.series.labels,
            }
        };
        out.push(Piece { series, ..p });
    }
    out
}

/// Joins the counter pieces of each series into one counter that never decreases: a
/// downsampled block's `counter` is adjusted for the resets inside the block but starts
/// again from the raw value in the next one, so at every piece boundary the next piece is
/// lifted to continue the previous one (by its rise over the previous piece's estimated raw
/// end, or by nothing when it starts lower), and raw pieces are adjusted for their own
/// resets. The counter starts at the first raw value; only differences matter to `rate`,
/// `increase` and `irate`. Series read from raw pieces only are left exactly as stored
/// unless `raw_too` (sources merged by [`crate::MergedSource`], where the catalog's joined
/// counter is followed by the heads' raw one). Histogram samples of raw pieces are kept as
/// they are and take no part in the joining.
pub(crate) fn chain_counters(pieces: Vec<Piece>, raw_too: bool) -> Vec<SeriesData> {
    let mut groups: HashMap<Labels, Vec<Piece>> = HashMap::new();
    for p in pieces {
        if !p.series.is_empty() {
            groups.entry(p.series.labels.clone()).or_default().push(p);
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (labels, mut group) in groups {
        group.sort_by_key(|p| p.series.timestamps().value(0));
        // Raw sources need joining only where one seems to reset where the next takes over
        // (the catalog's joined counter followed by the heads' raw one).
        let join = group.len() >= 2
            && if raw_too {
                group
                    .windows(2)
                    .any(|w| match (last_value(&w[0]), first_value(&w[1])) {
                        (Some(end), Some(start)) => start < end,
                        _ => false,
                    })
            } else {
                group.iter().any(|p| p.max.is_some())
            };
        if !join {
            out.extend(merge_parts(group.into_iter().map(|p| p.series)));
            continue;
        }
        let group = without_overlaps(group);
        let total: usize = group.iter().map(|p| p.series.len()).sum();
        let mut tb = Int64Builder::with_capacity(total);
        let mut values: Vec<f64> = Vec::with_capacity(total);
        // Null for float samples; dropped if no piece holds a histogram.
        let mut hb = BinaryBuilder::new();
        let mut end: Option<(f64, f64)> = None; // (adjusted, raw) at the previous piece's end
        let mut end_ts: Option<i64> = None;
        for p in &group {
            let (ts, vs) = (p.series.timestamps(), p.series.values());
            let hs = p.series.histograms();
            let (Some(first), Some(raw_end)) = (first_value(p), p.raw_end()) else {
                // Only staleness markers and histograms: kept as they are.
                for i in 0..p.series.len() {
                    tb.append_value(ts.value(i));
                    values.push(vs.value(i));
                    hb.append_option(hs.filter(|h| h.is_valid(i)).map(|h| h.value(i)));
                }
                continue;
            };
            let offset = match end {
                Some((adjusted, raw)) if first >= raw => adjusted - raw,
                // Lower than the estimated raw end: a reset at the boundary, or (more often)
                // a reset inside the previous piece's last window, which makes `max` miss the
                // raw end. Either way the counter rose by at most one scrape's worth between
                // the two samples: counted as nothing rather than guessed.
                Some((adjusted, _)) => adjusted - first,
                None => 0.0,
            };
            // A downsampled block's first point is its first raw sample, there so that a rate
            // over its first window has a start. Right after the previous piece, whose last
            // point is that start, it only makes the points uneven (which changes PromQL's
            // extrapolation): it is dropped once it has told whether the counter reset.
            let window = |t: i64| (t - 1).div_euclid(p.res.max(1));
            let skip_first = p.max.is_some()
                && p.series.len() >= 2
                && end_ts.is_some_and(|e| e >= ts.value(0) - p.res)
                && window(ts.value(0)) == window(ts.value(1));
            let (mut resets, mut prev) = (0.0, None::<f64>);
            let mut last = first + offset;
            for i in usize::from(skip_first)..p.series.len() {
                let v = vs.value(i);
                tb.append_value(ts.value(i));
                if let Some(h) = hs.filter(|h| h.is_valid(i)) {
                    hb.append_value(h.value(i));
                    values.push(v);
                    continue;
                }
                hb.append_null();
                if is_stale_nan(v) {
                    values.push(v);
                    continue;
                }
                if p.max.is_none() && prev.is_some_and(|pv| v < pv) {
                    resets += prev.unwrap_or_default();
                }
                prev = Some(v);
                last = v + resets + offset;
                values.push(last);
            }
            end = Some((last, raw_end));
            end_ts = Some(ts.value(p.series.len() - 1));
        }
        out.push(SeriesData::with_histograms(
            labels,
            tb.finish(),
            Float64Array::from(values),
            hb.finish(),
        ));
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

#[async_trait]
impl SeriesSource for BlockCatalog {
    /// Raw blocks only.
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        let blocks = self.blocks(tenant, range);
        let parts = try_join_all(
            blocks
                .iter()
                .filter(|b| b.meta().resolution_ms == RESOLUTION_RAW)
                .map(|b| b.select(tenant, matchers, range)),
        )
        .await?;
        Ok(merge_parts(parts.into_iter().flatten()))
    }

    /// Reads the coarsest allowed resolution first: the time its blocks cover (from their
    /// first to their last sample) is answered from them, the rest from the next finer
    /// resolution, down to raw blocks. Samples of a finer block inside time already covered
    /// by a coarser resolution are dropped, so no time is answered twice.
    async fn select_hinted(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        hints: ReadHints,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        if hints.max_resolution_ms <= RESOLUTION_RAW {
            return Ok(raw_as_aggregate(
                self.select(tenant, matchers, range).await?,
                hints.aggregate,
            ));
        }
        let blocks = self.blocks(tenant, range);
        let down = downsampled_matchers(matchers);
        let mut covered = Covered::default();
        // The time downsampled blocks answer.
        let mut downsampled = Covered::default();
        let mut parts = Vec::new();
        for res in allowed_resolutions(hints.max_resolution_ms) {
            if res == RESOLUTION_RAW {
                downsampled = covered.clone();
            }
            // Blocks whose part of the range is answered already are not read at all.
            let level: Vec<&Arc<BlockReader>> = blocks
                .iter()
                .filter(|b| {
                    let m = b.meta();
                    m.resolution_ms == res
                        && !covered.covers(m.min_time.max(range.min), m.max_time.min(range.max))
                })
                .collect();
            if level.is_empty() {
                continue;
            }
            let read: Vec<Vec<Piece>> = if res == RESOLUTION_RAW {
                try_join_all(level.iter().map(|b| async move {
                    let raw = b.select(tenant, matchers, range).await?;
                    Ok::<_, SchemaError>(
                        raw_as_aggregate(raw, hints.aggregate)
                            .into_iter()
                            .map(|series| Piece {
                                series,
                                res,
                                max: None,
                            })
                            .collect(),
                    )
                }))
                .await?
            } else if let Some(m) = &down {
                try_join_all(level.iter().map(|b| async move {
                    let series = read_downsampled(b, tenant, m, range, hints.aggregate).await?;
                    let mut maxes: HashMap<Labels, SeriesData> =
                        if hints.aggregate == ReadAggregate::Counter {
                            read_downsampled(b, tenant, m, range, ReadAggregate::Max)
                                .await?
                                .into_iter()
                                .map(|s| (s.labels.clone(), s))
                                .collect()
                        } else {
                            HashMap::new()
                        };
                    Ok::<_, SchemaError>(
                        series
                            .into_iter()
                            .map(|series| Piece {
                                max: Some(maxes.remove(&series.labels)),
                                res,
                                series,
                            })
                            .collect(),
                    )
                }))
                .await?
            } else {
                Vec::new()
            };
            for (b, pieces) in level.iter().zip(read) {
                let block_min = b.meta().min_time;
                parts.extend(pieces.into_iter().filter_map(|p| {
                    covered
                        .remove_from(p.series, res, block_min)
                        .map(|series| Piece { series, ..p })
                }));
            }
            for b in level {
                covered.add(b.meta().min_time, b.meta().max_time);
            }
        }
        // Histogram samples are never downsampled (docs/format.md): for the time that
        // downsampled blocks answer, they come from the raw blocks holding some (their
        // meta.json says so), as long as retention keeps those. They are merged in after
        // counters are joined, which concerns floats only.
        let mut histograms = Vec::new();
        if !downsampled.0.is_empty() {
            for b in blocks.iter().filter(|b| {
                let m = b.meta();
                m.resolution_ms == RESOLUTION_RAW
                    && m.num_histogram_samples > 0
                    && downsampled.overlaps(m.min_time.max(range.min), m.max_time.min(range.max))
            }) {
                let within = b
                    .select(tenant, matchers, range)
                    .await?
                    .into_iter()
                    .filter_map(|s| downsampled.histograms_within(s))
                    .collect();
                histograms.extend(raw_as_aggregate(within, hints.aggregate));
            }
        }
        if hints.aggregate == ReadAggregate::Counter {
            let joined = chain_counters(parts, false);
            if histograms.is_empty() {
                return Ok(joined);
            }
            return Ok(merge_parts(joined.into_iter().chain(histograms)));
        }
        Ok(merge_parts(
            parts.into_iter().map(|p| p.series).chain(histograms),
        ))
    }

    /// The series of blocks of every resolution; those of downsampled blocks without
    /// [`AGGR_LABEL`], each series once.
    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        let blocks = self.blocks(tenant, range);
        let down = downsampled_matchers(matchers);
        let parts = try_join_all(blocks.iter().map(|b| {
            let down = down.as_deref();
            async move {
                if b.meta().resolution_ms == RESOLUTION_RAW {
                    return b.series(tenant, matchers, range).await;
                }
                let Some(m) = down else {
                    return Ok(Vec::new());
                };
                Ok(b.series(tenant, m, range)
                    .await?
                    .iter()
                    .map(strip_aggr)
                    .collect())
            }
        }))
        .await?;
        Ok(union_labels(parts))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Float64Array, Int64Array};
    use hypnos_schemas::block::{BlockInfo, BlockWriter};
    use hypnos_schemas::is_stale_nan;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    /// Distinct from every ordinary value, a staleness marker.
    const STALE: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

    type Raw = Vec<(Labels, Vec<(i64, f64)>)>;

    fn tenant() -> TenantId {
        TenantId::new("t").unwrap()
    }

    fn store() -> Arc<dyn ObjectStore> {
        Arc::new(InMemory::new())
    }

    async fn write(
        store: &Arc<dyn ObjectStore>,
        mut series: Raw,
        info: BlockInfo,
        range: Option<(i64, i64)>,
    ) -> BlockMeta {
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut w = BlockWriter::new(Arc::clone(store), tenant());
        if let Some((lo, hi)) = range {
            w.cover_time_range(lo, hi);
        }
        for (labels, points) in series {
            let ts: Int64Array = points.iter().map(|p| p.0).collect();
            let vs: Float64Array = points.iter().map(|p| p.1).collect();
            w.append(labels, &ts, &vs).await.unwrap();
        }
        w.finish(info).await.unwrap()
    }

    /// A raw block of `series`.
    async fn raw_block(store: &Arc<dyn ObjectStore>, series: &Raw) -> BlockMeta {
        write(store, series.clone(), BlockInfo::head(), None).await
    }

    /// The aggregates of one series at resolution `res`, as the downsampled-block contract
    /// says: windows `(k*res - res, k*res]`, one point per window at its last sample, the
    /// counter adjusted for resets plus a first point at the first sample; staleness markers
    /// left out.
    fn aggregates(points: &[(i64, f64)], res: i64) -> BTreeMap<&'static str, Vec<(i64, f64)>> {
        let mut out: BTreeMap<&'static str, Vec<(i64, f64)>> = BTreeMap::new();
        let points: Vec<(i64, f64)> = points
            .iter()
            .copied()
            .filter(|p| !is_stale_nan(p.1))
            .collect();
        let window = |t: i64| (t - 1).div_euclid(res);
        let (mut prev, mut offset) = (None::<f64>, 0.0);
        let mut adjusted = Vec::with_capacity(points.len());
        for &(t, v) in &points {
            if prev.is_some_and(|p| v < p) {
                offset += prev.unwrap();
            }
            prev = Some(v);
            adjusted.push((t, v + offset));
        }
        let mut i = 0;
        while i < points.len() {
            let w = window(points[i].0);
            let mut j = i;
            while j < points.len() && window(points[j].0) == w {
                j += 1;
            }
            let vs: Vec<f64> = points[i..j].iter().map(|p| p.1).collect();
            let t = points[j - 1].0;
            out.entry("count").or_default().push((t, vs.len() as f64));
            out.entry("sum").or_default().push((t, vs.iter().sum()));
            out.entry("min")
                .or_default()
                .push((t, vs.iter().copied().fold(f64::INFINITY, f64::min)));
            out.entry("max")
                .or_default()
                .push((t, vs.iter().copied().fold(f64::NEG_INFINITY, f64::max)));
            let c = out.entry("counter").or_default();
            if i == 0 && adjusted[0].0 != t {
                c.push(adjusted[0]);
            }
            c.push(adjusted[j - 1]);
            i = j;
        }
        out
    }

    /// A downsampled block of `source` (made from `series`) at `res`.
    async fn downsampled_block(
        store: &Arc<dyn ObjectStore>,
        source: &BlockMeta,
        series: &Raw,
        res: i64,
    ) -> BlockMeta {
        let mut out = Raw::new();
        for (labels, points) in series {
            for (aggr, pts) in aggregates(points, res) {
                let mut l = labels.clone();
                l.set(AGGR_LABEL, aggr);
                out.push((l, pts));
            }
        }
        let info = BlockInfo {
            source: "compactor".into(),
            level: source.level,
            sources: vec![source.ulid],
            resolution_ms: res,
        };
        write(store, out, info, Some((source.min_time, source.max_time))).await
    }

    fn labels(name: &str, job: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("job", job)])
    }

    /// Two series sampled every 15s over `[from, to)`: a gauge and a counter that resets.
    fn raw_series(from: i64, to: i64) -> Raw {
        let ts: Vec<i64> = (from..to).step_by(15_000).collect();
        let gauge = ts
            .iter()
            .map(|&t| (t, ((t / 15_000) % 17) as f64 - 3.5))
            .collect();
        let counter = ts
            .iter()
            .map(|&t| (t, ((t / 15_000) % 500) as f64 * 2.0))
            .collect();
        vec![(labels("g", "a"), gauge), (labels("c", "a"), counter)]
    }

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher::new(MatchOp::Equal, name, value).unwrap()
    }

    fn hints(max_resolution_ms: i64, aggregate: ReadAggregate) -> ReadHints {
        ReadHints {
            max_resolution_ms,
            aggregate,
        }
    }

    fn points(s: &SeriesData) -> Vec<(i64, f64)> {
        s.timestamps()
            .values()
            .iter()
            .copied()
            .zip(s.values().values().iter().copied())
            .collect()
    }

    async fn read(
        c: &BlockCatalog,
        matchers: &[Matcher],
        range: (i64, i64),
        h: ReadHints,
    ) -> Vec<SeriesData> {
        c.select_hinted(&tenant(), matchers, TimeRange::new(range.0, range.1), h)
            .await
            .unwrap()
    }

    async fn catalog(store: &Arc<dyn ObjectStore>) -> BlockCatalog {
        let c = BlockCatalog::new(Arc::clone(store));
        c.sync().await.unwrap();
        c
    }

    #[tokio::test]
    async fn the_coarsest_allowed_resolution_answers() {
        let store = store();
        let series = raw_series(0, 2 * HOUR);
        let raw = raw_block(&store, &series).await;
        downsampled_block(&store, &raw, &series, RESOLUTION_5M).await;
        downsampled_block(&store, &raw, &series, RESOLUTION_1H).await;
        let c = catalog(&store).await;
        let gauge = [eq("__name__", "g")];
        let all = (0, 2 * HOUR);
        let expected = |res| aggregates(&series[0].1, res);

        // Raw: the samples as written, whatever the aggregate (but count).
        let got = read(&c, &gauge, all, hints(0, ReadAggregate::Max)).await;
        assert_eq!(points(&got[0]), series[0].1);
        let got = read(&c, &gauge, all, hints(0, ReadAggregate::Count)).await;
        assert!(points(&got[0]).iter().all(|p| p.1 == 1.0));
        // `select` reads raw blocks only.
        let got = c
            .select(&tenant(), &gauge, TimeRange::new(all.0, all.1))
            .await
            .unwrap();
        assert_eq!(points(&got[0]), series[0].1);

        for (max, res) in [
            (RESOLUTION_5M, RESOLUTION_5M),
            (RESOLUTION_1H, RESOLUTION_1H),
            // Resolutions between the two read the finer one.
            (30 * MIN, RESOLUTION_5M),
            (2 * RESOLUTION_1H, RESOLUTION_1H),
        ] {
            for (aggr, name) in [
                (ReadAggregate::Max, "max"),
                (ReadAggregate::Min, "min"),
                (ReadAggregate::Sum, "sum"),
                (ReadAggregate::Count, "count"),
                (ReadAggregate::Counter, "counter"),
            ] {
                let got = read(&c, &gauge, all, hints(max, aggr)).await;
                assert_eq!(got.len(), 1);
                assert_eq!(
                    got[0].labels,
                    labels("g", "a"),
                    "the aggregate label is removed"
                );
                assert_eq!(points(&got[0]), expected(res)[name], "{max} {name}");
            }
        }
    }

    #[tokio::test]
    async fn value_is_the_window_average() {
        let store = store();
        let series = raw_series(0, HOUR);
        let raw = raw_block(&store, &series).await;
        downsampled_block(&store, &raw, &series, RESOLUTION_5M).await;
        let c = catalog(&store).await;
        let got = read(
            &c,
            &[eq("__name__", "g")],
            (0, HOUR),
            hints(RESOLUTION_5M, ReadAggregate::Value),
        )
        .await;
        let want: Vec<(i64, f64)> = series[0]
            .1
            .chunk_by(|a, b| {
                (a.0 - 1).div_euclid(RESOLUTION_5M) == (b.0 - 1).div_euclid(RESOLUTION_5M)
            })
            .map(|w| {
                let avg = w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64;
                (w[w.len() - 1].0, avg)
            })
            .collect();
        assert_eq!(want.len(), 13, "windows (0, 5m], ..., (1h, 1h5m]");
        assert_eq!(points(&got[0]), want);
        assert_eq!(got[0].labels, labels("g", "a"));
    }

    /// Raw blocks A, B and C (2h each); A is downsampled to 1h and 5m, B to 5m only, C not
    /// at all: each range is answered by the coarsest data covering it, and every raw sample
    /// is counted exactly once.
    #[tokio::test]
    async fn missing_resolutions_fall_back_without_double_answers() {
        let store = store();
        let parts: Vec<Raw> = (0..3)
            .map(|i| raw_series(i * 2 * HOUR, (i + 1) * 2 * HOUR))
            .collect();
        let mut metas = Vec::new();
        for p in &parts {
            metas.push(raw_block(&store, p).await);
        }
        downsampled_block(&store, &metas[0], &parts[0], RESOLUTION_1H).await;
        downsampled_block(&store, &metas[0], &parts[0], RESOLUTION_5M).await;
        downsampled_block(&store, &metas[1], &parts[1], RESOLUTION_5M).await;
        let c = catalog(&store).await;
        let all = (0, 6 * HOUR);
        let counter = [eq("__name__", "c")];
        let raw_count = parts.iter().map(|p| p[1].1.len()).sum::<usize>() as f64;
        for max in [0, RESOLUTION_5M, RESOLUTION_1H] {
            let got = read(&c, &counter, all, hints(max, ReadAggregate::Count)).await;
            assert_eq!(got.len(), 1);
            let pts = points(&got[0]);
            assert!(
                pts.windows(2).all(|w| w[0].0 < w[1].0),
                "sorted, each time once"
            );
            let total: f64 = pts.iter().map(|p| p.1).sum();
            assert_eq!(total, raw_count, "every raw sample counted once at {max}");
        }
        let got = read(&c, &counter, all, hints(RESOLUTION_1H, ReadAggregate::Max)).await;
        let mut want = aggregates(&parts[0][1].1, RESOLUTION_1H)["max"].clone();
        want.extend(&aggregates(&parts[1][1].1, RESOLUTION_5M)["max"]);
        want.extend(&parts[2][1].1);
        assert_eq!(points(&got[0]), want);
        let got = read(
            &c,
            &counter,
            all,
            hints(RESOLUTION_5M, ReadAggregate::Counter),
        )
        .await;
        // The pieces of 5m, 5m and raw data, joined into one counter that never decreases,
        // starting at the raw value and rising by as much as the raw counter (resets
        // included: the counter resets inside the second and the third block).
        let pts = points(&got[0]);
        let mut want_ts: Vec<i64> = Vec::new();
        for p in &parts[..2] {
            want_ts.extend(
                aggregates(&p[1].1, RESOLUTION_5M)["counter"]
                    .iter()
                    .map(|p| p.0),
            );
        }
        want_ts.extend(parts[2][1].1.iter().map(|p| p.0));
        assert_eq!(pts.iter().map(|p| p.0).collect::<Vec<_>>(), want_ts);
        assert!(pts.windows(2).all(|w| w[0].1 <= w[1].1), "{pts:?}");
        let raw: Vec<f64> = parts
            .iter()
            .flat_map(|p| p[1].1.iter().map(|p| p.1))
            .collect();
        let raw_increase: f64 = raw
            .windows(2)
            .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
            .sum();
        assert_eq!(pts[0].1, raw[0]);
        assert_eq!(pts.last().unwrap().1 - pts[0].1, raw_increase);
        // Over raw blocks only, counters are returned as stored.
        let got = read(
            &c,
            &counter,
            (4 * HOUR, 6 * HOUR),
            hints(RESOLUTION_5M, ReadAggregate::Counter),
        )
        .await;
        assert_eq!(points(&got[0]), parts[2][1].1);
    }

    /// Blocks whose time is answered by coarser ones are not even opened.
    #[tokio::test]
    async fn covered_blocks_are_not_read() {
        let store = store();
        let series = raw_series(0, 2 * HOUR);
        let raw = raw_block(&store, &series).await;
        downsampled_block(&store, &raw, &series, RESOLUTION_5M).await;
        let c = catalog(&store).await;
        // Without its files, reading the raw block fails.
        for file in [
            hypnos_schemas::layout::SAMPLES_FILE,
            hypnos_schemas::layout::SERIES_FILE,
        ] {
            let path = hypnos_schemas::layout::block_file(&tenant(), raw.ulid, file);
            store.delete(&path).await.unwrap();
        }
        let g = [eq("__name__", "g")];
        let got = read(&c, &g, (0, HOUR), hints(RESOLUTION_5M, ReadAggregate::Max)).await;
        assert_eq!(got.len(), 1);
        let raw_read = c
            .select_hinted(
                &tenant(),
                &g,
                TimeRange::new(0, HOUR),
                hints(0, ReadAggregate::Max),
            )
            .await;
        assert!(raw_read.is_err(), "the raw block is gone");
    }

    /// A finer block overlapping time a coarser one covers only answers outside it.
    #[tokio::test]
    async fn finer_samples_inside_covered_time_are_dropped() {
        let store = store();
        let first = raw_series(0, 2 * HOUR);
        let both = raw_series(0, 4 * HOUR);
        let a = raw_block(&store, &first).await;
        downsampled_block(&store, &a, &first, RESOLUTION_1H).await;
        // A 5m block over [0, 4h) (from a raw block not known to the catalog).
        let wide = write(&store, both.clone(), BlockInfo::head(), None).await;
        let down = downsampled_block(&store, &wide, &both, RESOLUTION_5M).await;
        assert_eq!(down.sources, vec![wide.ulid]);
        // The bucket also holds the raw blocks `a` and `wide`: they only answer where
        // nothing coarser does (nowhere here).
        let c = catalog(&store).await;
        assert_eq!(c.metas().len(), 4);
        let got = read(
            &c,
            &[eq("__name__", "g")],
            (0, 4 * HOUR),
            hints(RESOLUTION_1H, ReadAggregate::Count),
        )
        .await;
        let pts = points(&got[0]);
        let last_1h = aggregates(&first[0].1, RESOLUTION_1H)["count"].clone();
        let covered_until = a.max_time;
        assert_eq!(covered_until, 2 * HOUR - 15_000);
        assert!(
            pts.iter()
                .filter(|p| p.0 <= covered_until)
                .eq(last_1h.iter())
        );
        assert!(
            pts.iter().filter(|p| p.0 > covered_until).eq(
                aggregates(&both[0].1, RESOLUTION_5M)["count"]
                    .iter()
                    .filter(|p| p.0 > 2 * HOUR)
            ),
            "the 5m window (1h55m, 2h] is partly covered by the 1h block: dropped whole"
        );
        let total: f64 = pts.iter().map(|p| p.1).sum();
        assert_eq!(total, both[0].1.len() as f64 - 1.0);
    }

    /// The aggregate label never reaches the caller and gives the caller's matchers nothing.
    #[tokio::test]
    async fn the_aggregate_label_stays_inside() {
        let store = store();
        let series = raw_series(0, 2 * HOUR);
        let raw = raw_block(&store, &series).await;
        let down = downsampled_block(&store, &raw, &series, RESOLUTION_5M).await;
        // Only the downsampled block is known (the raw one past its retention).
        let c = BlockCatalog::new(Arc::clone(&store));
        c.block_written(&down);
        let t = tenant();
        let range = TimeRange::new(0, 2 * HOUR);
        let any_name = Matcher::new(MatchOp::Re, "__name__", ".+").unwrap();
        let want = vec![labels("c", "a"), labels("g", "a")];

        let got = c
            .series(&t, std::slice::from_ref(&any_name), range)
            .await
            .unwrap();
        assert_eq!(got, want, "each series once, without the aggregate label");
        let h = hints(RESOLUTION_5M, ReadAggregate::Value);
        let got = read(&c, std::slice::from_ref(&any_name), (0, 2 * HOUR), h).await;
        let got: Vec<Labels> = got.into_iter().map(|s| s.labels).collect();
        assert_eq!(got, want);

        // A matcher on the label decides as if it were absent.
        for (m, matches) in [
            (eq(AGGR_LABEL, "sum"), false),
            (Matcher::new(MatchOp::Re, AGGR_LABEL, ".+").unwrap(), false),
            (
                Matcher::new(MatchOp::NotEqual, AGGR_LABEL, "count").unwrap(),
                true,
            ),
            (eq(AGGR_LABEL, ""), true),
        ] {
            let ms = [any_name.clone(), m];
            let series = c.series(&t, &ms, range).await.unwrap();
            let read = read(
                &c,
                &ms,
                (0, 2 * HOUR),
                hints(RESOLUTION_5M, ReadAggregate::Sum),
            )
            .await;
            if matches {
                assert_eq!(series, want, "{:?}", ms[1]);
                assert_eq!(read.len(), 2, "{:?}", ms[1]);
            } else {
                assert!(series.is_empty(), "{:?}", ms[1]);
                assert!(read.is_empty(), "{:?}", ms[1]);
            }
        }
        // Raw-only reads do not see downsampled blocks.
        assert!(c.select(&t, &[any_name], range).await.unwrap().is_empty());
    }

    /// `points` as a raw series whose samples at `is_histogram` times are histograms (stored
    /// bytes `h<t>`, value 0).
    fn with_histograms(
        labels: Labels,
        points: &[(i64, f64)],
        is_histogram: impl Fn(i64) -> bool,
    ) -> SeriesData {
        let ts: Int64Array = points.iter().map(|p| p.0).collect();
        let vs: Float64Array = points
            .iter()
            .map(|p| if is_histogram(p.0) { 0.0 } else { p.1 })
            .collect();
        let hs: Vec<Option<Vec<u8>>> = points
            .iter()
            .map(|p| is_histogram(p.0).then(|| format!("h{}", p.0).into_bytes()))
            .collect();
        let hs: BinaryArray = hs.iter().map(|h| h.as_deref()).collect();
        SeriesData::with_histograms(labels, ts, vs, hs)
    }

    /// Each sample of a series: a float, or the bytes of a histogram.
    fn samples(s: &SeriesData) -> Vec<(i64, Result<f64, String>)> {
        let h = s.histograms();
        (0..s.len())
            .map(|i| {
                let t = s.timestamps().value(i);
                match h.filter(|h| h.is_valid(i)) {
                    Some(h) => (t, Err(String::from_utf8(h.value(i).to_vec()).unwrap())),
                    None => (t, Ok(s.values().value(i))),
                }
            })
            .collect()
    }

    fn histogram_every_fourth(t: i64) -> bool {
        (t / 15_000) % 4 == 1
    }

    /// Raw blocks holding histograms answer raw reads with them: merged across overlapping
    /// blocks, and through hinted reads wherever raw data answers.
    #[tokio::test]
    async fn raw_reads_return_histograms() {
        let store = store();
        let series = raw_series(0, 2 * HOUR);
        let g = with_histograms(labels("g", "a"), &series[0].1, histogram_every_fourth);
        let want = samples(&g);
        // Two overlapping blocks of the same samples (a replay after a crash).
        for (from, to) in [(0, 75), (60, g.len())] {
            let part = SeriesData {
                labels: g.labels.clone(),
                samples: g.samples.slice(from, to - from),
            };
            hypnos_schemas::block::write_block(&store, &tenant(), vec![part])
                .await
                .unwrap();
        }
        let c = catalog(&store).await;
        let m = [eq("__name__", "g")];
        let got = c
            .select(&tenant(), &m, TimeRange::new(0, 2 * HOUR))
            .await
            .unwrap();
        assert_eq!(samples(&got[0]), want);
        for aggregate in [
            ReadAggregate::Value,
            ReadAggregate::Max,
            ReadAggregate::Counter,
        ] {
            let got = read(&c, &m, (0, 2 * HOUR), hints(RESOLUTION_5M, aggregate)).await;
            assert_eq!(samples(&got[0]), want, "{aggregate:?}");
        }
    }

    /// Histograms are not downsampled: for the time a 5m block answers, a downsampled read
    /// takes them from the raw block that holds them, beside the float aggregates; a raw
    /// block without histograms (its meta.json says so) is not read at all.
    #[tokio::test]
    async fn histograms_inside_downsampled_time_come_from_raw_blocks() {
        let store = store();
        let series = raw_series(0, 2 * HOUR);
        let mut with_h: Vec<SeriesData> = series
            .iter()
            .map(|(l, p)| with_histograms(l.clone(), p, histogram_every_fourth))
            .collect();
        with_h.sort_by(|x, y| x.labels.cmp(&y.labels));
        let raw = hypnos_schemas::block::write_block(&store, &tenant(), with_h.clone())
            .await
            .unwrap();
        assert!(raw.num_histogram_samples > 0);
        // As the compactor does: the 5m block aggregates the float samples only.
        let floats: Raw = series
            .iter()
            .map(|(l, p)| {
                let p = p
                    .iter()
                    .copied()
                    .filter(|p| !histogram_every_fourth(p.0))
                    .collect();
                (l.clone(), p)
            })
            .collect();
        downsampled_block(&store, &raw, &floats, RESOLUTION_5M).await;
        let c = catalog(&store).await;
        let g = [eq("__name__", "g")];
        let got = read(
            &c,
            &g,
            (0, 2 * HOUR),
            hints(RESOLUTION_5M, ReadAggregate::Max),
        )
        .await;
        assert_eq!(got.len(), 1);
        let (histograms, floats_got): (Vec<_>, Vec<_>) =
            samples(&got[0]).into_iter().partition(|p| p.1.is_err());
        let g_raw = with_h
            .iter()
            .find(|s| s.labels == labels("g", "a"))
            .unwrap();
        let want_histograms: Vec<_> = samples(g_raw)
            .into_iter()
            .filter(|p| p.1.is_err())
            .collect();
        assert!(!want_histograms.is_empty());
        assert_eq!(histograms, want_histograms);
        let g_floats = &floats.iter().find(|s| s.0 == labels("g", "a")).unwrap().1;
        let want_floats: Vec<_> = aggregates(g_floats, RESOLUTION_5M)["max"]
            .iter()
            .map(|p| (p.0, Ok(p.1)))
            .collect();
        assert_eq!(floats_got, want_floats);
    }

    /// Where downsampled data answers first, the raw samples after it keep their histograms,
    /// the histograms inside its time come from the raw block, and counters are joined over
    /// the float samples alone.
    #[tokio::test]
    async fn histograms_of_raw_data_pass_through_downsampled_reads() {
        let store = store();
        let first = raw_series(0, 2 * HOUR);
        let a = raw_block(&store, &first).await;
        downsampled_block(&store, &a, &first, RESOLUTION_5M).await;
        // A raw block over [1h, 3h): its samples up to the 5m block's end are not read.
        let later = raw_series(HOUR, 3 * HOUR);
        let mut with_h: Vec<SeriesData> = later
            .iter()
            .map(|(l, p)| with_histograms(l.clone(), p, histogram_every_fourth))
            .collect();
        with_h.sort_by(|x, y| x.labels.cmp(&y.labels));
        hypnos_schemas::block::write_block(&store, &tenant(), with_h.clone())
            .await
            .unwrap();
        let c = catalog(&store).await;
        let after = |s: &SeriesData| -> Vec<(i64, Result<f64, String>)> {
            samples(s)
                .into_iter()
                .filter(|p| p.0 > a.max_time)
                .collect()
        };

        let g = [eq("__name__", "g")];
        let got = read(
            &c,
            &g,
            (0, 3 * HOUR),
            hints(RESOLUTION_5M, ReadAggregate::Max),
        )
        .await;
        let pts = samples(&got[0]);
        let (down, raw): (Vec<_>, Vec<_>) = pts.into_iter().partition(|p| p.0 <= a.max_time);
        let (down_histograms, down): (Vec<_>, Vec<_>) =
            down.into_iter().partition(|p| p.1.is_err());
        let want_down: Vec<(i64, Result<f64, String>)> =
            aggregates(&first[0].1, RESOLUTION_5M)["max"]
                .iter()
                .map(|p| (p.0, Ok(p.1)))
                .collect();
        assert_eq!(down, want_down);
        let g_raw = with_h
            .iter()
            .find(|s| s.labels == labels("g", "a"))
            .unwrap();
        assert_eq!(raw, after(g_raw));
        // The later raw block's histograms inside the 5m block's time.
        let want_down_histograms: Vec<_> = samples(g_raw)
            .into_iter()
            .filter(|p| p.1.is_err() && p.0 <= a.max_time)
            .collect();
        assert!(!want_down_histograms.is_empty());
        assert_eq!(down_histograms, want_down_histograms);
        assert!(raw.iter().any(|p| p.1.is_err()));

        // Counters: the histograms are kept as they are, the floats continue the counter
        // (a histogram sample between two floats is no reset).
        let cm = [eq("__name__", "c")];
        let got = read(
            &c,
            &cm,
            (0, 3 * HOUR),
            hints(RESOLUTION_5M, ReadAggregate::Counter),
        )
        .await;
        let pts = samples(&got[0]);
        let c_raw = with_h
            .iter()
            .find(|s| s.labels == labels("c", "a"))
            .unwrap();
        let hist_all: Vec<_> = samples(c_raw)
            .into_iter()
            .filter(|p| p.1.is_err())
            .collect();
        let hist_got: Vec<_> = pts.iter().filter(|p| p.1.is_err()).cloned().collect();
        assert_eq!(hist_got, hist_all);
        let floats: Vec<(i64, f64)> = pts
            .iter()
            .filter_map(|(t, v)| v.as_ref().ok().map(|v| (*t, *v)))
            .collect();
        assert!(floats.windows(2).all(|w| w[0].1 <= w[1].1), "{floats:?}");
        // The raw floats after the 5m block rise as the raw counter does, resets included
        // (one at 2h05m), and nothing else.
        let raw_floats: Vec<(i64, f64)> = after(c_raw)
            .into_iter()
            .filter_map(|(t, v)| v.ok().map(|v| (t, v)))
            .collect();
        let got_after: Vec<f64> = floats
            .iter()
            .filter(|p| p.0 > a.max_time)
            .map(|p| p.1)
            .collect();
        assert_eq!(got_after.len(), raw_floats.len());
        let raw_vals: Vec<f64> = raw_floats.iter().map(|p| p.1).collect();
        assert!(raw_vals.windows(2).any(|w| w[1] < w[0]), "a reset");
        let raw_increase: f64 = raw_vals
            .windows(2)
            .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
            .sum();
        assert_eq!(got_after[got_after.len() - 1] - got_after[0], raw_increase);
    }

    #[test]
    fn staleness_markers_are_not_aggregated_by_the_test_contract() {
        let a = aggregates(&[(1, 1.0), (2, STALE), (3, 2.0)], RESOLUTION_5M);
        assert_eq!(a["count"], vec![(3, 2.0)]);
        assert_eq!(a["counter"], vec![(1, 1.0), (3, 2.0)]);
    }

    #[tokio::test]
    async fn blocks_with_a_foreign_or_broken_meta_are_skipped_and_the_rest_served() {
        use hypnos_schemas::layout::{META_FILE, block_file};
        let store = store();
        let series = raw_series(0, HOUR);
        let good = raw_block(&store, &series).await;
        let meta = store
            .get(&block_file(&tenant(), good.ulid, META_FILE))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        // Another tenant's folder holding a meta that names tenant `t`, and a folder of
        // `t` whose meta is not JSON.
        let evil = TenantId::new("evil").unwrap();
        let foreign = Ulid::new();
        let foreign_meta = String::from_utf8(meta.to_vec())
            .unwrap()
            .replace(&good.ulid.to_string(), &foreign.to_string());
        store
            .put(&block_file(&evil, foreign, META_FILE), foreign_meta.into())
            .await
            .unwrap();
        let garbage = Ulid::new();
        store
            .put(
                &block_file(&tenant(), garbage, META_FILE),
                b"{not json".to_vec().into(),
            )
            .await
            .unwrap();
        let c = BlockCatalog::new(Arc::clone(&store));
        assert_eq!(c.sync().await.unwrap(), 1);
        assert_eq!(c.tenants(), vec![tenant()]);
        let blocks = c.blocks(&tenant(), TimeRange::new(i64::MIN, i64::MAX));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].meta().ulid, good.ulid);
        assert!(!c.has_tenant(&evil));
        let got = read(
            &c,
            &[eq("__name__", "g")],
            (0, HOUR),
            hints(0, ReadAggregate::Max),
        )
        .await;
        assert_eq!(points(&got[0]), series[0].1);
        let mut reasons: Vec<&str> = c.skipped().iter().map(|b| b.reason).collect();
        reasons.sort_unstable();
        assert_eq!(reasons, ["invalid_meta", "tenant_mismatch"]);
        let mismatch = c
            .skipped()
            .into_iter()
            .find(|b| b.reason == "tenant_mismatch");
        assert!(mismatch.unwrap().path.contains("evil"));
        // Fixed on disk (the block's data files, then its meta): served at the next sync, and
        // no longer listed as skipped.
        for file in [
            hypnos_schemas::layout::SAMPLES_FILE,
            hypnos_schemas::layout::SERIES_FILE,
        ] {
            store
                .copy(
                    &block_file(&tenant(), good.ulid, file),
                    &block_file(&tenant(), garbage, file),
                )
                .await
                .unwrap();
        }
        store
            .put(
                &block_file(&tenant(), garbage, META_FILE),
                String::from_utf8(meta.to_vec())
                    .unwrap()
                    .replace(&good.ulid.to_string(), &garbage.to_string())
                    .into(),
            )
            .await
            .unwrap();
        assert_eq!(c.sync().await.unwrap(), 2);
        assert_eq!(c.skipped().len(), 1);
    }
}
