//! Merging parts of the same series (from heads, blocks, resolutions or replicas) into one,
//! sorted by time with each timestamp once. Used by [`crate::MergedSource`] across sources
//! and by [`crate::BlockCatalog`] across blocks; neither depends on the other for it.

use arrow::array::{Array, BinaryBuilder, Float64Builder, Int64Builder};
use hypnos_schemas::{Labels, SeriesData};

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
    let mut parts: Vec<SeriesData> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    // Stable: the parts of one series stay in source order, which decides duplicates.
    // Each source answers in label order, so this is mostly a check of sorted runs.
    parts.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<SeriesData> = Vec::with_capacity(parts.len());
    let mut group: Vec<SeriesData> = Vec::new();
    for p in parts {
        if group.first().is_some_and(|g| g.labels != p.labels) {
            out.push(merge_series(std::mem::take(&mut group)));
        }
        group.push(p);
    }
    if !group.is_empty() {
        out.push(merge_series(group));
    }
    out
}

/// Merges parts of one series (each sorted, unique timestamps) into one. Where several parts
/// hold the same timestamp, the first part's sample is kept, float or histogram.
pub(crate) fn merge_series(mut parts: Vec<SeriesData>) -> SeriesData {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let labels = parts[0].labels.clone();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut ts = Int64Builder::with_capacity(total);
    let mut values = Float64Builder::with_capacity(total);
    // Only when a part holds histograms: null for float samples.
    let mut histograms = parts
        .iter()
        .any(|p| p.histograms().is_some())
        .then(|| BinaryBuilder::with_capacity(total, 0));
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
        if let Some(h) = &mut histograms {
            match parts[i].histograms().filter(|a| a.is_valid(pos[i])) {
                Some(a) => h.append_value(a.value(pos[i])),
                None => h.append_null(),
            }
        }
        for (j, p) in parts.iter().enumerate() {
            while pos[j] < p.len() && p.timestamps().value(pos[j]) == t {
                pos[j] += 1;
            }
        }
    }
    match histograms {
        Some(mut h) => {
            SeriesData::with_histograms(labels, ts.finish(), values.finish(), h.finish())
        }
        None => SeriesData::new(labels, ts.finish(), values.finish()),
    }
}
