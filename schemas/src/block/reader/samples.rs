//! Reading the samples of chosen series of a block: [`BlockReader::read_refs`] and the
//! row-selective Parquet stream under it.

use std::collections::HashMap;

use arrow::array::{Array, BinaryArray, BinaryBuilder, Float64Array, Int64Array, UInt32Array};
use futures::TryStreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};

use super::super::cache::{Cached, Part};
use super::super::codec::decode;
use super::super::io::StoreReader;
use super::super::{SERIES_REF, VALUE_INT_COL};
use super::{BlockReader, RefSamples, SeriesTable, column};
use crate::SchemaError;
use crate::source::{HISTOGRAM, TIMESTAMP, TimeRange, VALUE};

/// The values of one series read in pass 2: floats, and histograms once one shows up.
struct SpanValues {
    values: Vec<f64>,
    histograms: Option<BinaryBuilder>,
}

impl SpanValues {
    fn with_capacity(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
            histograms: None,
        }
    }

    fn push_float(&mut self, v: f64) {
        self.values.push(v);
        if let Some(h) = &mut self.histograms {
            h.append_null();
        }
    }

    fn push_histogram(&mut self, bytes: &[u8]) {
        let h = self.histograms.get_or_insert_with(|| {
            let mut b = BinaryBuilder::new();
            b.append_nulls(self.values.len());
            b
        });
        h.append_value(bytes);
        self.values.push(0.0);
    }
}

/// A series with samples in the range of a read: its ref, its rows `lo..hi` in the range
/// (within the series), and its values once known.
struct Wanted {
    series_ref: u32,
    lo: usize,
    hi: usize,
    /// The values of rows `from..` of the series.
    values: Option<(Float64Array, Option<BinaryArray>)>,
    from: usize,
}

/// The first row of each series in `samples.parquet`, with one more entry: the row count.
struct Rows<'a>(&'a [u64]);

impl Rows<'_> {
    /// The rows `a..b` of series `r` in the file.
    fn of(&self, r: u32) -> (u64, u64) {
        (self.0[r as usize], self.0[r as usize + 1])
    }
}

impl BlockReader {
    /// The samples of the series `refs` (sorted, unique) within `range`, in ref order;
    /// series without samples in the range are left out.
    ///
    /// Two passes, each reading only the rows it needs (a row selection over the row index;
    /// with the offset index, pages holding none of them are neither fetched nor decoded):
    /// first the timestamps of every series whose timestamp vector is needed (a series'
    /// own, or the one it shares), then, for each wanted series, the values (floats and
    /// histograms) of the rows whose timestamps fall in `range`. With a [`SampleCache`],
    /// whatever it holds is not read at all, and what is read is read whole (every row of
    /// the series: decoding the pages costs about the same) and kept there.
    ///
    /// [`SampleCache`]: super::super::cache::SampleCache
    pub async fn read_refs(
        &self,
        refs: &[u32],
        range: TimeRange,
    ) -> Result<Vec<RefSamples>, SchemaError> {
        let table = self.table().await?;
        let n = table.labels.len();
        if refs.is_empty() || !range.overlaps(self.meta.min_time, self.meta.max_time) {
            return Ok(Vec::new());
        }
        if refs.windows(2).any(|w| w[0] >= w[1]) || refs[refs.len() - 1] as usize >= n {
            return Err(SchemaError::Other(
                "series refs must be sorted, unique and known".into(),
            ));
        }
        let rows = Rows(self.row_index().await?);
        let ts_of = self.timestamps_of(table, &rows, refs).await?;
        let mut wanted = self.in_range(table, &rows, refs, &ts_of, range)?;
        self.read_values(table, &rows, &mut wanted).await?;
        let mut out = Vec::with_capacity(wanted.len());
        for w in wanted {
            let (values, histograms) = w.values.expect("every wanted series was read");
            let ts = &ts_of[&table.ts_refs[w.series_ref as usize]];
            let len = w.hi - w.lo;
            let at = w.lo - w.from;
            out.push(RefSamples {
                series_ref: w.series_ref,
                timestamps: ts.slice(w.lo, len),
                values: values.slice(at, len),
                // As when reading: none when the rows in the range hold no histogram.
                histograms: histograms
                    .map(|h| h.slice(at, len))
                    .filter(|h| h.null_count() < h.len()),
            });
        }
        Ok(out)
    }

