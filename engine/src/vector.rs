//! The relation every PromQL operator consumes and produces: one row per sample, with the
//! series' labels in a dictionary column so a label set is stored once per batch.
//!
//! Invariant: within a batch, the rows of one series are contiguous and sorted by time, and
//! a series never spans two batches.

use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    AsArray, BinaryArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;

pub const LABELS: &str = "labels";
pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";

static VECTOR_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(
            LABELS,
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary)),
            false,
        ),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, false),
    ]))
});

/// `labels` (Dictionary<Int32, Binary>: [`Labels::encode`]), `timestamp` (Int64 ms), `value`
/// (Float64).
pub fn vector_schema() -> SchemaRef {
    Arc::clone(&VECTOR_SCHEMA)
}

/// Builds one vector batch, series by series.
#[derive(Default)]
pub struct VectorBuilder {
    dict: Vec<Vec<u8>>,
    keys: Vec<i32>,
    ts: Vec<i64>,
    values: Vec<f64>,
    /// How many dictionary entries have at least one row.
    series_with_rows: usize,
}

impl VectorBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new series; a series that receives no sample leaves no trace.
    pub fn start_series(&mut self, labels: &Labels) {
        let encoded = labels.encode();
        if self.dict.len() > self.series_with_rows {
            // The previous series got no sample: reuse its dictionary slot.
            *self.dict.last_mut().expect("non-empty") = encoded;
        } else {
            self.dict.push(encoded);
        }
    }

    /// Appends a sample to the current series.
    pub fn push(&mut self, t: i64, v: f64) {
        self.series_with_rows = self.dict.len();
        self.keys.push(self.dict.len() as i32 - 1);
        self.ts.push(t);
        self.values.push(v);
    }

    pub fn rows(&self) -> usize {
        self.ts.len()
    }

    pub fn finish(mut self) -> RecordBatch {
        self.dict.truncate(self.series_with_rows);
        let values = BinaryArray::from_iter_values(self.dict.iter());
        let labels =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(self.keys), Arc::new(values))
                .expect("keys index the dictionary");
        RecordBatch::try_new(
            vector_schema(),
            vec![
                Arc::new(labels),
                Arc::new(Int64Array::from(self.ts)),
                Arc::new(Float64Array::from(self.values)),
            ],
        )
        .expect("columns match the vector schema")
    }
}

/// One series of a vector batch: its labels and its rows.
pub struct SeriesRows<'a> {
    pub labels: Labels,
    pub rows: Range<usize>,
    pub ts: &'a [i64],
    pub values: &'a [f64],
}

/// The series of a vector batch, in order.
pub fn series_rows(batch: &RecordBatch) -> Result<Vec<SeriesRows<'_>>> {
    let dict = batch
        .column(0)
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| DataFusionError::Internal("labels column is not a dictionary".into()))?;
    let values = dict.values().as_binary_opt::<i32>().ok_or_else(|| {
        DataFusionError::Internal("labels dictionary values are not binary".into())
    })?;
    let ts = batch
        .column(1)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values();
    let vs = batch
        .column(2)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values();
    let keys = dict.keys().values();
    let mut out = Vec::new();
    let mut i = 0;
    while i < keys.len() {
        let k = keys[i];
        let mut j = i + 1;
        while j < keys.len() && keys[j] == k {
            j += 1;
        }
        let labels = Labels::decode(values.value(k as usize)).ok_or_else(|| {
            DataFusionError::Internal("labels dictionary holds an invalid label set".into())
        })?;
        out.push(SeriesRows {
            labels,
            rows: i..j,
            ts: &ts[i..j],
            values: &vs[i..j],
        });
        i = j;
    }
    Ok(out)
}

/// Test helper: each series of a vector batch as (labels in Prometheus notation, points).
#[cfg(test)]
pub(crate) fn batch_points(batch: &RecordBatch) -> Vec<(String, Vec<(i64, f64)>)> {
    series_rows(batch)
        .expect("a vector batch")
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.ts.iter().copied().zip(s.values.iter().copied()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_read_back() {
        let a = Labels::from_pairs([("a", "1")]);
        let b = Labels::from_pairs([("b", "2")]);
        let mut vb = VectorBuilder::new();
        vb.start_series(&a);
        vb.push(1, 1.0);
        vb.push(2, 2.0);
        vb.start_series(&Labels::from_pairs([("empty", "x")]));
        vb.start_series(&b);
        vb.push(1, 3.0);
        let batch = vb.finish();
        let s = series_rows(&batch).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels, a);
        assert_eq!(s[0].ts, &[1, 2]);
        assert_eq!(s[1].labels, b);
        assert_eq!(s[1].values, &[3.0]);
    }
}
