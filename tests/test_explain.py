"""``cachewright explain``: computed from the compiler's own lowering, in agreement with the pure
selection model, and (marked ``engine``) with what the real engines do on the examples."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cachewright.generator.load import load
from cachewright.generator.model import Policy
from cachewright.harness.checks.rules import stored_when_fresh
from cachewright.harness.cli import main
from cachewright.harness.client import Client, Response
from cachewright.harness.commands.explain import add_parser
from cachewright.harness.engines.explain import explain
from cachewright.harness.origin import OriginClient
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.runtime.prepare import request_host
from cachewright.harness.selection import Request, probe_for, select_rule
from cachewright.harness.selection.explain import Explanation, build_request, default_scheme
from cachewright.harness.selection.explain_text import render

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/policy.yaml"))


def policy_of(name: str) -> Policy:
    return load(REPO / "examples" / name / "policy.yaml")


def run(argv: list[str]) -> int:
    top = argparse.ArgumentParser(prog="cachewright")
    add_parser(top.add_subparsers(dest="command", required=True))
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
        result = explain(policy, request, default_scheme(policy))
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
            result = explain(policy, request, default_scheme(policy))
            assert (result.verdict == "cached") == stored_when_fresh(policy, rule, request), request


SHOP_PRODUCTS = """\
GET https://shop.example.com/products/1?utm_source=x&a=1
rule          products  (rules[4], {policy}:44:5)
  matched     path_prefix /products/
