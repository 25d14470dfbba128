use super::*;
use crate::vector::VectorBuilder;

type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);
/// Output series as (labels as text, points).
type Points = Vec<(String, Vec<(i64, f64)>)>;

fn batch(series: &[Series<'_>]) -> Vec<RecordBatch> {
    let mut b = VectorBuilder::new();
    for (labels, pts) in series {
        b.start_series(&Labels::from_pairs(labels.iter().copied()));
        for (t, v) in *pts {
            b.push(*t, *v);
        }
    }
    vec![b.finish()]
}

fn points(b: &RecordBatch) -> Points {
    crate::vector::batch_points(b)
}

fn run(
    lhs: &[Series<'_>],
    rhs: &[Series<'_>],
    op: VectorOp,
    m: &VectorMatching,
    return_bool: bool,
) -> Result<Points> {
    vector_binary(&batch(lhs), &batch(rhs), op, m, return_bool).map(|b| points(&b))
}

fn err(r: Result<Points>) -> String {
    match r {
        Err(DataFusionError::External(e)) => e
            .downcast::<EvalError>()
            .expect("an evaluation error")
            .0
            .clone(),
        other => panic!("expected an evaluation error, got {other:?}"),
    }
}

fn on(labels: &[&str], card: Cardinality, include: &[&str]) -> VectorMatching {
    VectorMatching {
        on: true,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        include: include.iter().map(|s| s.to_string()).collect(),
        ..VectorMatching::new(card)
    }
}

fn ignoring(labels: &[&str], card: Cardinality, include: &[&str]) -> VectorMatching {
    VectorMatching {
        on: false,
        ..on(labels, card, include)
    }
}

fn s(pairs: &[(&str, &str)]) -> String {
    Labels::from_pairs(pairs.iter().copied()).to_string()
}

const ADD: VectorOp = VectorOp::Binary(BinOp::Add);
const DIV: VectorOp = VectorOp::Binary(BinOp::Div);
const GT: VectorOp = VectorOp::Binary(BinOp::Gt);

#[test]
fn one_to_one_arithmetic_drops_the_name_and_matches_per_step() {
    let a: &[Series] = &[
        (&[("__name__", "a"), ("i", "1")], &[(0, 1.0), (10, 2.0)]),
        (&[("__name__", "a"), ("i", "2")], &[(0, 5.0)]),
    ];
    let b: &[Series] = &[
        (&[("__name__", "b"), ("i", "1")], &[(10, 20.0), (20, 30.0)]),
        (&[("__name__", "b"), ("i", "2")], &[(0, 50.0)]),
    ];
    let got = run(
        a,
        b,
        ADD,
        &VectorMatching::new(Cardinality::OneToOne),
        false,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            (s(&[("i", "1")]), vec![(10, 22.0)]),
            (s(&[("i", "2")]), vec![(0, 55.0)]),
        ]
    );
}

#[test]
fn comparisons_filter_and_keep_the_left_labels_unless_bool() {
    let a: &[Series] = &[(&[("__name__", "a"), ("i", "1")], &[(0, 1.0), (10, 5.0)])];
    let b: &[Series] = &[(&[("__name__", "b"), ("i", "1")], &[(0, 2.0), (10, 2.0)])];
    let m = VectorMatching::new(Cardinality::OneToOne);
    assert_eq!(
        run(a, b, GT, &m, false).unwrap(),
        vec![(s(&[("__name__", "a"), ("i", "1")]), vec![(10, 5.0)])]
    );
    assert_eq!(
        run(a, b, GT, &m, true).unwrap(),
        vec![(s(&[("i", "1")]), vec![(0, 0.0), (10, 1.0)])]
    );
}

#[test]
fn on_keeps_only_the_on_labels_and_ignoring_drops_the_ignored() {
    let a: &[Series] = &[(&[("g", "c"), ("i", "0"), ("j", "x")], &[(0, 6.0)])];
    let b: &[Series] = &[(&[("g", "p"), ("i", "0"), ("j", "x")], &[(0, 2.0)])];
    let got = run(
        a,
        b,
        DIV,
        &on(&["i", "j"], Cardinality::OneToOne, &[]),
        false,
    )
    .unwrap();
    assert_eq!(got, vec![(s(&[("i", "0"), ("j", "x")]), vec![(0, 3.0)])]);
    let got = run(
        a,
        b,
        DIV,
        &ignoring(&["g"], Cardinality::OneToOne, &[]),
        false,
    )
    .unwrap();
    assert_eq!(got, vec![(s(&[("i", "0"), ("j", "x")]), vec![(0, 3.0)])]);
    // Without the modifier, `g` differs: no match.
    let got = run(
        a,
        b,
        DIV,
        &VectorMatching::new(Cardinality::OneToOne),
        false,
    )
    .unwrap();
    assert!(got.is_empty());
}

#[test]
fn the_tenant_label_never_changes_a_match() {
    // An aggregation lost the tenant label on the left; the right still has it. The result
    // carries the tenant label of whichever side has it.
    let a: &[Series] = &[(&[("j", "x")], &[(0, 6.0)])];
    let b: &[Series] = &[(&[("j", "x"), ("tenant_id", "t")], &[(0, 2.0)])];
    let got = run(
        a,
        b,
        DIV,
        &VectorMatching::new(Cardinality::OneToOne),
        false,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![(s(&[("j", "x"), ("tenant_id", "t")]), vec![(0, 3.0)])]
    );
    // `on` results keep it too, so a matched result and a filled one are the same series.
    let a: &[Series] = &[(&[("k", "a"), ("tenant_id", "t")], &[(0, 1.0), (20, 3.0)])];
    let b: &[Series] = &[(&[("k", "a"), ("tenant_id", "t")], &[(0, 10.0), (10, 20.0)])];
    let m = VectorMatching {
        fill_lhs_bits: Some(0f64.to_bits()),
        ..on(&["k"], Cardinality::ManyToOne, &[])
    };
    let got = run(a, b, ADD, &m, false).unwrap();
    assert_eq!(
        got,
        vec![(
            s(&[("k", "a"), ("tenant_id", "t")]),
            vec![(0, 11.0), (10, 20.0)]
        )]
    );
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let many: &[Series] = &[
        (
            &[("__name__", "cpu"), ("i", "a"), ("mode", "idle")],
            &[(0, 3.0)],
        ),
        (
            &[("__name__", "cpu"), ("i", "a"), ("mode", "user")],
            &[(0, 1.0)],
        ),
        (
            &[("__name__", "cpu"), ("i", "b"), ("mode", "idle")],
            &[(0, 8.0)],
        ),
    ];
    let one: &[Series] = &[(
        &[("__name__", "role"), ("i", "a"), ("role", "p")],
        &[(0, 2.0)],
    )];
    let got = run(
        many,
        one,
        VectorOp::Binary(BinOp::Mul),
        &on(&["i"], Cardinality::ManyToOne, &["role"]),
        false,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            (
                s(&[("i", "a"), ("mode", "idle"), ("role", "p")]),
                vec![(0, 6.0)]
            ),
            (
                s(&[("i", "a"), ("mode", "user"), ("role", "p")]),
                vec![(0, 2.0)]
            ),
        ]
    );
    // group_right: the same with the sides swapped; the values keep their operand order.
    let got = run(
        one,
        many,
        VectorOp::Binary(BinOp::Sub),
        &on(&["i"], Cardinality::OneToMany, &["role"]),
        false,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            (
                s(&[("i", "a"), ("mode", "idle"), ("role", "p")]),
                vec![(0, -1.0)]
            ),
            (
                s(&[("i", "a"), ("mode", "user"), ("role", "p")]),
                vec![(0, 1.0)]
            ),
        ]
    );
}

