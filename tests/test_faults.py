"""Origin faults (``harness/checks/faults.py``): which checks a policy implies, and that both
engines pass them on a policy with a short read timeout (errors, timeouts, refused connections,
connections closed mid-body; nothing cached, and a stale copy inside ``stale.if_error``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from tampering import tamper

import cachewright.harness.runtime.local as local
from cachewright.generator.load import load, loads
from cachewright.generator.model import Policy
from cachewright.harness.checks import run_checks
from cachewright.harness.checks.base import SLOW_WAIT, CheckSkipped, Ctx
from cachewright.harness.checks.faults import FAULTS, check_fresh, error_status, fault_checks
from cachewright.harness.report.results import CheckResult

ENGINES = ("nginx", "varnish")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

POLICY = """
version: 1
name: faults
origin: {url: http://app:8000, read_timeout: 2s, connect_timeout: 2s}
listen:
  http: {port: 80}
cache:
  default_ttl: 0
  stale: {while_revalidate: WR, if_error: 1h}
  status_ttl: {404: 1m, 503: 5s}
"""


def policy(while_revalidate: str = "0") -> Policy:
    return loads(POLICY.replace("WR", while_revalidate), "faults.yaml")


def _explain(results: Sequence[CheckResult]) -> str:
    return "\n".join(f"{r.check_id} [{r.engine}] {r.outcome}: {r.message}\n  " + "\n  ".join(
        d for d in r.details if " log: " not in d) for r in results if r.outcome != "passed")


# --------------------------------------------------------------------------- derived, no engines


def test_every_fault_has_a_fresh_and_a_stale_check() -> None:
    checks = list(fault_checks(policy()))
    ids = {c.id for c in checks}
    assert {f"faults.{f}.{w}" for f in FAULTS for w in ("fresh", "stale")} <= ids
    assert "faults.error.status-ttl.503" in ids and "faults.error.status-ttl.404" not in ids
    assert all(c.id.startswith("faults.") and c.tags[0] == "faults" for c in checks)
    assert {c.id for c in checks if "exclusive" in c.tags} == {"faults.down.fresh",
                                                                "faults.down.stale"}


def test_no_stale_checks_without_if_error() -> None:
    pol = loads(POLICY.replace("WR", "0").replace(", if_error: 1h", ""), "faults.yaml")
    ids = {c.id for c in fault_checks(pol)}
    assert not any(i.endswith(".stale") for i in ids)
    assert {f"faults.{f}.fresh" for f in FAULTS} <= ids


def test_error_status_avoids_statuses_the_policy_stores() -> None:
    assert error_status(policy()) == 500
    stores_500 = loads(POLICY.replace("WR", "0").replace("503: 5s", "500: 5s"), "f.yaml")
    assert error_status(stores_500) == 503


def test_long_read_timeout_makes_the_timeout_checks_slow() -> None:
    """At origin.read_timeout 30s the timeout checks wait 34s (slow: run with --slow); past
    MAX_WAIT they are skipped with the wait they would need."""
    shop = load(EXAMPLES / "shop" / "policy.yaml")
    assert shop.origin.read_timeout == 30
    waits = {c.id: c.wait for c in fault_checks(shop)}
    assert waits["faults.timeout.fresh"] == 34 > SLOW_WAIT and waits["faults.error.fresh"] == 0
    very = replace(shop, origin=replace(shop.origin, read_timeout=600))
    ctx = Ctx("nginx", very, stack=None, client=None, origin=None)  # type: ignore[arg-type]
    with pytest.raises(CheckSkipped, match="read_timeout is 600s: too long to wait out"):
        check_fresh("timeout", ctx)


# --------------------------------------------------------------------------- real engines


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("while_revalidate", ["0", "30s"])
def test_both_engines_survive_origin_faults(while_revalidate: str) -> None:
    pol = policy(while_revalidate)
    with local.LocalRuntime().start(pol, ENGINES) as stack:
        results = run_checks(list(fault_checks(pol)), stack, pol, ENGINES)
        assert all(stack.alive(e) for e in ENGINES)
    assert len(results) == 2 * len(list(fault_checks(pol)))
    failed = [r for r in results if r.outcome != "passed"]
    assert not failed, _explain(failed)


@pytest.mark.engine
@pytest.mark.slow
def test_example_passes_every_fault_check_but_the_slow_ones() -> None:
    """The shop's fault checks that wait no longer than SLOW_WAIT all pass (the timeout checks,
    34 s each at read_timeout 30s, are proven with --slow in tests/test_isolation.py)."""
    pol = load(EXAMPLES / "shop" / "policy.yaml")
    fast = [c for c in fault_checks(pol) if c.wait <= SLOW_WAIT]
    assert {c.id for c in fault_checks(pol)} - {c.id for c in fast} == {
        "faults.timeout.fresh", "faults.timeout.stale"}
    with local.LocalRuntime().start(pol, ENGINES) as stack:
        results = run_checks(fast, stack, pol, ENGINES)
    failed = [r for r in results if r.outcome != "passed"]
    assert not failed, _explain(failed)


# --------------------------------------------------------------------------- the checks can fail


def _store_errors(path: str, text: str) -> str:
    """Origin errors stored for an hour: nginx's no-store flag for 5xx gone and `any 1h` added;
    Varnish keeps every 5xx for an hour."""
    if path.endswith("nginx.conf"):
        text = text.replace('        "~^..\\|no" 1;\n', "")
        return text.replace("proxy_cache_valid 404 1m;",
                            "proxy_cache_valid 404 1m;\n            proxy_cache_valid any 1h;")
    if path.endswith("default.vcl"):
        return text.replace("sub vcl_backend_response {\n", "sub vcl_backend_response {\n"
                            "    if (beresp.status >= 500) {\n        set beresp.ttl = 1h;\n"
                            "        return (deliver);\n    }\n", 1)
    return text


def _no_stale(path: str, text: str) -> str:
    """No stale copy on errors: nginx without proxy_cache_use_stale, Varnish without grace."""
    if path.endswith("nginx.conf"):
        return re.sub(r"proxy_cache_use_stale [^;]*;", "proxy_cache_use_stale off;", text)
    if path.endswith("default.vcl"):
        return re.sub(r"set beresp\.grace = \d+s;", "set beresp.grace = 0s;", text)
    return text


def _run_tampered(monkeypatch: pytest.MonkeyPatch, edit: Callable[[str, str], str],
                  ids: Sequence[str]) -> dict[tuple[str, str], CheckResult]:
    changed = tamper(monkeypatch, edit)
    pol = policy()
    selected = [c for c in fault_checks(pol) if c.id in ids]
    assert [c.id for c in selected] == list(ids)
    with local.LocalRuntime().start(pol, ENGINES) as stack:
        results = run_checks(selected, stack, pol, ENGINES)
    assert {"nginx/nginx.conf", "varnish/default.vcl"} <= set(changed), "the edit no longer applies"
    return {(r.check_id, r.engine): r for r in results}


@pytest.mark.engine
@pytest.mark.slow
def test_fresh_check_fails_when_errors_are_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    results = _run_tampered(monkeypatch, _store_errors, ["faults.error.fresh"])
    for engine in ENGINES:
        result = results["faults.error.fresh", engine]
        assert result.outcome == "failed", _explain(list(results.values()))
        assert "stored" in result.message or "recover" in result.message, result.message


@pytest.mark.engine
@pytest.mark.slow
def test_stale_checks_fail_without_stale_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # (faults.close-mid-body.stale accepts a cut-short fresh answer too: the engines stream the
    # origin's headers before the body breaks, so it fails only if that answer is then stored.)
    ids = ["faults.error.stale", "faults.down.stale"]
    results = _run_tampered(monkeypatch, _no_stale, ids)
    for key, result in results.items():
        assert result.outcome == "failed", (key, _explain(list(results.values())))


def _long_error_ttl(path: str, text: str) -> str:
    """The 503 stored for an hour instead of status_ttl's 5 s."""
    text = text.replace("proxy_cache_valid 503 5s;", "proxy_cache_valid 503 1h;")
    return text.replace("    } elsif (beresp.status == 503) {\n        set beresp.ttl = 5s;",
                        "    } elsif (beresp.status == 503) {\n        set beresp.ttl = 3600s;")


@pytest.mark.engine
@pytest.mark.slow
def test_status_ttl_check_fails_when_an_error_is_kept_longer(monkeypatch: pytest.MonkeyPatch) -> None:
    results = _run_tampered(monkeypatch, _long_error_ttl, ["faults.error.status-ttl.503"])
    for engine in ENGINES:
        result = results["faults.error.status-ttl.503", engine]
        assert result.outcome == "failed" and "[3600]s" in result.message, _explain(list(results.values()))


def _no_read_timeout(path: str, text: str) -> str:
    """The engines wait a minute for the origin instead of origin.read_timeout (2 s)."""
    text = text.replace("proxy_read_timeout 2s;", "proxy_read_timeout 60s;")
    return text.replace(".first_byte_timeout = 2s;", ".first_byte_timeout = 60s;")


@pytest.mark.engine
@pytest.mark.slow
def test_timeout_check_fails_when_the_engine_waits_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    results = _run_tampered(monkeypatch, _no_read_timeout, ["faults.timeout.fresh"])
    for engine in ENGINES:
        assert results["faults.timeout.fresh", engine].outcome == "failed", _explain(list(results.values()))
