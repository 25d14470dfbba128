//! [`BlockWriter`]: streams series, in label order, into a new block.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Float64Array, Float64Builder, Int8Builder,
    Int64Array, Int64Builder, MapArray, MapBuilder, RecordBatch, StringBuilder, UInt32Builder,
};
use arrow::datatypes::DataType;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use ulid::Ulid;

use super::codec::{choose_scale, encode};
use super::{WRITE_BATCH, labels_map_field, samples_file_schema, series_file_schema, writer_props};
use crate::layout::{
    BLOCK_SCHEMA_VERSION, BlockFile, BlockMeta, META_FILE, SAMPLES_FILE, SERIES_FILE, block_file,
};
use crate::{Labels, SchemaError, TenantId};

/// At most this many bytes of timestamp vectors are remembered to be shared by later series
/// (bounded memory for large compactions); past it, new vectors are stored inline.
const SHARED_TIMESTAMPS_BUDGET: usize = 256 << 20;

/// What the meta of a block says about where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// `"head"` or `"compactor"`.
    pub source: String,
    pub level: u32,
    /// Blocks this one replaces (every ancestor, transitively).
    pub sources: Vec<Ulid>,
    pub resolution_ms: i64,
}

impl BlockInfo {
    /// A block flushed from an ingester head.
    pub fn head() -> Self {
        Self {
            source: "head".into(),
            level: 1,
            sources: Vec::new(),
            resolution_ms: 0,
        }
    }
}

/// Writes a block series by series: `samples.parquet` as series arrive, then
/// `series.parquet`, then `meta.json`. Dropping it unfinished leaves files without a meta:
/// a block that does not exist for readers.
pub struct BlockWriter {
    store: Arc<dyn ObjectStore>,
    tenant: TenantId,
    ulid: Ulid,
    samples: Option<AsyncArrowWriter<BufWriter>>,
    labels: Vec<Labels>,
    ts_refs: Vec<u32>,
    scales: Vec<i8>,
    rb: UInt32Builder,
    tb: Int64Builder,
    vb: Float64Builder,
    ib: Int64Builder,
    hb: BinaryBuilder,
    rows: usize,
    /// Timestamp vectors written inline, by hash: (series ref, the vector).
    shared: HashMap<u64, Vec<(u32, Int64Array)>>,
    shared_bytes: usize,
    min_time: i64,
    max_time: i64,
    num_samples: u64,
    num_histogram_samples: u64,
}

impl std::fmt::Debug for BlockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("tenant", &self.tenant)
            .field("ulid", &self.ulid)
            .field("series", &self.labels.len())
            .finish_non_exhaustive()
    }
}

impl BlockWriter {
    /// A writer of a new block (fresh ULID) of `tenant`.
    pub fn new(store: Arc<dyn ObjectStore>, tenant: TenantId) -> Self {
        Self {
            store,
            tenant,
            ulid: Ulid::new(),
            samples: None,
            labels: Vec::new(),
            ts_refs: Vec::new(),
            scales: Vec::new(),
            rb: UInt32Builder::with_capacity(WRITE_BATCH),
            tb: Int64Builder::with_capacity(WRITE_BATCH),
            vb: Float64Builder::with_capacity(WRITE_BATCH),
            ib: Int64Builder::with_capacity(WRITE_BATCH),
            hb: BinaryBuilder::with_capacity(WRITE_BATCH, 0),
            rows: 0,
            shared: HashMap::new(),
            shared_bytes: 0,
            min_time: i64::MAX,
            max_time: i64::MIN,
            num_samples: 0,
            num_histogram_samples: 0,
        }
    }

    pub fn ulid(&self) -> Ulid {
        self.ulid
    }

    /// Widens the block's time range to hold `[min, max]` (a downsampled block keeps the
    /// range of its source, whose first or last samples may be staleness markers).
    pub fn cover_time_range(&mut self, min: i64, max: i64) {
        self.min_time = self.min_time.min(min);
        self.max_time = self.max_time.max(max);
    }

    /// Series appended so far.
    pub fn num_series(&self) -> usize {
        self.labels.len()
    }

