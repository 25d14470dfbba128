//! Native histogram samples of remote write: Prometheus' checks (`Histogram.Validate` for
//! integer histograms, `FloatHistogram.Validate` for float ones) and the conversion to
//! [`FloatHistogram`].
//!
//! Integer histograms are checked on their integer counts, so a count mismatch is found
//! exactly even where the float conversion would round. Exponential schemas finer than the
//! finest Prometheus stores (9..=52) are reduced to it, as Prometheus' remote-write
//! receiver does; other schemas are refused.

use hypnos_schemas::histogram::{
    CUSTOM_BUCKETS_SCHEMA, FloatHistogram, MAX_EXPONENTIAL_SCHEMA, MIN_EXPONENTIAL_SCHEMA, Span,
};
use hypnos_schemas::remote::{self, histogram as pb};

/// The finest exponential schema a sender may use; finer ones are reduced to
/// [`MAX_EXPONENTIAL_SCHEMA`].
const MAX_REDUCIBLE_SCHEMA: i32 = 52;

/// One histogram sample in its stored form ([`FloatHistogram::encode`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HistogramSample {
    pub(crate) timestamp: i64,
    pub(crate) encoded: Vec<u8>,
}

/// Checks `h` and converts it; the error says what is wrong, in Prometheus' words.
pub(super) fn validate_histogram(h: &remote::Histogram) -> Result<FloatHistogram, String> {
    let mut f = FloatHistogram::from_remote(h).map_err(|e| e.to_string())?;
    let is_int = !matches!(h.count, Some(pb::Count::CountFloat(_)))
        && h.positive_counts.is_empty()
        && h.negative_counts.is_empty();
    let reduce = f.schema > MAX_EXPONENTIAL_SCHEMA && f.schema <= MAX_REDUCIBLE_SCHEMA;
    // The buckets of the positive and negative side, as absolute counts (integer histograms
    // summed exactly, in Prometheus' wrapping integer arithmetic).
    let (mut observed_int, mut zero_int) = (0u64, 0u64);
    if f.uses_custom_buckets() {
        check_custom_bounds(
            &f.custom_values,
            &f.positive_spans,
            f.positive_buckets.len(),
        )
        .map_err(|e| format!("custom buckets: {e}"))?;
        if f.zero_count != 0.0 {
            return Err("custom buckets: must have zero count of 0".into());
        }
        if f.zero_threshold != 0.0 {
            return Err("custom buckets: must have zero threshold of 0".into());
        }
        if !f.negative_spans.is_empty() {
            return Err("custom buckets: must not have negative spans".into());
        }
        if !f.negative_buckets.is_empty() {
            return Err("custom buckets: must not have negative buckets".into());
        }
    } else if (MIN_EXPONENTIAL_SCHEMA..=MAX_EXPONENTIAL_SCHEMA).contains(&f.schema) || reduce {
        check_spans(&f.positive_spans, f.positive_buckets.len())
            .map_err(|e| format!("positive side: {e}"))?;
        check_spans(&f.negative_spans, f.negative_buckets.len())
            .map_err(|e| format!("negative side: {e}"))?;
        if is_int {
            observed_int =
                check_int_buckets(&h.negative_deltas).map_err(|e| format!("negative side: {e}"))?;
        } else {
            check_float_buckets(&f.negative_buckets).map_err(|e| format!("negative side: {e}"))?;
            if f.zero_count < 0.0 {
                return Err(format!(
                    "zero bucket has observation count of {}: histogram has a bucket whose \
                     observation count is negative",
                    f.zero_count
                ));
            }
        }
        if !f.custom_values.is_empty() {
            return Err("histogram with exponential schema must not have custom bounds".into());
        }
    } else {
        return Err(format!(
            "histogram has an invalid schema, which must be between {MIN_EXPONENTIAL_SCHEMA} \
             and {MAX_EXPONENTIAL_SCHEMA} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} \
             for custom buckets, got schema {}",
            f.schema
        ));
    }
    if is_int {
        observed_int = observed_int.wrapping_add(
            check_int_buckets(&h.positive_deltas).map_err(|e| format!("positive side: {e}"))?,
        );
        if let Some(pb::ZeroCount::ZeroCountInt(z)) = h.zero_count {
            zero_int = z;
        }
        let count = match h.count {
            Some(pb::Count::CountInt(c)) => c,
            _ => 0,
        };
        let in_buckets = observed_int.wrapping_add(zero_int);
        if f.sum.is_nan() {
            if in_buckets > count {
                return Err(format!(
                    "{in_buckets} observations found in buckets, but the Count field is \
                     {count}: histogram's observation count should be at least the number of \
                     observations found in the buckets"
                ));
            }
        } else if in_buckets != count {
            return Err(format!(
                "{in_buckets} observations found in buckets, but the Count field is {count}: \
                 histogram's observation count should equal the number of observations found \
                 in the buckets (in absence of NaN)"
            ));
        }
    } else {
        if f.count < 0.0 {
            return Err(format!(
                "observation count is {}: histogram's observation count is negative",
                f.count
            ));
        }
        check_float_buckets(&f.positive_buckets).map_err(|e| format!("positive side: {e}"))?;
    }
    if reduce {
        f.reduce_resolution(MAX_EXPONENTIAL_SCHEMA);
    }
    Ok(f)
}

