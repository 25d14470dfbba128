//! The relation every PromQL operator consumes and produces: one row per sample, with the
//! series' labels in a dictionary column so a label set is stored once per batch.
//!
//! Invariant: within a batch, the rows of one series are contiguous and sorted by time, and
//! a series never spans two batches.
//!
//! A row is either a float sample (`histogram` null) or a native histogram sample
//! (`histogram` holds [`FloatHistogram::encode`]'s bytes; `value` is 0 and means nothing).
//! Operators that do not handle histograms never see histogram rows: `PromExec` removes them
//! from their input ([`floats_only`]).

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, DictionaryArray, Float64Array, Int32Array,
    Int64Array, RecordBatch,
};
use arrow::datatypes::Int32Type;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::FloatHistogram;

pub(crate) use hypnos_planner::vector::{HISTOGRAM, vector_schema};

/// Builds one vector batch, series by series.
#[derive(Default)]
pub struct VectorBuilder {
    dict: Vec<Vec<u8>>,
    keys: Vec<i32>,
    ts: Vec<i64>,
    values: Vec<f64>,
    /// The histogram rows: (row, encoded histogram).
    histograms: Vec<(usize, Vec<u8>)>,
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

    /// Appends a native histogram sample to the current series.
    pub fn push_histogram(&mut self, t: i64, h: &FloatHistogram) {
        self.push_histogram_bytes(t, h.encode());
    }

    /// Appends a histogram sample already encoded ([`FloatHistogram::encode`]).
    pub fn push_histogram_bytes(&mut self, t: i64, encoded: Vec<u8>) {
        self.histograms.push((self.ts.len(), encoded));
        self.push(t, 0.0);
    }

    /// Appends row `i` of `s` (float or histogram) at time `t`.
    pub fn push_row(&mut self, t: i64, s: &SeriesRows<'_>, i: usize) {
        match s.histogram_bytes(i) {
            Some(h) => self.push_histogram_bytes(t, h.to_vec()),
            None => self.push(t, s.values[i]),
        }
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
        let n = self.ts.len();
        let histograms: Arc<dyn Array> = if self.histograms.is_empty() {
            Arc::new(BinaryArray::new_null(n))
        } else {
            let mut column: Vec<Option<Vec<u8>>> = vec![None; n];
            for (row, h) in self.histograms {
                column[row] = Some(h);
            }
            Arc::new(BinaryArray::from_iter(column))
        };
        RecordBatch::try_new(
            vector_schema(),
            vec![
                Arc::new(labels),
                Arc::new(Int64Array::from(self.ts)),
                Arc::new(Float64Array::from(self.values)),
                histograms,
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
    /// The batch's histogram column when it holds at least one histogram (indexed by batch
    /// row: use [`histogram_bytes`](Self::histogram_bytes)).
    pub histograms: Option<&'a BinaryArray>,
}

impl SeriesRows<'_> {
    /// The encoded histogram at the series' `i`-th row, if that row is a histogram.
    pub fn histogram_bytes(&self, i: usize) -> Option<&[u8]> {
        let h = self.histograms?;
        let row = self.rows.start + i;
        h.is_valid(row).then(|| h.value(row))
    }

    /// The histogram at the series' `i`-th row, if that row is a histogram.
    pub fn histogram(&self, i: usize) -> Result<Option<FloatHistogram>> {
        self.histogram_bytes(i)
            .map(|b| {
                FloatHistogram::decode(b).map_err(|e| DataFusionError::Internal(e.to_string()))
            })
            .transpose()
    }

    /// True when the series' `i`-th row is a histogram.
    pub fn is_histogram(&self, i: usize) -> bool {
        self.histograms
            .is_some_and(|h| h.is_valid(self.rows.start + i))
    }

    /// True when the series has at least one histogram row.
    pub fn has_histograms(&self) -> bool {
        self.histograms
            .is_some_and(|h| self.rows.clone().any(|r| h.is_valid(r)))
    }
}

/// The histogram column of a vector batch, when it holds at least one histogram.
pub fn histogram_column(batch: &RecordBatch) -> Option<&BinaryArray> {
    let h = batch.column_by_name(HISTOGRAM)?.as_binary_opt::<i32>()?;
    (h.null_count() < h.len()).then_some(h)
}

/// The batch without its histogram rows (the input of an operator that only handles floats).
/// A batch without histograms is returned as is.
pub fn floats_only(batch: &RecordBatch) -> Result<RecordBatch> {
    let Some(h) = histogram_column(batch) else {
        return Ok(batch.clone());
    };
    let keep = BooleanArray::from_iter((0..h.len()).map(|i| Some(h.is_null(i))));
    Ok(arrow::compute::filter_record_batch(batch, &keep)?)
}

/// The series of a vector batch, in order.
///
/// Operators take their input apart with this, batch by batch: it checks the deadline and
/// cancellation of the running query ([`crate::guard::checkpoint`]).
pub fn series_rows(batch: &RecordBatch) -> Result<Vec<SeriesRows<'_>>> {
    crate::guard::checkpoint()?;
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
    let histograms = histogram_column(batch);
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
            histograms,
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
