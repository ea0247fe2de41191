"""Engine knowledge as data: one feature × engine table, read by the compiler (to refuse what an
engine cannot do) and by ``cachewright capabilities`` / ``compare`` (to show it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .errors import CapabilityError
from .model import Policy

Level = Literal["native", "module", "unsupported"]


@dataclass(frozen=True)
class Support:
    level: Level
    how: str


@dataclass(frozen=True)
class Feature:
    """A policy feature, where it lives in the policy, and how each engine provides it."""

    id: str
    title: str
    path: str
    used: Callable[[Policy], bool]
    nginx: Support
    varnish: Support
    alternative: str = ""
    enforced: bool = True  # False: reported (and checked) but never a compile error
    #: False: accept_missing cannot waive it (the engine would do something less safe instead)
    acceptable: bool = True
    #: how nginx provides it for a policy that loads njs (``nginx: {njs: true}``), when it can
    with_njs: Support | None = None

    def on(self, engine: str, policy: Policy | None = None) -> Support:
        """How ``engine`` provides the feature (for ``policy``, when its options change that)."""
        if engine != "nginx":
            return self.varnish
        if self.with_njs is not None and policy is not None and policy.nginx.njs:
            return self.with_njs
        return self.nginx


def _purge(kind: str) -> Callable[[Policy], bool]:
    return lambda p: p.purge is not None and kind in p.purge.kinds


def _any_rule(pred: Callable[..., bool]) -> Callable[[Policy], bool]:
    return lambda p: any(pred(r) for r in p.rules)


def serves_stale(policy: Policy) -> bool:
    """The policy's own stale windows (cache.stale) are open."""
    return bool(policy.cache.stale.while_revalidate or policy.cache.stale.if_error)


def _respects(policy: Policy) -> bool:
    return any(r.cache and r.origin_headers == "respect" for r in (*policy.rules, policy.default_rule))


def _njs(how: str) -> Support:
    """nginx's support with ``nginx: {njs: true}``: the generated header filter does it."""
    return Support("module", f"njs (libnginx-mod-http-js, nginx: {{njs: true}}): "
                             f"nginx/cachewright.js {how}")


def _fleet_routes(routing: str | None) -> Callable[[Policy], bool]:
    """A fleet (or a node of one) sends misses to a next tier (reached by ``routing``, if given)."""
    def used(p: Policy) -> bool:
        if p.role is not None:
            return p.role.next_routing is not None and routing in (None, p.role.next_routing)
        inner = p.fleet.tiers[1:] if p.fleet is not None else ()
        return any(routing in (None, t.routing) for t in inner)
    return used


