//! PromQL operators as functions from vector batches to vector batches (see [`crate::vector`]
//! for the layout). Each works series by series with pointers that only move forward, so a
//! range query never rescans a window.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use datafusion::error::Result;
use hypnos_schemas::{Labels, is_stale_nan};

// The operator vocabulary is the planner's: these operators evaluate it.
pub(crate) use hypnos_planner::ops::{
    AggOp, AggPositions, BinOp, Cardinality, EvalError, Grouping, HistogramFunc, InstantFunc,
    NAME_DROPPED_LABEL, RangeFunc, Relabel, StepValue, Steps, VectorMatching, VectorOp,
    mark_name_dropped, metric_name, name_dropped, without_metadata_labels,
};

use crate::guard;
use crate::vector::{VectorBuilder, series_rows};
use annotations::{Annotations, QueryPos};

/// Instant-vector selection: at each step `t`, the newest sample in the left-open lookback
/// window `(t - offset - lookback, t - offset]`, unless that sample is a staleness marker.
/// The output sample carries the step's timestamp.
pub fn instant_select(
    input: &RecordBatch,
    steps: Steps,
    lookback: i64,
    offset: i64,
) -> Result<RecordBatch> {
    select_at_steps(input, steps, lookback, offset, false)
}

/// `timestamp(selector)`: like [`instant_select`], but the value is the selected sample's
/// own timestamp in seconds, and the metric name is dropped.
pub fn instant_sample_times(
    input: &RecordBatch,
    steps: Steps,
    lookback: i64,
    offset: i64,
) -> Result<RecordBatch> {
    select_at_steps(input, steps, lookback, offset, true)
}

fn select_at_steps(
    input: &RecordBatch,
    steps: Steps,
    lookback: i64,
    offset: i64,
    sample_times: bool,
) -> Result<RecordBatch> {
    let mut out = VectorBuilder::new();
    for s in series_rows(input)? {
        guard::hold(out.rows())?;
        if sample_times {
            out.start_series(&mark_name_dropped(&s.labels));
        } else {
            out.start_series(&s.labels);
        }
        // `hi` = number of samples with timestamp <= the reference time.
        let mut hi = 0;
        for (i, t) in steps.iter().enumerate() {
            if i % guard::CHECK_EVERY == 0 {
                guard::hold(out.rows())?;
            }
            let reference = t - offset;
            while hi < s.ts.len() && s.ts[hi] <= reference {
                hi += 1;
            }
            if hi == 0 {
                continue;
            }
            let (ts, v) = (s.ts[hi - 1], s.values[hi - 1]);
            if ts <= reference - lookback {
                continue;
            }
            if s.is_histogram(hi - 1) {
                if sample_times {
                    out.push(t, ts as f64 / 1000.0);
                } else {
                    out.push_row(t, &s, hi - 1);
                }
            } else if !is_stale_nan(v) {
                out.push(t, if sample_times { ts as f64 / 1000.0 } else { v });
            }
        }
    }
    Ok(out.finish())
}

/// One series with no labels holding `value` at every step.
pub fn step_values(steps: Steps, value: StepValue) -> Result<RecordBatch> {
    let mut out = VectorBuilder::new();
    out.start_series(&Labels::default());
    for (i, t) in steps.iter().enumerate() {
        if i % guard::CHECK_EVERY == 0 {
            guard::hold(out.rows())?;
        }
        out.push(
            t,
            match value {
                StepValue::Time => t as f64 / 1000.0,
                StepValue::Constant(bits) => f64::from_bits(bits),
            },
        );
    }
    Ok(out.finish())
}

