//! Functions applied to every sample of an instant vector (`abs`, `round`, `clamp`, trig, ...),
//! with Go's float semantics, and the statistics of native histogram samples
//! (`histogram_count`, ...). Float functions ignore histogram samples and histogram
//! statistics ignore float samples, as in Prometheus. All of them drop the metric name but
//! [`InstantFunc::FloatsOnly`].

use arrow::array::RecordBatch;
use datafusion::error::Result;

use super::StepParam;
use super::hist_fn::HistogramStat;
use crate::vector::{VectorBuilder, series_rows};

/// A per-sample function. Scalar parameters are kept as bits so the type stays `Eq + Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum InstantFunc {
    Abs,
    Ceil,
    Floor,
    Exp,
    Sqrt,
    Ln,
    Log2,
    Log10,
    Sgn,
    /// `round(v, to_nearest)`.
    Round(u64),
    /// `clamp(v, min, max)`.
    Clamp(u64, u64),
    ClampMin(u64),
    ClampMax(u64),
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Deg,
    Rad,
    /// `timestamp(v)` of a computed vector: the evaluation time in seconds.
    StepTimestamp,
    Minute,
    Hour,
    DayOfWeek,
    DayOfMonth,
    DayOfYear,
    DaysInMonth,
    Month,
    Year,
    /// A statistic of each native histogram sample (`histogram_count(v)`, ...).
    Histogram(HistogramStat),
    /// The float samples, unchanged (`sort` and `sort_desc` leave histograms out).
    FloatsOnly,
}

impl InstantFunc {
    /// The function `name` with its scalar arguments (after the vector); `None` when the
    /// name is not a per-sample function or the arguments do not fit.
    pub fn from_name(name: &str, args: &[f64]) -> Option<Self> {
        let arg = |i: usize| args.get(i).map(|v| v.to_bits());
        Some(match (name, args.len()) {
            ("abs", 0) => InstantFunc::Abs,
            ("ceil", 0) => InstantFunc::Ceil,
            ("floor", 0) => InstantFunc::Floor,
            ("exp", 0) => InstantFunc::Exp,
            ("sqrt", 0) => InstantFunc::Sqrt,
            ("ln", 0) => InstantFunc::Ln,
            ("log2", 0) => InstantFunc::Log2,
            ("log10", 0) => InstantFunc::Log10,
            ("sgn", 0) => InstantFunc::Sgn,
            ("round", 0) => InstantFunc::Round(1f64.to_bits()),
            ("round", 1) => InstantFunc::Round(arg(0)?),
            ("clamp", 2) => InstantFunc::Clamp(arg(0)?, arg(1)?),
            ("clamp_min", 1) => InstantFunc::ClampMin(arg(0)?),
            ("clamp_max", 1) => InstantFunc::ClampMax(arg(0)?),
            ("sin", 0) => InstantFunc::Sin,
            ("cos", 0) => InstantFunc::Cos,
            ("tan", 0) => InstantFunc::Tan,
            ("asin", 0) => InstantFunc::Asin,
            ("acos", 0) => InstantFunc::Acos,
            ("atan", 0) => InstantFunc::Atan,
            ("sinh", 0) => InstantFunc::Sinh,
            ("cosh", 0) => InstantFunc::Cosh,
            ("tanh", 0) => InstantFunc::Tanh,
            ("asinh", 0) => InstantFunc::Asinh,
            ("acosh", 0) => InstantFunc::Acosh,
            ("atanh", 0) => InstantFunc::Atanh,
            ("deg", 0) => InstantFunc::Deg,
            ("rad", 0) => InstantFunc::Rad,
            ("timestamp", 0) => InstantFunc::StepTimestamp,
            ("minute", 0) => InstantFunc::Minute,
            ("hour", 0) => InstantFunc::Hour,
            ("day_of_week", 0) => InstantFunc::DayOfWeek,
            ("day_of_month", 0) => InstantFunc::DayOfMonth,
            ("day_of_year", 0) => InstantFunc::DayOfYear,
            ("days_in_month", 0) => InstantFunc::DaysInMonth,
            ("month", 0) => InstantFunc::Month,
            ("year", 0) => InstantFunc::Year,
            (name, 0) => InstantFunc::Histogram(HistogramStat::from_name(name)?),
            _ => return None,
        })
    }

