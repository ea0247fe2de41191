"""Shared test helper: run hand-edited configs, to show a check fails on an unsafe one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import cachewright.harness.runtime.prepare as prepare
from cachewright.generator.pipeline import compile_policy
from cachewright.generator.render import OutputFile


def tamper(monkeypatch: pytest.MonkeyPatch, edit: Callable[[str, str], str]) -> list[str]:
    """Every runtime's compiled files pass through ``edit(path, text)``; returns (as it fills
    during the run) the paths the edit changed, so a test can prove its edit still applies."""
    changed: list[str] = []

    def tampered(*args: Any, **kw: Any) -> Any:
        compiled = compile_policy(*args, **kw)
        files = []
        for f in compiled.files:
            text = edit(f.path, f.text)
            changed.extend([f.path] if text != f.text else [])
            files.append(OutputFile(f.path, text, f.mode))
        return type(compiled)(tuple(files), compiled.warnings)

    monkeypatch.setattr(prepare, "compile_policy", tampered)
    return changed
