"""Process supervision for the local runtime: spawn engines in their own process groups, wait for
their listeners with a deadline, stop them by process group (SIGTERM, then SIGKILL), and turn
SIGTERM/SIGHUP into an exception so the same cleanup runs as for Ctrl-C.

Nothing here finds processes by name: every signal goes to a process group this module started.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeAlias

from .api import HarnessError
from .reaper import proc_stat, running

POLL_INTERVAL = 0.05
STOP_TIMEOUT = 5.0
_HANDLED = (signal.SIGTERM, signal.SIGHUP)
_DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None  # what getsignal gives


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the harness. A ``KeyboardInterrupt`` so that whatever runs the
    cleanup for Ctrl-C runs it for these too; ``signum`` says which signal it was."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class Proc:
    """One engine process started by the harness: the leader of its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The leader's PID, which is also the process group id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the leader is still running (not exited, not a zombie)."""
        return self.popen.poll() is None

    def members(self) -> list[int]:
        """Every live process of the group (the leader and, e.g., nginx's workers)."""
        return group_members(self.pid)


# --------------------------------------------------------------------------- start & stop


def spawn(name: str, argv: Sequence[str], log: Path, cwd: Path, register: list[Proc],
          on_start: Callable[[Proc], None] | None = None) -> Proc:
    """Start ``argv`` in a new session (its own process group, no controlling terminal, so a
    terminal's Ctrl-C reaches only the harness), stdout and stderr appended to ``log``, and
    append it to ``register`` and pass it to ``on_start`` (e.g. to record it in the run's marker)
    before any signal can interrupt (so the cleanup always sees it)."""
    with deferred_signals(), open(log, "ab") as out:
        popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        register.append(Proc(name, popen, log))
        if on_start is not None:
            on_start(register[-1])
    return register[-1]


def stop_all(procs: Sequence[Proc], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every group, wait up to ``timeout`` for all of them, then SIGKILL what is left;
    every leader is reaped. Safe to call more than once."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        _wait_group(proc, deadline)
    for proc in procs:
        if proc.alive() or proc.members():
            _signal_group(proc, signal.SIGKILL)
            _wait_group(proc, time.monotonic() + timeout)


def _signal_group(proc: Proc, signum: int) -> None:
    # Only while the group still has members: then its id cannot have been reused.
    if proc.alive() or proc.members():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)


def _wait_group(proc: Proc, deadline: float) -> None:
    """Reap the leader and wait for the rest of its group, until ``deadline``."""
    while time.monotonic() < deadline:
        proc.popen.poll()
        if not proc.alive() and not proc.members():
            return
        time.sleep(POLL_INTERVAL)


def group_members(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes whose process group is ``pgid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and running(fields) and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


# --------------------------------------------------------------------------- readiness


def wait_listening(proc: Proc, host: str, port: int, deadline: float,
                   logs: Callable[[], str]) -> None:
    """Wait until ``proc``'s group accepts TCP connections on ``host:port``; raise HarnessError
    naming what was awaited, with ``logs()``, when ``proc`` exits or ``deadline`` passes.

    A connection alone is not proof (another program may hold the port), so the listening
    socket must also be one of the group's open files."""
    what = f"{proc.name} (pid {proc.pid}) to listen on {host}:{port}"
    while True:
        if not proc.alive():
            raise HarnessError(f"gave up waiting for {what}: it exited with status "
                               f"{proc.popen.returncode}\n{logs()}")
        if owns_listener(proc.pid, port) and accepts(host, port):
            return
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out waiting for {what}\n{logs()}")
        time.sleep(POLL_INTERVAL)


def accepts(host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def owns_listener(pgid: int, port: int) -> bool:
    """Whether a process of group ``pgid`` holds a socket listening on TCP ``port``."""
    inodes = listening_inodes(port)
    if not inodes:
        return False
    for pid in group_members(pgid):
        if inodes & _socket_inodes(pid):
            return True
    return False


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets in LISTEN state on TCP ``port`` (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                    inodes.add(inode)
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


#: the lowest port ``free_ports`` draws from; the highest is below the kernel's ephemeral range
LISTEN_PORTS_FROM = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now (all bound at once, so
    they differ, then released for the engines to bind). They are drawn at random below the
    kernel's ephemeral port range: a free port from that range (what binding port 0 gives) may
    become the source port of any outgoing connection before the engine binds it, and the engine
    then fails to listen. Where there is no room below the range, the kernel picks (port 0)."""
    high = _ephemeral_low()
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for attempt in range(count + 200):
            if len(ports) == count:
                break
            port = random.randrange(LISTEN_PORTS_FROM, high) if high - LISTEN_PORTS_FROM > 1000 and attempt < 200 else 0
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind((host, port))
            except OSError:
                continue
            ports.append(sock.getsockname()[1])
        if len(ports) < count:
            raise HarnessError(f"could not find {count} free ports on {host}")
        return ports


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where it cannot be read)."""
    try:
        return int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of ``path`` ("" when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


# --------------------------------------------------------------------------- signals


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise ``Terminated`` in the main thread (where they are still at
    their default: an application's own handlers are kept). Returns a function that restores
    the previous handlers. Does nothing outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in _HANDLED}
    for signum, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(signum, _raise_terminated)
    return lambda: _restore(previous)


def _restore(previous: Mapping[signal.Signals, _Handler]) -> None:
    for signum, handler in previous.items():
        # None: a handler not set from Python, which cannot be put back; the default is closest
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """``install_signal_handlers`` for the duration of a ``with`` block."""
    restore = install_signal_handlers()
    try:
        yield
    finally:
        restore()


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while the block runs (so a second Ctrl-C cannot cut a cleanup
    short), then act on the first one that arrived as the restored handler would."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {s: signal.getsignal(s) for s in _DEFERRED}
    for signum in _DEFERRED:
        signal.signal(signum, lambda s, _f: arrived.append(s))
    try:
        yield
    finally:
        _restore(previous)
        if arrived:
            signal.raise_signal(arrived[0])
