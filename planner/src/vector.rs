//! The schema of the relation every PromQL node of a plan produces: one row per sample, the
//! series' labels in a dictionary column. `hypnos-engine` builds and reads its batches.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub const LABELS: &str = "labels";
pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";
pub const HISTOGRAM: &str = "histogram";

static VECTOR_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(
            LABELS,
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary)),
            false,
        ),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, false),
        Field::new(HISTOGRAM, DataType::Binary, true),
    ]))
});

/// `labels` (Dictionary<Int32, Binary>: [`Labels::encode`]), `timestamp` (Int64 ms), `value`
/// (Float64), `histogram` (Binary, null for a float sample).
pub fn vector_schema() -> SchemaRef {
    Arc::clone(&VECTOR_SCHEMA)
}
