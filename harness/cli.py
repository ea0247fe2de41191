"""The ``cachewright`` command: a thin dispatcher; one module per subcommand.

Start-up is a feature (a pre-commit hook pays it per call): only the module of the command that
runs is imported, to build its parser (the others are listed from ``commands.HELP``), and it
imports its machinery (checks, requests, cryptography, Docker, Jinja) when it runs.
``tests/test_cli_startup.py`` guards what each command's start loads.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

from cachewright.generator import __version__
from cachewright.generator.errors import CachewrightError

from . import ui
from .commands import HELP, common

#: the commands in the order ``--help`` lists them (each a module of ``harness.commands``)
COMMANDS = tuple(HELP)


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. With ``argv``, only the command it names is built in full
    (its module imported); the others are listed by name and summary (``HELP``), which is all
    ``--help`` and an unknown command's error need. Without, every command is built."""
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
    chosen = _named(argv)
    for name in COMMANDS:
        if argv is None or name == chosen:
            importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
        else:
            sub.add_parser(name, help=HELP[name])
    for p in sub.choices.values():
        if p.get_default("quiet") is None:  # the command has no -q/-v of its own
            common.add_volume(p)
    return top


def _named(argv: Sequence[str] | None) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top level's options
    take no value)."""
    words = [a for a in (argv or ()) if not a.startswith("-")]
    return words[0] if words else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 check failed, 2 bad input, 3 tool missing)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    top = parser(argv)
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
