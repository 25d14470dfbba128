//! `limitk` and `limit_ratio`, and the parameters of aggregations that Prometheus evaluates
//! per step (`topk(scalar(x), v)`).

use std::collections::HashMap;

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::tenant::TENANT_LABEL;

use super::{EvalError, Grouping};
use crate::vector::{SeriesRows, VectorBuilder, series_rows};

/// The parameter of an aggregation (`k`, `q`, a ratio) or of `quantile_over_time`: a
/// constant, or a scalar expression evaluated at every step.
#[derive(Clone, Debug)]
pub enum StepParam {
    Constant(f64),
    /// The value at each step; a step without one reads 0, as in Prometheus.
    PerStep(HashMap<i64, f64>),
}

impl StepParam {
    /// A per-step parameter from the one label-less series of a scalar plan.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut values = HashMap::new();
        for b in batches {
            for s in series_rows(b)? {
                for (t, v) in s.ts.iter().zip(s.values) {
                    values.insert(*t, *v);
                }
            }
        }
        Ok(StepParam::PerStep(values))
    }

    pub fn at(&self, t: i64) -> f64 {
        match self {
            StepParam::Constant(v) => *v,
            StepParam::PerStep(m) => m.get(&t).copied().unwrap_or(0.0),
        }
    }

    pub(crate) fn values(&self) -> Vec<f64> {
        match self {
            StepParam::Constant(v) => vec![*v],
            StepParam::PerStep(m) => m.values().copied().collect(),
        }
    }

    pub fn any_nan(&self) -> bool {
        self.values().iter().any(|v| v.is_nan())
    }

    /// The largest value (NaN if any is NaN, as Go's `math.Max`).
    pub fn max(&self) -> f64 {
        self.values().into_iter().fold(f64::MIN, |a, v| {
            if a.is_nan() || v.is_nan() {
                f64::NAN
            } else {
                a.max(v)
            }
        })
    }

    /// The smallest value (NaN if any is NaN, as Go's `math.Min`).
    pub fn min(&self) -> f64 {
        self.values().into_iter().fold(f64::MAX, |a, v| {
            if a.is_nan() || v.is_nan() {
                f64::NAN
            } else {
                a.min(v)
            }
        })
    }

    /// Prometheus' checks on a `k` (topk, bottomk, limitk) before any step is evaluated:
    /// `Ok(false)` when every k is below 1 (an empty result).
    pub fn check_k(&self) -> Result<bool> {
        if self.max() < 1.0 {
            return Ok(false);
        }
        if self.any_nan() {
            return Err(eval_error("Parameter value is NaN".into()));
        }
        let min = self.min();
        if min <= i64::MIN as f64 {
            return Err(eval_error(format!("Scalar value {min} underflows int64")));
        }
        let max = self.max();
        if max >= i64::MAX as f64 {
            return Err(eval_error(format!("Scalar value {max} overflows int64")));
        }
        Ok(true)
    }

    /// Prometheus' checks on a `limit_ratio` ratio: `Ok(false)` when every ratio is 0.
    pub fn check_ratio(&self) -> Result<bool> {
        if self.max() == 0.0 && self.min() == 0.0 {
            return Ok(false);
        }
        if self.any_nan() {
            return Err(eval_error("Ratio value is NaN".into()));
        }
        Ok(true)
    }
}

fn eval_error(msg: String) -> DataFusionError {
    DataFusionError::External(Box::new(EvalError(msg)))
}

/// The series of `inputs`, in input order.
fn input_series(inputs: &[RecordBatch]) -> Result<Vec<SeriesRows<'_>>> {
    let mut out = Vec::new();
    for batch in inputs {
        out.extend(series_rows(batch)?);
    }
    Ok(out)
}

