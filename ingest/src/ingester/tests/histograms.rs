//! Native histograms through the ingester: write, select, WAL replay, flush.

use arrow::array::Array;
use hypnos_schemas::histogram::{FloatHistogram, ResetHint};
use hypnos_schemas::remote::{BucketSpan, histogram as pb};

use super::*;

/// What a series holds, row by row: value bits or the histogram's stored form (compared
/// byte for byte: bit-exact, NaN sums included).
#[derive(Debug, PartialEq)]
enum Point {
    Float(u64),
    Hist(Vec<u8>),
}

async fn points(src: &dyn SeriesSource, t: &TenantId) -> Vec<(String, Vec<(i64, Point)>)> {
    let mut out: Vec<_> = src
        .select(t, &[], ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let hs = s.histograms();
            let pts = (0..s.len())
                .map(|i| {
                    let p = match hs.filter(|h| h.is_valid(i)) {
                        Some(h) => Point::Hist(h.value(i).to_vec()),
                        None => Point::Float(s.values().value(i).to_bits()),
                    };
                    (s.timestamps().value(i), p)
                })
                .collect();
            (s.labels.to_string(), pts)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn int_hist(t: i64, scale: u64) -> remote::Histogram {
    remote::Histogram {
        count: Some(pb::Count::CountInt(6 * scale)),
        sum: 4.5 * scale as f64,
        schema: 1,
        zero_threshold: 1e-128,
        zero_count: Some(pb::ZeroCount::ZeroCountInt(scale)),
        positive_spans: vec![
            BucketSpan {
                offset: 0,
                length: 2,
            },
            BucketSpan {
                offset: 1,
                length: 1,
            },
        ],
        positive_deltas: vec![scale as i64, scale as i64, -(scale as i64)],
        negative_spans: vec![BucketSpan {
            offset: -1,
            length: 1,
        }],
        negative_deltas: vec![scale as i64],
        timestamp: t,
        ..Default::default()
    }
}

fn float_hist(t: i64) -> remote::Histogram {
    remote::Histogram {
        count: Some(pb::Count::CountFloat(3.25)),
        // A NaN payload other than the staleness marker must survive bit for bit.
        sum: f64::from_bits(0x7ff8_0000_0000_0abc),
        schema: hypnos_schemas::histogram::CUSTOM_BUCKETS_SCHEMA,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_counts: vec![1.25, 2.0],
        custom_values: vec![0.5, 2.0],
        reset_hint: pb::RESET_GAUGE,
        timestamp: t,
        ..Default::default()
    }
}

fn stale_hist(t: i64) -> remote::Histogram {
    remote::Histogram {
        count: Some(pb::Count::CountInt(0)),
        sum: f64::from_bits(STALE_NAN_BITS),
        timestamp: t,
        ..Default::default()
    }
}

fn with_histograms(mut ts: TimeSeries, hs: Vec<remote::Histogram>) -> TimeSeries {
    ts.histograms = hs;
    ts
}

fn hist_series(job: &str, floats: &[(i64, f64)], hs: Vec<remote::Histogram>) -> TimeSeries {
    with_histograms(series(&[("__name__", "h"), ("job", job)], floats), hs)
}

fn conv(h: &remote::Histogram) -> Point {
    Point::Hist(FloatHistogram::from_remote(h).unwrap().encode())
}

/// As stored after a histogram with no counter reset: the head records "not reset" where
/// the producer left the hint unknown.
fn conv_not_reset(h: &remote::Histogram) -> Point {
    let mut f = FloatHistogram::from_remote(h).unwrap();
    assert_eq!(f.counter_reset_hint, ResetHint::Unknown);
    f.counter_reset_hint = ResetHint::NotReset;
    Point::Hist(f.encode())
}

/// Series "h{job=a}": floats at 1000 and 5000, integer histograms at 2000 and 3000, a stale
/// histogram at 4000; "h{job=b}": float histograms at 1000 and 2000.
fn mixed_request() -> WriteRequest {
    req(vec![
        hist_series(
            "a",
            &[(1000, 1.0), (5000, 5.0)],
            vec![int_hist(2000, 1), int_hist(3000, 2), stale_hist(4000)],
        ),
        hist_series("b", &[], vec![float_hist(1000), float_hist(2000)]),
    ])
}

fn mixed_expected() -> Vec<(String, Vec<(i64, Point)>)> {
    vec![
        (
            r#"{__name__="h", job="a", tenant_id="a"}"#.to_string(),
            vec![
                (1000, Point::Float(1f64.to_bits())),
                (2000, conv(&int_hist(2000, 1))),
                (3000, conv_not_reset(&int_hist(3000, 2))),
                (4000, Point::Float(STALE_NAN_BITS)),
                (5000, Point::Float(5f64.to_bits())),
            ],
        ),
        (
            r#"{__name__="h", job="b", tenant_id="a"}"#.to_string(),
            vec![
                (1000, conv(&float_hist(1000))),
                (2000, conv(&float_hist(2000))),
            ],
        ),
    ]
}

#[tokio::test]
async fn histograms_are_written_selected_and_counted_as_samples() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let stats = env
        .ingester
        .write(&tenant("a"), mixed_request())
        .await
        .unwrap();
    assert_eq!(
        stats,
        WriteStats {
            series: 2,
            samples: 7,
            duplicates: 0
        }
    );
    let got = points(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(got, mixed_expected());
    let Point::Hist(h) = &got[1].1[0].1 else {
        panic!("a histogram")
    };
    let h = FloatHistogram::decode(h).unwrap();
    assert_eq!(h.sum.to_bits(), 0x7ff8_0000_0000_0abc);
    assert_eq!(h.positive_buckets, vec![1.25, 2.0]);
    for (name, want) in [
        ("hypnos_receive_samples_total", 7.0),
        ("hypnos_head_samples", 7.0),
        ("hypnos_receive_series_total", 2.0),
    ] {
        assert_eq!(
            metric(&env.registry, name, Some(("tenant", "a"))),
            want,
            "{name}"
        );
    }
    // A retry is all duplicates, histograms and floats alike.
    let stats = env
        .ingester
        .write(&tenant("a"), mixed_request())
        .await
        .unwrap();
    assert_eq!((stats.samples, stats.duplicates), (0, 7));
    // A float where a histogram is (and the reverse): the first write wins.
    let stats = env
        .ingester
        .write(
            &tenant("a"),
            req(vec![hist_series(
                "a",
                &[(2000, 9.0)],
                vec![int_hist(1000, 3), int_hist(6000, 1)],
            )]),
        )
        .await
        .unwrap();
    assert_eq!((stats.samples, stats.duplicates), (1, 2));
    let got = points(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(got[0].1[1], (2000, conv(&int_hist(2000, 1))));
    assert_eq!(got[0].1[0], (1000, Point::Float(1f64.to_bits())));
    assert_eq!(got[0].1[5], (6000, conv(&int_hist(6000, 1))));
    // A float-only series keeps the plain two-column schema.
    env.ingester
        .write(&tenant("a"), req(vec![up("x", &[(1, 1.0)])]))
        .await
        .unwrap();
    let m = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    let got = env.ingester.select(&tenant("a"), &[m], ALL).await.unwrap();
    assert!(got[0].histograms().is_none());
}

#[tokio::test]
async fn a_bad_histogram_refuses_the_request_and_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    let t = tenant("a");
    env.ingester.write(&t, mixed_request()).await.unwrap();
    let before = points(env.ingester.as_ref(), &t).await;
    let mut bad = int_hist(9000, 1);
    bad.positive_deltas = vec![1, -2, 1];
    let e = env
        .ingester
        .write(
            &t,
            req(vec![
                up("x", &[(9000, 1.0)]),
                hist_series("a", &[(8000, 8.0)], vec![int_hist(7000, 1), bad]),
            ]),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IngestError::Invalid(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("invalid native histogram at 9000 ms"), "{msg}");
    assert!(
        msg.contains("positive side: bucket number 2 has observation count of -1"),
        "{msg}"
    );
    assert!(msg.contains(r#"{__name__="h", job="a"}"#), "{msg}");
    assert_eq!(points(env.ingester.as_ref(), &t).await, before);
    assert_eq!(
        metric(&env.registry, "hypnos_receive_samples_total", None),
        7.0
    );
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(points(env.ingester.as_ref(), &t).await, before);
}

#[tokio::test]
async fn histograms_survive_a_restart_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    env.ingester
        .write(&tenant("a"), mixed_request())
        .await
        .unwrap();
    // A float-only record between histogram ones.
    env.ingester
        .write(&tenant("a"), req(vec![up("x", &[(1, 1.0)])]))
        .await
        .unwrap();
    env.ingester
        .write(
            &tenant("a"),
            req(vec![hist_series("b", &[], vec![float_hist(500)])]),
        )
        .await
        .unwrap();
    let before = points(env.ingester.as_ref(), &tenant("a")).await;
    assert_eq!(before.len(), 3);
    drop(env);
    let env = open(dir.path()).await;
    assert_eq!(points(env.ingester.as_ref(), &tenant("a")).await, before);
    assert_eq!(
        metric(&env.registry, "hypnos_head_samples", Some(("tenant", "a"))),
        9.0
    );
}

#[tokio::test]
async fn a_flushed_block_holds_the_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path()).await;
    env.ingester
        .write(&tenant("a"), mixed_request())
        .await
        .unwrap();
    let before = points(env.ingester.as_ref(), &tenant("a")).await;
    let metas = env.ingester.flush().await.unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].num_samples, 7);
    let reader = BlockReader::new(Arc::clone(&env.store), metas[0].clone()).unwrap();
    assert_eq!(points(&reader, &tenant("a")).await, before);
    assert_eq!(points(&reader, &tenant("a")).await, mixed_expected());
}
