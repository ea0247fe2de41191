"""The request path on both real engines: what the origin receives, which rule answers, and which
guard refuses what, in which order (nginx does all of it in one dispatch map; see
generator/nginx_dispatch.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.harness.client import Client, Response
from cachewright.harness.origin import OriginClient, parse_echo
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.selection import Request, select_rule

ENGINES = ("nginx", "varnish")
HOST = "a.example.com"
POLICY = f"""
version: 1
name: dispatch
origin: {{url: http://app:8000}}
listen:
  http: {{port: 80}}
  hosts: [{HOST}, "*.b.example.com"]
cache:
  default_ttl: 1m
  query: {{ignore: [utm_*]}}
rules:
  - name: feeds
    match: {{path_regex: "/feed/?$"}}
    ttl: 1m
  - name: members
    match: {{path_prefix: /m/, cookie: {{name: member, regex: "^y"}}}}
    cache: false
  - name: writes
    match: {{path_prefix: /m/, methods: [POST]}}
    cache: false
  - name: assets
    match: {{path_prefix: /m/, extensions: [css]}}
    ttl: 1m
    strip_cookies: true
  - name: short
    match: {{path_prefix: /short/}}
    ttl: 3s
  - name: home
    match: {{path: /}}
    ttl: 1m
  - name: numbered
    match: {{path_regex: '^/n/(?<id>[0-9]+)(?P<tail>/[a-z]+)?$'}}
    ttl: 1m
  - name: exact
    match: {{path: /ex/a}}
    ttl: 1m
  - name: under
    match: {{path_prefix: /ex/}}
    ttl: 1m
  - name: escaped
    match: {{path: "/%C3%A9"}}
    ttl: 1m
purge:
  allow: [127.0.0.1/32]
"""

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    policy: Policy = loads(POLICY, "dispatch.yaml")
    with LocalRuntime().start(policy, ENGINES) as running:
        yield running


def _client(stack: Stack, engine: str) -> Client:
    return Client(stack.endpoints[engine], HOST, stack.ca_file)


def _detail(response: Response) -> str:
    return (response.header("Cache-Status") or "").rsplit("detail=", 1)[-1]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("target", "seen"), [
    ("/a//b%c3%a9%20+;x?x=1%2F&y", "/a//b%c3%a9%20+;x?x=1%2F&y"),   # raw, untouched
    ("/p?utm_source=x&a=1", "/p?a=1"),                               # ignored parameter removed
    ("/p?a=1&utm_medium=y", "/p?a=1"),
    ("/p?utm_source=x", "/p"),
])
def test_the_origin_receives_the_target_as_keyed(stack: Stack, engine: str, target: str, seen: str) -> None:
    response = _client(stack, engine).request("GET", target, {"Cache-Control": "no-cache"})
    assert response.status == 200, response.summary()
    assert parse_echo(response.body).target == seen


@pytest.mark.parametrize("engine", ENGINES)
def test_rules_are_chosen_first_match_with_their_conditions(stack: Stack, engine: str) -> None:
    client = _client(stack, engine)
    assert _detail(client.request("GET", "/x/feed")) == "feeds"                     # path_regex
    assert _detail(client.request("GET", "/x/feed?utm_source=1")) == "feeds"
    assert _detail(client.request("GET", "/m/a.css", {"Cookie": "member=yes"})) == "members"
    assert _detail(client.request("GET", "/m/a.css", {"Cookie": "member=no"})) == "assets"
    assert _detail(client.request("POST", "/m/a.css", body=b"x=1")) == "writes"      # methods
    assert _detail(client.request("GET", "/m/a.CSS")) == "assets"                   # extension case
    assert _detail(client.request("GET", "/m/a.css?x=.png")) == "assets"            # query is not path
    assert _detail(client.request("GET", "/M/a.css")) == "default"                  # prefix case
    assert _detail(client.request("GET", "/m/x", host="x.b.example.com")) == "default"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("target", "rule"), [
    ("/", "home"), ("/?a=1", "home"), ("/?", "home"), ("//", "default"), ("/x", "default"),
    ("/n/12", "numbered"), ("/n/12/ab?x=1", "numbered"), ("/n/12/", "default"), ("/n/x", "default"),
    ("/ex/a", "exact"), ("/ex/a?q=1", "exact"), ("/ex/a/", "under"), ("/ex/ab", "under"),
    ("/ex/", "under"), ("/%C3%A9", "escaped"), ("/%c3%a9?x", "escaped"), ("/%c3%a9x", "default"),
])
def test_exact_paths_and_named_groups_select_their_rule(stack: Stack, engine: str, target: str,
                                                          rule: str) -> None:
    """``path`` is the whole raw path (a query may follow, nothing else), %-escapes in either hex
    case; a regex with named groups means what it says (they are written as (?:...)). The model
    (harness/selection/request.py) agrees with the engine on each."""
    policy = loads(POLICY, "dispatch.yaml")
    path, _, query = target.partition("?")
    assert select_rule(policy, Request("GET", path, HOST, query)).name == rule
    response = _client(stack, engine).request("GET", target)
    assert response.status == 200 and _detail(response) == rule, response.summary()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("method", "target", "host", "body", "status"), [
    ("GET", "/a/../b", HOST, None, 400),
    ("GET", "/a/%2e%2E/b", HOST, None, 400),
    ("GET", "/a\\b", HOST, None, 400),
    ("GET", "/%61", HOST, None, 400),                 # encoded unreserved character
    ("FOO", "/x", HOST, None, 501),
    ("GET", "/x", "other.example.com", None, 421),
    ("GET", "/x", "b.example.com", None, 421),         # *.b.example.com needs a label
    ("FOO", "/a/../b", "other.example.com", None, 400),  # the path guard first,
    ("FOO", "/x", "other.example.com", None, 501),       # then the method,
    ("POST", "/x", HOST, b"x=1", 200),
])
def test_guards_refuse_in_order(stack: Stack, engine: str, method: str, target: str, host: str,
                                body: bytes | None, status: int) -> None:
    response = _client(stack, engine).request(method, target, host=host, body=body)
    assert response.status == status, response.summary()
    if status != 200:
        assert _detail(response) == "guard"


def test_nginx_refuses_a_body_on_get_before_the_host(stack: Stack) -> None:
    """nginx refuses GET and HEAD with a body (Varnish drops the body instead)."""
    client = _client(stack, "nginx")
    assert client.request("GET", "/x", body=b"x=1").status == 400
    assert client.request("GET", "/x", host="other.example.com", body=b"x=1").status == 400
    assert client.request("GET", "/x", body=b"").status == 200       # Content-Length: 0


@pytest.mark.parametrize("engine", ENGINES)
def test_purge_reaches_the_rule_a_get_would_use(stack: Stack, engine: str) -> None:
    client = _client(stack, engine)
    first = client.request("GET", "/m/p.css?utm_source=1")
    assert first.status == 200
    assert (client.request("GET", "/m/p.css").header("Cache-Status") or "").startswith("cachewright; hit")
    purge = client.request("PURGE", "/m/p.css")
    assert purge.status == 200, purge.summary()
    again = client.request("GET", "/m/p.css")
    assert "fwd=miss" in (again.header("Cache-Status") or "")
    assert parse_echo(again.body).response_id != parse_echo(first.body).response_id


@pytest.mark.parametrize("engine", ENGINES)
def test_a_hit_serves_the_response_its_entry_holds_now(stack: Stack, engine: str) -> None:
    """nginx keeps cache files open between hits (open_file_cache): after a purge and after an
    expiry the entry is a new file, and the hits that follow must serve it, not the old one."""
    client = _client(stack, engine)
    path = f"/short/entry-{engine}"

    def served(expect_hit: bool) -> str:
        response = client.request("GET", path)
        assert response.status == 200, response.summary()
        status = response.header("Cache-Status") or ""
        assert status.startswith("cachewright; hit") == expect_hit, status
        if not expect_hit:
            # The engine stores a fetched response once the origin's side is complete, which may
            # be just after the client has it: the next request must not overtake that.
            time.sleep(0.5)
        return parse_echo(response.body).response_id

    first = served(False)
    assert [served(True) for _ in range(3)] == [first] * 3
    assert client.request("PURGE", path).status == 200
    second = served(False)
    assert second != first
    assert [served(True) for _ in range(3)] == [second] * 3
    time.sleep(4.2)  # the rule's TTL is 3 s (nginx counts whole seconds): the next request refetches
    third = served(False)
    assert third not in (first, second)
    assert [served(True) for _ in range(3)] == [third] * 3
    with OriginClient(stack.origin.control_url) as origin:
        assert origin.count(path, "GET") == 3  # the nine hits never reached it


@pytest.mark.parametrize("engine", ENGINES)
def test_the_origins_cache_status_is_replaced_by_ours(stack: Stack, engine: str) -> None:
    """One Cache-Status line, ours, on a miss and on a hit: an origin's (or an upstream cache's)
    is removed when the response arrives (Varnish stores a hit's with the object, and replaces it
    when it delivers anything but a fresh hit)."""
    path = f"/upstream-status-{engine}"
    with OriginClient(stack.origin.control_url) as origin:
        origin.add_rule({"path": path, "cache_control": "max-age=60",
                         "headers": {"Cache-Status": "upstream; hit"}})
        client = _client(stack, engine)
        seen = []
        for _ in range(2):
            response = client.request("GET", path)
            assert response.status == 200, response.summary()
            seen.append([v for k, v in response.headers if k.lower() == "cache-status"])
            time.sleep(0.5)  # let the engine store the miss before the hit
        assert seen == [["cachewright; fwd=miss; detail=default"], ["cachewright; hit; detail=default"]]
        assert origin.count(path, "GET") == 1
