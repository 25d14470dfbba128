//! Query results in Prometheus' four value types.

use hypnos_schemas::Labels;
use hypnos_schemas::histogram::FloatHistogram;

/// One sample of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Milliseconds.
    pub t: i64,
    /// The float value (0 for a histogram sample).
    pub v: f64,
    /// The native histogram, for a histogram sample.
    pub h: Option<FloatHistogram>,
}

/// One series of a range vector (matrix), points sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    /// Float points.
    pub points: Vec<(i64, f64)>,
    /// Native histogram points, sorted by time.
    pub histograms: Vec<(i64, FloatHistogram)>,
}

/// The value of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

impl QueryResult {
    /// Prometheus' `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryResult::Scalar { .. } => "scalar",
            QueryResult::String { .. } => "string",
            QueryResult::Vector(_) => "vector",
            QueryResult::Matrix(_) => "matrix",
        }
    }
}

/// The warnings and infos of a query (Prometheus' annotations), each the whole text as
/// Prometheus writes it (`PromQL warning: ... (1:25)`), sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryAnnotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl QueryAnnotations {
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}

/// A query's value with its annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnotatedResult {
    pub result: QueryResult,
    pub annotations: QueryAnnotations,
}
