"""Cache-Status on hits names the rule the request selected, on both real engines.

Varnish stores a hit's Cache-Status with the object when it is fetched, so that a fresh hit
writes no header; a rule whose key may hold an object another rule stored (one that matches on
a header, or whose paths overlap such a rule's) rewrites it on the hit
(generator/varnish_rules.py, ``restatus_rules``). nginx writes it on every response.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import compile_policy
from cachewright.generator.varnish_rules import restatus_rules
from cachewright.harness.client import Client, Response
from cachewright.harness.origin import OriginClient
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime

ENGINES = ("nginx", "varnish")
HOST = "a.example.com"
POLICY = f"""
version: 1
name: cache-status
origin: {{url: http://app:8000}}
listen:
  http: {{port: 80}}
  hosts: [{HOST}]
cache: {{default_ttl: 1m}}
rules:
  - name: json
    match: {{path_prefix: /api/, header: {{name: Accept, regex: json}}}}
    ttl: 1m
  - name: api
    match: {{path_prefix: /api/}}
    ttl: 1m
  - name: static
    match: {{path_prefix: /static/}}
    ttl: 1m
"""


def _policy(rules: str, key: str = "[scheme, host, path, query]") -> Policy:
    return loads(f"""
version: 1
name: p
origin: {{url: http://app:8000}}
listen: {{http: {{port: 80}}, hosts: [a.example.com, b.example.com, "*.example.com"]}}
cache: {{key: {key}}}
rules:
{rules}""", "p.yaml")


@pytest.mark.parametrize(("rules", "key", "expected"), [
    # only key parts (path, host with the host in the key, GET and HEAD): every object names its rule
    ("""  - {name: a, match: {path_prefix: /a/}}
  - {name: b, match: {host: [b.example.com]}}
  - {name: c, match: {path_regex: "^/c", methods: [GET, HEAD]}}""", None, ()),
    # a header match: it, the rules whose paths may overlap it, and the default
    ("""  - {name: v, match: {path_prefix: /api/v2/}}
  - {name: j, match: {path_prefix: /api/, header: {name: Accept}}}
  - {name: api, match: {path_prefix: /api/}}
  - {name: other, match: {path_prefix: /static/}}
  - {name: ext, match: {extensions: [css]}}""", None, ("v", "j", "api", "ext", "default")),
    # a rule that never caches is passed, never hit: its conditions do not matter
    ("""  - {name: members, match: {cookie: {name: m}}, cache: false}
  - {name: writes, match: {methods: [POST]}, cache: false}
  - {name: a, match: {path_prefix: /a/}}""", None, ()),
    # GET alone: a HEAD of the same key selects another rule
    ("""  - {name: g, match: {path_prefix: /g/, methods: [GET]}}
  - {name: a, match: {path_prefix: /a/}}""", None, ("g", "default")),
    # hosts without the host in the key: two hosts share a key
    ("""  - {name: b, match: {host: [b.example.com]}}
  - {name: a, match: {path_prefix: /a/, host: [a.example.com]}}""", "[path, query]", ("b", "a", "default")),
    # with the host in the key, disjoint host lists never share a key (a wildcard may overlap)
    ("""  - {name: b, match: {host: [b.example.com], cookie: {name: x}}}
  - {name: a, match: {host: [a.example.com]}}
  - {name: w, match: {host: ["*.example.com"]}}""", None, ("b", "w", "default")),
])
def test_restatus_rules(rules: str, key: str | None, expected: tuple[str, ...]) -> None:
    policy = _policy(rules, key) if key else _policy(rules)
    assert restatus_rules(policy) == expected


def test_the_vcl_rewrites_hits_of_those_rules_only() -> None:
    vcl = next(f.text for f in compile_policy(loads(POLICY, "cs.yaml"), ("varnish",)).files
               if f.path.endswith("default.vcl"))
    assert '} elsif (var.get("rule") == "json" || var.get("rule") == "api" || var.get("rule") == "default") {' in vcl
    assert 'header.append(beresp.http.Cache-Status, "cachewright; hit; detail=" + var.get("rule"));' in vcl


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with LocalRuntime().start(loads(POLICY, "cache-status.yaml"), ENGINES) as running:
        yield running


def _get(stack: Stack, engine: str, path: str, headers: dict[str, str] | None = None,
         method: str = "GET") -> Response:
    response = Client(stack.endpoints[engine], HOST, stack.ca_file).request(method, path, headers or {})
    assert response.status in (200, 304), response.summary()
    return response


def _statuses(response: Response) -> list[str]:
    return [v for k, v in response.headers if k.lower() == "cache-status"]


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_a_hit_on_an_object_another_rule_stored_names_its_own_rule(stack: Stack, engine: str) -> None:
    path = f"/api/shared-{engine}"
    json = {"Accept": "application/json"}
    assert _statuses(_get(stack, engine, path, json)) == ["cachewright; fwd=miss; detail=json"]
    time.sleep(0.5)  # let the engine store the miss before the hits
    assert _statuses(_get(stack, engine, path)) == ["cachewright; hit; detail=api"]
    assert _statuses(_get(stack, engine, path, json)) == ["cachewright; hit; detail=json"]
    with OriginClient(stack.origin.control_url) as origin:
        assert origin.count(path, "GET") == 1


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_a_hit_answers_with_the_status_stored_with_its_object(stack: Stack, engine: str) -> None:
    """Fresh hits of a rule that only matches on the key, also a HEAD and a 304 (which Varnish
    builds from the stored headers)."""
    path = f"/static/s-{engine}"
    with OriginClient(stack.origin.control_url) as origin:
        origin.add_rule({"path": path, "headers": {"ETag": '"v1"'}})
        assert _statuses(_get(stack, engine, path)) == ["cachewright; fwd=miss; detail=static"]
        time.sleep(0.5)
        for method in ("GET", "HEAD"):
            assert _statuses(_get(stack, engine, path, method=method)) == ["cachewright; hit; detail=static"]
        not_modified = _get(stack, engine, path, {"If-None-Match": '"v1"'})
        assert not_modified.status == 304, not_modified.summary()
        assert _statuses(not_modified) == ["cachewright; hit; detail=static"]
        assert origin.count(path, "GET") + origin.count(path, "HEAD") == 1
