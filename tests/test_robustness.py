"""Harness robustness: what a run reports, and what it leaves behind, when the environment fails.

Covered elsewhere, not repeated here:

- a port already taken: ``tests/test_local_runtime.py::test_port_taken_fails_with_what_was_awaited_and_logs``;
- an engine binary missing: ``tests/test_local_runtime.py::test_missing_engine_names_the_package``
  (and ``test_missing_hitch_for_https``);
- Ctrl-C / SIGTERM to the harness: ``tests/test_local_runtime.py::test_signal_to_the_harness_leaves_nothing_behind``.

Here: an engine crashing mid-run (the whole nginx process group killed, and the master alone, which
leaves its workers serving), and the Docker daemon gone.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from pathlib import Path

import pytest
from processes import wait_gone

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.harness.checks import derive, run_checks, select
from cachewright.harness.cli import main
from cachewright.harness.report.results import CheckResult
from cachewright.harness.runtime.api import HarnessError
from cachewright.harness.runtime.local import LocalRuntime, LocalStack

ENGINES = ("nginx", "varnish")
POLICY = """
version: 1
name: robust
origin: {url: http://app:8000}
listen:
  http: {port: 80}
cache:
  default_ttl: 1m
"""
CHECKS = ("defaults.authorization", "defaults.path-guard")
NO_DOCKER = "unix:///nonexistent.sock"


def policy() -> Policy:
    return loads(POLICY, "robust.yaml")


def _crash_run(kill_group: bool) -> tuple[list[CheckResult], bool, list[int], Path]:
    """Start both engines, kill nginx (its whole process group, or the master alone), run two
    checks; returns the results, whether nginx counted as alive, every pid, and the run dir."""
    pol = policy()
    checks = select(derive(pol), list(CHECKS))
    with LocalRuntime().start(pol, ENGINES) as stack:
        assert isinstance(stack, LocalStack)
        pids = [pid for engine in ENGINES for pid in stack.pids(engine)]
        master = stack.engines["nginx"].procs[0].pid
        if kill_group:
            os.killpg(master, signal.SIGKILL)
        else:
            os.kill(master, signal.SIGKILL)
        deadline = time.monotonic() + 3
        while stack.alive("nginx") and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = stack.alive("nginx")
        results = run_checks(checks, stack, pol, ENGINES)
        run_dir = stack.run_dir
    return results, alive, pids, run_dir


@pytest.mark.engine
def test_engine_crash_fails_its_checks_and_cleanup_leaves_nothing() -> None:
    results, alive, pids, run_dir = _crash_run(kill_group=True)
    assert not alive
    nginx = [r for r in results if r.engine == "nginx"]
    varnish = [r for r in results if r.engine == "varnish"]
    assert nginx and all(r.outcome == "failed" for r in nginx)
    assert all(any(d.startswith("nginx log:") for d in r.details) for r in nginx)
    assert all(r.outcome == "passed" for r in varnish), [r.message for r in varnish]
    assert not run_dir.exists()
    assert not wait_gone(pids)


@pytest.mark.engine
def test_master_killed_alone_its_orphaned_workers_are_stopped_at_cleanup() -> None:
    """nginx's workers outlive a killed master and keep serving; the runtime stops them all the
    same (they share the master's process group)."""
    results, alive, pids, run_dir = _crash_run(kill_group=False)
    assert not alive
    assert not run_dir.exists()
    assert not wait_gone(pids), "processes of the run outlived it"
    assert {r.engine for r in results} == set(ENGINES)


@pytest.mark.engine
def test_crash_message_names_the_engine() -> None:
    results, _, _, _ = _crash_run(kill_group=True)
    messages = {r.message for r in results if r.engine == "nginx"}
    assert messages == {"nginx is not running (it exited during the run)"}


@pytest.mark.engine
def test_dead_master_with_serving_workers_is_reported() -> None:
    """A killed nginx master leaves workers that keep answering: its checks fail all the same."""
    results, _, _, _ = _crash_run(kill_group=False)
    nginx = [r for r in results if r.engine == "nginx"]
    assert nginx and all(r.outcome == "failed" for r in nginx), [r.message for r in nginx]
    assert {r.message for r in nginx} == {"nginx is not running (it exited during the run)"}


def test_docker_daemon_gone_is_a_harness_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cachewright.harness.runtime.docker import connect

    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    with pytest.raises(HarnessError, match=r"no Docker engine answers \(DOCKER_HOST=unix:///"
                       r"nonexistent\.sock\)") as raised:
        connect()
    assert raised.value.exit_code == 3
    gc.collect()  # a leaked socket would be reported here (filterwarnings=error), not later


def test_docker_daemon_gone_exits_3_with_a_message(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    path = tmp_path / "robust.yaml"
    path.write_text(POLICY, encoding="utf-8")
    assert main(["test", str(path), "--runtime", "docker"]) == 3
    err = capsys.readouterr().err
    assert "no Docker engine answers" in err and NO_DOCKER in err
    assert "Traceback" not in err
    gc.collect()  # as above
