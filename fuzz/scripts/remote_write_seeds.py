#!/usr/bin/env python3
"""Writes a few remote-write seeds for the `remote_write_decode` target.

    python3 scripts/remote_write_seeds.py seeds/remote_write_decode

Each seed is the target's mode byte (0x80: the target snappy-compresses the rest itself,
with a protobuf Content-Type) followed by a hand-encoded protobuf WriteRequest.
"""
import pathlib
import struct
import sys


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num: int, wire: int, payload: bytes) -> bytes:
    return varint(num << 3 | wire) + payload


def lendelim(num: int, data: bytes) -> bytes:
    return field(num, 2, varint(len(data)) + data)


def label(name: str, value: str) -> bytes:
    return lendelim(1, name.encode()) + lendelim(2, value.encode())


def sample(value: float, ts: int) -> bytes:
    return field(1, 1, struct.pack("<d", value)) + field(2, 0, varint(ts))


def exemplar(labels, value: float, ts: int) -> bytes:
    body = b"".join(lendelim(1, label(n, v)) for n, v in labels)
    return body + field(2, 1, struct.pack("<d", value)) + field(3, 0, varint(ts))


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def span(offset: int, length: int) -> bytes:
    return field(1, 0, varint(zigzag(offset))) + field(2, 0, varint(length))


def packed_sint(num: int, values) -> bytes:
    return lendelim(num, b"".join(varint(zigzag(v)) for v in values))


def packed_double(num: int, values) -> bytes:
    return lendelim(num, b"".join(struct.pack("<d", v) for v in values))


def int_histogram(ts, schema, count, total, zero, pos_spans, pos_deltas, neg_spans=(), neg_deltas=(), hint=0):
    """prometheus.Histogram with integer (delta-encoded) buckets."""
    body = field(1, 0, varint(count)) + field(3, 1, struct.pack("<d", total))
    body += field(4, 0, varint(zigzag(schema))) + field(5, 1, struct.pack("<d", 0.001))
    body += field(6, 0, varint(zero))
    body += b"".join(lendelim(8, span(*s)) for s in neg_spans) + packed_sint(9, neg_deltas)
    body += b"".join(lendelim(11, span(*s)) for s in pos_spans) + packed_sint(12, pos_deltas)
    return body + field(14, 0, varint(hint)) + field(15, 0, varint(ts))


def float_histogram(ts, schema, count, total, pos_spans, pos_counts, custom=(), hint=0):
    """prometheus.Histogram with float (absolute) buckets; `custom`: NHCB bounds."""
    body = field(2, 1, struct.pack("<d", count)) + field(3, 1, struct.pack("<d", total))
    body += field(4, 0, varint(zigzag(schema))) + field(7, 1, struct.pack("<d", 0.0))
    body += b"".join(lendelim(11, span(*s)) for s in pos_spans) + packed_double(13, pos_counts)
    body += field(14, 0, varint(hint)) + field(15, 0, varint(ts))
    return body + (packed_double(16, custom) if custom else b"")


def series(labels, samples, exemplars=(), histograms=()) -> bytes:
    body = b"".join(lendelim(1, label(n, v)) for n, v in labels)
    body += b"".join(lendelim(2, sample(v, t)) for v, t in samples)
    body += b"".join(lendelim(3, exemplar(*e)) for e in exemplars)
    body += b"".join(lendelim(4, h) for h in histograms)
    return body


def request(*ts) -> bytes:
    return b"".join(lendelim(1, s) for s in ts)


