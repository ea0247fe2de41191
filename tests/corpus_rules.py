"""The corpus's site model and its rule families (``tests/corpus.py`` draws policies from them).

A ``Site`` is what one policy is being built from: its random source, its domain, and the traits
its rules exercise so far. Each family owns one area of the site (``/blog/``, ``/api/``, assets,
the CDN host, ...) and returns its rules.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Site:
    """What one policy is being built from: its random source, domain and what it uses."""

    rng: random.Random
    domain: str
    traits: set[str] = field(default_factory=set)
    hosts: list[str] = field(default_factory=list)  # hosts rules match on (listen.hosts needs them)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, options: Sequence[Any]) -> Any:
        return self.rng.choice(options)

    def ttl(self, kind: str = "page") -> str:
        """A realistic TTL; now and then one short enough for the harness to wait out."""
        if kind != "asset" and self.chance(0.08):
            self.traits.add("ttl-short")
            return str(self.pick(["2s", "3s"]))
        if kind == "asset":
            return str(self.pick(["1d", "7d", "30d", "1y"]))
        if kind == "api":
            return str(self.pick(["5s", "10s", "30s", "1m"]))
        return str(self.pick(["30s", "1m", "5m", "10m", "1h"]))


Doc = dict[str, Any]  # a mapping of the policy document
Rule = dict[str, Any]
Family = Callable[[Site], list[Rule]]


def _cached(site: Site, rule: Rule, kind: str = "page", *, ttl: bool = True) -> Rule:
    """``rule`` made cacheable: a TTL (usually), and per-rule origin-header handling."""
    if ttl or kind == "asset":
        rule["ttl"] = site.ttl(kind)
    if "ttl" in rule and site.chance(0.3):
        rule["origin_headers"] = site.pick(["override", "respect"])
        site.traits.add(f"rule-{rule['origin_headers']}")
    return rule


def _bypass(site: Site, rule: Rule) -> Rule:
    rule["cache"] = False
    site.traits.add("cache-false")
    return rule


# --------------------------------------------------------------------------- rule families
# Each family owns one area of the site and returns its rules in a safe order (narrow first);
# no rule of one family covers a rule of another, so families may be shuffled freely.


def _home(site: Site) -> list[Rule]:
    if site.chance(0.5):
        site.traits |= {"single-path", "exact-path"}
        return [_cached(site, {"name": "home", "match": {"path": "/"}})]
    site.traits |= {"single-path", "regex-anchored"}
    return [_cached(site, {"name": "home", "match": {"path_regex": "^/$"}})]


def _pages(site: Site) -> list[Rule]:
    """Single well-known files: anchored regexes, or a prefix that is a whole file name."""
    site.traits.add("single-path")
    files = [("robots", r"^/robots\.txt$"), ("sitemap", r"^/sitemap\.xml$"),
             ("favicon", r"^/favicon\.ico$"), ("about", r"^/about/?$")]
    chosen = site.rng.sample(files, site.rng.randint(1, 2))
    rules = []
    for name, regex in chosen:
        if name == "robots" and site.chance(0.5):
            rules.append(_cached(site, {"name": name, "match": {"path_prefix": "/robots.txt"}}))
            continue
        if name != "about" and site.chance(0.4):
            site.traits.add("exact-path")
            path = regex[1:-1].replace("\\", "")  # ^/robots\.txt$ -> /robots.txt
            rules.append(_cached(site, {"name": name, "match": {"path": path}}))
            continue
        site.traits.add("regex-anchored")
        rules.append(_cached(site, {"name": name, "match": {"path_regex": regex}}))
    return rules


def _static(site: Site) -> list[Rule]:
    """Assets, in one of five shapes (one per policy: an extension rule before a narrower asset
    rule would shadow it)."""
    shape = site.pick(["bundle", "bundle", "prefix", "extensions", "prefix-extensions", "unanchored"])
    shapes: dict[str, Doc] = {
        "bundle": {"path_regex": r"^/static/app\.[0-9a-f]+\.js$"},
        "prefix": {"path_prefix": "/static/"},
        "extensions": {"extensions": ["css", "js", "png", "svg", "woff2"]},
        "prefix-extensions": {"path_prefix": "/static/", "extensions": ["js", "css"]},
        "unanchored": {"path_regex": r"\.(?:css|js|png)$"},
    }
    match = shapes[shape]
    site.traits.add({"bundle": "regex-anchored", "unanchored": "regex-unanchored",
                     "prefix": "asset-prefix", "extensions": "extension-rule",
                     "prefix-extensions": "prefix-and-extensions"}[shape])
    rule = _cached(site, {"name": "static", "match": match}, "asset")
    if site.chance(0.6):
        rule["strip_cookies"] = True
        site.traits.add("strip-cookies")
    rules = [rule]
    if shape == "bundle" and site.chance(0.8):
        site.traits.add("regex-then-prefix")
        rules.append(_cached(site, {"name": "static-other", "match": {"path_prefix": "/static/"}},
                             "asset"))
    return rules


def _blog(site: Site) -> list[Rule]:
    rules = []
    if site.chance(0.5):
        site.traits.add("overlapping-prefixes")
        rules.append(_bypass(site, {"name": "blog-drafts", "match": {"path_prefix": "/blog/drafts/"}}))
    if site.chance(0.5):
        site.traits.add("regex-anchored")
        rules.append(_cached(site, {"name": "blog-post",
                                    "match": {"path_regex": "^/blog/[a-z0-9-]+/?$"}}))
    rules.append(_cached(site, {"name": "blog", "match": {"path_prefix": "/blog/"}},
                         ttl=site.chance(0.8)))
    if site.chance(0.3):
        site.traits.add("regex-unanchored")
        feed = _cached(site, {"name": "feed", "match": {"path_regex": "/feed/?$"}})
        rules.insert(site.rng.randint(0, len(rules)), feed)  # before or after the blog rules
    return rules


def _api(site: Site) -> list[Rule]:
    rules = []
    if site.chance(0.4):
        site.traits.add("method-rule")
        rules.append(_bypass(site, {"name": "api-writes", "match": {
            "path_prefix": "/api/", "methods": ["POST", "PUT", "PATCH", "DELETE"]}}))
    if site.chance(0.3):
        site.traits.add("header-rule")
        v2 = _cached(site, {"name": "api-v2", "match": {
            "path_prefix": "/api/", "header": {"name": "X-Api-Version", "regex": "^2"}}}, "api")
        if site.chance(0.4):  # 2 and 2.1 both match: one copy each
            if site.chance(0.5):
                v2["vary"] = ["X-Api-Version"]
                site.traits.add("vary")
            else:
                v2["key"] = {"headers": ["X-Api-Version"]}
                site.traits.add("key-headers")
            site.traits.add("key-on-matched-header")
        rules.append(v2)
    if site.chance(0.3):
        site.traits |= {"key-headers", "overlapping-prefixes"}
        rules.append(_cached(site, {"name": "api-me", "match": {"path_prefix": "/api/v1/me"},
                                    "key": {"headers": ["Authorization"]}}, "api"))
    if site.chance(0.3):
        site.traits.add("regex-anchored")
        rules.append(_cached(site, {"name": "api-items",
                                    "match": {"path_regex": "^/api/v1/items/[0-9]+$"}}, "api"))
    main = _cached(site, {"name": "api", "match": {"path_prefix": "/api/v1/"}}, "api",
                   ttl=site.chance(0.8))
    if site.chance(0.6):
        main["vary"] = [site.pick(["Accept-Language", "Accept", "X-Device"])]
        site.traits.add("vary")
    if site.chance(0.3):
        main["key"] = {"headers": ["X-Tenant"]}
        site.traits.add("key-headers")
    return [*rules, main]


def _account(site: Site) -> list[Rule]:
    prefix = site.pick(["/account/", "/account"])
    return [_bypass(site, {"name": "account", "match": {"path_prefix": prefix}})]


def _admin(site: Site) -> list[Rule]:
    if site.chance(0.3):
        host = f"admin.{site.domain}"
        site.hosts.append(host)
        site.traits.add("host-rule")
        return [_bypass(site, {"name": "admin", "match": {"host": host}})]
    return [_bypass(site, {"name": "admin", "match": {"path_prefix": "/admin/"}})]


def _shop(site: Site) -> list[Rule]:
    site.traits.add("key-cookies")
    products = _cached(site, {"name": "products", "match": {"path_prefix": "/products/"},
                              "key": {"cookies": [site.pick(["currency", "lang"])]}})
    rules = [products]
    if site.chance(0.5):
        rules.append(_bypass(site, {"name": "cart", "match": {"path_prefix": "/cart"}}))
    return rules


def _downloads(site: Site) -> list[Rule]:
    """Files cached for GET and HEAD only (a method condition on a cached rule)."""
    site.traits.add("get-head-rule")
    return [_cached(site, {"name": "downloads", "match": {"path_prefix": "/downloads/",
                                                          "methods": ["GET", "HEAD"]}}, "asset")]


def _search(site: Site) -> list[Rule]:
    rule = _cached(site, {"name": "search", "match": {"path_prefix": "/search"}}, "api")
    if site.chance(0.5):
        rule["vary"] = ["Accept-Language"]
        site.traits.add("vary")
    return [rule]


def _cdn(site: Site) -> list[Rule]:
    host = site.pick([f"cdn.{site.domain}", f"*.cdn.{site.domain}"])
    site.hosts.append(host)
    site.traits |= {"host-rule", "strip-cookies"}
    return [_cached(site, {"name": "cdn", "match": {"host": [host]}, "strip_cookies": True},
                    "asset")]


def _session(site: Site) -> list[Rule]:
    """Logged-in users or previews bypass the cache: a cookie- or header-only rule."""
    if site.chance(0.2):  # pages in the language a cookie names, one copy per language
        site.traits |= {"cookie-rule", "key-cookies", "key-on-matched-cookie"}
        return [_cached(site, {"name": "localized", "match": {
            "cookie": {"name": "lang", "regex": "^[a-z]{2}$"}}, "key": {"cookies": ["lang"]}})]
    if site.chance(0.6):
        site.traits.add("cookie-rule")
        cookie: Doc = site.pick([{"name": "session"},
                                 {"name": "wp_logged_in", "regex": "^[a-z0-9]"}])
        return [_bypass(site, {"name": "logged-in", "match": {"cookie": cookie}})]
    site.traits.add("header-rule")
    return [_bypass(site, {"name": "preview", "match": {"header": {"name": "X-Preview"}}})]


def _writes(site: Site) -> list[Rule]:
    site.traits.add("method-rule")
    return [_bypass(site, {"name": "writes", "match": {"methods": ["POST", "PUT", "PATCH",
                                                                   "DELETE"]}})]


#: the families a site draws from; ``catch_all`` is never drawn, only appended
FAMILIES: tuple[Family, ...] = (_home, _pages, _static, _blog, _api, _account, _admin, _shop,
                                _search, _cdn, _session, _writes, _downloads)


def catch_all(site: Site) -> list[Rule]:
    site.traits.add("catch-all")
    return [_cached(site, {"name": "pages", "match": {"path_prefix": "/"}})]
