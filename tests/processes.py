"""Shared test helpers: whether the processes a run started are gone; a process's children; the
issue-23 app (tests/data/ux_app.py) running on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

UX_APP = Path(__file__).parent / "data" / "ux_app.py"


def gone(pid: int) -> bool:
    """Exited: no such process, or only a zombie left (its parent may be an init that never reaps)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(line.startswith("State:") and line.split()[1] in ("Z", "X") for line in status.splitlines())


def wait_gone(pids: list[int], timeout: float = 3.0) -> list[int]:
    """The pids still alive after waiting up to ``timeout`` seconds for all of them to go."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if not gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (entry / "stat").read_text() if entry.name.isdigit() else ""
            if text and int(text[text.rindex(")") + 2:].split()[1]) == pid and not gone(int(entry.name)):
                found.add(int(entry.name))
    return found


@contextlib.contextmanager
def ux_app() -> Iterator[str]:
    """tests/data/ux_app.py on a free loopback port (its URL), stopped by its PID."""
    proc = subprocess.Popen([sys.executable, str(UX_APP)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening "), line
        yield f"http://127.0.0.1:{line.split()[1]}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
