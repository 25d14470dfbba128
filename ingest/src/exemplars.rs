//! Exemplars in memory, per tenant: a bounded circular buffer like Prometheus' exemplar
//! storage (`--storage.exemplars.max-exemplars`).
//!
//! Each tenant has its own buffer of at most `max_per_tenant` exemplars; when it is full the
//! oldest exemplar (in arrival order) is overwritten, whichever series it belongs to. Per
//! series the exemplars are kept in timestamp order: an exemplar older than the newest one of
//! its series is dropped (`out_of_order`), one with the timestamp and value of a stored one
//! is dropped as a `duplicate` (a retried request adds nothing).
//!
//! Exemplars reach the buffer through the WAL record of their request, and at every cut the
//! whole buffer is logged again at the start of the new segment (the segments before it are
//! deleted once the heads are in blocks), so a restart restores them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hypnos_schemas::matcher::matches_all;
use hypnos_schemas::{Labels, Matcher, TenantId};
use parking_lot::RwLock;

/// Default of `max_per_tenant`, as Prometheus' `--storage.exemplars.max-exemplars`.
pub const DEFAULT_MAX_EXEMPLARS_PER_TENANT: usize = 100_000;

/// Longest exemplar label set, in UTF-8 runes of names and values (Prometheus'
/// `ExemplarMaxLabelSetLength`).
pub const MAX_EXEMPLAR_LABEL_RUNES: usize = 128;

/// One exemplar: its own labels (a trace id, typically), a value and a millisecond
/// timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp: i64,
}

/// The exemplars of one series (labels as stored, `tenant_id` included), by timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesExemplars {
    pub series: Labels,
    pub exemplars: Vec<Exemplar>,
}

/// What adding exemplars did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExemplarStats {
    pub(crate) stored: usize,
    pub(crate) duplicates: usize,
    pub(crate) out_of_order: usize,
}

impl ExemplarStats {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Stored => self.stored += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::OutOfOrder => self.out_of_order += 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Stored,
    Duplicate,
    OutOfOrder,
}

/// The exemplars of every tenant.
#[derive(Debug)]
pub(crate) struct ExemplarStore {
    max_per_tenant: usize,
    tenants: RwLock<HashMap<TenantId, TenantBuffer>>,
}

impl ExemplarStore {
    /// A store keeping at most `max_per_tenant` exemplars per tenant; 0 keeps none.
    pub(crate) fn new(max_per_tenant: usize) -> Self {
        Self {
            max_per_tenant,
            tenants: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_per_tenant > 0
    }

    /// Adds the exemplars of one series of `tenant`, in the order given.
    pub(crate) fn add(
        &self,
        tenant: &TenantId,
        series: &Labels,
        exemplars: impl IntoIterator<Item = Exemplar>,
    ) -> ExemplarStats {
        let mut stats = ExemplarStats::default();
        if !self.enabled() {
            return stats;
        }
        let mut tenants = self.tenants.write();
        let buf = match tenants.get_mut(tenant) {
            Some(b) => b,
            None => tenants
                .entry(tenant.clone())
                .or_insert_with(|| TenantBuffer::new(self.max_per_tenant)),
        };
        for e in exemplars {
            stats.add(buf.add(series, e));
        }
        stats
    }

    /// The exemplars of `tenant` in `[start, end]` of the series matching any of `sets`,
    /// sorted by series; series without exemplars in the range are left out.
    pub(crate) fn select(
        &self,
        tenant: &TenantId,
        sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Vec<SeriesExemplars> {
        let tenants = self.tenants.read();
        tenants
            .get(tenant)
            .map(|b| b.select(sets, start, end))
            .unwrap_or_default()
    }

    /// Every tenant holding exemplars.
    pub(crate) fn tenants(&self) -> Vec<TenantId> {
        self.tenants.read().keys().cloned().collect()
    }

    /// Every exemplar held, per tenant, as runs of one series each: in arrival order (oldest
    /// first, consecutive exemplars of one series together), so that replaying them into an
    /// empty store rebuilds the same buffers.
    pub(crate) fn snapshot(&self) -> Vec<(TenantId, Vec<ExemplarRun>)> {
        let tenants = self.tenants.read();
        let mut out: Vec<(TenantId, Vec<ExemplarRun>)> = tenants
            .iter()
            .filter(|(_, b)| !b.slots.is_empty())
            .map(|(t, b)| (t.clone(), b.snapshot()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Exemplars held for `tenant`.
    pub(crate) fn len(&self, tenant: &TenantId) -> usize {
        self.tenants.read().get(tenant).map_or(0, |b| b.slots.len())
    }
}

/// Consecutive exemplars of one series, as [`ExemplarStore::snapshot`] returns them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExemplarRun {
    pub(crate) series: Labels,
    pub(crate) exemplars: Vec<Exemplar>,
}

struct Slot {
    series: Arc<Labels>,
    exemplar: Exemplar,
}

/// One tenant's circular buffer. `slots` grows to `capacity`, then `next` (the oldest slot)
/// is overwritten and moves on. Per series, `series` holds its slot indexes in arrival
/// order, which is timestamp order; the slot overwritten next is always the first of its
/// series.
struct TenantBuffer {
    capacity: usize,
    slots: Vec<Slot>,
    next: usize,
    series: HashMap<Arc<Labels>, VecDeque<usize>>,
}

impl std::fmt::Debug for TenantBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantBuffer")
            .field("capacity", &self.capacity)
            .field("exemplars", &self.slots.len())
            .field("series", &self.series.len())
            .finish()
    }
}

impl TenantBuffer {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            slots: Vec::new(),
            next: 0,
            series: HashMap::new(),
        }
    }

