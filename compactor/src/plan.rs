//! What to compact: per tenant and resolution, blocks grouped into time windows aligned to
//! multiples of each level's range; and what to downsample. Pure functions over metas; no
//! IO.

use std::collections::{BTreeMap, HashSet};

use hypnos_schemas::layout::BlockMeta;
use hypnos_schemas::source::{RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW};
use ulid::Ulid;

/// Default level ranges: 2h, 8h, 2d, 14d (ms). The first is the head block duration.
pub const DEFAULT_RANGES: [i64; 4] = [
    2 * 3_600_000,
    8 * 3_600_000,
    48 * 3_600_000,
    14 * 24 * 3_600_000,
];

/// The blocks of `metas` that are replaced: listed in the `sources` of another block of the
/// same resolution.
pub fn replaced(metas: &[BlockMeta]) -> HashSet<Ulid> {
    let by_res: HashSet<(i64, Ulid)> = metas
        .iter()
        .flat_map(|m| m.sources.iter().map(|u| (m.resolution_ms, *u)))
        .collect();
    metas
        .iter()
        .filter(|m| by_res.contains(&(m.resolution_ms, m.ulid)))
        .map(|m| m.ulid)
        .collect()
}

/// Groups of blocks to merge, each into one block. `metas` are the visible (not replaced,
/// not marked) blocks of one tenant. For each range after the first, smallest first, blocks
/// shorter than the range are grouped by the aligned window holding their `min_time`; a
/// window with two or more blocks is compacted once it is closed (some block of the tenant
/// ends after the window). Only the groups of the smallest range that has any are returned:
/// the caller compacts them, lists again and plans the next level.
pub fn plan(metas: &[BlockMeta], ranges: &[i64]) -> Vec<Vec<BlockMeta>> {
    let mut by_res: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
    for m in metas {
        by_res.entry(m.resolution_ms).or_default().push(m);
    }
    for range in ranges.iter().skip(1).copied().filter(|r| *r > 0) {
        let mut groups = Vec::new();
        for blocks in by_res.values() {
            let newest = blocks.iter().map(|m| m.max_time).max().unwrap_or(i64::MIN);
            let mut windows: BTreeMap<i64, Vec<BlockMeta>> = BTreeMap::new();
            for m in blocks {
                if m.max_time - m.min_time + 1 >= range {
                    continue;
                }
                let start = m.min_time - m.min_time.rem_euclid(range);
                windows.entry(start).or_default().push((*m).clone());
            }
            for (start, mut group) in windows {
                if group.len() >= 2 && start + range <= newest {
                    group.sort_by_key(|m| m.ulid);
                    groups.push(group);
                }
            }
        }
        if !groups.is_empty() {
            return groups;
        }
    }
    Vec::new()
}

/// Whether blocks of resolution `res` among `metas` already stand for `source`: one lists it
/// in its `sources`, or together they cover its whole `[min_time, max_time]` (as after the
/// raw blocks they were made from were compacted further).
pub fn covered(metas: &[BlockMeta], source: &BlockMeta, res: i64) -> bool {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for m in metas.iter().filter(|m| m.resolution_ms == res) {
        if m.sources.contains(&source.ulid) {
            return true;
        }
        ranges.push((m.min_time, m.max_time));
    }
    ranges.sort_unstable();
    let mut next = source.min_time; // the first timestamp not covered yet
    for (lo, hi) in ranges {
        if lo > next {
            break;
        }
        if hi >= next {
            if hi >= source.max_time {
                return true;
            }
            next = hi + 1;
        }
    }
    false
}

