//! One series of a head: columnar samples in sealed Arrow chunks, an open append buffer and an
//! out-of-order buffer.

use arrow::array::{Float64Array, Int64Array};
use hypnos_schemas::{Labels, TimeRange};

/// Samples per sealed chunk.
pub(crate) const CHUNK_LEN: usize = 120;

/// An immutable run of in-order samples, timestamps strictly increasing.
#[derive(Debug)]
struct Chunk {
    ts: Int64Array,
    values: Float64Array,
}

impl Chunk {
    fn first(&self) -> i64 {
        self.ts.value(0)
    }
    fn last(&self) -> i64 {
        self.ts.value(self.ts.len() - 1)
    }
}

/// The samples of one series.
///
/// Invariants: the in-order part (every chunk, then the open buffer) has strictly increasing
/// timestamps ending at `max_t`; the out-of-order buffer is sorted, unique, and shares no
/// timestamp with the in-order part. The first sample of a series always goes in order, so
/// out-of-order samples exist only below `max_t`.
#[derive(Debug)]
pub(crate) struct MemSeries {
    labels: Labels,
    chunks: Vec<Chunk>,
    open_ts: Vec<i64>,
    open_values: Vec<f64>,
    ooo_ts: Vec<i64>,
    ooo_values: Vec<f64>,
    num_samples: usize,
    min_t: i64,
    max_t: i64,
}

impl MemSeries {
    pub(crate) fn new(labels: Labels) -> Self {
        Self {
            labels,
            chunks: Vec::new(),
            open_ts: Vec::with_capacity(CHUNK_LEN),
            open_values: Vec::with_capacity(CHUNK_LEN),
            ooo_ts: Vec::new(),
            ooo_values: Vec::new(),
            num_samples: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
        }
    }

    pub(crate) fn labels(&self) -> &Labels {
        &self.labels
    }

    #[cfg(test)]
    pub(crate) fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// Smallest and largest timestamp, when there are samples.
    pub(crate) fn time_bounds(&self) -> Option<(i64, i64)> {
        (self.num_samples > 0).then_some((self.min_t, self.max_t))
    }

    #[cfg(test)]
    pub(crate) fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    #[cfg(test)]
    pub(crate) fn num_out_of_order(&self) -> usize {
        self.ooo_ts.len()
    }

    /// Appends one sample; false when a sample with this timestamp exists (it is dropped:
    /// the first write wins).
    pub(crate) fn append(&mut self, t: i64, v: f64) -> bool {
        if self.num_samples == 0 || t > self.max_t {
            // Fast path: in order. Heap allocation only when a chunk is sealed.
            self.open_ts.push(t);
            self.open_values.push(v);
            if self.open_ts.len() == CHUNK_LEN {
                self.seal();
            }
            self.max_t = t;
            self.min_t = self.min_t.min(t);
            self.num_samples += 1;
            return true;
        }
        if t == self.max_t || self.in_order_contains(t) {
            return false;
        }
        match self.ooo_ts.binary_search(&t) {
            Ok(_) => false,
            Err(i) => {
                self.ooo_ts.insert(i, t);
                self.ooo_values.insert(i, v);
                self.min_t = self.min_t.min(t);
                self.num_samples += 1;
                true
            }
        }
    }

    fn seal(&mut self) {
        let ts = std::mem::replace(&mut self.open_ts, Vec::with_capacity(CHUNK_LEN));
        let values = std::mem::replace(&mut self.open_values, Vec::with_capacity(CHUNK_LEN));
        self.chunks.push(Chunk {
            ts: Int64Array::from(ts),
            values: Float64Array::from(values),
        });
    }

    fn in_order_contains(&self, t: i64) -> bool {
        if self.open_ts.first().is_some_and(|f| t >= *f) {
            return self.open_ts.binary_search(&t).is_ok();
        }
        let i = self.chunks.partition_point(|c| c.last() < t);
        self.chunks
            .get(i)
            .is_some_and(|c| c.first() <= t && c.ts.values().binary_search(&t).is_ok())
    }

