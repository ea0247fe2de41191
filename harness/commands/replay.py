"""``cachewright replay``: what a policy predicts for a real access log (per rule: requests,
hits, hit ratio, origin requests, distinct keys), computed by ``harness.traffic``; no engine is
run. Its imports are inside ``run``, so that listing the commands stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cachewright.generator.model import Policy
    from cachewright.harness.traffic.report import Prediction

FORMATS = ("auto", "combined", "varnishncsa", "json")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``replay`` on the ``cachewright`` subparsers."""
    p = sub.add_parser(
        "replay", help="predict what a policy does with a real access log: hit ratio per rule",
        description="Read an access log (nginx combined, varnishncsa, or JSON lines; gzip "
                    "too) and predict, per rule of the policy, how many requests hit the cache "
                    "and how many reach the origin: each request takes the rule it selects and "
                    "its cache key as `explain` computes them, into one simulated shared cache "
                    "that keeps each key for its TTL on the log's own clock. Malformed lines are "
                    "counted and skipped; the assumptions are printed with the result.",
        epilog="examples:\n  cachewright replay policy.yaml /var/log/nginx/access.log\n"
               "  cachewright replay policy.yaml access.log.2.gz --top 20\n"
               "  cachewright replay policy.yaml varnishncsa.log --format varnishncsa --json\n"
               "  zcat access.log.*.gz | cachewright replay policy.yaml -",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    p.add_argument("log", metavar="ACCESS_LOG",
                   help="the access log (plain or gzip; '-' reads standard input)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="the log's format (default: auto, decided from its first lines)")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="show the N cache keys with the most requests (default: 10)")
    p.add_argument("--max-keys", type=int, default=500_000, metavar="N",
                   help="distinct cache keys kept in memory, about 250 bytes each "
                        "(default: 500000; beyond it rare keys are forgotten, and the report "
                        "says so)")
    p.add_argument("--json", action="store_true",
                   help="print the prediction as JSON (schema cachewright.replay/1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Predict; exit 2 when the log cannot be read or the policy is invalid."""
    import json

    from cachewright.generator.errors import UsageError
    from cachewright.generator.load import load

    from ..traffic.report import render
    from . import common

    if args.top < 0 or args.max_keys < 1:
        raise UsageError("--top takes a count from 0, --max-keys from 1")
    policy = load(args.policy)
    common.warn(policy.warnings)
    result = prediction(policy, args)
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0


def prediction(policy: Policy, args: argparse.Namespace) -> Prediction:
    """The prediction for ``args.log``; UsageError when it cannot be read."""
    import sys
    import zlib

    from cachewright.generator.errors import UsageError

    from ..traffic.logs import Reader
    from ..traffic.predict import Predictor
    from ..traffic.progress import counted

    predictor = Predictor(policy, max_keys=args.max_keys)
    shown = "standard input" if args.log == "-" else args.log
    reader = Reader(sys.stdin.buffer if args.log == "-" else args.log, args.format,
                    headers=bool(predictor.watched & {"referer", "user-agent"}))
    try:
        predictor.feed_all(counted(reader, sys.stderr))
    except OSError as exc:
        raise UsageError(f"cachewright replay: cannot read {shown}: {exc.strerror or exc}") from None
    except (EOFError, zlib.error) as exc:
        raise UsageError(f"cachewright replay: cannot read {shown}: a damaged gzip stream ({exc})") from None
    return predictor.result(shown, reader.format, args.top)
