//! [`BlockReader`]: a block in the object store, read lazily (versions 1 to 3).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, BinaryArray, Float64Array, Int8Array, Int64Array, MapArray, RecordBatch, StringArray,
    UInt32Array,
};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::ParquetMetaData;
use tokio::sync::OnceCell;

mod samples;

use super::cache::SampleCache;
use super::io::StoreReader;
use super::{LABELS_COL, SERIES_REF, TIMESTAMPS_REF_COL, VALUE_SCALE_COL};
use crate::labels::METRIC_NAME;
use crate::layout::{BlockMeta, SAMPLES_FILE, SERIES_FILE, block_file};
use crate::matcher::matches_all;
use crate::source::{HISTOGRAM, TimeRange};
use crate::{Label, Labels, MatchOp, Matcher, SchemaError, SeriesData, SeriesSource, TenantId};

/// The series table of a block: labels by ref, and how each series' samples are stored.
#[derive(Debug)]
struct SeriesTable {
    labels: Arc<Vec<Labels>>,
    /// The series whose `timestamp` column holds each series' timestamps.
    ts_refs: Vec<u32>,
    /// Decimal scale of each series' `value_int` mantissas.
    scales: Vec<i8>,
}

/// Samples of one series of a block, by its ref.
#[derive(Clone, Debug)]
pub struct RefSamples {
    pub series_ref: u32,
    pub timestamps: Int64Array,
    /// The float samples; 0 at histogram samples.
    pub values: Float64Array,
    /// The native histograms ([`crate::histogram::FloatHistogram::encode`]), null at float
    /// samples; `None` when the rows read hold no histogram.
    pub histograms: Option<BinaryArray>,
}

impl RefSamples {
    /// The samples as a series with `labels`.
    pub fn into_series(self, labels: Labels) -> SeriesData {
        match self.histograms {
            Some(h) => SeriesData::with_histograms(labels, self.timestamps, self.values, h),
            None => SeriesData::new(labels, self.timestamps, self.values),
        }
    }
}

/// A block in the object store, read lazily: its series table is loaded once, on first use,
/// and kept; samples are read per query, only from the row groups that can hold the
/// selected series and time range.
#[derive(Debug)]
pub struct BlockReader {
    store: Arc<dyn ObjectStore>,
    meta: BlockMeta,
    tenant: TenantId,
    series: OnceCell<SeriesTable>,
    samples_footer: OnceCell<Arc<ParquetMetaData>>,
    /// The first row of each series in `samples.parquet` (one more entry than series: the
    /// row count), found once by reading the `series_ref` column.
    row_index: OnceCell<Vec<u64>>,
    /// Decoded samples kept across reads, if any.
    cache: Option<Arc<SampleCache>>,
    /// The series refs of each metric name, built once on first use.
    names: OnceCell<NameIndex>,
}

/// The series of a block grouped by metric name (`""` for series without one): sorted by
/// name, each with its refs in ascending order. Matchers on `__name__` are tried once per
/// name instead of once per series.
#[derive(Debug)]
struct NameIndex(Vec<(String, Vec<u32>)>);

impl NameIndex {
    fn new(series: &[Labels]) -> Self {
        let mut by_name: HashMap<&str, Vec<u32>> = HashMap::new();
        for (r, l) in series.iter().enumerate() {
            by_name.entry(l.metric_name()).or_default().push(r as u32);
        }
        let mut names: Vec<(String, Vec<u32>)> = by_name
            .into_iter()
            .map(|(n, refs)| (n.to_string(), refs))
            .collect();
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Self(names)
    }

    /// The refs (ascending) of the series whose name every `__name__` matcher of
    /// `matchers` accepts; `None` when there is no such matcher.
    fn candidates(&self, matchers: &[Matcher]) -> Option<Vec<u32>> {
        let on_name: Vec<&Matcher> = matchers.iter().filter(|m| m.name == METRIC_NAME).collect();
        if on_name.is_empty() {
            return None;
        }
        if let Some(eq) = on_name.iter().find(|m| m.op == MatchOp::Equal) {
            let Ok(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(&eq.value)) else {
                return Some(Vec::new());
            };
            let (name, refs) = &self.0[i];
            return Some(if on_name.iter().all(|m| m.matches_value(name)) {
                refs.clone()
            } else {
                Vec::new()
            });
        }
        let mut refs: Vec<u32> = self
            .0
            .iter()
            .filter(|(n, _)| on_name.iter().all(|m| m.matches_value(n)))
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        refs.sort_unstable();
        Some(refs)
    }
}

