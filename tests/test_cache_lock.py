"""The cache lock never queues requests behind an answer the cache does not store (issue 19:
"no request waits on the cache lock longer than the origin took to answer").

Six clients ask for one URL at once; the origin takes 300 ms and answers something no engine
stores (``private``, a 503). A collapsing cache may hold the five latecomers until the first
answer arrives (300 ms), and each then fetches its own (300 ms): 600 ms at most, plus a margin.
Queued one after another they take 0.3, 0.8, 1.3, ... 2.8 s (nginx's ``proxy_cache_lock``
re-polls every 500 ms and lets one waiter through at a time; see docs/benchmarks.md, "Cache lock
latency"). The origin's count proves each request was its own fetch, not a stored answer.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest
import requests

import cachewright.harness.runtime.local as local
from cachewright.generator.load import loads
from cachewright.harness.origin import OriginClient, RuleSpec

POLICY = """
version: 1
name: lock
origin: {url: http://app:8000}
listen:
  http: {port: 80}
cache:
  origin_headers: respect
  default_ttl: 1m
  collapse_requests: true
"""
CLIENTS = 6
ORIGIN_S = 0.3
FAST_S = 0.02
#: the lock may hold a request for one origin answer, then it fetches its own; plus scheduling
BOUND_S = 2 * ORIGIN_S + 0.25
UNSTORED: dict[str, RuleSpec] = {
    "/lock/private": {"cache_control": "private, max-age=60"},
    "/lock/error": {"status": 503, "failure": "error"},
}


def _burst(url: str) -> list[float]:
    """Latencies of CLIENTS simultaneous GETs of ``url``, each on its own connection."""
    def one(_: int) -> float:
        started = time.monotonic()
        requests.get(url, timeout=30)
        return time.monotonic() - started
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


@pytest.mark.engine
@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_no_request_queues_behind_an_unstored_answer(engine: str) -> None:
    with local.LocalRuntime().start(loads(POLICY, "lock.yaml"), (engine,)) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        origin.add_rules([{"path": path, "delay": ORIGIN_S, **spec} for path, spec in UNSTORED.items()])
        base = stack.endpoints[engine].url()
        seen = {path: sorted(_burst(f"{base}{path}?n=1")) for path in UNSTORED}
        counts = {path: origin.count(path) for path in UNSTORED}
    shown = {path: " ".join(f"{t:.2f}" for t in times) for path, times in seen.items()}
    assert counts == dict.fromkeys(UNSTORED, CLIENTS), f"origin requests {counts}: expected one per request"
    slow = {path: shown[path] for path, times in seen.items() if times[-1] > BOUND_S}
    assert not slow, (f"{engine}: latencies (s) {slow}; each should be under {BOUND_S:.2f} s "
                      f"(the origin takes {ORIGIN_S} s): requests queued on the cache lock")


@pytest.mark.engine
def test_the_lock_still_collapses_a_stored_answer() -> None:
    """The control (a cache without a lock passes the test above): the same burst on a cacheable
    answer from a fast origin (20 ms) reaches the origin once per engine, and no waiter is held
    past nginx's 500 ms poll."""
    engines = ("nginx", "varnish")
    with local.LocalRuntime().start(loads(POLICY, "lock.yaml"), engines) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        origin.add_rule({"path": "/lock/stored", "delay": FAST_S, "cache_control": "max-age=60"})
        times = {engine: _burst(f"{stack.endpoints[engine].url()}/lock/stored?e={engine}") for engine in engines}
        count = origin.count("/lock/stored")
    assert count == len(engines), f"origin requests {count}, expected one per engine"
    slow = {engine: t for engine, t in times.items() if max(t) > 0.5 + 0.25}
    assert not slow, f"latencies (s) {slow}"
