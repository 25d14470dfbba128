//! Downsampling: a block of raw samples (or of a finer resolution) becomes a block of
//! aggregates per window, streamed series by series with bounded memory.
//!
//! A downsampled block is an ordinary block whose series carry one more label,
//! [`AGGR_LABEL`], naming the aggregate: every input series yields five series
//! (`count`, `sum`, `min`, `max`, `counter`). Windows are aligned to multiples of the
//! resolution and left-open, right-closed like PromQL ranges: window `k` holds the
//! timestamps in `(k*res - res, k*res]`. A window with at least one sample gives one point
//! per aggregate at the timestamp of its last sample. Staleness markers are skipped.
//!
//! `counter` is the value at the window's last sample plus the sum of the values before
//! every reset seen so far in the block (a value lower than the one before), so it only
//! grows inside a block; it also starts with a point at the block's first sample, so that a
//! rate over the first window has a starting point.
//!
//! Native histogram samples are not downsampled: the aggregates are those of a series'
//! float samples, and a series holding only histograms has none.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array};
use hypnos_schemas::block::{BlockInfo, BlockReader, BlockWriter};
use hypnos_schemas::layout::BlockMeta;
use hypnos_schemas::source::{AGGR_LABEL, RESOLUTION_RAW, ReadAggregate};
use hypnos_schemas::{Labels, TenantId, TimeRange, is_stale_nan};
use object_store::ObjectStore;

use crate::CompactError;
use crate::merge::Part;

/// The aggregates of a downsampled block, in the order of [`Aggregates`]' fields.
pub const AGGREGATES: [ReadAggregate; 5] = [
    ReadAggregate::Count,
    ReadAggregate::Sum,
    ReadAggregate::Min,
    ReadAggregate::Max,
    ReadAggregate::Counter,
];

/// The `source` of the meta of a downsampled block.
pub const DOWNSAMPLE_SOURCE: &str = "downsample";

/// Input samples per group of output series (an estimate from the block's average).
const GROUP_SAMPLES: u64 = 1 << 20;

/// Bytes of computed aggregates kept for series written later (raw input yields all five
/// aggregates of a series at once, but they are written apart, in label order); past it,
/// the raw series is read again when its next aggregate is due.
const CACHE_BYTES: usize = 128 << 20;

/// The five aggregate series of one input series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregates {
    pub count: Part,
    pub sum: Part,
    pub min: Part,
    pub max: Part,
    pub counter: Part,
}

impl Aggregates {
    /// The series of one aggregate (`Value` has none: it is `sum / count`).
    pub fn get(&self, kind: ReadAggregate) -> Option<&Part> {
        match kind {
            ReadAggregate::Count => Some(&self.count),
            ReadAggregate::Sum => Some(&self.sum),
            ReadAggregate::Min => Some(&self.min),
            ReadAggregate::Max => Some(&self.max),
            ReadAggregate::Counter => Some(&self.counter),
            ReadAggregate::Value => None,
        }
    }

    fn take(&mut self, kind: ReadAggregate) -> Part {
        match kind {
            ReadAggregate::Count => std::mem::take(&mut self.count),
            ReadAggregate::Sum => std::mem::take(&mut self.sum),
            ReadAggregate::Min => std::mem::take(&mut self.min),
            ReadAggregate::Max => std::mem::take(&mut self.max),
            ReadAggregate::Counter | ReadAggregate::Value => std::mem::take(&mut self.counter),
        }
    }
}

/// The window holding `t`: the `k` with `k*res - res < t <= k*res`.
pub fn window_of(t: i64, res: i64) -> i64 {
    t.div_euclid(res) + i64::from(t.rem_euclid(res) != 0)
}

/// The smaller of two values, NaN only when both are (as `min_over_time`).
fn nan_min(acc: f64, v: f64) -> f64 {
    if v < acc || acc.is_nan() { v } else { acc }
}

/// The larger of two values, NaN only when both are (as `max_over_time`).
fn nan_max(acc: f64, v: f64) -> f64 {
    if v > acc || acc.is_nan() { v } else { acc }
}

/// Counter values adjusted for resets: a value lower than the previous one starts a new
/// run, and the previous value is added to every later value.
#[derive(Default)]
struct CounterState {
    prev: Option<f64>,
    offset: f64,
    first: Option<(i64, f64)>,
}