    /// Appends one series of float samples. Label sets must come in strictly increasing
    /// order; timestamps sorted and unique, as many as values. Empty series are skipped.
    pub async fn append(
        &mut self,
        labels: Labels,
        ts: &Int64Array,
        values: &Float64Array,
    ) -> Result<(), SchemaError> {
        self.append_with_histograms(labels, ts, values, None).await
    }

    /// [`append`](Self::append) for a series that may hold native histograms: a row whose
    /// `histograms` entry is not null is a histogram sample (its bytes are stored as they
    /// are, its `values` entry is ignored), the others are float samples.
    pub async fn append_with_histograms(
        &mut self,
        labels: Labels,
        ts: &Int64Array,
        values: &Float64Array,
        histograms: Option<&BinaryArray>,
    ) -> Result<(), SchemaError> {
        if ts.len() != values.len() || ts.null_count() > 0 || values.null_count() > 0 {
            return Err(SchemaError::Other(format!(
                "series {labels}: timestamps and values must be non-null and of equal length"
            )));
        }
        // Only a column holding a histogram matters: an all-null one is a float series.
        let histograms = histograms.filter(|h| h.null_count() < h.len());
        if histograms.is_some_and(|h| h.len() != ts.len()) {
            return Err(SchemaError::Other(format!(
                "series {labels}: {} histograms for {} timestamps",
                histograms.map_or(0, |h| h.len()),
                ts.len()
            )));
        }
        if ts.is_empty() {
            return Ok(());
        }
        if self.labels.last().is_some_and(|l| *l >= labels) {
            return Err(SchemaError::Other(format!(
                "series {labels} appended out of label order"
            )));
        }
        let sref = self.labels.len() as u32;
        let tsv = ts.values();
        self.min_time = self.min_time.min(tsv[0]);
        self.max_time = self.max_time.max(tsv[tsv.len() - 1]);
        self.num_samples += tsv.len() as u64;
        self.num_histogram_samples += histograms.map_or(0, |h| (h.len() - h.null_count()) as u64);

        // Timestamps: shared with an earlier series holding exactly the same vector.
        let hash = xxhash_rust::xxh3::xxh3_64(&bytes_of(tsv));
        let ts_ref = match self
            .shared
            .get(&hash)
            .and_then(|c| c.iter().find(|(_, v)| v.values() == tsv))
        {
            Some((r, _)) => *r,
            None => {
                let bytes = tsv.len() * 8;
                if self.shared_bytes + bytes <= SHARED_TIMESTAMPS_BUDGET {
                    self.shared_bytes += bytes;
                    self.shared
                        .entry(hash)
                        .or_default()
                        .push((sref, ts.clone()));
                }
                sref
            }
        };
        let inline_ts = ts_ref == sref;

        // Values: scaled integers where they round-trip bit for bit, raw doubles otherwise;
        // the scale is chosen from the float samples alone.
        let vals = values.values();
        let scale = match histograms {
            None => choose_scale(vals),
            Some(h) => {
                let floats: Vec<f64> = (0..vals.len())
                    .filter(|i| h.is_null(*i))
                    .map(|i| vals[i])
                    .collect();
                choose_scale(&floats)
            }
        };
        self.labels.push(labels);
        self.ts_refs.push(ts_ref);
        self.scales.push(scale.unwrap_or(0));

        for i in 0..tsv.len() {
            self.rb.append_value(sref);
            if inline_ts {
                self.tb.append_value(tsv[i]);
            } else {
                self.tb.append_null();
            }
            match histograms.filter(|h| h.is_valid(i)) {
                Some(h) => {
                    self.hb.append_value(h.value(i));
                    self.ib.append_null();
                    self.vb.append_null();
                }
                None => {
                    self.hb.append_null();
                    match scale.and_then(|s| encode(vals[i], s)) {
                        Some(m) => {
                            self.ib.append_value(m);
                            self.vb.append_null();
                        }
                        None => {
                            self.ib.append_null();
                            self.vb.append_value(vals[i]);
                        }
                    }
                }
            }
            self.rows += 1;
            if self.rows == WRITE_BATCH {
                self.write_batch().await?;
            }
        }
        Ok(())
    }