    /// Pass 1: the timestamp vector of every series whose timestamps `refs` need (their
    /// own, or the one they share), by the ref of the series that holds it.
    async fn timestamps_of(
        &self,
        table: &SeriesTable,
        rows: &Rows<'_>,
        refs: &[u32],
    ) -> Result<HashMap<u32, Int64Array>, SchemaError> {
        let cache = self.cache.as_deref();
        let ulid = self.meta.ulid;
        let mut sources: Vec<u32> = refs.iter().map(|r| table.ts_refs[*r as usize]).collect();
        sources.sort_unstable();
        sources.dedup();
        let mut ts_of: HashMap<u32, Int64Array> = HashMap::with_capacity(sources.len());
        if let Some(c) = cache {
            let found = c.get_many(ulid, Part::Timestamps, sources.iter().copied());
            let mut missing = Vec::new();
            for (r, f) in sources.iter().zip(found) {
                match f {
                    Some(Cached::Timestamps(t)) => {
                        ts_of.insert(*r, t);
                    }
                    _ => missing.push(*r),
                }
            }
            sources = missing;
        }
        if sources.is_empty() {
            return Ok(ts_of);
        }
        let mut read: Vec<Vec<i64>> = sources
            .iter()
            .map(|r| {
                let (a, b) = rows.of(*r);
                Vec::with_capacity((b - a) as usize)
            })
            .collect();
        let ranges: Vec<(u64, u64)> = sources.iter().map(|r| rows.of(*r)).collect();
        let mut stream = self.stream_rows(&ranges, &[SERIES_REF, TIMESTAMP]).await?;
        let mut at = 0usize;
        while let Some(batch) = stream.try_next().await? {
            let (Some(r), Some(t)) = (
                column::<UInt32Array>(&batch, SERIES_REF),
                column::<Int64Array>(&batch, TIMESTAMP),
            ) else {
                return Err(self.corrupt("samples.parquet has unexpected column types"));
            };
            for (i, sref) in r.values().iter().enumerate() {
                if t.is_null(i) {
                    return Err(self.corrupt(format!("series {sref} lacks timestamps")));
                }
                while at < sources.len() && sources[at] != *sref {
                    at += 1;
                }
                if at == sources.len() {
                    return Err(self.corrupt(format!("unexpected row of series {sref}")));
                }
                read[at].push(t.value(i));
            }
        }
        for (r, ts) in sources.iter().zip(read) {
            let ts = Int64Array::from(ts);
            if let Some(c) = cache {
                c.insert(ulid, *r, Part::Timestamps, Cached::Timestamps(ts.clone()));
            }
            ts_of.insert(*r, ts);
        }
        Ok(ts_of)
    }

    /// The series of `refs` with samples in `range`, and the rows of each in it, checked
    /// against the timestamps read; values taken from the cache where it holds them.
    fn in_range(
        &self,
        table: &SeriesTable,
        rows: &Rows<'_>,
        refs: &[u32],
        ts_of: &HashMap<u32, Int64Array>,
        range: TimeRange,
    ) -> Result<Vec<Wanted>, SchemaError> {
        let mut wanted: Vec<Wanted> = Vec::with_capacity(refs.len());
        for r in refs {
            let src = table.ts_refs[*r as usize];
            let Some(ts) = ts_of.get(&src) else {
                return Err(self.corrupt(format!("series {r} lacks timestamps")));
            };
            let (a, b) = rows.of(*r);
            if b - a != ts.len() as u64 {
                return Err(self.corrupt(format!(
                    "series {r} has {} values for {} timestamps",
                    b - a,
                    ts.len()
                )));
            }
            let tv = ts.values();
            let lo = tv.partition_point(|x| *x < range.min);
            let hi = tv.partition_point(|x| *x <= range.max);
            if lo < hi {
                wanted.push(Wanted {
                    series_ref: *r,
                    lo,
                    hi,
                    values: None,
                    from: 0,
                });
            }
        }
        if let Some(c) = self.cache.as_deref() {
            let found = c.get_many(
                self.meta.ulid,
                Part::Values,
                wanted.iter().map(|w| w.series_ref),
            );
            for (w, f) in wanted.iter_mut().zip(found) {
                if let Some(Cached::Values { values, histograms }) = f {
                    w.values = Some((values, histograms));
                }
            }
        }
        Ok(wanted)
    }

