"""Shared test set-up: tests marked ``engine`` need the real nginx, varnishd and hitch binaries.

Where they are missing such tests are skipped, naming what is missing, except in CI (``CI=true``),
where a missing engine is a failure: CI must never pass by skipping the engine checks.
"""

from __future__ import annotations

import os
import shutil

import pytest

ENGINE_BINARIES = ("nginx", "varnishd", "hitch")


def missing_engines() -> list[str]:
    """The engine binaries that are not on PATH."""
    return [name for name in ENGINE_BINARIES if shutil.which(name) is None]


def pytest_report_header(config: pytest.Config) -> str:
    """The sample seed, in the session header whatever the verbosity, so a failing CI sample can
    be rerun (tests/test_corpus.py's policies, tests/test_docker_runtime.py's runs,
    tests/test_diff_engines.py's example)."""
    from corpus import SEED_ENV, sample_seed  # tests/ is on sys.path (rootdir conftest)

    return (f"sample seed {sample_seed()}: the policy corpus, the docker runs and the example diff "
            f"replays on the engines (rerun with {SEED_ENV}={sample_seed()})")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("engine") is None:
        return
    missing = missing_engines()
    if not missing:
        return
    from cachewright.harness.engines import PACKAGES

    reason = (f"engine test needs {', '.join(missing)} on PATH (Debian: apt-get install "
              f"{PACKAGES['nginx']} {PACKAGES['varnishd']} {PACKAGES['hitch']})")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)