    /// The function's value at `v`; `None` drops the sample.
    pub fn apply(&self, v: f64) -> Option<f64> {
        // Go's math.Max/Min return NaN when either argument is NaN.
        let go_max = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        };
        let go_min = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        };
        Some(match self {
            InstantFunc::Abs => v.abs(),
            InstantFunc::Ceil => v.ceil(),
            InstantFunc::Floor => v.floor(),
            InstantFunc::Exp => v.exp(),
            InstantFunc::Sqrt => v.sqrt(),
            InstantFunc::Ln => v.ln(),
            InstantFunc::Log2 => v.log2(),
            InstantFunc::Log10 => v.log10(),
            InstantFunc::Sgn => {
                if v < 0.0 {
                    -1.0
                } else if v > 0.0 {
                    1.0
                } else {
                    v
                }
            }
            InstantFunc::Round(to) => {
                let inv = 1.0 / f64::from_bits(*to);
                (v * inv + 0.5).floor() / inv
            }
            InstantFunc::Clamp(lo, hi) => {
                let (lo, hi) = (f64::from_bits(*lo), f64::from_bits(*hi));
                if hi < lo {
                    return None;
                }
                go_max(lo, go_min(hi, v))
            }
            InstantFunc::ClampMin(lo) => go_max(v, f64::from_bits(*lo)),
            InstantFunc::ClampMax(hi) => go_min(v, f64::from_bits(*hi)),
            InstantFunc::Sin => v.sin(),
            InstantFunc::Cos => v.cos(),
            InstantFunc::Tan => v.tan(),
            InstantFunc::Asin => v.asin(),
            InstantFunc::Acos => v.acos(),
            InstantFunc::Atan => v.atan(),
            InstantFunc::Sinh => v.sinh(),
            InstantFunc::Cosh => v.cosh(),
            InstantFunc::Tanh => v.tanh(),
            InstantFunc::Asinh => v.asinh(),
            InstantFunc::Acosh => v.acosh(),
            InstantFunc::Atanh => v.atanh(),
            InstantFunc::Deg => v * 180.0 / std::f64::consts::PI,
            InstantFunc::Rad => v * std::f64::consts::PI / 180.0,
            // Needs the sample's time or histogram: see `instant_function`.
            InstantFunc::StepTimestamp | InstantFunc::Histogram(_) | InstantFunc::FloatsOnly => v,
            InstantFunc::Minute
            | InstantFunc::Hour
            | InstantFunc::DayOfWeek
            | InstantFunc::DayOfMonth
            | InstantFunc::DayOfYear
            | InstantFunc::DaysInMonth
            | InstantFunc::Month
            | InstantFunc::Year => self.date_part(v),
        })
    }

    /// A calendar field of the UTC time `v` seconds after the epoch (Go truncates the
    /// seconds towards zero, as here).
    fn date_part(&self, v: f64) -> f64 {
        use chrono::{Datelike, Timelike};
        let Some(t) = chrono::DateTime::from_timestamp(v as i64, 0) else {
            return f64::NAN;
        };
        (match self {
            InstantFunc::Minute => t.minute(),
            InstantFunc::Hour => t.hour(),
            InstantFunc::DayOfWeek => t.weekday().num_days_from_sunday(),
            InstantFunc::DayOfMonth => t.day(),
            InstantFunc::DayOfYear => t.ordinal(),
            InstantFunc::DaysInMonth => {
                let (y, m) = (t.year(), t.month());
                let next = if m == 12 {
                    chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
                } else {
                    chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
                };
                next.and_then(|n| n.pred_opt()).map_or(0, |d| d.day())
            }
            InstantFunc::Month => t.month(),
            InstantFunc::Year => return t.year() as f64,
            _ => return f64::NAN,
        }) as f64
    }
}

/// Applies `func` to every sample, dropping the metric name (but for
/// [`InstantFunc::FloatsOnly`]). `timestamp` answers for floats and histograms alike.
impl InstantFunc {
    /// The same function with its scalar parameters replaced by `params` (in argument
    /// order); a function without parameters is returned as is.
    pub fn with_params(self, params: &[f64]) -> Self {
        let p = |i: usize| params.get(i).copied().unwrap_or(f64::NAN).to_bits();
        match self {
            InstantFunc::Round(_) => InstantFunc::Round(p(0)),
            InstantFunc::Clamp(..) => InstantFunc::Clamp(p(0), p(1)),
            InstantFunc::ClampMin(_) => InstantFunc::ClampMin(p(0)),
            InstantFunc::ClampMax(_) => InstantFunc::ClampMax(p(0)),
            f => f,
        }
    }
}

