//! Histogram arithmetic, as Prometheus' `FloatHistogram` does it.
//!
//! Internally a side (positive or negative buckets) is handled as a list of `(index, count)`
//! pairs in index order; [`spans_of`] turns such a list back into spans, one span per run of
//! consecutive indexes. Which buckets exist (even empty ones) is part of a histogram's
//! identity in PromQL tests, so every operation keeps exactly the buckets Prometheus keeps.

use super::bounds::{bucket_bound, exponential_bound, target_index};
use super::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, ResetHint, Span};

/// Why two histograms cannot be combined.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// One has an exponential schema, the other custom buckets.
    #[error("vector contains a mix of histograms with exponential and custom buckets schemas")]
    MixedExponentialCustom,
    /// A histogram that cannot be read or is internally inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// What happened while adding or subtracting, for annotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CombineOutcome {
    /// One operand said "counter reset" and the other "no counter reset".
    pub counter_reset_collision: bool,
    /// Custom bucket boundaries differed and were reconciled to their common boundaries.
    pub nhcb_bounds_reconciled: bool,
}

/// One bucket, with its bounds and whether each bound belongs to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub count: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    /// The bucket's index in its schema (0 for the zero bucket).
    pub index: i32,
}

/// `(index, count)` of every bucket a side's spans cover, in index order. Stops early when
/// there are fewer counts than the spans cover.
pub(crate) fn indexed(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut counts = buckets.iter();
    let mut index: i32 = 0;
    for (n, span) in spans.iter().enumerate() {
        // The first offset is the index of the first bucket, later ones are gaps.
        index = if n == 0 {
            span.offset
        } else {
            index.wrapping_add(span.offset)
        };
        for _ in 0..span.length {
            let Some(&count) = counts.next() else {
                return out;
            };
            out.push((index, count));
            index = index.wrapping_add(1);
        }
    }
    out
}

/// Spans and counts of `(index, count)` pairs in index order: one span per run of
/// consecutive indexes.
pub(crate) fn spans_of(entries: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::with_capacity(entries.len());
    let mut next: Option<i32> = None;
    for &(index, count) in entries {
        match next {
            Some(n) if n == index => {
                if let Some(last) = spans.last_mut() {
                    last.length += 1;
                }
            }
            Some(n) => spans.push(Span {
                offset: index.wrapping_sub(n),
                length: 1,
            }),
            None => spans.push(Span {
                offset: index,
                length: 1,
            }),
        }
        counts.push(count);
        next = Some(index.wrapping_add(1));
    }
    (spans, counts)
}

/// The buckets of one side merged down to schema `to` (counts added in index order).
fn reduce_entries(entries: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(entries.len());
    for &(index, count) in entries {
        let target = target_index(index, from, to);
        match out.last_mut() {
            Some((last, sum)) if *last == target => *sum += count,
            _ => out.push((target, count)),
        }
    }
    out
}

/// `a + b` (or `a - b`) bucket by bucket: the result has every bucket of either side. When
/// `skip_up_to` is set, `b`'s buckets whose upper bound (at that schema) is at most that
/// threshold are left out (they are already counted in the zero bucket).
fn add_entries(
    a: &[(i32, f64)],
    b: &[(i32, f64)],
    negate: bool,
    skip_up_to: Option<(i32, f64)>,
) -> Vec<(i32, f64)> {
    let sign = if negate { -1.0 } else { 1.0 };
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut ai = a.iter().peekable();
    for &(index, count) in b {
        if let Some((schema, threshold)) = skip_up_to
            && exponential_bound(index, schema) <= threshold
        {
            continue;
        }
        while let Some(&&(ia, ca)) = ai.peek() {
            if ia >= index {
                break;
            }
            out.push((ia, ca));
            ai.next();
        }
        match ai.peek() {
            Some(&&(ia, ca)) if ia == index => {
                out.push((index, ca + count * sign));
                ai.next();
            }
            _ => out.push((index, count * sign)),
        }
    }
    out.extend(ai);
    out
}

/// [`add_entries`] with Kahan compensation: `a_comp` holds the compensation of each bucket
/// of `a`, `b_comp` (when given) that of each bucket of `b`. Returns the sums and their
/// compensations, aligned.
fn kahan_add_entries(
    a: &[(i32, f64)],
    a_comp: &[f64],
    b: &[(i32, f64)],
    b_comp: Option<&[f64]>,
    skip_up_to: Option<(i32, f64)>,
) -> (Vec<(i32, f64)>, Vec<f64>) {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut out_comp = Vec::with_capacity(a.len() + b.len());
    let mut ai = 0;
    let a_c = |i: usize| a_comp.get(i).copied().unwrap_or(0.0);
    for (n, &(index, count)) in b.iter().enumerate() {
        if let Some((schema, threshold)) = skip_up_to
            && exponential_bound(index, schema) <= threshold
        {
            continue;
        }
        let bc = b_comp.and_then(|c| c.get(n)).copied().unwrap_or(0.0);
        while ai < a.len() && a[ai].0 < index {
            out.push(a[ai]);
            out_comp.push(a_c(ai));
            ai += 1;
        }
        if ai < a.len() && a[ai].0 == index {
            let (mut sum, mut c) = kahan_inc(count, a[ai].1, a_c(ai));
            if bc != 0.0 {
                (sum, c) = kahan_inc(bc, sum, c);
            }
            out.push((index, sum));
            out_comp.push(c);
            ai += 1;
        } else {
            out.push((index, count));
            out_comp.push(bc);
        }
    }
    while ai < a.len() {
        out.push(a[ai]);
        out_comp.push(a_c(ai));
        ai += 1;
    }
    (out, out_comp)
}

/// [`reduce_entries`] with Kahan compensation (`comp` aligned with `entries`).
fn kahan_reduce_entries(
    entries: &[(i32, f64)],
    comp: &[f64],
    from: i32,
    to: i32,
) -> (Vec<(i32, f64)>, Vec<f64>) {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(entries.len());
    let mut out_comp: Vec<f64> = Vec::with_capacity(entries.len());
    for (n, &(index, count)) in entries.iter().enumerate() {
        let target = target_index(index, from, to);
        let c = comp.get(n).copied().unwrap_or(0.0);
        match (out.last_mut(), out_comp.last_mut()) {
            (Some((last, sum)), Some(sc)) if *last == target => {
                (*sum, *sc) = kahan_inc(count, *sum, *sc);
                (*sum, *sc) = kahan_inc(c, *sum, *sc);
            }
            _ => {
                out.push((target, count));
                out_comp.push(c);
            }
        }
    }
    (out, out_comp)
}

