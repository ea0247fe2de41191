"""A policy with more rules than one Varnish selection chunk (varnish_rules.CHUNK): the chained
selection subroutines, the per-profile request subroutines and the rule tests that derive a
profile or TTL by regex (more than RULE_COMPARISONS names) all pass `cachewright test` on both
real engines -- every rule's caching, TTL, key and cookie handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachewright.generator import varnish_rules
from cachewright.generator.load import loads
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.cli import main

pytestmark = pytest.mark.engine

RULES = varnish_rules.CHUNK + 10


def _rule(i: int) -> str:
    head = f"  - name: s{i}\n    match: {{path_prefix: /s{i}/}}\n"
    if i % 10 == 7:
        return head + "    cache: false\n"
    if i % 10 == 8:
        return head + f"    ttl: {i % 3 + 1}m\n    key: {{cookies: [currency]}}\n"
    return head + f"    ttl: {i % 3 + 1}m\n    strip_cookies: true\n"


POLICY = """version: 1
name: large
origin: {url: http://app:8000}
listen:
  http: {port: 80}
cache:
  default_ttl: 30s
rules:
""" + "".join(_rule(i) for i in range(RULES))


def test_the_policy_takes_the_multi_chunk_forms() -> None:
    vcl = next(f.text for f in compile_policy(loads(POLICY, "large.yaml")).files
               if f.path == "varnish/default.vcl")
    assert "sub cw_select_2 {" in vcl and "call cw_request_p1;" in vcl
    assert 'set req.http.X-Cw-Ttl = "180";' in vcl and 'var.get("rule") ~ "^(?:' in vcl


def test_every_rule_of_a_large_policy_passes_on_both_engines(tmp_path: Path) -> None:
    policy = tmp_path / "large.yaml"
    policy.write_text(POLICY)
    report = tmp_path / "report.json"
    code = main(["test", str(policy), "--no-scenarios", "--json", str(report)])
    found = json.loads(report.read_text())["results"]
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in found if r["outcome"] == "failed"]
    assert code == 0 and not failed, "\n".join(failed)
    passed = {(r["check_id"], r["engine"]) for r in found if r["outcome"] == "passed"}
    for engine in ("nginx", "varnish"):
        # a rule of the second chunk: stored for its own TTL; keyed; never cached
        assert {(f"rule.s{RULES - 4}.ttl", engine), (f"rule.s{RULES - 2}.key", engine),
                (f"rule.s{RULES - 3}", engine)} <= passed
