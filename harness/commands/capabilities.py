"""``cachewright capabilities``: the feature × engine table (optionally for one policy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from . import HELP

if TYPE_CHECKING:
    from cachewright.generator.capabilities import Feature, Support
    from cachewright.generator.model import Policy


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "capabilities", help=HELP["capabilities"],
        epilog="examples:\n  cachewright capabilities\n"
               "  cachewright capabilities examples/api/policy.yaml  # only features it uses",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, nargs="?", help="limit the table to this policy's features")
    p.set_defaults(run=run)


def table(features: list[Feature], policy: Policy | None = None) -> str:
    """The table, each engine's support as ``policy`` gets it (its nginx options count)."""
    rows = [("feature", "nginx", "varnish", "alternative")]
    for f in features:
        rows.append((f.id, _cell(f.on("nginx", policy)), _cell(f.on("varnish", policy)),
                     f.alternative or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(r)).rstrip()
        for r in rows)


def _cell(support: Support) -> str:
    return support.level if support.level != "module" else f"module: {support.how}"


def run(args: argparse.Namespace) -> int:
    from cachewright.generator import capabilities
    from cachewright.generator.load import load

    features, policy = list(capabilities.TABLE), None
    if args.policy is not None:
        policy = load(args.policy)
        features = capabilities.used_features(policy)
    print(table(features, policy))
    return 0