impl CounterState {
    fn push(&mut self, t: i64, v: f64) -> f64 {
        if let Some(p) = self.prev
            && v < p
        {
            self.offset += p;
        }
        self.prev = Some(v);
        let adjusted = v + self.offset;
        if self.first.is_none() {
            self.first = Some((t, adjusted));
        }
        adjusted
    }

    /// Puts the first sample in front of `out` unless it is already a window's last.
    fn finish(&self, out: &mut Part) {
        if let Some((t, v)) = self.first
            && out.ts.first() != Some(&t)
        {
            out.ts.insert(0, t);
            out.values.insert(0, v);
        }
    }
}

/// The open window of [`aggregate_raw`].
struct Window {
    k: i64,
    last: i64,
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
}

impl Window {
    fn flush(self, out: &mut Aggregates) {
        for (p, v) in [
            (&mut out.count, self.count),
            (&mut out.sum, self.sum),
            (&mut out.min, self.min),
            (&mut out.max, self.max),
            (&mut out.counter, self.counter),
        ] {
            p.ts.push(self.last);
            p.values.push(v);
        }
    }
}

/// The aggregates of one raw series (timestamps sorted and unique) per window of `res` ms.
pub fn aggregate_raw(ts: &[i64], values: &[f64], res: i64) -> Aggregates {
    assert!(res > 0, "resolution must be positive");
    let mut out = Aggregates::default();
    let mut counter = CounterState::default();
    let mut cur: Option<Window> = None;
    for (&t, &v) in ts.iter().zip(values) {
        if is_stale_nan(v) {
            continue;
        }
        let k = window_of(t, res);
        let c = counter.push(t, v);
        match &mut cur {
            Some(w) if w.k == k => {
                w.last = t;
                w.count += 1.0;
                w.sum += v;
                w.min = nan_min(w.min, v);
                w.max = nan_max(w.max, v);
                w.counter = c;
            }
            _ => {
                if let Some(w) = cur.take() {
                    w.flush(&mut out);
                }
                cur = Some(Window {
                    k,
                    last: t,
                    count: 1.0,
                    sum: v,
                    min: v,
                    max: v,
                    counter: c,
                });
            }
        }
    }
    if let Some(w) = cur {
        w.flush(&mut out);
    }
    counter.finish(&mut out.counter);
    out
}

/// One aggregate series of a finer resolution reduced to windows of `res` ms: counts and
/// sums add up, the min of mins, the max of maxes, and the last (reset-adjusted) counter.
pub fn reduce(kind: ReadAggregate, part: &Part, res: i64) -> Part {
    assert!(res > 0, "resolution must be positive");
    let mut out = Part::default();
    let mut counter = CounterState::default();
    let mut cur: Option<(i64, i64, f64)> = None; // (k, last t, accumulated)
    for (&t, &v) in part.ts.iter().zip(&part.values) {
        if is_stale_nan(v) {
            continue;
        }
        let k = window_of(t, res);
        let v = match kind {
            ReadAggregate::Counter => counter.push(t, v),
            _ => v,
        };
        match &mut cur {
            Some(w) if w.0 == k => {
                w.1 = t;
                w.2 = match kind {
                    ReadAggregate::Count | ReadAggregate::Sum => w.2 + v,
                    ReadAggregate::Min => nan_min(w.2, v),
                    ReadAggregate::Max => nan_max(w.2, v),
                    ReadAggregate::Counter | ReadAggregate::Value => v,
                };
            }
            _ => {
                if let Some((_, t, v)) = cur.take() {
                    out.ts.push(t);
                    out.values.push(v);
                }
                cur = Some((k, t, v));
            }
        }
    }
    if let Some((_, t, v)) = cur {
        out.ts.push(t);
        out.values.push(v);
    }
    if kind == ReadAggregate::Counter {
        counter.finish(&mut out);
    }
    out
}

fn aggregate_of(labels: &Labels) -> Option<ReadAggregate> {
    let v = labels.get(AGGR_LABEL);
    AGGREGATES.into_iter().find(|a| a.label_value() == Some(v))
}

fn bit(kind: ReadAggregate) -> u8 {
    1 << AGGREGATES.iter().position(|a| *a == kind).unwrap_or(4)
}

fn part_bytes(p: &Part) -> usize {
    p.ts.len() * 16
}