/// Writes the kept rows (indexes into each series' rows) of each series, series in label
/// order. Rows are copied whole, so histogram samples pass through unchanged.
fn finish(series: &[SeriesRows<'_>], kept: Vec<Vec<usize>>) -> RecordBatch {
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_by(|a, b| series[*a].labels.cmp(&series[*b].labels));
    let mut out = VectorBuilder::new();
    for i in order {
        if kept[i].is_empty() {
            continue;
        }
        let s = &series[i];
        out.start_series(&s.labels);
        // Kept rows are in row order, which is time order.
        for &j in &kept[i] {
            out.push_row(s.ts[j], s, j);
        }
    }
    out.finish()
}

/// `limitk(k, v)`: per group and step, the first `k` series of the input (in input order)
/// that have a sample at that step, unchanged.
pub fn limit_k(inputs: &[RecordBatch], k: &StepParam, grouping: &Grouping) -> Result<RecordBatch> {
    let series = input_series(inputs)?;
    let mut kept: Vec<Vec<usize>> = vec![Vec::new(); series.len()];
    if k.check_k()? {
        // (group, step) -> how many series are kept so far.
        let mut taken: HashMap<(Labels, i64), i64> = HashMap::new();
        let n = series.len() as i64;
        for (i, s) in series.iter().enumerate() {
            let group = grouping.group_labels(&s.labels);
            for (j, &t) in s.ts.iter().enumerate() {
                let limit = (k.at(t) as i64).min(n);
                if limit < 1 {
                    continue;
                }
                let c = taken.entry((group.clone(), t)).or_default();
                if *c < limit {
                    *c += 1;
                    kept[i].push(j);
                }
            }
        }
    }
    Ok(finish(&series, kept))
}

/// `limit_ratio(r, v)`: at each step, the series whose label hash, as a fraction of the
/// hash range, is below `r` (or, for a negative `r`, at least `1 + r`): the same series
/// Prometheus picks, and `limit_ratio(r)` and `limit_ratio(r - 1)` are complements.
/// Grouping does not change which series are kept.
pub fn limit_ratio(
    inputs: &[RecordBatch],
    ratio: &StepParam,
    _grouping: &Grouping,
) -> Result<RecordBatch> {
    let series = input_series(inputs)?;
    let mut kept: Vec<Vec<usize>> = vec![Vec::new(); series.len()];
    if ratio.check_ratio()? {
        for (i, s) in series.iter().enumerate() {
            let offset = sample_offset(&s.labels);
            for (j, &t) in s.ts.iter().enumerate() {
                let r = ratio.at(t);
                if r == 0.0 {
                    continue;
                }
                let r = r.clamp(-1.0, 1.0);
                if (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r) {
                    kept[i].push(j);
                }
            }
        }
    }
    Ok(finish(&series, kept))
}

/// A series' place in `[0, 1]` for `limit_ratio`: Prometheus' label-set hash (xxHash64 of
/// its label encoding) over the largest u64. The tenant label is not part of the series'
/// identity in a query, so it is left out.
fn sample_offset(labels: &Labels) -> f64 {
    prometheus_labels_hash(labels) as f64 / u64::MAX as f64
}

/// Prometheus' `Labels.Hash()` (its default string layout): xxHash64 over, for each label in
/// name order, the length-prefixed name and value (one length byte below 255, otherwise 255
/// and three little-endian bytes).
pub fn prometheus_labels_hash(labels: &Labels) -> u64 {
    let mut buf = Vec::new();
    let mut put = |s: &str| {
        let n = s.len();
        if n < 255 {
            buf.push(n as u8);
        } else {
            buf.extend_from_slice(&[255, n as u8, (n >> 8) as u8, (n >> 16) as u8]);
        }
        buf.extend_from_slice(s.as_bytes());
    };
    for l in labels.iter() {
        if l.name == TENANT_LABEL {
            continue;
        }
        put(&l.name);
        put(&l.value);
    }
    xxh64(&buf, 0)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn xxh_round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn xxh_merge(acc: u64, v: u64) -> u64 {
    (acc ^ xxh_round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn read64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a) as u64
}

/// xxHash64 (the hash Prometheus uses for label sets).
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let len = data.len();
    let mut rest = data;
    let mut h = if len >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = xxh_round(*acc, read64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for acc in v {
            h = xxh_merge(h, acc);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= xxh_round(0, read64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= (b as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_schemas::histogram::FloatHistogram;

    #[test]
    fn histograms_pass_through_limits() {
        let h = FloatHistogram {
            count: 2.0,
            sum: 3.0,
            ..Default::default()
        };
        let mut b = VectorBuilder::new();
        for i in ["a", "b"] {
            b.start_series(&Labels::from_pairs([("__name__", "m"), ("i", i)]));
            b.push_histogram(0, &h);
            b.push(10, 1.0);
        }
        let batch = b.finish();
        let check = |out: &RecordBatch, series: usize| {
            let rows = series_rows(out).unwrap();
            assert_eq!(rows.len(), series);
            for s in rows {
                assert_eq!(s.ts, &[0, 10]);
                assert_eq!(s.histogram(0).unwrap(), Some(h.clone()));
                assert!(!s.is_histogram(1));
                assert_eq!(s.values[1], 1.0);
            }
        };
        let all = Grouping::By(vec![]);
        check(
            &limit_k(
                std::slice::from_ref(&batch),
                &StepParam::Constant(1.0),
                &all,
            )
            .unwrap(),
            1,
        );
        check(
            &limit_k(
                std::slice::from_ref(&batch),
                &StepParam::Constant(5.0),
                &all,
            )
            .unwrap(),
            2,
        );
        check(
            &limit_ratio(&[batch], &StepParam::Constant(1.0), &all).unwrap(),
            2,
        );
    }
}
