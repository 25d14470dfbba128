//! Functions over a range window (`rate(x[5m])`, `avg_over_time(x[1h])`, ...), evaluated on
//! the samples of one series inside one window, with Prometheus 3's arithmetic.

use super::{RangeFunc, kahan_inc};

/// The evaluation of a [`RangeFunc`] over one window of one series.
pub(crate) trait WindowEval {
    /// The function over the window's samples (sorted by time, no staleness markers);
    /// `range_start` and `range_end` bound the left-open window, `t` is the evaluation time.
    fn eval(&self, ts: &[i64], vs: &[f64], range_start: i64, range_end: i64, t: i64)
    -> Option<f64>;
}

impl WindowEval for RangeFunc {
    /// The function over the window's samples (sorted by time, no staleness markers);
    /// `range_start` and `range_end` bound the left-open window, `t` is the evaluation time.
    fn eval(
        &self,
        ts: &[i64],
        vs: &[f64],
        range_start: i64,
        range_end: i64,
        t: i64,
    ) -> Option<f64> {
        if ts.is_empty() {
            return None;
        }
        let n = vs.len();
        match self {
            RangeFunc::Rate => extrapolated_rate(ts, vs, range_start, range_end, true, true),
            RangeFunc::Increase => extrapolated_rate(ts, vs, range_start, range_end, true, false),
            RangeFunc::Delta => extrapolated_rate(ts, vs, range_start, range_end, false, false),
            RangeFunc::Irate => instant_rate(ts, vs, true),
            RangeFunc::Idelta => instant_rate(ts, vs, false),
            RangeFunc::Deriv => (n >= 2).then(|| linear_regression(ts, vs, ts[0]).0),
            RangeFunc::PredictLinear(secs) => (n >= 2).then(|| {
                let (slope, intercept) = linear_regression(ts, vs, t);
                slope * f64::from_bits(*secs) + intercept
            }),
            RangeFunc::Resets => Some(vs.windows(2).filter(|w| w[1] < w[0]).count() as f64),
            RangeFunc::Changes => Some(
                vs.windows(2)
                    .filter(|w| !(w[1] == w[0] || (w[1].is_nan() && w[0].is_nan())))
                    .count() as f64,
            ),
            RangeFunc::AvgOverTime => Some(average(vs)),
            RangeFunc::SumOverTime => {
                let (s, c) = vs.iter().fold((0.0, 0.0), |(s, c), v| kahan_inc(*v, s, c));
                Some(s + c)
            }
            RangeFunc::MinOverTime => Some(
                vs[1..]
                    .iter()
                    .fold(vs[0], |m, v| if *v < m || m.is_nan() { *v } else { m }),
            ),
            RangeFunc::MaxOverTime => Some(
                vs[1..]
                    .iter()
                    .fold(vs[0], |m, v| if *v > m || m.is_nan() { *v } else { m }),
            ),
            RangeFunc::CountOverTime => Some(n as f64),
            RangeFunc::LastOverTime => Some(vs[n - 1]),
            RangeFunc::FirstOverTime => Some(vs[0]),
            RangeFunc::PresentOverTime => Some(1.0),
            RangeFunc::StdvarOverTime => Some(variance(vs)),
            RangeFunc::StddevOverTime => Some(variance(vs).sqrt()),
            RangeFunc::QuantileOverTime(q) => Some(quantile(f64::from_bits(*q), vs)),
            RangeFunc::DoubleExponentialSmoothing(sf, tf) => {
                double_exponential_smoothing(vs, f64::from_bits(*sf), f64::from_bits(*tf))
            }
            RangeFunc::MadOverTime => Some(median_absolute_deviation(vs)),
            // The last sample with the smallest (largest) value; NaN is replaced by any.
            RangeFunc::TsOfMinOverTime => Some(ts_of_extreme(ts, vs, |cur, m| cur <= m)),
            RangeFunc::TsOfMaxOverTime => Some(ts_of_extreme(ts, vs, |cur, m| cur >= m)),
            RangeFunc::TsOfFirstOverTime => Some(ts[0] as f64 / 1000.0),
            RangeFunc::TsOfLastOverTime => Some(ts[n - 1] as f64 / 1000.0),
        }
    }
}

/// The time (seconds) of the last sample for which `replaces(value, best)` holds, starting
/// from the first sample; a NaN best is always replaced.
fn ts_of_extreme(ts: &[i64], vs: &[f64], replaces: impl Fn(f64, f64) -> bool) -> f64 {
    let (mut best, mut at) = (vs[0], ts[0]);
    for (t, v) in ts.iter().zip(vs) {
        if replaces(*v, best) || best.is_nan() {
            (best, at) = (*v, *t);
        }
    }
    at as f64 / 1000.0
}