SEEDS = {
    "one-series": request(series([("__name__", "up"), ("job", "a")], [(1.0, 1000)])),
    "two-series": request(
        series([("__name__", "x"), ("a", "1")], [(0.5, 0), (1.5, 15000), (float("nan"), 30000)]),
        series([("__name__", "x"), ("a", "2")], [(-1.0, -5), (2.0, 10)]),
    ),
    "stale-marker": request(
        series([("__name__", "s")], [(struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0], 5)])
    ),
    "unsorted-labels": request(series([("b", "1"), ("a", "2"), ("__name__", "u")], [(1.0, 1)])),
    "duplicate-labels": request(series([("__name__", "d"), ("a", "1"), ("a", "1")], [(1.0, 1)])),
    "bad-label-name": request(series([("__name__", "b"), ("0x", "1")], [(1.0, 1)])),
    "reserved-label": request(series([("__name__", "r"), ("__hypnos_aggr__", "sum")], [(1.0, 1)])),
    "tenant-label": request(series([("__name__", "t"), ("tenant_id", "other")], [(1.0, 1)])),
    "no-name": request(series([("a", "1")], [(1.0, 1)])),
    "empty-value": request(series([("__name__", "e"), ("a", "")], [(1.0, 1)])),
    "exemplar": request(
        series([("__name__", "h"), ("le", "+Inf")], [(3.0, 100)], [([("trace_id", "abc")], 0.2, 90)])
    ),
    "unsorted-samples": request(series([("__name__", "o")], [(1.0, 20), (2.0, 10), (3.0, 10)])),
    "extreme-times": request(series([("__name__", "x")], [(1.0, -(1 << 63)), (2.0, (1 << 63) - 1)])),
    "empty-request": b"",
    "native-histograms": request(
        series(
            [("__name__", "rpc_seconds"), ("job", "a")],
            [],
            histograms=[
                int_histogram(1000, 3, 6, 2.5, 1, [(-1, 2), (2, 1)], [1, 1, -1], [(0, 1)], [1]),
                int_histogram(2000, 3, 12, 5.0, 2, [(-1, 2), (2, 1)], [2, 2, -2], [(0, 1)], [2]),
            ],
        ),
        series(
            [("__name__", "queue"), ("job", "a")],
            [(1.0, 500)],
            histograms=[float_histogram(1000, 0, 3.5, 1.0, [(0, 2)], [1.5, 2.0], hint=3)],
        ),
    ),
    "custom-buckets": request(
        series(
            [("__name__", "latency")],
            [],
            histograms=[float_histogram(1000, -53, 6.0, 2.0, [(0, 3)], [1.0, 2.0, 3.0], custom=[0.1, 0.5])],
        )
    ),
    "bad-histogram-spans": request(
        series([("__name__", "bad")], [], histograms=[int_histogram(1000, 0, 1, 1.0, 0, [(0, 3)], [1])])
    ),
}


def snappy_repeat(prefix: bytes, unit: bytes, total: int) -> bytes:
    """A raw snappy block of `prefix` followed by `unit` repeated up to `total` bytes
    (`len(unit)` divides 64): one literal, then copies of 64 bytes at offset `len(unit)`."""
    body = prefix + unit
    copies = (total - len(body)) // 64
    length = len(body) + copies * 64
    out = varint(length)
    out += bytes([(len(body) - 1) << 2]) + body  # literal of at most 60 bytes
    out += bytes([(63 << 2) | 2, len(unit), 0]) * copies
    return out


def bomb(field_num: int, total: int) -> bytes:
    """A request of one series holding empty messages of `field_num` up to `total` bytes
    decompressed (decompression amplification, issue 11 finding 2)."""
    lab = label("__name__", "b")
    inner_len = len(lendelim(1, lab)) + ((total - 16) // 64) * 64 + 2
    prefix = lendelim(1, b"")[:1] + varint(inner_len) + lendelim(1, lab)
    return snappy_repeat(prefix, bytes([(field_num << 3) | 2, 0]), total)


# Already snappy-compressed (mode byte 0: snappy, protobuf, body as is): about 400 KB that
# decompress to 8 MiB, the target's limit.
BOMBS = {
    "bomb-empty-histograms": bomb(4, 8 << 20),
    "bomb-empty-samples": bomb(2, 8 << 20),
}


def main(dst: str) -> None:
    out = pathlib.Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    for name, body in SEEDS.items():
        (out / name).write_bytes(b"\x80" + body)
    for name, body in BOMBS.items():
        (out / name).write_bytes(b"\x00" + body)
    print(f"{len(SEEDS) + len(BOMBS)} seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