cached        yes: looked up in the cache; a miss is fetched and stored
  ttl         the origin's Cache-Control (s-maxage, max-age) or Expires (origin_headers: respect)
              without them: 10m (the rule's ttl) for 200 203 204 300 301 308
              1m for 404 (cache.status_ttl)
  stale       30s while it is refreshed in the background (stale.while_revalidate)
              1h while the origin fails (stale.if_error)
              nginx serves stale responses without an age limit
  not stored  Cache-Control private or no-store, no-cache, a zero lifetime, Set-Cookie, Vary: *, a
              status other than 200 203 204 300 301 302 307 308 404 410 414 without its own lifetime
key           https://shop.example.com/products/1?a=1  (scheme + host + path + query)
  + cookie    currency=eur
  + vary      Accept-Language: de
origin        GET /products/1?a=1  (to shop-app:8000)
  Host        shop.example.com
  Cookie      currency=eur (sid removed: only key.cookies are passed on)
  query       without utm_source=x (cache.query.ignore)
  set         X-Forwarded-For, X-Real-IP: the client address; X-Forwarded-Proto: https
  unchanged   Accept-Language
Cache-Status  cachewright; fwd=miss; detail=products
              then cachewright; hit; detail=products

(add -v for each engine's internals: nginx's map and location, the VCL's variables and subroutines)
"""
SHOP_ARGS = ["GET", "/products/1?utm_source=x&a=1", "-H", "Cookie: currency=eur; sid=1",
             "-H", "Accept-Language: de"]


def test_default_text_is_the_decision_without_engine_internals(capsys: pytest.CaptureFixture[str]) -> None:
    policy = REPO / "examples/shop/policy.yaml"
    assert main(["explain", str(policy), *SHOP_ARGS]) == 0
    assert capsys.readouterr().out == SHOP_PRODUCTS.format(policy=policy)


@pytest.mark.parametrize("argv", [["-q", "explain", "{policy}"], ["explain", "{policy}", "-q"]])
def test_quiet_is_the_rule_the_verdict_and_the_ttl(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    policy = str(REPO / "examples/shop/policy.yaml")
    assert main([a.format(policy=policy) for a in argv] + SHOP_ARGS) == 0
    out = capsys.readouterr().out
    assert out == SHOP_PRODUCTS.format(policy=policy).split("key  ")[0]
    assert "(?<cw_path>" not in out and "@r5" not in out


@pytest.mark.parametrize("argv", [["-v", "explain", "{policy}"], ["explain", "{policy}", "-v"]])
def test_verbose_adds_each_engines_internals(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    policy = str(REPO / "examples/shop/policy.yaml")
    assert main([a.format(policy=policy) for a in argv] + SHOP_ARGS) == 0
    out = capsys.readouterr().out
    assert out.startswith(SHOP_PRODUCTS.format(policy=policy).split("\n\n(add -v")[0] + "\n\nnginx:\n")
    assert "@r5q (" in out and 'var "rule"        products' in out and "(?<cw_path>" in out
    assert "https://shop.example.com/products/1?a=1\\nc:currency:eur" in out
    assert "add -v" not in out


def test_regex_rules_read_plainly(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("version: 1\nname: app\norigin: {url: 'http://127.0.0.1:8000'}\n"
                    "listen: {http: {port: 8080}}\nrules:\n"
                    "  - name: static\n    match: {path_regex: '^/static/app\\.[0-9a-f]+\\.js$'}\n"
                    "    ttl: 30d\n    origin_headers: override\n    strip_cookies: true\n"
                    "  - name: home\n    match: {path_regex: '^/$'}\n    ttl: 1m\n", encoding="utf-8")
    policy = load(path)
    static = render(explain(policy, build_request(
        policy, "GET", "/static/app.3fa9.js", ["Cookie: sid=1; theme=dark"])))
    assert "rule          static  (rules[0]," in static
    assert "  ttl         30d (the rule's ttl) for 200 203 204 300 301 308, whatever the origin says\n" in static
    assert "  Cookie      none: sid, theme removed (strip_cookies)\n" in static
    home = render(explain(policy, build_request(policy, "GET", "/", ["Cookie: a=1"])))
    assert "cached        no: not looked up, not stored; every request reaches the origin\n" \
           "  because     the request carries cookies and rule 'home' neither strips them (strip_cookies) nor\n" \
           "              keys on them (key.cookies)\n" in home
    assert "  Cookie      a=1\n" in home and "key " not in home and "ttl " not in home


def _shop_products() -> Explanation:
    policy = policy_of("shop")
    request = build_request(policy, "GET", "/products/1?utm_source=x&a=1",
                                    ["Cookie: currency=eur; sid=1", "Accept-Language: de"])
    return explain(policy, request, "https")


def test_bypass_reasons_name_the_cause() -> None:
    policy = policy_of("api")
    auth = build_request(policy, "GET", "/v1/x", ["Authorization: Bearer t"])
    assert "Authorization" in explain(policy, auth).reasons[0]
    me = build_request(policy, "GET", "/v1/me", ["Authorization: Bearer t"])
    keyed = explain(policy, me)
    assert keyed.verdict == "cached" and ("header Authorization", "Bearer t") in keyed.key
    writes = explain(policy, build_request(policy, "POST", "/v1/x", []))
    assert writes.reasons == ("rule 'writes' has cache: false",
                              "method POST: only GET and HEAD are cached")


def test_guard_redirect_and_hosts() -> None:
    policy = policy_of("shop")
    assert explain(policy, build_request(policy, "GET", "/x", []), "http").status == 301
    other = build_request(policy, "GET", "/x", [], host="evil.test")
    assert explain(policy, other, "https").status == 421
    dots = build_request(policy, "GET", "/a/../b", [])
    assert explain(policy, dots, "https").cache_status[0].endswith("detail=guard")
    trace = build_request(policy, "TRACE", "/", [])
    assert explain(policy, trace, "https").status == 501


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(REPO / "examples/api/policy.yaml")
    assert run([policy, "GET", "/v1/products/1?_=123", "-H", "Accept-Language: fr", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule"] == "catalog" and data["verdict"] == "cached"
    assert data["origin"]["target"] == "/v1/products/1" and data["origin"]["removed_query"] == ["_=123"]
    assert [e["engine"] for e in data["engines"]] == ["nginx", "varnish"]
    nginx = dict(data["engines"][0]["lines"])  # the internals -v prints: all there
    assert nginx["map $cw_target"].startswith("~^") and nginx["location"].startswith("@r4")
    assert data["ttl"][1] == "without them: 10s (the rule's ttl) for 200 203 204 300 301 308"
    assert data["stale"] and data["never_stored"].startswith("Cache-Control private")


def test_a_purge_is_not_a_disagreement_and_reaches_no_origin() -> None:
    policy = policy_of("api")
    result = explain(policy, build_request(policy, "PURGE", "/v1/products/1", []))
    assert result.verdict == "purge" and result.origin is None
    assert not render(result).count("warning")


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


def _expect(result: Explanation, first: Response, second: Response, what: str) -> None:
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
    scheme = default_scheme(policy)
    with LocalRuntime().start(policy, ("nginx", "varnish")) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        for engine, endpoint in stack.endpoints.items():
            client = Client(endpoint, request_host(policy), stack.ca_file)
            for i, (method, target, headers) in enumerate(CASES[name]):
                sent = _unique(target, f"{engine}{i}")
                origin.add_rule({"path": sent.partition("?")[0], "status": 200,
                                 "cache_control": "max-age=60"})
                lines = [f"{k}: {v}" for k, v in headers.items()]
                result = explain(policy, build_request(policy, method, sent, lines),
                                         scheme)
                first, second = (client.request(method, sent, headers, scheme=scheme,
                                                body=b"" if method == "POST" else None)
                                 for _ in range(2))
                _expect(result, first, second, f"{engine} {method} {sent} {headers}: "
                        f"{first.summary()} / {second.summary()}; explain: {result.verdict} "
                        f"{result.rule}")


def test_exact_path_rule_and_policy_warnings_are_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """explain names an exact-path match, and prints the policy's warnings (as compile does)."""
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nname: p\norigin: {url: 'http://127.0.0.1:8080'}\nrules:\n"
                      "  - {name: home, match: {path: /}, ttl: 1m}\n"
                      "  - {name: admin, match: {path_prefix: /admin/}, cache: false}\n"
                      "  - {name: rest, match: {path_prefix: /}, ttl: 5m}\n")
    assert main(["explain", str(policy), "GET", "/"]) == 0
    out, err = capsys.readouterr()
    assert "rule          home" in out and "matched     path /\n" in out
    assert "warning: rule 'admin' does not match /admin" in err
