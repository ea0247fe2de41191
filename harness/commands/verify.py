"""``cachewright verify``: compile in memory and check with the real engines."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import ui
from . import HELP, common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify", help=HELP["verify"],
        epilog="example:\n  cachewright verify examples/api/policy.yaml --target varnish",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    common.add_target(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policy, compiled = common.compiled(args)
    for done in common.verified(args, policy, compiled):
        ui.info(f"ok: {done.engine} accepts the configuration ({done.version})")
    return 0