/// `scalar(v)`: at each step, the value of the only float sample, or NaN when there is not
/// exactly one (histogram samples do not count).
pub fn to_scalar(inputs: &[RecordBatch], steps: Steps) -> Result<RecordBatch> {
    let mut at: HashMap<i64, (usize, f64)> = HashMap::new();
    for b in inputs {
        for s in series_rows(b)? {
            for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
                if s.is_histogram(i) {
                    continue;
                }
                let e = at.entry(*t).or_insert((0, *v));
                e.0 += 1;
            }
        }
    }
    let mut out = VectorBuilder::new();
    out.start_series(&Labels::default());
    for t in steps.iter() {
        out.push(
            t,
            match at.get(&t) {
                Some((1, v)) => *v,
                _ => f64::NAN,
            },
        );
    }
    Ok(out.finish())
}

mod instant_fn;
mod misc;
mod window;
pub use instant_fn::{instant_function, instant_function_per_step};
mod count_values;
mod hist_agg;
mod hist_fn;
mod hist_range;
mod histogram;
pub use count_values::{count_values, format_value};
pub use histogram::{
    HistogramNotes, bucket_fraction, bucket_quantile, format_openmetrics_float, histogram_function,
    histogram_function_annotated, histogram_quantile_per_step,
    histogram_quantile_per_step_annotated,
};
pub use misc::{absent, broadcast, forget_reset_hints, relabel};
pub(crate) use window::WindowEval;
pub use window::quantile;

/// Evaluates `func` over the left-open window `(t - offset - range, t - offset]` at each step.
/// Staleness markers are not samples. The metric name is dropped unless the function
/// returns samples unchanged (`last_over_time`).
pub fn range_function(
    input: &RecordBatch,
    func: RangeFunc,
    steps: Steps,
    range: i64,
    offset: i64,
) -> Result<RecordBatch> {
    let notes = Annotations::new();
    range_function_annotated(input, func, steps, range, offset, &notes, None)
}

/// [`range_function`] adding its annotations to `notes`; `pos` is the position of the
/// call's first argument (the range vector, or `quantile_over_time`'s quantile). `rate` and
/// `increase` hint at non-counter names only with a position: the planner leaves it out
/// where the argument is not a range selector (a subquery), as Prometheus says nothing there.
pub fn range_function_annotated(
    input: &RecordBatch,
    func: RangeFunc,
    steps: Steps,
    range: i64,
    offset: i64,
    notes: &Annotations,
    pos: Option<QueryPos>,
) -> Result<RecordBatch> {
    range_function_with(
        input,
        &|_| func,
        steps,
        range,
        offset,
        None,
        Notes { notes, pos },
    )
}

/// [`range_function`] with a parameter evaluated per step (`quantile_over_time(scalar(x),
/// m[5m])`): the one label-less series of `params` replaces the parameter in `func`. With
/// `at` (an `@` on the range), every step reads the window ending at `at - offset`.
#[allow(clippy::too_many_arguments)] // the window, the parameter and where to annotate
pub fn range_function_per_step(
    input: &RecordBatch,
    params: &StepParam,
    func: RangeFunc,
    steps: Steps,
    range: i64,
    offset: i64,
    at: Option<i64>,
    notes: &Annotations,
    pos: Option<QueryPos>,
) -> Result<RecordBatch> {
    let func_at = |t: i64| func.with_param(params.at(t));
    range_function_with(
        input,
        &func_at,
        steps,
        range,
        offset,
        at,
        Notes { notes, pos },
    )
}

/// Where an operator adds its annotations, and the query position they point at.
#[derive(Clone, Copy)]
struct Notes<'a> {
    notes: &'a Annotations,
    pos: Option<QueryPos>,
}

