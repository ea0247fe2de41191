"""The pytest plugin runs the documented example file against the real engines (``pytester``)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import processes
import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples/pytest/test_my_cache.py"
SHOP = REPO / "examples/shop/policy.yaml"
UX_APP, UX_POLICY = REPO / "tests/data/ux_app.py", REPO / "tests/data/ux_app.yaml"

#: tests a user writes against their own app (tests/data/ux_app.py and its policy)
OWN_APP_TESTS = """
def test_a_post_is_cached(cache, cachewright_identity):
    first, again = cache.get("/blog/hello?t=1"), cache.get("/blog/hello?t=1")
    assert (first.cache.outcome, again.cache.outcome) == ("miss", "hit")
    assert cachewright_identity.of(first) == cachewright_identity.of(again)
    assert cachewright_identity.header == "X-Request-Id"


def test_the_account_is_never_shared(cache, cachewright_identity):
    first, again = cache.get("/account/"), cache.get("/account/")
    assert again.cache.outcome == "bypass"
    assert cachewright_identity.of(first) != cachewright_identity.of(again)


def test_programming_the_origin(origin):
    pass
"""


def plugin_args() -> list[str]:
    """``-p harness.pytest_plugin`` unless the entry point already loads it (twice would fail)."""
    installed = any(ep.value == "cachewright.harness.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "cachewright.harness.pytest_plugin"]


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


@pytest.fixture
def ux_app() -> Iterator[str]:
    """tests/data/ux_app.py on a free loopback port, stopped by its PID."""
    with processes.ux_app() as url:
        yield url


@pytest.mark.engine
def test_the_users_own_app_by_option(pytester: pytest.Pytester, ux_app: str) -> None:
    pytester.makepyfile(test_own_app=OWN_APP_TESTS)
    result = pytester.runpytest_subprocess(
        *plugin_args(), "--cachewright-policy", str(UX_POLICY), "--cachewright-origin", ux_app,
        "--cachewright-response-id-header", "X-Request-Id", "--cachewright-engine", "nginx",
        "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, skipped=3)  # the other engine twice; origin once
    result.stdout.fnmatch_lines(["*origin fixture needs the sample origin's control port*"])


@pytest.mark.engine
def test_the_users_own_app_by_fixture(pytester: pytest.Pytester) -> None:
    """A conftest overrides ``cachewright_origin_url``: it starts the app for the session."""
    pytester.makeconftest(f"""
import subprocess, sys
import pytest

@pytest.fixture(scope="session")
def cachewright_origin_url():
    proc = subprocess.Popen([sys.executable, {str(UX_APP)!r}], stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().split()[1]
    yield f"http://127.0.0.1:{{port}}"
    proc.terminate()
    proc.wait()
    proc.stdout.close()
""")
    pytester.makepyfile(test_own_app=OWN_APP_TESTS)
    pytester.makeini(f"[pytest]\ncachewright_policy = {UX_POLICY}\n")
    result = pytester.runpytest_subprocess(
        *plugin_args(), "--cachewright-engine", "varnish", "--cachewright-response-id-header",
        "X-Request-Id", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=3)  # the other engine twice; origin once
