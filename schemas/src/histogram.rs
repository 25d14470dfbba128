//! Native histograms: [`FloatHistogram`], the one in-memory form every layer uses (ingest
//! converts integer histograms to it; the engine computes with it), and its stored form, the
//! remote-write `prometheus.Histogram` message with float counts ([`FloatHistogram::encode`]).
//!
//! Buckets are sparse: `positive_spans` say which bucket indexes are present and
//! `positive_buckets` hold their absolute counts, one per index the spans cover (the same for
//! the negative side). With an exponential schema (-4..=8) bucket `i` covers
//! `(base^(i-1), base^i]` with `base = 2^(2^-schema)`; with custom buckets (schema -53) bucket
//! `i` covers `(custom_values[i-1], custom_values[i]]`, the first starting at -Inf and the one
//! after the last boundary ending at +Inf.
//!
//! The arithmetic (adding, subtracting, scaling, resolution changes, quantiles, ...) lives in
//! submodules.

use prost::Message;

use crate::remote::{self, histogram as pb};

mod bounds;
mod ops;
mod stats;
#[cfg(test)]
mod test_literal;
mod trim;

pub use ops::{Bucket, CombineOutcome, HistogramError, kahan_inc};
pub use stats::{
    NanObservationsNote, go_format_g, histogram_fraction, histogram_fraction_noted,
    histogram_quantile, histogram_quantile_noted,
};

/// A bucket span: `length` consecutive buckets, `offset` buckets after the previous span.
pub type Span = remote::BucketSpan;

/// The schema of native histograms with custom bucket boundaries (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The range of exponential schemas.
pub const MIN_EXPONENTIAL_SCHEMA: i32 = -4;
pub const MAX_EXPONENTIAL_SCHEMA: i32 = 8;

/// What the producer said about counter resets at this sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResetHint {
    /// Nothing known: a reset is detected by comparing with the previous sample.
    #[default]
    Unknown,
    /// A counter reset happened here.
    Reset,
    /// No counter reset happened here.
    NotReset,
    /// A gauge histogram: counter resets do not apply.
    Gauge,
}

impl ResetHint {
    fn from_pb(v: i32) -> Self {
        match v {
            pb::RESET_YES => ResetHint::Reset,
            pb::RESET_NO => ResetHint::NotReset,
            pb::RESET_GAUGE => ResetHint::Gauge,
            _ => ResetHint::Unknown,
        }
    }

    fn to_pb(self) -> i32 {
        match self {
            ResetHint::Unknown => pb::RESET_UNKNOWN,
            ResetHint::Reset => pb::RESET_YES,
            ResetHint::NotReset => pb::RESET_NO,
            ResetHint::Gauge => pb::RESET_GAUGE,
        }
    }
}

/// A native histogram with float counts (Prometheus' `histogram.FloatHistogram`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatHistogram {
    pub counter_reset_hint: ResetHint,
    pub schema: i32,
    /// Observations with `|v| <= zero_threshold` count in the zero bucket.
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    /// Absolute counts, one per bucket the positive spans cover.
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53 only), sorted, without +Inf.
    pub custom_values: Vec<f64>,
}

impl FloatHistogram {
    /// True for a histogram with custom bucket boundaries (NHCB).
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// A gauge histogram (its counter-reset hint says so).
    pub fn is_gauge(&self) -> bool {
        self.counter_reset_hint == ResetHint::Gauge
    }

    /// A histogram staleness marker: its sum is Prometheus' staleness NaN.
    pub fn is_stale_marker(&self) -> bool {
        crate::is_stale_nan(self.sum)
    }

