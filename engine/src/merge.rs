//! Merging the same series read from several sources (heads, blocks, replicas of a retried
//! write) into one, sorted by time with each timestamp once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Float64Builder, Int64Builder};
use async_trait::async_trait;
use futures::future::try_join_all;
use hypnos_schemas::{Labels, Matcher, SchemaError, SeriesData, SeriesSource, TenantId, TimeRange};

/// A [`SeriesSource`] reading several sources and merging what they return.
#[derive(Debug, Clone)]
pub struct MergedSource {
    sources: Vec<Arc<dyn SeriesSource>>,
}

impl MergedSource {
    pub fn new(sources: Vec<Arc<dyn SeriesSource>>) -> Self {
        Self { sources }
    }
}

#[async_trait]
impl SeriesSource for MergedSource {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        let parts = try_join_all(
            self.sources
                .iter()
                .map(|s| s.select(tenant, matchers, range)),
        )
        .await?;
        Ok(merge_parts(parts.into_iter().flatten()))
    }

    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        let parts = try_join_all(
            self.sources
                .iter()
                .map(|s| s.series(tenant, matchers, range)),
        )
        .await?;
        Ok(union_labels(parts))
    }
}

/// The label sets of several sources, sorted, each once.
pub(crate) fn union_labels(parts: Vec<Vec<Labels>>) -> Vec<Labels> {
    let mut all: Vec<Labels> = parts.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    all
}

/// Groups `parts` by label set and merges each group with [`merge_series`]; the output is
/// sorted by labels.
pub(crate) fn merge_parts(parts: impl IntoIterator<Item = SeriesData>) -> Vec<SeriesData> {
    let mut groups: HashMap<Labels, Vec<SeriesData>> = HashMap::new();
    for p in parts {
        if !p.is_empty() {
            groups.entry(p.labels.clone()).or_default().push(p);
        }
    }
    let mut out: Vec<SeriesData> = groups.into_values().map(merge_series).collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// Merges parts of one series (each sorted, unique timestamps) into one. Where several parts
/// hold the same timestamp, the first part's sample is kept.
pub(crate) fn merge_series(mut parts: Vec<SeriesData>) -> SeriesData {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let labels = parts[0].labels.clone();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut ts = Int64Builder::with_capacity(total);
    let mut values = Float64Builder::with_capacity(total);
    let mut pos = vec![0usize; parts.len()];
    loop {
        // The part with the smallest next timestamp; ties go to the earliest part.
        let mut best: Option<(usize, i64)> = None;
        for (i, p) in parts.iter().enumerate() {
            if pos[i] < p.len() {
                let t = p.timestamps().value(pos[i]);
                if best.is_none_or(|(_, bt)| t < bt) {
                    best = Some((i, t));
                }
            }
        }
        let Some((i, t)) = best else { break };
        ts.append_value(t);
        values.append_value(parts[i].values().value(pos[i]));
        for (j, p) in parts.iter().enumerate() {
            while pos[j] < p.len() && p.timestamps().value(pos[j]) == t {
                pos[j] += 1;
            }
        }
    }
    SeriesData::new(labels, ts.finish(), values.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};

    fn part(ts: &[i64], vs: &[f64]) -> SeriesData {
        SeriesData::new(
            Labels::from_pairs([("__name__", "m")]),
            Int64Array::from(ts.to_vec()),
            Float64Array::from(vs.to_vec()),
        )
    }

    #[test]
    fn merges_sorted_and_dedupes() {
        let m = merge_series(vec![
            part(&[1, 3, 5], &[1.0, 3.0, 5.0]),
            part(&[2, 3, 6], &[2.0, 9.0, 6.0]),
        ]);
        assert_eq!(m.timestamps().values().to_vec(), vec![1, 2, 3, 5, 6]);
        assert_eq!(m.values().values().to_vec(), vec![1.0, 2.0, 3.0, 5.0, 6.0]);
    }

    #[test]
    fn groups_by_labels() {
        let mut other = part(&[1], &[7.0]);
        other.labels = Labels::from_pairs([("__name__", "n")]);
        let out = merge_parts(vec![part(&[1], &[1.0]), other, part(&[1, 2], &[1.0, 2.0])]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), 2);
    }
}
