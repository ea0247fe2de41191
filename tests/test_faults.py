"""Origin faults (``harness/checks/faults.py``): which checks a policy implies, and that both
engines pass them on a policy with a short read timeout (errors, timeouts, refused connections,
connections closed mid-body; nothing cached, and a stale copy inside ``stale.if_error``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import harness.local as local
from generator.load import load, loads
from generator.model import Policy
from harness.checks import run_checks
from harness.checks.base import CheckSkipped, Ctx
from harness.checks.faults import FAULTS, check_fresh, error_status, fault_checks
from harness.results import CheckResult

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


def test_long_read_timeout_is_skipped_with_a_reason() -> None:
    shop = load(EXAMPLES / "shop" / "policy.yaml")
    assert shop.origin.read_timeout == 30
    ctx = Ctx("nginx", shop, stack=None, client=None, origin=None)  # type: ignore[arg-type]
    with pytest.raises(CheckSkipped, match="read_timeout is 30s"):
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
def test_example_skips_timeouts_and_passes_the_rest() -> None:
    pol = load(EXAMPLES / "shop" / "policy.yaml")
    with local.LocalRuntime().start(pol, ENGINES) as stack:
        results = run_checks(list(fault_checks(pol)), stack, pol, ENGINES)
    by_outcome = {(r.check_id, r.engine): r for r in results}
    for engine in ENGINES:
        skipped = by_outcome[("faults.timeout.fresh", engine)]
        assert skipped.outcome == "skipped" and "read_timeout is 30s" in skipped.message
    failed = [r for r in results if r.outcome not in ("passed", "skipped")]
    assert not failed, _explain(failed)
    assert {r.check_id for r in results if r.outcome == "skipped"} <= {
        "faults.timeout.fresh", "faults.timeout.stale"}
