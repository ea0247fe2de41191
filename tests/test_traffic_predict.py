"""What a policy predicts for a log, on small logs computed by hand: hits within the TTL, a new
origin request after it, bypass rules, keys split by a cookie, ignored query parameters,
statuses, stale windows, purges, refusals, the bounded key table; and deterministic output on
the examples' policies."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from cachewright.generator.load import load, loads
from cachewright.generator.model import Policy
from cachewright.harness.selection.explain import build_request, key_parts, split_query
from cachewright.harness.selection.request import select_rule
from cachewright.harness.traffic.entry import Entry
from cachewright.harness.traffic.logs import read
from cachewright.harness.traffic.predict import Predictor, QueryFilter, key_text
from cachewright.harness.traffic.report import Measured, Prediction, RuleRow, render
from cachewright.harness.traffic.synth import url_mix, zipf_log

REPO = Path(__file__).resolve().parents[1]
FOUR = ("api", "shop", "static-site", "wordpress")
POLICY = """\
version: 1
name: replay
origin: {url: http://app:8000}
cache:
  default_ttl: 1m
  query: {ignore: [utm_*]}
  stale: {while_revalidate: 0s, if_error: 0s}
  status_ttl: {404: 5s}
rules:
  - name: api
    match: {path_prefix: /api/}
    ttl: 10s
    origin_headers: override
  - name: private
    match: {path_prefix: /private/}
    cache: false
  - name: priced
    match: {path_prefix: /p/}
    ttl: 1m
    origin_headers: override
    key: {cookies: [currency]}
"""


def policy(extra: str = "") -> Policy:
    return loads(POLICY.replace("  stale: {while_revalidate: 0s, if_error: 0s}\n", extra or
                                "  stale: {while_revalidate: 0s, if_error: 0s}\n"), "policy.yaml")


def predict(p: Policy, requests: list[tuple[float, str]], *, status: int = 200,
            cookie: str | None = None, max_keys: int = 1000) -> Prediction:
    """``requests``: (time, "METHOD /target") pairs, as one log."""
    predictor = Predictor(p, max_keys=max_keys)
    for n, (when, line) in enumerate(requests, 1):
        method, target = line.split(" ", 1)
        headers = (("Cookie", cookie),) if cookie else ()
        predictor.feed(Entry(n, method, target, None, headers, when, status))
    return predictor.result("test.log", "combined")


def row(result: Prediction, rule: str) -> RuleRow:
    return next(r for r in result.rules if r.rule == rule)


def test_three_requests_within_the_ttl_are_one_origin_request_and_two_hits() -> None:
    api = row(predict(policy(), [(0, "GET /api/a"), (3, "GET /api/a"), (9, "GET /api/a")]), "api")
    assert (api.requests, api.cacheable, api.hits, api.origin_requests, api.distinct_keys) == (3, 3, 2, 1, 1)
    assert api.hit_ratio == pytest.approx(2 / 3, abs=1e-4)


def test_after_the_ttl_the_next_request_goes_to_the_origin_again() -> None:
    api = row(predict(policy(), [(0, "GET /api/a"), (9, "GET /api/a"), (10, "GET /api/a"),
                                 (15, "GET /api/a")]), "api")
    assert (api.hits, api.origin_requests) == (2, 2)  # fresh for [0, 10): 10 is a miss


def test_a_bypass_rule_never_hits() -> None:
    private = row(predict(policy(), [(0, "GET /private/a")] * 3), "private")
    assert (private.requests, private.cacheable, private.hits, private.origin_requests) == (3, 0, 0, 3)


def test_a_key_cookie_splits_keys() -> None:
    p = policy()
    eur = [(0, "GET /p/1"), (1, "GET /p/1")]
    result = Predictor(p)
    for n, (when, cookie) in enumerate([(0, "currency=eur"), (1, "currency=usd"), (2, "currency=eur"),
                                        (3, "currency=usd; sid=9")], 1):
        result.feed(Entry(n, "GET", "/p/1", None, (("Cookie", cookie),), when, 200))
    priced = row(result.result("t", "json"), "priced")
    assert (priced.distinct_keys, priced.hits, priced.origin_requests) == (2, 2, 2)
    assert row(predict(p, eur), "priced").distinct_keys == 1


def test_authorization_bypasses_and_a_vary_header_splits_keys() -> None:
    p = load(REPO / "examples" / "shop" / "policy.yaml")
    predictor = Predictor(p)
    sent = [(), (("Accept-Language", "de"),), (("Accept-Language", "fr"),), (("Accept-Language", "de"),),
            (("Authorization", "Bearer t"),)]
    for n, headers in enumerate(sent, 1):
        predictor.feed(Entry(n, "GET", "/products/1", None, headers, float(n), 200))
    products = row(predictor.result("t", "json"), "products")
    # keys: no language, de, fr; de again hits; Authorization bypasses (the origin, no lookup)
    assert (products.distinct_keys, products.cacheable, products.hits, products.origin_requests) == (3, 4, 1, 4)


def test_cookies_bypass_a_rule_that_neither_strips_nor_keys_on_them() -> None:
    api = row(predict(policy(), [(0, "GET /api/a")] * 3, cookie="sid=1"), "api")
    assert (api.cacheable, api.hits, api.origin_requests) == (0, 0, 3)


def test_ignored_query_parameters_share_a_key_and_others_split_it() -> None:
    result = predict(policy(), [(0, "GET /api/a?utm_source=x"), (1, "GET /api/a"),
                                (2, "GET /api/a?utm_medium=y&page=2"), (3, "GET /api/a?page=2")])
    api = row(result, "api")
    assert (api.distinct_keys, api.hits, api.origin_requests) == (2, 2, 2)
    assert {k.key for k in result.top_keys} == {"http://cachewright.test/api/a",
                                                "http://cachewright.test/api/a?page=2"}


def test_status_ttl_and_statuses_never_stored() -> None:
    p = policy()
    assert row(predict(p, [(0, "GET /api/a"), (4, "GET /api/a"), (6, "GET /api/a")], status=404),
               "api").hits == 1  # 404: 5s (status_ttl), not the rule's 10s
    assert row(predict(p, [(0, "GET /api/a")] * 3, status=500), "api").hits == 0
    assert row(predict(p, [(0, "GET /api/a")] * 3, status=304), "api").hits == 2  # from a stored 200


def test_stale_while_revalidate_serves_from_the_cache_and_refreshes() -> None:
    p = policy("  stale: {while_revalidate: 30s, if_error: 0s}\n")
    api = row(predict(p, [(0, "GET /api/a"), (20, "GET /api/a"), (25, "GET /api/a"), (70, "GET /api/a")]), "api")
    # 0 miss; 20 stale (refresh, fresh until 30); 25 hit; 70: past 30 + 30s, a miss
    assert (api.hits, api.stale, api.origin_requests) == (2, 1, 3)


def test_a_purge_empties_the_key_and_refused_requests_reach_no_rule() -> None:
    p = loads(POLICY + "purge: {allow: [127.0.0.1/32], kinds: [url]}\n", "policy.yaml")
    result = predict(p, [(0, "GET /api/a"), (1, "PURGE /api/a"), (2, "GET /api/a"),
                         (3, "GET /api/../etc"), (4, "TRACE /api/a"), (5, "DELETE /api/a")])
    assert (result.purges, result.refused) == (1, 2)  # a dot segment (400), TRACE (501)
    api = row(result, "api")
    assert (api.requests, api.cacheable, api.hits, api.origin_requests) == (3, 2, 0, 3)


def test_the_key_table_is_bounded_and_says_so() -> None:
    result = predict(policy(), [(n, f"GET /api/{n}") for n in range(100)] + [(200, "GET /api/x")] * 3,
                     max_keys=10)
    assert result.keys_forgotten > 0 and row(result, "api").requests == 103
    assert any("key table reached its limit" in a for a in result.assumptions)


def test_time_less_lines_take_the_time_before() -> None:
    api = row(predict(policy(), [(0, "GET /api/a"), (None, "GET /api/a")]), "api")  # type: ignore[list-item]
    assert api.hits == 1


def test_the_key_is_the_one_explain_computes() -> None:
    p = load(REPO / "examples" / "shop" / "policy.yaml")
    for target, cookie in (("/products/1?utm_source=x&b=2", "currency=eur"), ("/c/x", None), ("/", None)):
        request = build_request(p, "GET", target, [f"Cookie: {cookie}"] if cookie else [])
        parts = key_parts(p, select_rule(p, request), request, "https")
        predictor = Predictor(p)
        predictor.feed(Entry(1, "GET", target, None, (("Cookie", cookie),) if cookie else (), 0.0, 200))
        (key,) = predictor.table
        url, extras = key_text(tuple((n, "" if n == "query" else v) for n, v in parts))
        query = dict(parts)["query"]
        assert key == url + ("?" + query if query else "") + extras


@pytest.mark.parametrize("query", ["utm_source=1", "a=1&utm_x=2&&b", "utm_=&x", "", "b&a=1&utm"])
def test_the_query_filter_is_explains(query: str) -> None:
    p = policy()
    assert QueryFilter(p)(query) == split_query(p, query)[0]


def test_assumptions_name_respect_rules_and_fleets() -> None:
    result = predict(load(REPO / "examples" / "fleet-shard" / "policy.yaml"), [(0, "GET /")])
    text = "\n".join(result.assumptions)
    assert "fleet is predicted as one cache" in text
    shop = predict(load(REPO / "examples" / "shop" / "policy.yaml"), [(0, "GET /")])
    assert "origin_headers: respect (products, category, default)" in shop.assumptions[0]


@pytest.mark.parametrize("name", FOUR)
def test_an_examples_log_gives_the_same_prediction_every_time(name: str) -> None:
    p = load(REPO / "examples" / name / "policy.yaml")
    log = io.StringIO()
    zipf_log(p, 3000, 11, log, urls=300, span=3600)
    runs = []
    for _ in range(2):
        predictor = Predictor(p)
        predictor.feed_all(read(io.BytesIO(log.getvalue().encode())))
        runs.append(json.dumps(predictor.result("log", "combined").to_json(), sort_keys=True))
    assert runs[0] == runs[1]
    data = json.loads(runs[0])
    assert data["malformed"]["count"] == 0 and data["totals"]["requests"] == 3000 - data["refused"]
    covered = {u.rule for u in url_mix(p, 300, random.Random(11))}
    assert {r["rule"] for r in data["rules"] if r["requests"]} == covered


def test_the_generator_is_deterministic_and_its_lines_select_their_rules() -> None:
    p = load(REPO / "examples" / "shop" / "policy.yaml")
    logs = []
    for _ in range(2):
        out = io.StringIO()
        zipf_log(p, 2000, 3, out, urls=100, span=600)
        logs.append(out.getvalue())
    assert logs[0] == logs[1] and logs[0].count("\n") == 2000
    other = io.StringIO()
    zipf_log(p, 2000, 4, other, urls=100, span=600)
    assert other.getvalue() != logs[0]


def test_a_soft_purge_expires_the_key_into_its_stale_window() -> None:
    p = loads(POLICY.replace("while_revalidate: 0s", "while_revalidate: 30s")
              + "purge: {allow: [127.0.0.1/32], kinds: [url, pattern], soft: true}\n", "policy.yaml")
    result = predict(p, [(0, "GET /api/a"), (1, "PURGE /api/a"), (2, "GET /api/a"), (3, "BAN /api/a"),
                         (4, "GET /api/a")])
    api = row(result, "api")
    # 2: stale (expired by the purge at 1), refreshed; 4: fresh (a BAN is only counted)
    assert (result.purges, api.hits, api.stale, api.origin_requests) == (2, 2, 1, 2)


def test_measured_figures_go_beside_the_prediction() -> None:
    result = predict(policy(), [(0, "GET /api/a"), (1, "GET /api/a"), (2, "GET /private/a")])
    both = result.with_measured({"api": Measured("nginx", 2, 1, 1), "private": Measured("nginx", 1, 0, 1)})
    both = both.with_measured({"api": Measured("varnish", 2, 0, 2)})
    assert [m.engine for m in row(both, "api").measured] == ["nginx", "varnish"]
    assert both.totals.measured == (Measured("nginx", 3, 1, 2), Measured("varnish", 2, 0, 2))
    table = render(both).splitlines()[3:]
    assert table[0].endswith("keys  nginx hit ratio  nginx origin  varnish hit ratio  varnish origin")
    api = next(line for line in table if line.startswith("api"))
    assert api.split()[-4:] == ["50.0%", "1", "0.0%", "2"]
    data = both.to_json()
    assert data["rules"][0]["measured"] == [
        {"engine": "nginx", "requests": 2, "hits": 1, "hit_ratio": 0.5, "origin_requests": 1},
        {"engine": "varnish", "requests": 2, "hits": 0, "hit_ratio": 0.0, "origin_requests": 2}]
    assert data["totals"]["measured"][0]["hit_ratio"] == pytest.approx(1 / 3, abs=1e-4)
