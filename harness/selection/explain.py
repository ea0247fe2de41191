"""What the compiled configurations do with one request: ``explain``'s model.

The answer is computed, not described: the rule comes from ``select_rule`` (first match, the
engines' semantics); whether it is looked up and stored, for how long, the cache key and what the
origin receives follow from the policy as the compiler lowers it. Each engine's internals
(``EngineView``) are read from the render models the templates receive, by the ``views`` the
caller passes to ``explain``. ``explain_text`` renders an ``Explanation``; ``--json`` prints it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachewright.generator.errors import UsageError
from cachewright.generator.model import SAFE_METHODS, Policy, Rule
from cachewright.generator.quote import glob_regex, host_regex
from cachewright.generator.status import DEFAULT_STATUSES, storable_statuses
from cachewright.generator.units import format_duration

from ..runtime.prepare import request_host
from .request import REFUSED_PATHS, Pair, Request, engine_host, engine_method, select_rule

PURGES = ("PURGE", "BAN")
# Client headers the generated configurations never pass on (docs/policy.md, safe defaults).
DROPPED_HEADERS = ("X-Forwarded-Host", "X-Forwarded-Scheme", "X-Original-URL", "X-Rewrite-URL",
                   "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "Forwarded")
REPLACED_HEADERS = ("X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto")


@dataclass(frozen=True)
class OriginRequest:
    """The request the origin receives on a miss or bypass."""

    method: str
    target: str
    host: str
    cookie: str | None
    removed_cookies: tuple[str, ...]
    removed_query: tuple[str, ...]
    dropped_headers: tuple[str, ...]
    set_headers: tuple[Pair, ...]
    passed_headers: tuple[str, ...]
    servers: tuple[str, ...]


@dataclass(frozen=True)
class EngineView:
    """How one engine's configuration handles the request: (what, value) lines."""

    engine: str
    lines: tuple[Pair, ...]


#: each engine's internals for a request (given the rule it selects, the scheme, the bypass reasons)
Views = Callable[[Policy, Rule, Request, str, tuple[str, ...]], tuple[EngineView, ...]]


@dataclass(frozen=True)
class FleetHop:
    """One tier of a fleet as the request meets it, the front tier first (docs/fleets.md)."""

    tier: str
    engine: str
    #: ``front`` (an outside balancer picks a node), ``replicas`` or ``shard``
    routing: str
    #: how the balancer or the tier in front picks a node here
    reached_by: str
    #: the nodes that may answer the request at this tier
    nodes: tuple[str, ...]
    #: a shard tier's node that stores the request's key (None: any of ``nodes``, or not computed)
    owner: str | None
    #: how the owner was computed (the hashed key), or why it was not
    note: str


#: each tier's routing of a request (given the rule it selects, the scheme, the verdict); the
#: engines compute it, as they own the hashes (``harness.engines.fleet_explain``)
Routes = Callable[[Policy, Rule, Request, str, str], tuple[FleetHop, ...]]


