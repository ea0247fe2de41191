"""The nginx named locations: one per rule (and its twins), the part of nginx.conf per rule.

Per-rule TTLs and header handling need per-location directives (``proxy_cache_valid`` and
``proxy_ignore_headers`` take no variables): the dispatch map (generator/nginx_dispatch.py)
names a location per rule. ``@<rule>`` proxies the request target as is (its query holds no
ignored parameter: key on the raw query), ``@<rule>q`` the normalised target, ``@purge-<rule>``
purges the key a GET would use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .hygiene import stripped
from .model import Policy, Rule
from .nginx_dispatch import CookieValue, header_var
from .status import DEFAULT_STATUSES
from .units import format_duration

X_ACCEL = "X-Accel-Expires X-Accel-Redirect X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset"


@dataclass(frozen=True)
class Variant:
    """One named location of a rule: the plain one, or the twin for a query holding an ignored
    parameter (its key on the normalised query, the normalised target proxied)."""

    ident: str
    marker: str
    key: str
    #: proxy_cache_bypass's variables ("": none, the directive is left out)
    bypass: str
    no_cache: str
    proxy_pass: str
    #: a fleet node sharding over the next tier: the key the upstream hashes ($cw_hash)
    shard_key: str | None = None


@dataclass(frozen=True)
class PurgeLocation:
    """``@purge-<rule>``: purges the key a GET of the target would use."""

    ident: str
    marker: str
    #: add_header arguments (Cache-Status, where the policy writes it)
    headers: tuple[str, ...]
    #: the key purged (None: the rule never caches, a purge finds nothing: 404)
    key: str | None


@dataclass(frozen=True)
class Location:
    """A rule's named locations: what they share, and each one's lookup (``key``, ``bypass``,
    ``no_cache`` for the normalised query; ``plain_*`` for the target as it came), which
    ``explain`` reads and ``variants`` hands the template."""

    ident: str
    name: str
    marker: str
    cache: bool
    key: str
    valid: tuple[tuple[str, str], ...]
    ignore_headers: str
    strip_cookies: bool
    bypass: str
    no_cache: str
    # the same for the twin that proxies the request target unchanged (no ignored parameter)
    plain_key: str
    plain_bypass: str
    plain_no_cache: str
    #: its keys in maps over $cw_target: the location's names ("default" escaped, a map keyword)
    map_keys: tuple[str, ...]
    mode: str
    forward_cookie: str
    keep_cookies: str | None
    hide_headers: tuple[str, ...]
    #: client headers removed before the origin (generator/hygiene.py): all but those it keys on
    strip_headers: tuple[str, ...]
    #: the forwarding headers differ from the server's: the location repeats them all (one
    #: proxy_set_header in a location drops every inherited one)
    repeats_forwarding: bool
    #: add_header arguments: the Cache-Status of its answers, where the policy writes it
    status_headers: tuple[str, ...]
    #: the plain location, then the twin where the policy ignores query parameters
    variants: tuple[Variant, ...]
    purge: PurgeLocation | None
    #: its responses end in njs (cw.respond): Age on a stored answer (RFC 9111 5.1), no field the
    #: origin listed in Connection (RFC 9110 7.6.1)
    respond: bool = False


def upstream(policy: Policy) -> str:
    """What proxy_pass names: ``http://cw_origin`` or ``https://cw_origin``."""
    return f"{policy.origin.scheme}://cw_origin"


def cache_status(policy: Policy, outcome: str, detail: str) -> tuple[str, ...]:
    """The add_header arguments of a Cache-Status (RFC 9211) answer: none where the policy
    writes no Cache-Status."""
    if not policy.headers.cache_status:
        return ()
    return (f'Cache-Status "{policy.headers.cache_status_name}; {outcome}; detail={detail}"',)


