//! One series of a head: columnar samples in sealed Arrow chunks, an open append buffer and an
//! out-of-order buffer. Float and histogram samples share them: a histogram sample has value
//! 0 and its stored form (`FloatHistogram::encode`) in a histogram column that exists only
//! where a run holds a histogram, so a series of floats is stored and read exactly as before
//! histograms existed.

use std::ops::Range;

use arrow::array::{Array, BinaryArray, Float64Array, Int64Array};
use hypnos_schemas::histogram::{FloatHistogram, ResetHint};
use hypnos_schemas::{Labels, TimeRange};

/// Samples per sealed chunk.
pub(crate) const CHUNK_LEN: usize = 120;

/// The histograms of a run of samples, `None` at a float sample. Empty while the run holds
/// no histogram; otherwise as long as the run.
type HistBuffer = Vec<Option<Vec<u8>>>;

/// An immutable run of in-order samples, timestamps strictly increasing.
#[derive(Debug)]
struct Chunk {
    ts: Int64Array,
    values: Float64Array,
    /// Present when the chunk holds a histogram (null at float samples).
    hist: Option<BinaryArray>,
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
/// out-of-order samples exist only below `max_t`. `open_hist` and `ooo_hist` are empty or as
/// long as their timestamps.
#[derive(Debug)]
pub(crate) struct MemSeries {
    labels: Labels,
    chunks: Vec<Chunk>,
    open_ts: Vec<i64>,
    open_values: Vec<f64>,
    open_hist: HistBuffer,
    ooo_ts: Vec<i64>,
    ooo_values: Vec<f64>,
    ooo_hist: HistBuffer,
    num_samples: usize,
    min_t: i64,
    max_t: i64,
}

/// The histograms of a slice of samples.
#[derive(Clone, Copy, Debug)]
enum Hist<'a> {
    /// Only floats.
    Floats,
    /// Rows from this offset of a chunk's histogram column.
    Column(&'a BinaryArray, usize),
    /// A slice of an open or out-of-order buffer.
    Buffer(&'a [Option<Vec<u8>>]),
}

impl<'a> Hist<'a> {
    fn of_buffer(b: &'a HistBuffer, range: Range<usize>) -> Self {
        if b.is_empty() || range.is_empty() {
            Hist::Floats
        } else {
            Hist::Buffer(&b[range])
        }
    }

    fn is_floats(&self) -> bool {
        matches!(self, Hist::Floats)
    }

    /// The histogram of row `i` of the slice, `None` for a float.
    fn get(&self, i: usize) -> Option<&'a [u8]> {
        match *self {
            Hist::Floats => None,
            Hist::Column(a, offset) => (!a.is_null(offset + i)).then(|| a.value(offset + i)),
            Hist::Buffer(b) => b[i].as_deref(),
        }
    }
}

/// A slice of sorted samples.
#[derive(Clone, Copy, Debug)]
struct Part<'a> {
    ts: &'a [i64],
    values: &'a [f64],
    hist: Hist<'a>,
}

/// Sorted samples, some of them histograms, gathered for building arrays.
#[derive(Debug, Default)]
pub(crate) struct Rows<'a> {
    pub(crate) ts: Vec<i64>,
    pub(crate) values: Vec<f64>,
    pub(crate) hist: Vec<Option<&'a [u8]>>,
}

impl<'a> Rows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ts: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            hist: Vec::with_capacity(n),
        }
    }

    fn extend(&mut self, p: &Part<'a>) {
        self.ts.extend_from_slice(p.ts);
        self.values.extend_from_slice(p.values);
        self.hist.extend((0..p.ts.len()).map(|i| p.hist.get(i)));
    }

    /// The rows of a series' arrays (`hist` null at float rows, or absent).
    pub(crate) fn from_arrays(
        ts: &'a Int64Array,
        values: &'a Float64Array,
        hist: Option<&'a BinaryArray>,
    ) -> Self {
        let mut out = Self::with_capacity(ts.len());
        out.extend(&Part {
            ts: ts.values(),
            values: values.values(),
            hist: hist.map_or(Hist::Floats, |h| Hist::Column(h, 0)),
        });
        out
    }

    fn push(&mut self, from: &Rows<'a>, i: usize) {
        self.ts.push(from.ts[i]);
        self.values.push(from.values[i]);
        self.hist.push(from.hist[i]);
    }

    /// Merges two sorted, individually unique runs; on equal timestamps the row of `a` wins.
    pub(crate) fn merge(a: &Rows<'a>, b: &Rows<'a>) -> Rows<'a> {
        let mut out = Rows::with_capacity(a.ts.len() + b.ts.len());
        let (mut i, mut j) = (0, 0);
        while i < a.ts.len() && j < b.ts.len() {
            match a.ts[i].cmp(&b.ts[j]) {
                std::cmp::Ordering::Less => {
                    out.push(a, i);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b, j);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(a, i);
                    i += 1;
                    j += 1;
                }
            }
        }
        (i..a.ts.len()).for_each(|k| out.push(a, k));
        (j..b.ts.len()).for_each(|k| out.push(b, k));
        out
    }

    /// The timestamp, value and histogram arrays.
    pub(crate) fn into_arrays(self) -> (Int64Array, Float64Array, BinaryArray) {
        (
            Int64Array::from(self.ts),
            Float64Array::from(self.values),
            BinaryArray::from(self.hist),
        )
    }
}

