//! [`SampleCache`]: decoded samples of block series, kept across queries within a byte
//! budget.
//!
//! Reading a few samples of a series from `samples.parquet` costs the decompression and
//! decoding of every page they sit in (128 Ki rows per column), which dominates short
//! queries. Blocks are immutable, so a series' decoded timestamps and values stay valid for
//! as long as its block exists; the cache keeps them, evicting the least recently used
//! entries once the budget is exceeded.

use std::collections::HashMap;
use std::sync::Mutex;

use arrow::array::{Array, BinaryArray, Float64Array, Int64Array};
use ulid::Ulid;

/// What an entry holds about its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Part {
    /// The whole timestamp vector (of a series other series may share it with).
    Timestamps,
    /// The whole values: floats, and histograms (null at float samples) if there are any.
    Values,
}

/// A cached column (or pair of columns) of one series of one block.
#[derive(Clone, Debug)]
pub(super) enum Cached {
    Timestamps(Int64Array),
    Values {
        values: Float64Array,
        histograms: Option<BinaryArray>,
    },
}

impl Cached {
    fn bytes(&self) -> usize {
        // The map entry itself, so that many tiny series are not free.
        const ENTRY: usize = 96;
        ENTRY
            + match self {
                Cached::Timestamps(t) => t.get_buffer_memory_size(),
                Cached::Values { values, histograms } => {
                    values.get_buffer_memory_size()
                        + histograms
                            .as_ref()
                            .map_or(0, |h| h.get_buffer_memory_size())
                }
            }
    }
}

struct Slot {
    entry: Cached,
    bytes: usize,
    last_used: u64,
}

/// The entries of one block, indexed by series ref.
#[derive(Default)]
struct BlockEntries {
    timestamps: Vec<Option<Slot>>,
    values: Vec<Option<Slot>>,
}

impl BlockEntries {
    fn slots(&mut self, part: Part) -> &mut Vec<Option<Slot>> {
        match part {
            Part::Timestamps => &mut self.timestamps,
            Part::Values => &mut self.values,
        }
    }
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<Ulid, BlockEntries>,
    entries: usize,
    bytes: usize,
    clock: u64,
}

impl Inner {
    fn remove(&mut self, block: Ulid, series_ref: u32, part: Part) {
        let Some(b) = self.blocks.get_mut(&block) else {
            return;
        };
        if let Some(old) = b
            .slots(part)
            .get_mut(series_ref as usize)
            .and_then(Option::take)
        {
            self.entries -= 1;
            self.bytes -= old.bytes;
        }
    }
}

/// Decoded samples of block series, shared by every reader of a catalog; at most `budget`
/// bytes (a budget of 0 keeps nothing).
pub struct SampleCache {
    budget: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SampleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.usage();
        f.debug_struct("SampleCache")
            .field("budget", &self.budget)
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

impl SampleCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget: budget_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Entries and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries, inner.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent state (every update is a
        // single slot change with its counts), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of `refs` of `block`, in the order of `refs` (one lock for all).
    pub(super) fn get_many(
        &self,
        block: Ulid,
        part: Part,
        refs: impl IntoIterator<Item = u32>,
    ) -> Vec<Option<Cached>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let mut slots = inner.blocks.get_mut(&block).map(|b| b.slots(part));
        refs.into_iter()
            .map(|r| {
                let slot = slots.as_mut()?.get_mut(r as usize)?.as_mut()?;
                slot.last_used = now;
                Some(slot.entry.clone())
            })
            .collect()
    }

    /// The entry of one series of `block`.
    #[cfg(test)]
    pub(super) fn get(&self, block: Ulid, series_ref: u32, part: Part) -> Option<Cached> {
        self.get_many(block, part, [series_ref]).pop().flatten()
    }

