"""Nothing outlives the harness: SIGKILL of ``cachewright test``, ``serve`` or ``compare`` while
it starts the engines, while its checks run, or while it stops, leaves no engine process after
2 s and no run directory after the next run; the next run reaps a killed run whose watchdog died
too; and the reaper touches only dead runs, found by cachewright's marker, never by name.

The processes of a run are those of the process groups its marker recorded and the children of
the killed harness (an engine started in the instant before it was recorded), read before the kill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from processes import children, gone, wait_gone

from cachewright.generator.load import load
from cachewright.harness import ui
from cachewright.harness.runtime import reaper
from cachewright.harness.runtime.local import LocalRuntime, LocalStack, varnish_workdir
from cachewright.harness.runtime.procs import group_members
from cachewright.harness.runtime.reaper import MARKER, Marker, Owner

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop" / "policy.yaml"
STATIC = ROOT / "examples" / "static-site" / "policy.yaml"
CLI = [sys.executable, "-m", "cachewright.harness"]
GONE_WITHIN = 2.0  # the target: no engine process 2 s after the harness was killed
SHOP_GROUPS = 3  # nginx, varnishd, hitch


@pytest.fixture
def temp() -> Iterator[Path]:
    """A temp dir of the test's own for the runs (TMPDIR), which the engines' users can enter."""
    path = Path(tempfile.mkdtemp(prefix="cw-reaper-test-"))
    path.chmod(0o755)
    yield path
    for run_dir in path.glob("cachewright-run-*"):  # a failed test's leftovers
        _kill_recorded(run_dir)
        shutil.rmtree(varnish_workdir(run_dir), ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def _kill_recorded(run_dir: Path) -> None:
    marker = Marker.load(run_dir)
    for pid in _members(marker.groups if marker else []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _members(groups: list[reaper.Group]) -> set[int]:
    return {pid for group in groups for pid in group_members(group.pgid)}


def poll(probe: Callable[[], object], timeout: float, interval: float = 0.005) -> object:
    """``probe()`` once truthy, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(interval)
    return None


# --------------------------------------------------------------------------- a harness to kill


@dataclasses.dataclass
class Harness:
    """A ``cachewright`` command run with its own TMPDIR, and what it started, read before a kill."""

    popen: subprocess.Popen[str]
    temp: Path
    engines: set[int] = dataclasses.field(default_factory=set)
    run_dirs: set[Path] = dataclasses.field(default_factory=set)
    watchdogs: set[int] = dataclasses.field(default_factory=set)
    output: str = ""

    def markers(self) -> dict[Path, Marker]:
        return {d: m for d in self.temp.glob("cachewright-run-*") if (m := Marker.load(d)) is not None}

    def groups(self) -> int:
        """How many engine process groups the runs recorded so far."""
        return sum(len(m.groups) for m in self.markers().values())

    def snapshot(self) -> None:
        """Remember the runs' processes and directories: the watchdogs remove the markers."""
        for run_dir, marker in self.markers().items():
            self.run_dirs |= {run_dir, Path(marker.workdir)}
            self.engines |= _members(marker.groups)
            self.watchdogs |= {marker.watchdog} if marker.watchdog else set()
        self.engines |= {pid for child in children(self.popen.pid) - self.watchdogs
                         for pid in {child, *group_members(child)}}

    def kill(self, *also: int) -> float:
        """SIGKILL the harness (and ``also``) after a last snapshot; the time it was killed."""
        self.snapshot()
        for pid in (self.popen.pid, *also):
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        self.output = "".join(self.popen.communicate(timeout=10))
        return killed


