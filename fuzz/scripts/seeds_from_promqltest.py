#!/usr/bin/env python3
"""Writes the query of every eval line of Prometheus' promqltest scripts as one seed file.

    python3 scripts/seeds_from_promqltest.py ../../shared/promqltest/testdata /tmp/seeds

The seeds are a starting point for `cargo fuzz run promql_parse_plan /tmp/seeds`; only the
minimized corpus that fuzzing keeps (`cargo fuzz cmin`) is stored in `corpus/`.
"""
import hashlib
import pathlib
import re
import sys

EVAL = re.compile(
    r"^\s*eval(?:_\w+)?\s+(?:instant\s+at\s+\S+|range\s+from\s+\S+\s+to\s+\S+\s+step\s+\S+)\s+(.+?)\s*$"
)


def main(src: str, dst: str) -> None:
    out = pathlib.Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    seen = set()
    for test in sorted(pathlib.Path(src).glob("*.test")):
        for line in test.read_text(encoding="utf-8").splitlines():
            m = EVAL.match(line)
            if not m:
                continue
            query = m.group(1)
            # Also a variant naming the fuzz data set's metric, so that selections find data.
            for q in (query, query.replace("http_requests", "http_requests_total")):
                data = q.encode("utf-8")
                if data in seen or len(data) > 512:
                    continue
                seen.add(data)
                (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{len(seen)} seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