    /// Converts a remote-write histogram (integer deltas or float counts).
    pub fn from_remote(h: &remote::Histogram) -> Result<Self, HistogramError> {
        let count = match h.count {
            Some(pb::Count::CountInt(c)) => c as f64,
            Some(pb::Count::CountFloat(c)) => c,
            None => 0.0,
        };
        let zero_count = match h.zero_count {
            Some(pb::ZeroCount::ZeroCountInt(c)) => c as f64,
            Some(pb::ZeroCount::ZeroCountFloat(c)) => c,
            None => 0.0,
        };
        let is_int = matches!(h.count, Some(pb::Count::CountInt(_)))
            || (h.count.is_none() && h.positive_counts.is_empty() && h.negative_counts.is_empty());
        let buckets = |deltas: &[i64], counts: &[f64], side: &str| {
            if is_int {
                if !counts.is_empty() {
                    return Err(HistogramError::Invalid(format!(
                        "integer histogram with float {side} bucket counts"
                    )));
                }
                let mut acc: i64 = 0;
                Ok(deltas
                    .iter()
                    .map(|d| {
                        acc = acc.wrapping_add(*d);
                        acc as f64
                    })
                    .collect())
            } else {
                if !deltas.is_empty() {
                    return Err(HistogramError::Invalid(format!(
                        "float histogram with integer {side} bucket deltas"
                    )));
                }
                Ok(counts.to_vec())
            }
        };
        Ok(FloatHistogram {
            counter_reset_hint: ResetHint::from_pb(h.reset_hint),
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count,
            count,
            sum: h.sum,
            positive_spans: h.positive_spans.clone(),
            positive_buckets: buckets(&h.positive_deltas, &h.positive_counts, "positive")?,
            negative_spans: h.negative_spans.clone(),
            negative_buckets: buckets(&h.negative_deltas, &h.negative_counts, "negative")?,
            custom_values: h.custom_values.clone(),
        })
    }

    /// The remote-write message of this histogram, with float counts.
    pub fn to_remote(&self, timestamp: i64) -> remote::Histogram {
        remote::Histogram {
            count: Some(pb::Count::CountFloat(self.count)),
            sum: self.sum,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: Some(pb::ZeroCount::ZeroCountFloat(self.zero_count)),
            negative_spans: self.negative_spans.clone(),
            negative_deltas: Vec::new(),
            negative_counts: self.negative_buckets.clone(),
            positive_spans: self.positive_spans.clone(),
            positive_deltas: Vec::new(),
            positive_counts: self.positive_buckets.clone(),
            reset_hint: self.counter_reset_hint.to_pb(),
            timestamp,
            custom_values: self.custom_values.clone(),
        }
    }

    /// The stored form: the remote-write message with float counts and no timestamp.
    /// Bit-exact: every float keeps its bits.
    pub fn encode(&self) -> Vec<u8> {
        self.to_remote(0).encode_to_vec()
    }

    /// Reads [`encode`](Self::encode)'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        let h = remote::Histogram::decode(bytes)
            .map_err(|e| HistogramError::Invalid(format!("undecodable histogram: {e}")))?;
        Self::from_remote(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: ResetHint::Gauge,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 12.5,
            sum: -3.25,
            positive_spans: vec![Span {
                offset: -1,
                length: 2,
            }],
            positive_buckets: vec![1.0, 4.5],
            negative_spans: vec![Span {
                offset: 3,
                length: 1,
            }],
            negative_buckets: vec![5.0],
            custom_values: vec![],
        }
    }

    #[test]
    fn encode_roundtrips_bit_exactly() {
        let mut h = sample();
        h.sum = f64::from_bits(crate::STALE_NAN_BITS);
        let back = FloatHistogram::decode(&h.encode()).unwrap();
        assert_eq!(back.sum.to_bits(), crate::STALE_NAN_BITS);
        assert!(back.is_stale_marker());
        let h = sample();
        assert_eq!(FloatHistogram::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn integer_deltas_become_absolute_counts() {
        let h = remote::Histogram {
            count: Some(pb::Count::CountInt(9)),
            zero_count: Some(pb::ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_deltas: vec![2, 1, -2],
            ..Default::default()
        };
        let f = FloatHistogram::from_remote(&h).unwrap();
        assert_eq!(f.positive_buckets, vec![2.0, 3.0, 1.0]);
        assert_eq!((f.count, f.zero_count), (9.0, 1.0));
    }

    #[test]
    fn mixed_integer_and_float_buckets_are_refused() {
        let h = remote::Histogram {
            count: Some(pb::Count::CountInt(1)),
            positive_counts: vec![1.0],
            ..Default::default()
        };
        assert!(FloatHistogram::from_remote(&h).is_err());
    }
}