impl BlockReader {
    pub fn new(store: Arc<dyn ObjectStore>, meta: BlockMeta) -> Result<Self, SchemaError> {
        let tenant = TenantId::new(&meta.tenant)?;
        Ok(Self {
            store,
            meta,
            tenant,
            series: OnceCell::new(),
            samples_footer: OnceCell::new(),
            row_index: OnceCell::new(),
            cache: None,
            names: OnceCell::new(),
        })
    }

    /// Keeps decoded samples in `cache` (shared with other readers) and reads from it.
    pub fn with_cache(mut self, cache: Arc<SampleCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    fn corrupt(&self, message: impl Into<String>) -> SchemaError {
        SchemaError::CorruptBlock {
            block: self.meta.ulid.to_string(),
            message: message.into(),
        }
    }

    /// A Parquet or Arrow failure reading this block's files means the files are damaged:
    /// said so, naming the block (object-store failures stay what they are, they may pass).
    fn damaged(&self, e: SchemaError) -> SchemaError {
        match e {
            SchemaError::Parquet(_) | SchemaError::Arrow(_) => self.corrupt(format!(
                "damaged data file (tenants/{}/{}): {e}",
                self.tenant, self.meta.ulid
            )),
            e => e,
        }
    }

    fn reader(&self, file: &str) -> Result<StoreReader, SchemaError> {
        let size = self
            .meta
            .files
            .iter()
            .find(|f| f.name == file)
            .map(|f| f.size_bytes)
            .ok_or_else(|| self.corrupt(format!("meta.json does not list {file}")))?;
        Ok(StoreReader::new(
            Arc::clone(&self.store),
            block_file(&self.tenant, self.meta.ulid, file),
            size,
            if file == SAMPLES_FILE {
                self.samples_footer.get().cloned()
            } else {
                None
            },
        ))
    }

    /// The samples file's footer, read once and kept.
    async fn samples_reader(&self) -> Result<StoreReader, SchemaError> {
        let footer = self
            .samples_footer
            .get_or_try_init(|| async { self.reader(SAMPLES_FILE)?.load_metadata().await })
            .await?;
        Ok(self.reader(SAMPLES_FILE)?.with_metadata(Arc::clone(footer)))
    }

    async fn table(&self) -> Result<&SeriesTable, SchemaError> {
        self.series
            .get_or_try_init(|| async { self.load_table().await })
            .await
    }

    async fn load_table(&self) -> Result<SeriesTable, SchemaError> {
        let stream = ParquetRecordBatchStreamBuilder::new(self.reader(SERIES_FILE)?)
            .await?
            .build()?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        let n = self.meta.num_series as usize;
        let (mut labels, mut ts_refs, mut scales) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for b in &batches {
            let refs = b
                .column_by_name(SERIES_REF)
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
                .ok_or_else(|| self.corrupt("series.parquet lacks series_ref"))?;
            let map = b
                .column_by_name(LABELS_COL)
                .and_then(|c| c.as_any().downcast_ref::<MapArray>())
                .ok_or_else(|| self.corrupt("series.parquet lacks labels"))?;
            let keys = map
                .keys()
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| self.corrupt("label names are not strings"))?;
            let vals = map
                .values()
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| self.corrupt("label values are not strings"))?;
            // Version 2 columns; a version 1 block stores every series' timestamps and
            // values inline.
            let tsr = b
                .column_by_name(TIMESTAMPS_REF_COL)
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>());
            let sc = b
                .column_by_name(VALUE_SCALE_COL)
                .and_then(|c| c.as_any().downcast_ref::<Int8Array>());
            let offs = map.value_offsets();
            for row in 0..b.num_rows() {
                let sref = labels.len() as u32;
                if refs.value(row) != sref {
                    return Err(self.corrupt("series refs are not consecutive"));
                }
                let (s, e) = (offs[row] as usize, offs[row + 1] as usize);
                labels.push(Labels::from_sorted(
                    (s..e)
                        .map(|j| Label::new(keys.value(j), vals.value(j)))
                        .collect(),
                ));
                let ts_ref = tsr.map_or(sref, |a| a.value(row));
                if ts_ref > sref {
                    return Err(self.corrupt(format!(
                        "series {sref} takes its timestamps from a later series {ts_ref}"
                    )));
                }
                let scale = sc.map_or(0, |a| a.value(row));
                if !(0..=super::codec::MAX_SCALE).contains(&scale) {
                    return Err(self.corrupt(format!("series {sref} has value scale {scale}")));
                }
                ts_refs.push(ts_ref);
                scales.push(scale);
            }
        }
        Ok(SeriesTable {
            labels: Arc::new(labels),
            ts_refs,
            scales,
        })
    }

    async fn row_index(&self) -> Result<&[u64], SchemaError> {
        self.row_index
            .get_or_try_init(|| async { self.load_row_index().await })
            .await
            .map(Vec::as_slice)
    }

    /// Reads the `series_ref` column alone (delta-encoded runs of one value: cheap) and
    /// records where each series' rows start.
    async fn load_row_index(&self) -> Result<Vec<u64>, SchemaError> {
        let n = self.table().await?.labels.len();
        let builder = ParquetRecordBatchStreamBuilder::new(self.samples_reader().await?).await?;
        let mask = ProjectionMask::leaves(builder.parquet_schema(), [0]);
        let mut stream = builder.with_projection(mask).build()?;
        let mut counts = vec![0u64; n];
        let mut last = 0u32;
        while let Some(batch) = stream.try_next().await? {
            let r = batch
                .column(0)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| self.corrupt("samples.parquet series_ref is not UInt32"))?;
            for &x in r.values() {
                if x < last || x as usize >= n {
                    return Err(self.corrupt(format!(
                        "samples.parquet rows are not sorted by known series refs (ref {x})"
                    )));
                }
                last = x;
                counts[x as usize] += 1;
            }
        }
        let mut first = Vec::with_capacity(n + 1);
        let mut acc = 0u64;
        first.push(0);
        for c in counts {
            acc += c;
            first.push(acc);
        }
        Ok(first)
    }

    /// How many of the block's samples are native histograms: from the `samples.parquet`
    /// footer (null counts of the histogram column chunks) when it has them, else by
    /// reading the column. 0 for blocks of versions 1 and 2.
    pub async fn histogram_samples(&self) -> Result<u64, SchemaError> {
        let footer = self.samples_reader().await?.load_metadata().await?;
        let schema = footer.file_metadata().schema_descr();
        let Some(leaf) = (0..schema.num_columns()).find(|i| schema.column(*i).name() == HISTOGRAM)
        else {
            return Ok(0);
        };
        let from_stats: Option<u64> = footer
            .row_groups()
            .iter()
            .map(|rg| {
                let c = rg.column(leaf);
                let nulls = c.statistics()?.null_count_opt()?;
                (c.num_values() as u64).checked_sub(nulls)
            })
            .sum();
        if let Some(n) = from_stats {
            return Ok(n);
        }
        let builder = ParquetRecordBatchStreamBuilder::new(self.samples_reader().await?).await?;
        let mask = ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
        let mut stream = builder.with_projection(mask).build()?;
        let mut n = 0u64;
        while let Some(batch) = stream.try_next().await? {
            let c = batch.column(0);
            n += (c.len() - c.null_count()) as u64;
        }
        Ok(n)
    }

    /// Every series of the block, indexed by series ref.
    pub async fn all_series(&self) -> Result<Arc<Vec<Labels>>, SchemaError> {
        Ok(Arc::clone(&self.table().await?.labels))
    }

    /// The refs (ascending) of the series `matchers` select; the name index narrows the
    /// series to try first.
    async fn matching_refs(
        &self,
        series: &[Labels],
        matchers: &[Matcher],
    ) -> Result<Vec<u32>, SchemaError> {
        let names = self
            .names
            .get_or_try_init(|| async { Ok::<_, SchemaError>(NameIndex::new(series)) })
            .await?;
        Ok(match names.candidates(matchers) {
            Some(refs) => refs
                .into_iter()
                .filter(|r| matches_all(matchers, &series[*r as usize]))
                .collect(),
            None => series
                .iter()
                .enumerate()
                .filter(|(_, l)| matches_all(matchers, l))
                .map(|(i, _)| i as u32)
                .collect(),
        })
    }
}

