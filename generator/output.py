"""Writing generated files: atomically (all or nothing), and comparing with what is on disk.

The folder's manifest (generator/manifest.py) records what was written, so that a later compile
removes the files it no longer writes, and only those.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import CachewrightError
from .manifest import MANIFEST, Plan, digest, plan
from .render import OutputFile
from .targets import ENGINES


class OutputError(CachewrightError):
    """The output directory cannot be written."""


def write_atomically(out_dir: Path, files: Iterable[OutputFile],
                     targets: tuple[str, ...] = ENGINES) -> Plan:
    """Write ``files`` (of ``targets``) under ``out_dir``: built in a sibling temp dir, then
    swapped in; then the files an earlier compile wrote and this one does not are removed, and
    the manifest is written last. Files no manifest lists stay. Returns what was removed and
    what was left because it was edited."""
    files = list(files)
    out_dir = out_dir.resolve()
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write output: {exc.strerror}") from None
    try:
        data = {f.path: f.text.encode("utf-8") for f in files}  # encoded once: hashed and written
        todo = plan(out_dir, {path: digest(blob) for path, blob in data.items()}, targets)
        for f in files:
            _stage(staging, f.path, data[f.path], f.mode)
        _stage(staging, MANIFEST, todo.text.encode("utf-8"), 0o644)
        _swap_in(staging, out_dir, files)
        _remove(out_dir, todo.remove)
        os.replace(staging / MANIFEST, out_dir / MANIFEST)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write output: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return todo


def _stage(staging: Path, path: str, data: bytes, mode: int) -> None:
    target = staging / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)


def _swap_in(staging: Path, out_dir: Path, files: list[OutputFile]) -> None:
    out_dir.mkdir(exist_ok=True)
    for f in files:
        target = out_dir / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / f.path, target)


def _remove(out_dir: Path, paths: tuple[str, ...]) -> None:
    """Remove ``paths`` and the folders they leave empty (never ``out_dir`` itself)."""
    for path in paths:
        target = out_dir / path
        target.unlink(missing_ok=True)
        folder = target.parent
        while folder != out_dir:
            try:
                folder.rmdir()  # an empty folder only
            except OSError:
                break
            folder = folder.parent


def diff(out_dir: Path, files: Iterable[OutputFile], targets: tuple[str, ...] = ENGINES) -> tuple[str, Plan]:
    """Unified diff from what is on disk to what a compile would leave there ("" when identical):
    the files, those it would remove (a diff to /dev/null) and the manifest; and the plan
    (``edited``: stale files a compile would leave in place, which are drift too)."""
    files = list(files)
    todo = plan(out_dir, {f.path: digest(f.text) for f in files}, targets)
    chunks: list[str] = []
    for f in [*files, OutputFile(MANIFEST, todo.text)]:
        chunks += _changes(out_dir / f.path, f.text)
    for path in todo.remove:
        chunks += _changes(out_dir / path, None)
    return "".join(chunks), todo


def _changes(target: Path, new: str | None) -> list[str]:
    """The unified diff from ``target`` on disk (if any) to ``new`` (None: removed)."""
    old = target.read_text(encoding="utf-8", errors="replace") if target.is_file() else None
    if old == new:
        return []
    return list(difflib.unified_diff(
        (old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
        fromfile="/dev/null" if old is None else str(target), tofile="/dev/null" if new is None else str(target)))