def location(policy: Policy, rule: Rule, cookies: dict[str, CookieValue], purge: bool,
             tags: tuple[str, ...]) -> Location:
    """The named locations of ``rule``; ``purge``: PURGE of a URL is allowed; ``tags``: the
    policy's ``tag_headers`` (derived once, not per rule: that made a large policy quadratic)."""
    marker = f"rule {rule.name} ({policy.where(f'rules[{rule.index}]')})"
    if rule.name == "default":
        marker = "rule default (requests no rule matches)"
    plain = _Lookup(_key(policy, rule, cookies, "$cw_rawquery"), *_bypass_and_no_cache(rule))
    query = _Lookup(_key(policy, rule, cookies, "$cw_query"), *_bypass_and_no_cache(rule, "$cw_q_left"))
    respond = _responds_in_njs(policy, rule)
    strip = stripped(rule)
    return Location(
        ident=rule.ident, name=rule.name, marker=marker, cache=rule.cache,
        key=query.key, bypass=query.bypass, no_cache=query.no_cache,
        plain_key=plain.key, plain_bypass=plain.bypass, plain_no_cache=plain.no_cache,
        valid=_valid(policy, rule),
        ignore_headers=_ignore_headers(rule),
        strip_cookies=rule.strip_cookies,
        map_keys=(("\\default" if rule.ident == "default" else rule.ident),
                  *((f"{rule.ident}q",) if policy.cache.query.ignore else ())),
        mode=_mode(rule),
        forward_cookie=_forward_cookie(rule, cookies),
        keep_cookies=("".join(f"${{{cookies[c].var}_pair}}" for c in rule.key.cookies)
                      if rule.key.cookies else None),
        hide_headers=_hide_headers(tags, rule, respond, _appends(policy)),
        strip_headers=strip,
        repeats_forwarding=strip != stripped(),
        status_headers=cache_status(policy, "$cw_outcome" if rule.cache else "fwd=bypass", rule.name),
        variants=_variants(policy, rule, marker, plain, query),
        purge=_purge(policy, rule, marker, query if policy.cache.query.ignore else plain) if purge else None,
        respond=respond,
    )


@dataclass(frozen=True)
class _Lookup:
    """A location's cache key, proxy_cache_bypass and proxy_no_cache."""

    key: str
    bypass: str
    no_cache: str


def _variants(policy: Policy, rule: Rule, marker: str, plain: _Lookup,
              query: _Lookup) -> tuple[Variant, ...]:
    """The plain location; where query parameters are ignored, the twin for a query holding one
    (what is left of them after the passes, $cw_q_left, bypasses the cache)."""
    shard = policy.role is not None and policy.role.next_routing == "shard"
    out = [Variant(rule.ident, marker, plain.key, plain.bypass, plain.no_cache, upstream(policy),
                   plain.key if shard else None)]
    if policy.cache.query.ignore:
        out.append(Variant(f"{rule.ident}q", f"{marker}, query holding an ignored parameter",
                           query.key, query.bypass, query.no_cache,
                           upstream(policy) + "$cw_path$cw_qsuffix", query.key if shard else None))
    return tuple(out)


def _purge(policy: Policy, rule: Rule, marker: str, lookup: _Lookup) -> PurgeLocation:
    """The key a GET would use: the normalised query's where parameters are ignored."""
    return PurgeLocation(f"purge-{rule.ident}", f"{marker}, purge",
                         cache_status(policy, "fwd=bypass", "purge"), lookup.key if rule.cache else None)


def _mode(rule: Rule) -> str:
    """$cw_mode: origin headers Respected/Overridden, cookies Stripped/Kept; N: never stored."""
    if not rule.cache:
        return "N"
    set_cookie_ok = rule.strip_cookies or "set-cookie" in rule.relax
    return ("O" if rule.origin_headers == "override" else "R") + ("S" if set_cookie_ok else "K")
def _bypass_and_no_cache(rule: Rule, *leading: str) -> tuple[str, str]:
    """The request headers that make ``rule`` skip the lookup (``proxy_cache_bypass``) and that
    keep its answer from being stored (``proxy_no_cache``), less what the rule keys on or relaxes;
    ``leading`` variables come first in both. RFC 9111 3.5: under respect an answer to a request
    with Authorization is stored when it says public, s-maxage or must-revalidate
    ($cw_auth_nostore); under override never."""
    bypass, no_cache = [*leading], [*leading]
    if "authorization" not in {h.lower() for h in rule.key.headers}:
        respect = rule.origin_headers == "respect"
        no_cache.append("$cw_auth_nostore" if respect else "$http_authorization")
        if not (respect and "authorization-lookup" in rule.relax):
            bypass.append("$http_authorization")
    if not (rule.strip_cookies or rule.key.cookies or "request-cookie" in rule.relax):
        bypass.append("$http_cookie")
        no_cache.append("$http_cookie")
    if rule.origin_headers == "respect":
        no_cache.append("$cw_req_nostore")  # RFC 9111 5.2.1.5: the request's own no-store
    if "request-no-cache" in rule.relax:
        bypass.append("$cw_req_nocache")  # RFC 9111 5.2.1.1, 5.2.1.4, 5.4: fetched, then stored
    return " ".join(bypass), " ".join([*no_cache, "$cw_nostore"])


