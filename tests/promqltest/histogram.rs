//! Native histograms in results: compared with an expectation as Prometheus' test framework
//! compares them, and written in the test notation for failure messages.

use hypnos_schemas::histogram::{FloatHistogram, ResetHint, Span};

use crate::almost_equal;
use crate::series::HistogramValue;

/// Whether `got` is the expected histogram: both compacted (no empty buckets), then schema,
/// count, sum, custom bounds (exactly), zero bucket, spans (ignoring empty ones) and bucket
/// counts; counts within the float tolerance. The counter-reset hint is compared only when
/// the expectation wrote it out. `Err` when compacting panicked.
pub(crate) fn matches(expected: &HistogramValue, got: &FloatHistogram) -> Result<bool, String> {
    let (mut e, mut g) = (expected.h.clone(), got.clone());
    crate::panics::catch(|| {
        e.compact(0);
        g.compact(0);
    })?;
    Ok(same(&e, &g, expected.hint_set))
}

/// The comparison of [`matches`] on histograms already compacted.
fn same(e: &FloatHistogram, g: &FloatHistogram, hint_set: bool) -> bool {
    e.schema == g.schema
        && almost_equal(e.count, g.count)
        && almost_equal(e.sum, g.sum)
        && (!e.uses_custom_buckets() || e.custom_values == g.custom_values)
        && e.zero_threshold == g.zero_threshold
        && almost_equal(e.zero_count, g.zero_count)
        && spans_match(&e.negative_spans, &g.negative_spans)
        && buckets_match(&e.negative_buckets, &g.negative_buckets)
        && spans_match(&e.positive_spans, &g.positive_spans)
        && buckets_match(&e.positive_buckets, &g.positive_buckets)
        && (!hint_set || e.counter_reset_hint == g.counter_reset_hint)
}

fn buckets_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| almost_equal(*x, *y))
}

/// Spans describing the same buckets: spans of length 0 only move the next span (their
/// offset adds to its offset), and trailing ones do not count.
fn spans_match(a: &[Span], b: &[Span]) -> bool {
    fn effective(spans: &[Span]) -> Vec<(i32, u32)> {
        let mut out = Vec::new();
        let mut carried = 0;
        for s in spans {
            if s.length == 0 {
                carried += s.offset;
            } else {
                out.push((carried + s.offset, s.length));
                carried = 0;
            }
        }
        out
    }
    effective(a) == effective(b)
}

/// One side of a histogram as a single span: leading and trailing empty buckets dropped,
/// gaps between spans filled with empty buckets.
fn single_span(spans: &[Span], buckets: &[f64]) -> Option<(i32, Vec<f64>)> {
    let mut indexed = Vec::with_capacity(buckets.len());
    let mut index = 0i32;
    let mut counts = buckets.iter();
    for s in spans {
        index += s.offset;
        for _ in 0..s.length {
            indexed.push((index, counts.next().copied().unwrap_or(f64::NAN)));
            index += 1;
        }
    }
    let first = indexed.iter().position(|(_, c)| *c != 0.0)?;
    let last = indexed.iter().rposition(|(_, c)| *c != 0.0)?;
    let start = indexed[first].0;
    let mut out = vec![0.0; (indexed[last].0 - start + 1) as usize];
    for (i, c) in &indexed[first..=last] {
        out[(i - start) as usize] = *c;
    }
    Some((start, out))
}

/// Go's `%g` of a float64, as the test notation writes numbers.
pub(crate) use hypnos_schemas::histogram::go_format_g as go_float;

fn go_floats(v: &[f64]) -> String {
    v.iter().map(|x| go_float(*x)).collect::<Vec<_>>().join(" ")
}

