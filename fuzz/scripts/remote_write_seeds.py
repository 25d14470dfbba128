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


def series(labels, samples, exemplars=()) -> bytes:
    body = b"".join(lendelim(1, label(n, v)) for n, v in labels)
    body += b"".join(lendelim(2, sample(v, t)) for v, t in samples)
    body += b"".join(lendelim(3, exemplar(*e)) for e in exemplars)
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
}


def main(dst: str) -> None:
    out = pathlib.Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    for name, body in SEEDS.items():
        (out / name).write_bytes(b"\x80" + body)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
