//! What to compact: per tenant and resolution, blocks grouped into time windows aligned to
//! multiples of each level's range. Pure functions over metas; no IO.

use std::collections::{BTreeMap, HashSet};

use hypnos_schemas::layout::BlockMeta;
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
}
