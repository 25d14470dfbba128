use std::fs;

use hypnos_schemas::STALE_NAN_BITS;
use hypnos_schemas::histogram::FloatHistogram;

use super::*;

fn request(n_series: usize, base: i64) -> ValidRequest {
    let mut req = ValidRequest::default();
    for i in 0..n_series {
        let samples: Vec<Sample> = (0..3)
            .map(|k| Sample {
                timestamp: base + k,
                value: if k == 1 {
                    f64::from_bits(STALE_NAN_BITS)
                } else {
                    base as f64 + 0.5
                },
            })
            .collect();
        req.num_samples += samples.len();
        req.series.push(ValidSeries {
            labels: Labels::from_pairs([
                ("__name__", "m"),
                ("i", &i.to_string()),
                ("tenant_id", "t"),
            ]),
            samples,
            histograms: vec![],
            exemplars: vec![],
        });
    }
    req
}

fn bits(req: &ValidRequest) -> Vec<(String, Vec<(i64, u64)>)> {
    req.series
        .iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples
                    .iter()
                    .map(|x| (x.timestamp, x.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

/// A segment with `n` records of one-series requests at timestamps 0, 100, 200, ...;
/// returns the path and the end offset of each record.
fn segment_with(dir: &Path, n: usize) -> (PathBuf, Vec<u64>) {
    let mut w = SegmentWriter::create(dir, 1).unwrap();
    let tenant = TenantId::new("t").unwrap();
    let mut ends = Vec::new();
    let mut end = 0;
    for i in 0..n {
        let mut buf = Vec::new();
        frame_record(
            &mut buf,
            &encode_payload(&tenant, &request(1, i as i64 * 100)).unwrap(),
        );
        w.write_synced(&buf).unwrap();
        end += buf.len() as u64;
        ends.push(end);
    }
    (segment_path(dir, 1), ends)
}

fn replay_bases(path: &Path) -> (Vec<i64>, SegmentReplay) {
    let mut bases = Vec::new();
    let report = replay_segment(path, |p| {
        let Some((_, req)) = decode_payload(p) else {
            return false;
        };
        bases.push(req.series[0].samples[0].timestamp);
        true
    })
    .unwrap();
    (bases, report)
}

#[test]
fn payload_roundtrip_is_bit_exact() {
    let tenant = TenantId::new("team-a").unwrap();
    let req = request(3, 1000);
    let payload = encode_payload(&tenant, &req).unwrap();
    let (t, back) = decode_payload(&payload).unwrap();
    assert_eq!(t, tenant);
    assert_eq!(back.num_samples, 9);
    assert_eq!(bits(&back), bits(&req));
    // Any truncation or trailing byte is refused.
    for cut in 0..payload.len() {
        assert!(decode_payload(&payload[..cut]).is_none(), "cut at {cut}");
    }
    let mut longer = payload.clone();
    longer.push(0);
    assert!(decode_payload(&longer).is_none());
    let mut other_version = payload;
    other_version[0] = 4;
    assert!(decode_payload(&other_version).is_none());
}

/// `request` with exemplars on its first series.
fn with_exemplars(n_series: usize, base: i64) -> ValidRequest {
    let mut req = request(n_series, base);
    req.series[0].exemplars = vec![
        Exemplar {
            labels: Labels::from_pairs([("trace_id", "abc")]),
            value: f64::from_bits(STALE_NAN_BITS),
            timestamp: base,
        },
        Exemplar {
            labels: Labels::default(),
            value: -1.5,
            timestamp: base + 1,
        },
    ];
    req.num_exemplars = 2;
    req
}

#[test]
fn exemplars_roundtrip_in_version_2() {
    let tenant = TenantId::new("team-a").unwrap();
    let req = with_exemplars(2, 1000);
    let payload = encode_payload(&tenant, &req).unwrap();
    assert_eq!(payload[0], 2);
    let (t, back) = decode_payload(&payload).unwrap();
    assert_eq!(t, tenant);
    assert_eq!(bits(&back), bits(&req));
    assert_eq!(back.num_exemplars, 2);
    assert_eq!(back.series[0].exemplars.len(), 2);
    assert_eq!(
        back.series[0].exemplars[0].labels,
        req.series[0].exemplars[0].labels
    );
    assert_eq!(
        back.series[0].exemplars[0].value.to_bits(),
        STALE_NAN_BITS,
        "exemplar values are bit exact"
    );
    assert_eq!(back.series[0].exemplars[1], req.series[0].exemplars[1]);
    assert!(back.series[1].exemplars.is_empty());
    for cut in 0..payload.len() {
        assert!(decode_payload(&payload[..cut]).is_none(), "cut at {cut}");
    }
}

#[test]
fn records_written_before_exemplars_still_replay() {
    // A version 1 payload as the log wrote it before exemplars were kept, byte by byte:
    // tenant "t", one series {__name__="m"} with one sample (5, 1.0).
    let mut old = vec![1u8, 1, 0, b't', 1, 0, 0, 0];
    let labels = b"__name__\xffm\xff";
    old.extend_from_slice(&(labels.len() as u32).to_le_bytes());
    old.extend_from_slice(labels);
    old.extend_from_slice(&1u32.to_le_bytes());
    old.extend_from_slice(&5i64.to_le_bytes());
    old.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
    let (t, req) = decode_payload(&old).unwrap();
    assert_eq!(t.as_str(), "t");
    assert_eq!(req.series[0].labels.to_string(), r#"{__name__="m"}"#);
    assert_eq!(req.num_samples, 1);
    assert_eq!(req.num_exemplars, 0);
    assert!(req.series[0].exemplars.is_empty());
    // And a request without exemplars is still written exactly so.
    let mut same = ValidRequest::default();
    same.series.push(ValidSeries {
        labels: Labels::from_pairs([("__name__", "m")]),
        samples: vec![Sample {
            timestamp: 5,
            value: 1.0,
        }],
        histograms: vec![],
        exemplars: vec![],
    });
    same.num_samples = 1;
    assert_eq!(encode_payload(&t, &same).unwrap(), old);
    // A segment mixing both versions replays both records.
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
    let mut buf = Vec::new();
    frame_record(&mut buf, &old);
    frame_record(
        &mut buf,
        &encode_payload(&t, &with_exemplars(1, 7)).unwrap(),
    );
    w.write_synced(&buf).unwrap();
    let mut exemplars = Vec::new();
    let report = replay_segment(&segment_path(dir.path(), 1), |p| {
        let Some((_, req)) = decode_payload(p) else {
            return false;
        };
        exemplars.push(req.num_exemplars);
        true
    })
    .unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(report.truncated_at, None);
    assert_eq!(exemplars, vec![0, 2]);
}

#[test]
fn every_torn_tail_keeps_the_complete_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = segment_with(dir.path(), 3);
    let full = fs::read(&path).unwrap();
    for cut in 0..full.len() as u64 {
        fs::write(&path, &full[..cut as usize]).unwrap();
        let (bases, report) = replay_bases(&path);
        let kept = ends.iter().filter(|e| **e <= cut).count();
        assert_eq!(bases, (0..kept as i64).map(|i| i * 100).collect::<Vec<_>>());
        let clean_end = ends.contains(&cut) || cut == 0;
        assert_eq!(report.truncated_at.is_some(), !clean_end, "cut at {cut}");
        // The file now ends at the last complete record.
        let kept_len = if kept == 0 { 0 } else { ends[kept - 1] };
        assert_eq!(fs::metadata(&path).unwrap().len(), kept_len);
    }
}

#[test]
fn garbage_and_bit_flips_end_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = segment_with(dir.path(), 3);
    let full = fs::read(&path).unwrap();

    let mut garbage = full.clone();
    garbage.extend_from_slice(b"\xff\xff\xff\x7fjunkjunkjunk");
    fs::write(&path, &garbage).unwrap();
    let (bases, report) = replay_bases(&path);
    assert_eq!(bases, vec![0, 100, 200]);
    assert_eq!(report.truncated_at, Some(ends[2]));
    assert_eq!(fs::read(&path).unwrap(), full);

    // A flipped bit in the second record's payload: the checksum catches it.
    let mut flipped = full.clone();
    flipped[ends[0] as usize + 12] ^= 0x10;
    fs::write(&path, &flipped).unwrap();
    let (bases, report) = replay_bases(&path);
    assert_eq!(bases, vec![0]);
    assert_eq!(report.reason.as_deref(), Some("record checksum mismatch"));
}

#[test]
fn segments_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_checkpoint(dir.path()).unwrap(), None);
    for n in [3, 1, 2, 10] {
        SegmentWriter::create(dir.path(), n).unwrap();
    }
    // Creating an existing segment fails rather than appending to it.
    assert!(SegmentWriter::create(dir.path(), 3).is_err());
    fs::write(dir.path().join("notes.txt"), "x").unwrap();
    assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2, 3, 10]);
    assert_eq!(truncate(dir.path(), 3).unwrap(), 3);
    assert_eq!(list_segments(dir.path()).unwrap(), vec![10]);
    assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(3));
    assert!(!dir.path().join(CHECKPOINT_TMP).exists());
    fs::write(dir.path().join(CHECKPOINT), "nonsense").unwrap();
    assert!(read_checkpoint(dir.path()).is_err());
}

