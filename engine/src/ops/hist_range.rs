//! Range functions over windows that hold native histogram samples (rate, increase, delta,
//! irate, idelta, the `*_over_time` family, resets, changes), with Prometheus 3's results
//! and annotations: windows that mix floats and histograms, gauge histograms given to
//! counter functions and the reverse, exponential and custom buckets in one window, and
//! custom bucket bounds reconciled along the way.
//!
//! Windows without a histogram never come here: [`super::range_function`] evaluates them
//! with [`RangeFunc::eval`].

use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::histogram::{CombineOutcome, FloatHistogram, HistogramError, ResetHint};

use super::RangeFunc;
use super::annotations::{self, AnnotationKind};
use super::window::{WindowEval, extrapolation_factor, instant_rate};
use super::{EvalError, Notes};

/// The value of a range function at one step.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum StepOut {
    Float(f64),
    Histogram(FloatHistogram),
}

/// One sample of a window.
#[derive(Clone, Copy, Debug)]
enum Sample<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

/// The annotations of one window, kept until the window is done: some failures replace
/// what was noted before with their own warning, as Prometheus does.
struct Pending<'a> {
    notes: Notes<'a>,
    metric_name: &'a str,
    items: Vec<(AnnotationKind, String)>,
}

impl<'a> Pending<'a> {
    fn new(notes: Notes<'a>, metric_name: &'a str) -> Self {
        Self {
            notes,
            metric_name,
            items: Vec::new(),
        }
    }

    fn warn(&mut self, message: String) {
        self.items.push((AnnotationKind::Warning, message));
    }

    fn info(&mut self, message: String) {
        self.items.push((AnnotationKind::Info, message));
    }

    /// Drops what was noted so far and keeps only this warning.
    fn only_warn(&mut self, message: String) {
        self.items.clear();
        self.warn(message);
    }

    fn flush(self) {
        for (kind, message) in self.items {
            self.notes.notes.add(kind, &message, self.notes.pos);
        }
    }

    fn mixed_floats_histograms(&mut self) {
        self.warn(annotations::mixed_floats_histograms(self.metric_name));
    }

    fn not_counter(&mut self) {
        self.warn(annotations::native_histogram_not_counter(self.metric_name));
    }

    fn not_gauge(&mut self) {
        self.warn(annotations::native_histogram_not_gauge(self.metric_name));
    }

    fn mixed_exponential_custom(&self) -> String {
        annotations::mixed_exponential_custom_histograms(self.metric_name)
    }

    /// Notes what adding or subtracting (`operation`) reported.
    fn combined(&mut self, outcome: CombineOutcome, operation: &str) {
        if outcome.nhcb_bounds_reconciled {
            self.info(annotations::mismatched_custom_buckets(operation));
        }
    }
}

/// A histogram that cannot be combined for another reason than mixing exponential and
/// custom buckets is broken data: the query fails naming it.
fn invalid(e: HistogramError) -> DataFusionError {
    DataFusionError::External(Box::new(EvalError(format!(
        "invalid native histogram: {e}"
    ))))
}

