//! A pass over the protobuf wire format of a `WriteRequest` that allocates nothing: it
//! counts series, labels, samples, histograms, exemplars and metadata entries and bounds the
//! memory their decoded structures will take ([`Shape::decoded_bytes`]), so that a request is
//! refused before it is materialized. [`decode_scanned`] then decodes the request with every
//! vector of its two upper levels allocated at its exact size.
//!
//! Why: a message on the wire can be two bytes (its tag and a zero length) while its Rust
//! struct takes hundreds (an empty `Histogram` is 2 bytes on the wire and over 200 in memory);
//! vectors grown by pushing double on top of that.

use std::mem::size_of;

use hypnos_schemas::remote::{
    BucketSpan, Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};
use prost::Message;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

use crate::IngestError;
use crate::limits::{LimitError, LimitKind, WriteLimits};

/// Decoded structures may take at most this many times the decompressed body; a request
/// over it is mostly empty messages. Legitimate requests stay far below: a series with one
/// label and one histogram carrying only a timestamp is about 16.
pub const MAX_DECODE_AMPLIFICATION: usize = 24;

/// The smallest allocation of a non-empty string.
const MIN_STRING: usize = 8;

/// What a request holds, counted on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) series: usize,
    /// Labels of every series.
    pub(crate) labels: usize,
    /// Labels of the series with the most.
    pub(crate) max_series_labels: usize,
    pub(crate) samples: usize,
    pub(crate) histograms: usize,
    pub(crate) exemplars: usize,
    pub(crate) metadata: usize,
    /// An upper bound of the bytes of the decoded `WriteRequest`.
    pub(crate) decoded_bytes: usize,
}

fn decode_error(e: impl std::fmt::Display) -> IngestError {
    IngestError::Decode(format!("invalid protobuf WriteRequest: {e}"))
}

/// Reads a length-delimited field's bytes, advancing `buf` past them.
fn take_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], IngestError> {
    let len = decode_varint(buf).map_err(decode_error)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= buf.len())
        .ok_or_else(|| decode_error("a length-delimited field runs past the end"))?;
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

/// Skips a field this scanner does not count, as prost skips unknown fields.
fn skip(wire: WireType, tag: u32, buf: &mut &[u8]) -> Result<(), IngestError> {
    skip_field(wire, tag, buf, DecodeContext::default()).map_err(decode_error)
}

fn expect_len(wire: WireType, what: &str) -> Result<(), IngestError> {
    if wire == WireType::LengthDelimited {
        Ok(())
    } else {
        Err(decode_error(format!(
            "{what} has wire type {wire:?}, expected a length-delimited message"
        )))
    }
}

/// Bytes of a vector of `n` elements of `size` bytes grown by pushing (capacity at most
/// twice the length, at least 4).
fn grown(n: usize, size: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.max(2).saturating_mul(2).saturating_mul(size)
    }
}

/// Counts the request in `buf` (a decompressed body).
pub(crate) fn scan(mut buf: &[u8]) -> Result<Shape, IngestError> {
    let mut s = Shape::default();
    let mut bytes = 0usize;
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(decode_error)?;
        match tag {
            1 => {
                expect_len(wire, "WriteRequest.timeseries")?;
                let ts = take_len(&mut buf)?;
                s.series += 1;
                bytes = bytes.saturating_add(scan_series(ts, &mut s)?);
            }
            3 => {
                expect_len(wire, "WriteRequest.metadata")?;
                let md = take_len(&mut buf)?;
                s.metadata += 1;
                // Its strings: at most the message's bytes, each at least 8.
                bytes = bytes.saturating_add(md.len() + 3 * MIN_STRING);
            }
            _ => skip(wire, tag, &mut buf)?,
        }
    }
    s.decoded_bytes = bytes
        .saturating_add(s.series.saturating_mul(size_of::<TimeSeries>()))
        .saturating_add(s.metadata.saturating_mul(size_of::<MetricMetadata>()));
    Ok(s)
}

/// Per-series counts of one `TimeSeries` message.
#[derive(Default)]
struct SeriesCounts {
    labels: usize,
    samples: usize,
    exemplars: usize,
    histograms: usize,
}

