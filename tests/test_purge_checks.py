"""The purge checks: which ones a policy implies, the addresses they purge from, and on the real
engines that they pass where the engine purges correctly and fail where a hand-edited
configuration lets an outsider purge or purges nothing."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from tampering import tamper

import cachewright.harness.runtime.local as local
from cachewright.generator import capabilities
from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.harness.checks import run_checks
from cachewright.harness.checks.purge import outsider_address, purge_checks, purger_address
from cachewright.harness.report.results import CheckResult

ENGINES = ("nginx", "varnish")
KINDS = ("url", "variants", "refused", "pattern", "tag", "all")

PLAIN = """
version: 1
name: purges
origin: {url: http://app:8000}
listen:
  http: {port: 80}
  hosts: [a.example.com, b.example.com]
cache: {default_ttl: 1m}
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 10m
  - name: api
    match: {path_prefix: /api/}
    ttl: 10m
    vary: [Accept-Language]
    tags_from_header: Surrogate-Key
purge:
  allow: [127.0.0.1/32]
  kinds: [url, pattern, tag, all]
accept_missing: {nginx: [purge.pattern, purge.tag, purge.all]}
"""

HTTPS = """
version: 1
name: purges-tls
origin: {url: http://app:8000}
listen:
  http: {port: 80}
  https: {port: 443, certificate: c.crt, key: c.key, redirect_http: true}
cache: {default_ttl: 1m}
rules:
  - name: products
    match: {path_prefix: /products/}
    ttl: 10m
    key: {cookies: [currency]}
    tags_from_header: Surrogate-Key
purge:
  allow: [127.0.0.0/30]
  kinds: [url, tag]
accept_missing: {nginx: [purge.tag]}
"""


def _policy(text: str, **edits: str) -> Policy:
    for old, new in edits.items():
        text = text.replace(old, new)
    return loads(text, "purge-test.yaml")


def _run(policy: Policy) -> dict[tuple[str, str], CheckResult]:
    checks = list(purge_checks(policy))
    with local.LocalRuntime().start(policy, ENGINES) as stack:
        results = run_checks(checks, stack, policy, ENGINES)
    return {(r.check_id, r.engine): r for r in results}


def _outcomes(results: dict[tuple[str, str], CheckResult]) -> dict[tuple[str, str], str]:
    return {key: r.outcome for key, r in results.items()}


def _explain(results: dict[tuple[str, str], CheckResult]) -> str:
    return "\n".join(f"{c} [{e}] {r.outcome}: {r.message}" for (c, e), r in results.items())


# --------------------------------------------------------------------------- derived, no engines


def test_no_purge_section_no_checks() -> None:
    policy = _policy(PLAIN.split("purge:")[0])
    assert list(purge_checks(policy)) == []


def test_checks_follow_the_purge_kinds() -> None:
    ids = [c.id for c in purge_checks(_policy(PLAIN))]
    assert ids == [f"purge.{k}" for k in KINDS]
    only_tags = _policy(PLAIN, **{"kinds: [url, pattern, tag, all]": "kinds: [tag]",
                                  "accept_missing: {nginx: [purge.pattern, purge.tag, purge.all]}":
                                  "accept_missing: {nginx: [purge.tag]}"})
    assert [c.id for c in purge_checks(only_tags)] == ["purge.refused", "purge.tag"]


def test_checks_carry_tags_and_features() -> None:
    checks = {c.id: c for c in purge_checks(_policy(PLAIN))}
    assert checks["purge.refused"].tags == ("purge", "security")
    assert checks["purge.refused"].feature is None
    assert all(checks[f"purge.{k}"].feature == f"purge.{k}"
               for k in KINDS if k != "refused")
    assert all("purge" in c.tags for c in checks.values())


@pytest.mark.parametrize(("allow", "purger", "outsider"), [
    ("[127.0.0.1/32]", "127.0.0.1", "127.0.0.2"),
    ("[127.0.0.0/30]", "127.0.0.1", "127.0.1.2"),
    ("[127.0.0.5/32, 10.0.0.0/8]", "127.0.0.5", "127.0.0.2"),
    ("[10.0.0.0/8]", None, "127.0.0.2"),
    ("[127.0.0.0/8]", "127.0.0.1", None),
])
def test_purge_and_outsider_addresses(allow: str, purger: str | None, outsider: str | None) -> None:
    policy = _policy(PLAIN, **{"allow: [127.0.0.1/32]": f"allow: {allow}"})
    assert purger_address(policy) == purger
    assert outsider_address(policy) == outsider


# --------------------------------------------------------------------------- the real engines


@pytest.mark.engine
def test_every_kind_passes_on_varnish_and_nginx_reports_what_it_lacks() -> None:
    results = _run(_policy(PLAIN))
    expected = {(f"purge.{k}", "varnish"): "passed" for k in KINDS}
    expected |= {(f"purge.{k}", "nginx"): "unsupported" for k in KINDS}
    expected |= {("purge.url", "nginx"): "passed", ("purge.refused", "nginx"): "passed"}
    assert _outcomes(results) == expected, _explain(results)
    assert results["purge.variants", "nginx"].message.startswith("nginx: ")


@pytest.mark.engine
def test_https_only_policy_purges_over_https() -> None:
    results = _run(_policy(HTTPS))
    expected = {("purge.url", "nginx"): "passed", ("purge.refused", "nginx"): "passed",
                ("purge.tag", "nginx"): "unsupported", ("purge.url", "varnish"): "passed",
                ("purge.refused", "varnish"): "passed", ("purge.tag", "varnish"): "passed"}
    assert _outcomes(results) == expected, _explain(results)


BOTH_SCHEMES = HTTPS.replace("redirect_http: true", "redirect_http: false")


def test_purge_schemes_only_when_both_schemes_share_a_key() -> None:
    assert "purge.schemes" not in {c.id for c in purge_checks(_policy(HTTPS))}
    assert "purge.schemes" not in {c.id for c in purge_checks(_policy(PLAIN))}
    assert "purge.schemes" in {c.id for c in purge_checks(_policy(BOTH_SCHEMES))}


@pytest.mark.engine
def test_a_purge_over_http_leaves_nginx_https_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Varnish drops both schemes' copies; nginx only the one the PURGE came over. With the
    capability row nginx reports unsupported; were it claimed native, the check fails."""
    policy = _policy(BOTH_SCHEMES)
    claimed = replace(capabilities.FEATURES["purge.schemes"],
                      nginx=capabilities.Support("module", "claimed"))
    results = _run(policy)
    assert results["purge.schemes", "varnish"].outcome == "passed", _explain(results)
    assert results["purge.schemes", "nginx"].outcome == "unsupported", _explain(results)
    monkeypatch.setitem(capabilities.FEATURES, "purge.schemes", claimed)
    results = _run(policy)
    failed = results["purge.schemes", "nginx"]
    assert failed.outcome == "failed" and "(https copy)" in failed.message, _explain(results)
    assert results["purge.url", "nginx"].outcome == "passed", _explain(results)


# --------------------------------------------------------------------------- the checks can fail


def _widen_allow(path: str, text: str) -> str:
    """Everyone on loopback may purge: nginx's geo and allow lines, Varnish's acl."""
    text = text.replace("        127.0.0.1/32 0;", "        127.0.0.0/8 0;")
    text = text.replace("allow 127.0.0.1/32;", "allow 127.0.0.0/8;")
    return text.replace('"127.0.0.1"/32;', '"127.0.0.0"/8;')


def _break_purging(path: str, text: str) -> str:
    """PURGE answers 200 but removes nothing; BAN forgets the host."""
    text = re.sub(r'proxy_cache_purge cw "[^"]*";', "return 200;", text)
    text = text.replace("\n    return (purge);\n}", '\n    return (synth(200, "Purged"));\n}')
    return re.sub(r'"obj\.http\.X-Cw-Host == " \+ req\.http\.host \+\s+" && ', '"', text)


@pytest.mark.engine
def test_an_outsider_who_may_purge_fails_purge_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tamper(monkeypatch, _widen_allow)
    policy = _policy(PLAIN, **{"kinds: [url, pattern, tag, all]": "kinds: [url]",
                               "accept_missing: {nginx: [purge.pattern, purge.tag, purge.all]}": ""})
    results = _run(policy)
    assert {"nginx/nginx.conf", "varnish/default.vcl"} <= set(changed)
    for engine in ENGINES:
        refused = results["purge.refused", engine]
        assert refused.outcome == "failed", _explain(results)
        assert "from 127.0.0.2" in refused.message and "expected 403" in refused.message
        assert results["purge.url", engine].outcome == "passed", _explain(results)


@pytest.mark.engine
def test_purges_that_remove_nothing_fail_purge_url(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tamper(monkeypatch, _break_purging)
    results = _run(_policy(PLAIN))
    assert {"nginx/nginx.conf", "varnish/default.vcl"} <= set(changed)
    for engine in ENGINES:
        url = results["purge.url", engine]
        assert url.outcome == "failed", _explain(results)
        assert "after PURGE" in url.message and "expected a miss" in url.message
    pattern = results["purge.pattern", "varnish"]
    assert pattern.outcome == "failed" and "on a.example.com" in pattern.message, _explain(results)
    assert results["purge.tag", "varnish"].outcome == "passed", _explain(results)
