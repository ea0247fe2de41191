"""The manifest of a compile's output folder: the files ``cachewright compile -o DIR`` wrote there,
each with its SHA-256, so that a later compile removes those it no longer writes (njs turned
off, HTTPS dropped, a fleet node removed) and never any other file.

``DIR/.cachewright-manifest`` is written last, with the files (generator/output.py). Its lines
read like ``sha256sum``'s (``sha256sum -c .cachewright-manifest`` in DIR checks them). A listed
file is removed only when this compile does not write it, covers its target (``--target``:
``nginx/`` is nginx's, ``varnish/`` and ``hitch/`` Varnish's) and it still holds exactly what
cachewright wrote; one edited since is left in place, stays listed and is warned about on every
compile until it is removed or moved. A file the manifest does not list is never touched.
"""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import CachewrightError

MANIFEST = ".cachewright-manifest"
#: the folders holding each target's files (a fleet's under each node's folder)
FOLDERS = {"nginx": ("nginx",), "varnish": ("varnish", "hitch")}
HEADER = ("# Written by cachewright compile: the files it wrote here (SHA-256, path). A later compile\n"
          "# removes those it no longer writes, unless edited since; it never touches another file.\n")
_LINE = re.compile(r"([0-9a-f]{64})  (\S(?:.*\S)?)")


class ManifestError(CachewrightError):
    """The output directory's manifest cannot be read."""


@dataclass(frozen=True)
class Plan:
    """What a compile into a folder does beyond writing its files."""

    #: files an earlier compile wrote, unchanged since, that this one does not write: removed
    remove: tuple[str, ...]
    #: such files edited since cachewright wrote them: left in place (and still listed)
    edited: tuple[str, ...]
    #: the manifest to write
    text: str


def digest(text: str | bytes) -> str:
    """The SHA-256 of a generated file as written (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def manifest_text(entries: dict[str, str]) -> str:
    """The manifest listing ``entries`` (path → digest), sorted by path."""
    return HEADER + "".join(f"{entries[path]}  {path}\n" for path in sorted(entries))


def plan(out_dir: Path, written: dict[str, str], targets: tuple[str, ...]) -> Plan:
    """What compiling files for ``targets`` into ``out_dir`` removes, leaves, and lists;
    ``written``: the compile's files (path → digest)."""
    entries = dict(written)
    remove: list[str] = []
    edited: list[str] = []
    for path, recorded in read(out_dir).items():
        if path in entries:
            continue
        state = _state(out_dir, path, recorded)
        if state == "gone":
            continue
        entries[path] = recorded  # until removed: listed (another target's file, or edited)
        if _in_scope(path, targets):
            (remove if state == "ours" else edited).append(path)
    for path in remove:
        del entries[path]
    return Plan(tuple(remove), tuple(edited), manifest_text(entries))


def read(out_dir: Path) -> dict[str, str]:
    """The manifest's entries (path → digest); none where there is no manifest. A line that is
    not an entry of a relative path inside the folder is passed over: it never removes a file."""
    try:
        text = (out_dir / MANIFEST).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ManifestError(f"{out_dir / MANIFEST}: cannot read: {exc.strerror}") from None
    entries = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line)
        if match and _relative(match.group(2)):
            entries[match.group(2)] = match.group(1)
    return entries


def _relative(path: str) -> bool:
    """A plain relative path below the folder (no ``..``, ``.``, empty or absolute parts)."""
    pure = PurePosixPath(path)
    return (not pure.is_absolute() and pure.as_posix() == path and ".." not in pure.parts
            and path != MANIFEST and "\\" not in path)


def _in_scope(path: str, targets: tuple[str, ...]) -> bool:
    """A file of one of ``targets`` (by its folder), or of no target's folder."""
    folder = PurePosixPath(path).parent.name
    owners = [target for target, folders in FOLDERS.items() if folder in folders]
    return not owners or any(target in targets for target in owners)


def _state(out_dir: Path, path: str, recorded: str) -> str:
    """``gone`` (no such file), ``ours`` (a regular file holding what cachewright wrote), or
    ``edited`` (anything else: changed, replaced by a link or a folder, unreadable, or reached
    through a linked folder outside ``out_dir``)."""
    target = out_dir / path
    try:
        held = target.lstat()
        inside = target.parent.resolve().is_relative_to(out_dir.resolve())
        if not (stat.S_ISREG(held.st_mode) and inside):
            return "edited"
        data = target.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return "gone"
    except OSError:
        return "edited"
    return "ours" if hashlib.sha256(data).hexdigest() == recorded else "edited"
