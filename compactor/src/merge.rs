//! Streaming merge of blocks into one: series tables are merge-sorted by labels (after
//! removing replica labels), then samples are fetched and written in groups of series, so
//! memory holds the series tables and one group's samples, never a whole tenant.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, BinaryBuilder, Float64Array, Int64Array};
use hypnos_schemas::block::{BlockInfo, BlockReader, BlockWriter, RefSamples};
use hypnos_schemas::layout::BlockMeta;
use hypnos_schemas::{Labels, TimeRange};
use object_store::ObjectStore;

use crate::CompactError;

/// Samples read per group of output series (an estimate from block averages).
const GROUP_SAMPLES: u64 = 1 << 20;

/// One series part: timestamps and values, sorted, timestamps unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Part {
    pub ts: Vec<i64>,
    /// The float samples; 0 at histogram samples.
    pub values: Vec<f64>,
    /// Native histograms (stored bytes), null at float samples; `None` when the part has
    /// none.
    pub histograms: Option<BinaryArray>,
}

impl Part {
    /// A part of float samples.
    pub fn new(ts: Vec<i64>, values: Vec<f64>) -> Self {
        Self {
            ts,
            values,
            histograms: None,
        }
    }

    /// A part whose samples are histograms where `histograms` is not null.
    pub fn with_histograms(
        ts: Vec<i64>,
        values: Vec<f64>,
        histograms: Option<BinaryArray>,
    ) -> Self {
        Self {
            ts,
            values,
            histograms: histograms.filter(|h| h.null_count() < h.len()),
        }
    }

    /// The stored histogram of sample `i`, when it is one.
    pub fn histogram(&self, i: usize) -> Option<&[u8]> {
        self.histograms
            .as_ref()
            .filter(|h| h.is_valid(i))
            .map(|h| h.value(i))
    }
}

/// Builds a [`Part`] sample by sample; the histogram column appears with the first
/// histogram.
#[derive(Default)]
struct PartBuilder {
    ts: Vec<i64>,
    values: Vec<f64>,
    histograms: Option<BinaryBuilder>,
}

impl PartBuilder {
    fn with_capacity(n: usize) -> Self {
        Self {
            ts: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            histograms: None,
        }
    }

    /// Appends sample `i` of `p`.
    fn push_from(&mut self, p: &Part, i: usize) {
        self.ts.push(p.ts[i]);
        self.values.push(p.values[i]);
        match p.histogram(i) {
            Some(h) => {
                let n = self.ts.len() - 1;
                self.histograms
                    .get_or_insert_with(|| {
                        let mut b = BinaryBuilder::new();
                        b.append_nulls(n);
                        b
                    })
                    .append_value(h);
            }
            None => {
                if let Some(b) = &mut self.histograms {
                    b.append_null();
                }
            }
        }
    }

    fn finish(self) -> Part {
        Part {
            ts: self.ts,
            values: self.values,
            histograms: self.histograms.map(|mut b| b.finish()),
        }
    }
}

/// Merges parts of one series (same labels) into one sorted part. Where several parts hold
/// the same timestamp, the sample of the latest part (the newest block) is kept, float or
/// histogram; identical samples collapse.
pub fn merge_same(mut parts: Vec<Part>) -> Part {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let total: usize = parts.iter().map(|p| p.ts.len()).sum();
    let mut out = PartBuilder::with_capacity(total);
    let mut pos = vec![0usize; parts.len()];
    loop {
        let mut best: Option<(usize, i64)> = None;
        for (i, p) in parts.iter().enumerate() {
            if let Some(t) = p.ts.get(pos[i])
                && best.is_none_or(|(_, bt)| *t <= bt)
            {
                best = Some((i, *t));
            }
        }
        let Some((i, t)) = best else { break };
        out.push_from(&parts[i], pos[i]);
        for (j, p) in parts.iter().enumerate() {
            if p.ts.get(pos[j]) == Some(&t) {
                pos[j] += 1;
            }
        }
    }
    out.finish()
}

