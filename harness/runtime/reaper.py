"""Nothing outlives a local run: a marker file in each run directory names the process that owns
the run and the process groups it started; a watchdog process per run kills those groups and
removes the run's directories the moment the owner dies (even by SIGKILL); and the next run reaps
what a run left whose watchdog died too.

Processes are found from the marker, never by name: a process belongs to a dead run when its
process group is one the run recorded and that group's leader is still the recorded process (pid
and start time: a live leader pins the group id), or when its working directory is inside the
run's directories and it runs one of the run's binaries (an engine whose leader died first, or one
started in the instant before the run recorded it). A run whose owner is alive is never touched.

Why a watchdog rather than a parent-death signal on each engine: the signal reaches only the
process it is set on, and when the thread that forked it ends, not the process; and the engines'
own children do not follow their master. Measured here with SIGKILL of each leader alone: varnishd's
child and hitch's workers exit within 0.5 s, nginx's workers, cache manager and loader keep running.

Standard library only, and nothing from the package: the watchdog runs this file as a script
(``python -I -S reaper.py RUN_DIR``), started in a few milliseconds and independent of the harness.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUN_PREFIX = "cachewright-run-"
MARKER = "cachewright-run.json"
FORMAT = "cachewright-local-run"
KILL_TIMEOUT = 2.0
POLL_INTERVAL = 0.02


# --------------------------------------------------------------------------- /proc


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (``[0]`` state, ``[2]`` process group,
    ``[19]`` start time in clock ticks since boot); None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the command name may contain spaces


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): tells a reused pid apart."""
    fields = proc_stat(pid)
    return fields[19] if fields else None


def running(fields: list[str] | None) -> bool:
    """Whether a /proc stat says the process runs (exists and is not a zombie)."""
    return fields is not None and fields[0] not in ("Z", "X")


def boot_id() -> str:
    """This boot's id: a marker written before a reboot names an owner that is gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _link(pid: int, name: str) -> str:
    """``/proc/PID/cwd`` or ``exe`` ("" where it cannot be read), without " (deleted)"."""
    try:
        return os.readlink(f"/proc/{pid}/{name}").removesuffix(" (deleted)")
    except OSError:
        return ""


# --------------------------------------------------------------------------- the marker


@dataclass(frozen=True)
class Owner:
    """The process that owns a run: pid, its start time, the boot and the host it ran on."""

    pid: int
    start: str
    boot: str
    host: str

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        pid = os.getpid()
        return cls(pid, start_time(pid) or "", boot_id(), socket.gethostname())

    def dead(self) -> bool:
        """Whether the owner is gone (judged only on the host that wrote it)."""
        if self.host != socket.gethostname():
            return False
        return self.boot != boot_id() or start_time(self.pid) != self.start


@dataclass(frozen=True)
class Group:
    """A process group the run started: its id is its leader's pid; ``start`` the leader's."""

    pgid: int
    start: str


@dataclass
class Marker:
    """What a run's marker file (``cachewright-run.json`` in the run directory) records."""

    owner: Owner
    workdir: str
    binaries: list[str]
    groups: list[Group] = field(default_factory=list)
    watchdog: int | None = None

    def save(self, run_dir: Path) -> None:
        """Write the marker atomically (a reader sees the old one or the new one, never half)."""
        data = {"format": FORMAT, **asdict(self)}
        temp = run_dir / f".{MARKER}.tmp"
        temp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(temp, run_dir / MARKER)

    def add(self, run_dir: Path, pid: int) -> None:
        """Record the group that process ``pid`` leads."""
        self.groups.append(Group(pid, start_time(pid) or ""))
        self.save(run_dir)

    @classmethod
    def load(cls, run_dir: Path) -> Marker | None:
        """The marker of ``run_dir``; None when it has none that cachewright wrote."""
        try:
            data = json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
            return cls._from(data) if data.get("format") == FORMAT else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    @classmethod
    def _from(cls, data: dict[str, Any]) -> Marker:
        return cls(Owner(**data["owner"]), str(data["workdir"]), [str(b) for b in data["binaries"]],
                   [Group(**g) for g in data["groups"]], data.get("watchdog"))


# --------------------------------------------------------------------------- killing and removing


