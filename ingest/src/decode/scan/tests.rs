use std::mem::size_of;

use hypnos_schemas::remote::histogram::{Count, ZeroCount};
use prost::Message;

use super::*;

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

/// A request with a bit of everything.
fn mixed() -> WriteRequest {
    let h = Histogram {
        count: Some(Count::CountInt(3)),
        sum: 1.5,
        schema: 1,
        zero_threshold: 1e-128,
        zero_count: Some(ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 0],
        timestamp: 10,
        ..Default::default()
    };
    WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "a")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1,
                    },
                    Sample {
                        value: 2.0,
                        timestamp: 2,
                    },
                ],
                exemplars: vec![Exemplar {
                    labels: vec![label("trace_id", "ab")],
                    value: 1.0,
                    timestamp: 1,
                }],
                histograms: vec![],
            },
            TimeSeries {
                labels: vec![label("__name__", "h")],
                histograms: vec![h.clone(), h],
                ..Default::default()
            },
        ],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "up".into(),
            help: "help".into(),
            unit: String::new(),
        }],
    }
}

/// Heap and inline bytes of a decoded request, from the capacities it really has.
fn footprint(req: &WriteRequest) -> usize {
    let labels = |ls: &Vec<Label>| {
        ls.capacity() * size_of::<Label>()
            + ls.iter()
                .map(|l| l.name.capacity() + l.value.capacity())
                .sum::<usize>()
    };
    let mut n = req.timeseries.capacity() * size_of::<TimeSeries>()
        + req.metadata.capacity() * size_of::<MetricMetadata>();
    for m in &req.metadata {
        n += m.metric_family_name.capacity() + m.help.capacity() + m.unit.capacity();
    }
    for ts in &req.timeseries {
        n += labels(&ts.labels)
            + ts.samples.capacity() * size_of::<Sample>()
            + ts.exemplars.capacity() * size_of::<Exemplar>()
            + ts.histograms.capacity() * size_of::<Histogram>();
        for e in &ts.exemplars {
            n += labels(&e.labels);
        }
        for h in &ts.histograms {
            n += (h.positive_spans.capacity() + h.negative_spans.capacity())
                * size_of::<BucketSpan>()
                + (h.positive_deltas.capacity()
                    + h.negative_deltas.capacity()
                    + h.positive_counts.capacity()
                    + h.negative_counts.capacity()
                    + h.custom_values.capacity())
                    * 8;
        }
    }
    n
}

#[test]
fn counts_and_decodes_as_prost_does() {
    let req = mixed();
    let raw = req.encode_to_vec();
    let s = scan(&raw).unwrap();
    assert_eq!(
        (
            s.series,
            s.labels,
            s.max_series_labels,
            s.samples,
            s.histograms,
            s.exemplars,
            s.metadata
        ),
        (2, 3, 2, 2, 2, 1, 1)
    );
    let decoded = decode_scanned(&raw, &s).unwrap();
    assert_eq!(decoded, req);
    assert_eq!(decoded, WriteRequest::decode(raw.as_slice()).unwrap());
    // Exact outer vectors, and the estimate bounds what was allocated.
    assert_eq!(decoded.timeseries.capacity(), 2);
    assert_eq!(decoded.timeseries[1].histograms.capacity(), 2);
    assert!(footprint(&decoded) <= s.decoded_bytes, "{s:?}");
    s.check(raw.len(), &WriteLimits::default()).unwrap();
}

