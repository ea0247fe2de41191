"""The ``cachewright`` command: a thin dispatcher; one module per subcommand.

Start-up is a feature (a pre-commit hook pays it per call): the command modules only build
their parsers here, and import their machinery (checks, requests, cryptography, Docker, Jinja)
when they run. ``tests/test_cli.py`` guards what ``import cachewright.harness.cli`` loads.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from cachewright.generator import __version__
from cachewright.generator.errors import CachewrightError

from . import ui
from .commands import (
    capabilities,
    common,
    compare,
    compile,
    diff,
    explain,
    init,
    purge,
    replay,
    schema,
    serve,
    test,
    validate,
    verify,
)

COMMANDS = (init, compile, validate, verify, test, compare, serve, explain, replay, diff, purge,
            capabilities, schema)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="cachewright",
        description="Compile one YAML HTTP-caching policy into verified Nginx and Varnish "
                    "configurations.",
        epilog="examples:\n  cachewright compile examples/static-site/policy.yaml -o cachewright-out/\n"
               "  cachewright compile policy.yaml -o cachewright-out/ --check   # CI drift detection\n"
               "  cachewright capabilities\n"
               "  cachewright -q test policy.yaml  # failures and the summary only",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"cachewright {__version__}")
    common.add_volume(top, default=False)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for p in sub.choices.values():
        if p.get_default("quiet") is None:  # the command has no -q/-v of its own
            common.add_volume(p)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 check failed, 2 bad input, 3 tool missing)."""
    top = parser()
    args = top.parse_args(argv)
    if args.quiet and args.verbose:
        top.error("-q/--quiet and -v/--verbose exclude each other")
    ui.level = ui.QUIET if args.quiet else ui.VERBOSE if args.verbose else ui.NORMAL
    try:
        code: int = args.run(args)
        return code
    except CachewrightError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script entry point. Ctrl-C always interrupts, even when the parent started us
    with SIGINT ignored (as shells do for background jobs): the harness then cleans up."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())


if __name__ == "__main__":
    entry()
