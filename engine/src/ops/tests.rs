use super::*;
use crate::vector::VectorBuilder;
use hypnos_planner::ops::remove_dropped_name;
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
    assert_eq!(
        got[0].0, r#"{__hypnos_name_dropped__="true", __name__="m", i="a"}"#,
        "rate marks the metric name dropped"
    );
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
    assert_eq!(
        mul[0].0,
        r#"{__hypnos_name_dropped__="true", __name__="m", i="a"}"#
    );
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

#[test]
fn xxh64_matches_reference_vectors() {
    assert_eq!(xxh64(b"", 0), 0xef46db3751d8e999);
    assert_eq!(xxh64(b"a", 0), 0xd24ec4f1a98c6e5b);
    assert_eq!(xxh64(b"abc", 0), 0x44bc2cf5ad770999);
    assert_eq!(
        xxh64(b"0123456789abcdef0123456789abcdef0123456789", 0),
        0xa76190c3acf08a1c
    );
    // Prometheus' label layout: length-prefixed names and values in name order; the
    // tenant label is no part of it.
    let mut l = Labels::from_pairs([("__name__", "http_requests"), ("group", "canary")]);
    assert_eq!(prometheus_labels_hash(&l), 0x9210ff155d481858);
    l.set(hypnos_schemas::tenant::TENANT_LABEL, "t1");
    assert_eq!(prometheus_labels_hash(&l), 0x9210ff155d481858);
}

#[test]
fn stddev_of_non_finite_values_is_nan() {
    let b = batch(&[("a", &[(0, 1.0)]), ("b", &[(0, f64::INFINITY)])]);
    for op in [AggOp::Stddev, AggOp::Stdvar] {
        let all = points(&aggregate(std::slice::from_ref(&b), op, &Grouping::By(vec![])).unwrap());
        assert!(all[0].1[0].1.is_nan(), "{all:?}");
        let by_i = points(
            &aggregate(
                std::slice::from_ref(&b),
                op,
                &Grouping::By(vec!["i".into()]),
            )
            .unwrap(),
        );
        assert_eq!(by_i[0].1[0].1, 0.0);
        assert!(
            by_i[1].1[0].1.is_nan(),
            "a lone Inf has no deviation: {by_i:?}"
        );
    }
}

#[test]
fn per_step_k_and_quantile() {
    let b = batch(&[
        ("a", &[(0, 1.0), (1, 1.0)]),
        ("b", &[(0, 2.0), (1, 2.0)]),
        ("c", &[(0, 3.0), (1, 3.0)]),
    ]);
    let mut p = VectorBuilder::new();
    p.start_series(&Labels::default());
    p.push(0, 1.0);
    p.push(1, 2.0);
    let params = [p.finish()];
    let top = points(
        &aggregate_per_step(
            std::slice::from_ref(&b),
            &params,
            AggOp::Topk(0),
            &Grouping::By(vec![]),
        )
        .unwrap(),
    );
    // k=1 at t=0 keeps c; k=2 at t=1 keeps b and c.
    let kept: Vec<(String, Vec<i64>)> = top
        .iter()
        .map(|(l, pts)| (l.clone(), pts.iter().map(|p| p.0).collect()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (r#"{__name__="m", i="b"}"#.to_string(), vec![1]),
            (r#"{__name__="m", i="c"}"#.to_string(), vec![0, 1]),
        ]
    );
    let limited = points(
        &aggregate_per_step(
            std::slice::from_ref(&b),
            &params,
            AggOp::Limitk(0),
            &Grouping::By(vec![]),
        )
        .unwrap(),
    );
    assert_eq!(
        limited[0].1.len(),
        2,
        "a is first in input order: {limited:?}"
    );
    assert_eq!(limited[1].1, vec![(1, 2.0)]);
    let q = points(
        &aggregate_per_step(
            std::slice::from_ref(&b),
            &params,
            AggOp::Quantile(0),
            &Grouping::By(vec![]),
        )
        .unwrap(),
    );
    assert_eq!(q[0].1, vec![(0, 3.0), (1, f64::INFINITY)]);
    // A NaN k anywhere is an error, as in Prometheus.
    let mut nan = VectorBuilder::new();
    nan.start_series(&Labels::default());
    nan.push(0, 5.0);
    nan.push(1, f64::NAN);
    let err = aggregate_per_step(&[b], &[nan.finish()], AggOp::Topk(0), &Grouping::By(vec![]))
        .unwrap_err();
    assert!(err.to_string().contains("Parameter value is NaN"), "{err}");
}

#[test]
fn limit_ratio_complements() {
    let series: Vec<(String, Vec<(i64, f64)>)> = (0..20)
        .map(|i| (format!("s{i}"), vec![(0, i as f64)]))
        .collect();
    let refs: Vec<(&str, &[(i64, f64)])> = series
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_slice()))
        .collect();
    let b = batch(&refs);
    let run = |r: f64| {
        points(
            &aggregate(
                std::slice::from_ref(&b),
                AggOp::LimitRatio(r.to_bits()),
                &Grouping::By(vec![]),
            )
            .unwrap(),
        )
        .into_iter()
        .map(|s| s.0)
        .collect::<Vec<String>>()
    };
    let (a, c) = (run(0.3), run(-0.7));
    assert_eq!(a.len() + c.len(), 20, "{a:?} {c:?}");
    assert!(a.iter().all(|s| !c.contains(s)));
    assert_eq!(run(1.0).len(), 20);
    assert!(run(0.0).is_empty());
}