/// Largest magnitude of an exponential bucket index. At the finest schema (8) bucket
/// 262,144 already ends beyond the largest float; the margin keeps every index computation
/// of the query engine far from overflowing.
const MAX_BUCKET_INDEX: i64 = 1 << 24;

/// The spans cover exactly `num_buckets` buckets; only the first may have a negative offset;
/// every bucket index stays within [`MAX_BUCKET_INDEX`].
fn check_spans(spans: &[Span], num_buckets: usize) -> Result<(), String> {
    let mut covered = 0u64;
    // The index after the last bucket of the spans so far.
    let mut next_index = 0i64;
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(negative_offset(n, span));
        }
        covered += u64::from(span.length);
        next_index += i64::from(span.offset);
        let first = next_index;
        next_index += i64::from(span.length);
        if span.length > 0 && (first.abs() > MAX_BUCKET_INDEX || next_index - 1 > MAX_BUCKET_INDEX)
        {
            return Err(format!(
                "span number {} reaches bucket index {}: bucket indexes must be within \
                 +-{MAX_BUCKET_INDEX}",
                n + 1,
                if first.abs() > MAX_BUCKET_INDEX {
                    first
                } else {
                    next_index - 1
                }
            ));
        }
    }
    check_covered(covered, num_buckets)
}

fn negative_offset(n: usize, span: &Span) -> String {
    format!(
        "span number {} with offset {}: histogram has a span whose offset is negative",
        n + 1,
        span.offset
    )
}

fn check_covered(covered: u64, num_buckets: usize) -> Result<(), String> {
    if covered != num_buckets as u64 {
        return Err(format!(
            "spans need {covered} buckets, have {num_buckets} buckets: histogram spans specify \
             different number of buckets than provided"
        ));
    }
    Ok(())
}

/// Custom bounds: no NaN, strictly increasing, not ending at +Inf (it is implied), enough
/// of them for the buckets the spans (all with non-negative offsets) reach.
fn check_custom_bounds(bounds: &[f64], spans: &[Span], num_buckets: usize) -> Result<(), String> {
    let mut prev = f64::NEG_INFINITY;
    for (i, &b) in bounds.iter().enumerate() {
        if b.is_nan() {
            return Err("histogram custom bounds must not be NaN".into());
        }
        if i > 0 && b <= prev {
            return Err(format!(
                "previous bound is {prev} and current is {b}: histogram custom bounds must be \
                 in strictly increasing order"
            ));
        }
        prev = b;
    }
    if prev == f64::INFINITY {
        return Err(
            "last +Inf bound must not be explicitly defined: histogram custom bounds must be \
             finite"
                .into(),
        );
    }
    let (mut covered, mut reach) = (0u64, 0i64);
    for (n, span) in spans.iter().enumerate() {
        if span.offset < 0 {
            return Err(negative_offset(n, span));
        }
        covered += u64::from(span.length);
        reach += i64::from(span.length) + i64::from(span.offset);
    }
    check_covered(covered, num_buckets)?;
    if (bounds.len() as i64) + 1 < reach {
        return Err(format!(
            "only {} custom bounds defined which is insufficient to cover total span length of \
             {reach}: histogram custom bounds are too few",
            bounds.len()
        ));
    }
    Ok(())
}

