"""Writing generated files: atomically (all or nothing), and comparing with what is on disk."""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import CachewrightError
from .render import OutputFile


class OutputError(CachewrightError):
    """The output directory cannot be written."""


def write_atomically(out_dir: Path, files: Iterable[OutputFile]) -> None:
    """Write ``files`` under ``out_dir``: built in a sibling temp dir, then swapped in.

    Only the files cachewright owns are replaced; an existing directory's other files stay.
    """
    files = list(files)
    out_dir = out_dir.resolve()
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write output: {exc.strerror}") from None
    try:
        for f in files:
            target = staging / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.text, encoding="utf-8")
            target.chmod(f.mode)
        _swap_in(staging, out_dir, files)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write output: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out_dir: Path, files: list[OutputFile]) -> None:
    out_dir.mkdir(exist_ok=True)
    for f in files:
        target = out_dir / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / f.path, target)


def diff(out_dir: Path, files: Iterable[OutputFile]) -> str:
    """Unified diff from what is on disk to what would be generated ("" when identical)."""
    chunks: list[str] = []
    for f in files:
        target = out_dir / f.path
        old = target.read_text(encoding="utf-8") if target.is_file() else ""
        if old != f.text:
            chunks.extend(difflib.unified_diff(
                old.splitlines(keepends=True), f.text.splitlines(keepends=True),
                fromfile=str(target) if target.is_file() else "/dev/null", tofile=str(target)))
    return "".join(chunks)
