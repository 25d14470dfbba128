//! Statistics of one histogram: quantile, fraction, mean and variance estimates, and its
//! text form.

use std::fmt;

use super::FloatHistogram;

/// `histogram_quantile(q, h)` for a native histogram (`q` outside [0, 1] gives -Inf/+Inf,
/// NaN gives NaN), interpolating within a bucket as Prometheus does (exponentially for
/// exponential schemas, linearly for custom buckets and the zero bucket).
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> f64 {
    let _ = (q, h);
    todo!("histogram statistics")
}

/// `histogram_fraction(lower, upper, h)`: the estimated fraction of observations in
/// `[lower, upper]`.
pub fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    let _ = (lower, upper, h);
    todo!("histogram statistics")
}

impl FloatHistogram {
    /// `histogram_stdvar`: the estimated variance of the observations (each bucket's
    /// observations taken at its midpoint, geometric for exponential buckets).
    pub fn stdvar(&self) -> f64 {
        todo!("histogram statistics")
    }
}

/// Prometheus' `FloatHistogram.String()`: `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2,
/// (0.5,1]:1}` (used where a histogram becomes a label value, as in `count_values`).
impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!("histogram statistics")
    }
}
