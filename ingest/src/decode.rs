//! Remote-write 1.0 bodies: header checks, snappy block decompression with a size limit
//! checked before allocating, a count of the request on the wire (`scan.rs`) checked against
//! the request limits and the decoding amplification bound before anything is materialized,
//! then protobuf decoding into vectors of exact size. The memory of requests being decoded
//! at once is bounded by a [`budget::DecodeBudget`].

use hypnos_schemas::remote::WriteRequest;

use crate::IngestError;
use crate::limits::WriteLimits;

pub(crate) mod budget;
mod scan;

pub use budget::{DEFAULT_MAX_INFLIGHT_DECODE_BYTES, Reservation};
pub use scan::MAX_DECODE_AMPLIFICATION;
use scan::{decode_scanned, scan};

/// Default limit on a decompressed request body: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

const PROTOBUF: &str = "application/x-protobuf";
const RW1_PROTO: &str = "prometheus.WriteRequest";
const RW2_PROTO: &str = "io.prometheus.write.v2.Request";

/// Decodes a remote-write 1.0 body sent with the given `Content-Encoding` and
/// `Content-Type` headers, refusing decompressed bodies over `max_decompressed_bytes` and
/// bodies whose decoded structures would be out of proportion to their size
/// ([`MAX_DECODE_AMPLIFICATION`]); no request limit, no budget.
pub fn decode_write_request(
    content_encoding: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<WriteRequest, IngestError> {
    let budget = budget::DecodeBudget::new(0);
    let mut reservation = budget.reservation();
    decode_limited(
        content_encoding,
        content_type,
        body,
        max_decompressed_bytes,
        &WriteLimits::unlimited(),
        &mut reservation,
    )
}

/// [`decode_write_request`] under the request limits of `limits` (series, samples and
/// label names per request, checked on the wire before decoding) and reserving in
/// `reservation` the decompressed size before decompressing and twice the decoded size (the
/// decoded request and what validation makes of it) before decoding.
pub(crate) fn decode_limited(
    content_encoding: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    max_decompressed_bytes: usize,
    limits: &WriteLimits,
    reservation: &mut Reservation,
) -> Result<WriteRequest, IngestError> {
    check_content_encoding(content_encoding)?;
    check_content_type(content_type)?;
    let len = snap::raw::decompress_len(body)
        .map_err(|e| IngestError::Decode(format!("corrupt snappy block header: {e}")))?;
    if len > max_decompressed_bytes {
        return Err(IngestError::TooLarge(format!(
            "decompressed body of {len} bytes exceeds the limit of {max_decompressed_bytes} bytes"
        )));
    }
    reservation.grow(len)?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| IngestError::Decode(format!("corrupt snappy block: {e}")))?;
    let shape = scan(&raw)?;
    shape.check(raw.len(), limits)?;
    reservation.grow(shape.decoded_bytes.saturating_mul(2))?;
    decode_scanned(&raw, &shape)
}

fn check_content_encoding(v: Option<&str>) -> Result<(), IngestError> {
    match v.map(str::trim) {
        Some(e) if e.eq_ignore_ascii_case("snappy") => Ok(()),
        Some(e) => Err(IngestError::UnsupportedMediaType(format!(
            "Content-Encoding {e:?} is not supported, remote write bodies must be \"snappy\""
        ))),
        None => Err(IngestError::UnsupportedMediaType(
            "Content-Encoding is missing, remote write bodies must be \"snappy\"".into(),
        )),
    }
}

