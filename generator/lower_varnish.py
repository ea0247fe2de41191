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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CapabilityError
from .hygiene import OVERRIDE_HEADERS, stripped
from .model import SAFE_METHODS, Match, Policy, Rule
from .quote import extension_pattern, glob_regex, host_regex, literal_regex, vcl_str
from .status import DEFAULT_STATUSES, storable_statuses

HFM_TTL = 120
#: statuses whose TTL Varnish computes from Cache-Control / Expires itself (cache_rfc2616.c)
CORE_TTL_STATUSES = (200, 203, 204, 300, 301, 302, 304, 307, 404, 410, 414)
#: statuses that may be stored with a heuristic lifetime (RFC 9110 15.1), less 206
HEURISTIC_STATUSES = (200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501)
#: a CDN-Cache-Control field that parses as directives (RFC 9213 2.1); others are ignored
TARGETED_VALID = r"^\s*[a-zA-Z][a-zA-Z0-9_.*-]*(?:=[0-9]+)?(?:\s*,\s*[a-zA-Z][a-zA-Z0-9_.*-]*(?:=[0-9]+)?)*\s*$"
#: an upper bound of any object's grace: the origin's stale-if-error can be anything
MAX_GRACE = 10 * 31536000
#: forwarding headers the cache sets itself (their underscored forms are removed too)
FORWARDED = ("X-Forwarded-Proto", "X-Forwarded-For")
CHUNK = 50
#: at most this many listed hosts are compared as strings on the hit path (one regex beyond)
HOST_COMPARISONS = 8
#: at most this many rule names are compared as strings where a profile or TTL is derived
RULE_COMPARISONS = 4

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
class Behaviour:
    """What a rule does, apart from its TTL. Rules with the same behaviour share one branch in
    each subroutine (a 1,000-rule policy has a handful), which keeps the generated C small."""

    cache: bool
    pass_auth: bool
    cookie_mode: str  # strip | keep | bypass | forward (relax: request-cookie)
    keep_cookies: str
    hash_parts: tuple[str, ...]
    override: bool
    vary_headers: tuple[str, ...]
    tags_header: str | None
    #: override headers the rule keys on: the origin receives them (generator/hygiene.py)
    forwards: tuple[str, ...] = ()
    #: a request with Authorization is fetched, its answer stored only when marked shareable
    #: (RFC 9111 3.5: respect, not keyed on Authorization); else such a request passes
    auth_store: bool = False
    #: relax: authorization-lookup -- such a request may be answered from the cache
    auth_lookup: bool = False
    #: relax: set-cookie -- a response with Set-Cookie is stored
    store_set_cookie: bool = False
    #: relax: heuristic-freshness -- Last-Modified gives a lifetime where nothing else does
    heuristic: bool = False
    #: relax: request-no-cache -- the client's no-cache or max-age=0 fetches (and stores) anew
    request_no_cache: bool = False


@dataclass(frozen=True)
class VclProfile:
    ident: str
    names: tuple[str, ...]
    behaviour: Behaviour
    #: VCL true for a request whose selected rule has this behaviour (the hit path keeps only the
    #: rule in a task variable; the profile is derived where it is needed)
    test: str

    @property
    def rules(self) -> str:
        return ", ".join(self.names)


@dataclass(frozen=True)
class VclRule:
    name: str
    marker: str
    condition: str
    profile: str
    ttl: int
    behaviour: Behaviour