def _responds_in_njs(policy: Policy, rule: Rule) -> bool:
    """With nginx.njs, a respecting rule's stored answers carry their age (RFC 9111 4: a cache
    MUST generate Age when it answers from storage), which nginx keeps nowhere a variable shows,
    and lose the fields the origin listed in Connection (RFC 9110 7.6.1), which no directive can
    name."""
    return policy.nginx.njs and rule.cache and rule.origin_headers == "respect"


def _appends(policy: Policy) -> bool:
    """A fleet node in front of another tier: the Cache-Status it receives is the next tier's,
    and its own is appended to it (RFC 9211 2: the list runs from the origin's side)."""
    return policy.role is not None and policy.role.next_routing is not None


def _hide_headers(tags: tuple[str, ...], rule: Rule, njs: bool, appends: bool) -> tuple[str, ...]:
    """Origin response headers clients never see: Cache-Status is ours (a fleet hop's is kept:
    add_header appends ours), tag headers are consumed by the cache (as on Varnish), Set-Cookie
    is dropped where cookies are stripped, and Age is the cache's own where njs counts it
    (cw.respond passes the origin's on a miss)."""
    return (*(() if appends else ("Cache-Status",)), *tags, *(("Set-Cookie",) if rule.strip_cookies else ()),
            *(("Age",) if njs else ()))


def tag_headers(policy: Policy) -> tuple[str, ...]:
    """Every response header a rule takes tags from, sorted."""
    return tuple(sorted({r.tags_from_header for r in policy.rules if r.tags_from_header}))


def _key(policy: Policy, rule: Rule, cookies: dict[str, CookieValue], query: str) -> str:
    """proxy_cache_key: parts separated by a newline (which no request text can contain). ``query``
    is the variable holding the normalised query (the raw one where nothing is ignored)."""
    scheme = "$cw_scheme" if policy.role is not None and policy.role.inner else "$scheme"
    parts = {"scheme": f"{scheme}://", "host": "$host", "path": "$cw_path", "query": f"?{query}"}
    key = "".join(parts[p] for p in policy.cache.key)
    for header in rule.key.headers:
        key += f"\\nh:{header.lower()}:{header_var(header)}"
    for cookie in rule.key.cookies:
        key += f"\\nc:{cookie}:${cookies[cookie].var}"
    for header in rule.vary:
        key += f"\\nv:{header.lower()}:{header_var(header)}"
    return key


def _valid(policy: Policy, rule: Rule) -> tuple[tuple[str, str], ...]:
    """``proxy_cache_valid`` lines: a status listed in status_ttl takes its own TTL, the rule's
    covers the other default statuses (nginx uses the first line naming a status, so a status
    must not be on two lines; Varnish's lowering gives status_ttl the same precedence)."""
    ttl = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    codes, listed = _status_lines(policy.cache.status_ttl)
    return ((codes, format_duration(ttl)),) + listed if ttl and codes else listed


@lru_cache(maxsize=64)
def _status_lines(status_ttl: tuple[tuple[int, int], ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The default statuses ``status_ttl`` does not list, and its own lines: the same for every
    rule of a policy, so derived once (per rule they were a tenth of the nginx lowering)."""
    listed = {str(code) for code, _ in status_ttl}
    codes = " ".join(c for c in DEFAULT_STATUSES.split() if c not in listed)
    return codes, tuple((str(code), format_duration(t)) for code, t in status_ttl if t)


def _ignore_headers(rule: Rule) -> str:
    parts = ["Cache-Control Expires"] if rule.origin_headers == "override" else []
    if rule.strip_cookies or "set-cookie" in rule.relax:
        parts.append("Set-Cookie")
    return " ".join([*parts, X_ACCEL])


def _forward_cookie(rule: Rule, cookies: dict[str, CookieValue]) -> str:
    if rule.strip_cookies:
        return '""'
    if rule.key.cookies:
        return f"$cw_keep_{rule.ident}"
    return "$http_cookie"
