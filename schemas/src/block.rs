//! The Parquet block format, version 1 (documented in docs/format.md): writing a block from
//! sorted series and reading series and samples back out of one.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, Int64Array, Int64Builder, MapArray, MapBuilder,
    RecordBatch, StringArray, StringBuilder, UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use tokio::sync::OnceCell;
use ulid::Ulid;

use crate::layout::{
    BLOCK_SCHEMA_VERSION, BlockFile, BlockMeta, META_FILE, SAMPLES_FILE, SERIES_FILE, block_file,
};
use crate::matcher::matches_all;
use crate::source::TimeRange;
use crate::{Label, Labels, Matcher, SchemaError, SeriesData, SeriesSource, TenantId};

pub const SERIES_REF: &str = "series_ref";
pub const METRIC_NAME_COL: &str = "metric_name";
pub const LABELS_COL: &str = "labels";

/// Rows per row group of `samples.parquet`.
pub const SAMPLES_ROW_GROUP: usize = 1 << 20;
/// Rows per batch handed to the writer.
const WRITE_BATCH: usize = 64 * 1024;

fn labels_map_field() -> Field {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    Field::new(LABELS_COL, DataType::Map(Arc::new(entries), false), false)
}

static SERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SERIES_REF, DataType::UInt32, false),
        Field::new(METRIC_NAME_COL, DataType::Utf8, false),
        labels_map_field(),
    ]))
});

static SAMPLES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SERIES_REF, DataType::UInt32, false),
        Field::new(crate::source::TIMESTAMP, DataType::Int64, false),
        Field::new(crate::source::VALUE, DataType::Float64, false),
    ]))
});

/// Schema of `series.parquet`: `series_ref` (UInt32, the row number, in label order),
/// `metric_name` (Utf8) and `labels` (Map<Utf8, Utf8>, every label including the name).
pub fn series_file_schema() -> SchemaRef {
    Arc::clone(&SERIES_SCHEMA)
}

/// Schema of `samples.parquet`: `series_ref` (UInt32), `timestamp` (Int64 ms), `value`
/// (Float64), sorted by (series_ref, timestamp).
pub fn samples_file_schema() -> SchemaRef {
    Arc::clone(&SAMPLES_SCHEMA)
}

fn writer_props(kind: &str) -> WriterProperties {
    let b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            "hypnos.block.schema_version".to_string(),
            format!("{BLOCK_SCHEMA_VERSION}:{kind}"),
        )]));
    if kind == SAMPLES_FILE {
        b.set_max_row_group_row_count(Some(SAMPLES_ROW_GROUP))
            .set_column_dictionary_enabled(ColumnPath::from(crate::source::TIMESTAMP), false)
            .set_column_encoding(
                ColumnPath::from(crate::source::TIMESTAMP),
                Encoding::DELTA_BINARY_PACKED,
            )
            .set_column_dictionary_enabled(ColumnPath::from(crate::source::VALUE), false)
            .set_column_encoding(
                ColumnPath::from(crate::source::VALUE),
                Encoding::BYTE_STREAM_SPLIT,
            )
            .build()
    } else {
        b.build()
    }
}

