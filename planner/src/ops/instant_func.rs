//! Functions applied to every sample of an instant vector (`abs`, `round`, `clamp`, trig,
//! ...) with Go's float semantics, and the statistics of native histogram samples
//! (`histogram_count`, ...).

use hypnos_schemas::histogram::FloatHistogram;

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

/// A statistic of one native histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum HistogramStat {
    /// `histogram_count`: the number of observations.
    Count,
    /// `histogram_sum`: the sum of observations.
    Sum,
    /// `histogram_avg`: sum divided by count.
    Avg,
    /// `histogram_stddev`: the estimated standard deviation.
    Stddev,
    /// `histogram_stdvar`: the estimated variance.
    Stdvar,
}

impl HistogramStat {
    /// The statistic a function name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "histogram_count" => HistogramStat::Count,
            "histogram_sum" => HistogramStat::Sum,
            "histogram_avg" => HistogramStat::Avg,
            "histogram_stddev" => HistogramStat::Stddev,
            "histogram_stdvar" => HistogramStat::Stdvar,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            HistogramStat::Count => "histogram_count",
            HistogramStat::Sum => "histogram_sum",
            HistogramStat::Avg => "histogram_avg",
            HistogramStat::Stddev => "histogram_stddev",
            HistogramStat::Stdvar => "histogram_stdvar",
        }
    }

    /// The statistic of `h`.
    pub fn eval(&self, h: &FloatHistogram) -> f64 {
        match self {
            HistogramStat::Count => h.count,
            HistogramStat::Sum => h.sum,
            HistogramStat::Avg => h.sum / h.count,
            HistogramStat::Stddev => h.stdvar().sqrt(),
            HistogramStat::Stdvar => h.stdvar(),
        }
    }
}
