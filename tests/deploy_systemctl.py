#!/usr/bin/python3
"""A stand-in ``systemctl`` for tests/test_deploy.py: systemd does not run in a plain container.

Copied into the Debian test container as ``/usr/local/sbin/systemctl``, it lets the shell blocks
of docs/deploy.md run verbatim. It reads a unit the way systemd does — the packaged file
(``/lib/systemd/system/NAME.service``, or a whole replacement in ``/etc/systemd/system``), then
the drop-ins (``NAME.service.d/*.conf``, in file-name order), where an empty ``ExecStart=``
resets the list — and runs the resulting ``ExecStartPre``/``ExecStart``/``ExecReload``/
``ExecStop`` command lines itself. So the test proves that the command lines of the drop-ins
the guide writes start the engines.

What it does not emulate is refused rather than skipped (an unknown ``[Service]`` key, a ``%``
specifier other than ``%%``, an environment variable other than ``$MAINPID``), except the
sandboxing and resource keys listed in IGNORED, which cannot change whether a command line
works. Supported: ``daemon-reload``, ``start``, ``stop``, ``restart``, ``reload``,
``enable|disable [--now]``, ``is-active`` and ``cat``; ``Type=`` simple and forking.
Runs inside the container under Debian 12's python3 (3.11), standard library only.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"))
STATE = Path("/run/deploy-systemctl")  # main pids and logs of the units this stand-in started
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop")
# Keys of the Debian units that restrict or size the service but never change its command line.
IGNORED = frozenset({"LimitNOFILE", "LimitMEMLOCK", "ProtectSystem", "ProtectHome", "PrivateTmp",
                     "PrivateDevices", "Restart", "TimeoutStopSec", "KillMode"})
FORK_TIMEOUT = 30.0  # seconds a forking ExecStart may take to exit
STOP_TIMEOUT = 10.0


class UnitError(Exception):
    """The unit cannot be read or run here; the message says why."""


@dataclass
class Unit:
    """A service's effective [Service] settings after its drop-ins."""

    name: str
    files: list[Path]
    type: str = "simple"
    pid_file: str | None = None
    commands: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in EXEC_KEYS})


def logical_lines(text: str) -> list[str]:
    """The unit file's lines with backslash continuations joined (systemd.syntax)."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def unit_files(name: str) -> list[Path]:
    """The unit file, then its drop-ins ordered by file name (an /etc file hides a /lib one)."""
    main = next((d / f"{name}.service" for d in UNIT_DIRS if (d / f"{name}.service").is_file()), None)
    if main is None:
        raise UnitError(f"Unit {name}.service could not be found.")
    dropins: dict[str, Path] = {}
    for d in reversed(UNIT_DIRS):
        for conf in sorted((d / f"{name}.service.d").glob("*.conf")):
            dropins[conf.name] = conf
    return [main, *(dropins[k] for k in sorted(dropins))]


def load(name: str) -> Unit:
    """Read the unit and apply its drop-ins, as systemd would."""
    unit = Unit(name, unit_files(name))
    for path in unit.files:
        section = ""
        for line in logical_lines(path.read_text()):
            if line.startswith("["):
                section = line
            elif section == "[Service]":
                key, _, value = line.partition("=")
                apply(unit, key.strip(), value.strip(), path)
    return unit


def apply(unit: Unit, key: str, value: str, path: Path) -> None:
    """One [Service] assignment; an empty Exec*= resets that list."""
    if key in EXEC_KEYS:
        if value:
            unit.commands[key].append(value)
        else:
            unit.commands[key].clear()
    elif key == "Type":
        if value not in ("simple", "forking"):
            raise UnitError(f"{path}: Type={value} is not emulated")
        unit.type = value
    elif key == "PIDFile":
        unit.pid_file = value
    elif key not in IGNORED:
        raise UnitError(f"{path}: {key}= is not emulated")


def argv(command: str, main_pid: int | None) -> tuple[list[str], bool]:
    """A command line's words, and whether its failure is ignored (the ``-`` prefix)."""
    prefixes = command[:len(command) - len(command.lstrip("-@+!:"))]
    if "@" in prefixes:
        raise UnitError(f"{command}: the @ prefix is not emulated")
    ignore, command = "-" in prefixes, command[len(prefixes):]
    if re.search(r"%[^%]", command.replace("%%", "")):
        raise UnitError(f"{command}: specifiers other than %% are not emulated")
    words = shlex.split(command.replace("%%", "%"))
    out = []
    for word in words:
        if word in ("$MAINPID", "${MAINPID}"):
            word = str(main_pid or "")
        elif "$" in word:
            raise UnitError(f"{command}: only $MAINPID is emulated")
        out.append(word)
    return out, ignore