fn median_step(ts: &[i64]) -> i64 {
    if ts.len() < 2 {
        return 0;
    }
    let mut d: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    d.sort_unstable();
    d[d.len() / 2]
}

/// Deduplicates replicas of one series: the replica with the most samples is kept whole;
/// another replica's samples fill only its gaps (a gap is more than twice the primary's
/// median scrape interval, and a filling sample stays half an interval away from the
/// primary's samples). Replicas are never interleaved sample by sample. Histogram samples
/// are samples like the others.
pub fn dedup_replicas(mut replicas: Vec<Part>) -> Part {
    replicas.retain(|p| !p.ts.is_empty());
    if replicas.len() <= 1 {
        return replicas.pop().unwrap_or_default();
    }
    // Most samples first; ties keep the input order.
    let mut order: Vec<usize> = (0..replicas.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(replicas[*i].ts.len()));
    let mut merged = std::mem::take(&mut replicas[order[0]]);
    let step = median_step(&merged.ts);
    for i in &order[1..] {
        let other = &replicas[*i];
        let mut out = PartBuilder::with_capacity(merged.ts.len());
        let mut k = 0; // next primary sample
        for (o, t) in other.ts.iter().enumerate() {
            while k < merged.ts.len() && merged.ts[k] < *t {
                out.push_from(&merged, k);
                k += 1;
            }
            let prev = if k > 0 { Some(merged.ts[k - 1]) } else { None };
            let next = merged.ts.get(k).copied();
            let far_prev = prev.is_none_or(|p| *t - p > step / 2 && *t > p);
            let far_next = next.is_none_or(|n| n - *t > step / 2 && n > *t);
            let in_gap = match (prev, next) {
                (Some(p), Some(n)) => n - p > 2 * step,
                _ => true,
            };
            if far_prev && far_next && in_gap {
                out.push_from(other, o);
            }
        }
        for k in k..merged.ts.len() {
            out.push_from(&merged, k);
        }
        merged = out.finish();
    }
    merged
}

/// Removes the replica labels; returns the rest and the removed labels (the replica's
/// identity).
fn strip(labels: &Labels, replica_labels: &[String]) -> (Labels, Labels) {
    if replica_labels.is_empty() {
        return (labels.clone(), Labels::default());
    }
    let (replica, rest): (Vec<_>, Vec<_>) = labels
        .iter()
        .cloned()
        .partition(|l| replica_labels.contains(&l.name));
    (Labels::from_sorted(rest), Labels::from_sorted(replica))
}

/// One series of the output and where its parts are: (input, series ref, replica).
struct OutSeries {
    labels: Labels,
    members: Vec<(usize, u32, Labels)>,
}

