use super::*;
use crate::vector::VectorBuilder;
use hypnos_schemas::STALE_NAN_BITS;

fn batch(series: &[(&str, &[(i64, f64)])]) -> RecordBatch {
    let mut b = VectorBuilder::new();
    for (name, pts) in series {
        b.start_series(&Labels::from_pairs([("__name__", "m"), ("i", *name)]));
        for (t, v) in *pts {
            b.push(*t, *v);
        }
    }
    b.finish()
}

fn points(b: &RecordBatch) -> Vec<(String, Vec<(i64, f64)>)> {
    crate::vector::batch_points(b)
}

#[test]
fn instant_select_lookback_is_left_open_and_honours_staleness() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let b = batch(&[("a", &[(0, 1.0), (10_000, 2.0), (20_000, stale)])]);
    let steps = Steps {
        start: 0,
        end: 30_000,
        step: 5_000,
    };
    let got = points(&instant_select(&b, steps, 10_000, 0).unwrap());
    // t=0:1, 5s:1, 10s:2, 15s:2, 20s: stale -> nothing, 25s, 30s: nothing.
    assert_eq!(
        got[0].1,
        vec![(0, 1.0), (5_000, 1.0), (10_000, 2.0), (15_000, 2.0)]
    );
    // Window (t-lookback, t] excludes a sample exactly lookback old.
    let got = points(&instant_select(&b, Steps::instant(20_000), 10_000, 5_000).unwrap());
    assert_eq!(got[0].1, vec![(20_000, 2.0)]);
    let got = points(&instant_select(&b, Steps::instant(10_000), 10_000, 0).unwrap());
    assert_eq!(got[0].1, vec![(10_000, 2.0)]);
    assert!(points(&instant_select(&b, Steps::instant(9_999), 9_999, 0).unwrap()).is_empty());
    let got = points(&instant_select(&b, Steps::instant(9_999), 10_000, 0).unwrap());
    assert_eq!(got[0].1, vec![(9_999, 1.0)]);
}