/// Blocks to downsample and the resolution to give them, as Thanos does: a raw block
/// spanning at least `min_span_5m` ms gets a 5m block, a 5m block spanning at least
/// `min_span_1h` ms a 1h block, unless blocks of that resolution already stand for it
/// ([`covered`]). `metas` are the visible blocks of one tenant.
pub fn plan_downsample(
    metas: &[BlockMeta],
    min_span_5m: i64,
    min_span_1h: i64,
) -> Vec<(BlockMeta, i64)> {
    let mut jobs = Vec::new();
    for m in metas {
        let span = m.max_time.saturating_sub(m.min_time).saturating_add(1);
        let target = match m.resolution_ms {
            RESOLUTION_RAW if span >= min_span_5m => RESOLUTION_5M,
            RESOLUTION_5M if span >= min_span_1h => RESOLUTION_1H,
            _ => continue,
        };
        if !covered(metas, m, target) {
            jobs.push((m.clone(), target));
        }
    }
    jobs.sort_by_key(|(m, _)| m.ulid);
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn meta(min: i64, max: i64, sources: &[Ulid]) -> BlockMeta {
        BlockMeta {
            ulid: Ulid::new(),
            tenant: "t".into(),
            min_time: min,
            max_time: max,
            resolution_ms: 0,
            level: 1,
            num_series: 1,
            num_samples: 1,
            num_histogram_samples: 0,
            schema_version: 2,
            source: "head".into(),
            sources: sources.to_vec(),
            files: Vec::new(),
        }
    }

    #[test]
    fn groups_closed_windows_of_the_smallest_level() {
        let blocks: Vec<BlockMeta> = (0..9)
            .map(|i| meta(i * 2 * H, (i + 1) * 2 * H - 1, &[]))
            .collect();
        let groups = plan(&blocks, &DEFAULT_RANGES);
        // 0-8h and 8-16h are closed (data up to 18h); 16-24h is not.
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 4);
        assert_eq!(groups[1].len(), 4);
        // Nothing to do for a single block per window.
        assert!(plan(&blocks[..1], &DEFAULT_RANGES).is_empty());
    }

    #[test]
    fn replaced_blocks_are_found_by_resolution() {
        let a = meta(0, 10, &[]);
        let b = meta(0, 10, &[a.ulid]);
        let mut c = meta(0, 10, &[a.ulid]);
        c.resolution_ms = 300_000;
        let r = replaced(&[a.clone(), b.clone(), c]);
        assert!(r.contains(&a.ulid) && !r.contains(&b.ulid) && r.len() == 1);
    }

    #[test]
    fn resolutions_are_compacted_apart() {
        // Two raw and two 5m blocks in the window [0, 8h), closed at each resolution.
        let mut blocks: Vec<BlockMeta> = (0..3)
            .map(|i| meta(i * 2 * H, (i + 1) * 2 * H - 1, &[]))
            .collect();
        blocks.truncate(2);
        blocks.push(meta(8 * H, 9 * H, &[]));
        let downsampled: Vec<BlockMeta> = blocks
            .iter()
            .map(|m| BlockMeta {
                ulid: Ulid::new(),
                resolution_ms: RESOLUTION_5M,
                sources: vec![m.ulid],
                ..m.clone()
            })
            .collect();
        blocks.extend(downsampled);
        let groups = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(groups.len(), 2);
        for g in &groups {
            assert_eq!(g.len(), 2);
            assert_eq!(g[0].resolution_ms, g[1].resolution_ms);
        }
    }

    #[test]
    fn long_blocks_are_downsampled_unless_covered() {
        let raw = meta(0, 48 * H - 1, &[]);
        let short = meta(48 * H, 50 * H - 1, &[]);
        let jobs = plan_downsample(&[raw.clone(), short.clone()], 40 * H, 240 * H);
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].0.ulid, jobs[0].1), (raw.ulid, RESOLUTION_5M));

        // Its 5m block lists it: done. A 5m block long enough gets a 1h block.
        let mut m5 = meta(0, 48 * H - 1, &[raw.ulid]);
        m5.resolution_ms = RESOLUTION_5M;
        let jobs = plan_downsample(&[raw.clone(), m5.clone()], 40 * H, 40 * H);
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].0.ulid, jobs[0].1), (m5.ulid, RESOLUTION_1H));

        // A raw block compacted further is covered by the 5m blocks of its parts...
        let big = meta(0, 96 * H - 1, &[]);
        let mut a = meta(0, 48 * H - 1, &[Ulid::new()]);
        a.resolution_ms = RESOLUTION_5M;
        let mut b = meta(48 * H, 96 * H - 1, &[Ulid::new()]);
        b.resolution_ms = RESOLUTION_5M;
        assert!(covered(&[a.clone(), b.clone()], &big, RESOLUTION_5M));
        assert!(plan_downsample(&[big.clone(), a.clone(), b.clone()], 40 * H, i64::MAX).is_empty());
        // ... but not when a hole is left, nor by blocks of another resolution.
        b.min_time += 1;
        assert!(!covered(&[a.clone(), b.clone()], &big, RESOLUTION_5M));
        assert!(!covered(&[a, b], &big, RESOLUTION_1H));
    }
}