/// The histogram in the test notation (as Prometheus' `TestExpression`): fields at their
/// default left out, each side's buckets as one span.
pub(crate) fn test_expression(h: &FloatHistogram) -> String {
    let mut parts = Vec::new();
    if h.schema != 0 {
        parts.push(format!("schema:{}", h.schema));
    }
    if h.count != 0.0 {
        parts.push(format!("count:{}", go_float(h.count)));
    }
    if h.sum != 0.0 {
        parts.push(format!("sum:{}", go_float(h.sum)));
    }
    if h.zero_count != 0.0 {
        parts.push(format!("z_bucket:{}", go_float(h.zero_count)));
    }
    if h.zero_threshold != 0.0 {
        parts.push(format!("z_bucket_w:{}", go_float(h.zero_threshold)));
    }
    if h.uses_custom_buckets() {
        parts.push(format!("custom_values:[{}]", go_floats(&h.custom_values)));
    }
    match h.counter_reset_hint {
        ResetHint::Unknown => {}
        ResetHint::Reset => parts.push("counter_reset_hint:reset".into()),
        ResetHint::NotReset => parts.push("counter_reset_hint:not_reset".into()),
        ResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
    }
    for (spans, buckets, key, offset_key) in [
        (&h.positive_spans, &h.positive_buckets, "buckets", "offset"),
        (
            &h.negative_spans,
            &h.negative_buckets,
            "n_buckets",
            "n_offset",
        ),
    ] {
        if let Some((offset, counts)) = single_span(spans, buckets) {
            if offset != 0 {
                parts.push(format!("{offset_key}:{offset}"));
            }
            parts.push(format!("{key}:[{}]", go_floats(&counts)));
        }
    }
    format!("{{{{{}}}}}", parts.join(" "))
}

/// Formatting and span matching on hand-worked cases; the notation read back gives the same
/// histogram.
pub(crate) fn self_check() {
    for (v, want) in [
        (1.0, "1"),
        (-2.5, "-2.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001234, "1.234e-05"),
        (1e21, "1e+21"),
        (0.1, "0.1"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(go_float(v), want, "{v}");
    }
    let span = |offset, length| Span { offset, length };
    assert!(spans_match(&[span(1, 2)], &[span(0, 0), span(1, 2)]));
    assert!(spans_match(&[span(1, 2)], &[span(1, 2), span(3, 0)]));
    assert!(spans_match(
        &[span(0, 0), span(1, 0), span(2, 1)],
        &[span(3, 1)]
    ));
    assert!(spans_match(&[], &[span(4, 0)]));
    assert!(!spans_match(&[span(1, 2)], &[span(2, 2)]));
    assert!(!spans_match(&[span(1, 2)], &[span(1, 1), span(0, 1)]));

    let h = FloatHistogram {
        counter_reset_hint: ResetHint::NotReset,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 2.0,
        count: 12.0,
        sum: -3.25,
        positive_spans: vec![span(-1, 2), span(2, 1), span(0, 1)],
        positive_buckets: vec![0.0, 4.0, 5.0, 1.0],
        negative_spans: vec![],
        negative_buckets: vec![],
        custom_values: vec![],
    };
    let text = test_expression(&h);
    assert_eq!(
        text,
        "{{schema:1 count:12 sum:-3.25 z_bucket:2 z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[4 0 0 5 1]}}"
    );
    let back = crate::series::parse_values(&text).expect("test notation reads back");
    let Some(Some(crate::series::Value::Histogram(back))) = back.first() else {
        panic!("not a histogram: {back:?}");
    };
    assert_eq!(back.h.positive_buckets, vec![4.0, 0.0, 0.0, 5.0, 1.0]);
    assert_eq!(back.h.positive_spans, vec![span(0, 5)]);
    let nhcb = FloatHistogram {
        schema: -53,
        custom_values: vec![1.0, 2.5],
        positive_spans: vec![span(1, 1)],
        positive_buckets: vec![3.0],
        count: 3.0,
        ..FloatHistogram::default()
    };
    assert_eq!(
        test_expression(&nhcb),
        "{{schema:-53 count:3 custom_values:[1 2.5] offset:1 buckets:[3]}}"
    );
    assert_eq!(test_expression(&FloatHistogram::default()), "{{}}");

    // The comparison itself, on compacted histograms.
    let e = FloatHistogram {
        schema: 0,
        count: 4.0,
        sum: 5.0,
        positive_spans: vec![span(0, 1), span(1, 1)],
        positive_buckets: vec![1.0, 3.0],
        ..FloatHistogram::default()
    };
    let mut g = e.clone();
    g.sum = 5.000_000_1;
    assert!(same(&e, &g, false));
    g.positive_buckets[1] = 3.1;
    assert!(!same(&e, &g, false));
    let mut g = e.clone();
    g.counter_reset_hint = ResetHint::Reset;
    assert!(same(&e, &g, false));
    assert!(!same(&e, &g, true));
    let mut g = e.clone();
    g.schema = 1;
    assert!(!same(&e, &g, false));
    let (mut ce, mut cg) = (nhcb.clone(), nhcb.clone());
    cg.custom_values = vec![1.0, 2.6];
    assert!(!same(&ce, &cg, false));
    ce.schema = 0;
    cg.schema = 0;
    assert!(
        same(&ce, &cg, false),
        "custom bounds count only with custom buckets"
    );
}
