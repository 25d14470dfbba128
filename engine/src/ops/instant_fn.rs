//! Functions applied to every sample of an instant vector (`abs`, `round`, `clamp`, trig, ...),
//! with Go's float semantics, and the statistics of native histogram samples
//! (`histogram_count`, ...). Float functions ignore histogram samples and histogram
//! statistics ignore float samples, as in Prometheus. All of them drop the metric name but
//! [`InstantFunc::FloatsOnly`].

use arrow::array::RecordBatch;
use datafusion::error::Result;

use super::InstantFunc;
use super::StepParam;
use crate::vector::{VectorBuilder, series_rows};

/// Applies `func` to every sample, dropping the metric name (but for
/// [`InstantFunc::FloatsOnly`]). `timestamp` answers for floats and histograms alike.
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
    use hypnos_planner::ops::HistogramStat;

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
