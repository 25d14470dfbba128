//! The Parquet block format, version 3 (documented in docs/format.md): writing a block from
//! series sorted by labels ([`BlockWriter`], streaming, or [`write_block`]) and reading
//! series and samples back out of one ([`BlockReader`], which also reads versions 1 and 2).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::layout::{BLOCK_SCHEMA_VERSION, BlockMeta, SAMPLES_FILE};
use crate::source::{HISTOGRAM, TIMESTAMP, VALUE};
use crate::{SchemaError, SeriesData, TenantId};

pub const SERIES_REF: &str = "series_ref";
pub const METRIC_NAME_COL: &str = "metric_name";
pub const LABELS_COL: &str = "labels";
/// `series.parquet`: the series whose `timestamp` column holds this series' timestamps.
pub const TIMESTAMPS_REF_COL: &str = "timestamps_ref";
/// `series.parquet`: the decimal scale of this series' `value_int` mantissas.
pub const VALUE_SCALE_COL: &str = "value_scale";
/// `samples.parquet`: the value as a scaled integer (`value_int / 10^value_scale`).
pub const VALUE_INT_COL: &str = "value_int";

/// Rows per row group of `samples.parquet`.
pub const SAMPLES_ROW_GROUP: usize = 1 << 20;
/// Rows per data page of `samples.parquet` (larger pages compress better; pruning happens
/// per row group).
pub const SAMPLES_PAGE_ROWS: usize = 128 * 1024;
/// ZSTD level of every column.
pub const ZSTD_LEVEL: i32 = 9;
/// Rows per batch handed to the writer.
const WRITE_BATCH: usize = 64 * 1024;
/// Estimated encoded bytes after which a row group of `samples.parquet` is cut before
/// `SAMPLES_ROW_GROUP` rows: bounds the writer's memory when rows carry native histograms
/// (float rows never reach it).
pub const SAMPLES_ROW_GROUP_BYTES: usize = 128 << 20;

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
        Field::new(TIMESTAMPS_REF_COL, DataType::UInt32, false),
        Field::new(VALUE_SCALE_COL, DataType::Int8, false),
    ]))
});

static SAMPLES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SERIES_REF, DataType::UInt32, false),
        Field::new(TIMESTAMP, DataType::Int64, true),
        Field::new(VALUE, DataType::Float64, true),
        Field::new(VALUE_INT_COL, DataType::Int64, true),
        Field::new(HISTOGRAM, DataType::Binary, true),
    ]))
});

/// Schema of `series.parquet`: `series_ref` (UInt32, the row number, in label order),
/// `metric_name` (Utf8), `labels` (Map<Utf8, Utf8>, every label including the name),
/// `timestamps_ref` (UInt32) and `value_scale` (Int8).
pub fn series_file_schema() -> SchemaRef {
    Arc::clone(&SERIES_SCHEMA)
}

/// Schema of `samples.parquet`: `series_ref` (UInt32), `timestamp` (Int64 ms, null when
/// shared with another series), `value` (Float64, null when `value_int` or `histogram` holds
/// the sample), `value_int` (Int64) and `histogram` (Binary: a native histogram,
/// [`crate::histogram::FloatHistogram::encode`]; null on float rows), sorted by
/// (series_ref, sample order).
pub fn samples_file_schema() -> SchemaRef {
    Arc::clone(&SAMPLES_SCHEMA)
}

fn writer_props(kind: &str) -> WriterProperties {
    let b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            "hypnos.block.schema_version".to_string(),
            format!("{BLOCK_SCHEMA_VERSION}:{kind}"),
        )]));
    if kind != SAMPLES_FILE {
        return b.build();
    }
    let delta = |b: parquet::file::properties::WriterPropertiesBuilder, col: &str| {
        b.set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED)
    };
    let b = b
        .set_max_row_group_row_count(Some(SAMPLES_ROW_GROUP))
        .set_max_row_group_bytes(Some(SAMPLES_ROW_GROUP_BYTES))
        .set_data_page_row_count_limit(SAMPLES_PAGE_ROWS)
        .set_data_page_size_limit(4 << 20)
        .set_write_batch_size(WRITE_BATCH);
    let b = delta(b, SERIES_REF);
    let b = delta(b, TIMESTAMP);
    let b = delta(b, VALUE_INT_COL);
    // Histograms: plain length-prefixed messages, left to ZSTD (consecutive histograms of a
    // series share most of their bytes); a column of nulls costs only its definition levels.
    b.set_column_dictionary_enabled(ColumnPath::from(VALUE), false)
        .set_column_encoding(ColumnPath::from(VALUE), Encoding::BYTE_STREAM_SPLIT)
        .set_column_dictionary_enabled(ColumnPath::from(HISTOGRAM), false)
        .set_column_encoding(ColumnPath::from(HISTOGRAM), Encoding::PLAIN)
        .build()
}

/// Writes `series` (any order; each label set once, samples sorted and in-range; float and
/// histogram samples, see [`SeriesData::histograms`]) as a block of `tenant` flushed from a
/// head and returns its meta. `meta.json` is written last, so a crash
/// never leaves a block that readers see half-written.
pub async fn write_block(
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
    mut series: Vec<SeriesData>,
) -> Result<BlockMeta, SchemaError> {
    series.retain(|s| !s.is_empty());
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut w = BlockWriter::new(Arc::clone(store), tenant.clone());
    for s in &series {
        w.append_with_histograms(s.labels.clone(), s.timestamps(), s.values(), s.histograms())
            .await?;
    }
    w.finish(BlockInfo::head()).await
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

mod cache;
mod codec;
mod io;
mod reader;
mod writer;

pub use cache::SampleCache;
pub use reader::{BlockReader, RefSamples};
pub use writer::{BlockInfo, BlockWriter};

#[cfg(test)]
mod tests;
