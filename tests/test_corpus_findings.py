"""Defects the policy corpus (tests/corpus.py) found, each pinned by the smallest policy that
showed it, on both real engines: a config that disagreed with the policy, or a check that failed
on a correct config. ``tests/data/corpus-findings/*.yaml`` holds those policies, each with a first
comment line naming what failed; every one must now pass every derived check (adding a finding
is adding a file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.cli import main

pytestmark = pytest.mark.engine

FINDINGS = sorted((Path(__file__).parent / "data" / "corpus-findings").glob("*.yaml"))

STATUS_TTL = """\
version: 1
name: status
origin: {url: "http://127.0.0.1:8080"}
cache:
  status_ttl: {301: 1h}
rules:
  - {name: home, match: {path_regex: '^/$'}, ttl: 10m}
"""

CACHE_STATUS_NAME = """\
version: 1
name: named
origin: {url: "http://127.0.0.1:8080"}
headers: {cache_status_name: edge}
rules:
  - {name: blog, match: {path_prefix: /blog/}, ttl: 1h}
  - {name: admin, match: {path_prefix: /admin/}, cache: false}
"""


def run(tmp_path: Path, text: str, *checks: str) -> tuple[int, dict[str, str]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    report = tmp_path / "report.json"
    args = [a for c in checks for a in ("--checks", c)]
    code = main(["test", str(policy), "--no-scenarios", "--json", str(report), *args])
    results = json.loads(report.read_text())["results"]
    return code, {f"{r['check_id']} [{r['engine']}]": f"{r['outcome']} {r['message']}" for r in results}


def test_a_status_in_status_ttl_takes_its_own_ttl_on_nginx_too(tmp_path: Path) -> None:
    """nginx takes the first proxy_cache_valid line naming a status: status_ttl's 301 must not
    be on the rule's line as well (it stored redirects for 10m where Varnish used 1h)."""
    nginx = next(f.text for f in compile_policy(loads(STATUS_TTL, "s.yaml"), ("nginx",)).files)
    assert "proxy_cache_valid 200 203 204 300 308 10m;" in nginx and "proxy_cache_valid 301 1h;" in nginx
    code, results = run(tmp_path, STATUS_TTL, "cache.status_ttl")
    assert code == 0, results
    assert results["cache.status_ttl.301 [nginx]"].startswith("passed"), results


def test_checks_read_cache_status_under_the_policys_name(tmp_path: Path) -> None:
    """headers.cache_status_name: edge made every check read 'Cache-Status names rule None'."""
    code, results = run(tmp_path, CACHE_STATUS_NAME, "rule.")
    assert code == 0, results
    assert {k for k, v in results.items() if v.startswith("passed")} >= {
        "rule.blog [nginx]", "rule.blog [varnish]", "rule.admin [nginx]", "rule.admin [varnish]"}


def test_there_are_findings() -> None:
    assert len(FINDINGS) >= 10


@pytest.mark.parametrize("policy", FINDINGS, ids=lambda p: p.stem)
def test_a_corpus_finding_passes_every_check(policy: Path, tmp_path: Path) -> None:
    """PASSED: no check failed and none was skipped, on both engines."""
    report = tmp_path / "report.json"
    code = main(["test", str(policy), "--no-scenarios", "--json", str(report)])
    doc = json.loads(report.read_text())
    bad = [f"{r['check_id']} [{r['engine']}] {r['outcome']}: {r['message']}" for r in doc["results"]
           if r["outcome"] in ("failed", "skipped")]
    assert code == 0 and doc["verdict"] == "passed" and not bad, "\n".join(bad)