N: Level = "native"
M: Level = "module"
U: Level = "unsupported"
TABLE: tuple[Feature, ...] = (
    Feature("origin.servers", "several origin servers, round-robin", "origin.url",
            lambda p: len(p.origin.servers) > 1,
            Support(N, "upstream block"), Support(M, "vmod directors (bundled)")),
    Feature("origin.https", "TLS to the origin (https:// origin URLs)", "origin.url",
            lambda p: p.origin.tls is not None,
            Support(N, "proxy_pass https:// with SNI (proxy_ssl_name), proxy_ssl_verify against "
                       "the system or the given CAs, explicit proxy_ssl_protocols"),
            Support(U, "open-source Varnish has no TLS to backends"),
            "a TLS client sidecar beside varnishd (stunnel4 in client mode, or nginx's "
            "proxy_pass https://) that verifies the origin, with origin.url pointing Varnish at "
            "it as http://127.0.0.1:PORT", acceptable=False),
    Feature("origin.probe", "active health probe", "origin.probe",
            lambda p: p.origin.probe is not None,
            Support(U, "active checks are NGINX Plus only; passive max_fails is always on"),
            Support(N, "backend .probe"),
            "remove origin.probe (nginx still marks failing servers down passively)"),
    Feature("tls", "HTTPS termination", "listen.https", lambda p: p.listen.https is not None,
            Support(N, "ssl server block"), Support(M, "Hitch in front, PROXY v2")),
    Feature("tls.http2", "HTTP/2 via ALPN", "listen.https.http2",
            lambda p: p.listen.https is not None and p.listen.https.http2,
            Support(N, "listen ... http2"), Support(M, "Hitch ALPN + feature=+http2")),
    Feature("tls.hsts", "HSTS on HTTPS responses", "listen.https.hsts",
            lambda p: p.listen.https is not None and p.listen.https.hsts is not None,
            Support(N, "add_header in the ssl server"),
            Support(N, "https fetches, stored with the object (vcl_deliver without scheme in key)")),
    Feature("query.ignore", "ignored query parameters", "cache.query.ignore",
            lambda p: bool(p.cache.query.ignore),
            Support(N, "8 map regex passes (more ignored parameters: cache bypass)"), Support(N, "regsuball")),
    Feature("query.sort", "sorted query parameters", "cache.query.sort",
            lambda p: p.cache.query.sort,
            Support(U, "no sort in nginx core (needs njs)"), Support(N, "std.querysort"),
            "set cache.query.sort: false"),
    Feature("stale.while_revalidate", "stale-while-revalidate", "cache.stale.while_revalidate",
            lambda p: p.cache.stale.while_revalidate > 0,
            Support(N, "proxy_cache_use_stale updating + background_update"),
            Support(N, "beresp.grace")),
    Feature("stale.if_error", "stale-if-error", "cache.stale.if_error",
            lambda p: p.cache.stale.if_error > 0,
            Support(N, "proxy_cache_use_stale error timeout http_5xx"),
            Support(N, "grace, synchronous refetch, stale on error (restart)")),
    Feature("stale.window", "stale served only inside the policy's windows",
            "cache.stale", serves_stale,
            Support(U, "serves stale of any age until evicted (inactive=)"),
            Support(N, "grace, and vcl_hit ends while_revalidate"),
            "none: nginx cannot bound stale age", enforced=False),
    Feature("collapse_requests", "request collapsing", "cache.collapse_requests",
            lambda p: p.cache.collapse_requests,
            Support(N, "proxy_cache_lock, bounded by a 75 ms proxy_cache_lock_timeout: a miss the "
                       "origin answers later is not collapsed (each waiter fetches for itself, "
                       "unstored), so no request queues behind an answer nginx does not store"),
            Support(N, "waiting list (rush_exponent=32: every waiter wakes at once)")),
    Feature("vary", "Vary by request headers", "rules[].vary", _any_rule(lambda r: r.vary),
            Support(N, "headers in proxy_cache_key"), Support(N, "beresp.http.Vary")),
    Feature("key.cookies", "cookies in the cache key", "rules[].key.cookies",
            _any_rule(lambda r: r.key.cookies),
            Support(N, "map on $http_cookie"), Support(M, "vmod cookie (bundled)")),
    Feature("purge.url", "purge one URL", "purge.kinds", _purge("url"),
            Support(M, "ngx_cache_purge (libnginx-mod-http-cache-purge)"),
            Support(N, "return (purge)")),
    Feature("purge.pattern", "purge by URL prefix (ban)", "purge.kinds", _purge("pattern"),
            Support(U, "ngx_cache_purge 2.3 has no wildcard purge"), Support(N, "ban()"),
            "purge each URL (purge.kinds: [url])"),
    Feature("purge.tag", "purge by tag (surrogate keys)", "purge.kinds", _purge("tag"),
            Support(U, "no tag index in nginx's cache"),
            Support(M, "vmod xkey (varnish-modules)"),
            "purge each URL (purge.kinds: [url])"),
    Feature("purge.all", "purge everything", "purge.kinds", _purge("all"),
            Support(U, "ngx_cache_purge 2.3 has no purge_all"), Support(N, "ban()"),
            "restart nginx with an empty cache directory"),
    Feature("purge.variants", "PURGE removes every Vary variant of a URL", "rules[].vary",
            lambda p: _purge("url")(p) and any(r.vary and r.cache for r in p.rules),
            Support(U, "vary headers are part of proxy_cache_key: a PURGE removes only the "
                       "variant whose headers it carries"),
            Support(N, "return (purge) drops every variant"),
            "send one PURGE per variant, with its headers", enforced=False),
    Feature("purge.schemes", "PURGE removes a URL's http and https copies", "purge.kinds",
            lambda p: _purge("url")(p) and p.listen.http is not None and p.listen.https is not None
            and not p.listen.https.redirect_http and "scheme" in p.cache.key,
            Support(U, "ngx_cache_purge removes one key, and the scheme is part of it"),
            Support(N, "vcl_purge restarts with the other scheme"),
            "send the PURGE over both http and https", enforced=False),
    # RFC 9111 behaviour of respecting rules (the rfc check family, `test --checks rfc`): reported,
    # never a compile error.
    Feature("http.age", "Age on a response answered from the cache (RFC 9111 4, 5.1)",
            "cache.origin_headers", _respects,
            Support(U, "nginx keeps no age of an entry a variable could show; with nginx: {njs: "
                       "true}, njs counts it"),
            Support(N, "core: Age on hits"),
            "nginx: {njs: true} (libnginx-mod-http-js; about 5 us of CPU per hit); clients also "
            "age responses by the Date nginx keeps", enforced=False,
            with_njs=_njs("counts the seconds since the stored Date, at least the origin's Age")),
    Feature("http.age_freshness", "the origin's Age and an old Date shorten freshness (RFC "
            "9111 4.2.3)", "cache.origin_headers", _respects,
            Support(U, "nginx's lifetime is max-age from its own clock on arrival: no module "
                       "phase runs before it (an extra proxy hop with njs could rewrite the "
                       "lifetime)"),
            Support(N, "core: the origin's Age and the apparent age counted"),
            "an origin that sends no Age and a correct Date", enforced=False),
    Feature("http.expires_date", "lifetime from Expires minus Date (RFC 9111 4.2.1)",
            "cache.origin_headers", _respects,
            Support(U, "Expires is compared with nginx's own clock, not with the response's Date"),
            Support(N, "core (Expires - Date when the clocks differ)"),
            "max-age instead of Expires", enforced=False),
    Feature("http.no_stale_directives", "must-revalidate, proxy-revalidate and s-maxage keep "
            "an expired response from being served stale, the policy's cache.stale windows "
            "included (RFC 9111 4.2.4, 5.2.2.2, 5.2.2.8, 5.2.2.10)", "cache.stale",
            lambda p: _respects(p) and serves_stale(p),
            Support(U, "proxy_cache_use_stale is fixed per location: the policy's cache.stale "
                       "serves any expired response stale, a must-revalidate one too"),
            Support(N, "grace 0 for such a response; it is revalidated from keep"),
            "no cache.stale windows (the origin's own stale-while-revalidate / stale-if-error "
            "where it allows them), or origin_headers: override", enforced=False),
    Feature("http.stale_if_error_status", "the origin's stale-if-error on a 5xx answer (RFC 5861 4)",
            "cache.origin_headers", _respects,
            Support(U, "nginx 1.22 serves the origin's stale-if-error on a connection error or "
                       "timeout only; for a 5xx answer it needs proxy_cache_use_stale http_5xx, "
                       "which has no time limit (cache.stale.if_error sets it)"),
            Support(N, "grace from stale-if-error, stale on a failed refetch"),
            "cache.stale.if_error in the policy", enforced=False),
    Feature("http.request_directives", "a client's no-cache, max-age=0, or Pragma: no-cache "
            "without Cache-Control, makes the cache fetch from the origin (RFC 9111 5.2.1.1, "
            "5.2.1.4, 5.4; relax: [request-no-cache])", "rules[].relax",
            _any_rule(lambda r: "request-no-cache" in r.relax),
            Support(N, "proxy_cache_bypass on the client's directives; the answer is stored"),
            Support(N, "hash_always_miss on the client's directives; the answer is stored"),
            "PURGE the URL, or a short max-age from the origin"),
    Feature("http.heuristic", "heuristic freshness from Last-Modified (RFC 9111 4.2.2; "
            "relax: [heuristic-freshness])", "rules[].relax",
            _any_rule(lambda r: "heuristic-freshness" in r.relax),
            Support(U, "proxy_cache_valid is a fixed time: no arithmetic on Last-Modified without njs"),
            Support(N, "VCL: a tenth of Date - Last-Modified, at most a day, where neither the "
                       "origin nor the rule gives a lifetime"),
            "rules[].ttl: a fixed lifetime for responses that give none"),
    Feature("http.update_headers", "a 304 updates the stored header fields (RFC 9111 3.2, 4.3.4)",
            "cache.keep", _respects,
            Support(U, "a revalidation refreshes the entry's validity; its stored headers stay"),
            Support(N, "core: the 304 is merged into the stored object"),
            "change the ETag whenever the headers change", enforced=False),
    Feature("http.interim_responses", "a 1xx interim response before the final one (RFC 9110 15.2)",
            "cache.origin_headers", _respects,
            Support(U, "no answer within 5 s when the origin sends 103 then 200"),
            Support(U, "502"), "an origin that sends no 1xx to the cache", enforced=False),
    Feature("http.partial_responses", "a 206 to a full request passed on, never stored as the "
            "full response (RFC 9111 3.3)", "cache.origin_headers", _respects,
            Support(N, "not stored (not in the storable statuses)"), Support(U, "502"),
            "an origin that answers a request without Range with 200", enforced=False),
    Feature("http.vary_absent_empty", "an absent request field and an empty one are different "
            "Vary values (RFC 9111 4.1)", "cache.origin_headers", _respects,
            Support(U, "nginx hashes an absent and an empty header alike"), Support(N, "core"),
            "none (clients rarely send an empty field)", enforced=False),
    Feature("http.invalidate_on_unsafe", "a successful unsafe request invalidates its URL, "
            "Location and Content-Location (RFC 9111 4.4)", "cache.origin_headers", _respects,
            Support(U, "no action after a response without njs or Lua"),
            Support(N, "bans (req.http.host, req.url) in vcl_backend_response for a 2xx/3xx "
                       "answer to POST, PUT, PATCH or DELETE"),
            "PURGE the URL after a write (purge.kinds: [url])", enforced=False),
    Feature("http.targeted_cc", "CDN-Cache-Control, or cache.targeted_fields, over Cache-Control "
            "(RFC 9213)",
            "cache.origin_headers", _respects,
            Support(U, "proxy_cache_valid takes no variable; the field cannot set the lifetime"),
            Support(N, "VCL: a CDN-Cache-Control that parses stands in for Cache-Control and "
                       "Expires while the object is judged; clients get the origin's Cache-Control"),
            "s-maxage for what shared caches should keep", enforced=False),
    Feature("http.connection_fields", "fields the origin names in Connection are not "
            "forwarded, from the origin or from the cache (RFC 9110 7.6.1)",
            "cache.origin_headers", _respects,
            Support(U, "nginx drops the Connection field but keeps the fields it names; with "
                       "nginx: {njs: true}, njs drops them"),
            Support(N, "core"), "nginx: {njs: true} (libnginx-mod-http-js); an origin that lists "
            "no fields in Connection", enforced=False,
            with_njs=_njs("drops them from every response, stored ones included")),
    Feature("http.connection_request_fields", "fields a client names in Connection do not reach "
            "the origin (RFC 9110 7.6.1)", "cache.origin_headers", _respects,
            Support(U, "nginx drops the Connection field but forwards the fields it names: a "
                       "proxied request's fields cannot be removed by a name known only at run "
                       "time"),
            Support(N, "core: varnishd removes them while parsing the request"),
            "clients that list no fields in Connection", enforced=False),
    Feature("purge.soft", "soft purge (keep as stale)", "purge.soft",
            lambda p: p.purge is not None and p.purge.soft,
            Support(U, "no soft purge in ngx_cache_purge"),
            Support(M, "xkey.softpurge for tag purges (URL purges stay hard)"),
            "set purge.soft: false"),
    Feature("fleet.shard", "a fleet tier sharded by the cache key (consistent hashing)",
            "fleet.tiers", _fleet_routes("shard"),
            Support(N, "the tier in front: upstream `hash <cache key> consistent` (ketama); a "
                       "failing node's keys move to the next on the ring (proxy_next_upstream)"),
            Support(N, "the tier in front: directors.shard() (bundled vmod), .backend(by=HASH) "
                       "on the object's hash; sick nodes are skipped")),
    Feature("fleet.probes", "active health probes of the next fleet tier's nodes",
            "fleet.health", _fleet_routes(None),
            Support(U, "no active checks (NGINX Plus only): a node is marked down passively, "
                       "after fleet.health.threshold failed requests for fail_timeout "
                       "(max_fails, proxy_next_upstream)"),
            Support(N, "a backend .probe per node, asking its health path"),
            "passive marking (always on)", enforced=False),
    Feature("cache_status", "RFC 9211 Cache-Status header", "headers.cache_status",
            lambda p: p.headers.cache_status,
            Support(N, "add_header from $upstream_cache_status"),
            # varnish-modules is needed by every generated VCL (vmod var, str), so not "module"
            Support(N, "a hit's stored with the object (header.append, vmod header, "
                       "varnish-modules); replaced in vcl_deliver otherwise")),
)
FEATURES = {f.id: f for f in TABLE}


