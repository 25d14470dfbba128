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

/// `prometheus.TimeSeries`. Native histograms are kept as their undecoded bytes: they are
/// refused until the store can keep them. A request without exemplars decodes as before
/// (an empty `Vec` allocates nothing).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
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
