"""Lowering a policy to nginx's render model.

How the shared semantics are made to hold on nginx (details in docs/policy.md):

* One ``map`` dispatches every request (``$cw_target``, generator/nginx_dispatch.py): its regexes,
  tested in order, first match wins, accept a request that passes every guard and meets a rule's
  conditions, and name the rule's location; requests no rule regex accepts get the guards'
  refusals (400, 501, 421). One map and one regex for an ordinary hit: this is the cached-hit
  path ``compare`` measures.
* ``location /`` hands the request to the named location ``@<target>`` (``error_page 418 =
  @$cw_target; return 418;``): no URI rewrite, so a rule location whose query needs no
  normalising proxies the original request target as is (``proxy_pass`` without variables, key
  on the raw query); the ``@<rule>q`` twin proxies the normalised target.
* Per-rule TTLs and header handling need per-location directives (``proxy_cache_valid`` and
  ``proxy_ignore_headers`` take no variables): named locations per rule
  (generator/nginx_locations.py).
* Paths are matched raw (``$request_uri``) after a hygiene guard that rejects dot segments and
  encodings of unreserved characters, so raw matching equals decoded matching.

This module lowers what is not per rule: the cache, the origin, the listeners. The render
model holds every decision; the template prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .fleet import HEALTH_PATH
from .hygiene import stripped
from .model import Policy
from .nginx_dispatch import Choice, CookieValue, DispatchMaps, Predicate, Target, dispatch_maps
from .nginx_locations import Location, cache_status, location, tag_headers
from .quote import nginx_str
from .status import storable_statuses
from .tls import PROFILES, Profile
from .units import format_duration

#: proxy_cache_lock_timeout: no request waits on the lock longer than this beyond its own fetch
LOCK_TIMEOUT_MS = 75
#: the njs module beside nginx.conf (js_import resolves it against the configuration's folder)
NJS_SCRIPT = "cachewright.js"
#: add_header argument of HSTS: its value is mapped from the scheme ($cw_hsts: "" over http)
HSTS_HEADER = "Strict-Transport-Security $cw_hsts"


@dataclass(frozen=True)
class UpstreamTls:
    """``proxy_ssl_*`` for an https origin: one name for SNI and verification (the upstream
    block's name, nginx's default for both, is not the origin's)."""

    name: str
    protocols: str
    verify: bool
    trusted: str
    verify_depth: int


@dataclass(frozen=True)
class Origin:
    """The upstream block and what every request to it carries."""

    servers: tuple[str, ...]
    tls: UpstreamTls | None
    connect_timeout: str
    read_timeout: str
    #: the Host header the origin receives (quoted where the policy names one)
    host: str
    #: client headers removed before the origin (generator/hygiene.py)
    strip_headers: tuple[str, ...]
    #: each server line's parameters (passive failure marking)
    server_params: str = "max_fails=3 fail_timeout=10s"
    #: the balancing directive before the servers (None: round robin)
    balance: str | None = None
    #: X-Forwarded-For and X-Real-IP: the client's address
    client: str = "$remote_addr"
    #: X-Forwarded-Proto
    scheme: str = "$scheme"


@dataclass(frozen=True)
class FleetTrust:
    """An inner fleet node: the tier in front, the only peers whose X-Forwarded-Proto and
    X-Forwarded-For it believes ($cw_trusted), and the health answer its probes get."""

    trusted: tuple[str, ...]
    health_path: str


@dataclass(frozen=True)
class Cache:
    """The http block's cache directives."""

    size: str
    inactive: str
    #: a hit reuses its cache file's descriptor; off with purging (see the template's comment)
    open_file_cache: bool
    lock: str
    lock_timeout: str
    use_stale: str
    background_update: str
    revalidate: bool
    #: an alternation of the statuses that may be stored ($cw_status)
    storable_statuses: str
    #: some rule relaxes request-no-cache: $cw_req_nocache is defined
    request_no_cache: bool


@dataclass(frozen=True)
class Tls:
    certificate: str
    key: str
    profile: Profile
    #: ssl_ciphers (None: the profile is TLS 1.3 only)
    ciphers: str | None
    prefer_server_ciphers: str
    http2_directive: bool
    hsts: str
    dhparam: str | None


@dataclass(frozen=True)
class Redirect:
    """The plain-HTTP server that sends every request to HTTPS (listen.https.redirect_http)."""

    listen: str
    headers: tuple[str, ...]
    #: the Location before the request target
    target: str


@dataclass(frozen=True)
class Server:
    #: listen parameters, one listen directive each
    listens: tuple[str, ...]
    redirect: Redirect | None
    tls: Tls | None
    #: add_header arguments of the guards' refusals (Cache-Status, HSTS)
    guard_headers: tuple[str, ...]
    #: add_header arguments every rule location ends with (HSTS)
    hsts_headers: tuple[str, ...]


@dataclass(frozen=True)
class NginxModel:
    name: str
    load_modules: tuple[str, ...]
    variables_hash_max_size: int
    #: the njs module of the locations that respond through it (nginx/cachewright.js)
    njs_script: str | None
    #: purge.allow where URL purges are on (else empty: no purge maps or locations)
    purge_allow: tuple[str, ...]
    maps: DispatchMaps
    origin: Origin
    cache: Cache
    server: Server
    locations: tuple[Location, ...]
    #: an inner fleet node's trust in the tier in front (None: trusts no peer)
    fleet: FleetTrust | None = None

    # What explain reads of the dispatch (harness/engines/nginx_explain.py).
    @property
    def dispatch_key(self) -> str:
        return self.maps.key

    @property
    def dispatch(self) -> tuple[Target, ...]:
        return self.maps.targets

    @property
    def dispatch_default(self) -> str:
        return self.maps.default

    @property
    def cookie_values(self) -> tuple[CookieValue, ...]:
        return self.maps.cookie_values

    @property
    def predicates(self) -> tuple[Predicate, ...]:
        return self.maps.predicates

    @property
    def choices(self) -> tuple[Choice, ...]:
        return self.maps.choices


def lower(policy: Policy, version: tuple[int, int, int], modules_dir: str) -> NginxModel:
    """The render model for ``templates/nginx/nginx.conf.j2``."""
    purge = policy.purge is not None and "url" in policy.purge.kinds
    maps = dispatch_maps(policy, purge)
    cookies = {c.name: c for c in maps.cookie_values}
    tags = tag_headers(policy)
    locations = tuple(location(policy, r, cookies, purge, tags) for r in (*policy.rules, policy.default_rule))
    njs = any(loc.respond for loc in locations)
    modules = (*(("ngx_http_cache_purge_module.so",) if purge else ()),
               *(("ngx_http_js_module.so",) if njs else ()))
    variables = len(maps.predicates) + len(maps.cookie_values) * 2 + len(locations)
    return NginxModel(
        name=policy.name,
        load_modules=tuple(f"{modules_dir}/{module}" for module in modules),
        variables_hash_max_size=_hash_size(variables),
        njs_script=NJS_SCRIPT if njs else None,
        purge_allow=policy.purge.allow if purge and policy.purge else (),
        maps=maps,
        origin=_origin(policy),
        cache=_cache(policy, purge),
        server=_server(policy, version >= (1, 25, 1)),
        locations=locations,
        fleet=_fleet_trust(policy),
    )


def _origin(policy: Policy) -> Origin:
    host = policy.origin.host_header
    origin = Origin(
        servers=tuple(f"{s.host}:{s.port}" for s in policy.origin.servers),
        tls=_upstream_tls(policy),
        connect_timeout=f"{policy.origin.connect_timeout}s",
        read_timeout=f"{policy.origin.read_timeout}s",
        host=nginx_str(host) if host else "$host",
        strip_headers=stripped(),
    )
    return _fleet_origin(policy, origin)


def _fleet_origin(policy: Policy, origin: Origin) -> Origin:
    """A fleet node: the next tier's failures marked by fleet.health, a shard tier reached by
    consistent hashing of the cache key (each location sets $cw_hash), and an inner node passes
    on the client address and scheme its trusted front tier sent."""
    role = policy.role
    if role is None:
        return origin
    if role.next_routing is not None:
        health = role.health
        origin = replace(origin, server_params=f"max_fails={health.threshold} "
                         f"fail_timeout={format_duration(health.fail_timeout)}",
                         balance="hash $cw_hash consistent" if role.next_routing == "shard" else None)
    if role.inner:
        origin = replace(origin, client="$cw_client", scheme="$cw_scheme")
    return origin


def _fleet_trust(policy: Policy) -> FleetTrust | None:
    role = policy.role
    if role is None or not role.inner:
        return None
    return FleetTrust(role.trusted, HEALTH_PATH)


def _cache(policy: Policy, purge: bool) -> Cache:
    rules = (*policy.rules, policy.default_rule)
    return Cache(
        size=f"{policy.cache.size // (1024 * 1024)}m",
        inactive=format_duration(max(_max_ttl(policy), 600)),
        open_file_cache=not purge,
        lock=_on(policy.cache.collapse_requests),
        lock_timeout=f"{LOCK_TIMEOUT_MS}ms",
        use_stale=_use_stale(policy),
        background_update=_on(_background_update(policy)),
        revalidate=policy.cache.keep > 0,
        storable_statuses="|".join(str(s) for s in storable_statuses(policy)),
        request_no_cache=any("request-no-cache" in r.relax for r in rules),
    )


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _server(policy: Policy, http2_directive: bool) -> Server:
    tls = _tls(policy, http2_directive)
    hsts = (HSTS_HEADER,) if tls and tls.hsts else ()
    return Server(
        listens=_listens(policy, http2_directive),
        redirect=_redirect(policy),
        tls=tls,
        guard_headers=(*cache_status(policy, "fwd=bypass", "guard"), *hsts),
        hsts_headers=hsts,
    )


def _upstream_tls(policy: Policy) -> UpstreamTls | None:
    tls = policy.origin.tls
    if tls is None:
        return None
    return UpstreamTls(policy.origin.tls_name, " ".join(tls.protocols), tls.verify, tls.trusted,
                       tls.verify_depth)


def _hash_size(variables: int) -> int:
    """variables_hash_max_size with room for every generated variable (nginx's default, 1024,
    is too small for large policies and makes nginx warn at start)."""
    size = 1024
    while size < 4 * (variables + 100):
        size *= 2
    return size


def _max_ttl(policy: Policy) -> int:
    """How long an entry may be needed after it was last used: its TTL, stale windows and the
    revalidation window (nginx removes entries not accessed for ``inactive``)."""
    ttls = [r.ttl or 0 for r in policy.rules] + [policy.cache.default_ttl]
    ttls += [ttl for _, ttl in policy.cache.status_ttl]
    stale = policy.cache.stale
    return max(ttls) + max(stale.while_revalidate, stale.if_error) + policy.cache.keep


def _background_update(policy: Policy) -> bool:
    """Stale answers while one request updates the entry in the background: for the policy's
    while_revalidate, and for a respected origin's own stale-while-revalidate (RFC 5861), which
    nginx reads from Cache-Control but serves stale for only with background updates on."""
    respects = any(r.cache and r.origin_headers == "respect" for r in (*policy.rules, policy.default_rule))
    return policy.cache.stale.while_revalidate > 0 or respects


def _use_stale(policy: Policy) -> str:
    stale = policy.cache.stale
    parts = ["updating"] if stale.while_revalidate else []
    if stale.if_error:
        parts += ["error", "timeout", "http_500", "http_502", "http_503", "http_504"]
    return " ".join(parts) or "off"


def _listens(policy: Policy, http2_directive: bool) -> tuple[str, ...]:
    """The main server's listen parameters: plain HTTP unless it only redirects, and HTTPS (with
    http2 in the listen directive before nginx 1.25.1)."""
    out = []
    http, https = policy.listen.http, policy.listen.https
    if http and not (https and https.redirect_http):
        out.append(f"{http.address}:{http.port}")
    if https:
        out.append(f"{https.address}:{https.port} ssl" + (" http2" if https.http2 and not http2_directive else ""))
    return tuple(out)


def _redirect(policy: Policy) -> Redirect | None:
    http, https = policy.listen.http, policy.listen.https
    if not (http and https and https.redirect_http):
        return None
    port = "" if https.port == 443 else f":{https.port}"
    return Redirect(f"{http.address}:{http.port}", cache_status(policy, "fwd=bypass", "redirect"),
                    f"https://$host{port}")


def _tls(policy: Policy, http2_directive: bool) -> Tls | None:
    https = policy.listen.https
    if https is None:
        return None
    hsts = ""
    if https.hsts:
        hsts = f"max-age={https.hsts.max_age}"
        hsts += "; includeSubDomains" if https.hsts.include_subdomains else ""
        hsts += "; preload" if https.hsts.preload else ""
    profile = PROFILES[https.profile]
    dhe = any(c.startswith("DHE-") for c in profile.ciphers)
    return Tls(https.certificate, https.key, profile, profile.cipher_string if profile.ciphers else None,
               _on(profile.prefer_server_ciphers), https.http2 and http2_directive, hsts,
               "ffdhe2048.pem" if dhe else None)