/// [`instant_function`] whose scalar parameters are evaluated per step (`round(v,
/// scalar(x))`, `clamp(v, 0, scalar(y))`): at each sample's time, `func` takes the
/// parameters' values at that time.
pub fn instant_function_per_step(
    input: &RecordBatch,
    func: InstantFunc,
    params: &[StepParam],
) -> Result<RecordBatch> {
    let mut out = VectorBuilder::new();
    let mut values = vec![0.0; params.len()];
    for s in series_rows(input)? {
        out.start_series(&super::mark_name_dropped(&s.labels));
        for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
            if s.is_histogram(i) {
                continue;
            }
            for (value, param) in values.iter_mut().zip(params) {
                *value = param.at(*t);
            }
            if let Some(r) = func.with_params(&values).apply(*v) {
                out.push(*t, r);
            }
        }
    }
    Ok(out.finish())
}

pub fn instant_function(input: &RecordBatch, func: InstantFunc) -> Result<RecordBatch> {
    let mut out = VectorBuilder::new();
    for s in series_rows(input)? {
        if func == InstantFunc::FloatsOnly {
            out.start_series(&s.labels);
        } else {
            out.start_series(&super::mark_name_dropped(&s.labels));
        }
        for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
            match func {
                InstantFunc::StepTimestamp => out.push(*t, *t as f64 / 1000.0),
                InstantFunc::Histogram(stat) => {
                    if let Some(h) = s.histogram(i)? {
                        out.push(*t, stat.eval(&h));
                    }
                }
                _ if s.is_histogram(i) => {}
                _ => {
                    if let Some(r) = func.apply(*v) {
                        out.push(*t, r);
                    }
                }
            }
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_semantics() {
        assert_eq!(
            InstantFunc::from_name("round", &[]).unwrap().apply(2.5),
            Some(3.0)
        );
        assert_eq!(
            InstantFunc::from_name("round", &[]).unwrap().apply(-2.5),
            Some(-2.0)
        );
        assert_eq!(
            InstantFunc::from_name("round", &[10.0])
                .unwrap()
                .apply(14.0),
            Some(10.0)
        );
        let clamp = InstantFunc::from_name("clamp", &[0.0, 10.0]).unwrap();
        assert_eq!(clamp.apply(11.0), Some(10.0));
        assert!(clamp.apply(f64::NAN).unwrap().is_nan());
        assert_eq!(
            InstantFunc::from_name("clamp", &[5.0, 1.0])
                .unwrap()
                .apply(3.0),
            None
        );
        assert!(
            InstantFunc::from_name("clamp_min", &[0.0])
                .unwrap()
                .apply(f64::NAN)
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            InstantFunc::Sgn.apply(-0.0).map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert!(InstantFunc::from_name("abs", &[1.0]).is_none());
        assert_eq!(
            InstantFunc::from_name("histogram_sum", &[]),
            Some(InstantFunc::Histogram(HistogramStat::Sum))
        );
        assert!(InstantFunc::from_name("histogram_sum", &[1.0]).is_none());
        assert!(InstantFunc::from_name("no_such_function", &[]).is_none());
    }

    fn mixed_batch() -> RecordBatch {
        use hypnos_schemas::Labels;
        use hypnos_schemas::histogram::{FloatHistogram, Span};
        let h = FloatHistogram {
            count: 4.0,
            sum: 10.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![4.0],
            ..Default::default()
        };
        let mut b = VectorBuilder::new();
        b.start_series(&Labels::from_pairs([("__name__", "m"), ("a", "1")]));
        b.push(1000, -2.0);
        b.push_histogram(2000, &h);
        b.finish()
    }

    #[test]
    fn floats_and_histograms_go_their_own_ways() {
        let input = mixed_batch();
        let points = |func| crate::vector::batch_points(&instant_function(&input, func).unwrap());
        let dropped = "{__hypnos_name_dropped__=\"true\", __name__=\"m\", a=\"1\"}";
        // A float function skips the histogram.
        assert_eq!(
            points(InstantFunc::Abs),
            vec![(dropped.to_string(), vec![(1000, 2.0)])]
        );
        // A histogram statistic skips the float.
        assert_eq!(
            points(InstantFunc::Histogram(HistogramStat::Count)),
            vec![(dropped.to_string(), vec![(2000, 4.0)])]
        );
        assert_eq!(
            points(InstantFunc::Histogram(HistogramStat::Avg)),
            vec![(dropped.to_string(), vec![(2000, 2.5)])]
        );
        // timestamp() answers for both; FloatsOnly keeps the name.
        assert_eq!(
            points(InstantFunc::StepTimestamp),
            vec![(dropped.to_string(), vec![(1000, 1.0), (2000, 2.0)])]
        );
        assert_eq!(
            points(InstantFunc::FloatsOnly),
            vec![("{__name__=\"m\", a=\"1\"}".to_string(), vec![(1000, -2.0)])]
        );
    }
}
