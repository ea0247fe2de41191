"""``cachewright validate``: load, type-check and compile each policy in memory, for every engine
it targets (a fleet: every node). Writes nothing and needs no engine: the pre-commit hook."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cachewright.generator.errors import CachewrightError, UsageError

from .. import ui
from . import HELP, common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate", help=HELP["validate"],
        description="Load each POLICY (every problem reported as file:line:col) and compile it in\n"
                    "memory for every engine it targets (a fleet: every node), so a feature an\n"
                    "engine lacks fails too. Every file is checked and reported; exit 2 if any is\n"
                    "invalid. Writes nothing and needs no engine (nginx -t and varnishd -C are\n"
                    "cachewright verify's).",
        epilog="examples:\n  cachewright validate policy.yaml\n"
               "  cachewright validate examples/*/policy.yaml -q   # problems only\n"
               "  cachewright validate policy.yaml --format github  # GitHub Actions annotations",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policies", nargs="+", type=Path, metavar="POLICY", help="policy YAML file(s)")
    common.add_target(p)
    common.add_format(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    common.options(args)  # a bad --nginx-version is the command line's error, not each file's
    invalid = [path for path in args.policies if not valid(args, path)]
    if invalid and len(args.policies) > 1:
        print(f"{len(invalid)} of {len(args.policies)} policies are invalid", file=sys.stderr)
    return 2 if invalid else 0


def valid(args: argparse.Namespace, path: Path) -> bool:
    """Whether ``path`` loads and compiles; its problems (and warnings) printed either way."""
    try:
        with common.annotating_errors(args, path):
            if not path.is_file():
                raise UsageError(f"{path}: no such file" if not path.exists() else
                                 f"{path}: not a file (expected a policy YAML file)")
            common.compiled(args, path)
    except CachewrightError as exc:
        print(exc.render(), file=sys.stderr)
        return False
    ui.info(f"{path}: ok")
    return True