fn count_series(mut buf: &[u8]) -> Result<SeriesCounts, IngestError> {
    let mut c = SeriesCounts::default();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(decode_error)?;
        let n = match tag {
            1 => &mut c.labels,
            2 => &mut c.samples,
            3 => &mut c.exemplars,
            4 => &mut c.histograms,
            _ => {
                skip(wire, tag, &mut buf)?;
                continue;
            }
        };
        expect_len(wire, "a TimeSeries field")?;
        take_len(&mut buf)?;
        *n += 1;
    }
    Ok(c)
}

/// Counts one series into `s`; returns the bytes of its decoded parts (its own struct
/// excepted).
fn scan_series(buf: &[u8], s: &mut Shape) -> Result<usize, IngestError> {
    let c = count_series(buf)?;
    s.labels += c.labels;
    s.max_series_labels = s.max_series_labels.max(c.labels);
    s.samples += c.samples;
    s.exemplars += c.exemplars;
    s.histograms += c.histograms;
    // Exact vectors (see `decode_series`).
    let mut bytes = c.labels * size_of::<Label>()
        + c.samples * size_of::<Sample>()
        + c.exemplars * size_of::<Exemplar>()
        + c.histograms * size_of::<Histogram>();
    let mut rest = buf;
    while !rest.is_empty() {
        let (tag, wire) = decode_key(&mut rest).map_err(decode_error)?;
        if !(1..=4).contains(&tag) {
            skip(wire, tag, &mut rest)?;
            continue;
        }
        let field = take_len(&mut rest)?;
        bytes = bytes.saturating_add(match tag {
            // Label strings: at most the message's bytes, each at least 8.
            1 => field.len() + 2 * MIN_STRING,
            3 => scan_exemplar(field)?,
            4 => scan_histogram(field)?,
            _ => 0,
        });
    }
    Ok(bytes)
}

/// The heap bytes of a decoded exemplar: its labels.
fn scan_exemplar(mut buf: &[u8]) -> Result<usize, IngestError> {
    let (mut labels, mut strings) = (0usize, 0usize);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(decode_error)?;
        if tag == 1 && wire == WireType::LengthDelimited {
            labels += 1;
            strings += take_len(&mut buf)?.len() + 2 * MIN_STRING;
        } else {
            skip(wire, tag, &mut buf)?;
        }
    }
    Ok(grown(labels, size_of::<Label>()) + strings)
}

/// The heap bytes of a decoded histogram: its spans and bucket vectors.
fn scan_histogram(mut buf: &[u8]) -> Result<usize, IngestError> {
    // Elements per repeated field: spans (8, 11), deltas (9, 12; varints), counts (10, 13;
    // doubles), custom values (16; doubles); packed or one element per field.
    let mut elems = [0usize; 17];
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(decode_error)?;
        match (tag, wire) {
            (8 | 11, WireType::LengthDelimited) => {
                take_len(&mut buf)?;
                elems[tag as usize] += 1;
            }
            (9 | 12, WireType::LengthDelimited) => {
                // A varint ends at each byte without the continuation bit.
                let packed = take_len(&mut buf)?;
                elems[tag as usize] += packed.iter().filter(|b| **b < 0x80).count();
            }
            (10 | 13 | 16, WireType::LengthDelimited) => {
                elems[tag as usize] += take_len(&mut buf)?.len().div_ceil(8);
            }
            (9 | 10 | 12 | 13 | 16, _) => {
                skip(wire, tag, &mut buf)?;
                elems[tag as usize] += 1;
            }
            _ => skip(wire, tag, &mut buf)?,
        }
    }
    Ok([8, 11]
        .iter()
        .map(|t| grown(elems[*t], size_of::<BucketSpan>()))
        .chain([9, 10, 12, 13, 16].iter().map(|t| grown(elems[*t], 8)))
        .sum())
}