def run_all(unit: Unit, key: str) -> None:
    """Run every command of ``key`` in order; a failure stops, unless the line says ``-``."""
    for command in unit.commands[key]:
        words, ignore = argv(command, main_pid(unit))
        done = subprocess.run(words, stdin=subprocess.DEVNULL, timeout=FORK_TIMEOUT, check=False)
        if done.returncode != 0 and not ignore:
            raise UnitError(f"{unit.name}.service: {key} failed ({done.returncode}): {command}")


def main_pid(unit: Unit) -> int | None:
    """The running main process, or None."""
    path = STATE / f"{unit.name}.pid"
    if not path.is_file():
        return None
    pid = int(path.read_text())
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def start(unit: Unit) -> None:
    """ExecStartPre, ExecStart (detached, or until it forks away), ExecStartPost."""
    if main_pid(unit) is not None:
        return
    STATE.mkdir(parents=True, exist_ok=True)
    run_all(unit, "ExecStartPre")
    if len(unit.commands["ExecStart"]) != 1:
        raise UnitError(f"{unit.name}.service: {len(unit.commands['ExecStart'])} ExecStart= lines, want 1")
    words, _ = argv(unit.commands["ExecStart"][0], None)
    pid = spawn(unit, words) if unit.type == "simple" else fork(unit, words)
    (STATE / f"{unit.name}.pid").write_text(str(pid))
    run_all(unit, "ExecStartPost")


def spawn(unit: Unit, words: list[str]) -> int:
    """Type=simple: the started process is the service; its output goes to a log here."""
    with open(STATE / f"{unit.name}.log", "ab") as log:
        proc = subprocess.Popen(words, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    time.sleep(0.3)
    if proc.poll() is not None:
        raise UnitError(f"{unit.name}.service: exited at once ({proc.returncode}); see "
                        f"{STATE / unit.name}.log:\n{(STATE / f'{unit.name}.log').read_text()[-2000:]}")
    return proc.pid


def fork(unit: Unit, words: list[str]) -> int:
    """Type=forking: ExecStart exits once the daemon runs; PIDFile= names the daemon."""
    done = subprocess.run(words, stdin=subprocess.DEVNULL, timeout=FORK_TIMEOUT, check=False)
    if done.returncode != 0:
        raise UnitError(f"{unit.name}.service: ExecStart failed ({done.returncode})")
    if unit.pid_file is None:
        raise UnitError(f"{unit.name}.service: Type=forking without PIDFile= is not emulated")
    pid_file = Path(unit.pid_file)
    deadline = time.monotonic() + FORK_TIMEOUT
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not pid_file.is_file():  # what systemd reports as a "protocol" failure
        raise UnitError(f"{unit.name}.service: PID file {pid_file} not written by the daemon")
    return int(pid_file.read_text().strip())


def stop(unit: Unit) -> None:
    """ExecStop if any, then SIGTERM to whatever of the main process is left."""
    pid = main_pid(unit)
    if pid is None:
        return
    run_all(unit, "ExecStop")
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        raise UnitError(f"{unit.name}.service: pid {pid} still running {STOP_TIMEOUT:.0f} s after stop")
    (STATE / f"{unit.name}.pid").unlink()


def reload(unit: Unit) -> None:
    """ExecReload, with $MAINPID; systemd refuses it for a unit that is not running."""
    if main_pid(unit) is None:
        raise UnitError(f"{unit.name}.service is not active, cannot reload.")
    run_all(unit, "ExecReload")


def show(unit: Unit) -> None:
    """``systemctl cat``: every file that makes up the unit."""
    for path in unit.files:
        print(f"# {path}\n{path.read_text()}")


def dispatch(verb: str, now: bool, names: list[str]) -> int:
    """Run one verb on each named unit; the exit status systemctl would give."""
    status = 0
    for name in (n.removesuffix(".service") for n in names):
        unit = load(name)
        if verb in ("start", "restart", "stop", "enable", "disable"):
            if verb in ("stop", "restart") or (verb == "disable" and now):
                stop(unit)
            if verb in ("start", "restart") or (verb == "enable" and now):
                start(unit)
        elif verb == "reload":
            reload(unit)
        elif verb == "cat":
            show(unit)
        elif verb == "is-active":
            active = main_pid(unit) is not None
            print("active" if active else "inactive")
            status = status or (0 if active else 3)
        else:
            raise UnitError(f"systemctl {verb} is not emulated")
    return status


def main(args: list[str]) -> int:
    """``systemctl [--now] VERB [UNIT...]``."""
    now = "--now" in args
    words = [a for a in args if a not in ("--now", "--quiet", "-q")]
    if not words:
        print("usage: systemctl VERB [UNIT...]", file=sys.stderr)
        return 2
    if words[0] == "daemon-reload":  # units are read afresh by every call
        return 0
    try:
        return dispatch(words[0], now, words[1:])
    except (UnitError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"systemctl (deploy test stand-in): {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