/// `func` over one window of a series that holds at least one histogram. `ts`, `vs` and
/// `hs` are the window's samples (no staleness markers): a sample is the histogram in `hs`
/// when there is one, else the float in `vs`. `metric_name` names the series in
/// annotations.
#[allow(clippy::too_many_arguments)] // the window, its bounds, where to annotate
pub(super) fn eval_window(
    func: RangeFunc,
    ts: &[i64],
    vs: &[f64],
    hs: &[Option<FloatHistogram>],
    (range_start, range_end): (i64, i64),
    t: i64,
    notes: Notes<'_>,
    metric_name: &str,
) -> Result<Option<StepOut>> {
    let samples: Vec<(i64, Sample<'_>)> = ts
        .iter()
        .zip(vs)
        .zip(hs)
        .map(|((t, v), h)| (*t, h.as_ref().map_or(Sample::Float(*v), Sample::Histogram)))
        .collect();
    let Some(&(first_t, first)) = samples.first() else {
        return Ok(None);
    };
    let (last_t, last) = samples[samples.len() - 1];
    let (mut float_ts, mut float_vs) = (Vec::new(), Vec::new());
    let mut hists: Vec<(i64, &FloatHistogram)> = Vec::new();
    for (t, s) in &samples {
        match s {
            Sample::Float(v) => {
                float_ts.push(*t);
                float_vs.push(*v);
            }
            Sample::Histogram(h) => hists.push((*t, h)),
        }
    }
    let mut pending = Pending::new(notes, metric_name);
    let out = match func {
        RangeFunc::Rate | RangeFunc::Increase | RangeFunc::Delta => {
            let is_counter = func != RangeFunc::Delta;
            if !float_ts.is_empty() {
                pending.mixed_floats_histograms();
                None
            } else {
                extrapolated_histogram_rate(
                    &hists,
                    (range_start, range_end),
                    is_counter,
                    func == RangeFunc::Rate,
                    &mut pending,
                )?
                .map(StepOut::Histogram)
            }
        }
        RangeFunc::Irate | RangeFunc::Idelta => {
            instant_value(&samples, func == RangeFunc::Irate, &mut pending)?
        }
        RangeFunc::SumOverTime | RangeFunc::AvgOverTime => {
            if !float_ts.is_empty() {
                pending.mixed_floats_histograms();
                None
            } else {
                let hs: Vec<&FloatHistogram> = hists.iter().map(|(_, h)| *h).collect();
                let sum = func == RangeFunc::SumOverTime;
                summed_histograms(&hs, sum, &mut pending)?.map(StepOut::Histogram)
            }
        }
        RangeFunc::CountOverTime => Some(StepOut::Float(samples.len() as f64)),
        RangeFunc::PresentOverTime => Some(StepOut::Float(1.0)),
        RangeFunc::LastOverTime => Some(sample_out(last)),
        RangeFunc::FirstOverTime => Some(sample_out(first)),
        RangeFunc::TsOfFirstOverTime => Some(StepOut::Float(first_t as f64 / 1000.0)),
        RangeFunc::TsOfLastOverTime => Some(StepOut::Float(last_t as f64 / 1000.0)),
        RangeFunc::Resets => Some(StepOut::Float(resets(&samples) as f64)),
        RangeFunc::Changes => Some(StepOut::Float(changes(&samples) as f64)),
        // The rest only take floats: histograms are left out, with an info when floats
        // remain (with no float there is nothing to say and no result).
        RangeFunc::Deriv
        | RangeFunc::PredictLinear(_)
        | RangeFunc::MinOverTime
        | RangeFunc::MaxOverTime
        | RangeFunc::StddevOverTime
        | RangeFunc::StdvarOverTime
        | RangeFunc::QuantileOverTime(_)
        | RangeFunc::DoubleExponentialSmoothing(..)
        | RangeFunc::MadOverTime
        | RangeFunc::TsOfMinOverTime
        | RangeFunc::TsOfMaxOverTime => {
            if float_ts.is_empty() {
                None
            } else {
                if let RangeFunc::QuantileOverTime(q) = func {
                    annotations::check_quantile(notes.notes, f64::from_bits(q), notes.pos);
                }
                pending.info(annotations::histogram_ignored_in_mixed_range(metric_name));
                func.eval(&float_ts, &float_vs, range_start, range_end, t)
                    .map(StepOut::Float)
            }
        }
    };
    pending.flush();
    Ok(out)
}

fn sample_out(s: Sample<'_>) -> StepOut {
    match s {
        Sample::Float(v) => StepOut::Float(v),
        Sample::Histogram(h) => StepOut::Histogram(h.clone()),
    }
}

/// `rate`, `increase` (`is_counter`) and `delta` over a window of histograms only:
/// Prometheus' `extrapolatedRate` with the change computed by [`histogram_rate`] and the
/// counter's zero point taken from the observation counts.
fn extrapolated_histogram_rate(
    hists: &[(i64, &FloatHistogram)],
    range: (i64, i64),
    is_counter: bool,
    is_rate: bool,
    pending: &mut Pending<'_>,
) -> Result<Option<FloatHistogram>> {
    if hists.len() < 2 {
        return Ok(None);
    }
    let Some(mut result) = histogram_rate(hists, is_counter, pending)? else {
        return Ok(None);
    };
    let (first_t, first) = hists[0];
    let last_t = hists[hists.len() - 1].0;
    let counter = is_counter.then_some((first.count, result.count));
    let factor = extrapolation_factor((first_t, last_t), hists.len(), range, counter, is_rate);
    result.mul(factor);
    Ok(Some(result))
}

/// The change from the first to the last histogram of the window (at the lowest schema
/// among them), for counters plus every value lost to a counter reset; a gauge histogram
/// (the result is one). `None` when the histograms cannot be combined, with the warning.
fn histogram_rate(
    points: &[(i64, &FloatHistogram)],
    is_counter: bool,
    pending: &mut Pending<'_>,
) -> Result<Option<FloatHistogram>> {
    let first = points[0].1;
    let last = points[points.len() - 1].1;
    if is_counter && (first.is_gauge() || last.is_gauge()) {
        pending.not_counter();
    }
    // A reset between the first two samples makes the first irrelevant (the increase
    // starts from zero), whatever its bucket layout.
    let empty;
    let mut prev = first;
    if is_counter {
        let second = points[1].1;
        if second.detect_reset(first) {
            empty = FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..FloatHistogram::default()
            };
            prev = &empty;
        }
    }
    let custom = prev.uses_custom_buckets();
    if last.uses_custom_buckets() != custom {
        let msg = pending.mixed_exponential_custom();
        pending.warn(msg);
        return Ok(None);
    }
    let mut min_schema = last.schema.min(prev.schema);
    if is_counter {
        for (_, curr) in &points[1..points.len() - 1] {
            if curr.is_gauge() {
                pending.not_counter();
            }
            min_schema = min_schema.min(curr.schema);
            if curr.uses_custom_buckets() != custom {
                let msg = pending.mixed_exponential_custom();
                pending.only_warn(msg);
                return Ok(None);
            }
        }
    }
    let mut h = last.clone();
    if !custom && min_schema < h.schema {
        h.reduce_resolution(min_schema);
    }
    // Counter resets are handled below: a reset-hint conflict in these is expected.
    match h.sub(prev) {
        Ok(outcome) => pending.combined(outcome, "subtraction"),
        Err(HistogramError::MixedExponentialCustom) => {
            let msg = pending.mixed_exponential_custom();
            pending.only_warn(msg);
            return Ok(None);
        }
        Err(e) => return Err(invalid(e)),
    }
    if is_counter {
        for (_, curr) in &points[1..] {
            if curr.detect_reset(prev) {
                match h.add(prev) {
                    Ok(outcome) => pending.combined(outcome, "addition"),
                    Err(HistogramError::MixedExponentialCustom) => {
                        let msg = pending.mixed_exponential_custom();
                        pending.only_warn(msg);
                        return Ok(None);
                    }
                    Err(e) => return Err(invalid(e)),
                }
            }
            prev = curr;
        }
    } else if !first.is_gauge() || !last.is_gauge() {
        pending.not_gauge();
    }
    h.counter_reset_hint = ResetHint::Gauge;
    h.compact(0);
    Ok(Some(h))
}

