"""Entry → Request: cookies split out, Host taken from the entry, the target split at '?'."""

from __future__ import annotations

from cachewright.harness.traffic.entry import Entry


def test_an_entry_becomes_the_harness_request() -> None:
    e = Entry(1, "GET", "/a/b?x=1&y=2", "Shop.Example.com",
              (("Cookie", "sid=1; currency=eur"), ("Accept", "text/html"), ("Host", "ignored")))
    r = e.request("default.example")
    assert (r.method, r.path, r.query, r.host) == ("GET", "/a/b", "x=1&y=2", "shop.example.com")
    assert r.cookies == (("sid", "1"), ("currency", "eur"))
    assert r.headers == (("Accept", "text/html"),)


def test_without_a_host_the_default_is_used() -> None:
    r = Entry(2, "HEAD", "/").request("www.example.com")
    assert (r.host, r.path, r.query, r.target) == ("www.example.com", "/", "", "/")
