//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` as plan operators;
//! `hypnos-engine` evaluates them over classic buckets and native histograms.

/// A function of classic histogram buckets. Parameters are kept as bits so the type stays
/// `Eq + Hash`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum HistogramFunc {
    /// `histogram_quantile(φ, v)`: φ as bits.
    Quantile(u64),
    /// `histogram_fraction(lower, upper, v)`: the bounds as bits.
    Fraction(u64, u64),
    /// `histogram_quantiles(v, label, φ...)`: one result per φ, told apart by `label`.
    Quantiles { label: String, qs: Vec<u64> },
}

impl HistogramFunc {
    pub fn name(&self) -> &'static str {
        match self {
            HistogramFunc::Quantile(_) => "histogram_quantile",
            HistogramFunc::Fraction(..) => "histogram_fraction",
            HistogramFunc::Quantiles { .. } => "histogram_quantiles",
        }
    }

    /// The quantiles the function asks for.
    pub fn quantiles(&self) -> Vec<f64> {
        match self {
            HistogramFunc::Quantile(q) => vec![f64::from_bits(*q)],
            HistogramFunc::Fraction(..) => Vec::new(),
            HistogramFunc::Quantiles { qs, .. } => qs.iter().map(|q| f64::from_bits(*q)).collect(),
        }
    }
}