/// `irate` (`is_rate`) and `idelta`: from the window's last two samples, both floats or
/// both histograms.
fn instant_value(
    samples: &[(i64, Sample<'_>)],
    is_rate: bool,
    pending: &mut Pending<'_>,
) -> Result<Option<StepOut>> {
    let n = samples.len();
    if n < 2 {
        return Ok(None);
    }
    let ((t0, s0), (t1, s1)) = (samples[n - 2], samples[n - 1]);
    let interval = t1 - t0;
    if interval == 0 {
        return Ok(None);
    }
    match (s0, s1) {
        (Sample::Float(a), Sample::Float(b)) => {
            Ok(instant_rate(&[t0, t1], &[a, b], is_rate).map(StepOut::Float))
        }
        (Sample::Histogram(prev), Sample::Histogram(last)) => {
            if is_rate && (prev.is_gauge() || last.is_gauge()) {
                pending.not_counter();
            }
            if !is_rate && (!prev.is_gauge() || !last.is_gauge()) {
                pending.not_gauge();
            }
            let mut result = last.clone();
            // After a counter reset the last histogram is the increase.
            if !is_rate || !last.detect_reset(prev) {
                match result.sub(prev) {
                    Ok(outcome) => pending.combined(outcome, "subtraction"),
                    Err(HistogramError::MixedExponentialCustom) => {
                        let msg = pending.mixed_exponential_custom();
                        pending.warn(msg);
                        return Ok(None);
                    }
                    Err(e) => return Err(invalid(e)),
                }
            }
            result.counter_reset_hint = ResetHint::Gauge;
            result.compact(0);
            if is_rate {
                result.div(interval as f64 / 1000.0);
            }
            Ok(Some(StepOut::Histogram(result)))
        }
        _ => {
            pending.mixed_floats_histograms();
            Ok(None)
        }
    }
}

/// `sum_over_time` (`sum`) or `avg_over_time` of histograms, with compensated sums; the
/// average switches to an incremental mean once the sum overflows, as Prometheus does.
fn summed_histograms(
    hs: &[&FloatHistogram],
    sum: bool,
    pending: &mut Pending<'_>,
) -> Result<Option<FloatHistogram>> {
    let (mut reset_seen, mut not_reset_seen, mut reconciled) = (false, false, false);
    let mut track = |h: &FloatHistogram| match h.counter_reset_hint {
        ResetHint::Reset => reset_seen = true,
        ResetHint::NotReset => not_reset_seen = true,
        _ => {}
    };
    for h in hs {
        track(h);
    }
    let result = if sum {
        kahan_sum(hs, &mut reconciled)
    } else {
        kahan_mean(hs, &mut reconciled)
    };
    match result {
        Ok(h) => {
            if reset_seen && not_reset_seen {
                pending.warn(annotations::histogram_counter_reset_collision(
                    "aggregation",
                ));
            }
            if reconciled {
                pending.info(annotations::mismatched_custom_buckets("aggregation"));
            }
            Ok(Some(h))
        }
        Err(HistogramError::MixedExponentialCustom) => {
            let msg = pending.mixed_exponential_custom();
            pending.only_warn(msg);
            Ok(None)
        }
        Err(e) => Err(invalid(e)),
    }
}

fn kahan_sum(
    hs: &[&FloatHistogram],
    reconciled: &mut bool,
) -> std::result::Result<FloatHistogram, HistogramError> {
    let mut sum = hs[0].clone();
    let mut c = None;
    for h in &hs[1..] {
        *reconciled |= sum.kahan_add(h, &mut c)?.nhcb_bounds_reconciled;
    }
    if let Some(c) = c {
        *reconciled |= sum.add(&c)?.nhcb_bounds_reconciled;
    }
    Ok(sum)
}

fn kahan_mean(
    hs: &[&FloatHistogram],
    reconciled: &mut bool,
) -> std::result::Result<FloatHistogram, HistogramError> {
    let mut sum = hs[0].clone();
    let mut c: Option<FloatHistogram> = None;
    let mut mean: Option<FloatHistogram> = None;
    let mut count = 1.0;
    for (i, h) in hs.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if mean.is_none() {
            let (mut next, mut next_c) = (sum.clone(), c.clone());
            *reconciled |= next.kahan_add(h, &mut next_c)?.nhcb_bounds_reconciled;
            if !next.has_overflow() {
                (sum, c) = (next, next_c);
                continue;
            }
            // The sum overflows: go on with an incremental mean.
            let mut m = sum.clone();
            m.div(count - 1.0);
            if let Some(c) = c.as_mut() {
                c.div(count - 1.0);
            }
            mean = Some(m);
        }
        // Set above when the sum overflowed.
        let Some(m) = mean.as_mut() else {
            continue;
        };
        let q = (count - 1.0) / count;
        if let Some(c) = c.as_mut() {
            c.mul(q);
        }
        let mut part = (*h).clone();
        part.div(count);
        m.mul(q);
        *reconciled |= m.kahan_add(&part, &mut c)?.nhcb_bounds_reconciled;
    }
    match mean {
        Some(mut m) => {
            if let Some(c) = c {
                m.add(&c)?;
            }
            Ok(m)
        }
        None => {
            sum.div(count);
            if let Some(mut c) = c {
                c.div(count);
                sum.add(&c)?;
            }
            Ok(sum)
        }
    }
}

/// Counter resets in the window: a float going down, a histogram that
/// [`FloatHistogram::detect_reset`] says reset, and every change between a float and a
/// histogram.
fn resets(samples: &[(i64, Sample<'_>)]) -> usize {
    samples
        .windows(2)
        .filter(|w| match (w[0].1, w[1].1) {
            (Sample::Float(a), Sample::Float(b)) => b < a,
            (Sample::Histogram(a), Sample::Histogram(b)) => b.detect_reset(a),
            _ => true,
        })
        .count()
}

/// Changes of value in the window: floats that differ (NaN equal to NaN), histograms that
/// are not [`FloatHistogram::equals`], and every change between a float and a histogram.
fn changes(samples: &[(i64, Sample<'_>)]) -> usize {
    samples
        .windows(2)
        .filter(|w| match (w[0].1, w[1].1) {
            (Sample::Float(a), Sample::Float(b)) => !(a == b || (a.is_nan() && b.is_nan())),
            (Sample::Histogram(a), Sample::Histogram(b)) => !b.equals(a),
            _ => true,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::annotations::{Annotations, QueryPos};
    use crate::ops::{Steps, range_function_annotated};
    use crate::vector::{VectorBuilder, series_rows};
    use arrow::array::RecordBatch;
    use hypnos_schemas::Labels;
    use hypnos_schemas::histogram::Span;

    const POS: QueryPos = QueryPos { line: 1, col: 6 };

    /// A sample of a test series.
    enum In {
        F(f64),
        H(FloatHistogram),
    }

    /// A schema-0 histogram with `buckets` from index 0, its count their sum and its sum
    /// the count.
    fn hist(buckets: &[f64]) -> FloatHistogram {
        let count = buckets.iter().sum();
        FloatHistogram {
            count,
            sum: count,
            positive_spans: vec![Span {
                offset: 0,
                length: buckets.len() as u32,
            }],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    fn gauge(buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: ResetHint::Gauge,
            ..hist(buckets)
        }
    }

    fn series(name: &str, samples: Vec<(i64, In)>) -> RecordBatch {
        let mut b = VectorBuilder::new();
        b.start_series(&Labels::from_pairs([("__name__", name)]));
        for (t, s) in samples {
            match s {
                In::F(v) => b.push(t, v),
                In::H(h) => b.push_histogram(t, &h),
            }
        }
        b.finish()
    }

    /// The one step's result of `func` over the window `(t - range, t]` of `batch`, with
    /// the warnings and infos it caused.
    fn eval(
        batch: &RecordBatch,
        func: RangeFunc,
        t: i64,
        range: i64,
    ) -> (Option<StepOut>, Vec<String>, Vec<String>) {
        let notes = Annotations::new();
        let out =
            range_function_annotated(batch, func, Steps::instant(t), range, 0, &notes, Some(POS))
                .unwrap();
        let rows = series_rows(&out).unwrap();
        assert!(rows.len() <= 1);
        let value = rows.first().map(|s| {
            assert_eq!(s.ts, &[t]);
            match s.histogram(0).unwrap() {
                Some(h) => StepOut::Histogram(h),
                None => StepOut::Float(s.values[0]),
            }
        });
        (
            value,
            notes.texts(AnnotationKind::Warning),
            notes.texts(AnnotationKind::Info),
        )
    }

    fn mixed() -> RecordBatch {
        series(
            "m",
            vec![
                (0, In::F(3.0)),
                (10_000, In::F(1.0)),
                (20_000, In::H(hist(&[1.0, 2.0]))),
                (30_000, In::F(5.0)),
                (40_000, In::H(hist(&[2.0, 2.0]))),
            ],
        )
    }

    #[test]
    fn counting_functions_count_histograms() {
        let b = mixed();
        let f = |func| eval(&b, func, 40_000, 60_000).0;
        assert_eq!(f(RangeFunc::CountOverTime), Some(StepOut::Float(5.0)));
        assert_eq!(f(RangeFunc::PresentOverTime), Some(StepOut::Float(1.0)));
        assert_eq!(f(RangeFunc::TsOfLastOverTime), Some(StepOut::Float(40.0)));
        assert_eq!(f(RangeFunc::TsOfFirstOverTime), Some(StepOut::Float(0.0)));
        assert_eq!(f(RangeFunc::FirstOverTime), Some(StepOut::Float(3.0)));
        assert_eq!(
            f(RangeFunc::LastOverTime),
            Some(StepOut::Histogram(hist(&[2.0, 2.0])))
        );
        // last_over_time keeps the metric name, also for a histogram.
        let notes = Annotations::new();
        let out = range_function_annotated(
            &b,
            RangeFunc::LastOverTime,
            Steps::instant(40_000),
            60_000,
            0,
            &notes,
            None,
        )
        .unwrap();
        assert_eq!(
            series_rows(&out).unwrap()[0].labels.to_string(),
            r#"{__name__="m"}"#
        );
        // A window with one float only is evaluated as floats.
        assert_eq!(
            eval(&b, RangeFunc::LastOverTime, 35_000, 10_000).0,
            Some(StepOut::Float(5.0))
        );
    }

    #[test]
    fn float_functions_skip_histograms_with_an_info() {
        let b = mixed();
        let info = r#"PromQL info: ignored histograms in a range containing both floats and histograms for metric name "m" (1:6)"#;
        let (v, warns, infos) = eval(&b, RangeFunc::MaxOverTime, 40_000, 60_000);
        assert_eq!(v, Some(StepOut::Float(5.0)));
        assert!(warns.is_empty());
        assert_eq!(infos, vec![info]);
        let (v, _, infos) = eval(&b, RangeFunc::TsOfMinOverTime, 40_000, 60_000);
        assert_eq!(v, Some(StepOut::Float(10.0)));
        assert_eq!(infos, vec![info]);
        // deriv needs two floats: with one, no result but still the info.
        let (v, _, infos) = eval(&b, RangeFunc::Deriv, 40_000, 15_000);
        assert_eq!(v, None);
        assert_eq!(infos, vec![info]);
        // Histograms only: nothing, silently.
        let (v, warns, infos) = eval(&b, RangeFunc::StddevOverTime, 40_000, 5_000);
        assert_eq!((v, warns.len(), infos.len()), (None, 0, 0));
        // quantile_over_time checks its quantile only when floats remain.
        let q = RangeFunc::QuantileOverTime(2f64.to_bits());
        let (v, warns, _) = eval(&b, q, 40_000, 5_000);
        assert_eq!((v, warns.len()), (None, 0));
        let (v, warns, _) = eval(&b, q, 40_000, 60_000);
        assert_eq!(v, Some(StepOut::Float(f64::INFINITY)));
        assert_eq!(warns.len(), 1, "{warns:?}");
    }

    #[test]
    fn mixed_windows_give_nothing_where_floats_and_histograms_would_combine() {
        let b = mixed();
        let warn = r#"PromQL warning: encountered a mix of histograms and floats for metric name "m" (1:6)"#;
        for func in [
            RangeFunc::Rate,
            RangeFunc::Increase,
            RangeFunc::Delta,
            RangeFunc::SumOverTime,
            RangeFunc::AvgOverTime,
        ] {
            let (v, warns, infos) = eval(&b, func, 40_000, 60_000);
            assert_eq!(v, None, "{func:?}");
            assert_eq!(warns, vec![warn], "{func:?}");
            assert!(infos.is_empty());
        }
        // irate/idelta look at the last two samples only.
        let (v, warns, _) = eval(&b, RangeFunc::Irate, 40_000, 60_000);
        assert_eq!((v, warns), (None, vec![warn.to_string()]));
        let (v, warns, _) = eval(&b, RangeFunc::Idelta, 30_000, 60_000);
        assert_eq!((v, warns), (None, vec![warn.to_string()]));
        let b = series(
            "m",
            vec![
                (0, In::H(hist(&[1.0]))),
                (10_000, In::F(4.0)),
                (20_000, In::F(1.0)),
            ],
        );
        let (v, warns, _) = eval(&b, RangeFunc::Irate, 20_000, 60_000);
        assert_eq!((v, warns.len()), (Some(StepOut::Float(0.1)), 0));
        let (v, _, _) = eval(&b, RangeFunc::Idelta, 20_000, 60_000);
        assert_eq!(v, Some(StepOut::Float(-3.0)));
    }

    #[test]
    fn rate_of_histograms_extrapolates_like_floats() {
        // Counter 0, 10, 20, ... every 15s in one bucket: as the float test, the rate over
        // (0, 60] is 40 / 60 per second, the result a gauge histogram.
        let pts = (0..=8)
            .map(|i| (i * 15_000, In::H(hist(&[i as f64 * 10.0]))))
            .collect();
        let b = series("m_total", pts);
        let (v, warns, infos) = eval(&b, RangeFunc::Rate, 60_000, 60_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        assert!((h.count - 40.0 / 60.0).abs() < 1e-12, "{h:?}");
        assert!((h.positive_buckets[0] - 40.0 / 60.0).abs() < 1e-12, "{h:?}");
        assert_eq!(h.counter_reset_hint, ResetHint::Gauge);
        assert!(warns.is_empty() && infos.is_empty(), "{warns:?} {infos:?}");
        // A reset adds the value before it: 20, 30, then 5, 15 -> increase 10 + 5 + 10 = 25
        // over 45s of samples, extrapolated by 15s towards the start (the zero point, 36s
        // away, is farther) and not towards the end.
        let b = series(
            "m",
            vec![
                (15_000, In::H(hist(&[20.0]))),
                (30_000, In::H(hist(&[30.0]))),
                (45_000, In::H(hist(&[5.0]))),
                (60_000, In::H(hist(&[15.0]))),
            ],
        );
        let (v, _, infos) = eval(&b, RangeFunc::Increase, 60_000, 60_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        assert!((h.count - 25.0 * 60.0 / 45.0).abs() < 1e-9, "{h:?}");
        // Histogram results give no hint about counter names.
        assert!(infos.is_empty(), "{infos:?}");
    }

    #[test]
    fn rate_and_delta_warn_about_the_wrong_kind_of_histogram() {
        let b = series(
            "m",
            vec![
                (0, In::H(gauge(&[1.0]))),
                (30_000, In::H(gauge(&[2.0]))),
                (60_000, In::H(gauge(&[3.0]))),
            ],
        );
        let (v, warns, _) = eval(&b, RangeFunc::Rate, 60_000, 90_000);
        assert!(matches!(v, Some(StepOut::Histogram(_))));
        assert_eq!(
            warns,
            vec![r#"PromQL warning: this native histogram metric is not a counter: "m" (1:6)"#]
        );
        let (_, warns, _) = eval(&b, RangeFunc::Delta, 60_000, 90_000);
        assert!(warns.is_empty(), "{warns:?}");
        let b = series(
            "m",
            vec![(0, In::H(hist(&[1.0]))), (30_000, In::H(hist(&[2.0])))],
        );
        let (v, warns, _) = eval(&b, RangeFunc::Idelta, 30_000, 60_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        assert_eq!((h.count, h.counter_reset_hint), (1.0, ResetHint::Gauge));
        assert_eq!(
            warns,
            vec![r#"PromQL warning: this native histogram metric is not a gauge: "m" (1:6)"#]
        );
    }

    #[test]
    fn irate_of_histograms_takes_the_last_after_a_reset() {
        let b = series(
            "m",
            vec![
                (0, In::H(hist(&[4.0]))),
                (10_000, In::H(hist(&[6.0]))),
                (20_000, In::H(hist(&[2.0]))),
            ],
        );
        let (v, warns, _) = eval(&b, RangeFunc::Irate, 20_000, 60_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        // 6 -> 2 is a reset: the increase is 2 over 10s.
        assert_eq!((h.count, h.counter_reset_hint), (0.2, ResetHint::Gauge));
        assert!(warns.is_empty(), "{warns:?}");
        let (v, _, _) = eval(&b, RangeFunc::Irate, 10_000, 60_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        assert_eq!(h.count, 0.2);
    }

    #[test]
    fn per_step_parameters_see_histograms_too() {
        let b = mixed();
        let notes = Annotations::new();
        let out = crate::ops::range_function_per_step(
            &b,
            &crate::ops::StepParam::Constant(0.5),
            RangeFunc::QuantileOverTime(0),
            Steps::instant(40_000),
            60_000,
            0,
            None,
            &notes,
            Some(POS),
        )
        .unwrap();
        // The median of the floats 3, 1, 5; the histograms are left out with an info.
        assert_eq!(series_rows(&out).unwrap()[0].values, &[3.0]);
        assert_eq!(notes.texts(AnnotationKind::Info).len(), 1);
    }

    #[test]
    fn exponential_and_custom_buckets_do_not_combine() {
        let custom = FloatHistogram {
            schema: hypnos_schemas::histogram::CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![5.0, 10.0],
            ..hist(&[1.0])
        };
        let b = series(
            "m",
            vec![
                (0, In::H(hist(&[1.0]))),
                (30_000, In::H(custom.clone())),
                (60_000, In::H(hist(&[3.0]))),
            ],
        );
        let warn = r#"PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name "m" (1:6)"#;
        for func in [RangeFunc::Rate, RangeFunc::SumOverTime] {
            let (v, warns, _) = eval(&b, func, 60_000, 90_000);
            assert_eq!((v, warns), (None, vec![warn.to_string()]), "{func:?}");
        }
    }

    #[test]
    fn sums_of_histograms_are_compensated() {
        let with_sum = |s: f64, count: f64| FloatHistogram {
            count,
            sum: s,
            ..FloatHistogram::default()
        };
        let b = series(
            "m",
            vec![
                (0, In::H(with_sum(1.0, 1.0))),
                (60_000, In::H(with_sum(1e100, 2.0))),
                (120_000, In::H(with_sum(1.0, 3.0))),
                (180_000, In::H(with_sum(-1e100, 4.0))),
            ],
        );
        let (v, _, _) = eval(&b, RangeFunc::SumOverTime, 180_000, 240_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        assert_eq!((h.count, h.sum), (10.0, 2.0));
        let (v, _, _) = eval(&b, RangeFunc::AvgOverTime, 180_000, 240_000);
        let Some(StepOut::Histogram(h)) = v else {
            panic!("{v:?}");
        };
        assert_eq!((h.count, h.sum), (2.5, 0.5));
        // One sample: the average is the sample.
        let (v, _, _) = eval(&b, RangeFunc::AvgOverTime, 0, 60_000);
        assert_eq!(v, Some(StepOut::Histogram(with_sum(1.0, 1.0))));
    }

    #[test]
    fn resets_and_changes_count_type_switches() {
        let b = series(
            "m",
            vec![
                (0, In::F(3.0)),
                (10_000, In::F(1.0)),
                (20_000, In::H(hist(&[2.0]))),
                (30_000, In::H(hist(&[2.0]))),
                (40_000, In::H(hist(&[1.0]))),
                (50_000, In::F(1.0)),
            ],
        );
        // Resets: 3 -> 1, float -> histogram, 2 -> 1, histogram -> float.
        let (v, _, _) = eval(&b, RangeFunc::Resets, 50_000, 60_000);
        assert_eq!(v, Some(StepOut::Float(4.0)));
        // Changes: 3 -> 1, float -> histogram, 2 -> 1, histogram -> float.
        let (v, _, _) = eval(&b, RangeFunc::Changes, 50_000, 60_000);
        assert_eq!(v, Some(StepOut::Float(4.0)));
    }
}
