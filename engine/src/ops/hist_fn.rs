//! Functions of single native histogram samples: `histogram_count`, `histogram_sum`,
//! `histogram_avg`, `histogram_stddev` and `histogram_stdvar` (a float per histogram, float
//! samples ignored), and the annotations that `histogram_quantile` and `histogram_fraction`
//! give for histograms holding NaN observations (Prometheus' `HistogramQuantile` and
//! `HistogramFraction`).

use hypnos_schemas::histogram::{
    FloatHistogram, NanObservationsNote, histogram_fraction_noted, histogram_quantile_noted,
};

use super::annotations;

/// The info text of a note about NaN observations.
fn nan_note(note: NanObservationsNote, metric_name: &str) -> String {
    match note {
        NanObservationsNote::QuantileIsNaN => annotations::quantile_nan_result(metric_name),
        NanObservationsNote::QuantileSkewed => annotations::quantile_nan_skew(metric_name),
        NanObservationsNote::FractionExcludesNaN => annotations::fraction_nans(metric_name),
    }
}

/// `histogram_quantile(q, h)` of a native histogram, with the info Prometheus adds when `h`
/// holds NaN observations (the result is NaN, or skewed higher). `metric_name` is the
/// histogram's `__name__` (or "").
pub(crate) fn native_quantile(
    q: f64,
    h: &FloatHistogram,
    metric_name: &str,
) -> (f64, Option<String>) {
    let (v, note) = histogram_quantile_noted(q, h);
    (v, note.map(|n| nan_note(n, metric_name)))
}

/// `histogram_fraction(lower, upper, h)` of a native histogram, with the info Prometheus
/// adds when NaN observations were left out of the fraction.
pub(crate) fn native_fraction(
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
    metric_name: &str,
) -> (f64, Option<String>) {
    let (v, note) = histogram_fraction_noted(lower, upper, h);
    (v, note.map(|n| nan_note(n, metric_name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_planner::ops::HistogramStat;
    use hypnos_schemas::histogram::Span;

    fn hist(count: f64, sum: f64, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            count,
            sum,
            positive_spans: if buckets.is_empty() {
                vec![]
            } else {
                vec![Span {
                    offset: 0,
                    length: buckets.len() as u32,
                }]
            },
            positive_buckets: buckets.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            HistogramStat::Count,
            HistogramStat::Sum,
            HistogramStat::Avg,
            HistogramStat::Stddev,
            HistogramStat::Stdvar,
        ] {
            assert_eq!(HistogramStat::from_name(s.name()), Some(s));
        }
        assert_eq!(HistogramStat::from_name("histogram_quantile"), None);
    }

    #[test]
    fn simple_statistics() {
        let h = hist(4.0, 10.0, &[1.0, 3.0]);
        assert_eq!(HistogramStat::Count.eval(&h), 4.0);
        assert_eq!(HistogramStat::Sum.eval(&h), 10.0);
        assert_eq!(HistogramStat::Avg.eval(&h), 2.5);
        assert!(HistogramStat::Avg.eval(&hist(0.0, 0.0, &[])).is_nan());
    }

    #[test]
    fn variance_is_the_square_of_the_deviation() {
        let h = hist(4.0, 6.0, &[1.0, 3.0]);
        let var = HistogramStat::Stdvar.eval(&h);
        assert!(var.is_finite() && var >= 0.0);
        assert_eq!(HistogramStat::Stddev.eval(&h), var.sqrt());
    }

    #[test]
    fn nan_observations_annotate_quantiles() {
        // 100% NaN: every rank is above every bucket.
        let all_nan = hist(3.0, f64::NAN, &[]);
        let (v, note) = native_quantile(0.5, &all_nan, "h");
        assert!(v.is_nan());
        assert_eq!(note, Some(annotations::quantile_nan_result("h")));
        // 20% NaN: 12 of 15 observations in buckets.
        let some_nan = hist(15.0, f64::NAN, &[12.0]);
        let (v, note) = native_quantile(0.4, &some_nan, "h");
        assert!(v.is_finite());
        assert_eq!(note, Some(annotations::quantile_nan_skew("h")));
        let (v, note) = native_quantile(0.81, &some_nan, "h");
        assert!(v.is_nan());
        assert_eq!(note, Some(annotations::quantile_nan_result("h")));
        // Outside [0, 1], or no NaN: nothing to say.
        assert_eq!(native_quantile(1.5, &some_nan, "h").1, None);
        assert_eq!(native_quantile(0.5, &hist(4.0, 2.0, &[4.0]), "h").1, None);
    }

    #[test]
    fn nan_observations_annotate_fractions() {
        let some_nan = hist(15.0, f64::NAN, &[12.0]);
        let (_, note) = native_fraction(f64::NEG_INFINITY, f64::INFINITY, &some_nan, "h");
        assert_eq!(note, Some(annotations::fraction_nans("h")));
        assert_eq!(native_fraction(2.0, 1.0, &some_nan, "h").1, None);
        assert_eq!(
            native_fraction(0.0, 1.0, &hist(4.0, 1.0, &[4.0]), "h").1,
            None
        );
    }
}