/// Holt's linear (double exponential) smoothing of the window, as Prometheus'
/// `double_exponential_smoothing`; `None` with fewer than two samples.
fn double_exponential_smoothing(vs: &[f64], sf: f64, tf: f64) -> Option<f64> {
    if vs.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, vs[0]);
    let mut trend = vs[1] - vs[0];
    for (i, v) in vs.iter().enumerate().skip(1) {
        let x = sf * v;
        // The trend at this point (the initial trend for the first step).
        if i > 1 {
            trend = tf * (s1 - s0) + (1.0 - tf) * trend;
        }
        let y = (1.0 - sf) * (s1 + trend);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

/// The median of the absolute deviations from the median; NaN when any sample is NaN.
fn median_absolute_deviation(vs: &[f64]) -> f64 {
    if vs.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let median = quantile(0.5, vs);
    let deviations: Vec<f64> = vs.iter().map(|v| (v - median).abs()).collect();
    quantile(0.5, &deviations)
}

/// Prometheus' `extrapolatedRate`: the increase (or delta) over the window, extrapolated
/// towards the window's ends when the first and last samples are close enough to them, and
/// never below zero for counters. `None` with fewer than two samples.
fn extrapolated_rate(
    ts: &[i64],
    vs: &[f64],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if ts.len() < 2 {
        return None;
    }
    let (first_t, last_t) = (ts[0], ts[ts.len() - 1]);
    let (first_v, last_v) = (vs[0], vs[vs.len() - 1]);
    let mut result = last_v - first_v;
    if is_counter {
        let mut prev = first_v;
        for v in &vs[1..] {
            if *v < prev {
                result += prev;
            }
            prev = *v;
        }
    }
    let zero_point = is_counter.then_some((first_v, result));
    let factor = extrapolation_factor(
        (first_t, last_t),
        ts.len(),
        (range_start, range_end),
        zero_point,
        is_rate,
    );
    Some(result * factor)
}

/// The factor that scales the change between the first and last of `n` samples (at
/// `first_last` times) to the window `range`: extrapolated to a window end when the sample
/// nearest to it is closer than 1.1 average intervals, else by half an interval; per
/// second when `is_rate`. `counter`: (first value, increase) of a counter, whose
/// extrapolation towards the start stops where it would reach zero.
pub(super) fn extrapolation_factor(
    (first_t, last_t): (i64, i64),
    n: usize,
    (range_start, range_end): (i64, i64),
    counter: Option<(f64, f64)>,
    is_rate: bool,
) -> f64 {
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled / (n - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if let Some((first_v, result)) = counter {
        // A counter cannot go below zero: do not extrapolate past the point where it would.
        let mut to_zero = to_start;
        if result > 0.0 && first_v >= 0.0 {
            to_zero = sampled * (first_v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    factor
}

/// `irate` / `idelta`: from the last two samples of the window.
pub(super) fn instant_rate(ts: &[i64], vs: &[f64], is_rate: bool) -> Option<f64> {
    let n = ts.len();
    if n < 2 {
        return None;
    }
    let (prev, last) = (vs[n - 2], vs[n - 1]);
    let interval = ts[n - 1] - ts[n - 2];
    if interval == 0 {
        return None;
    }
    let mut result = last - prev;
    if is_rate {
        if last < prev {
            // A counter reset: the last value is the increase since the reset.
            result = last;
        }
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept (at `intercept_time`) with compensated sums, as
/// Prometheus' `linearRegression`.
fn linear_regression(ts: &[i64], vs: &[f64], intercept_time: i64) -> (f64, f64) {
    let init = vs[0];
    if vs.iter().all(|v| *v == init) {
        return if init.is_infinite() {
            (f64::NAN, f64::NAN)
        } else {
            (0.0, init)
        };
    }
    let (mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let n = vs.len() as f64;
    for (t, v) in ts.iter().zip(vs) {
        let x = (t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(*v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// The mean, as Prometheus' `avg_over_time`: a compensated sum while it stays finite, then
/// an incremental mean.
fn average(vs: &[f64]) -> f64 {
    if vs.len() == 1 {
        return vs[0];
    }
    let (mut sum, mut c, mut mean, mut incremental) = (vs[0], 0.0, 0.0, false);
    for (i, f) in vs.iter().enumerate().skip(1) {
        let count = (i + 1) as f64;
        if !incremental {
            let (s, nc) = kahan_inc(*f, sum, c);
            if !s.is_infinite() {
                (sum, c) = (s, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (*f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let current = mean + c;
        (mean, c) = kahan_inc(f / count - current / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / vs.len() as f64
    }
}

/// Population variance with compensated sums (Welford), as Prometheus' `stdvar_over_time`.
fn variance(vs: &[f64]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for f in vs {
        count += 1.0;
        let delta = f - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (f - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

/// Prometheus' `quantile`: linear interpolation between the closest ranks; q outside [0, 1]
/// gives -Inf / +Inf, NaN gives NaN.
pub fn quantile(q: f64, values: &[f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    // Go's sort.Float64s puts NaN first; total_cmp puts positive NaN last: match Go.
    v.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = v.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    v[lower as usize] * (1.0 - weight) + v[upper as usize] * weight
}
