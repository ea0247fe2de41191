"""``cachewright compile``: policy → files, written atomically; ``--check`` for drift."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import ui
from . import HELP, common

if TYPE_CHECKING:
    from cachewright.generator.render import OutputFile


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compile", help=HELP["compile"],
        description="Compile POLICY into cachewright-out/nginx/nginx.conf, "
                    "cachewright-out/varnish/default.vcl (+ varnishd.args) and "
                    "cachewright-out/hitch/hitch.conf (with HTTPS).",
        epilog="examples:\n  cachewright compile examples/shop/policy.yaml\n"
               "  cachewright compile policy.yaml -o cachewright-out/ --target varnish --verify\n"
               "  cachewright compile policy.yaml --check  # exit 1 + diff on drift\n"
               "  cachewright compile policy.yaml --check --format github  # + annotations",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    p.add_argument("-o", "--output", type=Path, default=Path("cachewright-out"),
                   help="output directory (default: cachewright-out/)")
    common.add_target(p)
    common.add_format(p)
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 with a unified diff if the files on disk differ (or one "
                        "an earlier compile wrote is no longer generated)")
    p.add_argument("--verify", action="store_true",
                   help="check the output with nginx -t / varnishd -C / hitch --test before "
                        "writing it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with common.annotating_errors(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from cachewright.generator.output import write_atomically

    policy, compiled = common.compiled(args)
    if args.check:
        return _check(args, compiled.files)
    if args.verify:  # the engines' own checks, on request
        for done in common.verified(args, policy, compiled):
            ui.info(f"verified with {done.version}")
    written = write_atomically(args.output, compiled.files, common.targets(args))
    for f in compiled.files:
        ui.info(str(args.output / f.path))
    for path in written.remove:
        ui.info(f"{args.output / path}: removed (an earlier compile wrote it; this one does not)")
    _warn_edited(args.output, written.edited)
    return 0


def _check(args: argparse.Namespace, files: tuple[OutputFile, ...]) -> int:
    """Exit 1 with the diff when a compile would change the folder (a stale file included)."""
    from cachewright.generator.output import diff

    changes, todo = diff(args.output, files, common.targets(args))
    _warn_edited(args.output, todo.edited)
    if changes or todo.edited:
        sys.stdout.write(changes)
        stale = f"{args.output}: out of date with {args.policy} (run cachewright compile)"
        print(stale, file=sys.stderr)
        _annotate_drift(args, stale)
        return 1
    ui.info(f"{args.output}: up to date")
    return 0


def _warn_edited(out_dir: Path, paths: tuple[str, ...]) -> None:
    for path in paths:
        print(f"warning: {out_dir / path}: no longer generated, but edited since cachewright wrote "
              "it: left in place (remove or move it)", file=sys.stderr)


def _annotate_drift(args: argparse.Namespace, message: str) -> None:
    """With ``--format github``, drift as an error on the policy file."""
    if common.github(args):
        from ..report.github import Annotation

        common.emit([Annotation("error", message, str(args.policy), title="cachewright: drift")])