/// Merges `inputs` (blocks of one tenant and resolution) into one new block written through
/// `store`; returns its meta. The new block lists the inputs and their sources in `sources`.
pub async fn merge_blocks(
    store: &Arc<dyn ObjectStore>,
    inputs: &[Arc<BlockReader>],
    replica_labels: &[String],
) -> Result<BlockMeta, CompactError> {
    let first = inputs
        .first()
        .ok_or_else(|| CompactError::Task("nothing to merge".into()))?
        .meta();
    let tenant = hypnos_schemas::TenantId::new(&first.tenant)?;
    let mut tables = Vec::with_capacity(inputs.len());
    for b in inputs {
        tables.push(b.all_series().await?);
    }
    // Every input series under its output labels, sorted: a merge-join by labels.
    let mut entries: Vec<(Labels, usize, u32, Labels)> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        for (r, l) in t.iter().enumerate() {
            let (out, replica) = strip(l, replica_labels);
            entries.push((out, i, r as u32, replica));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut series: Vec<OutSeries> = Vec::new();
    for (labels, i, r, replica) in entries {
        match series.last_mut() {
            Some(s) if s.labels == labels => s.members.push((i, r, replica)),
            _ => series.push(OutSeries {
                labels,
                members: vec![(i, r, replica)],
            }),
        }
    }
    let avg: Vec<u64> = inputs
        .iter()
        .map(|b| b.meta().num_samples / b.meta().num_series.max(1))
        .collect();

    let mut writer = BlockWriter::new(Arc::clone(store), tenant);
    let all = TimeRange::new(i64::MIN, i64::MAX);
    let mut start = 0;
    while start < series.len() {
        // A group of output series of about GROUP_SAMPLES samples.
        let mut end = start;
        let mut est = 0u64;
        while end < series.len() && (end == start || est < GROUP_SAMPLES) {
            est += series[end].members.iter().map(|m| avg[m.0]).sum::<u64>();
            end += 1;
        }
        let group = &series[start..end];
        let mut fetched: Vec<HashMap<u32, RefSamples>> = Vec::with_capacity(inputs.len());
        for (i, b) in inputs.iter().enumerate() {
            let mut refs: Vec<u32> = group
                .iter()
                .flat_map(|s| s.members.iter().filter(|m| m.0 == i).map(|m| m.1))
                .collect();
            refs.sort_unstable();
            refs.dedup();
            let got = b.read_refs(&refs, all).await?;
            fetched.push(got.into_iter().map(|s| (s.series_ref, s)).collect());
        }
        for s in group {
            // Parts per replica, in input order (oldest block first).
            let mut replicas: Vec<(Labels, Vec<Part>)> = Vec::new();
            for (i, r, replica) in &s.members {
                let Some(rs) = fetched[*i].remove(r) else {
                    continue;
                };
                let part = Part::with_histograms(
                    rs.timestamps.values().to_vec(),
                    rs.values.values().to_vec(),
                    rs.histograms,
                );
                match replicas.iter_mut().find(|(k, _)| k == replica) {
                    Some((_, parts)) => parts.push(part),
                    None => replicas.push((replica.clone(), vec![part])),
                }
            }
            replicas.sort_by(|a, b| a.0.cmp(&b.0));
            let merged = dedup_replicas(replicas.into_iter().map(|(_, p)| merge_same(p)).collect());
            if merged.ts.is_empty() {
                continue;
            }
            writer
                .append_with_histograms(
                    s.labels.clone(),
                    &Int64Array::from(merged.ts),
                    &Float64Array::from(merged.values),
                    merged.histograms.as_ref(),
                )
                .await?;
        }
        start = end;
    }
    let mut sources = Vec::new();
    for b in inputs {
        sources.push(b.meta().ulid);
        sources.extend_from_slice(&b.meta().sources);
    }
    let info = BlockInfo {
        source: "compactor".into(),
        level: inputs.iter().map(|b| b.meta().level).max().unwrap_or(1) + 1,
        sources,
        resolution_ms: first.resolution_ms,
    };
    Ok(writer.finish(info).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_series_merges_sorted_and_unique() {
        let m = merge_same(vec![
            Part::new(vec![1, 3, 5], vec![1.0, 3.0, 5.0]),
            Part::new(vec![2, 3, 6], vec![2.0, 9.0, 6.0]),
        ]);
        assert_eq!(m.ts, vec![1, 2, 3, 5, 6]);
        assert_eq!(m.values, vec![1.0, 2.0, 9.0, 5.0, 6.0]);
    }

    #[test]
    fn replicas_fill_gaps_without_interleaving() {
        let a = Part::new(vec![0, 15, 30, 90, 105, 120, 135, 150, 165], vec![1.0; 9]);
        let b = Part::new(vec![7, 22, 37, 52, 67, 82, 97, 112], vec![2.0; 8]);
        let m = dedup_replicas(vec![a, b]);
        // a has more samples and is kept whole; b fills the gap 30..90 only, with samples
        // more than half a step (7) away from a's.
        assert_eq!(
            m.ts,
            vec![0, 15, 30, 52, 67, 82, 90, 105, 120, 135, 150, 165]
        );
    }

    /// A part whose `Err` samples are histograms with those stored bytes.
    fn hp(ts: &[i64], samples: &[Result<f64, &[u8]>]) -> Part {
        let values = samples
            .iter()
            .map(|s| *s.as_ref().unwrap_or(&0.0))
            .collect();
        let h: BinaryArray = samples.iter().map(|s| s.err()).collect();
        Part::with_histograms(ts.to_vec(), values, Some(h))
    }

    /// Each sample as its float or its histogram bytes.
    fn samples(p: &Part) -> Vec<(i64, Result<f64, Vec<u8>>)> {
        (0..p.ts.len())
            .map(|i| match p.histogram(i) {
                Some(h) => (p.ts[i], Err(h.to_vec())),
                None => (p.ts[i], Ok(p.values[i])),
            })
            .collect()
    }

    fn h(b: &[u8]) -> Result<f64, Vec<u8>> {
        Err(b.to_vec())
    }

    #[test]
    fn histograms_merge_like_floats() {
        // The newest part wins at a shared timestamp, whatever the kind of either sample.
        let old = hp(&[1, 2, 3], &[Err(b"o1"), Ok(2.0), Err(b"o3")]);
        let new = hp(&[2, 3, 4], &[Err(b"n2"), Ok(3.5), Err(b"n4")]);
        let m = merge_same(vec![old.clone(), new]);
        assert_eq!(
            samples(&m),
            vec![(1, h(b"o1")), (2, h(b"n2")), (3, Ok(3.5)), (4, h(b"n4"))]
        );
        // A float part merged with a histogram part: the column appears mid-way.
        let m = merge_same(vec![Part::new(vec![0], vec![9.0]), old.clone()]);
        assert_eq!(m.histograms.as_ref().map(|h| h.len()), Some(4));
        assert_eq!(samples(&m)[..2], [(0, Ok(9.0)), (1, h(b"o1"))]);
        // Floats only: no column.
        let m = merge_same(vec![
            Part::new(vec![0], vec![9.0]),
            Part::new(vec![1], vec![1.0]),
        ]);
        assert!(m.histograms.is_none());
        // An all-null column is no column.
        let none: BinaryArray = vec![None::<&[u8]>].into_iter().collect();
        assert_eq!(
            Part::with_histograms(vec![1], vec![1.0], Some(none)),
            Part::new(vec![1], vec![1.0])
        );
    }

    #[test]
    fn histogram_replicas_fill_gaps() {
        let a_ts = [0, 15, 30, 90, 105, 120];
        let a: Vec<Result<f64, &[u8]>> = vec![Err(b"a"); 6];
        let b_ts = [7, 52, 67, 112];
        let b: Vec<Result<f64, &[u8]>> = vec![Err(b"b"), Err(b"b"), Ok(2.0), Err(b"b")];
        let m = dedup_replicas(vec![hp(&b_ts, &b), hp(&a_ts, &a)]);
        assert_eq!(
            samples(&m),
            vec![
                (0, h(b"a")),
                (15, h(b"a")),
                (30, h(b"a")),
                (52, h(b"b")),
                (67, Ok(2.0)),
                (90, h(b"a")),
                (105, h(b"a")),
                (120, h(b"a")),
            ]
        );
    }

    proptest! {
        #[test]
        fn merge_is_the_sorted_deduplicated_union(
            parts in prop::collection::vec(prop::collection::btree_set(0i64..500, 0..60), 1..5)
        ) {
            let parts: Vec<Part> = parts
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let ts: Vec<i64> = s.into_iter().collect();
                    let values = ts.iter().map(|t| (*t * 10 + i as i64) as f64).collect();
                    Part::new(ts, values)
                })
                .collect();
            let mut want: std::collections::BTreeMap<i64, f64> = Default::default();
            for p in &parts {
                for (t, v) in p.ts.iter().zip(&p.values) {
                    want.insert(*t, *v); // later parts win
                }
            }
            let got = merge_same(parts);
            prop_assert_eq!(got.ts, want.keys().copied().collect::<Vec<_>>());
            prop_assert_eq!(got.values, want.values().copied().collect::<Vec<_>>());
        }
    }
}