    /// Pass 2: the values (floats and histograms) of every wanted series not answered by
    /// the cache: the rows in the range, or every row of the series when it is to be cached.
    async fn read_values(
        &self,
        table: &SeriesTable,
        rows: &Rows<'_>,
        wanted: &mut [Wanted],
    ) -> Result<(), SchemaError> {
        let cache = self.cache.as_deref();
        // The series to read, with the rows (within the series) to read.
        let to_read: Vec<(usize, usize, usize)> = wanted
            .iter()
            .enumerate()
            .filter(|(_, w)| w.values.is_none())
            .map(|(i, w)| {
                if cache.is_some() {
                    let (a, b) = rows.of(w.series_ref);
                    (i, 0, (b - a) as usize)
                } else {
                    (i, w.lo, w.hi)
                }
            })
            .collect();
        if to_read.is_empty() {
            return Ok(());
        }
        let ranges: Vec<(u64, u64)> = to_read
            .iter()
            .map(|(i, from, to)| {
                let a = rows.of(wanted[*i].series_ref).0;
                (a + *from as u64, a + *to as u64)
            })
            .collect();
        let mut values: Vec<SpanValues> = to_read
            .iter()
            .map(|(_, from, to)| SpanValues::with_capacity(to - from))
            .collect();
        let mut stream = self
            .stream_rows(&ranges, &[SERIES_REF, VALUE, VALUE_INT_COL, HISTOGRAM])
            .await?;
        let mut span = 0usize;
        while let Some(batch) = stream.try_next().await? {
            let (Some(r), Some(v)) = (
                column::<UInt32Array>(&batch, SERIES_REF),
                column::<Float64Array>(&batch, VALUE),
            ) else {
                return Err(self.corrupt("samples.parquet has unexpected column types"));
            };
            let vi = column::<Int64Array>(&batch, VALUE_INT_COL);
            // Versions 1 and 2 have no histogram column.
            let hist = match batch.column_by_name(HISTOGRAM) {
                None => None,
                Some(c) => Some(c.as_any().downcast_ref::<BinaryArray>().ok_or_else(|| {
                    self.corrupt("samples.parquet histogram column is not Binary")
                })?),
            }
            .filter(|h| h.null_count() < h.len());
            for k in 0..batch.num_rows() {
                let sref = r.value(k);
                while span < to_read.len() && wanted[to_read[span].0].series_ref != sref {
                    span += 1;
                }
                if span == to_read.len() {
                    return Err(self.corrupt(format!("unexpected row of series {sref}")));
                }
                if let Some(h) = hist.filter(|h| h.is_valid(k)) {
                    values[span].push_histogram(h.value(k));
                    continue;
                }
                let x = if !v.is_null(k) {
                    v.value(k)
                } else {
                    match vi.filter(|a| !a.is_null(k)) {
                        Some(a) => decode(a.value(k), table.scales[sref as usize]),
                        None => {
                            return Err(self.corrupt(format!("series {sref} lacks a value")));
                        }
                    }
                };
                values[span].push_float(x);
            }
        }
        for ((i, from, to), vals) in to_read.into_iter().zip(values) {
            let w = &mut wanted[i];
            if vals.values.len() != to - from {
                return Err(self.corrupt(format!(
                    "series {}: read {} values for {} timestamps",
                    w.series_ref,
                    vals.values.len(),
                    to - from
                )));
            }
            let read = (
                Float64Array::from(vals.values),
                vals.histograms.map(|mut h| h.finish()),
            );
            if let Some(c) = cache {
                let (values, histograms) = read.clone();
                c.insert(
                    self.meta.ulid,
                    w.series_ref,
                    Part::Values,
                    Cached::Values { values, histograms },
                );
            }
            w.values = Some(read);
            w.from = from;
        }
        Ok(())
    }

    /// A stream of the rows `ranges` (global row numbers, sorted, disjoint) of
    /// `samples.parquet`, with the named columns (those the file has).
    async fn stream_rows(
        &self,
        ranges: &[(u64, u64)],
        columns: &[&str],
    ) -> Result<ParquetRecordBatchStream<StoreReader>, SchemaError> {
        let builder = ParquetRecordBatchStreamBuilder::new(self.samples_reader().await?).await?;
        let leaves: Vec<usize> = builder
            .parquet_schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| columns.contains(&c.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges.iter().filter(|(a, b)| a < b) {
            match merged.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => merged.push((a, b)),
            }
        }
        let mut groups = Vec::new();
        let mut selection: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut group_start, mut selected_rows) = (0u64, 0usize);
        for (i, rg) in builder.metadata().row_groups().iter().enumerate() {
            let group_end = group_start + rg.num_rows() as u64;
            let first = merged.partition_point(|(_, b)| *b <= group_start);
            let mut any = false;
            for (a, b) in merged[first..]
                .iter()
                .take_while(|(a, _)| *a < group_end)
                .map(|(a, b)| ((*a).max(group_start), (*b).min(group_end)))
            {
                any = true;
                let local = |x: u64| (x - group_start) as usize + selected_rows;
                selection.push(local(a)..local(b));
            }
            if any {
                groups.push(i);
                selected_rows += rg.num_rows() as usize;
            }
            group_start = group_end;
        }
        let selection = RowSelection::from_consecutive_ranges(selection.into_iter(), selected_rows);
        Ok(builder
            .with_projection(mask)
            .with_row_groups(groups)
            .with_row_selection(selection)
            .build()?)
    }
}