@dataclass(frozen=True)
class VarnishModel:
    name: str
    imports: tuple[str, ...]
    backends: tuple[Backend, ...]
    probe: object
    connect_timeout: int
    read_timeout: int
    host_header: str | None
    methods: tuple[str, ...]
    target_check: str
    target_suspect: str
    host_valid: str
    host_slow: str
    hosts_regex: str | None
    purge_allow: tuple[tuple[str, int], ...]
    purge_kinds: tuple[str, ...]
    soft_purge: bool
    query_ignore: str | None
    query_sort: bool
    uses_cookies: bool
    chunks: tuple[tuple[VclRule, ...], ...]
    default: VclRule
    profiles: tuple[VclProfile, ...]
    #: the scheme is hashed: it is in the key and can vary (an HTTP-only policy's is always "http")
    hash_scheme: bool
    key_host: bool
    key_query: bool
    needs_path: bool
    scheme: str
    default_statuses: tuple[int, ...]
    status_ttl: tuple[tuple[int, int], ...]
    storable_statuses: tuple[int, ...]
    grace: int
    while_revalidate: int
    #: the longest stale-if-error window an object can have (the restart that serves it stale)
    error_grace: int
    keep: int
    #: VCL true for a cacheable rule that respects origin headers ("" when none does)
    respect_test: str
    #: statuses Varnish computes a TTL for from the response headers (cache_rfc2616.c)
    core_ttl_statuses: tuple[int, ...]
    auth_store: bool
    #: a CDN-Cache-Control that parses (RFC 9213 2.1: a Dictionary of directives, integer values)
    targeted_valid: str
    #: cache.targeted_fields, in order
    targeted_fields: tuple[str, ...]
    #: VCL true for a heuristically cacheable status (RFC 9110 15.1; not 206)
    heuristic_test: str
    #: some rule relaxes heuristic-freshness
    heuristic: bool
    #: some rule stores responses with Set-Cookie (relax: set-cookie)
    store_set_cookie: bool
    #: VCL true for a response whose Set-Cookie keeps it out of the cache
    set_cookie_refuses: str
    #: VCL true for a rule that never caches ("" when every rule may)
    uncached_test: str
    #: (TTL, VCL true for a rule with that TTL), for the fetch that stores the object
    ttl_tests: tuple[tuple[int, str], ...]
    tag_headers: tuple[str, ...]
    stale_if_error: bool
    hfm_ttl: int
    cache_status: bool
    cache_name: str
    #: VCL true for a rule whose fresh hits may find an object another rule stored: their
    #: Cache-Status is rewritten ("" when every object carries its hits' Cache-Status)
    restatus_test: str
    #: HSTS is stored with the object: every fetch over HTTPS sets it (the key holds the scheme)
    stored_hsts: bool
    https: bool
    redirect_port: int | None
    hsts: str
    http_listen: str | None
    proxy_listen: str | None
    storage: str
    http2: bool
    #: (override header, VCL true where it is removed: "" always, else for the profiles that do
    #: not key on it)
    strip_headers: tuple[tuple[str, str], ...]
    underscored_headers: tuple[str, ...]