#[test]
fn group_left_comparison_keeps_the_many_side_name() {
    let many: &[Series] = &[(&[("__name__", "cpu"), ("i", "a")], &[(0, 3.0)])];
    let one: &[Series] = &[(
        &[("__name__", "t"), ("i", "a"), ("target", "x")],
        &[(0, 1.0)],
    )];
    let got = run(
        many,
        one,
        GT,
        &on(&["i"], Cardinality::ManyToOne, &["target"]),
        false,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![(
            s(&[("__name__", "cpu"), ("i", "a"), ("target", "x")]),
            vec![(0, 3.0)]
        )]
    );
}

#[test]
fn set_operators() {
    let a: &[Series] = &[
        (&[("__name__", "a"), ("i", "0")], &[(0, 1.0), (10, 1.0)]),
        (&[("__name__", "a"), ("i", "1")], &[(0, 2.0)]),
    ];
    let b: &[Series] = &[
        (&[("__name__", "b"), ("i", "0")], &[(0, 10.0)]),
        (&[("__name__", "b"), ("i", "2")], &[(0, 30.0), (10, 30.0)]),
    ];
    let m = on(&["i"], Cardinality::ManyToMany, &[]);
    let a0 = s(&[("__name__", "a"), ("i", "0")]);
    let a1 = s(&[("__name__", "a"), ("i", "1")]);
    let b2 = s(&[("__name__", "b"), ("i", "2")]);
    assert_eq!(
        run(a, b, VectorOp::And, &m, false).unwrap(),
        vec![(a0.clone(), vec![(0, 1.0)])]
    );
    assert_eq!(
        run(a, b, VectorOp::Or, &m, false).unwrap(),
        vec![
            (a0.clone(), vec![(0, 1.0), (10, 1.0)]),
            (a1.clone(), vec![(0, 2.0)]),
            (b2, vec![(0, 30.0), (10, 30.0)]),
        ]
    );
    assert_eq!(
        run(a, b, VectorOp::Unless, &m, false).unwrap(),
        vec![(a0, vec![(10, 1.0)]), (a1, vec![(0, 2.0)])]
    );
    // `on()`: everything matches everything.
    let all = on(&[], Cardinality::ManyToMany, &[]);
    assert_eq!(run(a, b, VectorOp::Unless, &all, false).unwrap(), vec![]);
}

