//! The functions of a range vector (`rate(x[5m])`, `avg_over_time(x[1h])`, ...) by name,
//! with their parameters; `hypnos-engine` evaluates them over each window.

/// A function of a range vector. Parameters are kept as bits so the type stays `Eq + Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum RangeFunc {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    /// `predict_linear(v, t)`: `t` seconds, as bits.
    PredictLinear(u64),
    Resets,
    Changes,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    CountOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    StddevOverTime,
    StdvarOverTime,
    /// `quantile_over_time(q, v)`: `q` as bits.
    QuantileOverTime(u64),
    /// `double_exponential_smoothing(v, sf, tf)`: smoothing and trend factors as bits.
    DoubleExponentialSmoothing(u64, u64),
    MadOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    TsOfFirstOverTime,
    TsOfLastOverTime,
}

impl RangeFunc {
    /// The function of that PromQL name (parameters zero; see the constructors).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rate" => RangeFunc::Rate,
            "increase" => RangeFunc::Increase,
            "delta" => RangeFunc::Delta,
            "irate" => RangeFunc::Irate,
            "idelta" => RangeFunc::Idelta,
            "deriv" => RangeFunc::Deriv,
            "predict_linear" => RangeFunc::PredictLinear(0),
            "resets" => RangeFunc::Resets,
            "changes" => RangeFunc::Changes,
            "avg_over_time" => RangeFunc::AvgOverTime,
            "sum_over_time" => RangeFunc::SumOverTime,
            "min_over_time" => RangeFunc::MinOverTime,
            "max_over_time" => RangeFunc::MaxOverTime,
            "count_over_time" => RangeFunc::CountOverTime,
            "last_over_time" => RangeFunc::LastOverTime,
            "first_over_time" => RangeFunc::FirstOverTime,
            "present_over_time" => RangeFunc::PresentOverTime,
            "stddev_over_time" => RangeFunc::StddevOverTime,
            "stdvar_over_time" => RangeFunc::StdvarOverTime,
            "quantile_over_time" => RangeFunc::QuantileOverTime(0),
            "double_exponential_smoothing" => RangeFunc::DoubleExponentialSmoothing(0, 0),
            "mad_over_time" => RangeFunc::MadOverTime,
            "ts_of_min_over_time" => RangeFunc::TsOfMinOverTime,
            "ts_of_max_over_time" => RangeFunc::TsOfMaxOverTime,
            "ts_of_first_over_time" => RangeFunc::TsOfFirstOverTime,
            "ts_of_last_over_time" => RangeFunc::TsOfLastOverTime,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            RangeFunc::Rate => "rate",
            RangeFunc::Increase => "increase",
            RangeFunc::Delta => "delta",
            RangeFunc::Irate => "irate",
            RangeFunc::Idelta => "idelta",
            RangeFunc::Deriv => "deriv",
            RangeFunc::PredictLinear(_) => "predict_linear",
            RangeFunc::Resets => "resets",
            RangeFunc::Changes => "changes",
            RangeFunc::AvgOverTime => "avg_over_time",
            RangeFunc::SumOverTime => "sum_over_time",
            RangeFunc::MinOverTime => "min_over_time",
            RangeFunc::MaxOverTime => "max_over_time",
            RangeFunc::CountOverTime => "count_over_time",
            RangeFunc::LastOverTime => "last_over_time",
            RangeFunc::FirstOverTime => "first_over_time",
            RangeFunc::PresentOverTime => "present_over_time",
            RangeFunc::StddevOverTime => "stddev_over_time",
            RangeFunc::StdvarOverTime => "stdvar_over_time",
            RangeFunc::QuantileOverTime(_) => "quantile_over_time",
            RangeFunc::DoubleExponentialSmoothing(..) => "double_exponential_smoothing",
            RangeFunc::MadOverTime => "mad_over_time",
            RangeFunc::TsOfMinOverTime => "ts_of_min_over_time",
            RangeFunc::TsOfMaxOverTime => "ts_of_max_over_time",
            RangeFunc::TsOfFirstOverTime => "ts_of_first_over_time",
            RangeFunc::TsOfLastOverTime => "ts_of_last_over_time",
        }
    }

    /// The function with its scalar parameter replaced by `p` (`quantile_over_time`'s
    /// quantile, `predict_linear`'s seconds); functions without one are unchanged.
    pub fn with_param(&self, p: f64) -> RangeFunc {
        match self {
            RangeFunc::QuantileOverTime(_) => RangeFunc::QuantileOverTime(p.to_bits()),
            RangeFunc::PredictLinear(_) => RangeFunc::PredictLinear(p.to_bits()),
            f => *f,
        }
    }

    /// Whether the result keeps the metric name (only the functions that return a sample
    /// of the series unchanged do).
    pub fn keeps_name(&self) -> bool {
        matches!(self, RangeFunc::LastOverTime | RangeFunc::FirstOverTime)
    }

    /// Checks the parameters before the function is applied to any window, with
    /// Prometheus' messages (it only fails when some window has samples).
    pub fn check(&self) -> Result<(), String> {
        if let RangeFunc::DoubleExponentialSmoothing(sf, tf) = self {
            let (sf, tf) = (f64::from_bits(*sf), f64::from_bits(*tf));
            if !(sf > 0.0 && sf < 1.0) {
                return Err(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                    go_fixed6(sf)
                ));
            }
            if !(tf > 0.0 && tf < 1.0) {
                return Err(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                    go_fixed6(tf)
                ));
            }
        }
        Ok(())
    }
}

/// Go's `%f`: six decimals, `NaN`, `+Inf`, `-Inf`.
fn go_fixed6(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}
