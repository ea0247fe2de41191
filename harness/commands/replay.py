"""``cachewright replay``: what a policy predicts for a real access log (per rule: requests,
hits, hit ratio, origin requests, distinct keys), computed by ``harness.traffic``; no engine is
run. Its imports are inside ``run``, so that listing the commands stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import HELP

if TYPE_CHECKING:
    from cachewright.generator.model import Policy
    from cachewright.harness.traffic.entry import Entry, Malformed
    from cachewright.harness.traffic.report import Prediction

FORMATS = ("auto", "combined", "varnishncsa", "json", "requests")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``replay`` on the ``cachewright`` subparsers."""
    p = sub.add_parser(
        "replay", help=HELP["replay"],
        description="Read an access log (nginx combined, varnishncsa, or JSON lines; gzip "
                    "too) and predict, per rule of the policy, how many requests hit the cache "
                    "and how many reach the origin: each request takes the rule it selects and "
                    "its cache key as `explain` computes them, into one simulated shared cache "
                    "that keeps each key for its TTL on the log's own clock. Malformed lines are "
                    "counted and skipped; the assumptions are printed with the result.",
        epilog="examples:\n  cachewright replay policy.yaml /var/log/nginx/access.log\n"
               "  cachewright replay policy.yaml access.log.2.gz --top 20\n"
               "  cachewright replay policy.yaml varnishncsa.log --format varnishncsa --json\n"
               "  zcat access.log.*.gz | cachewright replay policy.yaml -\n"
               "  cachewright replay policy.yaml access.log --engine both  # measured beside it",
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
    _add_engine_options(p)
    p.set_defaults(run=run)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    engine = p.add_argument_group(
        "measuring on the real engines",
        "--engine replays the log's first --max-requests requests through each engine on "
        "127.0.0.1 in front of the sample origin (a cold cache per engine), its gaps divided by "
        "--speed and the policy's timers alike, and puts the measured hit ratio and origin "
        "requests beside the prediction of the same requests")
    engine.add_argument("--engine", choices=("nginx", "varnish", "both"),
                        help="also measure on this engine (or both)")
    engine.add_argument("--runtime", choices=("local", "docker"), default="local",
                        help="where the engines run (default: local processes)")
    engine.add_argument("--speed", type=float, metavar="X",
                        help="replay X times faster than the log's own clock (default: the "
                             "lowest speed that fits --max-seconds)")
    engine.add_argument("--max-requests", type=int, default=100_000, metavar="N",
                        help="requests replayed at most (default: 100000)")
    engine.add_argument("--max-seconds", type=float, default=300.0, metavar="S",
                        help="how long a replay may last per engine (default: 300)")


def run(args: argparse.Namespace) -> int:
    """Predict; exit 2 when the log cannot be read or the policy is invalid."""
    import json

    from cachewright.generator.errors import UsageError
    from cachewright.generator.load import load

    from ..traffic.report import render
    from . import common

    if args.top < 0 or args.max_keys < 1:
        raise UsageError("--top takes a count from 0, --max-keys from 1")
    if args.engine:
        _check_engine_options(args)
    policy = load(args.policy)
    common.warn(policy.warnings)
    result = prediction(policy, args)
    if args.engine:
        result = measured(result, args)
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0


def prediction(policy: Policy, args: argparse.Namespace) -> Prediction:
    """The prediction for ``args.log``; UsageError when it cannot be read."""
    import zlib

    from cachewright.generator.errors import UsageError

    from ..traffic.logs import Reader
    from ..traffic.predict import combined, feed_all, predictors
    from ..traffic.progress import counted

    chosen = predictors(policy, max_keys=args.max_keys)
    shown = "standard input" if args.log == "-" else args.log
    reader = Reader(sys.stdin.buffer if args.log == "-" else args.log, args.format,
                    headers=bool(chosen[0].watched & {"referer", "user-agent"}))
    items = counted(reader, sys.stderr)
    try:
        feed_all(chosen, first_requests(items, args.max_requests) if args.engine else items)
    except OSError as exc:
        raise UsageError(f"cachewright replay: cannot read {shown}: {exc.strerror or exc}") from None
    except (EOFError, zlib.error) as exc:
        raise UsageError(f"cachewright replay: cannot read {shown}: a damaged gzip stream ({exc})") from None
    return combined(chosen, shown, reader.format, args.top)


def first_requests(items: Iterable[Entry | Malformed], count: int) -> Iterator[Entry | Malformed]:
    """``items`` up to the ``count``-th request (malformed lines do not count): what --engine
    replays, so that the prediction beside the measurement is of the same requests."""
    from ..traffic.entry import Malformed

    for item in items:
        if not isinstance(item, Malformed):
            if count <= 0:
                return
            count -= 1
        yield item


def _check_engine_options(args: argparse.Namespace) -> None:
    from cachewright.generator.errors import UsageError

    if args.log == "-":
        raise UsageError("--engine reads the log once per engine: give a file, not standard input")
    if args.max_requests < 1 or args.max_seconds <= 0 or (args.speed is not None and args.speed <= 0):
        raise UsageError("--max-requests takes a count from 1, --max-seconds and --speed a "
                         "positive number")


def measured(result: Prediction, args: argparse.Namespace) -> Prediction:
    """``result`` with each engine's measurement beside it; the replay's notes on stderr."""
    from ..traffic.drive import fitting_speed, measure
    from ..traffic.logs import Reader
    from ..traffic.report import Measured

    speed = args.speed or fitting_speed(result.span_seconds or 0.0, args.max_seconds)
    runs = measure(args.policy, lambda: Reader(args.log, args.format), args.engine,
                   runtime=args.runtime, speed=speed, max_requests=args.max_requests,
                   max_seconds=args.max_seconds)
    for run in runs:
        stopped = f"; stopped early: {run.stopped}" if run.stopped else ""
        print(f"{run.engine}: {run.sent:,} requests replayed in {run.seconds:.1f} s at speed "
              f"{speed:g}{stopped}", file=sys.stderr)
        for note in run.notes:
            print(f"  note: {note}", file=sys.stderr)
        result = result.with_measured({rule: Measured(run.engine, r.requests, r.hits, r.origin)
                                       for rule, r in run.rules.items()})
    return result