impl Shape {
    /// Refuses a request whose decoded structures would take more than
    /// [`MAX_DECODE_AMPLIFICATION`] times its `decompressed` bytes (400), or that crosses
    /// one of the request limits (413 for counts, 400 for labels per series).
    pub(crate) fn check(
        &self,
        decompressed: usize,
        limits: &WriteLimits,
    ) -> Result<(), IngestError> {
        let too_large = |limit: &'static str, message: String| {
            IngestError::from(LimitError::new(limit, LimitKind::TooLarge, message))
        };
        if limits.max_series_per_request > 0 && self.series > limits.max_series_per_request {
            return Err(too_large(
                "max_series_per_request",
                format!(
                    "the request has {} series, more than {}",
                    self.series, limits.max_series_per_request
                ),
            ));
        }
        let samples = self.samples + self.histograms;
        if limits.max_samples_per_request > 0 && samples > limits.max_samples_per_request {
            return Err(too_large(
                "max_samples_per_request",
                format!(
                    "the request has {samples} samples, more than {}",
                    limits.max_samples_per_request
                ),
            ));
        }
        // `tenant_id` is not counted by the limit: one more label may be its.
        if limits.max_label_names_per_series > 0
            && self.max_series_labels > limits.max_label_names_per_series + 1
        {
            return Err(LimitError::new(
                "max_label_names_per_series",
                LimitKind::Invalid,
                format!(
                    "a series of the request has {} labels, more than {}",
                    self.max_series_labels, limits.max_label_names_per_series
                ),
            )
            .into());
        }
        let bound = decompressed
            .max(64)
            .saturating_mul(MAX_DECODE_AMPLIFICATION);
        if self.decoded_bytes > bound {
            return Err(IngestError::Decode(format!(
                "the request would decode to about {} bytes of structures, more than \
                 {MAX_DECODE_AMPLIFICATION} times its {decompressed} decompressed bytes \
                 ({} series, {} labels, {} samples, {} histograms, {} exemplars, {} metadata \
                 entries): it is mostly empty messages",
                self.decoded_bytes,
                self.series,
                self.labels,
                self.samples,
                self.histograms,
                self.exemplars,
                self.metadata
            )));
        }
        Ok(())
    }
}

/// Decodes a scanned request: the vectors of the request and of each series get their exact
/// sizes (the leaves, labels, samples, histograms, exemplars and metadata, are decoded by
/// prost).
pub(crate) fn decode_scanned(mut buf: &[u8], shape: &Shape) -> Result<WriteRequest, IngestError> {
    let mut req = WriteRequest {
        timeseries: Vec::with_capacity(shape.series),
        metadata: Vec::with_capacity(shape.metadata),
    };
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(decode_error)?;
        match tag {
            1 => {
                expect_len(wire, "WriteRequest.timeseries")?;
                req.timeseries.push(decode_series(take_len(&mut buf)?)?);
            }
            3 => {
                expect_len(wire, "WriteRequest.metadata")?;
                let md = MetricMetadata::decode(take_len(&mut buf)?).map_err(decode_error)?;
                req.metadata.push(md);
            }
            _ => skip(wire, tag, &mut buf)?,
        }
    }
    Ok(req)
}

fn decode_series(buf: &[u8]) -> Result<TimeSeries, IngestError> {
    let c = count_series(buf)?;
    let mut ts = TimeSeries {
        labels: Vec::with_capacity(c.labels),
        samples: Vec::with_capacity(c.samples),
        exemplars: Vec::with_capacity(c.exemplars),
        histograms: Vec::with_capacity(c.histograms),
    };
    let mut rest = buf;
    while !rest.is_empty() {
        let (tag, wire) = decode_key(&mut rest).map_err(decode_error)?;
        if !(1..=4).contains(&tag) {
            skip(wire, tag, &mut rest)?;
            continue;
        }
        let field = take_len(&mut rest)?;
        match tag {
            1 => ts.labels.push(Label::decode(field).map_err(decode_error)?),
            2 => ts
                .samples
                .push(Sample::decode(field).map_err(decode_error)?),
            3 => ts
                .exemplars
                .push(Exemplar::decode(field).map_err(decode_error)?),
            _ => ts
                .histograms
                .push(Histogram::decode(field).map_err(decode_error)?),
        }
    }
    Ok(ts)
}

#[cfg(test)]
mod tests;