#[test]
fn dropped_names_wait_for_the_end() {
    let b = batch(&[("a", &[(0, 1.0)]), ("b", &[(0, 2.0)])]);
    let renamed = Relabel::Replace {
        dst: "__name__".into(),
        replacement: "x_$1".into(),
        src: "__name__".into(),
        regex: "(.*)".into(),
    };
    let neg = scalar_binary(&b, BinOp::Mul, -1.0, false, false).unwrap();
    let kept = points(&relabel(&neg, &renamed).unwrap());
    assert_eq!(
        kept[0].0, r#"{__name__="x_m", i="a"}"#,
        "label_replace reads the name and writing it keeps it"
    );
    // by (__name__) still sees the name; a group with a marked member is marked.
    let mut both = VectorBuilder::new();
    both.start_series(&Labels::from_pairs([("__name__", "m"), ("i", "a")]));
    both.push(0, 1.0);
    both.start_series(&mark_name_dropped(&Labels::from_pairs([
        ("__name__", "m"),
        ("i", "b"),
    ])));
    both.push(0, 2.0);
    let sum = points(
        &aggregate(
            &[both.finish()],
            AggOp::Sum,
            &Grouping::By(vec!["__name__".into()]),
        )
        .unwrap(),
    );
    assert_eq!(sum.len(), 1);
    assert_eq!(
        sum[0].0,
        r#"{__hypnos_name_dropped__="true", __name__="m"}"#
    );
    assert_eq!(sum[0].1, vec![(0, 3.0)]);
    // The end of the evaluation removes name, type and unit of a marked series only.
    let l = Labels::from_pairs([("__name__", "m"), ("__type__", "counter"), ("i", "b")]);
    assert_eq!(remove_dropped_name(&l), l);
    assert_eq!(
        remove_dropped_name(&mark_name_dropped(&l)).to_string(),
        r#"{i="b"}"#
    );
    // A series without a name is not marked.
    let bare = Labels::from_pairs([("i", "b")]);
    assert_eq!(mark_name_dropped(&bare), bare);
}

#[test]
fn info_adds_data_labels_of_matching_info_series() {
    let mut base = VectorBuilder::new();
    base.start_series(&Labels::from_pairs([
        ("__name__", "m"),
        ("instance", "a"),
        ("job", "j"),
    ]));
    base.push(0, 1.0);
    base.push(1, 2.0);
    base.start_series(&Labels::from_pairs([("__name__", "m"), ("instance", "z")]));
    base.push(0, 3.0);
    // The info series' values are the times of their samples: the newer one wins.
    let mut infos = VectorBuilder::new();
    infos.start_series(&Labels::from_pairs([
        ("__name__", "target_info"),
        ("instance", "a"),
        ("job", "j"),
        ("version", "old"),
    ]));
    infos.push(0, 0.0);
    infos.push(1, 0.0);
    infos.start_series(&Labels::from_pairs([
        ("__name__", "target_info"),
        ("instance", "a"),
        ("job", "j"),
        ("version", "new"),
    ]));
    infos.push(1, 1.0);
    let names =
        [
            hypnos_schemas::Matcher::new(hypnos_schemas::MatchOp::Equal, "__name__", "target_info")
                .unwrap(),
        ];
    let out = points(&info_join(&[base.finish()], &[infos.finish()], &names, &[]).unwrap());
    assert_eq!(
        out,
        vec![
            (
                r#"{__name__="m", instance="a", job="j", version="new"}"#.to_string(),
                vec![(1, 2.0)]
            ),
            (
                r#"{__name__="m", instance="a", job="j", version="old"}"#.to_string(),
                vec![(0, 1.0)]
            ),
            (
                r#"{__name__="m", instance="z"}"#.to_string(),
                vec![(0, 3.0)]
            ),
        ]
    );
}

