"""The rfc family (harness/checks/rfc/): derived for a policy that respects origin headers and
not for one that overrides them; every check cites its RFC section; the conformance report
groups results by section and names the capability of each engine limit; and the whole family
runs on both engines against tests/data/rfc-respect.yaml.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cachewright.generator.capabilities import FEATURES
from cachewright.generator.load import load, loads
from cachewright.harness import report
from cachewright.harness.checks import derive, select
from cachewright.harness.cli import main
from cachewright.harness.report.results import CheckResult, RunResult

ROOT = Path(__file__).resolve().parent.parent
RESPECT = ROOT / "tests" / "data" / "rfc-respect.yaml"
OVERRIDE = """\
version: 1
name: override
origin: {url: http://127.0.0.1:8080}
listen: {http: {port: 80}}
cache: {origin_headers: override, default_ttl: 1m}
rules:
  - {name: api, match: {path_prefix: /api/}, ttl: 1m}
"""
CITATION = re.compile(r"^RFC (9111|9110|5861|9213) §\d+(\.\d+)*: ")
#: a failure message that is an exception from inside the check (a bug of the check, not a
#: finding about the engine)
CHECK_BUG = re.compile(r"^(?!CheckFailed)[A-Z]\w*(Error|Exception): ")


def rfc_checks(policy_text: str | None = None) -> list[Any]:
    policy = loads(policy_text, "p.yaml") if policy_text else load(RESPECT)
    return select(derive(policy, conformance=True), ["rfc"])


def test_the_family_derives_for_a_respecting_policy() -> None:
    checks = rfc_checks()
    ids = [c.id for c in checks]
    assert len(checks) >= 80
    assert len(set(ids)) == len(ids)
    assert all(c.id.startswith("rfc.") and "rfc" in c.tags for c in checks)
    uncited = [c.id for c in checks if not CITATION.match(c.description)]
    assert not uncited, f"descriptions without an RFC section: {uncited}"


def test_engine_limits_are_named_by_capability_and_tag() -> None:
    limited = [c for c in rfc_checks() if c.feature]
    assert limited
    assert all(c.feature.startswith("http.") and c.feature in c.tags for c in limited)
    assert {c.feature for c in limited} <= set(FEATURES), "a capability missing from the table"


def test_the_family_is_not_derived_when_every_rule_overrides() -> None:
    assert rfc_checks(OVERRIDE) == []


def _result(check_id: str, engine: str, outcome: str, section: str = "RFC 9111 §5.1",
            tags: tuple[str, ...] = ("rfc",), message: str = "") -> CheckResult:
    return CheckResult(check_id, f"{section}: something", engine, outcome,  # type: ignore[arg-type]
                       message, tags=tags)


def test_conformance_groups_by_section_and_names_limits() -> None:
    results = (
        _result("rfc.a", "nginx", "passed", "RFC 9111 §4.2.1"),
        _result("rfc.b", "nginx", "unsupported", tags=("rfc", "http.age"), message="nginx: no Age"),
        _result("rfc.a", "varnish", "failed", "RFC 9111 §4.2.1"),
        _result("rfc.b", "varnish", "passed", tags=("rfc", "http.age")),
        _result("rule.x", "varnish", "failed", tags=("rules",)),
    )
    run = RunResult("p", "p.yaml", "local", ("nginx", "varnish"), results,
                    datetime.now(UTC), 1.0)
    found = json.loads(report.to_json(run))["conformance"]
    assert found["nginx"]["passed"] == 1 and found["nginx"]["engine_limit"] == 1
    assert found["nginx"]["sections"]["RFC 9111 §5.1"]["engine_limit"] == ["rfc.b"]
    assert found["nginx"]["limits"] == [{
        "check_id": "rfc.b", "capability": "http.age", "how": "nginx: no Age",
        "alternative": "nginx: {njs: true} (libnginx-mod-http-js; about 5 us of CPU per hit); "
                       "clients also age responses by the Date nginx keeps"}]
    assert found["varnish"]["failed"] == 1 and found["varnish"]["passed"] == 1
    assert found["varnish"]["sections"]["RFC 9111 §4.2.1"]["failed"] == ["rfc.a"]
    assert report.conformance_line(run).splitlines() == [
        "RFC conformance nginx: 1 passed, 0 failed, 1 engine limits (http.age), 0 skipped",
        "RFC conformance varnish: 1 passed, 1 failed, 0 engine limits, 0 skipped",
    ]
    assert "RFC conformance nginx" in report.table(run, color=False)


def test_no_conformance_section_without_rfc_results() -> None:
    run = RunResult("p", "p.yaml", "local", ("nginx",), (_result("rule.x", "nginx", "passed",
                                                                   tags=("rules",)),),
                    datetime.now(UTC), 1.0)
    assert "conformance" not in json.loads(report.to_json(run))
    assert report.conformance_line(run) == ""


@pytest.mark.engine
def test_the_whole_family_runs_on_both_engines(tmp_path: Path) -> None:
    """Every check runs to a verdict on both engines: passed, failed for a reason the check
    states, or an engine limit; none is skipped and none fails on a bug of its own."""
    out = tmp_path / "rfc.json"
    main(["test", str(RESPECT), "--checks", "rfc", "--no-scenarios", "--json", str(out)])
    document = json.loads(out.read_text())
    results = document["results"]
    expected = {c.id for c in rfc_checks()}
    for engine in ("nginx", "varnish"):
        ran = {r["check_id"] for r in results if r["engine"] == engine}
        assert ran == expected, f"{engine}: {sorted(expected ^ ran)}"
    assert {r["outcome"] for r in results} <= {"passed", "failed", "unsupported"}
    bugs = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in results
            if r["outcome"] == "failed" and CHECK_BUG.match(r["message"])]
    assert not bugs, bugs
    conformance = document["conformance"]
    assert set(conformance) == {"nginx", "varnish"}
    for engine, entry in conformance.items():
        counted = entry["passed"] + entry["failed"] + entry["engine_limit"] + entry["skipped"]
        assert counted == len(expected), engine


STALE = ROOT / "tests" / "data" / "rfc-stale.yaml"
NO_STALE = ("rfc.must-revalidate.no-stale", "rfc.proxy-revalidate.no-stale", "rfc.s-maxage.no-stale")


def test_the_no_stale_checks_need_a_capability_only_where_the_policy_serves_stale() -> None:
    """Without cache.stale windows every engine can keep must-revalidate (nothing serves stale);
    with them, nginx cannot (proxy_cache_use_stale is fixed per location)."""
    plain = {c.id: c for c in rfc_checks()}
    stale = {c.id: c for c in select(derive(load(STALE), conformance=True), ["rfc"])}
    assert [plain[i].feature for i in NO_STALE] == [None] * 3
    assert [stale[i].feature for i in NO_STALE] == ["http.no_stale_directives"] * 3
    assert FEATURES["http.no_stale_directives"].on("nginx").level == "unsupported"
    assert FEATURES["http.no_stale_directives"].on("varnish").level == "native"


@pytest.mark.engine
def test_the_family_tells_the_truth_on_a_policy_that_serves_stale(tmp_path: Path) -> None:
    """On a policy with its own stale windows (a stranger's ordinary policy): no check fails on
    either engine; Varnish keeps must-revalidate against the windows, nginx reports the limit."""
    out = tmp_path / "stale.json"
    main(["test", str(STALE), "--checks", "rfc", "--no-scenarios", "--json", str(out)])
    results = {(r["check_id"], r["engine"]): r for r in json.loads(out.read_text())["results"]}
    failed = [f"{c} [{e}]: {r['message']}" for (c, e), r in results.items() if r["outcome"] == "failed"]
    assert not failed, failed
    for check in NO_STALE:
        assert results[check, "varnish"]["outcome"] == "passed"
        assert results[check, "nginx"]["outcome"] == "unsupported"
    for check in ("rfc.validation.200-replaces", "rfc.validation.304-freshens"):
        assert {results[check, e]["outcome"] for e in ("nginx", "varnish")} == {"passed"}


def test_asking_for_the_family_where_it_is_not_derived_says_why(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    policy = tmp_path / "override.yaml"
    policy.write_text(OVERRIDE)
    assert main(["test", str(policy), "--checks", "rfc", "--no-scenarios"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "The rfc family needs a cached rule that respects origin headers and whose requests get "
        "cache entries of their own.")