impl Drop for BlockReader {
    /// A reader is dropped when its block leaves the catalog: its cached samples go too.
    fn drop(&mut self) {
        if let Some(c) = &self.cache {
            c.forget_block(self.meta.ulid);
        }
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch.column_by_name(name)?.as_any().downcast_ref::<T>()
}

#[async_trait]
impl SeriesSource for BlockReader {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        if *tenant != self.tenant || !range.overlaps(self.meta.min_time, self.meta.max_time) {
            return Ok(Vec::new());
        }
        let all = self.all_series().await.map_err(|e| self.damaged(e))?;
        let refs = self
            .matching_refs(&all, matchers)
            .await
            .map_err(|e| self.damaged(e))?;
        Ok(self
            .read_refs(&refs, range)
            .await
            .map_err(|e| self.damaged(e))?
            .into_iter()
            .map(|s| {
                let labels = all[s.series_ref as usize].clone();
                s.into_series(labels)
            })
            .collect())
    }

    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        if *tenant != self.tenant || !range.overlaps(self.meta.min_time, self.meta.max_time) {
            return Ok(Vec::new());
        }
        // Block granularity: a series of an overlapping block counts as present.
        let all = self.all_series().await.map_err(|e| self.damaged(e))?;
        Ok(self
            .matching_refs(&all, matchers)
            .await
            .map_err(|e| self.damaged(e))?
            .into_iter()
            .map(|r| all[r as usize].clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::write_block;
    use crate::histogram::FloatHistogram;
    use arrow::array::BinaryBuilder;
    use object_store::local::LocalFileSystem;

    fn labels(name: &str, job: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("job", job)])
    }

