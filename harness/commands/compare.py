"""``cachewright compare``: for this policy, which engine? Capabilities, correctness, performance.

Only the parser is built at import (the CLI imports every command to build its own); the
measurements, the renderers and matplotlib are imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import ui
from ..compare.settings import FleetSettings, OffloadSettings, Settings
from . import HELP, common
from .test import add_run_options, engines, run_scenarios, runtime, scenarios_of, write_report

if TYPE_CHECKING:
    from cachewright.generator.model import Policy

    from ..compare.fleetrecords import FleetReport
    from ..compare.records import CompareReport

DESCRIPTION = (
    "Start both engines on POLICY (and each engine's hand-written baseline config), run every derived "
    "check and scenario, then measure each engine in turn: cached-hit throughput and latency, cold "
    "misses, a thundering herd, a slow origin, the origin down, a Zipf request mix, memory; then the "
    "origin offload: what reaches the origin as entries with validators expire, on the generated "
    "config, the baseline and the generated config with revalidation turned off. Exit 0 when every "
    "check passed (with --strict, also no performance target missed). The throughput ratio is judged "
    "on its confidence interval: met when the whole interval is at or above the target, missed when "
    "it is wholly below, inconclusive when it spans the target. A policy with a fleet: section compares "
    "topologies instead: the same Zipf mix through one node, replicas, a shield and a shard tier of the "
    "fleet's size and engines on local processes, with what reached the origin against each one's ideal "
    "(docs/compare.md).")
EPILOG = ("examples:\n  cachewright compare examples/shop/policy.yaml\n"
          "  cachewright compare policy.yaml --json report.json --html report.html\n"
          "  cachewright compare policy.yaml --duration 1 --zipf-requests 2000  # quick\n"
          "  cachewright compare examples/fleet-shield/policy.yaml  # a fleet: its topologies")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compare", help=HELP["compare"],
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    add_run_options(p)
    _add_load_options(p, Settings())
    _add_section_options(p, OffloadSettings())
    p.add_argument("--strict", action="store_true",
                   help="exit 1 also when a performance target is missed (the throughput ratio: "
                        "its whole confidence interval below the target; an inconclusive one, "
                        "spanning the target, does not fail: add --rounds to decide it)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="write a self-contained HTML page with tables and charts (needs matplotlib)")
    p.set_defaults(run=run)


def _add_load_options(p: argparse.ArgumentParser, d: Settings) -> None:
    """How hard and how long the measurements push (``d``: the defaults)."""
    p.add_argument("--concurrency", type=_positive, default=d.concurrency, metavar="N",
                   help=f"connections for the cached-hit load (default: {d.concurrency})")
    p.add_argument("--duration", type=_positive_float, default=d.duration_s, metavar="SECONDS",
                   help=f"length of each cached-hit load run (default: {d.duration_s:g})")
    p.add_argument("--rounds", type=_positive, default=d.rounds, metavar="N",
                   help=f"cached-hit runs per engine, each followed by the baseline's; the ratio is "
                        f"the median of the rounds' ratios (default: {d.rounds})")
    p.add_argument("--body-size", type=_positive, default=d.body_size, metavar="BYTES",
                   help=f"size of the cached responses the loads fetch (default: {d.body_size})")
    p.add_argument("--herd", type=_positive, default=d.herd_size, metavar="N",
                   help=f"concurrent cold requests in the thundering-herd test (default: {d.herd_size})")
    p.add_argument("--zipf-requests", type=_positive, metavar="N",
                   help=f"requests in the Zipf mix (default: {d.zipf_requests}; a fleet: "
                        f"{FleetSettings().requests} per topology)")
    p.add_argument("--zipf-keys", type=_positive, default=d.zipf_keys, metavar="N",
                   help=f"distinct keys in the Zipf mix (default: {d.zipf_keys})")
    p.add_argument("--zipf-rate", type=_positive_float_rate, default=FleetSettings().rate, metavar="N",
                   help=f"a fleet: at most N requests a second of the mix, one at a time "
                        f"(default: {FleetSettings().rate:g})")


def _add_section_options(p: argparse.ArgumentParser, o: OffloadSettings) -> None:
    """Which parts of the comparison run (``o``: the offload's defaults)."""
    p.add_argument("--offload-duration", type=_positive_float, default=o.duration_s, metavar="SECONDS",
                   help=f"length of each origin offload run (generated, baseline, no revalidation; "
                        f"default: {o.duration_s:g})")
    p.add_argument("--no-offload", action="store_true",
                   help="skip the origin offload measurement (and its third stack)")
    p.add_argument("--no-conformance", action="store_true",
                   help="skip the RFC 9111 conformance report (the rfc checks, about 30 s)")
    p.add_argument("--no-correctness", action="store_true",
                   help="skip the derived checks and scenarios (performance only)")
    p.add_argument("--scenarios", action="append", type=Path, metavar="FILE",
                   help="scenario file(s) (default: scenarios.yaml next to the policy)")
    p.add_argument("--no-scenarios", action="store_true", help="run no scenarios")


def _progress(text: str) -> None:
    """Where the comparison is (stderr, so stdout holds only the report); not with --quiet."""
    if ui.level >= ui.NORMAL:
        print(f"compare: {text}", file=sys.stderr, flush=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a whole number of at least 1")
    return value


def _positive_float_rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: expected requests a second above 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text}: expected seconds between 0 and 600")
    return value


def run(args: argparse.Namespace) -> int:
    from cachewright.generator.errors import UsageError
    from cachewright.generator.fleet import not_yet
    from cachewright.generator.load import load

    from ..compare.run import compare

    if args.origin or args.origin_image:
        raise UsageError("compare programs and counts the sample origin; --origin and --origin-image "
                         "are not supported here (use `cachewright test` with your own origin)")
    policy = load(args.policy)
    not_yet(policy, "compare", args.runtime)
    common.warn(policy.warnings)
    if policy.fleet is not None:
        return _run_fleet(args, policy)
    settings = Settings(concurrency=args.concurrency, duration_s=args.duration, rounds=args.rounds,
                        herd_size=args.herd, body_size=args.body_size,
                        zipf_requests=args.zipf_requests or Settings().zipf_requests, zipf_keys=args.zipf_keys)
    scenarios = () if args.no_correctness else scenarios_of(args)
    if args.html:
        from ..compare.charts import require_matplotlib

        require_matplotlib()  # fail now, not after the measurements
    report = compare(policy, str(args.policy), lambda configs: runtime(args, configs), engines(args), settings,
                     correctness=not args.no_correctness, scenarios=scenarios,
                     run_scenarios=lambda stack, pol, names: run_scenarios(scenarios, stack, pol, names),
                     progress=_progress,
                     offload=None if args.no_offload else OffloadSettings(duration_s=args.offload_duration),
                     conformance=not args.no_conformance)
    return _write(args, report)


def _run_fleet(args: argparse.Namespace, policy: Policy) -> int:
    """A fleet policy: its topologies side by side on the local fleet runtime (the same Zipf
    mix through one node, replicas, a shield and a shard tier); exit 1 when requests failed."""
    from cachewright.generator.errors import UsageError

    from ..compare.fleetrun import compare_fleet
    from ..compare.fleettext import fleet_text

    if args.html:
        raise UsageError("--html: a fleet comparison has a text and a JSON report (--json FILE)")
    settings = FleetSettings(requests=args.zipf_requests or FleetSettings().requests, keys=args.zipf_keys,
                             body_size=args.body_size, rate=args.zipf_rate)
    report = compare_fleet(policy, str(args.policy), settings, progress=_progress)
    print(fleet_text(report), end="")
    write_report(args.json, _json(report))
    return 1 if report.failed else 0


def _write(args: argparse.Namespace, report: CompareReport) -> int:
    """Print the report, write its JSON and HTML where asked; the exit status it earns."""
    from ..compare.page import html_report
    from ..compare.text import text_report
    from ..report import should_color

    print(text_report(report, color=should_color(sys.stdout)), end="")
    write_report(args.json, _json(report))
    if args.html:
        write_report(args.html, html_report(report))
    failed = any(summary.failed for summary in (report.correctness or {}).values() if summary)
    # "inconclusive" (met None) is not a miss: the run could not tell, see harness.compare.targets
    missed = any(target.met is False for target in report.targets)
    return 1 if failed or (args.strict and missed) else 0


def _json(report: CompareReport | FleetReport) -> str:
    import json

    return json.dumps(report.to_json(), indent=2) + "\n"
