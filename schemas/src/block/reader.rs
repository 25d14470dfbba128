//! [`BlockReader`]: a block in the object store, read lazily (versions 1 and 2).

use std::sync::Arc;

use arrow::array::{
    Array, Float64Array, Int8Array, Int64Array, MapArray, RecordBatch, StringArray, UInt32Array,
};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use tokio::sync::OnceCell;

use super::codec::decode;
use super::io::StoreReader;
use super::{LABELS_COL, SERIES_REF, TIMESTAMPS_REF_COL, VALUE_INT_COL, VALUE_SCALE_COL};
use crate::layout::{BlockMeta, SAMPLES_FILE, SERIES_FILE, block_file};
use crate::matcher::matches_all;
use crate::source::{TIMESTAMP, TimeRange, VALUE};
use crate::{Label, Labels, Matcher, SchemaError, SeriesData, SeriesSource, TenantId};

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
    pub values: Float64Array,
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
}

/// Per series being read: timestamps stored inline, values (when wanted).
#[derive(Default)]
struct Acc {
    ts: Vec<i64>,
    values: Vec<f64>,
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
        })
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

    /// Every series of the block, indexed by series ref.
    pub async fn all_series(&self) -> Result<Arc<Vec<Labels>>, SchemaError> {
        Ok(Arc::clone(&self.table().await?.labels))
    }

    fn matching_refs(series: &[Labels], matchers: &[Matcher]) -> Vec<u32> {
        series
            .iter()
            .enumerate()
            .filter(|(_, l)| matches_all(matchers, l))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The samples of the series `refs` (sorted, unique) within `range`, in ref order;
    /// series without samples in the range are left out.
    pub async fn read_refs(
        &self,
        refs: &[u32],
        range: TimeRange,
    ) -> Result<Vec<RefSamples>, SchemaError> {
        let table = self.table().await?;
        let n = table.labels.len();
        if refs.is_empty() || !range.overlaps(self.meta.min_time, self.meta.max_time) {
            return Ok(Vec::new());
        }
        if refs.windows(2).any(|w| w[0] >= w[1]) || refs[refs.len() - 1] as usize >= n {
            return Err(SchemaError::Other(
                "series refs must be sorted, unique and known".into(),
            ));
        }
        // Series to read: the wanted ones and those holding their timestamps.
        let mut need = vec![0u8; n]; // 1: timestamps only, 2: timestamps and values
        let mut shared = false;
        for r in refs {
            need[*r as usize] = 2;
            let t = table.ts_refs[*r as usize];
            if t != *r {
                shared = true;
                need[t as usize] = need[t as usize].max(1);
            }
        }
        let needed: Vec<u32> = (0..n as u32).filter(|r| need[*r as usize] > 0).collect();
        let first_row = self.row_index().await?;
        let builder = ParquetRecordBatchStreamBuilder::new(self.samples_reader().await?).await?;
        // Only the rows of the needed series are read: row groups that hold none are
        // skipped, and within the others a row selection skips (with the offset index:
        // without fetching or decoding) the pages of other series. Row groups are also
        // pruned by time, unless a series shares another's timestamps (its rows carry none,
        // and the positions of the shared vector must all be read).
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for r in &needed {
            let (a, b) = (first_row[*r as usize], first_row[*r as usize + 1]);
            match ranges.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ if a < b => ranges.push((a, b)),
                _ => {}
            }
        }
        let mut groups = Vec::new();
        let mut selection: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut group_start, mut selected_rows) = (0u64, 0usize);
        for (i, rg) in builder.metadata().row_groups().iter().enumerate() {
            let group_end = group_start + rg.num_rows() as u64;
            let by_time = shared
                || match stat_range_i64(rg.column(1).statistics()) {
                    Some((lo, hi)) => range.overlaps(lo, hi),
                    None => true,
                };
            let first = ranges.partition_point(|(_, b)| *b <= group_start);
            let overlapping = ranges[first..]
                .iter()
                .take_while(|(a, _)| *a < group_end)
                .map(|(a, b)| ((*a).max(group_start), (*b).min(group_end)));
            if by_time {
                let mut any = false;
                for (a, b) in overlapping {
                    any = true;
                    let base = selected_rows as u64 - group_start;
                    selection.push((a + base) as usize..(b + base) as usize);
                }
                if any {
                    groups.push(i);
                    selected_rows += rg.num_rows() as usize;
                }
            }
            group_start = group_end;
        }
        if group_start != first_row[n] {
            return Err(self.corrupt(format!(
                "samples.parquet has {group_start} rows, its series_ref column counts {}",
                first_row[n]
            )));
        }
        let selection = RowSelection::from_consecutive_ranges(selection.into_iter(), selected_rows);
        let mut stream = builder
            .with_row_groups(groups)
            .with_row_selection(selection)
            .build()?;
        let mut acc: Vec<Option<Acc>> = (0..n).map(|_| None).collect();
        while let Some(batch) = stream.try_next().await? {
            let r = batch
                .column_by_name(SERIES_REF)
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>());
            let t = batch
                .column_by_name(TIMESTAMP)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
            let v = batch
                .column_by_name(VALUE)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>());
            let vi = batch
                .column_by_name(VALUE_INT_COL)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
            let (Some(r), Some(t), Some(v)) = (r, t, v) else {
                return Err(self.corrupt("samples.parquet has unexpected column types"));
            };
            let mut i = 0;
            while i < batch.num_rows() {
                let sref = r.value(i);
                let mut j = i;
                while j < batch.num_rows() && r.value(j) == sref {
                    j += 1;
                }
                let s = sref as usize;
                if s >= n {
                    return Err(self.corrupt(format!("sample references unknown series {sref}")));
                }
                if need[s] > 0 {
                    let a = acc[s].get_or_insert_with(Acc::default);
                    if table.ts_refs[s] == sref {
                        if t.null_count() > 0 && (i..j).any(|k| t.is_null(k)) {
                            return Err(self.corrupt(format!("series {sref} lacks timestamps")));
                        }
                        a.ts.extend_from_slice(&t.values()[i..j]);
                    }
                    if need[s] == 2 {
                        let scale = table.scales[s];
                        for k in i..j {
                            let x = if !v.is_null(k) {
                                v.value(k)
                            } else {
                                match vi.filter(|a| !a.is_null(k)) {
                                    Some(a) => decode(a.value(k), scale),
                                    None => {
                                        return Err(
                                            self.corrupt(format!("series {sref} lacks a value"))
                                        );
                                    }
                                }
                            };
                            a.values.push(x);
                        }
                    }
                }
                i = j;
            }
        }
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let s = *r as usize;
            let Some(a) = acc[s].as_ref() else { continue };
            let ts = match acc[table.ts_refs[s] as usize].as_ref() {
                Some(src) => &src.ts,
                None => return Err(self.corrupt(format!("series {r} lacks timestamps"))),
            };
            if ts.len() != a.values.len() {
                return Err(self.corrupt(format!(
                    "series {r} has {} values for {} timestamps",
                    a.values.len(),
                    ts.len()
                )));
            }
            let lo = ts.partition_point(|x| *x < range.min);
            let hi = ts.partition_point(|x| *x <= range.max);
            if lo < hi {
                out.push(RefSamples {
                    series_ref: *r,
                    timestamps: Int64Array::from(ts[lo..hi].to_vec()),
                    values: Float64Array::from(a.values[lo..hi].to_vec()),
                });
            }
        }
        Ok(out)
    }
}

fn stat_range_i64(s: Option<&Statistics>) -> Option<(i64, i64)> {
    match s {
        Some(Statistics::Int64(v)) if v.null_count_opt() == Some(0) => {
            Some((*v.min_opt()?, *v.max_opt()?))
        }
        _ => None,
    }
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
        let all = self.all_series().await?;
        let refs = Self::matching_refs(&all, matchers);
        Ok(self
            .read_refs(&refs, range)
            .await?
            .into_iter()
            .map(|s| SeriesData::new(all[s.series_ref as usize].clone(), s.timestamps, s.values))
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
        let all = self.all_series().await?;
        Ok(Self::matching_refs(&all, matchers)
            .into_iter()
            .map(|r| all[r as usize].clone())
            .collect())
    }
}