def run_processes(run_dir: Path, marker: Marker) -> tuple[set[int], set[int]]:
    """(groups, pids): the run's recorded groups whose leader is still the recorded process (to
    signal whole: a live leader pins the group id), and the other running processes whose working
    directory is inside the run's directories and that run one of its binaries (members of a group
    whose leader died, or an engine started in the instant before the run recorded it)."""
    groups = {g.pgid for g in marker.groups if running(proc_stat(g.pgid)) and start_time(g.pgid) == g.start}
    places = (str(run_dir), marker.workdir)
    loose = set()
    for entry in Path("/proc").iterdir():
        fields = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is None or not running(fields) or int(fields[2]) in groups:
            continue
        pid = int(entry.name)
        if _inside(_link(pid, "cwd"), places) and _link(pid, "exe") in marker.binaries:
            loose.add(pid)
    return groups, loose


def _inside(path: str, places: tuple[str, ...]) -> bool:
    return bool(path) and any(path == p or path.startswith(p.rstrip("/") + "/") for p in places)


def kill_run(run_dir: Path, marker: Marker, timeout: float = KILL_TIMEOUT) -> set[int]:
    """SIGKILL every process of the run until none is left or ``timeout`` passes; the pids still
    running then (none, unless a process cannot be killed). One more look after a pause catches
    an engine that was between fork and exec when the run died."""
    deadline = time.monotonic() + timeout
    settled = False
    while True:
        groups, loose = run_processes(run_dir, marker)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for pid in loose:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not groups and not loose and settled:
            return set()
        if time.monotonic() >= deadline:
            return groups | loose
        settled = not groups and not loose
        time.sleep(POLL_INTERVAL if not settled else 5 * POLL_INTERVAL)


def remove_run(run_dir: Path, workdir: Path) -> None:
    """Remove the run's Varnish workdir, then the run directory with its marker last, so that an
    interrupted removal leaves a marked directory the next run reaps. Safe to run twice at once."""
    if not workdir.is_relative_to(run_dir):
        _remove_tree(workdir)
    with contextlib.suppress(FileNotFoundError):
        for child in run_dir.iterdir():
            if child.name != MARKER:
                _remove_tree(child)
    with contextlib.suppress(FileNotFoundError):
        (run_dir / MARKER).unlink()
    with contextlib.suppress(FileNotFoundError):
        run_dir.rmdir()


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # another reaper may be removing it too
        if path.exists():  # not for that reason: once more, to raise what stops it
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def reap_run(run_dir: Path) -> bool:
    """Kill what the run in ``run_dir`` left running and remove its directories (the caller
    knows its owner is gone). False when ``run_dir`` has no marker: only its removal is left."""
    marker = Marker.load(run_dir)
    if marker is None:
        _remove_tree(run_dir)
        return False
    kill_run(run_dir, marker)
    remove_run(run_dir, Path(marker.workdir))
    return True


def reap(temp: Path | None = None) -> list[Path]:
    """Reap every run in ``temp`` (the temp dir) whose marker names an owner that is gone; the
    run directories reaped. Runs of live owners, and directories without cachewright's marker,
    are left alone; a run that cannot be reaped (another user's) is skipped."""
    reaped = []
    for run_dir in sorted(Path(temp or tempfile.gettempdir()).glob(f"{RUN_PREFIX}*")):
        marker = Marker.load(run_dir)
        if marker is None or not marker.owner.dead():
            continue
        with contextlib.suppress(OSError):
            kill_run(run_dir, marker)
            remove_run(run_dir, Path(marker.workdir))
            reaped.append(run_dir)
    return reaped


# --------------------------------------------------------------------------- the watchdog


class Watchdog:
    """The process that reaps a run as soon as its owner dies: it waits for the end of its stdin,
    a pipe whose only writer is the owner, which the kernel closes however the owner ends. In its
    own session, so a signal to the harness's process group (a terminal's, a CI runner's) spares it."""

    def __init__(self, run_dir: Path) -> None:
        self.popen = subprocess.Popen([sys.executable, "-I", "-S", __file__, str(run_dir)],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)

    @property
    def pid(self) -> int:
        """The watchdog's pid."""
        return self.popen.pid

    def close(self, timeout: float = 5.0) -> None:
        """The run is over and cleaned up: let the watchdog go (it reaps whatever is left)."""
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def watch(run_dir: Path) -> int:
    """The watchdog's body: block until stdin ends, then reap the run in ``run_dir``."""
    for signum in (signal.SIGINT, signal.SIGHUP):  # not the harness's terminal or session
        signal.signal(signum, signal.SIG_IGN)
    while os.read(0, 4096):
        pass
    reap_run(run_dir)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} RUN_DIR (the watchdog of a local cachewright run)")
    sys.exit(watch(Path(sys.argv[1])))