fn check_content_type(v: Option<&str>) -> Result<(), IngestError> {
    let Some(v) = v else { return Ok(()) };
    let mut parts = v.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(PROTOBUF) {
        return Err(IngestError::UnsupportedMediaType(format!(
            "Content-Type {v:?} is not supported, expected {PROTOBUF:?}"
        )));
    }
    for p in parts {
        let Some((k, val)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let val = val.trim().trim_matches('"');
        if val == RW2_PROTO {
            return Err(IngestError::UnsupportedMediaType(format!(
                "remote write 2.0 ({RW2_PROTO}) is not accepted yet, configure the sender for \
                 remote write 1.0 (protobuf_message: {RW1_PROTO})"
            )));
        }
        if val != RW1_PROTO {
            return Err(IngestError::UnsupportedMediaType(format!(
                "protobuf message {val:?} is not supported, expected {RW1_PROTO:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_schemas::remote::{Label, Sample, TimeSeries};
    use prost::Message;

    fn body() -> Vec<u8> {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 5,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn decode(ce: Option<&str>, ct: Option<&str>, b: &[u8]) -> Result<WriteRequest, IngestError> {
        decode_write_request(ce, ct, b, DEFAULT_MAX_DECOMPRESSED_BYTES)
    }

    #[test]
    fn accepts_remote_write_1() {
        for ct in [
            None,
            Some("application/x-protobuf"),
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("Application/X-Protobuf; proto=prometheus.WriteRequest"),
        ] {
            let req = decode(Some("snappy"), ct, &body()).unwrap();
            assert_eq!(req.timeseries[0].samples[0].timestamp, 5, "{ct:?}");
        }
    }

    #[test]
    fn refuses_other_encodings() {
        for ce in [None, Some("gzip"), Some("identity"), Some("")] {
            let e = decode(ce, None, &body()).unwrap_err();
            assert!(matches!(e, IngestError::UnsupportedMediaType(_)), "{ce:?}");
            assert_eq!(e.reason(), "unsupported_media_type");
        }
    }

    #[test]
    fn refuses_other_content_types_and_names_rw2() {
        let e = decode(
            Some("snappy"),
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            &body(),
        )
        .unwrap_err();
        assert!(matches!(e, IngestError::UnsupportedMediaType(_)));
        assert!(e.to_string().contains("remote write 2.0"), "{e}");
        for ct in [
            "application/json",
            "text/plain",
            "application/x-protobuf;proto=foo",
        ] {
            let e = decode(Some("snappy"), Some(ct), &body()).unwrap_err();
            assert!(matches!(e, IngestError::UnsupportedMediaType(_)), "{ct}");
        }
    }

    #[test]
    fn corrupt_snappy_is_a_decode_error() {
        // Framed snappy (the stream format) is not the block format remote write uses.
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, b"hello").unwrap();
        let framed = framed.into_inner().unwrap();
        let mut truncated = body();
        truncated.truncate(truncated.len() - 3);
        for b in [&b"\xff\xff\xff\xff\xff\xff"[..], &framed, &truncated] {
            let e = decode(Some("snappy"), None, b).unwrap_err();
            assert!(matches!(e, IngestError::Decode(_)), "{e}");
            assert!(e.to_string().contains("snappy"), "{e}");
        }
    }

    #[test]
    fn corrupt_protobuf_is_a_decode_error() {
        let b = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff\xff\x0f garbage")
            .unwrap();
        let e = decode(Some("snappy"), None, &b).unwrap_err();
        assert!(matches!(e, IngestError::Decode(_)));
        assert!(e.to_string().contains("protobuf"), "{e}");
        assert_eq!(e.reason(), "decode");
    }

    #[test]
    fn too_large_is_refused_from_the_header_alone() {
        let big = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 1 << 20])
            .unwrap();
        let e = decode_write_request(Some("snappy"), None, &big, 1000).unwrap_err();
        assert!(matches!(e, IngestError::TooLarge(_)), "{e}");
        assert_eq!(e.reason(), "too_large");
        // Only the header: a claimed length of 2^32-1 bytes with no data behind it must be
        // refused as too large, not allocated.
        let header_only = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let e = decode(Some("snappy"), None, &header_only).unwrap_err();
        assert!(matches!(e, IngestError::TooLarge(_)), "{e}");
    }
}
