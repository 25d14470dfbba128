//! Histogram arithmetic, as Prometheus' `FloatHistogram` does it.

use super::FloatHistogram;

/// Why two histograms cannot be combined.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// One has an exponential schema, the other custom buckets.
    #[error("vector contains a mix of histograms with exponential and custom buckets schemas")]
    MixedExponentialCustom,
    /// A histogram that cannot be read or is internally inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// What happened while adding or subtracting, for annotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CombineOutcome {
    /// One operand said "counter reset" and the other "no counter reset".
    pub counter_reset_collision: bool,
    /// Custom bucket boundaries differed and were reconciled to their common boundaries.
    pub nhcb_bounds_reconciled: bool,
}

/// One bucket, with its bounds and whether each bound belongs to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub count: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    /// The bucket's index in its schema (0 for the zero bucket).
    pub index: i32,
}

impl FloatHistogram {
    /// `self += other`, at the lower of the two schemas and the wider zero bucket.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<CombineOutcome, HistogramError> {
        let _ = other;
        todo!("histogram arithmetic")
    }

    /// `self -= other`, as [`add`](Self::add).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<CombineOutcome, HistogramError> {
        let _ = other;
        todo!("histogram arithmetic")
    }

    /// Multiplies count, sum and every bucket by `factor`.
    pub fn mul(&mut self, factor: f64) {
        let _ = factor;
        todo!("histogram arithmetic")
    }

    /// Divides count, sum and every bucket by `divisor` (by zero gives +Inf/NaN as floats do).
    pub fn div(&mut self, divisor: f64) {
        let _ = divisor;
        todo!("histogram arithmetic")
    }

    /// Removes empty buckets and merges adjacent spans (keeping at most `max_empty_buckets`
    /// consecutive empty buckets inside a span).
    pub fn compact(&mut self, max_empty_buckets: usize) {
        let _ = max_empty_buckets;
        todo!("histogram arithmetic")
    }

    /// True when going from `previous` to `self` is a counter reset: a bucket, the zero
    /// bucket or the count went down, the schema got finer, the zero bucket narrowed, or the
    /// custom bounds changed. A gauge histogram never resets.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        let _ = previous;
        todo!("histogram arithmetic")
    }

    /// Merges buckets down to `target_schema` (which must not be finer than the current).
    pub fn reduce_resolution(&mut self, target_schema: i32) {
        let _ = target_schema;
        todo!("histogram arithmetic")
    }

    /// Exact equality as PromQL's `==` sees it (schema, zero threshold, counts, sum, spans
    /// compared after compaction, custom bounds).
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let _ = other;
        todo!("histogram arithmetic")
    }

    /// Every bucket with a non-zero count: negative buckets from the lowest bound up, then
    /// the zero bucket, then positive buckets up (the order of Prometheus' JSON output).
    pub fn buckets(&self) -> Vec<Bucket> {
        todo!("histogram arithmetic")
    }
}