fn range_function_with(
    input: &RecordBatch,
    func_at: &dyn Fn(i64) -> RangeFunc,
    steps: Steps,
    range: i64,
    offset: i64,
    at: Option<i64>,
    notes: Notes<'_>,
) -> Result<RecordBatch> {
    let func = func_at(steps.start);
    // Prometheus' hint that rate() and increase() are meant for counters: a named series
    // whose name does not end like a counter's, when the function gave it some value.
    let counter_only = matches!(func, RangeFunc::Rate | RangeFunc::Increase);
    let mut out = VectorBuilder::new();
    let mut ts_buf: Vec<i64> = Vec::new();
    let mut v_buf: Vec<f64> = Vec::new();
    // A series' histograms, decoded once, beside `ts_buf` (None for a float); empty for a
    // series without histograms.
    let mut h_buf: Vec<Option<hypnos_schemas::histogram::FloatHistogram>> = Vec::new();
    // `h_before[i]`: how many of the first i samples are histograms (a window's kind at
    // once, without scanning it).
    let mut h_before: Vec<usize> = Vec::new();
    for s in series_rows(input)? {
        guard::hold(out.rows())?;
        // Staleness markers never take part in range functions.
        ts_buf.clear();
        v_buf.clear();
        h_buf.clear();
        h_before.clear();
        let with_histograms = s.has_histograms();
        if with_histograms {
            h_before.push(0);
        }
        for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
            let h = if with_histograms {
                s.histogram(i)?
            } else {
                None
            };
            if h.is_some() || !is_stale_nan(*v) {
                ts_buf.push(*t);
                v_buf.push(*v);
                if with_histograms {
                    let n = h_before[h_before.len() - 1];
                    h_before.push(n + usize::from(h.is_some()));
                    h_buf.push(h);
                }
            }
        }
        if func.keeps_name() {
            out.start_series(&s.labels);
        } else {
            out.start_series(&mark_name_dropped(&s.labels));
        }
        let (mut lo, mut hi) = (0, 0);
        // Whether the function gave the series a float value at some step.
        let mut produced = false;
        for (i, t) in steps.iter().enumerate() {
            if i % guard::CHECK_EVERY == 0 {
                guard::hold(out.rows())?;
            }
            let func = func_at(t);
            let end = at.unwrap_or(t) - offset;
            let start = end - range;
            while hi < ts_buf.len() && ts_buf[hi] <= end {
                hi += 1;
            }
            while lo < hi && ts_buf[lo] <= start {
                lo += 1;
            }
            let (wt, wv) = (&ts_buf[lo..hi], &v_buf[lo..hi]);
            if !wt.is_empty()
                && let Err(msg) = func.check()
            {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    EvalError(msg),
                )));
            }
            if with_histograms && h_before[hi] > h_before[lo] {
                let value = hist_range::eval_window(
                    func,
                    wt,
                    wv,
                    &h_buf[lo..hi],
                    (start, end),
                    t,
                    notes,
                    metric_name(&s.labels),
                )?;
                match value {
                    Some(hist_range::StepOut::Float(v)) => {
                        out.push(t, v);
                        produced = true;
                    }
                    Some(hist_range::StepOut::Histogram(h)) => out.push_histogram(t, &h),
                    None => {}
                }
                continue;
            }
            if !wt.is_empty()
                && let RangeFunc::QuantileOverTime(q) = func
            {
                annotations::check_quantile(notes.notes, f64::from_bits(q), notes.pos);
            }
            let value = func.eval(wt, wv, start, end, t);
            if let Some(v) = value {
                out.push(t, v);
                produced = true;
            }
        }
        if counter_only && produced && notes.pos.is_some() {
            let name = metric_name(&s.labels);
            if !name.is_empty() && !annotations::counter_like_name(name) {
                notes
                    .notes
                    .info(&annotations::possible_non_counter(name), notes.pos);
            }
        }
    }
    Ok(out.finish())
}

/// Kahan-Neumaier compensated summation step, as Prometheus' `kahanSumInc`.
pub(crate) use hypnos_schemas::histogram::kahan_inc;

#[derive(Clone, Copy, Default)]
struct Acc {
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental_mean: bool,
}