/// The bounds two custom-bucket layouts have in common.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Custom bounds equal value by value.
fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Neumaier-compensated `sum + inc`: returns the new sum and compensation (Prometheus'
/// `kahansum.Inc`).
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Adds (or subtracts) two custom-bucket sides with different bounds: every bucket goes into
/// the bucket of `bounds` (the common bounds) that contains it. Empty result buckets are left
/// out. Returns the entries with their compensation terms.
fn add_mismatched_custom(
    a: &[(i32, f64)],
    a_bounds: &[f64],
    a_comp: Option<&[f64]>,
    b: &[(i32, f64)],
    b_bounds: &[f64],
    negate: bool,
    bounds: &[f64],
) -> (Vec<(i32, f64)>, Vec<f64>) {
    let mut sums = vec![0.0; bounds.len() + 1];
    let mut comps = vec![0.0; bounds.len() + 1];
    let mut map = |entries: &[(i32, f64)], src: &[f64], sign: f64, comp: Option<&[f64]>| {
        let mut k = 0;
        for (n, &(index, count)) in entries.iter().enumerate() {
            let mut target = bounds.len();
            if index >= 0 && (index as usize) < src.len() {
                let upper = src[index as usize];
                while k < bounds.len() {
                    if bounds[k] >= upper {
                        target = k;
                        break;
                    }
                    k += 1;
                }
            }
            (sums[target], comps[target]) = kahan_inc(count * sign, sums[target], comps[target]);
            if let Some(c) = comp.and_then(|c| c.get(n)) {
                (sums[target], comps[target]) = kahan_inc(*c, sums[target], comps[target]);
            }
        }
    };
    map(a, a_bounds, 1.0, a_comp);
    map(b, b_bounds, if negate { -1.0 } else { 1.0 }, None);
    let mut entries = Vec::new();
    let mut comp_out = Vec::new();
    for (i, (s, c)) in sums.into_iter().zip(comps).enumerate() {
        if s == 0.0 && c == 0.0 {
            continue;
        }
        entries.push((i as i32, s));
        comp_out.push(c);
    }
    (entries, comp_out)
}

impl FloatHistogram {
    /// `self += other`, at the lower of the two schemas and the wider zero bucket.
    ///
    /// Buckets of either histogram that fall into the widened zero bucket move into the zero
    /// count. Custom-bucket histograms with different bounds are added at the bounds they
    /// have in common (`nhcb_bounds_reconciled`). The counter-reset hint becomes the one
    /// both agree on (gauge wins; unknown otherwise); "reset" against "not reset" is a
    /// `counter_reset_collision`.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<CombineOutcome, HistogramError> {
        self.combine(other, false)
    }

    /// `self -= other`, as [`add`](Self::add). The counter-reset hint is treated as in
    /// `add`; PromQL's `-` marks its result as a gauge afterwards.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<CombineOutcome, HistogramError> {
        self.combine(other, true)
    }

    fn combine(
        &mut self,
        other: &FloatHistogram,
        negate: bool,
    ) -> Result<CombineOutcome, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedExponentialCustom);
        }
        let mut outcome = CombineOutcome {
            counter_reset_collision: self.adjust_counter_reset(other),
            nhcb_bounds_reconciled: false,
        };
        let sign = if negate { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zero;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;

        let mine = indexed(&self.positive_spans, &self.positive_buckets);
        let theirs = indexed(&other.positive_spans, &other.positive_buckets);
        if self.uses_custom_buckets() {
            let entries = if bounds_match(&self.custom_values, &other.custom_values) {
                add_entries(&mine, &theirs, negate, None)
            } else {
                outcome.nhcb_bounds_reconciled = true;
                let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
                let (entries, _) = add_mismatched_custom(
                    &mine,
                    &self.custom_values,
                    None,
                    &theirs,
                    &other.custom_values,
                    negate,
                    &bounds,
                );
                self.custom_values = bounds;
                entries
            };
            (self.positive_spans, self.positive_buckets) = spans_of(&entries);
            return Ok(outcome);
        }

        let mut mine_neg = indexed(&self.negative_spans, &self.negative_buckets);
        let mut mine = mine;
        let mut theirs = theirs;
        let mut theirs_neg = indexed(&other.negative_spans, &other.negative_buckets);
        if other.schema < self.schema {
            mine = reduce_entries(&mine, self.schema, other.schema);
            mine_neg = reduce_entries(&mine_neg, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            theirs = reduce_entries(&theirs, other.schema, self.schema);
            theirs_neg = reduce_entries(&theirs_neg, other.schema, self.schema);
        }
        let skip = Some((self.schema, self.zero_threshold));
        let pos = add_entries(&mine, &theirs, negate, skip);
        let neg = add_entries(&mine_neg, &theirs_neg, negate, skip);
        (self.positive_spans, self.positive_buckets) = spans_of(&pos);
        (self.negative_spans, self.negative_buckets) = spans_of(&neg);
        Ok(outcome)
    }

    /// `self += other` with Kahan (Neumaier) compensation, as Prometheus' `KahanAdd` (used by
    /// `sum` and `avg`): `comp` holds the compensation terms in a histogram with the layout
    /// of `self` (created on first use). Once every histogram is added, add `comp` to `self`
    /// to get the compensated total.
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        comp: &mut Option<FloatHistogram>,
    ) -> Result<CombineOutcome, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedExponentialCustom);
        }
        let mut outcome = CombineOutcome {
            counter_reset_collision: self.adjust_counter_reset(other),
            nhcb_bounds_reconciled: false,
        };
        let c = comp.get_or_insert_with(|| self.compensation_histogram());
        if !self.uses_custom_buckets() {
            let (other_zero, other_comp) = self.reconcile_zero_buckets_compensated(other, Some(c));
            (self.zero_count, c.zero_count) = kahan_inc(other_zero, self.zero_count, c.zero_count);
            (self.zero_count, c.zero_count) = kahan_inc(other_comp, self.zero_count, c.zero_count);
        }
        (self.count, c.count) = kahan_inc(other.count, self.count, c.count);
        (self.sum, c.sum) = kahan_inc(other.sum, self.sum, c.sum);

        let mine = indexed(&self.positive_spans, &self.positive_buckets);
        let theirs = indexed(&other.positive_spans, &other.positive_buckets);
        if self.uses_custom_buckets() {
            let (entries, entries_comp) = if bounds_match(&self.custom_values, &other.custom_values)
            {
                kahan_add_entries(&mine, &c.positive_buckets, &theirs, None, None)
            } else {
                outcome.nhcb_bounds_reconciled = true;
                let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
                let added = add_mismatched_custom(
                    &mine,
                    &self.custom_values,
                    Some(&c.positive_buckets),
                    &theirs,
                    &other.custom_values,
                    false,
                    &bounds,
                );
                c.custom_values = bounds.clone();
                self.custom_values = bounds;
                added
            };
            (self.positive_spans, self.positive_buckets) = spans_of(&entries);
            c.positive_spans = self.positive_spans.clone();
            c.positive_buckets = entries_comp;
            return Ok(outcome);
        }

        let mine_neg = indexed(&self.negative_spans, &self.negative_buckets);
        let theirs_neg = indexed(&other.negative_spans, &other.negative_buckets);
        let (mut mine, mut mine_comp) = (mine, std::mem::take(&mut c.positive_buckets));
        let (mut mine_neg, mut mine_neg_comp) = (mine_neg, std::mem::take(&mut c.negative_buckets));
        let (mut theirs, mut theirs_comp) = (theirs, None);
        let (mut theirs_neg, mut theirs_neg_comp) = (theirs_neg, None);
        if other.schema < self.schema {
            (mine, mine_comp) = kahan_reduce_entries(&mine, &mine_comp, self.schema, other.schema);
            (mine_neg, mine_neg_comp) =
                kahan_reduce_entries(&mine_neg, &mine_neg_comp, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            let (e, ec) = kahan_reduce_entries(&theirs, &[], other.schema, self.schema);
            (theirs, theirs_comp) = (e, Some(ec));
            let (e, ec) = kahan_reduce_entries(&theirs_neg, &[], other.schema, self.schema);
            (theirs_neg, theirs_neg_comp) = (e, Some(ec));
        }
        let skip = Some((self.schema, self.zero_threshold));
        let (pos, pos_comp) =
            kahan_add_entries(&mine, &mine_comp, &theirs, theirs_comp.as_deref(), skip);
        let (neg, neg_comp) = kahan_add_entries(
            &mine_neg,
            &mine_neg_comp,
            &theirs_neg,
            theirs_neg_comp.as_deref(),
            skip,
        );
        (self.positive_spans, self.positive_buckets) = spans_of(&pos);
        (self.negative_spans, self.negative_buckets) = spans_of(&neg);
        c.schema = self.schema;
        c.zero_threshold = self.zero_threshold;
        c.positive_spans = self.positive_spans.clone();
        c.negative_spans = self.negative_spans.clone();
        c.positive_buckets = pos_comp;
        c.negative_buckets = neg_comp;
        Ok(outcome)
    }

    /// An all-zero histogram with the layout of `self`, to hold Kahan compensation terms.
    fn compensation_histogram(&self) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            positive_spans: self.positive_spans.clone(),
            positive_buckets: vec![0.0; self.positive_buckets.len()],
            negative_spans: self.negative_spans.clone(),
            negative_buckets: if self.uses_custom_buckets() {
                Vec::new()
            } else {
                vec![0.0; self.negative_buckets.len()]
            },
            custom_values: self.custom_values.clone(),
            ..Default::default()
        }
    }

    /// Sets the counter-reset hint for the sum or difference with `other`; true on a
    /// "reset" against "not reset" collision.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use ResetHint::*;
        match (self.counter_reset_hint, other.counter_reset_hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.counter_reset_hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.counter_reset_hint = Unknown;
                false
            }
            _ => {
                self.counter_reset_hint = Unknown;
                true
            }
        }
    }

    /// Widens the zero buckets of `self` and (virtually) `other` until they have the same
    /// threshold and it lies on no populated bucket of either. Changes `self` (buckets inside
    /// the new zero bucket are removed, their counts are in the zero count) and returns the
    /// zero count `other` would have with that threshold.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        self.reconcile_zero_buckets_compensated(other, None).0
    }

    /// [`reconcile_zero_buckets`](Self::reconcile_zero_buckets) keeping a compensation
    /// histogram (same layout as `self`) in step; also returns the compensation term of
    /// `other`'s zero count.
    fn reconcile_zero_buckets_compensated(
        &mut self,
        other: &FloatHistogram,
        mut comp: Option<&mut FloatHistogram>,
    ) -> (f64, f64) {
        let mut other_zero = other.zero_count;
        let mut other_comp = 0.0;
        let mut other_threshold = other.zero_threshold;
        // Each round moves a threshold up to a bucket boundary, so this ends; NaN thresholds
        // compare neither way and stop it too.
        while other_threshold != self.zero_threshold {
            if self.zero_threshold > other_threshold {
                (other_zero, other_threshold, other_comp) =
                    other.zero_count_for_larger_threshold(self.zero_threshold, None);
            }
            if other_threshold > self.zero_threshold {
                let (z, t, c) =
                    self.zero_count_for_larger_threshold(other_threshold, comp.as_deref());
                self.zero_count = z;
                self.zero_threshold = t;
                if let Some(comp) = comp.as_deref_mut() {
                    comp.zero_count = c;
                    comp.zero_threshold = t;
                }
                self.trim_buckets_in_zero_bucket(comp.as_deref_mut());
            }
            if !(other_threshold > self.zero_threshold || self.zero_threshold > other_threshold) {
                break;
            }
        }
        (other_zero, other_comp)
    }

    /// The zero count this histogram would have with the (larger or equal) threshold
    /// `larger`, the threshold actually needed (moved up to the upper bound of a populated
    /// bucket it would cut through), and the compensation's zero count when `comp` is given.
    fn zero_count_for_larger_threshold(
        &self,
        larger: f64,
        comp: Option<&FloatHistogram>,
    ) -> (f64, f64, f64) {
        let comp_zero = comp.map_or(0.0, |c| c.zero_count);
        if larger == self.zero_threshold {
            return (self.zero_count, larger, comp_zero);
        }
        let custom = &self.custom_values;
        let pos = indexed(&self.positive_spans, &self.positive_buckets);
        let neg = indexed(&self.negative_spans, &self.negative_buckets);
        let mut threshold = larger;
        'outer: loop {
            let mut zero = self.zero_count;
            let mut c = comp_zero;
            for (n, &(index, count)) in pos.iter().enumerate() {
                let lower = bucket_bound(index.wrapping_sub(1), self.schema, custom);
                if lower >= threshold {
                    break;
                }
                (zero, c) = kahan_inc(count, zero, c);
                if let Some(cb) = comp.and_then(|h| h.positive_buckets.get(n)) {
                    (zero, c) = kahan_inc(*cb, zero, c);
                }
                let upper = bucket_bound(index, self.schema, custom);
                if upper > threshold {
                    if count != 0.0 {
                        threshold = upper;
                    }
                    break;
                }
            }
            for (n, &(index, count)) in neg.iter().enumerate() {
                // A negative bucket spans [-bound(index), -bound(index - 1)).
                let inner = bucket_bound(index.wrapping_sub(1), self.schema, custom);
                if inner >= threshold {
                    break;
                }
                (zero, c) = kahan_inc(count, zero, c);
                if let Some(cb) = comp.and_then(|h| h.negative_buckets.get(n)) {
                    (zero, c) = kahan_inc(*cb, zero, c);
                }
                let outer = bucket_bound(index, self.schema, custom);
                if outer > threshold {
                    if count != 0.0 {
                        // The positive side has to be redone with the new threshold.
                        threshold = outer;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zero, threshold, c);
        }
    }

    /// Empties the buckets inside the zero bucket (their counts must already be in the zero
    /// count), then drops every empty bucket.
    fn trim_buckets_in_zero_bucket(&mut self, comp: Option<&mut FloatHistogram>) {
        let threshold = self.zero_threshold;
        let trim = |spans: &[Span], buckets: &mut [f64], comp: Option<&mut Vec<f64>>| {
            let entries = indexed(spans, buckets);
            let mut n = 0;
            for &(index, _) in &entries {
                if bucket_bound(index.wrapping_sub(1), self.schema, &self.custom_values)
                    >= threshold
                {
                    break;
                }
                n += 1;
            }
            buckets[..n].iter_mut().for_each(|b| *b = 0.0);
            if let Some(c) = comp {
                c.iter_mut().take(n).for_each(|b| *b = 0.0);
            }
        };
        let mut pos = std::mem::take(&mut self.positive_buckets);
        let mut neg = std::mem::take(&mut self.negative_buckets);
        match comp {
            Some(c) => {
                trim(
                    &self.positive_spans,
                    &mut pos,
                    Some(&mut c.positive_buckets),
                );
                trim(
                    &self.negative_spans,
                    &mut neg,
                    Some(&mut c.negative_buckets),
                );
                self.positive_buckets = pos;
                self.negative_buckets = neg;
                self.compact_with(0, Some(c));
            }
            None => {
                trim(&self.positive_spans, &mut pos, None);
                trim(&self.negative_spans, &mut neg, None);
                self.positive_buckets = pos;
                self.negative_buckets = neg;
                self.compact(0);
            }
        }
    }

    /// True when a count, the sum, a bucket or a custom bound is infinite (an aggregation
    /// overflowed float64; Prometheus then falls back to incremental averaging).
    pub fn has_overflow(&self) -> bool {
        [self.zero_count, self.count, self.sum]
            .iter()
            .chain(&self.positive_buckets)
            .chain(&self.negative_buckets)
            .chain(&self.custom_values)
            .any(|v| v.is_infinite())
    }

    /// Multiplies count, sum and every bucket by `factor`. A negative factor makes the
    /// result a gauge histogram.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = ResetHint::Gauge;
        }
    }

    /// Divides count, sum and every bucket by `divisor` (by zero gives +Inf/NaN as floats
    /// do, and removes every bucket). A negative divisor makes the result a gauge histogram.
    pub fn div(&mut self, divisor: f64) {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= divisor);
        self.negative_buckets.iter_mut().for_each(|b| *b /= divisor);
        if divisor < 0.0 {
            self.counter_reset_hint = ResetHint::Gauge;
        }
    }

    /// Removes empty buckets and merges adjacent spans: the result has the non-empty
    /// buckets, and the empty buckets between two of them where at most `max_empty_buckets`
    /// of them lie in a row.
    pub fn compact(&mut self, max_empty_buckets: usize) {
        self.compact_with(max_empty_buckets, None);
    }

    /// [`compact`](Self::compact), keeping `comp` (a compensation histogram with the same
    /// layout) in step: a bucket counts as empty when it and its compensation are zero.
    pub(crate) fn compact_with(
        &mut self,
        max_empty_buckets: usize,
        comp: Option<&mut FloatHistogram>,
    ) {
        let side = |spans: &mut Vec<Span>, buckets: &mut Vec<f64>, comp: Option<&mut Vec<f64>>| {
            let entries = indexed(spans, buckets);
            let comps: Vec<f64> = match &comp {
                Some(c) => (0..entries.len())
                    .map(|i| c.get(i).copied().unwrap_or(0.0))
                    .collect(),
                None => vec![0.0; entries.len()],
            };
            let empty = |i: usize| entries[i].1 == 0.0 && comps[i] == 0.0;
            let mut kept: Vec<(i32, f64)> = Vec::with_capacity(entries.len());
            let mut kept_comp = Vec::with_capacity(entries.len());
            let mut last: Option<i32> = None;
            for i in 0..entries.len() {
                if empty(i) {
                    continue;
                }
                let (index, count) = entries[i];
                if let Some(prev) = last {
                    let gap = i64::from(index) - i64::from(prev) - 1;
                    if gap > 0 && gap as u64 <= max_empty_buckets as u64 {
                        for k in prev + 1..index {
                            kept.push((k, 0.0));
                            kept_comp.push(0.0);
                        }
                    }
                }
                kept.push((index, count));
                kept_comp.push(comps[i]);
                last = Some(index);
            }
            (*spans, *buckets) = spans_of(&kept);
            if let Some(c) = comp {
                *c = kept_comp;
            }
        };
        match comp {
            Some(c) => {
                side(
                    &mut self.positive_spans,
                    &mut self.positive_buckets,
                    Some(&mut c.positive_buckets),
                );
                side(
                    &mut self.negative_spans,
                    &mut self.negative_buckets,
                    Some(&mut c.negative_buckets),
                );
                c.positive_spans = self.positive_spans.clone();
                c.negative_spans = self.negative_spans.clone();
            }
            None => {
                side(&mut self.positive_spans, &mut self.positive_buckets, None);
                side(&mut self.negative_spans, &mut self.negative_buckets, None);
            }
        }
    }

    /// True when going from `previous` to `self` is a counter reset (Prometheus'
    /// `DetectReset`). The hints "reset" and "not reset" decide on their own; otherwise
    /// (unknown, and gauge, which is then treated as a counter) it is a reset when the count,
    /// the zero count or any bucket went down or a populated bucket disappeared, when the
    /// schema got finer or the zero bucket narrowed (or would cut a populated bucket), and,
    /// for custom buckets, when the layout changed from exponential or a bucket of the
    /// common bounds went down.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            ResetHint::Reset => return true,
            ResetHint::NotReset => return false,
            ResetHint::Unknown | ResetHint::Gauge => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !bounds_match(&self.custom_values, &previous.custom_values) {
                return self.reset_with_mismatched_bounds(previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (previous_zero, threshold, _) =
            previous.zero_count_for_larger_threshold(self.zero_threshold, None);
        if threshold != self.zero_threshold {
            // The zero bucket would cut through a populated bucket of `previous`.
            return true;
        }
        if self.zero_count < previous_zero {
            return true;
        }
        let side = |h: &FloatHistogram, positive: bool| {
            let entries = if positive {
                indexed(&h.positive_spans, &h.positive_buckets)
            } else {
                indexed(&h.negative_spans, &h.negative_buckets)
            };
            let mut entries = if h.schema != self.schema && !h.uses_custom_buckets() {
                reduce_entries(&entries, h.schema, self.schema)
            } else {
                entries
            };
            if !self.uses_custom_buckets() {
                // Buckets inside the zero bucket are compared through the zero count.
                entries.retain(|&(i, _)| exponential_bound(i, self.schema) > self.zero_threshold);
            }
            entries
        };
        [true, false]
            .into_iter()
            .any(|positive| side_went_down(&side(self, positive), &side(previous, positive)))
    }

    /// Reset detection between custom-bucket histograms with different bounds: the counts
    /// between consecutive common bounds (and above the last) must not go down.
    fn reset_with_mismatched_bounds(&self, previous: &FloatHistogram) -> bool {
        let common = intersect_bounds(&self.custom_values, &previous.custom_values);
        let uppers = |h: &FloatHistogram| -> Vec<(f64, f64)> {
            indexed(&h.positive_spans, &h.positive_buckets)
                .into_iter()
                .map(|(i, c)| (bucket_bound(i, CUSTOM_BUCKETS_SCHEMA, &h.custom_values), c))
                .collect()
        };
        let (cur, prev) = (uppers(self), uppers(previous));
        let (mut ci, mut pi) = (0, 0);
        for bound in common.iter().copied().chain(std::iter::once(f64::INFINITY)) {
            let roll = |list: &[(f64, f64)], i: &mut usize| {
                let mut sum = 0.0;
                while *i < list.len() && list[*i].0 <= bound {
                    sum += list[*i].1;
                    *i += 1;
                }
                sum
            };
            let c = roll(&cur, &mut ci);
            let p = roll(&prev, &mut pi);
            if c < p {
                return true;
            }
        }
        false
    }

    /// Merges buckets down to `target_schema`. Does nothing when the target is not coarser
    /// than the current schema or either uses custom buckets (see
    /// [`try_reduce_resolution`](Self::try_reduce_resolution) for an error instead).
    pub fn reduce_resolution(&mut self, target_schema: i32) {
        let _ = self.try_reduce_resolution(target_schema);
    }

    /// [`reduce_resolution`](Self::reduce_resolution), refusing what it cannot do: custom
    /// buckets on either side, or a target not coarser than the current schema.
    pub fn try_reduce_resolution(&mut self, target_schema: i32) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() {
            return Err(HistogramError::Invalid(
                "cannot reduce resolution when there are custom buckets".into(),
            ));
        }
        if target_schema == CUSTOM_BUCKETS_SCHEMA {
            return Err(HistogramError::Invalid(
                "cannot reduce resolution to custom buckets schema".into(),
            ));
        }
        if target_schema >= self.schema {
            return Err(HistogramError::Invalid(format!(
                "cannot reduce resolution from schema {} to {target_schema}",
                self.schema
            )));
        }
        let pos = indexed(&self.positive_spans, &self.positive_buckets);
        let neg = indexed(&self.negative_spans, &self.negative_buckets);
        (self.positive_spans, self.positive_buckets) =
            spans_of(&reduce_entries(&pos, self.schema, target_schema));
        (self.negative_spans, self.negative_buckets) =
            spans_of(&reduce_entries(&neg, self.schema, target_schema));
        self.schema = target_schema;
        Ok(())
    }

    /// Exact equality as Prometheus' `Equals` sees it: same schema, zero threshold, custom
    /// bounds and bucket layout (which buckets exist, empty or not), and bit-identical
    /// count, sum, zero count and bucket counts. The counter-reset hint does not matter.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
        let same_side = |a: Vec<(i32, f64)>, b: Vec<(i32, f64)>| {
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && same(x.1, y.1))
        };
        self.schema == other.schema
            && same(self.count, other.count)
            && same(self.sum, other.sum)
            && (!self.uses_custom_buckets()
                || bounds_match(&self.custom_values, &other.custom_values))
            && self.zero_threshold == other.zero_threshold
            && same(self.zero_count, other.zero_count)
            && same_side(
                indexed(&self.negative_spans, &self.negative_buckets),
                indexed(&other.negative_spans, &other.negative_buckets),
            )
            && same_side(
                indexed(&self.positive_spans, &self.positive_buckets),
                indexed(&other.positive_spans, &other.positive_buckets),
            )
    }

    /// Every bucket with a non-zero count: negative buckets from the lowest bound up, then
    /// the zero bucket, then positive buckets up (the order of Prometheus' JSON output).
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut all = self.all_buckets();
        all.retain(|b| b.count != 0.0);
        all
    }

    /// Every bucket, empty ones included, from the lowest bound up (Prometheus'
    /// `AllBucketIterator`): negative buckets, the zero bucket when its count is positive,
    /// positive buckets. Exponential buckets reaching into the zero bucket start (or end) at
    /// the zero threshold.
    pub(crate) fn all_buckets(&self) -> Vec<Bucket> {
        let mut out =
            Vec::with_capacity(self.positive_buckets.len() + self.negative_buckets.len() + 1);
        let zt = self.zero_threshold;
        let clip = |mut b: Bucket| {
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            } else if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            b
        };
        for (index, count) in indexed(&self.negative_spans, &self.negative_buckets)
            .into_iter()
            .rev()
        {
            out.push(clip(self.bucket_at(index, count, false)));
        }
        if self.zero_count > 0.0 && !self.uses_custom_buckets() {
            out.push(self.zero_bucket());
        }
        for (index, count) in indexed(&self.positive_spans, &self.positive_buckets) {
            out.push(clip(self.bucket_at(index, count, true)));
        }
        out
    }

    /// The zero bucket, `[-zero_threshold, zero_threshold]`.
    pub(crate) fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            count: self.zero_count,
            lower_inclusive: true,
            upper_inclusive: true,
            index: 0,
        }
    }

    /// Bucket `index` of the positive or negative side, with Prometheus' bounds and
    /// inclusiveness: exponential buckets include the bound farther from zero (`(l, u]`
    /// positive, `[l, u)` negative); custom buckets are `(l, u]`, the first `[-Inf, u]`.
    pub(crate) fn bucket_at(&self, index: i32, count: f64, positive: bool) -> Bucket {
        let outer = bucket_bound(index, self.schema, &self.custom_values);
        let inner = bucket_bound(index.wrapping_sub(1), self.schema, &self.custom_values);
        let (lower, upper) = if positive {
            (inner, outer)
        } else {
            (-outer, -inner)
        };
        let (lower_inclusive, upper_inclusive) = if self.uses_custom_buckets() {
            (index == 0, true)
        } else {
            (lower < 0.0, upper > 0.0)
        };
        Bucket {
            lower,
            upper,
            count,
            lower_inclusive,
            upper_inclusive,
            index,
        }
    }
}