/// Writes `series` (any order; each label set once, samples sorted and in-range) as a block of
/// `tenant` and returns its meta. `meta.json` is written last, so a crash never leaves a block
/// that readers see half-written.
pub async fn write_block(
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
    mut series: Vec<SeriesData>,
) -> Result<BlockMeta, SchemaError> {
    series.retain(|s| !s.is_empty());
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let ulid = Ulid::new();

    // series.parquet
    let mut refs = UInt32Builder::with_capacity(series.len());
    let mut names = StringBuilder::new();
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (i, s) in series.iter().enumerate() {
        refs.append_value(i as u32);
        names.append_value(s.labels.metric_name());
        for l in s.labels.iter() {
            labels.keys().append_value(&l.name);
            labels.values().append_value(&l.value);
        }
        labels.append(true)?;
    }
    let labels_arr = labels.finish();
    // MapBuilder names its fields itself; cast onto the declared schema's field names.
    let labels_arr: ArrayRef = Arc::new(MapArray::try_new(
        match labels_map_field().data_type() {
            DataType::Map(f, _) => Arc::clone(f),
            _ => unreachable!("labels field is a map"),
        },
        labels_arr.offsets().clone(),
        labels_arr.entries().clone(),
        None,
        false,
    )?);
    let series_batch = RecordBatch::try_new(
        series_file_schema(),
        vec![
            Arc::new(refs.finish()),
            Arc::new(names.finish()),
            labels_arr,
        ],
    )?;
    let series_path = block_file(tenant, ulid, SERIES_FILE);
    let mut w = AsyncArrowWriter::try_new(
        BufWriter::new(Arc::clone(store), series_path),
        series_file_schema(),
        Some(writer_props(SERIES_FILE)),
    )?;
    w.write(&series_batch).await?;
    w.close().await?;

    // samples.parquet
    let samples_path = block_file(tenant, ulid, SAMPLES_FILE);
    let mut w = AsyncArrowWriter::try_new(
        BufWriter::new(Arc::clone(store), samples_path),
        samples_file_schema(),
        Some(writer_props(SAMPLES_FILE)),
    )?;
    let (mut min_time, mut max_time, mut num_samples) = (i64::MAX, i64::MIN, 0u64);
    let mut rb = UInt32Builder::with_capacity(WRITE_BATCH);
    let mut tb = Int64Builder::with_capacity(WRITE_BATCH);
    let mut vb = Float64Builder::with_capacity(WRITE_BATCH);
    for (i, s) in series.iter().enumerate() {
        let ts = s.timestamps();
        min_time = min_time.min(ts.value(0));
        max_time = max_time.max(ts.value(ts.len() - 1));
        num_samples += ts.len() as u64;
        let mut off = 0;
        while off < ts.len() {
            let n = (WRITE_BATCH - tb.values_slice().len()).min(ts.len() - off);
            rb.append_value_n(i as u32, n);
            tb.append_slice(&ts.values()[off..off + n]);
            vb.append_slice(&s.values().values()[off..off + n]);
            off += n;
            if tb.values_slice().len() == WRITE_BATCH {
                w.write(&samples_batch(&mut rb, &mut tb, &mut vb)?).await?;
            }
        }
    }
    if !tb.values_slice().is_empty() {
        w.write(&samples_batch(&mut rb, &mut tb, &mut vb)?).await?;
    }
    w.close().await?;

    let mut files = Vec::new();
    for name in [SERIES_FILE, SAMPLES_FILE] {
        let head = store.head(&block_file(tenant, ulid, name)).await?;
        files.push(BlockFile {
            name: name.to_string(),
            size_bytes: head.size,
        });
    }
    let meta = BlockMeta {
        ulid,
        tenant: tenant.to_string(),
        min_time,
        max_time,
        resolution_ms: 0,
        level: 1,
        num_series: series.len() as u64,
        num_samples,
        schema_version: BLOCK_SCHEMA_VERSION,
        source: "head".to_string(),
        files,
    };
    let json = serde_json::to_vec_pretty(&meta).expect("meta serializes");
    store
        .put(&block_file(tenant, ulid, META_FILE), json.into())
        .await?;
    Ok(meta)
}

fn samples_batch(
    rb: &mut UInt32Builder,
    tb: &mut Int64Builder,
    vb: &mut Float64Builder,
) -> Result<RecordBatch, SchemaError> {
    Ok(RecordBatch::try_new(
        samples_file_schema(),
        vec![
            Arc::new(rb.finish()),
            Arc::new(tb.finish()),
            Arc::new(vb.finish()),
        ],
    )?)
}

/// Reads a block's `meta.json`, refusing schema versions newer than this build knows.
pub async fn read_meta(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<BlockMeta, SchemaError> {
    let bytes = store.get(path).await?.bytes().await?;
    let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|source| SchemaError::Meta {
        path: path.to_string(),
        source,
    })?;
    if meta.schema_version > BLOCK_SCHEMA_VERSION || meta.schema_version == 0 {
        return Err(SchemaError::UnsupportedVersion {
            block: meta.ulid.to_string(),
            found: meta.schema_version,
            supported: BLOCK_SCHEMA_VERSION,
        });
    }
    Ok(meta)
}

/// A block in the object store, read lazily: its series table is loaded once, on first use,
/// and kept; samples are read per query, only from the row groups that can hold the
/// selected series and time range.
#[derive(Debug)]
pub struct BlockReader {
    store: Arc<dyn ObjectStore>,
    meta: BlockMeta,
    tenant: TenantId,
    series: OnceCell<Arc<Vec<Labels>>>,
    samples_footer: OnceCell<Arc<ParquetMetaData>>,
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