impl Acc {
    fn add(&mut self, op: AggOp, f: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            (self.value, self.mean) = match op {
                // A first value that is not finite makes the deviation NaN, as in Prometheus.
                AggOp::Stddev | AggOp::Stdvar if !f.is_finite() => (f64::NAN, f),
                AggOp::Stddev | AggOp::Stdvar => (0.0, f),
                AggOp::Group => (1.0, f),
                _ => (f, f),
            };
            return;
        }
        match op {
            AggOp::Sum => (self.value, self.kahan) = kahan_inc(f, self.value, self.kahan),
            AggOp::Min => {
                if self.value > f || self.value.is_nan() {
                    self.value = f;
                }
            }
            AggOp::Max => {
                if self.value < f || self.value.is_nan() {
                    self.value = f;
                }
            }
            AggOp::Stddev | AggOp::Stdvar => {
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            AggOp::Count
            | AggOp::Group
            | AggOp::Quantile(_)
            | AggOp::Topk(_)
            | AggOp::Bottomk(_)
            | AggOp::Limitk(_)
            | AggOp::LimitRatio(_) => {}
            AggOp::Avg => self.add_avg(f),
        }
    }

    /// Prometheus' average: a compensated sum while it stays finite, an incremental mean after.
    fn add_avg(&mut self, f: f64) {
        if !self.incremental_mean {
            let (v, c) = kahan_inc(f, self.value, self.kahan);
            if !v.is_infinite() {
                (self.value, self.kahan) = (v, c);
                return;
            }
            self.incremental_mean = true;
            self.mean = self.value / (self.count - 1.0);
            self.kahan /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if f.is_infinite() && (self.mean > 0.0) == (f > 0.0) {
                return;
            }
            if !f.is_infinite() && !f.is_nan() {
                return;
            }
        }
        let current = self.mean + self.kahan;
        (self.mean, self.kahan) =
            kahan_inc(f / self.count - current / self.count, self.mean, self.kahan);
    }

    fn result(&self, op: AggOp) -> f64 {
        match op {
            AggOp::Sum => self.value + self.kahan,
            AggOp::Min | AggOp::Max | AggOp::Group => self.value,
            AggOp::Count => self.count,
            AggOp::Stdvar => self.value / self.count,
            AggOp::Stddev => (self.value / self.count).sqrt(),
            AggOp::Avg if self.count == 1.0 => self.value,
            AggOp::Avg if self.incremental_mean => self.mean + self.kahan,
            AggOp::Avg => (self.value + self.kahan) / self.count,
            AggOp::Quantile(_)
            | AggOp::Topk(_)
            | AggOp::Bottomk(_)
            | AggOp::Limitk(_)
            | AggOp::LimitRatio(_) => f64::NAN,
        }
    }
}

/// Aggregates every sample of `inputs` per (group labels, timestamp).
pub fn aggregate(inputs: &[RecordBatch], op: AggOp, grouping: &Grouping) -> Result<RecordBatch> {
    aggregate_positioned(
        inputs,
        op,
        grouping,
        &Annotations::new(),
        AggPositions::default(),
    )
}

