"""``cachewright explain``: computed from the compiler's own lowering, in agreement with the pure
selection model, and (marked ``engine``) with what the real engines do on the examples."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from generator.load import load
from generator.model import Policy
from harness.checks.rules import stored_when_fresh
from harness.client import Client, Response
from harness.commands import explain
from harness.local import LocalRuntime
from harness.origin_client import OriginClient
from harness.prepare import request_host
from harness.probe import Request, probe_for, select_rule

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/policy.yaml"))


def policy_of(name: str) -> Policy:
    return load(REPO / "examples" / name / "policy.yaml")


def run(argv: list[str]) -> int:
    top = argparse.ArgumentParser(prog="cachewright")
    explain.add_parser(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["explain", *argv])
    code: int = args.run(args)
    return code


def probes(policy: Policy) -> list[Request]:
    host = request_host(policy)
    found = (probe_for(policy, r, tag="cwx", host=host) for r in (*policy.rules, policy.default_rule))
    return [p for p in found if p is not None]


@pytest.mark.parametrize("name", EXAMPLES)
def test_nginx_map_and_select_rule_agree_on_every_rule(name: str) -> None:
    policy = policy_of(name)
    for request in probes(policy):
        result = explain.explain(policy, request, explain.default_scheme(policy))
        assert result.rule == select_rule(policy, request).name
        nginx = dict(result.engines[0].lines)
        assert "DISAGREEMENT" not in nginx
        assert nginx["location"].startswith(f"@{select_rule(policy, request).ident} ")


@pytest.mark.parametrize("name", EXAMPLES)
def test_verdict_follows_the_safe_defaults(name: str) -> None:
    policy = policy_of(name)
    for base in probes(policy):
        variants = [base, replace(base, cookies=(("sid", "1"),)), replace(base, method="POST"),
                    replace(base, headers=(*base.headers, ("Authorization", "Bearer t")))]
        for request in variants:
            rule = select_rule(policy, request)
            result = explain.explain(policy, request, explain.default_scheme(policy))
            assert (result.verdict == "cached") == stored_when_fresh(policy, rule, request), request


def test_shop_product_page_in_text() -> None:
    code_out = explain.render(_shop_products())
    assert "rule:     products  (rules[4] (" in code_out
    assert "cached: looked up in the cache, stored on a miss" in code_out
    assert "removed query parameters: utm_source=x" in code_out
    assert "Cookie: currency=eur\n" in code_out + "\n"
    assert "@r5q (" in code_out and 'var "rule"        products' in code_out
    assert "https://shop.example.com/products/1?a=1\\nc:currency:eur" in code_out


def _shop_products() -> explain.Explanation:
    policy = policy_of("shop")
    request = explain.build_request(policy, "GET", "/products/1?utm_source=x&a=1",
                                    ["Cookie: currency=eur; sid=1", "Accept-Language: de"])
    return explain.explain(policy, request, "https")


def test_bypass_reasons_name_the_cause() -> None:
    policy = policy_of("api")
    auth = explain.build_request(policy, "GET", "/v1/x", ["Authorization: Bearer t"])
    assert "Authorization" in explain.explain(policy, auth).reasons[0]
    me = explain.build_request(policy, "GET", "/v1/me", ["Authorization: Bearer t"])
    keyed = explain.explain(policy, me)
    assert keyed.verdict == "cached" and ("header Authorization", "Bearer t") in keyed.key
    writes = explain.explain(policy, explain.build_request(policy, "POST", "/v1/x", []))
    assert writes.reasons == ("rule 'writes' has cache: false",
                              "method POST: only GET and HEAD are cached")


def test_guard_redirect_and_hosts() -> None:
    policy = policy_of("shop")
    assert explain.explain(policy, explain.build_request(policy, "GET", "/x", []), "http").status == 301
    other = explain.build_request(policy, "GET", "/x", [], host="evil.test")
    assert explain.explain(policy, other, "https").status == 421
    dots = explain.build_request(policy, "GET", "/a/../b", [])
    assert explain.explain(policy, dots, "https").cache_status[0].endswith("detail=guard")
    trace = explain.build_request(policy, "TRACE", "/", [])
    assert explain.explain(policy, trace, "https").status == 501


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(REPO / "examples/api/policy.yaml")
    assert run([policy, "GET", "/v1/products/1?_=123", "-H", "Accept-Language: fr", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule"] == "catalog" and data["verdict"] == "cached"
    assert data["origin"]["target"] == "/v1/products/1" and data["origin"]["removed_query"] == ["_=123"]
    assert [e["engine"] for e in data["engines"]] == ["nginx", "varnish"]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(REPO / "examples/api/policy.yaml")
    assert run([policy, "GET", "/", "-H", "no colon"]) == 2
    assert "-H takes 'Name: value'" in capsys.readouterr().err
    assert run([policy, "GET", "/", "--scheme", "https"]) == 2
    assert "does not listen on https" in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["--help"])
    assert "cachewright explain policy.yaml GET /products/1" in capsys.readouterr().out


# --------------------------------------------------------------------------- real engines

# (method, target, headers); every path is made unique per engine before it is sent.
CASES = {
    "shop": [
        ("GET", "/static/app.css", {"Cookie": "sid=1"}),
        ("GET", "/products/p1?utm_source=x", {"Cookie": "currency=eur"}),
        ("GET", "/products/p2", {"Cookie": "sid=1"}),
        ("GET", "/cart/c1", {}),
        ("GET", "/account/a1", {}),
        ("GET", "/c/shoes", {"Authorization": "Bearer t"}),
        ("GET", "/about", {}),
        ("GET", "/about", {"Cookie": "sid=1"}),
        ("POST", "/products/p3", {}),
        ("GET", "/a/../b", {}),
    ],
    "api": [
        ("GET", "/healthz", {}),
        ("POST", "/v1/products/1", {}),
        ("DELETE", "/v1/x", {}),
        ("GET", "/v1/me", {"Authorization": "Bearer a"}),
        ("GET", "/v1/products/1?_=1", {}),
        ("GET", "/v1/search", {"Accept": "application/json"}),
        ("GET", "/v1/search", {}),
        ("GET", "/v1/x", {"Authorization": "Bearer a"}),
        ("GET", "/v1/y", {"Cookie": "a=b"}),
        ("GET", "/other", {}),
    ],
}


def _unique(target: str, suffix: str) -> str:
    path, sep, query = target.partition("?")
    return f"{path}-{suffix}{sep}{query}" if ".." not in path else path


def _expect(result: explain.Explanation, first: Response, second: Response, what: str) -> None:
    if result.status is not None:
        assert first.status == result.status, what
        assert first.cache.detail == ("redirect" if result.status == 301 else "guard"), what
        return
    assert first.cache.detail == result.rule and second.cache.detail == result.rule, what
    outcomes = (first.cache.outcome, second.cache.outcome)
    assert outcomes == (("miss", "hit") if result.verdict == "cached" else ("bypass", "bypass")), what


@pytest.mark.engine
@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_agrees_with_the_engines(name: str) -> None:
    policy = policy_of(name)
    scheme = explain.default_scheme(policy)
    with LocalRuntime().start(policy, ("nginx", "varnish")) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        for engine, endpoint in stack.endpoints.items():
            client = Client(endpoint, request_host(policy), stack.ca_file)
            for i, (method, target, headers) in enumerate(CASES[name]):
                sent = _unique(target, f"{engine}{i}")
                origin.add_rule({"path": sent.partition("?")[0], "status": 200,
                                 "cache_control": "max-age=60"})
                lines = [f"{k}: {v}" for k, v in headers.items()]
                result = explain.explain(policy, explain.build_request(policy, method, sent, lines),
                                         scheme)
                first, second = (client.request(method, sent, headers, scheme=scheme,
                                                body=b"" if method == "POST" else None)
                                 for _ in range(2))
                _expect(result, first, second, f"{engine} {method} {sent} {headers}: "
                        f"{first.summary()} / {second.summary()}; explain: {result.verdict} "
                        f"{result.rule}")
