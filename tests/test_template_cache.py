"""The compiled-template cache: in the user's cache folder, never in the temporary directory,
and passed over where the folder is not private."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cachewright.generator import render

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "static-site" / "policy.yaml"


def test_a_compile_keeps_templates_in_the_cache_folder_and_leaves_tmp_empty(tmp_path: Path) -> None:
    temp, cache, out = tmp_path / "tmp", tmp_path / "xdg", tmp_path / "out"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "XDG_CACHE_HOME": str(cache)}
    argv = [sys.executable, "-m", "cachewright.harness", "compile", str(EXAMPLE), "-o", str(out)]
    for _ in range(2):  # the second run reads the entries the first wrote
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert list(temp.iterdir()) == []
    entries = list((cache / "cachewright" / "templates").iterdir())
    assert entries and all(e.name.startswith("__jinja2_") for e in entries)
    assert (cache / "cachewright" / "templates").stat().st_mode & 0o777 == 0o700


def test_a_folder_others_may_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cachewright" / "templates"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert render.cache_folder() == folder
    assert render.template_cache() is None
    folder.chmod(0o700)
    assert isinstance(render.template_cache(), render.TemplateCache)


def test_no_folder_to_be_had_means_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert render.template_cache() is None
