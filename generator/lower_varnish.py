"""Lowering a policy to the Varnish render model (VCL 4.1, Varnish 7.1+).

* First match wins: one ``if / elsif`` chain in ``vcl_recv`` selects the rule. Client-side state
  lives in ``vmod var`` task variables, which no client can send; what the backend side needs
  (profile, TTL, refetch state) travels in ``X-Cw-*`` request headers set just before a fetch
  (a task variable does not cross from the client to the backend side), and
  ``vcl_backend_fetch`` removes them before the origin sees them.
* The cache-hit path is kept cheap (in Varnish every regex match and every header set or unset
  costs about a thousand instructions, a header operation also a log record): substring tests
  let a clean request target skip the regex that rejects unclean ones, a string comparison
  accepts an already canonical listed Host,
  the rule conditions match ``req.url`` itself (the path is split off only for ``path_regex``
  conditions and a key without the query), and the slower handling sits in subroutines only the
  rest reach. A hit sets one task variable, the rule (a ``var.set`` costs about 600
  instructions); its branch applies the request handling inline, and the rule's profile and TTL
  are derived from it by comparisons only where a fetch follows; a passing rule leaves
  ``vcl_recv`` at once (``cw_pass``). A fresh hit writes no header: the stored object carries
  the hit's Cache-Status (``restatus_rules`` names the rules whose hits must rewrite it) and,
  where the key holds the scheme, HSTS.
* Scheme comes from the listener (``local.socket``: ``http``, or ``https`` for Hitch's PROXY
  listener), never from a client header; a task variable holds it where both listeners exist.
  Host is lowercased and its port removed, as nginx's ``$host``.
* Nothing falls through to the builtin VCL where it differs from the policy's meaning (it pipes
  unknown methods, and caches by its own cookie and status rules).

The rule selection (conditions, behaviours, profiles) is generator/varnish_rules.py; this module
lowers the rest, one record per part of the VCL (the origin, vcl_recv's guards, purging, storing,
the response headers) and varnishd's arguments. The render model holds every decision; the
template prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CapabilityError
from .fleet import HEALTH_PATH
from .hygiene import OVERRIDE_HEADERS
from .model import SAFE_METHODS, Policy, Probe
from .quote import glob_regex, host_regex, vcl_str
from .status import DEFAULT_STATUSES, HEURISTIC_STATUSES, storable_statuses
from .varnish_rules import (
    Behaviour,
    Selection,
    VclProfile,
    VclRule,
    compared,
    host_condition,
    restatus_rules,
    rule_test,
    selection,
)

HFM_TTL = 120
#: statuses whose TTL Varnish computes from Cache-Control / Expires itself (cache_rfc2616.c)
CORE_TTL_STATUSES = (200, 203, 204, 300, 301, 302, 304, 307, 404, 410, 414)
#: a CDN-Cache-Control field that parses as directives (RFC 9213 2.1); others are ignored
TARGETED_VALID = r"^\s*[a-zA-Z][a-zA-Z0-9_.*-]*(?:=[0-9]+)?(?:\s*,\s*[a-zA-Z][a-zA-Z0-9_.*-]*(?:=[0-9]+)?)*\s*$"
#: an upper bound of any object's grace: the origin's stale-if-error can be anything
MAX_GRACE = 10 * 31536000
#: forwarding headers the cache sets itself (their underscored forms are removed too)
FORWARDED = ("X-Forwarded-Proto", "X-Forwarded-For")

#: what a request target must not match to skip the slow checks: not origin-form (absolute-form,
#: or no leading "/"), or a path (up to "?") with a dot segment, a backslash, a malformed escape,
#: an encoded . / \ NUL or an encoded unreserved character (which nginx would decode).
_UNRESERVED_ESCAPES = "3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e"
TARGET_CHECK = (r"(?i)^(?:(?!/)|[^?]*(?:/\.\.?(?:[/?]|$)|\x5c|%(?![0-9a-f]{2})"
                r"|%(?:2e|2f|5c|00|" + _UNRESERVED_ESCAPES + ")))")
#: every target TARGET_CHECK matches contains one of these, or does not start with "/": a target
#: without any skips the regex on the hit path (substring tests are far cheaper in VCL)
TARGET_SUSPECT = ("/.", "%", "\\")
#: a valid Host (before its port and trailing dot are removed), lowercased
HOST_VALID = r"^(?!\.)(?!.*\.\.)(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$"
#: a Host that HOST_VALID accepts and lowercasing and removing port and trailing dot leave alone
HOST_CANONICAL = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*"


@dataclass(frozen=True)
class Backend:
    ident: str
    host: str
    port: int


def _backends(policy: Policy) -> tuple[Backend, ...]:
    """One backend per origin server. Varnish speaks only plain HTTP to a backend: an https
    origin is refused here too (capabilities.check names the alternative), never downgraded."""
    if policy.origin.tls is not None:
        raise CapabilityError("origin.https: Varnish cannot fetch from an https origin")
    return tuple(Backend(f"cw_origin{i}", s.host, s.port)
                 for i, s in enumerate(policy.origin.servers, 1))


@dataclass(frozen=True)
class Origin:
    """The backends, and what the origin receives."""

    backends: tuple[Backend, ...]
    probe: Probe | None
    connect_timeout: int
    read_timeout: int
    #: the backends a director balances (empty: one backend, no director)
    director: tuple[Backend, ...]
    #: the vmod directors constructor: round_robin, or shard (a fleet's shard tier)
    director_kind: str
    #: the shard director's points per backend, its ring built in vcl_init (.reconfigure());
    #: 0: no shard director
    replicas: int
    #: what bereq.backend is set to
    backend: str
    #: a fleet hop: how many other nodes of the next tier a GET or HEAD whose fetch failed tries
    #: (vcl_backend_error's return (retry); the shard director's alt picks the ring's next node)
    retries: int
    host_header: str | None
    #: (override header, VCL true where it is removed: "" always, else for the profiles that do
    #: not key on it)
    strip_headers: tuple[tuple[str, str], ...]
    underscored_headers: tuple[str, ...]


@dataclass(frozen=True)
class FleetTrust:
    """An inner fleet node: the addresses of the tier in front (acl cw_fleet_front), the only
    peers whose X-Forwarded-Proto and X-Forwarded-For it believes, and the path its probes ask."""

    trusted: tuple[tuple[str, int], ...]
    health_path: str


@dataclass(frozen=True)
class Recv:
    """vcl_recv before the rule selection: the guards and the normalisation."""

    methods: tuple[str, ...]
    target_check: str
    target_suspect: str
    host_valid: str
    host_slow: str
    hosts_regex: str | None
    #: both listeners exist: the scheme is set from the one the connection arrived on
    https: bool
    #: an inner fleet node: its probe answer and scheme come from the tier in front (cw_fleet_front)
    fleet: FleetTrust | None
    #: plain HTTP is redirected: the Location, a VCL expression (None: no redirect)
    redirect_location: str | None
    query_ignore: str | None
    query_sort: bool
    uses_cookies: bool
    needs_path: bool


@dataclass(frozen=True)
class Purge:
    """cw_purge: the purge kinds the policy allows."""

    allow: tuple[tuple[str, int], ...]
    #: the xkey function a tag purge calls (None: no tag purges)
    tag_function: str | None
    ban_all: bool
    ban_pattern: bool
    url: bool
    #: VCL true for a rule that never caches: a URL purge of it finds nothing ("" every rule may)
    uncached_test: str


@dataclass(frozen=True)
class Storing:
    """vcl_backend_response: whether and how long a response is stored."""

    default_statuses: tuple[int, ...]
    status_ttl: tuple[tuple[int, int], ...]
    storable_statuses: tuple[int, ...]
    #: statuses Varnish computes a TTL for from the response headers (cache_rfc2616.c)
    core_ttl_statuses: tuple[int, ...]
    #: a CDN-Cache-Control that parses (RFC 9213 2.1: a Dictionary of directives, integer values)
    targeted_valid: str
    #: cache.targeted_fields, in order, where a rule respects origin headers (else empty)
    targeted_fields: tuple[str, ...]
    #: VCL true for a heuristically cacheable status (RFC 9110 15.1; not 206)
    heuristic_test: str
    #: some rule relaxes heuristic-freshness
    heuristic: bool
    #: VCL true for a response whose Set-Cookie keeps it out of the cache
    set_cookie_refuses: str
    tag_headers: tuple[str, ...]
    hfm_ttl: int
    grace: int
    while_revalidate: int
    #: the longest stale-if-error window an object can have (the restart that serves it stale)
    error_grace: int
    keep: int
    #: objects carry their host and URL for pattern BANs (vcl_deliver removes them)
    stores_target: bool


@dataclass(frozen=True)
class Headers:
    """Cache-Status and HSTS: where each answer gets them."""

    cache_status: bool
    cache_name: str
    #: no Cache-Status of ours: the origin's is removed from every answer
    unset_cache_status: bool
    #: VCL true for a rule whose fresh hits may find an object another rule stored: their
    #: Cache-Status is rewritten ("" when every object carries its hits' Cache-Status)
    restatus_test: str
    #: the HSTS value of synthetic answers over HTTPS ("": none)
    hsts: str
    #: ... written at delivery ("": none, or stored with the object)
    hsts_delivered: str
    #: ... stored with the object by every fetch over HTTPS, where the key holds the scheme
    hsts_stored: str
    #: a fleet node in front of another tier: its Cache-Status is appended to the one the next
    #: tier sent (kept in X-Cw-Behind), RFC 9211 2
    appends: bool = False
    #: what each Cache-Status we write starts with: "" or the next tier's entries (a VCL
    #: expression and "+ "), on the response and on the stored object
    resp_prefix: str = ""
    beresp_prefix: str = ""


@dataclass(frozen=True)
class VarnishdArgs:
    http_listen: str | None
    proxy_listen: str | None
    storage: str
    http2: bool


@dataclass(frozen=True)
class VarnishModel:
    name: str
    imports: tuple[str, ...]
    origin: Origin
    recv: Recv
    purge: Purge | None
    selection: Selection
    #: the scheme is hashed: it is in the key and can vary (an HTTP-only policy's is always "http")
    hash_scheme: bool
    key_host: bool
    key_query: bool
    #: the hash_data arguments every key starts with
    hash_data: tuple[str, ...]
    scheme: str
    #: some cacheable rule respects origin headers: the RFC 9111 handling is written
    respects: bool
    #: VCL true for a cacheable rule that respects origin headers ("" when none does)
    respect_test: str
    storing: Storing
    headers: Headers
    args: VarnishdArgs

    # What explain reads of the selection (harness/engines/varnish_explain.py).
    @property
    def chunks(self) -> tuple[tuple[VclRule, ...], ...]:
        return self.selection.chunks

    @property
    def default(self) -> VclRule:
        return self.selection.default

    @property
    def profiles(self) -> tuple[VclProfile, ...]:
        return self.selection.profiles


def lower(policy: Policy, proxy_listen: str, hitch_user: str) -> VarnishModel:
    """The render model for ``templates/varnish/default.vcl.j2`` and ``varnishd.args.j2``."""
    https = policy.listen.https
    rules = selection(policy)
    respects = tuple(r.name for r in (*policy.rules, policy.default_rule)
                     if r.cache and r.origin_headers == "respect")
    inner = policy.role is not None and policy.role.inner
    scheme = 'var.get("scheme")' if https or inner else '"http"'
    hash_scheme = "scheme" in policy.cache.key and (https is not None or inner)
    return VarnishModel(
        name=policy.name,
        imports=_imports(policy),
        origin=_origin(policy, rules.profiles),
        recv=_recv(policy),
        purge=_purge(policy, rules.profiles),
        selection=rules,
        hash_scheme=hash_scheme,
        key_host="host" in policy.cache.key,
        key_query="query" in policy.cache.key,
        hash_data=(*((scheme,) if hash_scheme else ()),
                   *(("req.http.host",) if "host" in policy.cache.key else ()),
                   "req.url" if "query" in policy.cache.key else 'var.get("path")'),
        scheme=scheme,
        respects=bool(respects),
        respect_test=rule_test(respects),
        storing=_storing(policy, rules.profiles, respects),
        headers=_headers(policy),
        args=VarnishdArgs(
            http_listen=f"{policy.listen.http.address}:{policy.listen.http.port}" if policy.listen.http else None,
            proxy_listen=_proxy_listener(proxy_listen, hitch_user) if https else None,
            storage=f"malloc,{policy.cache.size // (1024 * 1024)}m",
            http2=https is not None and https.http2,
        ),
    )


def _imports(policy: Policy) -> tuple[str, ...]:
    """The vmods: std, var and str always, the others where the VCL calls them."""
    cookies = any(r.key.cookies or r.match.cookies for r in policy.rules)
    tags = policy.purge is not None and "tag" in policy.purge.kinds
    imports = ["std", "var", "str"]
    imports += ["header"] if policy.headers.cache_status else []
    imports += ["directors"] if len(policy.origin.servers) > 1 else []
    imports += ["cookie"] if cookies else []
    imports += ["xkey"] if tags else []
    return tuple(imports)


#: points per backend on the shard director's ring. Its default, 67, splits keys unevenly: three
#: backends named cw_origin1..3 get 41/28/30 % of the ring (8 points off 1/3, whatever the keys).
#: With 1,000 the worst share of 2 to 8 backends is 1.1 points off 1/N (harness/engines/
#: varnish_shard.py computes the ring as vmod_directors builds it); the ring costs 1,000 points
#: per backend, once, in vcl_init.
SHARD_REPLICAS = 1000
#: varnishd's max_retries parameter (default 4): more retries than that end in a 503
MAX_RETRIES = 4


def _origin(policy: Policy, profiles: tuple[VclProfile, ...]) -> Origin:
    backends = _backends(policy)
    many = len(backends) > 1
    shard = policy.role is not None and policy.role.next_routing == "shard"
    return Origin(
        backends=backends,
        probe=policy.origin.probe,
        connect_timeout=policy.origin.connect_timeout,
        read_timeout=policy.origin.read_timeout,
        director=backends if many else (),
        director_kind="shard" if shard else "round_robin",
        replicas=SHARD_REPLICAS if shard and many else 0,
        # by=HASH in the backend context: the object's own hash, i.e. the cache key; alt: the
        # n-th next node on the ring for the n-th retry
        backend=("cw_origin.backend(by=HASH, alt=bereq.retries)" if shard else "cw_origin.backend()") if many
        else backends[0].ident,
        retries=min(len(backends) - 1, MAX_RETRIES) if policy.role is not None and policy.role.next_routing else 0,
        host_header=policy.origin.host_header,
        strip_headers=_strip_headers(profiles),
        underscored_headers=tuple(h.replace("-", "_") for h in (*OVERRIDE_HEADERS, *FORWARDED) if "-" in h),
    )


def _recv(policy: Policy) -> Recv:
    https = policy.listen.https
    return Recv(
        methods=_methods(policy),
        target_check=TARGET_CHECK,
        target_suspect=" || ".join(['!str.startswith(req.url, "/")',
                                    *(f"str.contains(req.url, {vcl_str(t)})" for t in TARGET_SUSPECT)]),
        host_valid=HOST_VALID,
        host_slow=_host_slow(policy),
        hosts_regex=host_regex(policy.listen.hosts) if policy.listen.hosts else None,
        https=https is not None,
        fleet=_fleet_trust(policy),
        redirect_location=_redirect_location(policy),
        query_ignore=_ignore(policy),
        query_sort=policy.cache.query.sort,
        uses_cookies=any(r.key.cookies or r.match.cookies for r in policy.rules),
        needs_path="query" not in policy.cache.key or any(r.match.path_regex is not None for r in policy.rules),
    )


def _fleet_trust(policy: Policy) -> FleetTrust | None:
    role = policy.role
    if role is None or not role.inner:
        return None
    return FleetTrust(tuple(_acl(a) for a in role.trusted), HEALTH_PATH)


def _redirect_location(policy: Policy) -> str | None:
    https = policy.listen.https
    if https is None or not https.redirect_http:
        return None
    port = "" if https.port == 443 else f":{https.port}"
    return f'"https://" + req.http.host + "{port}" + req.url'


def _purge(policy: Policy, profiles: tuple[VclProfile, ...]) -> Purge | None:
    purge = policy.purge
    if purge is None:
        return None
    uncached = tuple(n for p in profiles if not p.behaviour.cache for n in p.names)
    return Purge(
        allow=tuple(_acl(n) for n in purge.allow),
        tag_function=("xkey.softpurge" if purge.soft else "xkey.purge") if "tag" in purge.kinds else None,
        ban_all="all" in purge.kinds,
        ban_pattern="pattern" in purge.kinds,
        url="url" in purge.kinds,
        uncached_test=rule_test(uncached),
    )


def _storing(policy: Policy, profiles: tuple[VclProfile, ...], respects: tuple[str, ...]) -> Storing:
    stale = policy.cache.stale
    behaviours: tuple[Behaviour, ...] = tuple(p.behaviour for p in profiles)
    return Storing(
        default_statuses=tuple(int(s) for s in DEFAULT_STATUSES.split()),
        status_ttl=policy.cache.status_ttl,
        storable_statuses=storable_statuses(policy),
        core_ttl_statuses=CORE_TTL_STATUSES,
        targeted_valid=TARGETED_VALID,
        targeted_fields=policy.cache.targeted if respects else (),
        heuristic_test=" || ".join(f"beresp.status == {s}" for s in HEURISTIC_STATUSES),
        heuristic=any(b.heuristic for b in behaviours),
        set_cookie_refuses=('(beresp.http.Set-Cookie && var.get("setcookie") != "1")'
                            if any(b.store_set_cookie for b in behaviours) else "beresp.http.Set-Cookie"),
        tag_headers=tuple(sorted({r.tags_from_header for r in policy.rules if r.tags_from_header})),
        hfm_ttl=HFM_TTL,
        grace=stale.while_revalidate + stale.if_error,
        while_revalidate=stale.while_revalidate,
        error_grace=stale.while_revalidate + stale.if_error if not respects else MAX_GRACE,
        keep=policy.cache.keep,
        stores_target=policy.purge is not None and "pattern" in policy.purge.kinds,
    )


def _headers(policy: Policy) -> Headers:
    on = policy.headers.cache_status
    hsts = _hsts(policy)
    stored = "scheme" in policy.cache.key
    appends = on and policy.role is not None and policy.role.next_routing is not None
    return Headers(
        cache_status=on,
        cache_name=policy.headers.cache_status_name,
        unset_cache_status=not on,
        restatus_test=rule_test(restatus_rules(policy)) if on else "",
        hsts=hsts,
        hsts_delivered="" if stored else hsts,
        hsts_stored=hsts if stored else "",
        appends=appends,
        resp_prefix="resp.http.X-Cw-Behind + " if appends else "",
        beresp_prefix="beresp.http.X-Cw-Behind + " if appends else "",
    )


def _strip_headers(profiles: tuple[VclProfile, ...]) -> tuple[tuple[str, str], ...]:
    """Each override header, and where it is removed before the origin: always (test ""), or
    (when a rule keys on it) for every profile whose rules do not."""
    out = []
    for name in OVERRIDE_HEADERS:
        forwarding = [p.ident for p in profiles if name in p.behaviour.forwards]
        if len(forwarding) < len(profiles):
            out.append((name, " && ".join(f'var.get("profile") != "{p}"' for p in forwarding)))
    return tuple(out)



def _proxy_listener(listen: str, hitch_user: str) -> str:
    """The -a value of the PROXY listener; a Unix socket is made usable by Hitch's user only."""
    if listen.startswith("/"):
        return f"{listen},PROXY,user={hitch_user},mode=0600"
    return f"{listen},PROXY"


