"""OLD and NEW as ``diff`` takes them: a policy file, or ``REV:path`` from git.

``REV:path`` is read with ``git show REV:path`` in the repository that holds the current
directory (``path`` from the repository's top, or ``./path`` from the current directory, as git
reads it). The policy is loaded as if it were the working tree's file at that path, so relative
paths inside it (TLS files, a CA) resolve beside that file; its messages name ``REV:path``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

from cachewright.generator.errors import PolicyError, UsageError
from cachewright.generator.load import load, loads
from cachewright.generator.model import Policy

GIT_TIMEOUT = 30.0


def load_side(spec: str) -> Policy:
    """The policy ``spec`` names: a file when one exists there, else ``REV:path``."""
    if Path(spec).exists() or ":" not in spec:
        if not Path(spec).is_file():
            raise UsageError(f"{spec}: no such policy file (or give REV:path, e.g. HEAD~1:policy.yaml)")
        return load(spec)
    rev, _, path = spec.partition(":")
    if not rev or not path:
        raise UsageError(f"{spec}: expected a policy file or REV:path (e.g. HEAD~1:policy.yaml)")
    text = _git("show", spec)
    worktree = _worktree_path(path)
    try:
        return loads(text, str(worktree))
    except PolicyError as exc:
        raise PolicyError([replace(p, file=spec) if p.file == str(worktree) else p
                           for p in exc.problems]) from None


def _worktree_path(path: str) -> Path:
    """Where the working tree holds ``path`` (a path inside the policy resolves beside it)."""
    if path.startswith(("./", "../")):
        return Path(path)
    top = Path(_git("rev-parse", "--show-toplevel").decode().strip())
    return Path(os.path.relpath(top / path))


def _git(*args: str) -> bytes:
    """``git ARGS`` in the current directory: its output, or a usage error with git's message."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed (needed for REV:path)") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git {' '.join(args)} did not answer in {GIT_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"git {' '.join(args)}: {why[-1] if why else 'failed'}")
    return done.stdout