#[test]
fn duplicate_series_on_the_one_side_is_an_error() {
    let one: &[Series] = &[(&[("__name__", "s")], &[(0, 3.0)])];
    let dups: &[Series] = &[
        (
            &[("__name__", "dup"), ("l", "beta"), ("tenant_id", "t")],
            &[(0, 2.0)],
        ),
        (
            &[("__name__", "dup"), ("l", "alpha"), ("tenant_id", "t")],
            &[(0, 1.0)],
        ),
    ];
    let m = on(&[], Cardinality::OneToOne, &[]);
    assert_eq!(
        err(run(one, dups, GT, &m, false)),
        "found duplicate series for the match group {} on the right hand-side of the operation: \
         [{__name__=\"dup\", l=\"alpha\"}, {__name__=\"dup\", l=\"beta\"}];\
         many-to-many matching not allowed: matching labels must be unique on one side"
    );
    let m = ignoring(&["l"], Cardinality::OneToMany, &[]);
    assert_eq!(
        err(run(dups, one, GT, &m, false)),
        "found duplicate series for the match group {} on the left hand-side of the operation: \
         [{__name__=\"dup\", l=\"alpha\"}, {__name__=\"dup\", l=\"beta\"}];\
         many-to-many matching not allowed: matching labels must be unique on one side"
    );
}

