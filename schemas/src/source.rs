//! The one data-access interface of the query path: select a tenant's series and samples by
//! matchers and time range, as Arrow arrays. Heads, Parquet blocks and (later) remote stores
//! implement it; the planner never knows where data lives.

use std::fmt::Debug;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, BinaryArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use crate::{Labels, Matcher, SchemaError, TenantId};

/// Column names shared by every sample batch.
pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";
pub const HISTOGRAM: &str = "histogram";

static SAMPLE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, false),
    ]))
});

static SAMPLE_SCHEMA_WITH_HISTOGRAMS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, false),
        Field::new(HISTOGRAM, DataType::Binary, true),
    ]))
});

/// Schema of one series' samples: `timestamp` (Int64, milliseconds) and `value` (Float64).
pub fn sample_schema() -> SchemaRef {
    Arc::clone(&SAMPLE_SCHEMA)
}

/// [`sample_schema`] plus `histogram` (Binary, nullable): the samples of a series that holds
/// native histograms. A row is a histogram when `histogram` is not null
/// ([`crate::histogram::FloatHistogram::encode`]); its `value` is 0 and means nothing.
pub fn sample_schema_with_histograms() -> SchemaRef {
    Arc::clone(&SAMPLE_SCHEMA_WITH_HISTOGRAMS)
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

    /// Builds a series whose samples may be histograms (`histograms` null for float rows).
    /// Without any histogram it is the same as [`new`](Self::new).
    pub fn with_histograms(
        labels: Labels,
        ts: Int64Array,
        values: Float64Array,
        histograms: BinaryArray,
    ) -> Self {
        if histograms.null_count() == histograms.len() {
            return Self::new(labels, ts, values);
        }
        let samples = RecordBatch::try_new(
            sample_schema_with_histograms(),
            vec![Arc::new(ts), Arc::new(values), Arc::new(histograms)],
        )
        .expect("three equal-length columns match the sample schema with histograms");
        Self { labels, samples }
    }

    /// The histogram column, when the series has one (see [`sample_schema_with_histograms`]).
    pub fn histograms(&self) -> Option<&BinaryArray> {
        self.samples
            .column_by_name(HISTOGRAM)?
            .as_any()
            .downcast_ref()
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

/// Resolutions of downsampled blocks, in milliseconds (raw data has resolution 0).
pub const RESOLUTION_RAW: i64 = 0;
pub const RESOLUTION_5M: i64 = 300_000;
pub const RESOLUTION_1H: i64 = 3_600_000;

/// The label that tells the aggregate series of a downsampled block apart: a downsampled
/// block stores, for every raw series, one series per aggregate with this label added
/// (`count`, `sum`, `min`, `max`, `counter`). Readers remove it before answering.
pub const AGGR_LABEL: &str = "__hypnos_aggr__";

/// Which value a read wants from each point: raw data has one value per sample, while a
/// downsampled window has several aggregates. The planner picks the aggregate from the
/// function that consumes the samples (`max_over_time` wants `Max`, `rate` wants `Counter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadAggregate {
    /// The sample's value; for a downsampled window, its average (`sum / count`).
    #[default]
    Value,
    /// How many raw samples the point stands for: 1 for a raw sample.
    Count,
    /// The sum of the window's samples: the value for a raw sample.
    Sum,
    /// The smallest sample of the window: the value for a raw sample.
    Min,
    /// The largest sample of the window: the value for a raw sample.
    Max,
    /// The counter at the window's last sample, adjusted for resets inside the block: the
    /// value for a raw sample.
    Counter,
}

impl ReadAggregate {
    /// The value of [`AGGR_LABEL`] that stores this aggregate (`Value` is computed from
    /// `sum` and `count`, so it has none).
    pub fn label_value(self) -> Option<&'static str> {
        match self {
            ReadAggregate::Value => None,
            ReadAggregate::Count => Some("count"),
            ReadAggregate::Sum => Some("sum"),
            ReadAggregate::Min => Some("min"),
            ReadAggregate::Max => Some("max"),
            ReadAggregate::Counter => Some("counter"),
        }
    }
}

/// How a select may read: the coarsest resolution it may use and which aggregate it wants.
/// The default reads raw data only, as [`SeriesSource::select`] does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadHints {
    /// The coarsest resolution allowed (0: raw only). A source answers from the coarsest
    /// resolution not coarser than this, and from finer data where that one is missing.
    pub max_resolution_ms: i64,
    pub aggregate: ReadAggregate,
}

/// Turns raw samples into what `aggregate` asks of them: every sample counts 1 for
/// [`ReadAggregate::Count`] (staleness markers stay markers); other aggregates of one raw
/// sample are its value, so the series is returned as is.
pub fn raw_as_aggregate(series: Vec<SeriesData>, aggregate: ReadAggregate) -> Vec<SeriesData> {
    if aggregate != ReadAggregate::Count {
        return series;
    }
    series
        .into_iter()
        .map(|s| {
            let ones: Float64Array = s
                .values()
                .iter()
                .map(|v| match v {
                    Some(v) if crate::is_stale_nan(v) => Some(v),
                    _ => Some(1.0),
                })
                .collect();
            SeriesData::new(s.labels.clone(), s.timestamps().clone(), ones)
        })
        .collect()
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

    /// [`select`](Self::select) with read hints: sources holding downsampled data override
    /// it; raw-only sources (heads) answer with [`raw_as_aggregate`] of their raw samples.
    async fn select_hinted(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        hints: ReadHints,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        Ok(raw_as_aggregate(
            self.select(tenant, matchers, range).await?,
            hints.aggregate,
        ))
    }

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