/// [`aggregate`] adding its annotations to `notes`, at the positions `at`.
pub fn aggregate_positioned(
    inputs: &[RecordBatch],
    op: AggOp,
    grouping: &Grouping,
    notes: &Annotations,
    at: AggPositions,
) -> Result<RecordBatch> {
    let pos = at.param;
    match op {
        AggOp::Quantile(q) => annotations::check_quantile(notes, f64::from_bits(q), pos),
        AggOp::LimitRatio(r) => annotations::check_ratio(notes, f64::from_bits(r), pos),
        _ => {}
    }
    let notes_at = Notes {
        notes,
        pos: at.expr,
    };
    match op {
        AggOp::Topk(k) => {
            return select_k(inputs, &|_| k, grouping, true, notes, at.start);
        }
        AggOp::Bottomk(k) => {
            return select_k(inputs, &|_| k, grouping, false, notes, at.start);
        }
        AggOp::Quantile(q) => {
            return quantiles(inputs, &|_| f64::from_bits(q), grouping, notes_at);
        }
        AggOp::Limitk(k) => return limit_k(inputs, &StepParam::Constant(k as f64), grouping),
        AggOp::LimitRatio(r) => {
            return limit_ratio(inputs, &StepParam::Constant(f64::from_bits(r)), grouping);
        }
        _ => {}
    }
    if hist_agg::any_histograms(inputs) {
        return hist_agg::aggregate_mixed(inputs, op, grouping, notes, at);
    }
    let mut groups: HashMap<Labels, std::collections::BTreeMap<i64, Acc>> = HashMap::new();
    let mut dropped: HashMap<Labels, bool> = HashMap::new();
    for batch in inputs {
        for s in series_rows(batch)? {
            let key = grouping.group_labels(&s.labels);
            *dropped.entry(key.clone()).or_default() |= name_dropped(&s.labels);
            let g = groups.entry(key).or_default();
            for (t, v) in s.ts.iter().zip(s.values) {
                g.entry(*t).or_default().add(op, *v);
            }
        }
    }
    let mut keys: Vec<&Labels> = groups.keys().collect();
    keys.sort();
    let mut out = VectorBuilder::new();
    for k in keys {
        out.start_series(&grouping.output_labels(k, dropped[k]));
        for (t, acc) in &groups[k] {
            out.push(*t, acc.result(op));
        }
    }
    Ok(out.finish())
}

/// An aggregation whose parameter (`k`, `q`, the ratio) is a scalar evaluated per step: the
/// one label-less series of `params` (the parameter in `op` is ignored).
pub fn aggregate_per_step(
    inputs: &[RecordBatch],
    params: &[RecordBatch],
    op: AggOp,
    grouping: &Grouping,
) -> Result<RecordBatch> {
    aggregate_per_step_positioned(
        inputs,
        params,
        op,
        grouping,
        &Annotations::new(),
        AggPositions::default(),
    )
}

/// [`aggregate_per_step`] adding its annotations to `notes`, at the positions `at`.
pub fn aggregate_per_step_positioned(
    inputs: &[RecordBatch],
    params: &[RecordBatch],
    op: AggOp,
    grouping: &Grouping,
    notes: &Annotations,
    at: AggPositions,
) -> Result<RecordBatch> {
    let pos = at.param;
    let param = StepParam::from_batches(params)?;
    for p in param.values() {
        match op {
            AggOp::Quantile(_) => annotations::check_quantile(notes, p, pos),
            AggOp::LimitRatio(_) => annotations::check_ratio(notes, p, pos),
            _ => {}
        }
    }
    match op {
        AggOp::Topk(_) | AggOp::Bottomk(_) => {
            if !param.check_k()? {
                return Ok(VectorBuilder::new().finish());
            }
            let k = |t: i64| param.at(t) as i64;
            let top = matches!(op, AggOp::Topk(_));
            select_k(inputs, &k, grouping, top, notes, at.start)
        }
        AggOp::Quantile(_) => {
            let notes_at = Notes {
                notes,
                pos: at.expr,
            };
            quantiles(inputs, &|t| param.at(t), grouping, notes_at)
        }
        AggOp::Limitk(_) => limit_k(inputs, &param, grouping),
        AggOp::LimitRatio(_) => limit_ratio(inputs, &param, grouping),
        _ => aggregate_positioned(inputs, op, grouping, notes, at),
    }
}

/// `quantile(q, v)` per group and timestamp.
/// Histogram samples are ignored, with an info.
fn quantiles(
    inputs: &[RecordBatch],
    q: &dyn Fn(i64) -> f64,
    grouping: &Grouping,
    notes: Notes<'_>,
) -> Result<RecordBatch> {
    let mut groups: HashMap<Labels, std::collections::BTreeMap<i64, Vec<f64>>> = HashMap::new();
    let mut dropped: HashMap<Labels, bool> = HashMap::new();
    for batch in inputs {
        for s in series_rows(batch)? {
            let key = grouping.group_labels(&s.labels);
            *dropped.entry(key.clone()).or_default() |= name_dropped(&s.labels);
            let g = groups.entry(key).or_default();
            for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
                if s.is_histogram(i) {
                    notes.notes.info(
                        &annotations::histogram_ignored_in_aggregation("quantile"),
                        notes.pos,
                    );
                    continue;
                }
                g.entry(*t).or_default().push(*v);
            }
        }
    }
    let mut keys: Vec<&Labels> = groups.keys().collect();
    keys.sort();
    let mut out = VectorBuilder::new();
    for k in keys {
        out.start_series(&grouping.output_labels(k, dropped[k]));
        for (t, vs) in &groups[k] {
            out.push(*t, quantile(q(*t), vs));
        }
    }
    Ok(out.finish())
}