    /// Series of every kind a block stores: timestamps shared between series or not,
    /// scaled-integer and plain float values, the staleness marker, histograms among floats.
    fn input() -> Vec<SeriesData> {
        let ts: Vec<i64> = (0..3000).map(|i| i * 15_000 + (i * 7919) % 51).collect();
        let other: Vec<i64> = (0..2000).map(|i| 7 + i * 20_000).collect();
        let counter = |k: f64| -> Vec<f64> { (0..3000).map(|i| (i as f64) * k).collect() };
        let mut floats: Vec<f64> = (0..3000).map(|i| (i as f64).sqrt()).collect();
        floats[2999] = f64::from_bits(crate::STALE_NAN_BITS);
        let mut hists = BinaryBuilder::new();
        let mut hvals = Vec::new();
        for i in 0..2000 {
            if i % 3 == 0 || i >= 1500 {
                let h = FloatHistogram {
                    count: i as f64,
                    sum: i as f64 * 0.5,
                    ..Default::default()
                };
                hists.append_value(h.encode());
                hvals.push(0.0);
            } else {
                hists.append_null();
                hvals.push(i as f64 / 8.0);
            }
        }
        vec![
            SeriesData::new(
                labels("a", "x"),
                Int64Array::from(ts.clone()),
                Float64Array::from(counter(1.25)),
            ),
            SeriesData::new(
                labels("b", "x"),
                Int64Array::from(ts.clone()),
                Float64Array::from(counter(4096.0)),
            ),
            SeriesData::new(
                labels("c", "x"),
                Int64Array::from(ts),
                Float64Array::from(floats),
            ),
            SeriesData::with_histograms(
                labels("d", "y"),
                Int64Array::from(other.clone()),
                Float64Array::from(hvals),
                hists.finish(),
            ),
            SeriesData::new(
                labels("e", "y"),
                Int64Array::from(other),
                Float64Array::from(vec![2.5; 2000]),
            ),
        ]
    }

    /// One series as read: labels, timestamps, value bits, histogram bytes.
    type Dumped = (Labels, Vec<i64>, Vec<u64>, Option<Vec<Option<Vec<u8>>>>);

    /// What a read returned, bit for bit.
    fn dump(got: &[SeriesData]) -> Vec<Dumped> {
        got.iter()
            .map(|s| {
                (
                    s.labels.clone(),
                    s.timestamps().values().to_vec(),
                    s.values().values().iter().map(|v| v.to_bits()).collect(),
                    s.histograms()
                        .map(|h| h.iter().map(|x| x.map(<[u8]>::to_vec)).collect()),
                )
            })
            .collect()
    }

