"""The pytest plugin runs the documented example file against the real engines (``pytester``)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples/pytest/test_my_cache.py"
SHOP = REPO / "examples/shop/policy.yaml"


def plugin_args() -> list[str]:
    """``-p harness.pytest_plugin`` unless the entry point already loads it (twice would fail)."""
    installed = any(ep.value == "harness.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "harness.pytest_plugin"]


@pytest.mark.engine
def test_example_file_passes_on_both_engines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_my_cache=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess(*plugin_args(), "--cachewright-policy", str(SHOP),
                                           "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=9, skipped=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.cachewright excludes nginx*"])


@pytest.mark.engine
def test_engine_option_and_ini_policy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_my_cache=EXAMPLE.read_text())
    pytester.makeini(f"[pytest]\ncachewright_policy = {SHOP}\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "--cachewright-engine", "nginx",
                                           "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=4, skipped=6)
    result.stdout.fnmatch_lines(["*--cachewright-engine excludes varnish*"])


def test_missing_policy_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(cache):\n    pass\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*no policy (pass --cachewright-policy POLICY*"])
    assert result.ret != 0


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*plugin_args(), "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.cachewright(engines=*"])
