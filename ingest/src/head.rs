//! A tenant's in-memory head: its series, found by label-set fingerprint, with columnar
//! samples (see [`series::MemSeries`]).

use std::collections::HashMap;

use hypnos_schemas::labels::METRIC_NAME;
use hypnos_schemas::matcher::matches_all;
use hypnos_schemas::remote::Sample;
use hypnos_schemas::{Labels, Matcher, SeriesData, TimeRange};

use crate::validate::HistogramSample;

mod series;

pub(crate) use series::merge_sorted;
use series::{MemSeries, Rows};

/// What one append did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AppendStats {
    pub(crate) appended: usize,
    pub(crate) duplicates: usize,
}

/// The series of one tenant since the last cut.
///
/// Series are matched linearly by `select`; an inverted index (postings: label name/value to
/// series ids) is the next step when heads grow large.
#[derive(Debug, Default)]
pub(crate) struct Head {
    series: Vec<MemSeries>,
    /// Label-set fingerprint to the series with that fingerprint (several on a collision).
    by_fingerprint: HashMap<u64, Vec<u32>>,
    /// Series per metric name (for the per-metric series limit).
    by_metric: HashMap<String, usize>,
    num_samples: usize,
}

impl Head {
    pub(crate) fn num_series(&self) -> usize {
        self.series.len()
    }

    pub(crate) fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// Appends float `samples` to the series `labels`, creating it when new.
    #[cfg(test)]
    pub(crate) fn append(&mut self, labels: Labels, samples: &[Sample]) -> AppendStats {
        self.append_mixed(labels, samples, Vec::new())
    }

    /// Appends float `samples` and `histograms` to the series `labels`, creating it when
    /// new. The two are appended in time order as far as each is sorted, so in-order data
    /// stays on the fast path; at a timestamp both have, the float is kept and the
    /// histogram counted as a duplicate.
    pub(crate) fn append_mixed(
        &mut self,
        labels: Labels,
        samples: &[Sample],
        histograms: Vec<HistogramSample>,
    ) -> AppendStats {
        let fp = labels.fingerprint();
        self.append_with_fingerprint(fp, labels, samples, histograms)
    }

    fn append_with_fingerprint(
        &mut self,
        fp: u64,
        labels: Labels,
        samples: &[Sample],
        histograms: Vec<HistogramSample>,
    ) -> AppendStats {
        if samples.is_empty() && histograms.is_empty() {
            return AppendStats::default();
        }
        let idx = self.series_index(fp, labels);
        let s = &mut self.series[idx];
        let mut stats = AppendStats::default();
        let mut count = |appended: bool| {
            if appended {
                stats.appended += 1;
            } else {
                stats.duplicates += 1;
            }
        };
        if histograms.is_empty() {
            for sample in samples {
                count(s.append(sample.timestamp, sample.value));
            }
        } else {
            let mut floats = samples.iter().peekable();
            for h in histograms {
                while let Some(f) = floats.next_if(|f| f.timestamp <= h.timestamp) {
                    count(s.append(f.timestamp, f.value));
                }
                count(s.append_histogram(h.timestamp, h.encoded));
            }
            for f in floats {
                count(s.append(f.timestamp, f.value));
            }
        }
        self.num_samples += stats.appended;
        stats
    }

    fn series_index(&mut self, fp: u64, labels: Labels) -> usize {
        let ids = self.by_fingerprint.entry(fp).or_default();
        if let Some(i) = ids
            .iter()
            .find(|i| *self.series[**i as usize].labels() == labels)
        {
            return *i as usize;
        }
        let idx = self.series.len();
        ids.push(idx as u32);
        *self
            .by_metric
            .entry(labels.get(METRIC_NAME).to_string())
            .or_default() += 1;
        self.series.push(MemSeries::new(labels));
        idx
    }

    /// Whether the series `labels` is in this head.
    pub(crate) fn contains(&self, labels: &Labels) -> bool {
        self.by_fingerprint
            .get(&labels.fingerprint())
            .is_some_and(|ids| {
                ids.iter()
                    .any(|i| self.series[*i as usize].labels() == labels)
            })
    }

    /// The oldest timestamp of any sample in this head.
    pub(crate) fn min_time(&self) -> Option<i64> {
        self.series
            .iter()
            .filter_map(|s| s.time_bounds().map(|(lo, _)| lo))
            .min()
    }

    /// Series of the metric `name` in this head.
    pub(crate) fn num_series_of_metric(&self, name: &str) -> usize {
        self.by_metric.get(name).copied().unwrap_or(0)
    }

    /// The series matching every matcher that have samples in `range`, with those samples.
    pub(crate) fn select(&self, matchers: &[Matcher], range: TimeRange) -> Vec<SeriesData> {
        self.series
            .iter()
            .filter(|s| {
                s.time_bounds()
                    .is_some_and(|(lo, hi)| range.overlaps(lo, hi))
                    && matches_all(matchers, s.labels())
            })
            .filter_map(|s| {
                Some(match s.read(range)? {
                    (ts, values, None) => SeriesData::new(s.labels().clone(), ts, values),
                    (ts, values, Some(hist)) => {
                        SeriesData::with_histograms(s.labels().clone(), ts, values, hist)
                    }
                })
            })
            .collect()
    }

    /// The label sets of the series matching every matcher that have samples in `range`.
    pub(crate) fn series_labels(&self, matchers: &[Matcher], range: TimeRange) -> Vec<Labels> {
        self.series
            .iter()
            .filter(|s| s.has_samples_in(range) && matches_all(matchers, s.labels()))
            .map(|s| s.labels().clone())
            .collect()
    }

    /// Every series with all its samples (what a flush writes).
    pub(crate) fn all_series(&self) -> Vec<SeriesData> {
        self.select(&[], TimeRange::new(i64::MIN, i64::MAX))
    }
}

/// Merges the selections of several heads of one tenant (oldest first) so each label set
/// appears once, its samples sorted and unique (the oldest head's sample wins).
pub(crate) fn merge_selections(parts: Vec<Vec<SeriesData>>) -> Vec<SeriesData> {
    let mut parts = parts.into_iter();
    let Some(mut out) = parts.next() else {
        return Vec::new();
    };
    for part in parts {
        let mut pos: HashMap<Labels, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for s in part {
            match pos.get(&s.labels) {
                Some(&i) => out[i] = merge_two(&out[i], s),
                None => {
                    pos.insert(s.labels.clone(), out.len());
                    out.push(s);
                }
            }
        }
    }
    out
}

/// The samples of `a` and `b` (same labels) in one series; on equal timestamps `a` wins.
fn merge_two(a: &SeriesData, b: SeriesData) -> SeriesData {
    if a.histograms().is_none() && b.histograms().is_none() {
        let (ts, values) = merge_sorted(
            (a.timestamps().values(), a.values().values()),
            (b.timestamps().values(), b.values().values()),
        );
        return SeriesData::new(b.labels, ts.into(), values.into());
    }
    fn rows(s: &SeriesData) -> Rows<'_> {
        Rows::from_arrays(s.timestamps(), s.values(), s.histograms())
    }
    let (ts, values, hist) = Rows::merge(&rows(a), &rows(&b)).into_arrays();
    SeriesData::with_histograms(b.labels, ts, values, hist)
}

#[cfg(test)]
mod tests;