/// Integer bucket deltas: no bucket count below zero; returns the buckets' total.
fn check_int_buckets(deltas: &[i64]) -> Result<u64, String> {
    let (mut count, mut total) = (0i64, 0u64);
    for (i, d) in deltas.iter().enumerate() {
        count = count.wrapping_add(*d);
        if count < 0 {
            return Err(negative_bucket(i, count));
        }
        total = total.wrapping_add(count as u64);
    }
    Ok(total)
}

/// Float bucket counts: none below zero (NaN passes, as in Prometheus).
fn check_float_buckets(counts: &[f64]) -> Result<(), String> {
    match counts.iter().position(|c| *c < 0.0) {
        Some(i) => Err(negative_bucket(i, counts[i])),
        None => Ok(()),
    }
}

fn negative_bucket(i: usize, count: impl std::fmt::Display) -> String {
    format!(
        "bucket number {} has observation count of {count}: histogram has a bucket whose \
         observation count is negative",
        i + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_schemas::STALE_NAN_BITS;
    use hypnos_schemas::histogram::ResetHint;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    /// An integer histogram: 2 in the zero bucket, buckets 0..3 at 1, 3, 2, one negative
    /// bucket at index 1 with 4; 12 observations.
    fn int_hist() -> remote::Histogram {
        remote::Histogram {
            count: Some(pb::Count::CountInt(12)),
            sum: 18.5,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: Some(pb::ZeroCount::ZeroCountInt(2)),
            positive_spans: vec![span(0, 3)],
            positive_deltas: vec![1, 2, -1],
            negative_spans: vec![span(1, 1)],
            negative_deltas: vec![4],
            reset_hint: pb::RESET_NO,
            timestamp: 1000,
            ..Default::default()
        }
    }

    fn float_hist() -> remote::Histogram {
        remote::Histogram {
            count: Some(pb::Count::CountFloat(7.5)),
            sum: -1.25,
            schema: 3,
            zero_threshold: 0.001,
            zero_count: Some(pb::ZeroCount::ZeroCountFloat(0.5)),
            positive_spans: vec![span(-2, 2), span(3, 1)],
            positive_counts: vec![1.0, 2.5, 0.5],
            negative_spans: vec![span(0, 1)],
            negative_counts: vec![3.0],
            reset_hint: pb::RESET_GAUGE,
            ..Default::default()
        }
    }

    fn nhcb() -> remote::Histogram {
        remote::Histogram {
            count: Some(pb::Count::CountInt(7)),
            sum: 10.0,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: vec![span(0, 2), span(1, 1)],
            positive_deltas: vec![1, 2, 0],
            custom_values: vec![0.5, 1.0, 5.0],
            ..Default::default()
        }
    }

    fn refused(h: &remote::Histogram) -> String {
        validate_histogram(h).expect_err("should be refused")
    }

    #[test]
    fn bucket_indexes_far_out_of_range_are_refused() {
        let mut h = float_hist();
        h.positive_spans = vec![span(i32::MAX, 1), span(i32::MAX, 1), span(0, 1)];
        let e = validate_histogram(&h).unwrap_err();
        assert!(e.contains("bucket indexes must be within"), "{e}");
        let mut h = float_hist();
        h.negative_spans = vec![span(i32::MIN, 1)];
        let e = validate_histogram(&h).unwrap_err();
        assert!(e.contains("negative side: span number 1"), "{e}");
        // Far but plausible indexes (schema 8 reaches +-262,144 before floats overflow).
        let mut h = float_hist();
        h.positive_spans = vec![span(-300_000, 2), span(600_000, 1)];
        validate_histogram(&h).unwrap();
    }

    #[test]
    fn accepts_valid_integer_float_and_custom_histograms() {
        let f = validate_histogram(&int_hist()).unwrap();
        assert_eq!(f.positive_buckets, vec![1.0, 3.0, 2.0]);
        assert_eq!(f.negative_buckets, vec![4.0]);
        assert_eq!((f.count, f.zero_count, f.sum), (12.0, 2.0, 18.5));
        assert_eq!(f.counter_reset_hint, ResetHint::NotReset);
        let f = validate_histogram(&float_hist()).unwrap();
        assert_eq!(f.positive_buckets, vec![1.0, 2.5, 0.5]);
        assert!(f.is_gauge());
        // Float histograms are not checked for a consistent count (as in Prometheus).
        let mut h = float_hist();
        h.count = Some(pb::Count::CountFloat(1000.0));
        validate_histogram(&h).unwrap();
        let f = validate_histogram(&nhcb()).unwrap();
        assert!(f.uses_custom_buckets());
        assert_eq!(f.custom_values, vec![0.5, 1.0, 5.0]);
        // nhcb()'s last bucket (index 3) is the one above the last bound, up to +Inf; one
        // further is refused.
        let mut h = nhcb();
        h.positive_spans = vec![span(0, 2), span(2, 1)];
        assert!(refused(&h).contains("insufficient to cover total span length of 5"));
        // The empty histogram and the extreme schemas.
        for schema in [-4, 8] {
            let h = remote::Histogram {
                schema,
                count: Some(pb::Count::CountInt(0)),
                ..Default::default()
            };
            validate_histogram(&h).unwrap();
        }
    }

    #[test]
    fn spans_must_cover_the_buckets_given() {
        let mut h = int_hist();
        h.positive_spans = vec![span(0, 4)];
        let e = refused(&h);
        assert!(
            e.starts_with("positive side: spans need 4 buckets, have 3 buckets"),
            "{e}"
        );
        let mut h = float_hist();
        h.negative_counts.push(1.0);
        let e = refused(&h);
        assert!(
            e.starts_with("negative side: spans need 1 buckets, have 2"),
            "{e}"
        );
        let mut h = int_hist();
        h.positive_spans = vec![span(0, 1), span(-1, 2)];
        let e = refused(&h);
        assert!(e.contains("span number 2 with offset -1"), "{e}");
        assert!(e.contains("offset is negative"), "{e}");
    }

    #[test]
    fn negative_counts_are_refused() {
        let mut h = int_hist();
        h.positive_deltas = vec![1, -2, 3];
        let e = refused(&h);
        assert!(
            e.starts_with("positive side: bucket number 2 has observation count of -1"),
            "{e}"
        );
        let mut h = int_hist();
        h.negative_deltas = vec![-4];
        assert!(refused(&h).starts_with("negative side: bucket number 1"));
        let mut h = float_hist();
        h.positive_counts[2] = -0.5;
        assert!(refused(&h).contains("bucket number 3 has observation count of -0.5"));
        let mut h = float_hist();
        h.zero_count = Some(pb::ZeroCount::ZeroCountFloat(-1.0));
        assert!(refused(&h).starts_with("zero bucket has observation count of -1"));
        let mut h = float_hist();
        h.count = Some(pb::Count::CountFloat(-2.0));
        assert!(refused(&h).contains("observation count is negative"));
    }

    #[test]
    fn integer_counts_must_match_the_buckets() {
        let mut h = int_hist();
        h.count = Some(pb::Count::CountInt(11));
        let e = refused(&h);
        assert!(
            e.starts_with("12 observations found in buckets, but the Count field is 11"),
            "{e}"
        );
        assert!(e.contains("should equal"), "{e}");
        h.count = Some(pb::Count::CountInt(13));
        assert!(refused(&h).contains("Count field is 13"));
        // With a NaN sum, the count may exceed the buckets (NaN observations), not fall short.
        h.sum = f64::NAN;
        validate_histogram(&h).unwrap();
        h.count = Some(pb::Count::CountInt(11));
        assert!(refused(&h).contains("should be at least"));
        // Exact even where floats would round: 2^53 + 1 is not 2^53.
        let h = remote::Histogram {
            count: Some(pb::Count::CountInt((1 << 53) + 1)),
            positive_spans: vec![span(0, 1)],
            positive_deltas: vec![1 << 53],
            ..Default::default()
        };
        assert!(refused(&h).contains("Count field is 9007199254740993"));
    }

    #[test]
    fn schemas_outside_the_valid_ranges_are_refused() {
        for schema in [-5, -9, -52, -54, 53, 100, i32::MIN] {
            let h = remote::Histogram {
                schema,
                count: Some(pb::Count::CountInt(0)),
                ..Default::default()
            };
            let e = refused(&h);
            assert!(e.starts_with("histogram has an invalid schema"), "{e}");
            assert!(e.ends_with(&format!("got schema {schema}")), "{e}");
        }
    }

    #[test]
    fn finer_schemas_are_reduced_to_eight() {
        // Schema 9 buckets 1 and 2 merge into schema 8 bucket 1 (base^2 of 9 is 8's base).
        let h = remote::Histogram {
            schema: 9,
            count: Some(pb::Count::CountInt(5)),
            sum: 5.0,
            positive_spans: vec![span(1, 2)],
            positive_deltas: vec![2, 1],
            ..Default::default()
        };
        let f = validate_histogram(&h).unwrap();
        assert_eq!(f.schema, 8);
        assert_eq!(f.positive_buckets.iter().sum::<f64>(), 5.0);
        assert_eq!(f.positive_buckets, vec![5.0]);
    }

    #[test]
    fn custom_bucket_rules() {
        let mut h = nhcb();
        h.custom_values = vec![0.5, 0.5, 5.0];
        assert!(refused(&h).contains("strictly increasing"));
        h.custom_values = vec![0.5, f64::NAN, 5.0];
        assert!(refused(&h).contains("must not be NaN"));
        h.custom_values = vec![0.5, 1.0, f64::INFINITY];
        assert!(refused(&h).contains("must be finite"));
        h.custom_values = vec![0.5, 1.0];
        let e = refused(&h);
        assert!(e.starts_with("custom buckets: only 2 custom bounds"), "{e}");
        let mut h = nhcb();
        h.positive_spans[0].offset = -1;
        assert!(refused(&h).contains("span number 1 with offset -1"));
        let mut h = nhcb();
        h.zero_count = Some(pb::ZeroCount::ZeroCountInt(1));
        h.count = Some(pb::Count::CountInt(8));
        assert!(refused(&h).contains("zero count of 0"));
        let mut h = nhcb();
        h.zero_threshold = 0.1;
        assert!(refused(&h).contains("zero threshold of 0"));
        let mut h = nhcb();
        h.negative_spans = vec![span(0, 1)];
        h.negative_deltas = vec![1];
        assert!(refused(&h).contains("must not have negative spans"));
        let mut h = nhcb();
        h.negative_deltas = vec![1];
        assert!(refused(&h).contains("must not have negative buckets"));
        let mut h = int_hist();
        h.custom_values = vec![1.0];
        assert!(refused(&h).contains("exponential schema must not have custom bounds"));
    }

    #[test]
    fn mixed_integer_and_float_buckets_are_refused() {
        let mut h = int_hist();
        h.positive_counts = vec![1.0];
        assert!(refused(&h).contains("integer histogram with float positive bucket counts"));
    }

    #[test]
    fn stale_markers_validate() {
        let h = remote::Histogram {
            count: Some(pb::Count::CountInt(0)),
            sum: f64::from_bits(STALE_NAN_BITS),
            ..Default::default()
        };
        assert!(validate_histogram(&h).unwrap().is_stale_marker());
    }
}