    fn add(&mut self, series: &Labels, e: Exemplar) -> Outcome {
        if let Some(q) = self.series.get(series) {
            let newest = &self.slots[*q.back().expect("series are never empty")].exemplar;
            if e.timestamp <= newest.timestamp {
                let ts = |s: &usize| self.slots[*s].exemplar.timestamp;
                let first = q.partition_point(|s| ts(s) < e.timestamp);
                let same = q
                    .range(first..)
                    .take_while(|s| ts(s) == e.timestamp)
                    .any(|s| self.slots[*s].exemplar.value.to_bits() == e.value.to_bits());
                if same {
                    return Outcome::Duplicate;
                }
                if e.timestamp < newest.timestamp {
                    return Outcome::OutOfOrder;
                }
            }
        }
        let key = match self.series.get_key_value(series) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::new(series.clone()),
        };
        let slot = Slot {
            series: Arc::clone(&key),
            exemplar: e,
        };
        let at = if self.slots.len() < self.capacity {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let at = self.next;
            let old = std::mem::replace(&mut self.slots[at], slot);
            self.evict(&old.series, at);
            self.next = (at + 1) % self.capacity;
            at
        };
        self.series.entry(key).or_default().push_back(at);
        Outcome::Stored
    }

    fn snapshot(&self) -> Vec<ExemplarRun> {
        let (newer, older) = self.slots.split_at(self.next);
        let mut runs: Vec<ExemplarRun> = Vec::new();
        let mut last: Option<&Arc<Labels>> = None;
        for slot in older.iter().chain(newer) {
            if !last.is_some_and(|l| Arc::ptr_eq(l, &slot.series)) {
                runs.push(ExemplarRun {
                    series: Labels::clone(&slot.series),
                    exemplars: Vec::new(),
                });
                last = Some(&slot.series);
            }
            let run = runs.last_mut().expect("pushed above");
            run.exemplars.push(slot.exemplar.clone());
        }
        runs
    }

    /// Forgets slot `at`, the oldest of `series`.
    fn evict(&mut self, series: &Labels, at: usize) {
        let q = self
            .series
            .get_mut(series)
            .expect("a stored slot has its series");
        let first = q.pop_front();
        debug_assert_eq!(
            first,
            Some(at),
            "the oldest slot is the first of its series"
        );
        if q.is_empty() {
            self.series.remove(series);
        }
    }

    fn select(&self, sets: &[Vec<Matcher>], start: i64, end: i64) -> Vec<SeriesExemplars> {
        let mut out: Vec<SeriesExemplars> = self
            .series
            .iter()
            .filter(|(labels, _)| sets.iter().any(|m| matches_all(m, labels)))
            .filter_map(|(labels, q)| {
                let ts = |s: &usize| self.slots[*s].exemplar.timestamp;
                let first = q.partition_point(|s| ts(s) < start);
                let exemplars: Vec<Exemplar> = q
                    .range(first..)
                    .take_while(|s| ts(s) <= end)
                    .map(|s| self.slots[*s].exemplar.clone())
                    .collect();
                (!exemplars.is_empty()).then(|| SeriesExemplars {
                    series: Labels::clone(labels),
                    exemplars,
                })
            })
            .collect();
        out.sort_by(|a, b| a.series.cmp(&b.series));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_schemas::MatchOp;

    fn tenant(t: &str) -> TenantId {
        TenantId::new(t).unwrap()
    }

    fn series(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("tenant_id", "a")])
    }

    fn ex(ts: i64, value: f64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([("trace_id", format!("t{ts}"))]),
            value,
            timestamp: ts,
        }
    }

    fn all() -> Vec<Vec<Matcher>> {
        vec![vec![]]
    }

    fn name_is(n: &str) -> Vec<Vec<Matcher>> {
        vec![vec![Matcher::new(MatchOp::Equal, "__name__", n).unwrap()]]
    }

    /// `(series name, timestamps)` of a selection.
    fn shape(sel: &[SeriesExemplars]) -> Vec<(String, Vec<i64>)> {
        sel.iter()
            .map(|s| {
                (
                    s.series.metric_name().to_string(),
                    s.exemplars.iter().map(|e| e.timestamp).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn evicts_the_oldest_arrival_first_across_series() {
        let store = ExemplarStore::new(3);
        let t = tenant("a");
        store.add(&t, &series("x"), [ex(1, 1.0), ex(2, 1.0)]);
        store.add(&t, &series("y"), [ex(10, 1.0)]);
        assert_eq!(store.len(&t), 3);
        // Full: x@1 goes first, then x@2, and x disappears once empty.
        store.add(&t, &series("y"), [ex(11, 1.0)]);
        assert_eq!(
            shape(&store.select(&t, &all(), i64::MIN, i64::MAX)),
            vec![("x".into(), vec![2]), ("y".into(), vec![10, 11])]
        );
        store.add(&t, &series("z"), [ex(5, 1.0)]);
        assert_eq!(
            shape(&store.select(&t, &all(), i64::MIN, i64::MAX)),
            vec![("y".into(), vec![10, 11]), ("z".into(), vec![5])]
        );
        assert_eq!(store.len(&t), 3);
        // Many more rounds keep the bound and the newest three.
        for i in 0..10 {
            store.add(&t, &series("x"), [ex(100 + i, 1.0)]);
        }
        assert_eq!(
            shape(&store.select(&t, &all(), i64::MIN, i64::MAX)),
            vec![("x".into(), vec![107, 108, 109])]
        );
    }

    #[test]
    fn dedups_and_refuses_out_of_order() {
        let store = ExemplarStore::new(10);
        let t = tenant("a");
        let s = series("x");
        let st = store.add(&t, &s, [ex(1, 1.0), ex(2, 2.0), ex(2, 3.0)]);
        assert_eq!(st.stored, 3);
        // The same request again: all duplicates (also those older than the newest).
        let st = store.add(&t, &s, [ex(1, 1.0), ex(2, 2.0), ex(2, 3.0)]);
        assert_eq!((st.stored, st.duplicates, st.out_of_order), (0, 3, 0));
        // Same timestamp and value with other labels: still one.
        let mut other = ex(2, 2.0);
        other.labels = Labels::from_pairs([("trace_id", "zz")]);
        assert_eq!(store.add(&t, &s, [other]).duplicates, 1);
        // Older than the newest with another value: out of order.
        let st = store.add(&t, &s, [ex(1, 5.0)]);
        assert_eq!(st.out_of_order, 1);
        // NaN equals itself bit for bit.
        assert_eq!(store.add(&t, &s, [ex(3, f64::NAN)]).stored, 1);
        assert_eq!(store.add(&t, &s, [ex(3, f64::NAN)]).duplicates, 1);
        let sel = store.select(&t, &all(), i64::MIN, i64::MAX);
        assert_eq!(shape(&sel), vec![("x".into(), vec![1, 2, 2, 3])]);
        assert_eq!(sel[0].exemplars[2].value, 3.0);
    }

    #[test]
    fn bounds_are_per_tenant() {
        let store = ExemplarStore::new(2);
        let (a, b) = (tenant("a"), tenant("b"));
        store.add(&a, &series("x"), [ex(1, 1.0), ex(2, 1.0), ex(3, 1.0)]);
        store.add(&b, &series("x"), [ex(1, 1.0)]);
        assert_eq!((store.len(&a), store.len(&b)), (2, 1));
        assert_eq!(
            shape(&store.select(&b, &all(), i64::MIN, i64::MAX)),
            vec![("x".into(), vec![1])]
        );
        assert_eq!(
            shape(&store.select(&a, &all(), i64::MIN, i64::MAX)),
            vec![("x".into(), vec![2, 3])]
        );
        assert!(store.select(&tenant("c"), &all(), 0, 10).is_empty());
    }

    #[test]
    fn a_snapshot_replayed_rebuilds_the_same_buffers() {
        let store = ExemplarStore::new(4);
        let (a, b) = (tenant("a"), tenant("b"));
        store.add(&a, &series("x"), [ex(1, 1.0), ex(2, 1.0)]);
        store.add(&a, &series("y"), [ex(3, 1.0)]);
        store.add(&a, &series("x"), [ex(4, 1.0), ex(5, 1.0)]); // evicts x@1
        store.add(&b, &series("z"), [ex(9, 1.0)]);
        let snap = store.snapshot();
        assert_eq!(snap.len(), 2);
        let (t, held) = &snap[0];
        assert_eq!(t, &a);
        // Oldest first: x@2, y@3, x@4, x@5, in three runs.
        let runs: Vec<(String, Vec<i64>)> = held
            .iter()
            .map(|r| {
                (
                    r.series.metric_name().to_string(),
                    r.exemplars.iter().map(|e| e.timestamp).collect(),
                )
            })
            .collect();
        assert_eq!(
            runs,
            vec![
                ("x".into(), vec![2]),
                ("y".into(), vec![3]),
                ("x".into(), vec![4, 5])
            ]
        );
        assert_eq!(held.iter().map(|r| r.exemplars.len()).sum::<usize>(), 4);
        let again = ExemplarStore::new(4);
        for (t, held) in snap {
            for r in held {
                again.add(&t, &r.series, r.exemplars);
            }
        }
        for t in [&a, &b] {
            assert_eq!(
                again.select(t, &all(), i64::MIN, i64::MAX),
                store.select(t, &all(), i64::MIN, i64::MAX)
            );
        }
        // The same eviction order: the next exemplar evicts x@2 in both.
        store.add(&a, &series("w"), [ex(6, 1.0)]);
        again.add(&a, &series("w"), [ex(6, 1.0)]);
        assert_eq!(
            shape(&again.select(&a, &all(), i64::MIN, i64::MAX)),
            vec![
                ("w".into(), vec![6]),
                ("x".into(), vec![4, 5]),
                ("y".into(), vec![3])
            ]
        );
        assert_eq!(
            again.select(&a, &all(), i64::MIN, i64::MAX),
            store.select(&a, &all(), i64::MIN, i64::MAX)
        );
    }

    #[test]
    fn zero_disables() {
        let store = ExemplarStore::new(0);
        let t = tenant("a");
        assert_eq!(store.add(&t, &series("x"), [ex(1, 1.0)]).stored, 0);
        assert!(store.select(&t, &all(), i64::MIN, i64::MAX).is_empty());
    }

    #[test]
    fn selects_by_range_and_matchers() {
        let store = ExemplarStore::new(100);
        let t = tenant("a");
        store.add(&t, &series("x"), (0..10).map(|i| ex(i * 10, i as f64)));
        store.add(&t, &series("y"), [ex(15, 1.0)]);
        assert_eq!(
            shape(&store.select(&t, &all(), 15, 40)),
            vec![("x".into(), vec![20, 30, 40]), ("y".into(), vec![15])]
        );
        assert_eq!(
            shape(&store.select(&t, &name_is("x"), 41, 1000)),
            vec![("x".into(), vec![50, 60, 70, 80, 90])]
        );
        // Any of several sets matches.
        let mut sets = name_is("x");
        sets.extend(name_is("y"));
        assert_eq!(store.select(&t, &sets, 0, 20).len(), 2);
        assert!(
            store
                .select(&t, &name_is("z"), i64::MIN, i64::MAX)
                .is_empty()
        );
        assert!(store.select(&t, &all(), 91, 1000).is_empty());
        assert!(store.select(&t, &all(), 50, 40).is_empty());
    }
}