/// True when a bucket of `previous` is populated and missing in `current`, or has a larger
/// count than the same bucket in `current` (both in index order, same schema).
fn side_went_down(current: &[(i32, f64)], previous: &[(i32, f64)]) -> bool {
    let mut cur = current.iter().peekable();
    for &(index, count) in previous {
        while cur.next_if(|&&(i, _)| i < index).is_some() {}
        match cur.peek() {
            Some(&&(i, c)) if i == index => {
                if c < count {
                    return true;
                }
            }
            _ => {
                if count != 0.0 {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::test_literal::h;

    /// Compacted and compared as the PromQL test runner does (bit-exact counts).
    #[track_caller]
    fn assert_same(got: &FloatHistogram, want: &str) {
        let mut got = got.clone();
        let mut want = h(want);
        got.compact(0);
        want.compact(0);
        assert!(got.equals(&want), "got {got:?}\nwant {want:?}");
    }

    fn spans(list: &[(i32, u32)]) -> Vec<Span> {
        list.iter()
            .map(|&(offset, length)| Span { offset, length })
            .collect()
    }

    #[test]
    fn mul_and_div_scale_everything() {
        let base = h(
            "{{schema:0 count:30 sum:33 z_bucket:3 z_bucket_w:0.001 buckets:[3 3 3] n_buckets:[6 6 6]}}",
        );
        let mut x = base.clone();
        x.mul(3.0);
        assert_same(
            &x,
            "{{schema:0 count:90 sum:99 z_bucket:9 z_bucket_w:0.001 buckets:[9 9 9] n_buckets:[18 18 18]}}",
        );
        assert_eq!(x.counter_reset_hint, ResetHint::Unknown);
        x.div(-3.0);
        assert_same(
            &x,
            "{{schema:0 count:-30 sum:-33 z_bucket:-3 z_bucket_w:0.001 buckets:[-3 -3 -3] n_buckets:[-6 -6 -6]}}",
        );
        assert_eq!(x.counter_reset_hint, ResetHint::Gauge);
        let mut x = base.clone();
        x.div(0.0);
        assert_same(
            &x,
            "{{schema:0 count:Inf sum:Inf z_bucket_w:0.001 z_bucket:Inf}}",
        );
        let mut x = base;
        assert!(!x.has_overflow());
        x.mul(-1.0);
        assert_eq!(x.counter_reset_hint, ResetHint::Gauge);
        x.mul(f64::MAX);
        assert!(x.has_overflow());
    }

    #[test]
    fn compact_drops_empty_buckets_and_joins_spans() {
        let mut x = FloatHistogram {
            positive_spans: spans(&[(-2, 4), (0, 2), (3, 3)]),
            positive_buckets: vec![0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0],
            ..Default::default()
        };
        // Indexes -2..=3 and 7..=9; non-empty: -1 (1), 1 (2), 7 (3).
        let mut y = x.clone();
        y.compact(0);
        assert_eq!(y.positive_spans, spans(&[(-1, 1), (1, 1), (5, 1)]));
        assert_eq!(y.positive_buckets, vec![1.0, 2.0, 3.0]);
        y = x.clone();
        y.compact(1);
        assert_eq!(y.positive_spans, spans(&[(-1, 3), (5, 1)]));
        assert_eq!(y.positive_buckets, vec![1.0, 0.0, 2.0, 3.0]);
        // A gap of five buckets (2..=6) is joined only with max_empty_buckets >= 5.
        x.compact(5);
        assert_eq!(x.positive_spans, spans(&[(-1, 9)]));
        assert_eq!(
            x.positive_buckets,
            vec![1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]
        );
        let mut empty = FloatHistogram {
            negative_spans: spans(&[(3, 2)]),
            negative_buckets: vec![0.0, 0.0],
            ..Default::default()
        };
        empty.compact(0);
        assert!(empty.negative_spans.is_empty() && empty.negative_buckets.is_empty());
    }

    #[test]
    fn add_reduces_to_the_coarser_schema() {
        // From native_histograms.test: histogram_sum{idx="0"} + histogram_sum{idx="3"}.
        let mut a = h(
            "{{schema:0 count:25 sum:3.1 z_bucket:4 z_bucket_w:0.001 buckets:[1 2 0 1 1] n_buckets:[2 4 0 0 1 9]}}",
        );
        let b = h(
            "{{schema:1 count:0 sum:1.3 z_bucket:3 z_bucket_w:0.001 buckets:[2 4 2 3 2 2] n_buckets:[1 2 5 3 8 1 1 1 1 6 3]}}",
        );
        let outcome = a.clone().add(&b).unwrap();
        assert_eq!(outcome, CombineOutcome::default());
        let mut c = b.clone();
        c.add(&a).unwrap();
        a.add(&b).unwrap();
        let want = "{{schema:0 count:25 sum:4.4 z_bucket:7 z_bucket_w:0.001 buckets:[3 8 5 3 1] n_buckets:[3 11 11 2 3 18]}}";
        assert_same(&a, want);
        assert_same(&c, want);
    }

    #[test]
    fn sub_subtracts_bucket_by_bucket() {
        let mut a = h("{{schema:0 count:10 sum:20 z_bucket:2 buckets:[3 5] n_buckets:[1]}}");
        let b = h("{{schema:0 count:4 sum:5 z_bucket:1 buckets:[1 0 2] offset:1}}");
        a.sub(&b).unwrap();
        // Bucket 0: 3, bucket 1: 5-1, bucket 2: -0, bucket 3: -2.
        assert_eq!(a.positive_spans, spans(&[(0, 4)]));
        assert_eq!(a.positive_buckets, vec![3.0, 4.0, -0.0, -2.0]);
        assert_eq!((a.count, a.sum, a.zero_count), (6.0, 15.0, 1.0));
        assert_eq!(a.negative_buckets, vec![1.0]);
    }

    #[test]
    fn add_widens_the_zero_bucket() {
        // Zero threshold 1 against 0.001: buckets of the narrow one up to 1 join its zero
        // count; a populated bucket (1,2] cut by threshold 1.5 would move the threshold to 2.
        let mut a = h(
            "{{schema:0 count:6 sum:0 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 3] offset:-1 n_buckets:[4]}}",
        );
        let b = h("{{schema:0 count:3 sum:0 z_bucket:2 z_bucket_w:1 buckets:[1]}}");
        a.add(&b).unwrap();
        assert_eq!(a.zero_threshold, 1.0);
        // a's buckets (0.25,0.5] and (0.5,1] and its negative [-1,-0.5) move into the zero bucket.
        assert_eq!(a.zero_count, 1.0 + 1.0 + 2.0 + 4.0 + 2.0);
        assert_eq!(a.positive_spans, spans(&[(1, 1)]));
        assert_eq!(a.positive_buckets, vec![3.0]);
        assert!(a.negative_buckets.is_empty());
        // b's bucket at index 0, (0.5, 1], lies inside a's threshold 1 and is skipped
        // (it is part of b's zero count already in a valid histogram).
        let mut x = h("{{schema:0 count:3 sum:0 z_bucket:1 z_bucket_w:1 buckets:[5] offset:1}}");
        let y = h("{{schema:0 count:3 sum:0 z_bucket:1 z_bucket_w:1.5 buckets:[0 7] offset:1}}");
        x.add(&y).unwrap();
        // 1.5 cuts (1,2], populated in x: the threshold moves to 2, x's 5 joins the zero count.
        assert_eq!(x.zero_threshold, 2.0);
        assert_eq!(x.zero_count, 1.0 + 5.0 + 1.0);
        assert_eq!(x.positive_spans, spans(&[(2, 1)]));
        assert_eq!(x.positive_buckets, vec![7.0]);
    }

    #[test]
    fn custom_buckets_add_and_reconcile_bounds() {
        let mut a = h("{{schema:-53 count:6 sum:10 custom_values:[1 2 4] buckets:[1 2 3]}}");
        let b = h("{{schema:-53 count:3 sum:5 custom_values:[1 2 4] buckets:[1 1 1] offset:1}}");
        let out = a.add(&b).unwrap();
        assert!(!out.nhcb_bounds_reconciled);
        assert_same(
            &a,
            "{{schema:-53 count:9 sum:15 custom_values:[1 2 4] buckets:[1 3 4 1]}}",
        );
        // Different bounds: only 2 and +Inf are common; (-Inf,1] and (1,2] merge into
        // (-Inf,2], (2,3] and (3,+Inf] into (2,+Inf].
        let mut a = h("{{schema:-53 count:6 sum:10 custom_values:[1 2 4] buckets:[1 2 3]}}");
        let b = h("{{schema:-53 count:7 sum:5 custom_values:[2 3] buckets:[1 2 4]}}");
        let out = a.add(&b).unwrap();
        assert!(out.nhcb_bounds_reconciled);
        assert_eq!(a.custom_values, vec![2.0]);
        assert_same(
            &a,
            "{{schema:-53 count:13 sum:15 custom_values:[2] buckets:[4 9]}}",
        );
        let mut exp = h("{{schema:0 count:1 sum:1 buckets:[1]}}");
        assert_eq!(exp.add(&b), Err(HistogramError::MixedExponentialCustom));
        assert_eq!(
            b.clone().sub(&exp),
            Err(HistogramError::MixedExponentialCustom)
        );
    }

    #[test]
    fn counter_reset_hints_combine() {
        use ResetHint::*;
        let with = |hint| FloatHistogram {
            counter_reset_hint: hint,
            ..Default::default()
        };
        for (a, b, want, collision) in [
            (Reset, Reset, Reset, false),
            (Gauge, Reset, Gauge, false),
            (NotReset, Gauge, Gauge, false),
            (Unknown, Reset, Unknown, false),
            (NotReset, Unknown, Unknown, false),
            (Reset, NotReset, Unknown, true),
            (NotReset, Reset, Unknown, true),
        ] {
            let mut x = with(a);
            let out = x.add(&with(b)).unwrap();
            assert_eq!(
                (x.counter_reset_hint, out.counter_reset_collision),
                (want, collision)
            );
        }
    }

    #[test]
    fn kahan_add_keeps_small_terms() {
        // From native_histograms.test: sum(histogram_sum) adds ±1e100 sums.
        let inputs = [
            "{{schema:0 count:25 sum:3.1 z_bucket:4 z_bucket_w:0.001 buckets:[1 2 0 1 1] n_buckets:[2 4 0 0 1 9]}}",
            "{{schema:0 count:41 sum:1e100 z_bucket:5 z_bucket_w:0.001 buckets:[1 3 1 2 1 1 1] n_buckets:[0 1 4 2 7 0 0 0 0 5 5 2]}}",
            "{{schema:0 count:41 sum:-1e100 z_bucket:5 z_bucket_w:0.001 buckets:[1 3 1 2 1 1 1] n_buckets:[0 1 4 2 7 0 0 0 0 5 5 2]}}",
            "{{schema:1 count:0 sum:1.3 z_bucket:3 z_bucket_w:0.001 buckets:[2 4 2 3 2 2] n_buckets:[1 2 5 3 8 1 1 1 1 6 3]}}",
        ];
        let mut total = h(inputs[0]);
        let mut comp = None;
        for text in &inputs[1..] {
            total.kahan_add(&h(text), &mut comp).unwrap();
        }
        let comp = comp.expect("compensation");
        total.add(&comp).unwrap();
        assert_same(
            &total,
            "{{schema:0 count:107 sum:4.4 z_bucket:17 z_bucket_w:0.001 buckets:[5 14 7 7 3 2 2] n_buckets:[3 13 19 6 17 18 0 0 0 10 10 4]}}",
        );
        // Plain addition loses the 3.1.
        let mut plain = h(inputs[0]);
        for text in &inputs[1..] {
            plain.add(&h(text)).unwrap();
        }
        assert_eq!(plain.sum, 1.3);
    }

    #[test]
    fn kahan_add_of_custom_buckets() {
        let mut total = h("{{schema:-53 count:1 sum:1e100 custom_values:[1 2] buckets:[1e100]}}");
        let mut comp = None;
        total
            .kahan_add(
                &h("{{schema:-53 count:1 sum:1 custom_values:[1 2] buckets:[1 1]}}"),
                &mut comp,
            )
            .unwrap();
        let out = total
            .kahan_add(
                &h("{{schema:-53 count:1 sum:-1e100 custom_values:[2] buckets:[-1e100]}}"),
                &mut comp,
            )
            .unwrap();
        assert!(out.nhcb_bounds_reconciled);
        total.add(&comp.unwrap()).unwrap();
        assert_eq!(total.custom_values, vec![2.0]);
        assert_eq!(total.sum, 1.0);
        assert_same(
            &total,
            "{{schema:-53 count:3 sum:1 custom_values:[2] buckets:[2]}}",
        );
    }

    #[test]
    fn reduce_resolution_merges_pairs() {
        let mut x =
            h("{{schema:1 count:10 sum:0 buckets:[1 2 3 4] offset:-1 n_buckets:[5] n_offset:3}}");
        // Schema 1 indexes -1..=2 become schema 0 indexes 0, 0, 1, 1.
        x.reduce_resolution(0);
        assert_eq!(x.schema, 0);
        assert_eq!(x.positive_spans, spans(&[(0, 2)]));
        assert_eq!(x.positive_buckets, vec![3.0, 7.0]);
        assert_eq!(x.negative_spans, spans(&[(2, 1)]));
        assert!(x.try_reduce_resolution(0).is_err());
        assert!(x.try_reduce_resolution(CUSTOM_BUCKETS_SCHEMA).is_err());
        x.reduce_resolution(-2);
        // Schema 0 indexes 0 and 1 are schema -2 indexes 0 and 1: (1/16, 1], (1, 16].
        assert_eq!(x.positive_spans, spans(&[(0, 2)]));
        assert_eq!(x.negative_spans, spans(&[(1, 1)]));
        let mut c = h("{{schema:-53 count:1 sum:1 custom_values:[1] buckets:[1]}}");
        assert!(c.try_reduce_resolution(-1).is_err());
    }

    #[test]
    fn detect_reset_cases() {
        let prev = h(
            "{{schema:1 count:10 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 3] n_buckets:[4]}}",
        );
        let same = prev.clone();
        assert!(!same.detect_reset(&prev));
        let grown = h(
            "{{schema:1 count:12 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 5] n_buckets:[4 0 1]}}",
        );
        assert!(!grown.detect_reset(&prev));
        // A bucket went down, the count went down, a populated bucket disappeared.
        let down = h(
            "{{schema:1 count:12 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 1 5] n_buckets:[4]}}",
        );
        assert!(down.detect_reset(&prev));
        let fewer = h(
            "{{schema:1 count:9 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 3] n_buckets:[4]}}",
        );
        assert!(fewer.detect_reset(&prev));
        let missing = h("{{schema:1 count:10 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 3]}}");
        assert!(missing.detect_reset(&prev));
        // Hints decide on their own.
        let mut hinted = missing.clone();
        hinted.counter_reset_hint = ResetHint::NotReset;
        assert!(!hinted.detect_reset(&prev));
        let mut hinted = same.clone();
        hinted.counter_reset_hint = ResetHint::Reset;
        assert!(hinted.detect_reset(&prev));
        // Finer schema or narrower zero bucket: reset.
        let finer = h(
            "{{schema:2 count:10 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 3] n_buckets:[4]}}",
        );
        assert!(finer.detect_reset(&prev));
        let narrower = h(
            "{{schema:1 count:10 sum:10 z_bucket:2 z_bucket_w:0.0001 buckets:[1 2 3] n_buckets:[4]}}",
        );
        assert!(narrower.detect_reset(&prev));
        // Coarser schema: previous is merged first. Schema 1 indexes 0,1,2 are schema 0
        // indexes 0,1,1.
        let coarser = h(
            "{{schema:0 count:10 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 5] n_buckets:[4]}}",
        );
        assert!(!coarser.detect_reset(&prev));
        let coarser_down = h(
            "{{schema:0 count:10 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 4] n_buckets:[4]}}",
        );
        assert!(coarser_down.detect_reset(&prev));
        // Wider zero bucket: previous' buckets inside it count as zero count.
        let wider =
            h("{{schema:1 count:10 sum:10 z_bucket:7 z_bucket_w:1 buckets:[2 3] offset:1}}");
        assert!(!wider.detect_reset(&prev));
        let wider_down =
            h("{{schema:1 count:10 sum:10 z_bucket:6 z_bucket_w:1 buckets:[2 3] offset:1}}");
        assert!(wider_down.detect_reset(&prev));
        // A threshold cutting a populated bucket of previous: reset.
        let cutting =
            h("{{schema:1 count:10 sum:10 z_bucket:9 z_bucket_w:1.2 buckets:[3] offset:2}}");
        assert!(cutting.detect_reset(&prev));
    }

    #[test]
    fn detect_reset_with_custom_buckets() {
        let prev = h("{{schema:-53 count:6 sum:10 custom_values:[1 2 4] buckets:[1 2 3]}}");
        let next = h("{{schema:-53 count:7 sum:10 custom_values:[1 2 4] buckets:[1 3 3]}}");
        assert!(!next.detect_reset(&prev));
        let exp = h("{{schema:0 count:7 sum:10 buckets:[7]}}");
        assert!(exp.detect_reset(&prev));
        assert!(next.detect_reset(&exp));
        // Different bounds: compared between the common bounds 2 and +Inf.
        let other_bounds = h("{{schema:-53 count:7 sum:10 custom_values:[2 8] buckets:[3 2 2]}}");
        assert!(!other_bounds.detect_reset(&prev));
        let other_down = h("{{schema:-53 count:7 sum:10 custom_values:[2 8] buckets:[2 3 2]}}");
        assert!(other_down.detect_reset(&prev));
    }

    #[test]
    fn equals_compares_bits_and_layout() {
        let a = h("{{schema:0 count:3 sum:NaN buckets:[1 2]}}");
        let mut b = a.clone();
        assert!(a.equals(&b));
        b.counter_reset_hint = ResetHint::Gauge;
        assert!(a.equals(&b));
        // Same buckets in two spans joined by nothing.
        b.positive_spans = spans(&[(0, 1), (0, 1)]);
        assert!(a.equals(&b));
        // An extra empty bucket is a different layout.
        b.positive_spans = spans(&[(0, 3)]);
        b.positive_buckets = vec![1.0, 2.0, 0.0];
        assert!(!a.equals(&b));
        let mut c = a.clone();
        c.sum = 1.0;
        assert!(!a.equals(&c));
        let mut d = a.clone();
        d.zero_threshold = 0.5;
        assert!(!a.equals(&d));
        let e = h("{{schema:-53 count:3 sum:NaN custom_values:[1] buckets:[1 2]}}");
        let f = h("{{schema:-53 count:3 sum:NaN custom_values:[2] buckets:[1 2]}}");
        assert!(!e.equals(&f));
    }

    #[test]
    fn buckets_as_prometheus_reports_them() {
        let x =
            h("{{schema:0 count:8 sum:0 z_bucket:2 z_bucket_w:0.6 buckets:[1 0 3] n_buckets:[2]}}");
        let got: Vec<String> = x.buckets().iter().map(|b| b.to_string()).collect();
        // Bucket 0, (0.5, 1], starts at the zero threshold; the negative one ends there.
        assert_eq!(got, ["[-1,-0.6):2", "[-0.6,0.6]:2", "(0.6,1]:1", "(2,4]:3"]);
        let c = h("{{schema:-53 count:3 sum:0 custom_values:[1 2] buckets:[1 0 2]}}");
        let got: Vec<String> = c.buckets().iter().map(|b| b.to_string()).collect();
        assert_eq!(got, ["[-Inf,1]:1", "(2,+Inf]:2"]);
        assert_eq!(c.buckets()[1].index, 2);
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        /// A side as (index, count) with sorted distinct indexes, counts small integers
        /// (exact in floating point, zeros included).
        fn side() -> impl Strategy<Value = Vec<(i32, f64)>> {
            prop::collection::btree_map(-20i32..20, 0u8..4, 0..12)
                .prop_map(|m| m.into_iter().map(|(i, c)| (i, f64::from(c))).collect())
        }

        fn hist(schema: i32, pos: &[(i32, f64)], neg: &[(i32, f64)]) -> FloatHistogram {
            let (positive_spans, positive_buckets) = spans_of(pos);
            let (negative_spans, negative_buckets) = spans_of(neg);
            let total: f64 = pos.iter().chain(neg).map(|e| e.1).sum();
            FloatHistogram {
                schema,
                count: total,
                sum: total,
                positive_spans,
                positive_buckets,
                negative_spans,
                negative_buckets,
                ..Default::default()
            }
        }

        /// Bucket counts by index at `to`, merged from `from`.
        fn dense(entries: &[(i32, f64)], from: i32, to: i32) -> BTreeMap<i32, f64> {
            let mut m = BTreeMap::new();
            for &(i, c) in entries {
                *m.entry(target_index(i, from, to)).or_insert(0.0) += c;
            }
            m
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn add_matches_a_dense_sum(
                sa in 0i32..4, sb in 0i32..4,
                pa in side(), na in side(), pb in side(), nb in side(),
            ) {
                let mut a = hist(sa, &pa, &na);
                let b = hist(sb, &pb, &nb);
                a.add(&b).unwrap();
                let to = sa.min(sb);
                prop_assert_eq!(a.schema, to);
                for (got, (x, y)) in [
                    (indexed(&a.positive_spans, &a.positive_buckets), (&pa, &pb)),
                    (indexed(&a.negative_spans, &a.negative_buckets), (&na, &nb)),
                ] {
                    let mut want = dense(x, sa, to);
                    for (i, c) in dense(y, sb, to) {
                        *want.entry(i).or_insert(0.0) += c;
                    }
                    let got: BTreeMap<i32, f64> = got.into_iter().collect();
                    prop_assert_eq!(got, want);
                }
                let mut back = a.clone();
                back.sub(&b).unwrap();
                prop_assert_eq!(back.count, hist(sa, &pa, &na).count);
            }

            #[test]
            fn zero_bucket_widening_keeps_every_observation(
                sa in 0i32..3, sb in 0i32..3, k in -6i32..6, nudge in 0u8..2,
                pa in side(), na in side(), pb in side(), nb in side(),
            ) {
                let mut a = hist(sa, &pa, &na);
                let mut b = hist(sb, &pb, &nb);
                // b's threshold on one of its bucket boundaries or inside a bucket; a valid b
                // has nothing below it outside its zero bucket.
                b.zero_threshold = exponential_bound(k, sb) * if nudge == 1 { 1.1 } else { 1.0 };
                let inside = |e: &(i32, f64)| exponential_bound(e.0, sb) <= b.zero_threshold;
                let keep = |v: &[(i32, f64)]| v.iter().copied().filter(|e| !inside(e)).collect::<Vec<_>>();
                let moved: f64 = pb.iter().chain(&nb).filter(|e| inside(e)).map(|e| e.1).sum();
                b = hist(sb, &keep(&pb), &keep(&nb));
                b.zero_threshold = exponential_bound(k, sb) * if nudge == 1 { 1.1 } else { 1.0 };
                b.zero_count = moved;
                let total = |h: &FloatHistogram| {
                    h.zero_count
                        + h.positive_buckets.iter().sum::<f64>()
                        + h.negative_buckets.iter().sum::<f64>()
                };
                let want = total(&a) + total(&b);
                a.add(&b).unwrap();
                prop_assert_eq!(total(&a), want);
                prop_assert!(a.zero_threshold >= b.zero_threshold);
                for (i, c) in indexed(&a.positive_spans, &a.positive_buckets)
                    .into_iter()
                    .chain(indexed(&a.negative_spans, &a.negative_buckets))
                {
                    // Nothing populated is left inside the zero bucket.
                    prop_assert!(c == 0.0 || exponential_bound(i, a.schema) > a.zero_threshold);
                }
            }

            #[test]
            fn compact_keeps_counts_and_joins_small_gaps(pa in side(), max in 0usize..4) {
                let mut a = hist(0, &pa, &[]);
                a.compact(max);
                let got = indexed(&a.positive_spans, &a.positive_buckets);
                let nonzero: Vec<(i32, f64)> =
                    pa.iter().copied().filter(|e| e.1 != 0.0).collect();
                let got_nonzero: Vec<(i32, f64)> =
                    got.iter().copied().filter(|e| e.1 != 0.0).collect();
                prop_assert_eq!(got_nonzero, nonzero);
                // Spans are separated by more than `max` missing buckets and hold no empty
                // bucket at either end.
                for s in a.positive_spans.iter().skip(1) {
                    prop_assert!(s.offset as usize > max);
                }
                let mut n = 0;
                for s in &a.positive_spans {
                    let run = &a.positive_buckets[n..n + s.length as usize];
                    prop_assert!(run[0] != 0.0 && run[run.len() - 1] != 0.0);
                    n += s.length as usize;
                }
            }

            #[test]
            fn reduce_resolution_keeps_totals(pa in side(), from in 0i32..8, by in 1i32..4) {
                let mut a = hist(from, &pa, &[]);
                a.reduce_resolution(from - by);
                let got: BTreeMap<i32, f64> =
                    indexed(&a.positive_spans, &a.positive_buckets).into_iter().collect();
                prop_assert_eq!(got, dense(&pa, from, from - by));
                // Every merged bucket covers the same range as the buckets it came from.
                for &(i, _) in &pa {
                    let t = target_index(i, from, from - by);
                    prop_assert!(exponential_bound(t - 1, from - by) <= exponential_bound(i - 1, from));
                    prop_assert!(exponential_bound(t, from - by) >= exponential_bound(i, from));
                }
            }
        }
    }
}