impl MemSeries {
    pub(crate) fn new(labels: Labels) -> Self {
        Self {
            labels,
            chunks: Vec::new(),
            open_ts: Vec::with_capacity(CHUNK_LEN),
            open_values: Vec::with_capacity(CHUNK_LEN),
            open_hist: Vec::new(),
            ooo_ts: Vec::new(),
            ooo_values: Vec::new(),
            ooo_hist: Vec::new(),
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

    /// Appends one float sample; false when a sample with this timestamp exists (it is
    /// dropped: the first write wins).
    pub(crate) fn append(&mut self, t: i64, v: f64) -> bool {
        self.push(t, v, None)
    }

    /// Appends one histogram sample in its stored form; false when a sample (float or
    /// histogram) with this timestamp exists.
    pub(crate) fn append_histogram(&mut self, t: i64, encoded: Vec<u8>) -> bool {
        let encoded = if self.num_samples == 0 || t > self.max_t {
            self.with_reset_hint(encoded)
        } else {
            encoded
        };
        self.push(t, 0.0, Some(encoded))
    }

    /// The newest in-order sample's histogram, when that sample is a histogram.
    fn last_in_order_histogram(&self) -> Option<&[u8]> {
        if !self.open_ts.is_empty() {
            return self.open_hist.last()?.as_deref();
        }
        let h = self.chunks.last()?.hist.as_ref()?;
        let i = h.len().checked_sub(1)?;
        h.is_valid(i).then(|| h.value(i))
    }

    /// Records the counter-reset hint as Prometheus' TSDB returns it for an in-order
    /// histogram whose producer left it unknown: "not reset" when it is no counter reset
    /// compared with the series' previous histogram. A reset starts a new chunk in
    /// Prometheus, whose first sample reads back as "unknown" (prometheus/prometheus#15346),
    /// so a reset stays "unknown" here too; so do the first histogram of a series and one
    /// after a float or a gauge histogram. Queries rely on it: a histogram marked "not reset"
    /// is never taken for a reset, and `sum` warns when hints conflict.
    fn with_reset_hint(&self, encoded: Vec<u8>) -> Vec<u8> {
        let Some(previous) = self.last_in_order_histogram() else {
            return encoded;
        };
        let (Ok(mut h), Ok(previous)) = (
            FloatHistogram::decode(&encoded),
            FloatHistogram::decode(previous),
        ) else {
            return encoded;
        };
        if h.counter_reset_hint != ResetHint::Unknown
            || previous.is_gauge()
            || h.detect_reset(&previous)
        {
            return encoded;
        }
        h.counter_reset_hint = ResetHint::NotReset;
        h.encode()
    }

    #[inline]
    fn push(&mut self, t: i64, v: f64, h: Option<Vec<u8>>) -> bool {
        if self.num_samples == 0 || t > self.max_t {
            // Fast path: in order. Heap allocation only when a chunk is sealed.
            if h.is_some() || !self.open_hist.is_empty() {
                self.open_hist.resize(self.open_ts.len(), None);
                self.open_hist.push(h);
            }
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
                if h.is_some() || !self.ooo_hist.is_empty() {
                    self.ooo_hist.resize(self.ooo_ts.len(), None);
                    self.ooo_hist.insert(i, h);
                }
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
        let hist = (!self.open_hist.is_empty()).then(|| {
            let h = BinaryArray::from_iter(self.open_hist.iter().map(|h| h.as_deref()));
            self.open_hist.clear();
            h
        });
        self.chunks.push(Chunk {
            ts: Int64Array::from(ts),
            values: Float64Array::from(values),
            hist,
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
    fn in_order_parts(&self, r: TimeRange) -> Vec<Part<'_>> {
        let mut out = Vec::new();
        let start = self.chunks.partition_point(|c| c.last() < r.min);
        for c in self.chunks[start..]
            .iter()
            .take_while(|c| c.first() <= r.max)
        {
            let ts = c.ts.values();
            let range = range_in(ts, r);
            out.push(Part {
                ts: &ts[range.clone()],
                values: &c.values.values()[range.clone()],
                hist: c
                    .hist
                    .as_ref()
                    .map_or(Hist::Floats, |h| Hist::Column(h, range.start)),
            });
        }
        if !self.open_ts.is_empty() {
            out.push(buffer_part(
                &self.open_ts,
                &self.open_values,
                &self.open_hist,
                r,
            ));
        }
        out.retain(|p| !p.ts.is_empty());
        out
    }

    fn out_of_order_part(&self, r: TimeRange) -> Part<'_> {
        buffer_part(&self.ooo_ts, &self.ooo_values, &self.ooo_hist, r)
    }

    /// Whether any sample lies in `r`.
    pub(crate) fn has_samples_in(&self, r: TimeRange) -> bool {
        self.time_bounds()
            .is_some_and(|(lo, hi)| r.overlaps(lo, hi))
            && (!self.in_order_parts(r).is_empty() || !self.out_of_order_part(r).ts.is_empty())
    }

    /// The samples in `r` (both ends included), sorted and unique, with their histograms
    /// (null at float samples) when any of them is a histogram; `None` when there are none.
    pub(crate) fn read(
        &self,
        r: TimeRange,
    ) -> Option<(Int64Array, Float64Array, Option<BinaryArray>)> {
        if !self
            .time_bounds()
            .is_some_and(|(lo, hi)| r.overlaps(lo, hi))
        {
            return None;
        }
        let parts = self.in_order_parts(r);
        let ooo = self.out_of_order_part(r);
        if !(ooo.hist.is_floats() && parts.iter().all(|p| p.hist.is_floats())) {
            return read_mixed(&parts, &ooo);
        }
        if ooo.ts.is_empty() {
            match parts.as_slice() {
                [] => return None,
                [p] => {
                    return Some((
                        Int64Array::from(p.ts.to_vec()),
                        Float64Array::from(p.values.to_vec()),
                        None,
                    ));
                }
                _ => {}
            }
        }
        let n: usize = parts.iter().map(|p| p.ts.len()).sum::<usize>() + ooo.ts.len();
        let mut ts = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        for p in &parts {
            ts.extend_from_slice(p.ts);
            values.extend_from_slice(p.values);
        }
        if !ooo.ts.is_empty() {
            (ts, values) = merge_sorted((&ts, &values), (ooo.ts, ooo.values));
        }
        Some((Int64Array::from(ts), Float64Array::from(values), None))
    }
}

/// [`MemSeries::read`] where some sample is a histogram.
fn read_mixed(
    parts: &[Part<'_>],
    ooo: &Part<'_>,
) -> Option<(Int64Array, Float64Array, Option<BinaryArray>)> {
    let n: usize = parts.iter().map(|p| p.ts.len()).sum();
    let mut rows = Rows::with_capacity(n);
    for p in parts {
        rows.extend(p);
    }
    if !ooo.ts.is_empty() {
        let mut b = Rows::with_capacity(ooo.ts.len());
        b.extend(ooo);
        rows = Rows::merge(&rows, &b);
    }
    if rows.ts.is_empty() {
        return None;
    }
    let (ts, values, hist) = rows.into_arrays();
    Some((ts, values, Some(hist)))
}

/// The part of a buffer inside `r`.
fn buffer_part<'a>(
    ts: &'a [i64],
    values: &'a [f64],
    hist: &'a HistBuffer,
    r: TimeRange,
) -> Part<'a> {
    let range = range_in(ts, r);
    Part {
        ts: &ts[range.clone()],
        values: &values[range.clone()],
        hist: Hist::of_buffer(hist, range),
    }
}

/// The indexes of sorted `ts` inside `r`.
fn range_in(ts: &[i64], r: TimeRange) -> Range<usize> {
    let lo = ts.partition_point(|t| *t < r.min);
    let hi = ts.partition_point(|t| *t <= r.max).max(lo);
    lo..hi
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
