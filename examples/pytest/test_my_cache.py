"""Your own cache tests, run against the real nginx and Varnish with your policy.

The cachewright pytest plugin (installed with cachewright) starts the sample origin and the
engines once per session and gives each test:

* ``cache``  - an HTTP client for one engine (each test runs once per engine);
* ``origin`` - the sample origin's control port: program answers, read request counts
  (the counts are the ground truth for "was it a hit").

Run this file against the shop example::

    pytest examples/pytest --cachewright-policy examples/shop/policy.yaml
    pytest examples/pytest --cachewright-policy examples/shop/policy.yaml --cachewright-engine varnish

or put the policy in your pytest configuration (``pyproject.toml``)::

    [tool.pytest.ini_options]
    cachewright_policy = "policy.yaml"

Each test uses a fresh path: the engines keep their cache for the whole session.
"""

from __future__ import annotations

import uuid

import pytest

from cachewright.harness.client import Client
from cachewright.harness.origin import OriginClient


def fresh(prefix: str) -> str:
    """A path no other test has used (the cache lives for the whole session)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def test_product_pages_are_cached(cache: Client, origin: OriginClient) -> None:
    """A product page misses once, then hits: the origin sees one request."""
    path = fresh("/products/")
    origin.add_rule({"path": path, "status": 200, "cache_control": "max-age=300"})
    first, second = cache.get(path), cache.get(path)
    assert first.cache.outcome == "miss" and first.cache.detail == "products"
    assert second.cache.outcome == "hit"
    assert second.response_id == first.response_id
    assert origin.count(path) == 1


def test_the_cart_is_never_cached(cache: Client, origin: OriginClient) -> None:
    """Every request to the cart reaches the origin."""
    path = fresh("/cart/")
    for _ in range(2):
        assert cache.get(path).cache.outcome == "bypass"
    assert origin.count(path) == 2


def test_tracking_parameters_share_one_entry(cache: Client, origin: OriginClient) -> None:
    """utm_* parameters are ignored: in the key and in what the origin receives."""
    path = fresh("/products/")
    origin.add_rule({"path": path, "status": 200, "cache_control": "max-age=300"})
    cache.get(f"{path}?utm_source=newsletter")
    again = cache.get(f"{path}?utm_source=ads")
    assert again.cache.outcome == "hit"
    seen = origin.last_request(path)
    assert seen is not None and "utm_source" not in seen.target


def test_currency_cookie_splits_the_cache(cache: Client, origin: OriginClient) -> None:
    """Product pages are keyed on the currency cookie; other cookies never reach the origin."""
    path = fresh("/products/")
    origin.add_rule({"path": path, "status": 200, "cache_control": "max-age=300"})
    cache.get(path, {"Cookie": "currency=eur; session=s1"})
    cache.get(path, {"Cookie": "currency=usd; session=s2"})
    assert cache.get(path, {"Cookie": "currency=eur; session=s3"}).cache.outcome == "hit"
    assert origin.count(path) == 2
    seen = origin.last_request(path)
    assert seen is not None and seen.header("cookie") == "currency=usd"


@pytest.mark.cachewright(engines=["varnish"])
def test_only_on_varnish(cachewright_engine: str, cache: Client) -> None:
    """The marker limits a test to some engines (here: Varnish's own behaviour)."""
    assert cachewright_engine == "varnish"
    assert cache.get(fresh("/static/")).status == 200