def _methods(policy: Policy) -> tuple[str, ...]:
    kinds = policy.purge.kinds if policy.purge else ()
    extra: tuple[str, ...] = ("PURGE",) if {"url", "tag"} & set(kinds) else ()
    extra += (("BAN",) if {"pattern", "all"} & set(kinds) else ())
    return SAFE_METHODS + extra


def _host_slow(policy: Policy) -> str:
    """The condition for the slow Host handling: the cache-hit path's only Host check. What it
    lets through needs no lowercasing, validation or trimming and is a host the policy serves
    (listed names are lowercase and canonical, as the loader requires)."""
    hosts = policy.listen.hosts
    if hosts and compared(hosts):
        return f"!({host_condition(hosts)})"
    canonical = f"^(?={HOST_CANONICAL}$)"
    return f"req.http.host !~ {vcl_str(canonical + host_regex(hosts) if hosts else canonical)}"


def _acl(network: str) -> tuple[str, int]:
    address, _, bits = network.partition("/")
    return address, int(bits) if bits else (128 if ":" in address else 32)


def _ignore(policy: Policy) -> str | None:
    ignore = policy.cache.query.ignore
    if not ignore:
        return None
    names = "|".join(glob_regex(g) for g in ignore)
    return f"(?:^|(?<=&))(?:{names})(?:=[^&]*)?(?:&|$)"


def _hsts(policy: Policy) -> str:
    https = policy.listen.https
    if https is None or https.hsts is None:
        return ""
    value = f"max-age={https.hsts.max_age}"
    value += "; includeSubDomains" if https.hsts.include_subdomains else ""
    return value + ("; preload" if https.hsts.preload else "")