#[test]
fn many_to_one_without_grouping_is_an_error_even_when_filtered() {
    let many: &[Series] = &[
        (&[("__name__", "m"), ("job", "t"), ("l", "a")], &[(0, 0.0)]),
        (&[("__name__", "m"), ("job", "t"), ("l", "b")], &[(0, 1.0)]),
    ];
    let one: &[Series] = &[(&[("__name__", "o"), ("job", "t")], &[(0, 5.0)])];
    assert_eq!(
        err(run(
            many,
            one,
            GT,
            &on(&["job"], Cardinality::OneToOne, &[]),
            false
        )),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
}

#[test]
fn group_left_with_colliding_results_is_an_error() {
    let many: &[Series] = &[
        (&[("__name__", "m"), ("job", "t"), ("l", "a")], &[(0, 0.0)]),
        (&[("__name__", "m"), ("job", "t"), ("l", "b")], &[(0, 1.0)]),
    ];
    let one: &[Series] = &[(&[("__name__", "o"), ("job", "t")], &[(0, 5.0)])];
    // `on(job) group_left` keeps `l`: fine.
    assert!(
        run(
            many,
            one,
            ADD,
            &on(&["job"], Cardinality::ManyToOne, &[]),
            false
        )
        .is_ok()
    );
    // Copying `l` from the one side, which has none, removes it: both results are {job="t"}.
    let m = on(&["job"], Cardinality::ManyToOne, &["l"]);
    assert_eq!(
        err(run(many, one, ADD, &m, false)),
        "multiple matches for labels: grouping labels must ensure unique matches"
    );
}

#[test]
fn fill_values_stand_in_for_missing_matches() {
    let a: &[Series] = &[
        (&[("__name__", "l"), ("k", "a")], &[(0, 10.0)]),
        (&[("__name__", "l"), ("k", "c")], &[(0, 30.0)]),
    ];
    let b: &[Series] = &[
        (&[("__name__", "r"), ("k", "a")], &[(0, 100.0)]),
        (&[("__name__", "r"), ("k", "d")], &[(0, 400.0)]),
    ];
    let m = VectorMatching {
        fill_lhs_bits: Some(5f64.to_bits()),
        fill_rhs_bits: Some(7f64.to_bits()),
        ..VectorMatching::new(Cardinality::OneToOne)
    };
    assert_eq!(
        run(a, b, ADD, &m, false).unwrap(),
        vec![
            (s(&[("k", "a")]), vec![(0, 110.0)]),
            (s(&[("k", "c")]), vec![(0, 37.0)]),
            (s(&[("k", "d")]), vec![(0, 405.0)]),
        ]
    );
}

#[test]
fn same_labelset_twice_in_the_output_is_an_error() {
    // `or` where both sides hold {} at different signatures cannot happen, but an input that
    // repeats a label set at one timestamp is refused.
    let a: &[Series] = &[(&[("k", "a")], &[(0, 1.0)]), (&[("k", "a")], &[(0, 2.0)])];
    let b: &[Series] = &[(&[("k", "a")], &[(0, 1.0)])];
    assert_eq!(
        err(run(
            a,
            b,
            VectorOp::Or,
            &VectorMatching::new(Cardinality::ManyToMany),
            false
        )),
        "vector cannot contain metrics with the same labelset"
    );
}

// Native histograms.

use super::annotations::AnnotationKind;
use hypnos_schemas::histogram::{FloatHistogram, Span};

/// A histogram with `count` observations of value 1 (one positive bucket).
fn h(count: f64) -> FloatHistogram {
    FloatHistogram {
        count,
        sum: count,
        positive_spans: vec![Span {
            offset: 0,
            length: 1,
        }],
        positive_buckets: vec![count],
        ..Default::default()
    }
}

/// A histogram with custom bucket bounds.
fn nhcb(count: f64) -> FloatHistogram {
    FloatHistogram {
        schema: hypnos_schemas::histogram::CUSTOM_BUCKETS_SCHEMA,
        custom_values: vec![1.0],
        ..h(count)
    }
}

enum V {
    F(f64),
    H(FloatHistogram),
}

type HSeries<'a> = (&'a [(&'a str, &'a str)], Vec<(i64, V)>);

