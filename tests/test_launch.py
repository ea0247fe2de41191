"""The console script pauses the garbage collector before its imports; a brief command runs
without it, a long one (here ``replay``) gets it back once its name is parsed."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachewright.harness.cli import main

POLICY = Path(__file__).resolve().parents[1] / "examples" / "static-site" / "policy.yaml"


@pytest.fixture
def paused() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_brief_command_keeps_it_paused(paused: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capabilities"], collector_paused=True) == 0
    assert not gc.isenabled()


def test_a_long_command_resumes_it(paused: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(POLICY), str(tmp_path / "missing.log")], collector_paused=True) == 2
    assert gc.isenabled()


def test_not_launched_it_is_left_alone(paused: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(POLICY), str(tmp_path / "missing.log")]) == 2
    assert not gc.isenabled()  # a caller's own setting (the pytest plugin, a script) is theirs


def test_the_module_runs_through_launch() -> None:
    probe = ("import gc, runpy, sys; sys.argv = ['cachewright', 'schema'];\n"
             "import cachewright.harness.cli as cli\n"
             "seen = []\n"
             "real = cli.main\n"
             "cli.main = lambda *a, **k: seen.append((gc.isenabled(), k)) or 0\n"
             "try:\n    runpy.run_module('cachewright.harness', run_name='__main__')\n"
             "except SystemExit: pass\n"
             "print(seen)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[(False, {'collector_paused': True})]"