    #[test]
    fn name_index_narrows_without_changing_the_selection() {
        let series: Vec<Labels> = [
            vec![("__name__", "up"), ("job", "a")],
            vec![("__name__", "up"), ("job", "b")],
            vec![("job", "a")],
            vec![("__name__", "down"), ("job", "a")],
            vec![("__name__", "up"), ("job", "c")],
            vec![("__name__", "upper"), ("job", "a")],
        ]
        .into_iter()
        .map(Labels::from_pairs)
        .collect();
        let index = NameIndex::new(&series);
        let m = |op, name: &str, v: &str| Matcher::new(op, name, v).unwrap();
        let cases = vec![
            vec![m(MatchOp::Equal, "__name__", "up")],
            vec![
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::Equal, "job", "a"),
            ],
            vec![m(MatchOp::Equal, "__name__", "nope")],
            vec![m(MatchOp::Equal, "__name__", "")],
            vec![m(MatchOp::Re, "__name__", "up.*")],
            vec![
                m(MatchOp::Re, "__name__", "up|down"),
                m(MatchOp::NotRe, "__name__", "d.*"),
            ],
            vec![m(MatchOp::NotEqual, "__name__", "up")],
            vec![m(MatchOp::NotRe, "__name__", ".+")],
            vec![
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::NotEqual, "__name__", "up"),
            ],
            vec![m(MatchOp::Equal, "job", "a")],
        ];
        for matchers in cases {
            let brute: Vec<u32> = (0..series.len() as u32)
                .filter(|r| matches_all(&matchers, &series[*r as usize]))
                .collect();
            let narrowed: Option<Vec<u32>> = index.candidates(&matchers).map(|c| {
                c.into_iter()
                    .filter(|r| matches_all(&matchers, &series[*r as usize]))
                    .collect()
            });
            let on_name = matchers.iter().any(|m| m.name == METRIC_NAME);
            assert_eq!(narrowed.is_some(), on_name, "{matchers:?}");
            assert_eq!(narrowed.unwrap_or(brute.clone()), brute, "{matchers:?}");
        }
        // Candidates come sorted even when names interleave in ref order.
        let c = index
            .candidates(&[m(MatchOp::Re, "__name__", ".*")])
            .unwrap();
        assert_eq!(c, (0..series.len() as u32).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn cached_reads_answer_as_uncached_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let tenant = TenantId::new("t1").unwrap();
        let meta = write_block(&store, &tenant, input()).await.unwrap();
        let plain = BlockReader::new(Arc::clone(&store), meta.clone()).unwrap();
        let cache = Arc::new(SampleCache::new(64 << 20));
        let cached = BlockReader::new(Arc::clone(&store), meta.clone())
            .unwrap()
            .with_cache(Arc::clone(&cache));
        // A budget too small for any series: every read goes to the file.
        let starved = BlockReader::new(Arc::clone(&store), meta)
            .unwrap()
            .with_cache(Arc::new(SampleCache::new(1000)));
        let job = |v: &str| Matcher::new(MatchOp::Equal, "job", v).unwrap();
        let name = |v: &str| Matcher::new(MatchOp::Re, "__name__", v).unwrap();
        let reads = [
            (vec![job("y")], TimeRange::new(0, 300_000)),
            (vec![name("a|d")], TimeRange::new(29_000_000, 31_000_000)),
            (vec![], TimeRange::new(i64::MIN, i64::MAX)),
            (vec![name("c")], TimeRange::new(44_970_000, 45_000_000)),
            // Past the end of the histogram series' floats: histograms only.
            (vec![job("y")], TimeRange::new(30_000_000, 30_100_000)),
            // Between two samples: nothing.
            (vec![name("e")], TimeRange::new(8, 19_000)),
            (vec![job("x")], TimeRange::new(-5, -1)),
        ];
        let mut nonempty = 0;
        // Twice: the first round fills the cache, the second reads from it.
        for round in 0..2 {
            for (matchers, range) in &reads {
                let want = dump(&plain.select(&tenant, matchers, *range).await.unwrap());
                let got = dump(&cached.select(&tenant, matchers, *range).await.unwrap());
                let starved = dump(&starved.select(&tenant, matchers, *range).await.unwrap());
                assert_eq!(got, want, "round {round}, {matchers:?} {range:?}");
                assert_eq!(starved, want, "round {round}, {matchers:?} {range:?}");
                nonempty += usize::from(!want.is_empty());
            }
        }
        assert_eq!(nonempty, 2 * 5);
        // Timestamps of the two timestamp vectors and the values of all five series.
        assert_eq!(cache.usage().0, 2 + 5);
        drop(cached);
        assert_eq!(cache.usage(), (0, 0));
    }
}
