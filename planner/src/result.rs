//! Query results in Prometheus' four value types.

use hypnos_schemas::Labels;

/// One sample of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Milliseconds.
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector (matrix), points sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
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
