//! Prometheus remote-write 1.0 messages (`prometheus.WriteRequest`), derived with prost so no
//! `protoc` is needed. Field numbers follow prometheus/prompb/{remote,types}.proto.

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`. A request without exemplars or histograms decodes as before (an
/// empty `Vec` allocates nothing).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Histogram`: a native histogram sample. Integer histograms carry their bucket
/// counts as deltas (`*_deltas`, each bucket relative to the previous one), float histograms
/// as absolute counts (`*_counts`). Hypnos also stores every histogram in this message, as a
/// float histogram (see [`crate::histogram::FloatHistogram::encode`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// `histogram::ResetHint` as its number.
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// The bucket boundaries of a histogram with custom buckets (schema -53).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

pub mod histogram {
    /// `oneof count`.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Count {
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    /// `oneof zero_count`.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum ZeroCount {
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }

    /// `Histogram.ResetHint`.
    pub const RESET_UNKNOWN: i32 = 0;
    pub const RESET_YES: i32 = 1;
    pub const RESET_NO: i32 = 2;
    pub const RESET_GAUGE: i32 = 3;
}

/// `prometheus.BucketSpan`: `length` consecutive buckets, starting `offset` buckets after the
/// end of the previous span (or at index `offset` for the first span).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a float value at a millisecond timestamp.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`: optional labels (a trace id, typically), a value and a
/// millisecond timestamp.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn roundtrip_keeps_nan_bits() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: f64::from_bits(crate::STALE_NAN_BITS),
                    timestamp: 42,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let back = WriteRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            back.timeseries[0].samples[0].value.to_bits(),
            crate::STALE_NAN_BITS
        );
    }

    #[test]
    fn exemplars_decode_with_their_field_numbers() {
        // Hand-encoded TimeSeries { exemplars: [Exemplar { labels: [trace_id="ab"],
        // value: 1.5, timestamp: 7 }] }: field 3 of TimeSeries, fields 1, 2, 3 of Exemplar.
        let label = [
            0x0a, 8, b't', b'r', b'a', b'c', b'e', b'_', b'i', b'd', 0x12, 2, b'a', b'b',
        ];
        let mut ex = vec![0x0a, label.len() as u8];
        ex.extend_from_slice(&label);
        ex.push(0x11);
        ex.extend_from_slice(&1.5f64.to_le_bytes());
        ex.extend_from_slice(&[0x18, 7]);
        let mut ts = vec![0x1a, ex.len() as u8];
        ts.extend_from_slice(&ex);
        let back = TimeSeries::decode(ts.as_slice()).unwrap();
        assert_eq!(
            back.exemplars,
            vec![Exemplar {
                labels: vec![Label {
                    name: "trace_id".into(),
                    value: "ab".into(),
                }],
                value: 1.5,
                timestamp: 7,
            }]
        );
        assert_eq!(back.encode_to_vec(), ts);
    }
}