    /// Keeps `entry`; when that goes over the budget, the least recently used entries go
    /// until a quarter of the budget is free again. An entry larger than a quarter of the
    /// budget is not kept at all.
    pub(super) fn insert(&self, block: Ulid, series_ref: u32, part: Part, entry: Cached) {
        let bytes = entry.bytes();
        if bytes > self.budget / 4 {
            return;
        }
        let mut inner = self.lock();
        inner.remove(block, series_ref, part);
        inner.clock += 1;
        let last_used = inner.clock;
        let slots = inner.blocks.entry(block).or_default().slots(part);
        let at = series_ref as usize;
        if slots.len() <= at {
            slots.resize_with(at + 1, || None);
        }
        slots[at] = Some(Slot {
            entry,
            bytes,
            last_used,
        });
        inner.entries += 1;
        inner.bytes += bytes;
        if inner.bytes > self.budget {
            let target = self.budget - self.budget / 4;
            let mut by_age: Vec<(u64, Ulid, u32, Part)> = Vec::with_capacity(inner.entries);
            for (b, e) in &inner.blocks {
                for (part, slots) in [(Part::Timestamps, &e.timestamps), (Part::Values, &e.values)]
                {
                    for (r, s) in slots.iter().enumerate() {
                        if let Some(s) = s {
                            by_age.push((s.last_used, *b, r as u32, part));
                        }
                    }
                }
            }
            by_age.sort_unstable_by_key(|(used, ..)| *used);
            for (_, b, r, part) in by_age {
                if inner.bytes <= target {
                    break;
                }
                inner.remove(b, r, part);
            }
            inner
                .blocks
                .retain(|_, e| e.timestamps.iter().chain(&e.values).any(Option::is_some));
        }
    }

    /// Drops every entry of `block` (a block that is gone).
    pub(super) fn forget_block(&self, block: Ulid) {
        let mut inner = self.lock();
        if let Some(e) = inner.blocks.remove(&block) {
            for s in e.timestamps.iter().chain(&e.values).flatten() {
                inner.entries -= 1;
                inner.bytes -= s.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: usize) -> Cached {
        Cached::Timestamps(Int64Array::from((0..n as i64).collect::<Vec<_>>()))
    }

    fn len(c: &Cached) -> usize {
        match c {
            Cached::Timestamps(t) => t.len(),
            Cached::Values { values, .. } => values.len(),
        }
    }

    #[test]
    fn keeps_and_returns_entries() {
        let cache = SampleCache::new(1 << 20);
        let b = Ulid::from_parts(1, 1);
        assert!(cache.get(b, 3, Part::Timestamps).is_none());
        cache.insert(b, 3, Part::Timestamps, ts(10));
        assert_eq!(len(&cache.get(b, 3, Part::Timestamps).unwrap()), 10);
        assert!(cache.get(b, 3, Part::Values).is_none());
        assert!(cache.get(b, 4, Part::Timestamps).is_none());
        assert!(
            cache
                .get(Ulid::from_parts(2, 1), 3, Part::Timestamps)
                .is_none()
        );
        let (entries, bytes) = cache.usage();
        assert_eq!(entries, 1);
        assert!(bytes >= 80, "{bytes}");
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        // Each entry: 8 KiB of timestamps plus the entry overhead.
        let cache = SampleCache::new(40_000);
        let b = Ulid::from_parts(1, 1);
        for r in 0..4 {
            cache.insert(b, r, Part::Timestamps, ts(1024));
        }
        // Series 0 was used last: it stays when the fifth entry goes over the budget.
        assert!(cache.get(b, 0, Part::Timestamps).is_some());
        cache.insert(b, 4, Part::Timestamps, ts(1024));
        let (_, bytes) = cache.usage();
        assert!(bytes <= 30_000, "{bytes}");
        assert!(cache.get(b, 0, Part::Timestamps).is_some());
        assert!(cache.get(b, 4, Part::Timestamps).is_some());
        assert!(cache.get(b, 1, Part::Timestamps).is_none());
        assert!(cache.get(b, 2, Part::Timestamps).is_none());
    }

    #[test]
    fn large_entries_and_zero_budget_keep_nothing() {
        let b = Ulid::from_parts(1, 1);
        let cache = SampleCache::new(0);
        cache.insert(b, 0, Part::Timestamps, ts(1));
        assert_eq!(cache.usage(), (0, 0));
        let cache = SampleCache::new(10_000);
        cache.insert(b, 0, Part::Timestamps, ts(1024));
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn forgets_a_block() {
        let cache = SampleCache::new(1 << 20);
        let (a, b) = (Ulid::from_parts(1, 1), Ulid::from_parts(2, 2));
        cache.insert(a, 0, Part::Timestamps, ts(10));
        cache.insert(b, 0, Part::Timestamps, ts(10));
        cache.insert(
            a,
            1,
            Part::Values,
            Cached::Values {
                values: Float64Array::from(vec![1.0; 10]),
                histograms: None,
            },
        );
        cache.forget_block(a);
        assert_eq!(cache.usage().0, 1);
        assert!(cache.get(b, 0, Part::Timestamps).is_some());
        assert!(cache.get(a, 1, Part::Values).is_none());
        let one = cache.usage().1;
        cache.forget_block(b);
        assert_eq!(cache.usage(), (0, 0));
        assert!(one > 0);
    }
}