@dataclass(frozen=True)
class Explanation:
    """Everything ``explain`` says about one request (``--json`` prints it as is).

    ``verdict``: ``cached`` (looked up, stored on a miss), ``bypass`` (neither), ``purge``,
    ``refused`` (400/421/501 before any rule) or ``redirect`` (301 to https). ``ttl``, ``stale``
    and ``never_stored`` are set for ``cached`` only. ``engines`` holds each engine's internals
    (what ``-v`` prints).
    """

    request: str
    verdict: str
    status: int | None
    rule: str | None
    rule_source: str
    conditions: tuple[str, ...]
    reasons: tuple[str, ...]
    ttl: tuple[str, ...]
    stale: tuple[str, ...]
    never_stored: str | None
    key: tuple[Pair, ...]
    cache_status: tuple[str, ...]
    origin: OriginRequest | None
    engines: tuple[EngineView, ...]
    #: a fleet policy's tiers, front first (empty: a single node)
    fleet: tuple[FleetHop, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (pairs become lists); ``fleet`` only for a fleet policy."""
        out = dataclasses.asdict(self)
        if not self.fleet:
            del out["fleet"]
        return out


def default_scheme(policy: Policy) -> str:
    """https when the policy serves it and redirects plain HTTP (or has no plain listener)."""
    https = policy.listen.https
    if https is not None and (https.redirect_http or policy.listen.http is None):
        return "https"
    return "http"


def serves(policy: Policy, scheme: str) -> bool:
    """Whether the policy has a listener for ``scheme``."""
    return (policy.listen.http if scheme == "http" else policy.listen.https) is not None


def build_request(policy: Policy, method: str, target: str, headers: list[str],
                  host: str | None = None) -> Request:
    """A ``Request`` from command-line parts; Cookie headers become cookies, Host the host."""
    if not target.startswith("/"):
        raise UsageError(f"PATH must start with '/': {target!r}")
    pairs = [_header(h) for h in headers]
    cookies = tuple(c for n, v in pairs if n.lower() == "cookie" for c in parse_cookies(v))
    sent_host = next((v for n, v in pairs if n.lower() == "host"), None)
    path, _, query = target.partition("?")
    others = tuple((n, v) for n, v in pairs if n.lower() not in ("cookie", "host"))
    return Request(method.upper(), path, host or sent_host or request_host(policy), query,
                   others, cookies)


def _header(raw: str) -> Pair:
    name, sep, value = raw.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name.strip()):
        raise UsageError(f"-H takes 'Name: value', got {raw!r}")
    return name.strip(), value.strip()


def parse_cookies(header: str) -> tuple[Pair, ...]:
    """``a=1; b=2`` as ((a, 1), (b, 2)); pieces without ``=`` are skipped."""
    pieces = (p.strip().partition("=") for p in header.split(";"))
    return tuple((name, value) for name, sep, value in pieces if sep and name)


def explain(policy: Policy, request: Request, scheme: str = "http",
            views: Views | None = None, routes: Routes | None = None) -> Explanation:
    """What the compiled configurations do with ``request`` arriving over ``scheme``; ``views``
    gives each engine's internals, ``routes`` a fleet's tiers (none without them)."""
    shown = f"{request.method} {scheme}://{request.host}{request.target}"
    refusal = guard(policy, request, scheme)
    if refusal is not None:
        return _refused(policy, shown, *refusal)
    rule = select_rule(policy, request)
    reasons = bypass_reasons(policy, rule, request)
    verdict = "purge" if request.method in PURGES else "bypass" if reasons else "cached"
    cached = verdict == "cached"
    return Explanation(
        request=shown, verdict=verdict, status=None, rule=rule.name,
        rule_source=rule_source(policy, rule), conditions=conditions(rule), reasons=reasons,
        ttl=ttl(policy, rule) if cached else (), stale=stale(policy) if cached else (),
        never_stored=never_stored(policy, rule) if cached else None,
        key=key_parts(policy, rule, request, scheme),
        cache_status=expected_cache_status(policy, verdict, rule.name),
        origin=origin_request(policy, rule, request, scheme, cached) if verdict != "purge" else None,
        engines=views(policy, rule, request, scheme, reasons) if views else (),
        fleet=routes(policy, rule, request, scheme, verdict) if routes and policy.fleet else (),
    )


def _refused(policy: Policy, shown: str, status: int, why: str) -> Explanation:
    detail = "redirect" if status == 301 else "guard"
    verdict = "redirect" if status == 301 else "refused"
    return Explanation(shown, verdict, status, None, f"before any rule (detail={detail})", (),
                       (why,), (), (), None, (), expected_cache_status(policy, verdict, detail),
                       None, ())


def guard(policy: Policy, request: Request, scheme: str) -> tuple[int, str] | None:
    """(status, why) when the engines answer before any rule is chosen, in their order."""
    if any(r.search(request.raw_path) for r in REFUSED_PATHS):
        return 400, "path hygiene: dot segment, backslash or a forbidden %-escape in the path"
    if request.method not in allowed_methods(policy):
        return 501, f"method {request.method} is not served (only {', '.join(allowed_methods(policy))})"
    if policy.listen.hosts and not re.search(host_regex(policy.listen.hosts),
                                             engine_host(request.host)):
        return 421, f"host {engine_host(request.host)!r} is not in listen.hosts"
    https = policy.listen.https
    if scheme == "http" and https is not None and https.redirect_http:
        return 301, "listen.https.redirect_http: plain HTTP is redirected to https://"
    return None


def allowed_methods(policy: Policy) -> tuple[str, ...]:
    """Methods passed on; PURGE/BAN only when ``purge.kinds`` needs them (as on Varnish)."""
    kinds = set(policy.purge.kinds) if policy.purge else set()
    extra = ("PURGE",) if kinds & {"url", "tag"} else ()
    return SAFE_METHODS + extra + (("BAN",) if kinds & {"pattern", "all"} else ())


def rule_source(policy: Policy, rule: Rule) -> str:
    """``rules[4] (policy.yaml:45:5)``, or the implicit default rule."""
    if rule.name == "default":
        return "the implicit default rule (no rule matched)"
    return f"rules[{rule.index}], {policy.where(f'rules[{rule.index}]')}"


def conditions(rule: Rule) -> tuple[str, ...]:
    """The rule's match conditions, one line each."""
    m = rule.match
    out = [f"path {m.path}"] if m.path is not None else []
    out += [f"path_prefix {m.path_prefix}"] if m.path_prefix else []
    out += [f"path_regex {m.path_regex}"] if m.path_regex is not None else []
    out += [f"extensions {', '.join(m.extensions)}"] if m.extensions else []
    out += [f"methods {', '.join(m.methods)}"] if m.methods else []
    out += [f"host {', '.join(m.hosts)}"] if m.hosts else []
    out += [f"header {h.name} ~ {h.regex or '(present)'}" for h in m.headers]
    out += [f"cookie {c.name} ~ {c.regex or '(present)'}" for c in m.cookies]
    return tuple(out)


def bypass_reasons(policy: Policy, rule: Rule, request: Request) -> tuple[str, ...]:
    """Why the request is neither answered from nor stored in the cache (empty: it is)."""
    out = [f"rule '{rule.name}' has cache: false"] if not rule.cache else []
    if rule.cache and request.header("Authorization") and "authorization" not in {
            h.lower() for h in rule.key.headers} and "authorization-lookup" not in rule.relax:
        out.append("the request carries Authorization (safe default; unless the rule puts "
                   "Authorization in key.headers)")
    if rule.cache and request.cookie_header and not (rule.strip_cookies or rule.key.cookies
                                                      or "request-cookie" in rule.relax):
        out.append(f"the request carries cookies and rule '{rule.name}' neither strips them "
                   "(strip_cookies) nor keys on them (key.cookies)")
    if engine_method(request.method) not in ("GET", "HEAD"):
        out.append(f"method {request.method}: only GET and HEAD are cached")
    return tuple(out)


def expected_cache_status(policy: Policy, verdict: str, detail: str) -> tuple[str, ...]:
    """The Cache-Status of the first request and of the same request repeated."""
    if not policy.headers.cache_status:
        return ()
    name = policy.headers.cache_status_name
    if verdict == "cached":
        return (f"{name}; fwd=miss; detail={detail}", f"{name}; hit; detail={detail}")
    return (f"{name}; fwd=bypass; detail={detail}",) * 2


def ttl(policy: Policy, rule: Rule) -> tuple[str, ...]:
    """How long a stored response stays fresh, and who decides: one line per case."""
    lifetime = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    source = "the rule's ttl" if rule.ttl is not None else "cache.default_ttl"
    given = f"{format_duration(lifetime)} ({source}) for {DEFAULT_STATUSES}"
    statuses = tuple(f"{format_duration(t)} for {code} (cache.status_ttl)"
                     for code, t in policy.cache.status_ttl)
    if rule.origin_headers == "respect":
        fallback = given if lifetime else "not stored (no ttl, and cache.default_ttl is 0s)"
        return ("the origin's Cache-Control (s-maxage, max-age) or Expires (origin_headers: respect)",
                f"without them: {fallback}", *statuses)
    if not lifetime:
        return ("origin_headers: override without a ttl: only cache.status_ttl", *statuses)
    return (f"{given}, whatever the origin says (origin_headers: override)", *statuses)


def never_stored(policy: Policy, rule: Rule) -> str:
    """The responses the rule never stores (whatever the TTL)."""
    statuses = " ".join(str(s) for s in storable_statuses(policy))
    zero = "no-cache, a zero lifetime, " if rule.origin_headers == "respect" else ""
    cookie = "" if rule.strip_cookies or "set-cookie" in rule.relax else "Set-Cookie, "
    kept = "; Set-Cookie is removed and the response shared (strip_cookies)" if rule.strip_cookies else ""
    if "set-cookie" in rule.relax:
        kept = "; a response with Set-Cookie is stored with it (relax: set-cookie)"
    other = (f"a status other than {statuses} without its own lifetime"
             if rule.origin_headers == "respect" else f"a status other than {statuses}")
    return f"Cache-Control private or no-store, {zero}{cookie}Vary: *, {other}{kept}"


def stale(policy: Policy) -> tuple[str, ...]:
    """How long past its TTL a stored response is still served, and when."""
    windows = policy.cache.stale
    out = [f"{format_duration(windows.while_revalidate)} while it is refreshed in the background "
           "(stale.while_revalidate)"] if windows.while_revalidate else []
    if windows.if_error:
        out.append(f"{format_duration(windows.if_error)} while the origin fails (stale.if_error)")
    return (*out, "nginx serves stale responses without an age limit") if out else ()


def split_query(policy: Policy, query: str) -> tuple[str, tuple[str, ...]]:
    """(the query the key and origin see, the ignored parameters removed)."""
    ignore = [re.compile(glob_regex(g)) for g in policy.cache.query.ignore]
    params = [p for p in query.split("&") if p] if query else []
    removed = tuple(p for p in params if any(r.fullmatch(p.partition("=")[0]) for r in ignore))
    return "&".join(p for p in params if p not in removed), removed


def key_parts(policy: Policy, rule: Rule, request: Request, scheme: str) -> tuple[Pair, ...]:
    """The cache key's parts and their values for this request."""
    query, _ = split_query(policy, request.query)
    values = {"scheme": scheme, "host": engine_host(request.host), "path": request.raw_path,
              "query": query}
    out: list[Pair] = [(part, values[part]) for part in policy.cache.key]
    out += [(f"header {h}", request.header(h)) for h in rule.key.headers]
    out += [(f"cookie {c}", request.cookie(c)) for c in rule.key.cookies]
    out += [(f"vary {h}", request.header(h)) for h in rule.vary]
    return tuple(out)


def origin_request(policy: Policy, rule: Rule, request: Request, scheme: str,
                   cached: bool) -> OriginRequest:
    """What the origin receives when the cache forwards this request."""
    query, removed = split_query(policy, request.query)
    method = "GET" if cached and request.method == "HEAD" else request.method
    sent = {n.lower() for n, _ in request.headers}
    cookie = forwarded_cookie(rule, request)
    kept = {n for n, _ in parse_cookies(cookie or "")}
    rewritten = {h.lower() for h in (*DROPPED_HEADERS, *REPLACED_HEADERS)} | {"cookie", "host"}
    return OriginRequest(
        method=method,
        target=request.raw_path + (f"?{query}" if query else ""),
        host=policy.origin.host_header or engine_host(request.host),
        cookie=cookie,
        removed_cookies=tuple(dict.fromkeys(n for n, _ in parse_cookies(request.cookie_header)
                                            if n not in kept)),
        removed_query=removed,
        dropped_headers=tuple(h for h in DROPPED_HEADERS if h.lower() in sent),
        set_headers=(("X-Forwarded-For", "the client address"), ("X-Real-IP", "the client address"),
                     ("X-Forwarded-Proto", scheme)),
        passed_headers=tuple(n for n, _ in request.headers if n.lower() not in rewritten),
        servers=tuple(f"{s.host}:{s.port}" for s in policy.origin.servers),
    )


def forwarded_cookie(rule: Rule, request: Request) -> str | None:
    """The Cookie header the origin gets (None: none)."""
    if not request.cookie_header or (rule.cache and rule.strip_cookies):
        return None
    if rule.cache and rule.key.cookies:
        kept = [f"{n}={v}" for n, v in request.cookies if n in rule.key.cookies]
        return "; ".join(kept) or None
    return request.cookie_header