    /// The in-order samples in `r`, as slices of chunks and of the open buffer.
    fn in_order_slices(&self, r: TimeRange) -> Vec<(&[i64], &[f64])> {
        let mut out = Vec::new();
        let start = self.chunks.partition_point(|c| c.last() < r.min);
        for c in self.chunks[start..]
            .iter()
            .take_while(|c| c.first() <= r.max)
        {
            out.push(slice_range(c.ts.values(), c.values.values(), r));
        }
        if !self.open_ts.is_empty() {
            out.push(slice_range(&self.open_ts, &self.open_values, r));
        }
        out.retain(|(t, _)| !t.is_empty());
        out
    }

    /// Whether any sample lies in `r`.
    pub(crate) fn has_samples_in(&self, r: TimeRange) -> bool {
        self.time_bounds()
            .is_some_and(|(lo, hi)| r.overlaps(lo, hi))
            && (!self.in_order_slices(r).is_empty()
                || !slice_range(&self.ooo_ts, &self.ooo_values, r).0.is_empty())
    }

    /// The samples in `r` (both ends included), sorted and unique; `None` when there are none.
    pub(crate) fn read(&self, r: TimeRange) -> Option<(Int64Array, Float64Array)> {
        if !self
            .time_bounds()
            .is_some_and(|(lo, hi)| r.overlaps(lo, hi))
        {
            return None;
        }
        let slices = self.in_order_slices(r);
        let (ooo_ts, ooo_values) = slice_range(&self.ooo_ts, &self.ooo_values, r);
        if ooo_ts.is_empty() {
            match slices.as_slice() {
                [] => return None,
                [(t, v)] => {
                    return Some((Int64Array::from(t.to_vec()), Float64Array::from(v.to_vec())));
                }
                _ => {}
            }
        }
        let n: usize = slices.iter().map(|(t, _)| t.len()).sum::<usize>() + ooo_ts.len();
        let mut ts = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        for (t, v) in &slices {
            ts.extend_from_slice(t);
            values.extend_from_slice(v);
        }
        if !ooo_ts.is_empty() {
            (ts, values) = merge_sorted((&ts, &values), (ooo_ts, ooo_values));
        }
        Some((Int64Array::from(ts), Float64Array::from(values)))
    }
}

/// The part of sorted `ts` (and the matching `values`) inside `r`.
fn slice_range<'a>(ts: &'a [i64], values: &'a [f64], r: TimeRange) -> (&'a [i64], &'a [f64]) {
    let lo = ts.partition_point(|t| *t < r.min);
    let hi = ts.partition_point(|t| *t <= r.max).max(lo);
    (&ts[lo..hi], &values[lo..hi])
}

/// Merges two sorted, individually unique sample runs; on equal timestamps the sample of `a`
/// wins and the one of `b` is dropped.
pub(crate) fn merge_sorted(a: (&[i64], &[f64]), b: (&[i64], &[f64])) -> (Vec<i64>, Vec<f64>) {
    let (at, av) = a;
    let (bt, bv) = b;
    let mut ts = Vec::with_capacity(at.len() + bt.len());
    let mut values = Vec::with_capacity(at.len() + bt.len());
    let (mut i, mut j) = (0, 0);
    while i < at.len() && j < bt.len() {
        match at[i].cmp(&bt[j]) {
            std::cmp::Ordering::Less => {
                ts.push(at[i]);
                values.push(av[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                ts.push(bt[j]);
                values.push(bv[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                ts.push(at[i]);
                values.push(av[i]);
                i += 1;
                j += 1;
            }
        }
    }
    ts.extend_from_slice(&at[i..]);
    values.extend_from_slice(&av[i..]);
    ts.extend_from_slice(&bt[j..]);
    values.extend_from_slice(&bv[j..]);
    (ts, values)
}
