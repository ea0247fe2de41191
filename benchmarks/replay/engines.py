"""Replay benchmark: a generated 100,000-line access log through the real nginx and Varnish.

Run from the repository root::

    python benchmarks/replay/engines.py                       # both engines, 100,000 requests
    python benchmarks/replay/engines.py --requests 20000 --engine nginx
    python benchmarks/replay/engines.py --write-log /tmp/zipf.log   # the log too, for `replay`

The log (``harness/traffic/synth_zipf.py``): four URL families with a Zipf key mix each
(exponent 1), Poisson arrivals at ``--rate`` per second of log time, timestamps in whole seconds
as an access log records them (``--write-log`` writes it in nginx's combined format, so the
prediction can read exactly this traffic). The policy below gives the families TTLs of 1 h,
5 min and 2 min and no caching: the two short ones expire many times inside the log's span.

Each engine gets a stack of its own (local runtime, cold cache) and the log replayed at
``--speed`` (the policy's timers scaled alike, ``harness/traffic/drive.py``), bounded by
``--max-seconds``. Reported per rule and engine: requests, hits (Cache-Status), hit ratio,
origin requests (the sample origin's counters), and the wall time, lateness and any note.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from cachewright.harness.traffic.drive import Measured, measure
from cachewright.harness.traffic.entry import Entry
from cachewright.harness.traffic.synth_zipf import Family, synthesize

POLICY = """\
version: 1
name: replay-bench
origin:
  url: http://127.0.0.1:8000
listen:
  hosts: [shop.test]
  http: {port: 8080}
cache:
  size: 1g
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 1h
  - name: pages
    match: {path_prefix: /pages/}
    ttl: 5m
  - name: api
    match: {path_prefix: /api/}
    ttl: 2m
  - name: account
    match: {path_prefix: /account/}
    cache: false
"""
FAMILIES = (
    Family("/static/", 2_000, 0.25),
    Family("/pages/", 20_000, 0.40),
    Family("/api/", 5_000, 0.25),
    Family("/account/", 1_000, 0.10),
)
SEED = 21
#: the policy's TTLs by family prefix (None: not cached), for the ideal cache's reference column
TTLS = {"/static/": 3600, "/pages/": 300, "/api/": 120, "/account/": None}


def ideal(requests: int, rate: float) -> dict[str, tuple[int, int]]:
    """A reference, not the prediction: requests and hits per rule of an ideal cache that
    stores every answer of a cached rule for its TTL (fresh while its age is below the TTL,
    RFC 9111 4.2) and answers in no time, on exactly the replayed log."""
    fetched: dict[str, float] = {}
    out: dict[str, list[int]] = {}
    for entry in log_entries(requests, rate):
        assert entry.time is not None
        prefix = next(p for p in TTLS if entry.target.startswith(p))
        rule = out.setdefault(prefix.strip("/"), [0, 0])
        rule[0] += 1
        ttl = TTLS[prefix]
        if ttl is not None and entry.time - fetched.get(entry.target, -1e18) < ttl:
            rule[1] += 1
        elif ttl is not None:
            fetched[entry.target] = entry.time
    return {name: (n, hits) for name, (n, hits) in sorted(out.items())}


def log_entries(requests: int, rate: float) -> Iterator[Entry]:
    """The generated traffic, timestamps cut to whole seconds as an access log has them."""
    for entry in synthesize(FAMILIES, requests, rate, SEED):
        assert entry.time is not None
        yield replace(entry, time=float(int(entry.time)))


def combined_line(entry: Entry) -> str:
    """``entry`` as a line of nginx's combined log format."""
    assert entry.time is not None
    stamp = datetime.datetime.fromtimestamp(entry.time, datetime.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'127.0.0.1 - - [{stamp}] "{entry.method} {entry.target} HTTP/1.1" 200 512 "-" "replay-bench"\n'


def print_table(results: list[Measured], wall: dict[str, float], reference: dict[str, tuple[int, int]]) -> None:
    print("| engine | rule | requests | hits | hit ratio | origin requests | ideal cache's hit ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    every = (sum(n for n, _ in reference.values()), sum(h for _, h in reference.values()))
    for m in results:
        for name, r in m.rules.items():
            n, hits = reference.get(name, (0, 0))
            print(f"| {m.engine} | {name} | {r.requests} | {r.hits} | {r.hit_ratio:.2%} | {r.origin} | "
                  f"{hits / max(1, n):.2%} |")
        t = m.total
        print(f"| {m.engine} | **all** | {t.requests} | {t.hits} | **{t.hit_ratio:.2%}** | {m.origin_total} | "
              f"**{every[1] / max(1, every[0]):.2%}** |")
    print()
    print("| engine | sent | refused | errors | replay | wall (start, replay, stop) | late > 0.5 s | max lag |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in results:
        print(f"| {m.engine} | {m.sent} | {m.refused} | {m.errors} | {m.seconds:.1f} s | "
              f"{wall[m.engine]:.1f} s | {m.late} | {m.max_lag:.2f} s |")
    for m in results:
        for note in (*m.notes, *([f"stopped: {m.stopped}"] if m.stopped else [])):
            print(f"- {m.engine}: {note}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second of log time")
    parser.add_argument("--speed", type=float, default=10.0, help="log seconds per replay second")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="replay time bound per engine")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--engine", choices=("nginx", "varnish", "both"), default="both")
    parser.add_argument("--write-log", type=Path, metavar="FILE", help="also write the log (combined format)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the measurements as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.write_log:
        with args.write_log.open("w", encoding="utf-8") as out:
            out.writelines(combined_line(e) for e in log_entries(args.requests, args.rate))
    with tempfile.TemporaryDirectory(prefix="cw-replay-bench-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        results, wall = [], {}
        for engine in ("nginx", "varnish") if args.engine == "both" else (args.engine,):
            started = time.monotonic()
            results += measure(policy, lambda: log_entries(args.requests, args.rate), engine,
                               speed=args.speed, max_requests=args.requests, max_seconds=args.max_seconds,
                               concurrency=args.concurrency)
            wall[engine] = time.monotonic() - started
    print(f"{args.requests} requests at {args.rate:g}/s of log time, replayed at speed {args.speed:g}, "
          f"concurrency {args.concurrency}\n")
    print_table(results, wall, ideal(args.requests, args.rate))
    if args.json:
        args.json.write_text(json.dumps([m.to_json() for m in results], indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
