"""`cachewright test` end to end on the real engines: every example passes on both, and the
harness can fail (a hand-broken config, a wrong scenario expectation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tampering import tamper

from cachewright.harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
# single-node examples; the fleet examples run in tests/test_fleet_harness.py (one front engine)
EXAMPLES = [pytest.param(p, id=p.parent.name) for p in sorted((ROOT / "examples").glob("*/policy.yaml"))
            if "\nfleet:" not in p.read_text()]
STATIC = ROOT / "examples" / "static-site" / "policy.yaml"

pytestmark = pytest.mark.engine


def results(report: Path) -> list[dict[str, Any]]:
    data = json.loads(report.read_text())
    out: list[dict[str, Any]] = data["results"]
    return out


@pytest.mark.parametrize("policy", EXAMPLES)
def test_every_example_passes_on_both_engines(policy: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    # Every selected check runs: the ones waiting out a 30s read timeout or a stale window of
    # hours are left out by default (a note says so; --slow runs them), so the verdict is PASSED.
    code = main(["test", str(policy), "--json", str(report), "--junit", str(tmp_path / "j.xml")])
    found = results(report)
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in found
              if r["outcome"] == "failed"]
    assert code == 0 and not failed, "\n".join(failed)
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "passed" and not [r for r in found if r["outcome"] == "skipped"]
    assert any("--slow" in note for note in doc["notes"])
    engines = {r["engine"] for r in found}
    assert engines == {"nginx", "varnish"}
    passed = {(r["check_id"], r["engine"]) for r in found if r["outcome"] == "passed"}
    assert ("defaults.authorization", "nginx") in passed and ("defaults.authorization", "varnish") in passed
    assert any(r["check_id"].startswith("scenario:") for r in found), "the example's scenarios did not run"


def _lower_html_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand-edit the compiled output: rule 'html' (5m) stores for 1s on both engines."""
    tamper(monkeypatch, lambda _, text: text.replace("proxy_cache_valid 200 203 204 300 301 308 5m;",
                                                     "proxy_cache_valid 200 203 204 300 301 308 1s;")
           .replace('set req.http.X-Cw-Ttl = "300";', 'set req.http.X-Cw-Ttl = "1";'))


def test_a_hand_lowered_ttl_fails_the_ttl_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _lower_html_ttl(monkeypatch)
    report = tmp_path / "report.json"
    code = main(["test", str(STATIC), "--checks", "rule.html", "--no-scenarios", "--json", str(report)])
    assert code == 1
    failed = {(r["check_id"], r["engine"]) for r in results(report) if r["outcome"] == "failed"}
    assert {("rule.html.ttl", "nginx"), ("rule.html.ttl", "varnish")} <= failed
    out = capsys.readouterr().out
    assert "FAIL rule.html.ttl [nginx]" in out and "expected 300" in out


def test_a_wrong_scenario_expectation_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenarios = tmp_path / "wrong.yaml"
    scenarios.write_text(
        "version: 1\n"
        "scenarios:\n"
        "  - name: html-is-never-cached\n"
        "    steps:\n"
        "      - {name: first, path: '/docs/{run}', expect: {cache: miss}}\n"
        "      - {name: second, path: '/docs/{run}', expect: {cache: miss}}\n")
    code = main(["test", str(STATIC), "--no-derived", "--scenarios", str(scenarios)])
    assert code == 1
    out = capsys.readouterr().out
    assert "scenario:html-is-never-cached" in out and "FAIL" in out