def used_features(policy: Policy) -> list[Feature]:
    """The features ``policy`` uses, in table order."""
    return [f for f in TABLE if f.used(policy)]


def missing(policy: Policy, engine: str) -> list[Feature]:
    """Used features ``engine`` cannot provide (whether or not the policy accepts that)."""
    return [f for f in used_features(policy)
            if f.on(engine, policy).level == "unsupported" and f.enforced]


def check(policy: Policy, engine: str) -> list[str]:
    """Raise CapabilityError for unsupported features not accepted by the policy; else warnings."""
    accepted = set(policy.accepted_missing(engine))
    errors, warnings = [], _warnings(policy, engine)
    for feature in missing(policy, engine):
        where = f"{policy.where(feature.path.replace('[]', ''))}: {feature.path}"
        what = f"{feature.title} ({feature.id}) is unsupported on {engine}: {feature.on(engine, policy).how}"
        if feature.id in accepted and feature.acceptable:
            warnings.append(f"{where}: warning: {what}; accepted by accept_missing.{engine}")
            continue
        if feature.acceptable:
            waive = f"; or accept it with accept_missing: {{{engine}: [{feature.id}]}}"
        else:
            waive = "; accept_missing cannot waive it: the output would be less safe, not lacking"
        errors.append(f"{where}: {what} (alternative: {feature.alternative}; or compile with "
                      f"--target {_other(engine)}{waive})")
    if errors:
        raise CapabilityError("\n".join(errors))
    return warnings


def _warnings(policy: Policy, engine: str) -> list[str]:
    """What compiles but weakens a safe default the policy turned off on purpose."""
    tls = policy.origin.tls
    if tls is not None and not tls.verify and engine == "nginx":
        return [f"{policy.where('origin.tls.verify')}: origin.tls.verify: warning: nginx accepts "
                "any certificate from the origin (proxy_ssl_verify off): anyone on the path to "
                "it can read and change what is cached"]
    return []


def _other(engine: str) -> str:
    return "varnish" if engine == "nginx" else "nginx"