/// `request` with histograms on every series: one at `base + 3`, a stale-NaN-summed one at
/// `base + 4` (bit-exact), and exemplars on the first series.
fn with_histograms(n_series: usize, base: i64) -> ValidRequest {
    use hypnos_schemas::histogram::Span;
    let mut req = with_exemplars(n_series, base);
    for (i, s) in req.series.iter_mut().enumerate() {
        let h = FloatHistogram {
            schema: i as i32,
            count: 3.0,
            sum: f64::from_bits(0x7ff8_0000_0000_0abc),
            zero_count: 1.0,
            zero_threshold: 1e-128,
            positive_spans: vec![Span {
                offset: -1,
                length: 2,
            }],
            positive_buckets: vec![1.5, 0.5],
            ..Default::default()
        };
        s.histograms = vec![
            HistogramSample {
                timestamp: base + 3,
                encoded: h.encode(),
            },
            HistogramSample {
                timestamp: base + 4,
                encoded: FloatHistogram::default().encode(),
            },
        ];
    }
    req.num_samples += 2 * n_series;
    req
}

#[test]
fn histograms_roundtrip_bit_exact_in_version_3() {
    let tenant = TenantId::new("team-a").unwrap();
    let req = with_histograms(2, 1000);
    let payload = encode_payload(&tenant, &req).unwrap();
    assert_eq!(payload[0], 3);
    let (t, back) = decode_payload(&payload).unwrap();
    assert_eq!(t, tenant);
    assert_eq!(bits(&back), bits(&req));
    for (b, r) in back.series.iter().zip(&req.series) {
        assert_eq!(b.histograms, r.histograms);
        assert_eq!(b.exemplars.len(), r.exemplars.len());
    }
    assert_eq!(back.num_samples, 10);
    let h = FloatHistogram::decode(&back.series[0].histograms[0].encoded).unwrap();
    assert_eq!(h.sum.to_bits(), 0x7ff8_0000_0000_0abc);
    for cut in 0..payload.len() {
        assert!(decode_payload(&payload[..cut]).is_none(), "cut at {cut}");
    }
    // Bytes that are not a histogram do not decode (a writer's bug, not a torn record).
    let mut bad = req.clone();
    bad.series[1].histograms[0].encoded = vec![0xff; 3];
    assert!(decode_payload(&encode_payload(&tenant, &bad).unwrap()).is_none());
    // Histograms without exemplars still take version 3; floats alone stay version 1.
    let mut plain = request(1, 5);
    assert_eq!(encode_payload(&tenant, &plain).unwrap()[0], 1);
    plain.series[0].histograms = req.series[1].histograms.clone();
    plain.num_samples += 2;
    let payload = encode_payload(&tenant, &plain).unwrap();
    assert_eq!(payload[0], 3);
    let back = decode_payload(&payload).unwrap().1;
    assert_eq!(bits(&back), bits(&plain));
    assert_eq!(back.series[0].histograms, plain.series[0].histograms);
}

#[test]
fn a_segment_of_every_version_replays() {
    let dir = tempfile::tempdir().unwrap();
    let t = TenantId::new("t").unwrap();
    let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
    let mut buf = Vec::new();
    for req in [request(1, 0), with_exemplars(1, 10), with_histograms(1, 20)] {
        frame_record(&mut buf, &encode_payload(&t, &req).unwrap());
    }
    w.write_synced(&buf).unwrap();
    let mut got = Vec::new();
    let report = replay_segment(&segment_path(dir.path(), 1), |p| {
        let Some((_, req)) = decode_payload(p) else {
            return false;
        };
        got.push((p[0], req.num_samples, req.num_exemplars));
        true
    })
    .unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(got, vec![(1, 3, 0), (2, 3, 2), (3, 5, 2)]);
}