    /// Every series of the block, indexed by series ref.
    pub async fn all_series(&self) -> Result<Arc<Vec<Labels>>, SchemaError> {
        self.series
            .get_or_try_init(|| async {
                let stream = ParquetRecordBatchStreamBuilder::new(self.reader(SERIES_FILE)?)
                    .await?
                    .build()?;
                let batches: Vec<RecordBatch> = stream.try_collect().await?;
                let mut out = Vec::with_capacity(self.meta.num_series as usize);
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
                    let offs = map.value_offsets();
                    for row in 0..b.num_rows() {
                        if refs.value(row) as usize != out.len() {
                            return Err(self.corrupt("series refs are not consecutive"));
                        }
                        let (s, e) = (offs[row] as usize, offs[row + 1] as usize);
                        out.push(Labels::from_sorted(
                            (s..e)
                                .map(|j| Label::new(keys.value(j), vals.value(j)))
                                .collect(),
                        ));
                    }
                }
                Ok(Arc::new(out))
            })
            .await
            .cloned()
    }

    fn matching_refs(series: &[Labels], matchers: &[Matcher]) -> Vec<u32> {
        series
            .iter()
            .enumerate()
            .filter(|(_, l)| matches_all(matchers, l))
            .map(|(i, _)| i as u32)
            .collect()
    }
}

fn stat_range_u32(s: Option<&Statistics>) -> Option<(u32, u32)> {
    match s {
        Some(Statistics::Int32(v)) => Some((*v.min_opt()? as u32, *v.max_opt()? as u32)),
        _ => None,
    }
}

fn stat_range_i64(s: Option<&Statistics>) -> Option<(i64, i64)> {
    match s {
        Some(Statistics::Int64(v)) => Some((*v.min_opt()?, *v.max_opt()?)),
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
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let builder = ParquetRecordBatchStreamBuilder::new(self.samples_reader().await?).await?;
        // Row groups are sorted by series ref, so their min/max statistics prune by series
        // and by time.
        let groups: Vec<usize> = builder
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .filter(|(_, rg)| {
                let by_ref = match stat_range_u32(rg.column(0).statistics()) {
                    Some((lo, hi)) => {
                        let i = refs.partition_point(|r| *r < lo);
                        i < refs.len() && refs[i] <= hi
                    }
                    None => true,
                };
                let by_time = match stat_range_i64(rg.column(1).statistics()) {
                    Some((lo, hi)) => range.overlaps(lo, hi),
                    None => true,
                };
                by_ref && by_time
            })
            .map(|(i, _)| i)
            .collect();
        let mut stream = builder.with_row_groups(groups).build()?;
        let mut wanted = vec![false; all.len()];
        for r in &refs {
            wanted[*r as usize] = true;
        }
        // Accumulate per series; a series may span batches and row groups.
        let mut out: Vec<SeriesData> = Vec::new();
        let mut cur: Option<(u32, Int64Builder, Float64Builder)> = None;
        let flush = |cur: &mut Option<(u32, Int64Builder, Float64Builder)>,
                     out: &mut Vec<SeriesData>| {
            if let Some((r, mut t, mut v)) = cur.take()
                && !t.values_slice().is_empty()
            {
                out.push(SeriesData::new(
                    all[r as usize].clone(),
                    t.finish(),
                    v.finish(),
                ));
            }
        };
        while let Some(batch) = stream.try_next().await? {
            let (Some(r), Some(t), Some(v)) = (
                batch.column(0).as_any().downcast_ref::<UInt32Array>(),
                batch.column(1).as_any().downcast_ref::<Int64Array>(),
                batch.column(2).as_any().downcast_ref::<Float64Array>(),
            ) else {
                return Err(self.corrupt("samples.parquet has unexpected column types"));
            };
            let mut i = 0;
            while i < batch.num_rows() {
                let sref = r.value(i);
                let mut j = i;
                while j < batch.num_rows() && r.value(j) == sref {
                    j += 1;
                }
                if (sref as usize) >= wanted.len() {
                    return Err(self.corrupt(format!("sample references unknown series {sref}")));
                }
                if wanted[sref as usize] {
                    if cur.as_ref().is_none_or(|c| c.0 != sref) {
                        flush(&mut cur, &mut out);
                        cur = Some((sref, Int64Builder::new(), Float64Builder::new()));
                    }
                    let c = cur.as_mut().expect("set above");
                    let ts = &t.values()[i..j];
                    let lo = ts.partition_point(|x| *x < range.min);
                    let hi = ts.partition_point(|x| *x <= range.max);
                    c.1.append_slice(&ts[lo..hi]);
                    c.2.append_slice(&v.values()[i + lo..i + hi]);
                }
                i = j;
            }
        }
        flush(&mut cur, &mut out);
        Ok(out)
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

#[cfg(test)]
mod tests;

mod io;
use io::StoreReader;