#[test]
fn unknown_fields_are_skipped_and_garbage_refused() {
    let mut raw = mixed().encode_to_vec();
    // Field 7 (varint), field 9 (fixed64) and field 5 (length-delimited) are unknown.
    raw.extend_from_slice(&[7 << 3, 42, (9 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend_from_slice(&[(5 << 3) | 2, 2, 0xff, 0xff]);
    let s = scan(&raw).unwrap();
    assert_eq!(
        decode_scanned(&raw, &s).unwrap(),
        WriteRequest::decode(raw.as_slice()).unwrap()
    );
    for bad in [
        &[0x0a, 0x05, 0x01][..],   // length past the end
        &[0x08, 0x01],             // timeseries as a varint
        &[0x0a, 0x02, 0x0a, 0x7f], // a label running past its series
        &[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    ] {
        let e = scan(bad).unwrap_err();
        assert!(matches!(e, IngestError::Decode(_)), "{bad:?}: {e}");
        assert!(WriteRequest::decode(bad).is_err(), "{bad:?}");
    }
}

/// `n` copies of one series message holding `inner` (field, bytes) pairs, as raw protobuf.
fn series_of(n: usize, inner: &[u8]) -> Vec<u8> {
    let mut ts = vec![0x0a, inner.len() as u8];
    ts.extend_from_slice(inner);
    ts.repeat(n)
}

#[test]
fn empty_messages_of_every_kind_stay_within_the_bound_or_are_refused() {
    // One series of 2000 empty messages of each kind, then 2000 empty series, then 2000
    // empty metadata entries.
    let empties = |field: u8| {
        let mut v = Vec::new();
        for _ in 0..2000 {
            v.extend_from_slice(&[(field << 3) | 2, 0]);
        }
        v
    };
    let mut bodies = Vec::new();
    for (name, field) in [
        ("labels", 1u8),
        ("samples", 2),
        ("exemplars", 3),
        ("histograms", 4),
    ] {
        let inner = empties(field);
        let mut body = vec![0x0a];
        prost::encoding::encode_varint(inner.len() as u64, &mut body);
        body.extend_from_slice(&inner);
        bodies.push((name, body));
    }
    bodies.push(("series", series_of(2000, &[])));
    bodies.push(("metadata", empties(3)));
    let mut refused = Vec::new();
    for (name, body) in &bodies {
        let s = scan(body).unwrap();
        match s.check(body.len(), &WriteLimits::unlimited()) {
            Err(e) => {
                assert!(matches!(e, IngestError::Decode(_)), "{name}: {e}");
                assert!(e.to_string().contains("empty messages"), "{name}: {e}");
                refused.push(*name);
            }
            Ok(()) => {
                let req = decode_scanned(body, &s).unwrap();
                let got = footprint(&req);
                assert!(
                    got <= s.decoded_bytes,
                    "{name}: {got} > {}",
                    s.decoded_bytes
                );
                assert!(
                    got <= MAX_DECODE_AMPLIFICATION * body.len(),
                    "{name}: {got} bytes from {}",
                    body.len()
                );
            }
        }
    }
    // The large structs are refused; samples (16 bytes from 2) are not.
    assert!(refused.contains(&"histograms"), "{refused:?}");
    assert!(refused.contains(&"series"), "{refused:?}");
    assert!(refused.contains(&"metadata"), "{refused:?}");
    assert!(!refused.contains(&"samples"), "{refused:?}");
}

#[test]
fn histogram_bucket_vectors_are_bounded_packed_or_not() {
    // A histogram with 100 packed zero deltas (1 byte each) and 100 unpacked ones.
    let mut h = vec![(12 << 3) | 2, 100];
    h.extend(std::iter::repeat_n(0u8, 100));
    for _ in 0..100 {
        h.extend_from_slice(&[9 << 3, 0]);
    }
    // Field 16 (custom values, fixed64): a two-byte key.
    h.extend_from_slice(&[(11 << 3) | 2, 0, 0x81, 0x01]);
    h.extend_from_slice(&1.0f64.to_le_bytes());
    let mut ts = vec![0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x22];
    prost::encoding::encode_varint(h.len() as u64, &mut ts);
    ts.extend_from_slice(&h);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(ts.len() as u64, &mut body);
    body.extend_from_slice(&ts);
    let s = scan(&body).unwrap();
    assert_eq!((s.series, s.labels, s.histograms), (1, 1, 1));
    let req = decode_scanned(&body, &s).unwrap();
    assert_eq!(req, WriteRequest::decode(body.as_slice()).unwrap());
    let hist = &req.timeseries[0].histograms[0];
    assert_eq!(
        (
            hist.positive_deltas.len(),
            hist.negative_deltas.len(),
            hist.custom_values.len()
        ),
        (100, 100, 1)
    );
    assert!(footprint(&req) <= s.decoded_bytes);
}

#[test]
fn request_limits_are_checked_on_the_wire() {
    let req = mixed();
    let raw = req.encode_to_vec();
    let s = scan(&raw).unwrap();
    for (limits, name) in [
        (
            WriteLimits {
                max_series_per_request: 1,
                ..WriteLimits::unlimited()
            },
            "max_series_per_request",
        ),
        (
            WriteLimits {
                max_samples_per_request: 3,
                ..WriteLimits::unlimited()
            },
            "max_samples_per_request",
        ),
        (
            WriteLimits {
                max_label_names_per_series: 0,
                ..WriteLimits::unlimited()
            },
            "",
        ),
    ] {
        let r = s.check(raw.len(), &limits);
        if name.is_empty() {
            r.unwrap();
            continue;
        }
        let IngestError::Limit(l) = r.unwrap_err() else {
            panic!("{name}: not a limit error");
        };
        assert_eq!(l.limit, name);
        assert_eq!(l.kind, LimitKind::TooLarge);
    }
    // Labels per series: one more than the limit may be the tenant label.
    let one = WriteLimits {
        max_label_names_per_series: 1,
        ..WriteLimits::unlimited()
    };
    s.check(raw.len(), &one).unwrap();
    let mut wide = mixed();
    wide.timeseries[0].labels.push(label("zz", "1"));
    let raw = wide.encode_to_vec();
    let IngestError::Limit(l) = scan(&raw).unwrap().check(raw.len(), &one).unwrap_err() else {
        panic!("not a limit error");
    };
    assert_eq!(l.limit, "max_label_names_per_series");
    assert_eq!(l.kind, LimitKind::Invalid);
}

#[test]
fn realistic_histogram_requests_are_far_from_the_bound() {
    // What Prometheus sends: one histogram per series, with a few labels; float histograms
    // with many buckets, integer ones with few, and bare ones with a timestamp only.
    let labels = |i: usize| {
        vec![
            label("__name__", "http_request_duration_seconds"),
            label("instance", &format!("10.0.0.{i}:9090")),
            label("job", "api"),
        ]
    };
    let float = Histogram {
        count: Some(Count::CountFloat(160.0)),
        sum: 12.5,
        schema: 3,
        zero_threshold: 2.938735877055719e-39,
        positive_spans: vec![BucketSpan {
            offset: -80,
            length: 160,
        }],
        positive_counts: vec![1.0; 160],
        timestamp: 1_700_000_000_000,
        ..Default::default()
    };
    let int = Histogram {
        count: Some(Count::CountInt(3)),
        zero_threshold: 2.938735877055719e-39,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: 1_700_000_000_000,
        ..Default::default()
    };
    let bare = Histogram {
        timestamp: 1_700_000_000_000,
        ..Default::default()
    };
    for (name, h) in [("float", float), ("int", int), ("bare", bare)] {
        let req = WriteRequest {
            timeseries: (0..500)
                .map(|i| TimeSeries {
                    labels: labels(i),
                    histograms: vec![h.clone()],
                    ..Default::default()
                })
                .collect(),
            metadata: vec![],
        };
        let raw = req.encode_to_vec();
        let s = scan(&raw).unwrap();
        let ratio = s.decoded_bytes as f64 / raw.len() as f64;
        assert!(ratio < 8.0, "{name}: {ratio}");
        s.check(raw.len(), &WriteLimits::default()).unwrap();
        let decoded = decode_scanned(&raw, &s).unwrap();
        assert!(footprint(&decoded) <= s.decoded_bytes, "{name}");
        assert_eq!(decoded, req);
    }
}