def lower(policy: Policy, proxy_listen: str = "/run/cachewright-https.sock",
          hitch_user: str = "_hitch") -> VarnishModel:
    """The render model for ``templates/varnish/default.vcl.j2`` and ``varnishd.args.j2``."""
    cookies = any(r.key.cookies or r.match.cookies for r in policy.rules)
    tags = policy.purge is not None and "tag" in policy.purge.kinds
    https = policy.listen.https
    imports = ["std", "var", "str"]
    imports += ["header"] if policy.headers.cache_status else []
    imports += ["directors"] if len(policy.origin.servers) > 1 else []
    imports += ["cookie"] if cookies else []
    imports += ["xkey"] if tags else []
    stale = policy.cache.stale
    profiles = _profiles(policy)
    respects = tuple(r.name for r in (*policy.rules, policy.default_rule)
                     if r.cache and r.origin_headers == "respect")
    rules = tuple(_rule(policy, r, profiles) for r in policy.rules)
    default = _rule(policy, policy.default_rule, profiles)
    return VarnishModel(
        name=policy.name,
        imports=tuple(imports),
        backends=_backends(policy),
        probe=policy.origin.probe,
        connect_timeout=policy.origin.connect_timeout,
        read_timeout=policy.origin.read_timeout,
        host_header=policy.origin.host_header,
        methods=_methods(policy),
        target_check=TARGET_CHECK,
        target_suspect=" || ".join(['!str.startswith(req.url, "/")',
                                    *(f"str.contains(req.url, {vcl_str(t)})" for t in TARGET_SUSPECT)]),
        host_valid=HOST_VALID,
        host_slow=_host_slow(policy),
        hosts_regex=host_regex(policy.listen.hosts) if policy.listen.hosts else None,
        purge_allow=tuple(_acl(n) for n in policy.purge.allow) if policy.purge else (),
        purge_kinds=policy.purge.kinds if policy.purge else (),
        soft_purge=policy.purge is not None and policy.purge.soft,
        query_ignore=_ignore(policy),
        query_sort=policy.cache.query.sort,
        uses_cookies=cookies,
        chunks=_chunks(rules),
        default=default,
        profiles=tuple(profiles.values()),
        hash_scheme="scheme" in policy.cache.key and https is not None,
        key_host="host" in policy.cache.key,
        key_query="query" in policy.cache.key,
        needs_path="query" not in policy.cache.key or any(r.match.path_regex is not None for r in policy.rules),
        scheme='var.get("scheme")' if https else '"http"',
        default_statuses=tuple(int(s) for s in DEFAULT_STATUSES.split()),
        status_ttl=policy.cache.status_ttl,
        storable_statuses=storable_statuses(policy),
        grace=stale.while_revalidate + stale.if_error,
        while_revalidate=stale.while_revalidate,
        error_grace=stale.while_revalidate + stale.if_error if not respects else MAX_GRACE,
        keep=policy.cache.keep,
        respect_test=rule_test(respects),
        core_ttl_statuses=CORE_TTL_STATUSES,
        auth_store=any(p.behaviour.auth_store for p in profiles.values()),
        targeted_valid=TARGETED_VALID,
        targeted_fields=policy.cache.targeted,
        heuristic_test=" || ".join(f"beresp.status == {s}" for s in HEURISTIC_STATUSES),
        heuristic=any(p.behaviour.heuristic for p in profiles.values()),
        store_set_cookie=any(p.behaviour.store_set_cookie for p in profiles.values()),
        set_cookie_refuses=('(beresp.http.Set-Cookie && var.get("setcookie") != "1")'
                            if any(p.behaviour.store_set_cookie for p in profiles.values())
                            else "beresp.http.Set-Cookie"),
        uncached_test=rule_test(tuple(n for p in profiles.values() if not p.behaviour.cache
                                      for n in p.names)),
        ttl_tests=_ttl_tests((*rules, default)),
        tag_headers=tuple(sorted({r.tags_from_header for r in policy.rules if r.tags_from_header})),
        stale_if_error=stale.if_error > 0,
        hfm_ttl=HFM_TTL,
        cache_status=policy.headers.cache_status,
        cache_name=policy.headers.cache_status_name,
        restatus_test=rule_test(restatus_rules(policy)) if policy.headers.cache_status else "",
        stored_hsts="scheme" in policy.cache.key,
        https=https is not None,
        redirect_port=https.port if https and https.redirect_http else None,
        hsts=_hsts(policy),
        http_listen=(f"{policy.listen.http.address}:{policy.listen.http.port}"
                     if policy.listen.http else None),
        proxy_listen=_proxy_listener(proxy_listen, hitch_user) if https else None,
        storage=f"malloc,{policy.cache.size // (1024 * 1024)}m",
        http2=https is not None and https.http2,
        strip_headers=_strip_headers(tuple(profiles.values())),
        underscored_headers=tuple(h.replace("-", "_") for h in (*OVERRIDE_HEADERS, *FORWARDED)
                                  if "-" in h),
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


def restatus_rules(policy: Policy) -> tuple[str, ...]:
    """The cacheable rules whose fresh hits may find an object that another rule stored.

    Every stored object carries the Cache-Status of a hit on it, naming the rule that stored it,
    so that a fresh hit writes no header. That names the hit's own rule unless two rules can
    select requests of one cache key: a rule that matches on more than the key (headers,
    cookies, the host where the key has none, methods other than a set holding both GET and
    HEAD, the only methods stored and hit) and any rule whose paths or hosts may overlap its
    own. For any other rule, the first cacheable rule matching one request of a key matches all
    of them (a request that a non-caching rule takes is passed, and never hits).
    """
    key = policy.cache.key
    cacheable = [r for r in (*policy.rules, policy.default_rule) if r.cache]
    beyond_key = [r for r in cacheable if _matches_beyond_key(r.match, key)]
    return tuple(r.name for r in cacheable
                 if any(r is other or _may_overlap(r.match, other.match, key) for other in beyond_key))


def _matches_beyond_key(match: Match, key: tuple[str, ...]) -> bool:
    return bool(match.headers or match.cookies
                or (match.methods and not {"GET", "HEAD"} <= set(match.methods))
                or (match.hosts and "host" not in key))


def _may_overlap(a: Match, b: Match, key: tuple[str, ...]) -> bool:
    """False only where no request can match both: two path prefixes or exact paths that leave
    each other (neither a prefix of the other; two different exact paths), or (with the host in
    the key) two lists of exact hosts without a common one."""
    if _paths_apart(a, b) or _paths_apart(b, a):
        return False
    exact = a.hosts and b.hosts and not any(h.startswith("*") for h in (*a.hosts, *b.hosts))
    return not (exact and "host" in key and not set(a.hosts) & set(b.hosts))


def _paths_apart(a: Match, b: Match) -> bool:
    """No raw path meets both ``a``'s prefix or exact path and ``b``'s (escapes compared in
    one hex case, as the engines match them in either)."""
    first, second = (_hex_upper(m.path if m.path is not None else m.path_prefix) for m in (a, b))
    if first is None or second is None:
        return False
    if a.path is not None and b.path is not None:
        return first != second
    if a.path is not None:  # an exact path against a prefix
        return not first.startswith(second)
    return not (first.startswith(second) or second.startswith(first))


def _hex_upper(text: str | None) -> str | None:
    return None if text is None else re.sub(r"%[0-9A-Fa-f]{2}", lambda m: m.group(0).upper(), text)


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
    if hosts and _compared(hosts):
        return f"!({_host_condition(hosts)})"
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


def _condition(rule: Rule) -> str:
    """A rule's conditions as one VCL expression, each in its cheapest exact form: a string
    function of vmod str (varnish-modules) or a comparison where one says the same as a regex."""
    m = rule.match
    parts = []
    # Path conditions match req.url (paths never hold "?"); path_regex needs the path alone.
    if m.path_prefix:
        parts.append(f"str.startswith(req.url, {vcl_str(m.path_prefix)})" if "%" not in m.path_prefix
                     else f"req.url ~ {vcl_str('^' + literal_regex(m.path_prefix))}")
    if m.path is not None:
        parts.append(_exact_path(m.path))
    if m.path_regex is not None:
        parts.append(f'var.get("path") ~ {vcl_str(m.path_regex)}')
    if m.extensions:
        parts.append(f"req.url ~ {vcl_str('^[^?]*' + extension_pattern(m.extensions) + '(?:[?]|$)')}")
    if m.methods:
        parts.append(" || ".join(f"req.method == {vcl_str(n)}" for n in _method_names(m.methods)))
    if m.hosts:
        parts.append(_host_condition(m.hosts))
    for h in m.headers:
        parts.append(_value_condition(f"req.http.{h.name}", h.regex))
    for c in m.cookies:
        parts.append(_value_condition(f"cookie.get({vcl_str(c.name)})", c.regex))
    return " && ".join(f"({p})" for p in parts) or "true"


def _exact_path(path: str) -> str:
    """The raw path is ``path``: the target is the path, or the path and a query. A string
    comparison where the path holds no %-escape (whose hex may come in either case)."""
    if "%" in path:
        return f"req.url ~ {vcl_str('^' + literal_regex(path) + '(?:[?]|$)')}"
    return f"req.url == {vcl_str(path)} || str.startswith(req.url, {vcl_str(path + '?')})"


def _value_condition(value: str, regex: str | None) -> str:
    """A header or cookie value matches ``regex``; without one (or ".") it is present and not
    empty, which a length says without a regex match."""
    regex = regex or "."
    return f"str.count({value}) > 0" if regex == "." else f"{value} ~ {vcl_str(regex)}"


def _host_condition(hosts: tuple[str, ...]) -> str:
    """The (lowercased, port-less) Host is one of ``hosts``: string comparisons for a few exact
    names, one regex otherwise."""
    if _compared(hosts):
        return " || ".join(f"req.http.host == {vcl_str(h)}" for h in hosts)
    return f"req.http.host ~ {vcl_str(host_regex(hosts))}"


def _compared(hosts: tuple[str, ...]) -> bool:
    """A few exact names: string comparisons are cheaper than a regex match."""
    return len(hosts) <= HOST_COMPARISONS and not any(h.startswith("*.") for h in hosts)


def _method_names(methods: tuple[str, ...]) -> tuple[str, ...]:
    """A rule's methods; PURGE and BAN select the rule a GET would."""
    return (*methods, "PURGE", "BAN") if "GET" in methods else methods


def _behaviour(rule: Rule) -> Behaviour:
    keyed_auth = "authorization" in {h.lower() for h in rule.key.headers}
    hash_parts = tuple(f'"h:{h.lower()}:" + req.http.{h}' for h in rule.key.headers)
    hash_parts += tuple(f'"c:{c}:" + cookie.get({vcl_str(c)})' for c in rule.key.cookies)
    return Behaviour(
        cache=rule.cache,
        pass_auth=not keyed_auth,
        cookie_mode=("strip" if rule.strip_cookies else "keep" if rule.key.cookies
                     else "forward" if "request-cookie" in rule.relax else "bypass"),
        keep_cookies=",".join(rule.key.cookies),
        hash_parts=hash_parts,
        override=rule.origin_headers == "override",
        vary_headers=rule.vary,
        tags_header=rule.tags_from_header,
        forwards=tuple(h for h in OVERRIDE_HEADERS if h not in stripped(rule)),
        auth_store=rule.cache and not keyed_auth and rule.origin_headers == "respect",
        auth_lookup="authorization-lookup" in rule.relax,
        store_set_cookie="set-cookie" in rule.relax,
        heuristic="heuristic-freshness" in rule.relax,
        request_no_cache="request-no-cache" in rule.relax,
    )


def _profiles(policy: Policy) -> dict[Behaviour, VclProfile]:
    """One profile per distinct behaviour, numbered in order of first use."""
    names: dict[Behaviour, list[str]] = {}
    for rule in (*policy.rules, policy.default_rule):
        names.setdefault(_behaviour(rule), []).append(rule.name)
    return {b: VclProfile(f"p{i}", tuple(n), b, rule_test(tuple(n)))
            for i, (b, n) in enumerate(names.items(), 1)}


def rule_test(names: tuple[str, ...]) -> str:
    """VCL true when the selected rule is one of ``names`` (rule names are [a-z][a-z0-9_-]*): a
    few string comparisons, one regex for more; "" for no names."""
    if len(names) <= RULE_COMPARISONS:
        return " || ".join(f'var.get("rule") == "{n}"' for n in names)
    return f'var.get("rule") ~ "^(?:{"|".join(names)})$"'


def _ttl_tests(rules: tuple[VclRule, ...]) -> tuple[tuple[int, str], ...]:
    """One test per distinct TTL, the most common first (it is read only when a fetch follows)."""
    by_ttl: dict[int, list[str]] = {}
    for rule in rules:
        by_ttl.setdefault(rule.ttl, []).append(rule.name)
    ordered = sorted(by_ttl.items(), key=lambda item: -len(item[1]))
    return tuple((ttl, rule_test(tuple(names))) for ttl, names in ordered)


def _rule(policy: Policy, rule: Rule, profiles: dict[Behaviour, VclProfile]) -> VclRule:
    marker = f"rule {rule.name} ({policy.where(f'rules[{rule.index}]')})"
    if rule.name == "default":
        marker = "rule default (requests no rule matches)"
    ttl = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    profile = profiles[_behaviour(rule)]
    return VclRule(rule.name, marker, _condition(rule), profile.ident, ttl, profile.behaviour)


def _chunks(rules: tuple[VclRule, ...]) -> tuple[tuple[VclRule, ...], ...]:
    """The selection chain in subroutines of CHUNK rules: gcc compiles many small functions far
    faster than one huge one."""
    return tuple(rules[i:i + CHUNK] for i in range(0, len(rules), CHUNK))