/// Writes the downsampled copy of `input` at `resolution_ms` (coarser than the input's, a
/// multiple of it) through `store`; returns its meta. The new block has the input's time
/// range and level, `sources = [input]` and `source = "downsample"`. Raw input yields the
/// five aggregates of every series; downsampled input has its aggregates reduced.
pub async fn downsample_block(
    store: &Arc<dyn ObjectStore>,
    input: &BlockReader,
    resolution_ms: i64,
) -> Result<BlockMeta, CompactError> {
    downsample_with_cache(store, input, resolution_ms, CACHE_BYTES).await
}

async fn downsample_with_cache(
    store: &Arc<dyn ObjectStore>,
    input: &BlockReader,
    resolution_ms: i64,
    cache_limit: usize,
) -> Result<BlockMeta, CompactError> {
    let meta = input.meta();
    let src_res = meta.resolution_ms;
    if resolution_ms <= src_res.max(0) || (src_res > 0 && resolution_ms % src_res != 0) {
        return Err(CompactError::Downsample(format!(
            "block {} has resolution {src_res} ms: cannot downsample it to {resolution_ms} ms \
             (the target must be coarser and a multiple of it)",
            meta.ulid
        )));
    }
    let tenant = TenantId::new(&meta.tenant)?;
    let table = input.all_series().await?;

    // Output series in label order: (labels, input ref, aggregate).
    let mut entries: Vec<(Labels, u32, ReadAggregate)> = Vec::new();
    for (r, l) in table.iter().enumerate() {
        let r = r as u32;
        if src_res == RESOLUTION_RAW {
            if !l.get(AGGR_LABEL).is_empty() {
                return Err(CompactError::Downsample(format!(
                    "raw block {} holds series {l} with the reserved label {AGGR_LABEL}",
                    meta.ulid
                )));
            }
            for a in AGGREGATES {
                let mut out = l.clone();
                out.set(
                    AGGR_LABEL,
                    a.label_value().expect("aggregates have a label"),
                );
                entries.push((out, r, a));
            }
        } else {
            let a = aggregate_of(l).ok_or_else(|| {
                CompactError::Downsample(format!(
                    "downsampled block {} holds series {l} without a known {AGGR_LABEL} label",
                    meta.ulid
                ))
            })?;
            entries.push((l.clone(), r, a));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    // Aggregates still to write, per input ref (bits of AGGREGATES).
    let mut pending = vec![0u8; table.len()];
    for (_, r, a) in &entries {
        pending[*r as usize] |= bit(*a);
    }
    let avg = meta.num_samples / meta.num_series.max(1);
    let mut cache: HashMap<(u32, ReadAggregate), Part> = HashMap::new();
    let mut cache_bytes = 0usize;

    let mut writer = BlockWriter::new(Arc::clone(store), tenant);
    let all = TimeRange::new(i64::MIN, i64::MAX);
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut est = 0u64;
        while end < entries.len() && (end == start || est < GROUP_SAMPLES) {
            est += avg;
            end += 1;
        }
        let group = &entries[start..end];
        let mut refs: Vec<u32> = group
            .iter()
            .filter(|(_, r, a)| !cache.contains_key(&(*r, *a)))
            .map(|(_, r, _)| *r)
            .collect();
        refs.sort_unstable();
        refs.dedup();
        let mut ready: HashMap<(u32, ReadAggregate), Part> = HashMap::new();
        for rs in input.read_refs(&refs, all).await? {
            let r = rs.series_ref;
            // Histogram samples are left out (see the module's documentation).
            let floats: (Vec<i64>, Vec<f64>);
            let (ts, values): (&[i64], &[f64]) = match rs.histograms {
                None => (rs.timestamps.values(), rs.values.values()),
                Some(h) => {
                    let (ts, vs) = (rs.timestamps.values(), rs.values.values());
                    floats = (0..ts.len())
                        .filter(|i| h.is_null(*i))
                        .map(|i| (ts[i], vs[i]))
                        .unzip();
                    (&floats.0, &floats.1)
                }
            };
            if src_res == RESOLUTION_RAW {
                let mut aggs = aggregate_raw(ts, values, resolution_ms);
                for a in AGGREGATES {
                    if pending[r as usize] & bit(a) == 0 {
                        continue;
                    }
                    let part = aggs.take(a);
                    if group.iter().any(|(_, gr, ga)| *gr == r && *ga == a) {
                        ready.insert((r, a), part);
                    } else if cache_bytes + part_bytes(&part) <= cache_limit {
                        cache_bytes += part_bytes(&part);
                        cache.insert((r, a), part);
                    }
                }
            } else {
                let Some(a) = aggregate_of(&table[r as usize]) else {
                    continue;
                };
                let part = Part::new(ts.to_vec(), values.to_vec());
                ready.insert((r, a), reduce(a, &part, resolution_ms));
            }
        }
        for (labels, r, a) in group {
            let part = match ready.remove(&(*r, *a)) {
                Some(p) => p,
                None => match cache.remove(&(*r, *a)) {
                    Some(p) => {
                        cache_bytes -= part_bytes(&p);
                        p
                    }
                    // No samples in the block.
                    None => Part::default(),
                },
            };
            pending[*r as usize] &= !bit(*a);
            if part.ts.is_empty() {
                continue;
            }
            writer
                .append(
                    labels.clone(),
                    &Int64Array::from(part.ts),
                    &Float64Array::from(part.values),
                )
                .await?;
        }
        start = end;
    }
    writer.cover_time_range(meta.min_time, meta.max_time);
    let info = BlockInfo {
        source: DOWNSAMPLE_SOURCE.into(),
        level: meta.level,
        sources: vec![meta.ulid],
        resolution_ms,
    };
    Ok(writer.finish(info).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_schemas::block::{read_meta, write_block};
    use hypnos_schemas::layout::{META_FILE, block_file};
    use hypnos_schemas::source::{RESOLUTION_1H, RESOLUTION_5M};
    use hypnos_schemas::{STALE_NAN_BITS, SeriesData};
    use object_store::memory::InMemory;

    const M5: i64 = RESOLUTION_5M;
    const H: i64 = RESOLUTION_1H;

    fn stale() -> f64 {
        f64::from_bits(STALE_NAN_BITS)
    }

    fn p(ts: &[i64], v: &[f64]) -> Part {
        Part::new(ts.to_vec(), v.to_vec())
    }

    #[test]
    fn aggregates_of_known_data_per_left_open_window() {
        // Window 1 is (0, 5m]: 0 belongs to window 0, 5m to window 1, 5m+1 to window 2.
        let ts = [0, 1000, M5, M5 + 1, 2 * M5 - 1];
        let v = [1.0, 4.0, 2.0, 8.0, 3.0];
        let a = aggregate_raw(&ts, &v, M5);
        assert_eq!(a.count, p(&[0, M5, 2 * M5 - 1], &[1.0, 2.0, 2.0]));
        assert_eq!(a.sum, p(&[0, M5, 2 * M5 - 1], &[1.0, 6.0, 11.0]));
        assert_eq!(a.min, p(&[0, M5, 2 * M5 - 1], &[1.0, 2.0, 3.0]));
        assert_eq!(a.max, p(&[0, M5, 2 * M5 - 1], &[1.0, 4.0, 8.0]));
        // Resets at 2 (after 4) and 3 (after 8): offsets 4, then 12.
        assert_eq!(a.counter, p(&[0, M5, 2 * M5 - 1], &[1.0, 6.0, 15.0]));
        assert_eq!(window_of(0, M5), 0);
        assert_eq!(window_of(M5, M5), 1);
        assert_eq!(window_of(M5 + 1, M5), 2);
        assert_eq!(window_of(-1, M5), 0);
        assert_eq!(window_of(-M5, M5), -1);
    }

    #[test]
    fn counter_starts_at_the_first_sample_and_adds_up_resets() {
        let ts = [10, 20, 30, M5 + 10, M5 + 20];
        let v = [5.0, 7.0, 2.0, 3.0, 1.0];
        let a = aggregate_raw(&ts, &v, M5);
        // First point (10, 5), then window ends: 30 -> 2+7 = 9, M5+20 -> 1+7+3 = 11.
        assert_eq!(a.counter, p(&[10, 30, M5 + 20], &[5.0, 9.0, 11.0]));
        // The increases add up to the raw increases: 2 + 2 (reset) + 1 + 1 (reset).
        let raw_increase = (7.0 - 5.0) + 2.0 + (3.0 - 2.0) + 1.0;
        assert_eq!(a.counter.values[2] - a.counter.values[0], raw_increase);
        assert!(a.counter.values.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn staleness_markers_are_skipped() {
        let ts = [1, 2, 3, M5 + 1, 2 * M5 + 1];
        let v = [1.0, stale(), 2.0, stale(), 4.0];
        let a = aggregate_raw(&ts, &v, M5);
        assert_eq!(a.count, p(&[3, 2 * M5 + 1], &[2.0, 1.0]));
        assert_eq!(a.sum.values, vec![3.0, 4.0]);
        assert_eq!(a.counter, p(&[1, 3, 2 * M5 + 1], &[1.0, 2.0, 4.0]));
        // Only markers: nothing at all.
        assert_eq!(
            aggregate_raw(&[1, 2], &[stale(), stale()], M5),
            Aggregates::default()
        );
        assert_eq!(aggregate_raw(&[], &[], M5), Aggregates::default());
    }

    #[test]
    fn nan_and_inf_are_aggregated_as_floats() {
        let ts = [1, 2, 3];
        let a = aggregate_raw(&ts, &[f64::NAN, 1.0, f64::INFINITY], M5);
        assert_eq!(a.count.values, vec![3.0]);
        assert!(a.sum.values[0].is_nan());
        assert_eq!(a.min.values, vec![1.0]);
        assert_eq!(a.max.values, vec![f64::INFINITY]);
        let a = aggregate_raw(&ts, &[f64::NAN, f64::NAN, f64::NAN], M5);
        assert!(a.min.values[0].is_nan() && a.max.values[0].is_nan());
        let a = aggregate_raw(&ts, &[f64::NEG_INFINITY, 1.0, 2.0], M5);
        assert_eq!(a.min.values, vec![f64::NEG_INFINITY]);
        assert_eq!(a.sum.values, vec![f64::NEG_INFINITY]);
    }

    /// A deterministic series with gaps, resets and integer values (so sums are exact).
    fn data(n: i64) -> (Vec<i64>, Vec<f64>) {
        let mut ts = Vec::new();
        let mut vs = Vec::new();
        let mut c = 0.0;
        for i in 0..n {
            if (i / 50) % 7 == 3 {
                continue; // a gap
            }
            ts.push(i * 15_000 + (i * 31) % 7);
            c = if i % 997 == 500 {
                1.0
            } else {
                c + (i % 13) as f64
            };
            vs.push(c);
        }
        (ts, vs)
    }

    #[test]
    fn five_minutes_then_one_hour_equals_raw_to_one_hour() {
        let (ts, vs) = data(3 * 24 * 240);
        // Starting on a window's end, inside a window, and inside a later 5m window.
        for shift in [0, 1000, 7 * 60_000] {
            let ts: Vec<i64> = ts.iter().map(|t| t + shift).collect();
            let direct = aggregate_raw(&ts, &vs, H);
            let m5 = aggregate_raw(&ts, &vs, M5);
            for kind in AGGREGATES {
                let twice = reduce(kind, m5.get(kind).unwrap(), H);
                assert_eq!(&twice, direct.get(kind).unwrap(), "{kind:?} shift {shift}");
            }
            assert_eq!(
                direct.count.values.iter().sum::<f64>(),
                ts.len() as f64,
                "every sample counted once"
            );
            // The counter starts at the first sample unless it ends its window.
            assert_eq!(direct.counter.ts[0], ts[0]);
            assert_eq!(
                direct.counter.ts.len(),
                direct.count.ts.len() + usize::from(shift != 0)
            );
        }
    }

    #[test]
    fn counter_reduction_adjusts_drops_between_merged_blocks() {
        // Two 5m blocks merged: the second one's counter starts again from its raw value.
        let part = p(&[1, M5, 2 * M5, 3 * M5, 4 * M5], &[1.0, 5.0, 9.0, 2.0, 4.0]);
        let out = reduce(ReadAggregate::Counter, &part, H);
        assert_eq!(out, p(&[1, 4 * M5], &[1.0, 13.0]));
    }

    fn series(name: &str, ts: &[i64], vs: &[f64]) -> SeriesData {
        SeriesData::new(
            Labels::from_pairs([("__name__", name), ("job", "a")]),
            Int64Array::from(ts.to_vec()),
            Float64Array::from(vs.to_vec()),
        )
    }

    async fn read_all(store: &Arc<dyn ObjectStore>, meta: &BlockMeta) -> Vec<(Labels, Part)> {
        let reader = BlockReader::new(Arc::clone(store), meta.clone()).unwrap();
        let labels = reader.all_series().await.unwrap();
        let refs: Vec<u32> = (0..labels.len() as u32).collect();
        reader
            .read_refs(&refs, TimeRange::new(i64::MIN, i64::MAX))
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    labels[s.series_ref as usize].clone(),
                    Part::new(s.timestamps.values().to_vec(), s.values.values().to_vec()),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn blocks_are_downsampled_and_read_back() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = TenantId::new("t").unwrap();
        let (ts, vs) = data(2 * 24 * 240);
        let mut stale_ts = vec![0];
        stale_ts.extend(&ts[1..]);
        let only_stale = vec![stale(); 3];
        let raw = write_block(
            &store,
            &tenant,
            vec![
                series("a", &ts, &vs),
                series("b", &ts, &vs.iter().map(|v| v * 0.5).collect::<Vec<_>>()),
                series("gone", &ts[..3], &only_stale),
            ],
        )
        .await
        .unwrap();
        let reader = BlockReader::new(Arc::clone(&store), raw.clone()).unwrap();
        let m5 = downsample_block(&store, &reader, M5).await.unwrap();
        assert_eq!(
            (m5.min_time, m5.max_time, m5.level, m5.resolution_ms),
            (raw.min_time, raw.max_time, raw.level, M5)
        );
        assert_eq!(m5.sources, vec![raw.ulid]);
        assert_eq!(m5.source, DOWNSAMPLE_SOURCE);
        // Two series with data, five aggregates each; the all-stale series is left out.
        assert_eq!(m5.num_series, 10);
        let stored = read_meta(&store, &block_file(&tenant, m5.ulid, META_FILE))
            .await
            .unwrap();
        assert_eq!(stored, m5);
        let got = read_all(&store, &m5).await;
        let want = aggregate_raw(&ts, &vs, M5);
        for kind in AGGREGATES {
            let mut l = Labels::from_pairs([("__name__", "a"), ("job", "a")]);
            l.set(AGGR_LABEL, kind.label_value().unwrap());
            let (_, part) = got.iter().find(|(g, _)| *g == l).expect("series stored");
            assert_eq!(part, want.get(kind).unwrap(), "{kind:?}");
        }
        let counts: f64 = got
            .iter()
            .filter(|(l, _)| l.get(AGGR_LABEL) == "count")
            .flat_map(|(_, p)| p.values.iter())
            .sum();
        assert_eq!(counts, 2.0 * ts.len() as f64);

        // 5m -> 1h equals raw -> 1h.
        let r5 = BlockReader::new(Arc::clone(&store), m5.clone()).unwrap();
        let h1 = downsample_block(&store, &r5, H).await.unwrap();
        assert_eq!(h1.sources, vec![m5.ulid]);
        let h1_direct = downsample_block(&store, &reader, H).await.unwrap();
        assert_eq!(
            read_all(&store, &h1).await,
            read_all(&store, &h1_direct).await
        );

        // Not coarser, or not a multiple: refused.
        let e = downsample_block(&store, &r5, M5).await.unwrap_err();
        assert!(e.to_string().contains("coarser"), "{e}");
        let e = downsample_block(&store, &r5, 7 * 60_000).await.unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
    }

    #[tokio::test]
    async fn labels_sorting_before_the_aggregate_label_keep_label_order() {
        // "A" sorts before "__hypnos_aggr__", "z" after: the output order interleaves.
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = TenantId::new("t").unwrap();
        let mk = |a: &str, n: &str| {
            SeriesData::new(
                Labels::from_pairs([("A", a), ("__name__", n), ("z", "1")]),
                Int64Array::from(vec![1, 2, M5 + 1]),
                Float64Array::from(vec![1.0, 2.0, 3.0]),
            )
        };
        let raw = write_block(
            &store,
            &tenant,
            vec![mk("x", "m"), mk("y", "m"), mk("y", "n")],
        )
        .await
        .unwrap();
        let reader = BlockReader::new(Arc::clone(&store), raw).unwrap();
        let m5 = downsample_block(&store, &reader, M5).await.unwrap();
        assert_eq!(m5.num_series, 15);
        let got = read_all(&store, &m5).await;
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        // Without a cache, every aggregate reads its raw series again: the same block.
        let uncached = downsample_with_cache(&store, &reader, M5, 0).await.unwrap();
        assert_eq!(read_all(&store, &uncached).await, got);
        assert!(got.iter().all(|(l, p)| match l.get(AGGR_LABEL) {
            "count" => p.values == vec![2.0, 1.0],
            "sum" => p.values == vec![3.0, 3.0],
            "counter" => p.ts == vec![1, 2, M5 + 1] && p.values == vec![1.0, 2.0, 3.0],
            _ => p.ts == vec![2, M5 + 1],
        }));
    }

    /// Native histograms are not downsampled: a raw block holding them downsamples the
    /// float samples of every series and leaves series of histograms only out.
    #[tokio::test]
    async fn histogram_samples_are_left_out() {
        use arrow::array::BinaryArray;
        use hypnos_schemas::histogram::FloatHistogram;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = TenantId::new("t").unwrap();
        let (ts, vs) = data(24 * 240);
        let hist = |i: usize| {
            FloatHistogram {
                count: i as f64,
                sum: vs[i],
                ..FloatHistogram::default()
            }
            .encode()
        };
        // `mixed`: every third sample a histogram; `hist`: histograms only.
        let is_hist = |i: usize| i % 3 == 1;
        let mixed_h: BinaryArray = (0..ts.len()).map(|i| is_hist(i).then(|| hist(i))).collect();
        let mixed_v: Vec<f64> = (0..ts.len())
            .map(|i| if is_hist(i) { 0.0 } else { vs[i] })
            .collect();
        let only_h: BinaryArray = (0..ts.len()).map(|i| Some(hist(i))).collect();
        let labels = |n: &str| Labels::from_pairs([("__name__", n), ("job", "a")]);
        let raw = write_block(
            &store,
            &tenant,
            vec![
                series("floats", &ts, &vs),
                SeriesData::with_histograms(
                    labels("mixed"),
                    Int64Array::from(ts.clone()),
                    Float64Array::from(mixed_v),
                    mixed_h,
                ),
                SeriesData::with_histograms(
                    labels("hist"),
                    Int64Array::from(ts.clone()),
                    Float64Array::from(vec![0.0; ts.len()]),
                    only_h,
                ),
            ],
        )
        .await
        .unwrap();
        assert_eq!(raw.num_samples, 3 * ts.len() as u64);
        let reader = BlockReader::new(Arc::clone(&store), raw.clone()).unwrap();
        let m5 = downsample_block(&store, &reader, M5).await.unwrap();
        assert_eq!(m5.num_series, 10, "floats and mixed, five aggregates each");
        let got = read_all(&store, &m5).await;
        let (fts, fvs): (Vec<i64>, Vec<f64>) = (0..ts.len())
            .filter(|i| !is_hist(*i))
            .map(|i| (ts[i], vs[i]))
            .unzip();
        for (name, want) in [
            ("floats", aggregate_raw(&ts, &vs, M5)),
            ("mixed", aggregate_raw(&fts, &fvs, M5)),
        ] {
            for kind in AGGREGATES {
                let mut l = labels(name);
                l.set(AGGR_LABEL, kind.label_value().unwrap());
                let (_, part) = got.iter().find(|(g, _)| *g == l).expect("stored");
                assert_eq!(part, want.get(kind).unwrap(), "{name} {kind:?}");
            }
        }
        // And on to 1h, from the 5m block and from the raw one alike.
        let r5 = BlockReader::new(Arc::clone(&store), m5).unwrap();
        let h1 = downsample_block(&store, &r5, H).await.unwrap();
        let h1_direct = downsample_block(&store, &reader, H).await.unwrap();
        assert_eq!(h1.num_series, 10);
        assert_eq!(
            read_all(&store, &h1).await,
            read_all(&store, &h1_direct).await
        );
    }

    #[tokio::test]
    async fn an_empty_block_downsamples_to_an_empty_block() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = TenantId::new("t").unwrap();
        let raw = write_block(&store, &tenant, vec![]).await.unwrap();
        let reader = BlockReader::new(Arc::clone(&store), raw).unwrap();
        let m5 = downsample_block(&store, &reader, M5).await.unwrap();
        assert_eq!((m5.num_series, m5.num_samples), (0, 0));
    }
}