#[test]
fn min_of_and_max_of_follow_go() {
    assert!(BinOp::MinOf.apply(f64::NAN, 1.0).0.is_nan());
    assert!(BinOp::MaxOf.apply(1.0, f64::NAN).0.is_nan());
    assert!(BinOp::MinOf.apply(0.0, -0.0).0.is_sign_negative());
    assert!(BinOp::MaxOf.apply(-0.0, 0.0).0.is_sign_positive());
    assert_eq!(BinOp::MinOf.apply(3.0, 5.0).0, 3.0);
    assert_eq!(BinOp::MaxOf.apply(3.0, 5.0).0, 5.0);
}

#[test]
fn range_functions_annotate_like_prometheus() {
    use annotations::{AnnotationKind, Annotations, QueryPos};
    let pos = Some(QueryPos { line: 1, col: 6 });
    let pts: Vec<(i64, f64)> = (0..=4).map(|i| (i * 15_000, i as f64)).collect();
    // The batch's series are named `m`: not a counter's name.
    let b = batch(&[("a", &pts)]);
    let notes = Annotations::new();
    range_function_annotated(
        &b,
        RangeFunc::Rate,
        Steps::instant(60_000),
        60_000,
        0,
        &notes,
        pos,
    )
    .unwrap();
    assert_eq!(
        notes.texts(AnnotationKind::Info),
        vec![
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"m\" (1:6)"
        ]
    );
    // No info from functions that are not about counters, from a rate without a value, nor
    // without a position (the planner's sign that the argument is not a range selector).
    let notes = Annotations::new();
    range_function_annotated(
        &b,
        RangeFunc::Rate,
        Steps::instant(60_000),
        60_000,
        0,
        &notes,
        None,
    )
    .unwrap();
    for f in [RangeFunc::Irate, RangeFunc::Delta, RangeFunc::SumOverTime] {
        range_function_annotated(&b, f, Steps::instant(60_000), 60_000, 0, &notes, pos).unwrap();
    }
    range_function_annotated(
        &b,
        RangeFunc::Rate,
        Steps::instant(600_000),
        60_000,
        0,
        &notes,
        pos,
    )
    .unwrap();
    assert!(notes.is_empty());
    // quantile_over_time warns about its quantile only where a window has samples.
    let q = RangeFunc::QuantileOverTime(2f64.to_bits());
    range_function_annotated(&b, q, Steps::instant(600_000), 60_000, 0, &notes, pos).unwrap();
    assert!(notes.is_empty());
    range_function_annotated(&b, q, Steps::instant(60_000), 60_000, 0, &notes, pos).unwrap();
    assert_eq!(
        notes.texts(AnnotationKind::Warning),
        vec!["PromQL warning: quantile value should be between 0 and 1, got 2 (1:6)"]
    );
}

#[test]
fn quantile_aggregation_warns_per_distinct_parameter() {
    use annotations::{AnnotationKind, Annotations};
    let b = batch(&[("a", &[(0, 1.0), (1, 2.0)])]);
    let notes = Annotations::new();
    aggregate_positioned(
        std::slice::from_ref(&b),
        AggOp::Quantile(0.5f64.to_bits()),
        &Grouping::By(vec![]),
        &notes,
        AggPositions::default(),
    )
    .unwrap();
    assert!(notes.is_empty());
    let mut params = VectorBuilder::new();
    params.start_series(&Labels::default());
    params.push(0, -1.0);
    params.push(1, f64::NAN);
    aggregate_per_step_positioned(
        &[b],
        &[params.finish()],
        AggOp::Quantile(0),
        &Grouping::By(vec![]),
        &notes,
        AggPositions::default(),
    )
    .unwrap();
    assert_eq!(
        notes.texts(AnnotationKind::Warning),
        vec![
            "PromQL warning: quantile value should be between 0 and 1, got -1",
            "PromQL warning: quantile value should be between 0 and 1, got NaN",
        ]
    );
}