fn hbatch(series: &[HSeries<'_>]) -> Vec<RecordBatch> {
    let mut b = VectorBuilder::new();
    for (labels, pts) in series {
        b.start_series(&Labels::from_pairs(labels.iter().copied()));
        for (t, v) in pts {
            match v {
                V::F(f) => b.push(*t, *f),
                V::H(h) => b.push_histogram(*t, h),
            }
        }
    }
    vec![b.finish()]
}

/// Output series as (labels as text, points), a histogram point shown as its count,
/// negated, with its reset hint, so that floats and histograms are told apart.
type HPoints = Vec<(String, Vec<(i64, f64, Option<ResetHint>)>)>;

fn hpoints(b: &RecordBatch) -> HPoints {
    series_rows(b)
        .unwrap()
        .into_iter()
        .map(|s| {
            let pts = (0..s.ts.len())
                .map(|i| match s.histogram(i).unwrap() {
                    Some(h) => (s.ts[i], -h.count, Some(h.counter_reset_hint)),
                    None => (s.ts[i], s.values[i], None),
                })
                .collect();
            (s.labels.to_string(), pts)
        })
        .collect()
}

fn hrun(
    lhs: &[HSeries<'_>],
    rhs: &[HSeries<'_>],
    op: VectorOp,
    return_bool: bool,
    notes: &Annotations,
) -> HPoints {
    let out = vector_binary_annotated(
        &hbatch(lhs),
        &hbatch(rhs),
        op,
        &VectorMatching::new(if op.is_set_operator() {
            Cardinality::ManyToMany
        } else {
            Cardinality::OneToOne
        }),
        return_bool,
        notes,
        Some(QueryPos { line: 1, col: 1 }),
    )
    .unwrap();
    hpoints(&out)
}

#[test]
fn histograms_add_and_subtract() {
    let a = [(
        &[("__name__", "a"), ("i", "1")][..],
        vec![(0, V::H(h(3.0)))],
    )];
    let b = [(
        &[("__name__", "b"), ("i", "1")][..],
        vec![(0, V::H(h(1.0)))],
    )];
    let notes = Annotations::new();
    assert_eq!(
        hrun(&a, &b, ADD, false, &notes),
        vec![(s(&[("i", "1")]), vec![(0, -4.0, Some(ResetHint::Unknown))])]
    );
    // A difference is a gauge.
    assert_eq!(
        hrun(&a, &b, VectorOp::Binary(BinOp::Sub), false, &notes),
        vec![(s(&[("i", "1")]), vec![(0, -2.0, Some(ResetHint::Gauge))])]
    );
    assert!(notes.is_empty());
}

#[test]
fn histograms_compare_only_for_equality() {
    let a = [(
        &[("__name__", "a")][..],
        vec![(0, V::H(h(3.0))), (10, V::H(h(2.0)))],
    )];
    let b = [(
        &[("__name__", "a")][..],
        vec![(0, V::H(h(3.0))), (10, V::H(h(1.0)))],
    )];
    let notes = Annotations::new();
    let eq = VectorOp::Binary(BinOp::Eq);
    // A filter keeps the left histogram and the name.
    assert_eq!(
        hrun(&a, &b, eq, false, &notes),
        vec![(
            s(&[("__name__", "a")]),
            vec![(0, -3.0, Some(ResetHint::Unknown))]
        )]
    );
    assert_eq!(
        hrun(&a, &b, VectorOp::Binary(BinOp::Ne), true, &notes),
        vec![(s(&[]), vec![(0, 0.0, None), (10, 1.0, None)])]
    );
    assert!(notes.is_empty());
    // `>` between histograms: dropped, with an info at the expression.
    assert!(hrun(&a, &b, GT, true, &notes).is_empty());
    assert_eq!(
        notes.texts(AnnotationKind::Info),
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \">\": histogram > histogram (1:1)"
        ]
    );
}

#[test]
fn histograms_scale_by_floats_and_refuse_the_rest() {
    let hs = [(&[("i", "1")][..], vec![(0, V::H(h(3.0)))])];
    let fs = [(&[("i", "1")][..], vec![(0, V::F(2.0))])];
    let notes = Annotations::new();
    let mul = VectorOp::Binary(BinOp::Mul);
    assert_eq!(
        hrun(&hs, &fs, mul, false, &notes),
        vec![(s(&[("i", "1")]), vec![(0, -6.0, Some(ResetHint::Unknown))])]
    );
    assert_eq!(
        hrun(&fs, &hs, mul, false, &notes),
        vec![(s(&[("i", "1")]), vec![(0, -6.0, Some(ResetHint::Unknown))])]
    );
    assert_eq!(
        hrun(&hs, &fs, DIV, false, &notes),
        vec![(s(&[("i", "1")]), vec![(0, -1.5, Some(ResetHint::Unknown))])]
    );
    assert!(notes.is_empty());
    assert!(hrun(&fs, &hs, DIV, false, &notes).is_empty());
    assert!(hrun(&hs, &fs, ADD, false, &notes).is_empty());
    assert_eq!(
        notes.texts(AnnotationKind::Info),
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \"+\": histogram + float (1:1)",
            "PromQL info: incompatible sample types encountered for binary operator \"/\": float / histogram (1:1)",
        ]
    );
}

#[test]
fn one_annotation_per_step_the_last_one() {
    // Two incompatible pairs at one step: only the last (in label order) is reported.
    let l = [
        (&[("i", "1")][..], vec![(0, V::H(h(1.0)))]),
        (&[("i", "2")][..], vec![(0, V::F(1.0))]),
    ];
    let r = [
        (&[("i", "1")][..], vec![(0, V::F(1.0))]),
        (&[("i", "2")][..], vec![(0, V::H(h(1.0)))]),
    ];
    let notes = Annotations::new();
    assert!(hrun(&l, &r, ADD, false, &notes).is_empty());
    assert_eq!(
        notes.texts(AnnotationKind::Info),
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \"+\": float + histogram (1:1)"
        ]
    );
}