    async fn write_batch(&mut self) -> Result<(), SchemaError> {
        if self.rows == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            samples_file_schema(),
            vec![
                Arc::new(self.rb.finish()),
                Arc::new(self.tb.finish()),
                Arc::new(self.vb.finish()),
                Arc::new(self.ib.finish()),
                Arc::new(self.hb.finish()),
            ],
        )?;
        self.rows = 0;
        if self.samples.is_none() {
            self.samples = Some(AsyncArrowWriter::try_new(
                BufWriter::new(
                    Arc::clone(&self.store),
                    block_file(&self.tenant, self.ulid, SAMPLES_FILE),
                ),
                samples_file_schema(),
                Some(writer_props(SAMPLES_FILE)),
            )?);
        }
        self.samples
            .as_mut()
            .expect("created above")
            .write(&batch)
            .await?;
        Ok(())
    }

    /// Completes the block: the rest of `samples.parquet`, `series.parquet`, then
    /// `meta.json`, and returns the meta.
    pub async fn finish(mut self, info: BlockInfo) -> Result<BlockMeta, SchemaError> {
        self.write_batch().await?;
        if self.samples.is_none() {
            // No series at all: an empty samples file keeps the block well-formed.
            self.samples = Some(AsyncArrowWriter::try_new(
                BufWriter::new(
                    Arc::clone(&self.store),
                    block_file(&self.tenant, self.ulid, SAMPLES_FILE),
                ),
                samples_file_schema(),
                Some(writer_props(SAMPLES_FILE)),
            )?);
            (self.min_time, self.max_time) = (0, 0);
        }
        self.samples.take().expect("created above").close().await?;
        self.write_series().await?;

        let mut files = Vec::new();
        for name in [SERIES_FILE, SAMPLES_FILE] {
            let head = self
                .store
                .head(&block_file(&self.tenant, self.ulid, name))
                .await?;
            files.push(BlockFile {
                name: name.to_string(),
                size_bytes: head.size,
            });
        }
        let mut sources = info.sources;
        sources.sort();
        sources.dedup();
        let meta = BlockMeta {
            ulid: self.ulid,
            tenant: self.tenant.to_string(),
            min_time: self.min_time,
            max_time: self.max_time,
            resolution_ms: info.resolution_ms,
            level: info.level,
            num_series: self.labels.len() as u64,
            num_samples: self.num_samples,
            num_histogram_samples: self.num_histogram_samples,
            schema_version: BLOCK_SCHEMA_VERSION,
            source: info.source,
            sources,
            files,
        };
        let json = serde_json::to_vec_pretty(&meta).expect("meta serializes");
        self.store
            .put(&block_file(&self.tenant, self.ulid, META_FILE), json.into())
            .await?;
        Ok(meta)
    }

    async fn write_series(&mut self) -> Result<(), SchemaError> {
        let n = self.labels.len();
        let mut refs = UInt32Builder::with_capacity(n);
        let mut names = StringBuilder::new();
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut ts_refs = UInt32Builder::with_capacity(n);
        let mut scales = Int8Builder::with_capacity(n);
        for (i, l) in self.labels.iter().enumerate() {
            refs.append_value(i as u32);
            names.append_value(l.metric_name());
            for l in l.iter() {
                labels.keys().append_value(&l.name);
                labels.values().append_value(&l.value);
            }
            labels.append(true)?;
            ts_refs.append_value(self.ts_refs[i]);
            scales.append_value(self.scales[i]);
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
        let batch = RecordBatch::try_new(
            series_file_schema(),
            vec![
                Arc::new(refs.finish()),
                Arc::new(names.finish()),
                labels_arr,
                Arc::new(ts_refs.finish()),
                Arc::new(scales.finish()),
            ],
        )?;
        let mut w = AsyncArrowWriter::try_new(
            BufWriter::new(
                Arc::clone(&self.store),
                block_file(&self.tenant, self.ulid, SERIES_FILE),
            ),
            series_file_schema(),
            Some(writer_props(SERIES_FILE)),
        )?;
        w.write(&batch).await?;
        w.close().await?;
        Ok(())
    }
}

fn bytes_of(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
