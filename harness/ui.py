"""How much the CLI says: ``--quiet`` (errors and results only), normal, ``--verbose``."""

from __future__ import annotations

import sys

QUIET, NORMAL, VERBOSE = 0, 1, 2
level = NORMAL


def info(message: str) -> None:
    """Progress and file lists: shown unless --quiet."""
    if level >= NORMAL:
        print(message)


def detail(message: str) -> None:
    """Extra detail: shown with --verbose only (on stderr, so stdout stays parseable)."""
    if level >= VERBOSE:
        print(message, file=sys.stderr)