#[test]
fn mixed_bucket_layouts_warn_and_drop() {
    let a = [(&[("i", "1")][..], vec![(0, V::H(h(1.0)))])];
    let b = [(&[("i", "1")][..], vec![(0, V::H(nhcb(1.0)))])];
    let notes = Annotations::new();
    assert!(hrun(&a, &b, ADD, false, &notes).is_empty());
    assert_eq!(
        notes.texts(AnnotationKind::Warning),
        vec!["PromQL warning: incompatible bucket layout encountered for binary operator + (1:1)"]
    );
}

#[test]
fn set_operators_pass_histograms_through() {
    let a = [(&[("i", "1")][..], vec![(0, V::H(h(3.0)))])];
    let b = [(&[("i", "2")][..], vec![(0, V::H(h(1.0)))])];
    let notes = Annotations::new();
    assert_eq!(
        hrun(&a, &b, VectorOp::Or, false, &notes),
        vec![
            (s(&[("i", "1")]), vec![(0, -3.0, Some(ResetHint::Unknown))]),
            (s(&[("i", "2")]), vec![(0, -1.0, Some(ResetHint::Unknown))]),
        ]
    );
    assert_eq!(
        hrun(&a, &b, VectorOp::Unless, false, &notes),
        vec![(s(&[("i", "1")]), vec![(0, -3.0, Some(ResetHint::Unknown))])]
    );
}

#[test]
fn scalar_operations_on_histograms() {
    let input = &hbatch(&[(
        &[("__name__", "m")][..],
        vec![(0, V::F(4.0)), (10, V::H(h(3.0)))],
    )])[0];
    let notes = Annotations::new();
    let pos = Some(QueryPos { line: 1, col: 1 });
    let run = |op, on_left, b| {
        hpoints(&scalar_binary_annotated(input, op, 2.0, on_left, b, &notes, pos).unwrap())
    };
    let dropped = "{__hypnos_name_dropped__=\"true\", __name__=\"m\"}".to_string();
    assert_eq!(
        run(BinOp::Mul, true, false),
        vec![(
            dropped.clone(),
            vec![(0, 8.0, None), (10, -6.0, Some(ResetHint::Unknown))]
        )]
    );
    assert_eq!(
        run(BinOp::Div, false, false),
        vec![(
            dropped.clone(),
            vec![(0, 2.0, None), (10, -1.5, Some(ResetHint::Unknown))]
        )]
    );
    assert!(notes.is_empty());
    // 2 / histogram, histogram - 2, histogram > bool 2: the histogram is dropped.
    assert_eq!(
        run(BinOp::Div, true, false),
        vec![(dropped.clone(), vec![(0, 0.5, None)])]
    );
    assert_eq!(
        run(BinOp::Sub, false, false),
        vec![(dropped.clone(), vec![(0, 2.0, None)])]
    );
    assert_eq!(
        run(BinOp::Gt, false, true),
        vec![(dropped, vec![(0, 1.0, None)])]
    );
    assert_eq!(
        notes.texts(AnnotationKind::Info),
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \"-\": histogram - float (1:1)",
            "PromQL info: incompatible sample types encountered for binary operator \"/\": float / histogram (1:1)",
            "PromQL info: incompatible sample types encountered for binary operator \">\": histogram > float (1:1)",
        ]
    );
}
