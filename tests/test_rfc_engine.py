"""What a ``respect`` policy's generated configs do as an RFC 9111 shared cache, on the real
engines (issue 19): revalidation (4.3), the origin's own stale windows (RFC 5861), any final
status with explicit freshness (3), Authorization (3.5), and the override headers that never
reach the origin unless keyed (generator/hygiene.py).

Each test proves what the origin saw (its request log and counts), not only a header.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator

import pytest

from cachewright.generator.hygiene import OVERRIDE_HEADERS
from cachewright.generator.load import loads
from cachewright.harness.client import Client, Response
from cachewright.harness.origin import OriginClient
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime

ENGINES = ("nginx", "varnish")
HOST = "rfc.example.com"
POLICY = f"""
version: 1
name: rfc
origin: {{url: http://app:8000}}
listen:
  http: {{port: 80}}
  hosts: [{HOST}]
cache: {{default_ttl: 1m, targeted_fields: [Cachewright-Cache-Control, CDN-Cache-Control]}}
rules:
  - name: tenant
    match: {{path_prefix: /tenant/}}
    ttl: 1m
    key: {{headers: [X-Forwarded-Host]}}
  - name: fixed
    match: {{path_prefix: /fixed/}}
    ttl: 1m
    origin_headers: override
  - name: open
    match: {{path_prefix: /open/}}
    ttl: 1m
    relax: [authorization-lookup, request-cookie, set-cookie]
  - name: api
    match: {{path_prefix: /api/}}
    ttl: 1m
nginx: {{njs: true}}  # Age on nginx's hits (test_a_hit_carries_its_age_from_the_origins_date)
"""
BODY = 16 * 1024


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with LocalRuntime().start(loads(POLICY, "rfc.yaml"), ENGINES) as running:
        yield running


@pytest.fixture
def origin(stack: Stack) -> Iterator[OriginClient]:
    with OriginClient(stack.origin.control_url) as client:
        yield client


def _get(stack: Stack, engine: str, path: str, headers: dict[str, str] | None = None,
         method: str = "GET") -> Response:
    return Client(stack.endpoints[engine], HOST, stack.ca_file).request(method, path, headers or {})


def _settle() -> None:
    """nginx writes its cache file after answering: give it the moment before a hit is asked."""
    time.sleep(0.3)


def _twice(stack: Stack, engine: str, path: str, first: dict[str, str] | None = None) -> int:
    """GET ``path`` (with ``first``'s headers), let the engine write, GET it plainly: how many
    requests the origin saw for it."""
    _get(stack, engine, path, first)
    _settle()
    _get(stack, engine, path)
    with OriginClient(stack.origin.control_url) as origin:
        return origin.count(path)


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_an_expired_entry_costs_the_origin_a_304_not_the_body(stack: Stack, origin: OriginClient,
                                                              engine: str) -> None:
    """RFC 9111 4.3.1: the stored validators are sent; 4.3.4: the 304 freshens the entry."""
    path = f"/api/reval-{engine}"
    origin.add_rule({"path": path, "cache_control": "max-age=1", "etag": "v1",
                     "last_modified": 1_700_000_000, "body": "filler", "body_size": BODY})
    first = _get(stack, engine, path)
    assert first.status == 200 and len(first.body) == BODY
    _settle()
    assert _get(stack, engine, path).status == 200
    assert origin.count(path) == 1
    time.sleep(2.2)  # expired (max-age=1)
    again = _get(stack, engine, path)
    assert again.status == 200 and again.body == first.body, again.summary()
    seen = origin.requests(path=path)
    assert len(seen) == 2, [s.headers for s in seen]
    assert seen[1].header("If-None-Match") == '"v1"', seen[1].headers
    assert seen[1].header("If-Modified-Since"), seen[1].headers
    _settle()
    fresh = _get(stack, engine, path)  # the 304 made the entry fresh again
    assert fresh.status == 200 and fresh.body == first.body
    assert origin.count(path) == 2


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_without_validators_an_expired_entry_is_fetched_whole(stack: Stack, origin: OriginClient,
                                                              engine: str) -> None:
    path = f"/api/noval-{engine}"
    origin.add_rule({"path": path, "cache_control": "max-age=1", "body": "filler", "body_size": 64})
    _get(stack, engine, path)
    time.sleep(2.2)
    _get(stack, engine, path)
    seen = origin.requests(path=path)
    assert len(seen) == 2 and seen[1].header("If-None-Match") is None


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_the_origins_stale_while_revalidate_is_honoured(stack: Stack, origin: OriginClient,
                                                        engine: str) -> None:
    """RFC 5861 3: within stale-while-revalidate the stale answer comes at once and one
    background request refreshes it (the policy's own window is 0)."""
    path = f"/api/swr-{engine}"
    origin.add_rule({"path": path, "cache_control": "max-age=1, stale-while-revalidate=30"})
    first = _get(stack, engine, path)
    _settle()
    time.sleep(2.2)
    origin.add_rule({"path": path, "cache_control": "max-age=1, stale-while-revalidate=30",
                     "delay": 1.5})
    started = time.monotonic()
    stale = _get(stack, engine, path)
    took = time.monotonic() - started
    assert took < 1.0, f"waited {took:.2f}s for the origin: {stale.summary()}"
    assert stale.response_id == first.response_id, stale.summary()
    deadline = time.monotonic() + 5
    while origin.count(path) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert origin.count(path) == 2  # the background refresh


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("status", [303, 400, 405, 500])
def test_any_final_status_with_explicit_freshness_is_stored(stack: Stack, origin: OriginClient,
                                                            engine: str, status: int) -> None:
    """RFC 9111 3: a response with explicit freshness may be stored whatever its final status."""
    path = f"/api/status-{status}-{engine}"
    origin.add_rule({"path": path, "status": status, "cache_control": "max-age=60"})
    first = _get(stack, engine, path)
    assert first.status == status
    _settle()
    second = _get(stack, engine, path)
    assert second.status == status and second.response_id == first.response_id, second.summary()
    assert origin.count(path) == 1


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_without_explicit_freshness_an_error_is_not_stored(stack: Stack, origin: OriginClient,
                                                           engine: str) -> None:
    path = f"/api/plain-500-{engine}"
    origin.add_rule({"path": path, "status": 500})
    assert _twice(stack, engine, path) == 2


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_an_override_rule_does_not_store_other_statuses(stack: Stack, origin: OriginClient,
                                                        engine: str) -> None:
    path = f"/fixed/status-400-{engine}"
    origin.add_rule({"path": path, "status": 400, "cache_control": "max-age=60"})
    assert _twice(stack, engine, path) == 2


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_override_headers_reach_the_origin_only_where_the_rule_keys_on_them(
        stack: Stack, origin: OriginClient, engine: str) -> None:
    sent = {name: "cw.example" for name in OVERRIDE_HEADERS}
    plain, keyed = f"/api/hyg-{engine}", f"/tenant/hyg-{engine}"
    for path in (plain, keyed):
        assert _get(stack, engine, path, sent).status == 200
    received = {n.lower() for n, _ in origin.requests(path=plain)[0].headers}
    assert not received & {h.lower() for h in OVERRIDE_HEADERS}, received
    keyed_seen = origin.requests(path=keyed)[0]
    assert keyed_seen.header("X-Forwarded-Host") == "cw.example"
    assert keyed_seen.header("X-Host") is None
    _settle()
    _get(stack, engine, keyed, {"X-Forwarded-Host": "other.example"})  # its own entry
    assert origin.count(keyed) == 2


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("cache_control", "shared"), [
    ("public, max-age=60", True), ("s-maxage=60", True), ("max-age=60, must-revalidate", True),
    ("max-age=60", False)])
def test_an_answer_to_authorization_is_shared_only_when_it_says_so(
        stack: Stack, origin: OriginClient, engine: str, cache_control: str, shared: bool) -> None:
    """RFC 9111 3.5: public, s-maxage or must-revalidate make it storable; a request with
    Authorization is itself never answered from the cache (a documented deviation)."""
    path = f"/api/auth-{cache_control.replace(' ', '').replace(',', '-').replace('=', '')}-{engine}"
    origin.add_rule({"path": path, "cache_control": cache_control})
    auth = {"Authorization": "Bearer cw-token"}
    first = _get(stack, engine, path, auth)
    _settle()
    anonymous = _get(stack, engine, path)
    assert (anonymous.response_id == first.response_id) is shared, anonymous.summary()
    assert origin.count(path) == (1 if shared else 2)
    _get(stack, engine, path, auth)  # never from the cache
    assert origin.count(path) == (2 if shared else 3)


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_an_override_rule_never_stores_an_answer_to_authorization(
        stack: Stack, origin: OriginClient, engine: str) -> None:
    path = f"/fixed/auth-{engine}"
    origin.add_rule({"path": path, "cache_control": "public, max-age=60"})
    assert _twice(stack, engine, path, {"Authorization": "Bearer cw-token"}) == 2


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_a_rule_that_relaxes_the_deviations_does_what_rfc_9111_allows(
        stack: Stack, origin: OriginClient, engine: str) -> None:
    """relax: [authorization-lookup, request-cookie, set-cookie]: requests with cookies or
    Authorization are looked up and stored like any other, and so is an answer with Set-Cookie."""
    cookie, auth, sets = (f"/open/{what}-{engine}" for what in ("cookie", "auth", "set-cookie"))
    for path in (cookie, auth, sets):
        origin.add_rule({"path": path, "cache_control": "max-age=60",
                         **({"set_cookie": ["cw=1; Path=/"]} if path == sets else {})})
    first = _get(stack, engine, cookie, {"Cookie": "a=1"})
    _settle()
    assert _get(stack, engine, cookie, {"Cookie": "a=2"}).response_id == first.response_id
    first = _get(stack, engine, auth)
    _settle()
    assert _get(stack, engine, auth, {"Authorization": "Bearer x"}).response_id == first.response_id
    first = _get(stack, engine, sets)
    _settle()
    again = _get(stack, engine, sets)
    assert again.response_id == first.response_id and again.header("Set-Cookie") == "cw=1; Path=/"
    assert [origin.count(p) for p in (cookie, auth, sets)] == [1, 1, 1]


@pytest.mark.engine
def test_the_policys_targeted_field_decides_first_on_varnish(stack: Stack, origin: OriginClient) -> None:
    """RFC 9213: cache.targeted_fields in order, the first present and parsing wins over
    CDN-Cache-Control and Cache-Control (nginx: the http.targeted_cc limit)."""
    ours, cdn = "/api/targeted-ours", "/api/targeted-cdn"
    origin.add_rule({"path": ours, "cache_control": "no-store", "headers": {
        "Cachewright-Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store"}})
    origin.add_rule({"path": cdn, "cache_control": "max-age=60", "headers": {
        "Cachewright-Cache-Control": "max-age=60, %%%", "CDN-Cache-Control": "no-store"}})
    for path, sent in ((ours, "no-store"), (cdn, "max-age=60")):
        first = _get(stack, "varnish", path)
        assert first.header("Cache-Control") == sent  # clients get the origin's Cache-Control
        _settle()
        _get(stack, "varnish", path)
    assert origin.count(ours) == 1  # stored for 60 s by our field
    assert origin.count(cdn) == 2  # ours does not parse: CDN-Cache-Control's no-store decides


HEURISTIC = """
version: 1
name: heuristic
origin: {url: http://app:8000}
listen: {http: {port: 80}, hosts: [rfc.example.com]}
rules:
  - name: docs
    match: {path_prefix: /docs/}
    relax: [heuristic-freshness]
"""


@pytest.mark.engine
def test_relaxing_heuristic_freshness_stores_by_last_modified_on_varnish() -> None:
    """RFC 9111 4.2.2 with relax: [heuristic-freshness]: Last-Modified ten days ago and no
    lifetime is kept (a tenth of its age, at most a day); without the relax it is not."""
    lm = int(time.time()) - 10 * 86400
    with LocalRuntime().start(loads(HEURISTIC, "heuristic.yaml"), ("varnish",)) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        for path in ("/docs/a", "/other/a"):
            origin.add_rule({"path": path, "last_modified": lm})
            _get(stack, "varnish", path)
            _settle()
            _get(stack, "varnish", path)
        assert origin.count("/docs/a") == 1  # heuristic lifetime
        assert origin.count("/other/a") == 2  # the default rule keeps the deviation


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_a_hit_carries_its_age_from_the_origins_date(stack: Stack, origin: OriginClient,
                                                     engine: str) -> None:
    """RFC 9111 4, 5.1: a response answered from storage carries Age, its current age: 30 s for
    an answer whose Date is 30 s old (nginx: counted by njs, nginx: {njs: true}), at least the
    origin's own Age, and on a miss the origin's Age passes unchanged."""
    dated, aged = f"/api/dated-{engine}", f"/api/aged-{engine}"
    origin.add_rule({"path": dated, "cache_control": "max-age=600",
                     "headers": {"Date": email.utils.formatdate(time.time() - 30, usegmt=True)}})
    origin.add_rule({"path": aged, "cache_control": "max-age=600", "headers": {"Age": "20"}})
    _get(stack, engine, dated)
    miss = _get(stack, engine, aged)
    assert miss.header("Age") in ("20", "21"), miss.summary()
    _settle()
    for path, least in ((dated, 30), (aged, 20)):
        hit = _get(stack, engine, path)
        age = hit.header("Age") or ""
        assert origin.count(path) == 1 and age.isdigit(), hit.summary()
        assert least <= int(age) <= least + 3, (path, hit.summary())


NO_CACHE = """
version: 1
name: request-no-cache
origin: {url: http://app:8000}
listen: {http: {port: 80}, hosts: [rfc.example.com]}
cache: {origin_headers: respect}
rules:
  - name: news
    match: {path_prefix: /news/}
    relax: [request-no-cache]
"""
#: the client's directives that ask for the origin, and one that does not
ASKS = ({"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"}, {"Pragma": "no-cache"})
TELLS_NOTHING = ({"Cache-Control": "max-age=60"}, {"Cache-Control": "no-transform", "Pragma": "no-cache"})


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_relaxing_request_no_cache_fetches_and_stores_anew(engine: str) -> None:
    """RFC 9111 5.2.1.4, 5.2.1.1, 5.4 with relax: [request-no-cache]: the client's no-cache,
    max-age=0 and Pragma: no-cache (without Cache-Control) reach the origin and the answer
    replaces the stored one; other directives do not. Without the relax (the default rule) the
    client's no-cache is answered from the cache."""
    with LocalRuntime().start(loads(NO_CACHE, "no-cache.yaml"), (engine,)) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        for path in ("/news/a", "/other/a"):
            origin.add_rule({"path": path, "cache_control": "max-age=60"})
            _get(stack, engine, path)
            _settle()
        for n, asks in enumerate(ASKS, start=2):
            sent = _get(stack, engine, "/news/a", asks)
            assert sent.status == 200 and origin.count("/news/a") == n, (asks, sent.summary())
            _settle()
            assert _get(stack, engine, "/news/a").status == 200  # the new answer was stored
            assert origin.count("/news/a") == n, asks
        for tells in TELLS_NOTHING:
            _get(stack, engine, "/news/a", tells)
        assert origin.count("/news/a") == 1 + len(ASKS)
        _get(stack, engine, "/other/a", {"Cache-Control": "no-cache"})
        assert origin.count("/other/a") == 1  # the deviation holds where it is not relaxed
