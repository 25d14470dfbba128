//! The one data-access interface of the query path: select a tenant's series and samples by
//! matchers and time range, as Arrow arrays. Heads, Parquet blocks and (later) remote stores
//! implement it; the planner never knows where data lives.

use std::fmt::Debug;
use std::sync::{Arc, LazyLock};

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use crate::{Labels, Matcher, SchemaError, TenantId};

/// Column names shared by every sample batch.
pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";

static SAMPLE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, false),
    ]))
});

/// Schema of one series' samples: `timestamp` (Int64, milliseconds) and `value` (Float64).
pub fn sample_schema() -> SchemaRef {
    Arc::clone(&SAMPLE_SCHEMA)
}

/// One selected series: its labels and its samples, sorted by timestamp, timestamps unique.
#[derive(Clone, Debug)]
pub struct SeriesData {
    pub labels: Labels,
    /// A batch of [`sample_schema`].
    pub samples: RecordBatch,
}

impl SeriesData {
    /// Builds a series from its timestamp and value arrays.
    pub fn new(labels: Labels, ts: Int64Array, values: Float64Array) -> Self {
        let samples = RecordBatch::try_new(sample_schema(), vec![Arc::new(ts), Arc::new(values)])
            .expect("two equal-length non-null columns match the sample schema");
        Self { labels, samples }
    }

    pub fn timestamps(&self) -> &Int64Array {
        self.samples
            .column(0)
            .as_any()
            .downcast_ref()
            .expect("sample schema column 0 is Int64")
    }

    pub fn values(&self) -> &Float64Array {
        self.samples
            .column(1)
            .as_any()
            .downcast_ref()
            .expect("sample schema column 1 is Float64")
    }

    pub fn len(&self) -> usize {
        self.samples.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.num_rows() == 0
    }
}

/// A time range in milliseconds, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    pub fn new(min: i64, max: i64) -> Self {
        Self { min, max }
    }

    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.min <= max && min <= self.max
    }
}

/// Where a tenant's series can be read from.
#[async_trait]
pub trait SeriesSource: Send + Sync + Debug {
    /// The series of `tenant` matching every matcher that have at least one sample in
    /// `range`, with only those samples. Series may come in any order; each appears once.
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError>;

    /// The label sets of the series of `tenant` matching `matchers` with samples in `range`
    /// (the metadata path: `/api/v1/series`, labels, label values).
    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        Ok(self
            .select(tenant, matchers, range)
            .await?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }
}

/// Told about every block written (by a head flush, later by the compactor), so that readers
/// can serve it before the data it replaces is dropped.
pub trait BlockSink: Send + Sync {
    fn block_written(&self, meta: &crate::layout::BlockMeta);
}
