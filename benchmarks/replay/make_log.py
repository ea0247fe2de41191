"""Write a realistic access log for a policy (``harness/traffic/synth.py``): Zipf-mixed URLs over
the policy's rules, Poisson arrivals over a time span, nginx combined (or varnishncsa) lines.

Run from the repository root::

    python benchmarks/replay/make_log.py examples/shop/policy.yaml access.log --lines 1000000
    python benchmarks/replay/make_log.py examples/shop/policy.yaml access.log.gz --seed 7

A name ending in ``.gz`` is written gzipped. The same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path
from typing import IO

from cachewright.generator.load import load
from cachewright.harness.traffic.synth import zipf_log


def write(policy: Path, out: Path, lines: int, seed: int, urls: int, span: float, fmt: str) -> None:
    """The log for ``policy`` at ``out`` (gzipped when its name ends in ``.gz``)."""
    stream: IO[str]
    if out.suffix == ".gz":
        stream = gzip.open(out, "wt", encoding="utf-8", compresslevel=6)
    else:
        stream = open(out, "w", encoding="utf-8")
    with stream:
        zipf_log(load(policy), lines, seed, stream, urls=urls, span=span, format=fmt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path)
    p.add_argument("out", type=Path, help="the log to write (.gz: gzipped)")
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--urls", type=int, default=2000, help="distinct URLs (default: 2000)")
    p.add_argument("--span", type=float, default=6 * 3600.0,
                   help="seconds of traffic the log covers (default: 6 hours)")
    p.add_argument("--format", choices=("combined", "varnishncsa"), default="combined")
    args = p.parse_args(argv)
    write(args.policy, args.out, args.lines, args.seed, args.urls, args.span, args.format)
    print(f"wrote {args.out} ({args.lines} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