#[test]
fn rate_matches_prometheus_extrapolation() {
    // Counter 0, 10, 20, ... every 15s; rate over 1m at t=60s sees samples at 15..60s
    // (window (0, 60]) = 10..40: increase 30 over 45s, extrapolated to the window start
    // stops at the counter's zero point (first value 10 -> 15s before), so 40 over 60s.
    let pts: Vec<(i64, f64)> = (0..=8).map(|i| (i * 15_000, i as f64 * 10.0)).collect();
    let b = batch(&[("a", &pts)]);
    let got =
        points(&range_function(&b, RangeFunc::Rate, Steps::instant(60_000), 60_000, 0).unwrap());
    assert!((got[0].1[0].1 - 40.0 / 60.0).abs() < 1e-12, "{got:?}");
    assert_eq!(got[0].0, r#"{i="a"}"#, "rate drops the metric name");
    let inc = points(
        &range_function(&b, RangeFunc::Increase, Steps::instant(120_000), 60_000, 0).unwrap(),
    );
    assert!((inc[0].1[0].1 - 40.0).abs() < 1e-9, "{inc:?}");
}

#[test]
fn rate_handles_counter_resets_and_short_windows() {
    let b = batch(&[(
        "a",
        &[(0, 5.0), (15_000, 10.0), (30_000, 2.0), (45_000, 7.0)],
    )]);
    // Increase = (10-5) + 2 + (7-2) = 12 across 45s, window (−15s, 45s] at t=45s with range 60s.
    let got = points(
        &range_function(&b, RangeFunc::Increase, Steps::instant(45_000), 60_000, 0).unwrap(),
    );
    let v = got[0].1[0].1;
    assert!(v > 12.0 && v < 12.0 * 60.0 / 45.0 + 1e-9, "{v}");
    // A single sample in the window gives no result.
    let got =
        points(&range_function(&b, RangeFunc::Rate, Steps::instant(45_000), 10_000, 0).unwrap());
    assert!(got.is_empty());
}

#[test]
fn aggregations_follow_prometheus() {
    let b = batch(&[
        ("a", &[(0, 1.0), (1, f64::NAN)]),
        ("b", &[(0, 3.0), (1, 2.0)]),
    ]);
    let by_none = Grouping::By(vec![]);
    let sum = points(&aggregate(std::slice::from_ref(&b), AggOp::Sum, &by_none).unwrap());
    assert_eq!(sum[0].1[0], (0, 4.0));
    assert!(sum[0].1[1].1.is_nan());
    let min = points(&aggregate(std::slice::from_ref(&b), AggOp::Min, &by_none).unwrap());
    assert_eq!(
        min[0].1,
        vec![(0, 1.0), (1, 2.0)],
        "NaN loses to any number in min"
    );
    let max = points(&aggregate(std::slice::from_ref(&b), AggOp::Max, &by_none).unwrap());
    assert_eq!(max[0].1, vec![(0, 3.0), (1, 2.0)]);
    let count = points(&aggregate(std::slice::from_ref(&b), AggOp::Count, &by_none).unwrap());
    assert_eq!(count[0].1, vec![(0, 2.0), (1, 2.0)]);
    let avg = points(
        &aggregate(
            std::slice::from_ref(&b),
            AggOp::Avg,
            &Grouping::Without(vec!["i".into()]),
        )
        .unwrap(),
    );
    assert_eq!(avg[0].0, "{}");
    assert_eq!(avg[0].1[0], (0, 2.0));
    let by_i = points(&aggregate(&[b], AggOp::Sum, &Grouping::By(vec!["i".into()])).unwrap());
    assert_eq!(by_i.len(), 2);
    assert_eq!(by_i[0].0, r#"{i="a"}"#);
}

#[test]
fn kahan_sum_is_compensated() {
    let b = batch(&[
        ("a", &[(0, 1e100)]),
        ("b", &[(0, 1.0)]),
        ("c", &[(0, -1e100)]),
    ]);
    let sum = points(&aggregate(&[b], AggOp::Sum, &Grouping::By(vec![])).unwrap());
    assert_eq!(sum[0].1[0].1, 1.0);
}

#[test]
fn avg_survives_overflow() {
    let b = batch(&[("a", &[(0, f64::MAX)]), ("b", &[(0, f64::MAX)])]);
    let avg = points(&aggregate(&[b], AggOp::Avg, &Grouping::By(vec![])).unwrap());
    assert_eq!(avg[0].1[0].1, f64::MAX);
}

#[test]
fn scalar_binary_semantics() {
    let b = batch(&[("a", &[(0, 1.0), (1, f64::NAN), (2, -0.0)])]);
    let mul = points(&scalar_binary(&b, BinOp::Mul, 2.0, false, false).unwrap());
    assert_eq!(mul[0].0, r#"{i="a"}"#);
    assert_eq!(mul[0].1[0], (0, 2.0));
    let gt = points(&scalar_binary(&b, BinOp::Gt, 0.5, false, false).unwrap());
    assert_eq!(
        gt[0].0, r#"{__name__="m", i="a"}"#,
        "filtering comparison keeps the name"
    );
    assert_eq!(gt[0].1, vec![(0, 1.0)], "NaN compares false");
    let eq = points(&scalar_binary(&b, BinOp::Eq, 0.0, false, true).unwrap());
    assert_eq!(eq[0].1, vec![(0, 0.0), (1, 0.0), (2, 1.0)], "-0 == 0");
    let lt = points(&scalar_binary(&b, BinOp::Lt, 0.5, true, false).unwrap());
    assert_eq!(lt[0].1, vec![(0, 1.0)], "0.5 < v keeps v");
    let sub = points(&scalar_binary(&b, BinOp::Sub, 10.0, true, false).unwrap());
    assert_eq!(sub[0].1[0], (0, 9.0));
}