@contextlib.contextmanager
def harness(temp: Path, *args: str) -> Iterator[Harness]:
    env = {**os.environ, "TMPDIR": str(temp)}
    popen = subprocess.Popen([*CLI, *args], cwd=ROOT, env=env, text=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield Harness(popen, temp)
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.communicate(timeout=10)


def assert_nothing_outlives(run: Harness, killed: float) -> None:
    """No engine process 2 s after the kill; no run directory after the next run's reaping."""
    assert run.engines, "the harness had started no engine when it was killed"
    left = wait_gone(sorted(run.engines), GONE_WITHIN - (time.monotonic() - killed))
    assert left == [], f"still running {GONE_WITHIN} s after SIGKILL: {left}"
    print(f"engines gone {time.monotonic() - killed:.3f} s after SIGKILL")
    reaper.reap(run.temp)  # what the next run does first
    assert [d for d in run.run_dirs if d.exists()] == []
    assert list(run.temp.iterdir()) == []


def checks_running(run: Harness) -> bool:
    """Wait for ``--trace``'s first line: a check sent a request. False if the harness ended."""
    assert run.popen.stderr is not None
    return any(line.startswith("trace ") for line in run.popen.stderr)


# --------------------------------------------------------------------------- SIGKILL at moments


@pytest.mark.engine
@pytest.mark.parametrize("groups", [1, 2], ids=["first-engine", "second-engine"])
def test_sigkill_while_starting_engines(temp: Path, groups: int) -> None:
    with harness(temp, "test", str(SHOP), "--no-scenarios") as run:
        assert poll(lambda: run.groups() >= groups, 30), "the engines were never started"
        killed = run.kill()
    assert_nothing_outlives(run, killed)


@pytest.mark.engine
def test_sigkill_mid_checks(temp: Path) -> None:
    with harness(temp, "test", str(SHOP), "--no-scenarios", "--trace") as run:
        assert checks_running(run), "no check ever sent a request"
        time.sleep(0.5)
        assert run.popen.poll() is None
        killed = run.kill()
    assert_nothing_outlives(run, killed)


@pytest.mark.engine
@pytest.mark.parametrize("args", [("test", str(SHOP), "--no-scenarios", "--checks", "rule.cart"),
                                  ("serve", str(SHOP), "--json")], ids=["test", "serve"])
def test_sigkill_while_stopping(temp: Path, args: tuple[str, ...]) -> None:
    """SIGKILL once the harness has stopped an engine, before it has removed the run directory:
    ``test`` at the end of a short run, ``serve`` after its SIGTERM. (A SIGTERM to ``test`` lets
    the checks already queued finish first, which takes as long as the checks.)"""
    with harness(temp, *args) as run:
        assert poll(lambda: run.groups() >= SHOP_GROUPS, 30), "the engines were never started"
        run.snapshot()
        leaders = {g.pgid for m in run.markers().values() for g in m.groups}
        if args[0] == "serve":
            assert run.popen.stdout is not None and run.popen.stdout.readline()
            run.popen.send_signal(signal.SIGTERM)
        assert poll(lambda: any(gone(pid) for pid in leaders), 30, 0.001), "no engine was stopped"
        mid_stop = [pid for pid in run.engines if not gone(pid)] and run.markers()
        killed = run.kill()
    assert mid_stop, "the harness had stopped everything before the SIGKILL landed"
    assert_nothing_outlives(run, killed)


@pytest.mark.engine
@pytest.mark.parametrize("ready", [False, True], ids=["starting", "serving"])
def test_sigkill_serve(temp: Path, ready: bool) -> None:
    with harness(temp, "serve", str(SHOP), "--json") as run:
        assert run.popen.stdout is not None
        started = run.popen.stdout.readline() if ready else poll(lambda: run.groups() >= 1, 30)
        assert started, "serve started nothing"
        killed = run.kill()
    assert_nothing_outlives(run, killed)


@pytest.mark.engine
def test_sigkill_compare_with_both_stacks_up(temp: Path) -> None:
    """compare runs two stacks (the generated configs and the baselines): both are cleaned up."""
    with harness(temp, "compare", str(SHOP), "--no-scenarios", "--rounds", "1",
                 "--duration", "1") as run:
        assert poll(lambda: run.groups() >= 2 * SHOP_GROUPS, 60, 0.05), "compare did not start both stacks"
        time.sleep(1.0)
        assert run.popen.poll() is None
        killed = run.kill()
    assert len({d for d in run.run_dirs if d.parent == temp}) == 2, run.output
    assert_nothing_outlives(run, killed)


@pytest.mark.engine
def test_next_run_reaps_a_run_whose_watchdog_died_too(temp: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """As when a whole cgroup is killed: the engines are left running, the next run reaps them."""
    with harness(temp, "serve", str(SHOP), "--json") as run:
        assert run.popen.stdout is not None and run.popen.stdout.readline()
        run.snapshot()
        run.kill(*run.watchdogs)
    assert wait_gone(sorted(run.watchdogs)) == []
    assert run.engines and wait_gone(sorted(run.engines), 0.5) == sorted(run.engines)
    leftover = {d for d in run.run_dirs if d.exists()}
    assert len(leftover) == 2, leftover  # the run directory and the Varnish workdir
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(ui, "level", ui.VERBOSE)
    with LocalRuntime().start(load(STATIC), ("nginx",)) as stack:
        assert wait_gone(sorted(run.engines), 0) == []
        assert {d for d in run.run_dirs if d.exists()} == set()
        assert isinstance(stack, LocalStack) and list(temp.iterdir()) == [stack.run_dir]
    (reaped,) = (d for d in run.run_dirs if d.parent == temp)
    assert f"reaped {reaped}: its harness was killed" in capsys.readouterr().err


# --------------------------------------------------------------------------- the reaper's judgement


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for popen in started:
        popen.kill()
        popen.wait()


def fake_run(temp: Path, owner: Owner, sleepers: list[subprocess.Popen[bytes]],
             record: bool = True) -> tuple[Path, subprocess.Popen[bytes]]:
    """A run directory with a marker, an "engine" (``sleep``) working in it, recorded or not."""
    run_dir = Path(tempfile.mkdtemp(prefix="cachewright-run-", dir=temp))
    sleep = shutil.which("sleep")
    assert sleep is not None
    engine = subprocess.Popen([sleep, "60"], cwd=run_dir, start_new_session=True)
    sleepers.append(engine)
    marker = Marker(owner, str(run_dir / "state"), [os.path.realpath(sleep)])
    marker.groups += [reaper.Group(engine.pid, reaper.start_time(engine.pid) or "")] if record else []
    marker.save(run_dir)
    return run_dir, engine


def dead_owner() -> Owner:
    """An owner that has exited: a child, with its start time read while it ran."""
    with subprocess.Popen(["sleep", "0.1"]) as child:
        start = reaper.start_time(child.pid) or ""
    return dataclasses.replace(Owner.current(), pid=child.pid, start=start)


def test_owner_is_dead_when_pid_boot_or_start_differs_but_not_on_another_host() -> None:
    me = Owner.current()
    assert not me.dead()
    assert dead_owner().dead()
    assert dataclasses.replace(me, start="1").dead()
    assert dataclasses.replace(me, boot="another-boot").dead()
    assert not dataclasses.replace(dead_owner(), host="another-host").dead()


def test_reap_kills_and_removes_only_dead_runs(sleepers: list[subprocess.Popen[bytes]]) -> None:
    with tempfile.TemporaryDirectory() as name:
        temp = Path(name)
        dead_dir, dead = fake_run(temp, dead_owner(), sleepers)
        live_dir, live = fake_run(temp, Owner.current(), sleepers)
        unmarked = temp / "cachewright-run-notours"
        unmarked.mkdir()
        assert reaper.reap(temp) == [dead_dir]
        assert dead.wait(timeout=GONE_WITHIN) == -signal.SIGKILL and not dead_dir.exists()
        assert live.poll() is None and (live_dir / MARKER).is_file() and unmarked.is_dir()


def test_reap_finds_an_unrecorded_engine_by_directory_and_binary(sleepers: list[subprocess.Popen[bytes]]) -> None:
    """An engine started in the instant before its run recorded it: working in the run's directory
    and running one of its binaries. Another program working there is left alone."""
    with tempfile.TemporaryDirectory() as name:
        run_dir, engine = fake_run(Path(name), dead_owner(), sleepers, record=False)
        bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=run_dir)
        sleepers.append(bystander)
        assert reaper.reap(Path(name)) == [run_dir]
        assert engine.wait(timeout=GONE_WITHIN) == -signal.SIGKILL
        assert bystander.poll() is None


def test_removal_keeps_the_marker_to_the_last(tmp_path: Path) -> None:
    run_dir, workdir = tmp_path / "cachewright-run-x", tmp_path / "shm-x"
    for path in (run_dir / "nginx" / "cache", workdir):
        path.mkdir(parents=True)
    Marker(Owner.current(), str(workdir), []).save(run_dir)
    removed: list[str] = []
    real = reaper._remove_tree

    def remove_tree(path: Path) -> None:
        removed.append(path.name)
        assert (run_dir / MARKER).is_file()
        real(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reaper, "_remove_tree", remove_tree)
        reaper.remove_run(run_dir, workdir)
    assert removed == ["shm-x", "nginx"] and not run_dir.exists() and not workdir.exists()
    reaper.remove_run(run_dir, workdir)  # twice (the watchdog after the harness): no error