/// `topk` / `bottomk`: per group and timestamp, the `k` series with the largest (smallest)
/// values, keeping their labels. NaN ranks below every number for topk and above for
/// bottomk, as in Prometheus. Histogram samples are ignored, with an info at `pos`.
fn select_k(
    inputs: &[RecordBatch],
    k: &dyn Fn(i64) -> i64,
    grouping: &Grouping,
    top: bool,
    notes: &Annotations,
    pos: Option<QueryPos>,
) -> Result<RecordBatch> {
    let mut series: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, std::collections::BTreeMap<i64, Vec<(usize, f64)>>> =
        HashMap::new();
    for batch in inputs {
        for s in series_rows(batch)? {
            let idx = series.len();
            let g = groups.entry(grouping.group_labels(&s.labels)).or_default();
            for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
                if s.is_histogram(i) {
                    if k(*t) >= 1 {
                        let name = if top { "topk" } else { "bottomk" };
                        notes.info(&annotations::histogram_ignored_in_aggregation(name), pos);
                    }
                    continue;
                }
                g.entry(*t).or_default().push((idx, *v));
            }
            series.push(s.labels);
        }
    }
    let mut kept: Vec<Vec<(i64, f64)>> = vec![Vec::new(); series.len()];
    {
        // "Better" for topk: larger, and any number beats NaN.
        let better = |a: f64, b: f64| -> bool {
            if a.is_nan() {
                return false;
            }
            if b.is_nan() {
                return true;
            }
            if top { a > b } else { a < b }
        };
        for by_t in groups.values() {
            for (t, cands) in by_t {
                let k = k(*t);
                if k < 1 {
                    continue;
                }
                let mut chosen: Vec<(usize, f64)> = Vec::new();
                for &(i, v) in cands {
                    // Stable: earlier candidates win ties, like Prometheus' heap fill order.
                    let pos = chosen
                        .iter()
                        .position(|&(_, c)| better(v, c))
                        .unwrap_or(chosen.len());
                    if pos < k as usize {
                        chosen.insert(pos, (i, v));
                        chosen.truncate(k as usize);
                    }
                }
                for (i, v) in chosen {
                    kept[i].push((*t, v));
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_by(|a, b| series[*a].cmp(&series[*b]));
    let mut out = VectorBuilder::new();
    for i in order {
        kept[i].sort_by_key(|p| p.0);
        out.start_series(&series[i]);
        for (t, v) in &kept[i] {
            out.push(*t, *v);
        }
    }
    Ok(out.finish())
}

/// `vector op scalar` (or `scalar op vector` when `scalar_on_left`): see
/// [`scalar_binary_annotated`], whose annotations this drops.
pub fn scalar_binary(
    input: &RecordBatch,
    op: BinOp,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<RecordBatch> {
    let notes = Annotations::new();
    scalar_binary_annotated(input, op, scalar, scalar_on_left, return_bool, &notes, None)
}

pub(crate) use hypnos_planner::annotations;
mod binary;
mod info;
mod limit;
pub use binary::{scalar_binary_annotated, vector_binary, vector_binary_annotated};
pub use info::info_join;
pub use limit::{StepParam, limit_k, limit_ratio, prometheus_labels_hash, xxh64};

#[cfg(test)]
mod tests;
