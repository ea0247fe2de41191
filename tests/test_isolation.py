"""Checks own their ground truth on any policy: rules that match one path, or a path shape that
leaves no room for a plain tag, get probes that no other check shares (a tag spelled in the
path's characters, or a marker parameter the origin counts by), and a check whose requests
cannot be isolated is skipped with its reason, never failed by its neighbours.

The policy is the one a new user wrote for their own small app (issue 23): on the real engines,
every check passes; a hand-broken config still fails the checks that probe through a marker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tampering import tamper

from cachewright.harness.cli import main

pytestmark = pytest.mark.engine

APP_POLICY = """\
version: 1
name: ux
origin: {url: "http://127.0.0.1:8080"}
cache:
  origin_headers: respect
%(key)s
rules:
  - name: static
    match: {path_regex: '^/static/app\\.[0-9a-f]+\\.js$'}
    ttl: 1d
    origin_headers: override
    strip_cookies: true
  - name: home
    match: {path_regex: '^/$'}
    ttl: 1m
  - name: blog
    match: {path_prefix: /blog/}
    ttl: 5m
  - name: account
    match: {path_prefix: /account/}
    cache: false
  - name: api
    match: {path_prefix: /api/v1/}
    ttl: 10s
    vary: [Accept-Language]
"""


def run(tmp_path: Path, key: str = "", *args: str) -> tuple[int, list[dict[str, Any]]]:
    policy = tmp_path / "app.yaml"
    policy.write_text(APP_POLICY % {"key": key})
    report = tmp_path / "report.json"
    code = main(["test", str(policy), "--no-scenarios", "--json", str(report), *args])
    results: list[dict[str, Any]] = json.loads(report.read_text())["results"]
    return code, results


def outcomes(results: list[dict[str, Any]], outcome: str) -> set[tuple[str, str]]:
    return {(r["check_id"], r["engine"]) for r in results if r["outcome"] == outcome}


def test_single_path_and_hex_regex_rules_pass_every_check(tmp_path: Path) -> None:
    code, results = run(tmp_path)
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in results if r["outcome"] == "failed"]
    assert code == 0 and not failed, "\n".join(failed)
    passed = outcomes(results, "passed")
    for engine in ("nginx", "varnish"):
        for check in ("rule.static", "rule.home", "rule.home.ttl", "rule.home.origin-headers",
                      "defaults.authorization", "security.fill.variants", "cache.collapse_requests"):
            assert (check, engine) in passed, (check, engine)


def test_without_query_in_the_key_a_host_of_its_own_isolates_the_probe(tmp_path: Path) -> None:
    """key [scheme, host, path]: rule 'home' ('^/$') is probed on a subdomain named by each
    check's tag (the marker parameter still tells the origin's counts apart)."""
    code, results = run(tmp_path, "  key: [scheme, host, path]")
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in results if r["outcome"] == "failed"]
    assert code == 0 and not failed, "\n".join(failed)
    passed = outcomes(results, "passed")
    for check in ("rule.home", "rule.home.ttl", "rule.home.origin-headers", "defaults.authorization"):
        assert {(check, "nginx"), (check, "varnish")} <= passed, check


def test_without_query_nor_host_in_the_key_shared_checks_are_skipped_with_their_reason(tmp_path: Path) -> None:
    _, results = run(tmp_path, "  key: [scheme, path]")
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in results if r["outcome"] == "failed"]
    assert not failed, "\n".join(failed)
    skipped = {r["check_id"]: r["message"] for r in results if r["outcome"] == "skipped"}
    assert "rule.home" in skipped and "cache.key has neither query nor host" in skipped["rule.home"]
    # the checks that may pick any rule pick one whose probes are isolated, and run
    assert {("defaults.authorization", "nginx"), ("defaults.set-cookie", "varnish")} <= outcomes(results, "passed")


def test_a_broken_ttl_on_a_single_path_rule_still_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rule 'home' (60 s) stored for 1 s: its TTL check, probed through a marker, fails."""
    changed = tamper(monkeypatch, lambda _, text: text.replace(
        "proxy_cache_valid 200 203 204 300 301 308 1m;", "proxy_cache_valid 200 203 204 300 301 308 1s;")
        .replace('set req.http.X-Cw-Ttl = "60";', 'set req.http.X-Cw-Ttl = "1";'))
    code, results = run(tmp_path, "", "--checks", "rule.home")
    assert len(changed) == 2, changed
    assert code == 1
    assert {("rule.home.ttl", "nginx"), ("rule.home.ttl", "varnish")} <= outcomes(results, "failed")


SLOW_POLICY = """\
version: 1
name: slow
origin: {url: "http://127.0.0.1:8080", read_timeout: 8s}
rules:
  - name: pages
    match: {path_prefix: /}
    ttl: 1m
"""


def test_slow_checks_are_left_out_with_a_note_and_run_with_slow(tmp_path: Path) -> None:
    """A check that waits out origin.read_timeout (8 s + margin > SLOW_WAIT) is not selected by
    default: the run is PASSED and its note names it; --slow runs it (and it passes)."""
    policy = tmp_path / "slow.yaml"
    policy.write_text(SLOW_POLICY)
    report = tmp_path / "report.json"
    code = main(["test", str(policy), "--no-scenarios", "--engine", "nginx", "--json", str(report)])
    doc = json.loads(report.read_text())
    assert code == 0 and doc["verdict"] == "passed", doc["notes"]
    assert "faults.timeout.fresh" not in {r["check_id"] for r in doc["results"]}
    assert any("faults.timeout.fresh 12s" in n and "--slow" in n for n in doc["notes"]), doc["notes"]
    code = main(["test", str(policy), "--no-scenarios", "--slow", "--checks", "faults.timeout",
                 "--json", str(report)])
    doc = json.loads(report.read_text())
    ran = outcomes(doc["results"], "passed")
    assert code == 0 and {("faults.timeout.fresh", "nginx"), ("faults.timeout.fresh", "varnish")} <= ran
