"""``cachewright explain``: what the compiled configurations do with one request.

The answer is computed, not described: the rule comes from ``harness.probe.select_rule`` (first
match, the engines' semantics) and is cross-checked against nginx's rule-selection ``map`` as the
compiler lowers it (``generator.lower_nginx``); the per-engine part is read from the same render
models the templates receive (``lower_nginx.lower`` and ``lower_varnish.lower``).

The text says the decision first and the engines' internals last: ``-q`` prints the rule, whether
it is cached (or why not) and the TTL; the default adds the cache key, what the origin receives
and the Cache-Status; ``-v`` adds each engine's internals (nginx's dispatch map and location, the
VCL's variables and subroutines). ``--json`` always holds everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachewright.generator import lower_nginx, lower_varnish
from cachewright.generator.load import load
from cachewright.generator.model import SAFE_METHODS, Policy, Rule
from cachewright.generator.quote import glob_regex, host_regex
from cachewright.generator.units import format_duration

from .. import ui
from ..probe import REFUSED_PATHS, Request, engine_host, engine_method, select_rule
from ..runtime.prepare import request_host
from . import common

Pair = tuple[str, str]
PURGES = ("PURGE", "BAN")
NGINX_VERSION = (1, 22, 1)
NGINX_MODULES = "/usr/lib/nginx/modules"
# Client headers the generated configurations never pass on (docs/policy.md, safe defaults).
DROPPED_HEADERS = ("X-Forwarded-Host", "X-Forwarded-Scheme", "X-Original-URL", "X-Rewrite-URL",
                   "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "Forwarded")
REPLACED_HEADERS = ("X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto")


class UsageError(ValueError):
    """A request on the command line that cannot be explained (a malformed -H, a bad target)."""


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

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (pairs become lists)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- command line


def add_parser(sub: Any) -> None:
    """Register ``explain`` on the ``cachewright`` subparsers."""
    p = sub.add_parser(
        "explain", help="show which rule a request matches and what each engine does with it",
        description="Explain one request: the rule that matches (first match), whether it is "
                    "looked up and stored and for how long (or why not), the cache key, what "
                    "the origin receives, and how nginx and Varnish implement it. Computed from "
                    "the same lowering the compiler uses; no engine is run.",
        epilog="examples:\n  cachewright explain policy.yaml GET /products/1\n"
               "  cachewright explain policy.yaml GET /products/1?utm_source=x -H 'Cookie: a=b'\n"
               "  cachewright explain policy.yaml GET /v1/me -H 'Authorization: Bearer t'\n"
               "  cachewright explain policy.yaml POST /cart --host shop.example.com "
               "--scheme https --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    p.add_argument("method", help="request method (GET, POST, PURGE, ...)")
    p.add_argument("target", metavar="PATH", help="request target: raw path and optional ?query")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a request header (repeatable); Cookie and Host are understood")
    p.add_argument("--host", help="the Host (default: a Host header, else the policy's first "
                                  "listen.hosts entry, else cachewright.test)")
    p.add_argument("--scheme", choices=("http", "https"),
                   help="the listener the request arrives on (default: https when the policy "
                        "redirects plain HTTP or only serves HTTPS, else http)")
    p.add_argument("--json", action="store_true",
                   help="print the explanation as JSON (everything, engine internals included)")
    # Also after the subcommand (cachewright's own -q/-v come before it); SUPPRESS keeps an
    # earlier `cachewright -v explain ...` from being reset by this parser's default.
    volume = p.add_mutually_exclusive_group()
    volume.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="the decision only: rule, cached or why not, TTL")
    volume.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="also each engine's internals: nginx's dispatch map and location, "
                             "the Varnish VCL's variables and subroutines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Explain the request; exit 2 on a malformed request."""
    policy = load(args.policy)
    common.warn(policy.warnings)
    scheme = args.scheme or default_scheme(policy)
    try:
        request = build_request(policy, args.method, args.target, args.header, args.host)
        if not serves(policy, scheme):
            raise UsageError(f"the policy does not listen on {scheme} (see listen)")
    except UsageError as exc:
        print(f"cachewright explain: {exc}", file=sys.stderr)
        return 2
    result = explain(policy, request, scheme)
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result, _level(args)))
    return 0


def _level(args: argparse.Namespace) -> int:
    """-q / -v given after ``explain`` (the same names as cachewright's own, which set ui.level)."""
    if getattr(args, "quiet", False):
        return ui.QUIET
    return ui.VERBOSE if getattr(args, "verbose", False) else ui.level


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


# --------------------------------------------------------------------------- the explanation


def explain(policy: Policy, request: Request, scheme: str = "http") -> Explanation:
    """What the compiled configurations do with ``request`` arriving over ``scheme``."""
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
        engines=(nginx_view(policy, rule, request, scheme),
                 varnish_view(policy, rule, request, reasons)),
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
    given = f"{format_duration(lifetime)} ({source}) for {lower_nginx.DEFAULT_STATUSES}"
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
    statuses = " ".join(str(s) for s in lower_nginx.storable_statuses(policy))
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


# --------------------------------------------------------------------------- engines


def nginx_view(policy: Policy, rule: Rule, request: Request, scheme: str) -> EngineView:
    """The nginx side: dispatch map, named location, key and bypass directives."""
    model = lower_nginx.lower(policy, NGINX_VERSION, NGINX_MODULES)
    location = next(loc for loc in model.locations if loc.ident == rule.ident)
    key = nginx_dispatch_key(model, request)
    chosen, entry = nginx_dispatch(model, request, key)
    # a purge request is dispatched to purge-<ident>: the rule whose entries it purges
    lines = [("DISAGREEMENT", f"nginx's dispatch map selects {chosen}, select_rule {rule.ident} "
              "(please report this)")] if chosen.removeprefix("purge-") != rule.ident else []
    query, dropped = split_query(policy, request.query)
    named = f"@{rule.ident}" + ("q" if dropped else "")
    lines += [("location", f"{named} (error_page 418 = @$cw_target; rule {rule.name})"),
              ("dispatch key", f"{model.dispatch_key} = \"{key}\""),
              ("map $cw_target", f"~{entry.regex} -> {entry.value}" if entry else "(no regex matched)")]
    values = nginx_values(model, request, scheme, query)
    lines += _nginx_cache_lines(location, values, request, plain=not dropped)
    return EngineView("nginx", tuple(lines))


def _nginx_cache_lines(location: lower_nginx.Location, values: dict[str, str],
                       request: Request, plain: bool) -> list[Pair]:
    if not location.cache:
        return [("proxy_cache", "off (cache: false)"),
                ("Cookie to origin", f"proxy_set_header Cookie {location.forward_cookie}")]
    valid = "; ".join(f"{codes} {t}" for codes, t in location.valid) or "(none)"
    key = location.plain_key if plain else location.key
    return [("proxy_cache_key", key),
            ("key value", nginx_key_value(values, key, request)),
            ("proxy_cache_bypass", (location.plain_bypass if plain else location.bypass) or "(none)"),
            ("proxy_no_cache", location.plain_no_cache if plain else location.no_cache),
            ("proxy_cache_valid", valid), ("proxy_ignore_headers", location.ignore_headers),
            ("Cookie to origin", f"proxy_set_header Cookie {location.forward_cookie}")]


def nginx_values(model: lower_nginx.NginxModel, request: Request, scheme: str,
                 query: str) -> dict[str, str]:
    """The nginx variables explain can evaluate for this request."""
    values = {"$scheme": scheme, "$host": engine_host(request.host), "$cw_path": request.raw_path,
              "$cw_rawpath": request.raw_path, "$cw_query": query, "$cw_rawquery": query}
    for cookie in model.cookie_values:
        values[f"${cookie.var}"] = request.cookie(cookie.name)
    for predicate in model.predicates:
        values.setdefault(predicate.source, _source_value(predicate.source, request))
    return values


def _source_value(source: str, request: Request) -> str:
    """A ``$http_NAME`` variable's value (other sources are set by ``nginx_values``)."""
    name = source.removeprefix("$http_").replace("_", "-")
    return request.header(name)


def nginx_dispatch_key(model: lower_nginx.NginxModel, request: Request) -> str:
    """The string the dispatch map tests: [predicate bits ]method body host target."""
    values = nginx_values(model, request, "http", "")
    bits = "".join("1" if re.search(p.regex, values[p.source]) else "0" for p in model.predicates)
    body = request.header("Content-Length") + request.header("Transfer-Encoding")
    fields = f"{request.method} {body} {values['$host']} {request.target}"
    return f"{bits} {fields}" if model.predicates else fields


def nginx_dispatch(model: lower_nginx.NginxModel, request: Request,
                   key: str) -> tuple[str, lower_nginx.Target | None]:
    """The rule ident (``purge-<ident>`` for a PURGE, ``guard-<status>`` for a refusal) the
    dispatch map picks for ``request`` (whose dispatch key is ``key``), and the entry that did."""
    entry = next((t for t in model.dispatch if re.search(_python_regex(t.regex), key)), None)
    if entry is None:
        return model.dispatch_default, None
    if entry.value == "$cw_purge_target":
        selector = (key.split(" ", 1)[0] if model.predicates else "") + ":GET:" + request.raw_path
        ident = next((c.ident for c in model.choices if re.search(c.regex, selector)), "default")
        return f"purge-{ident}", entry
    return entry.rule, entry


def _python_regex(pcre: str) -> str:
    """PCRE's named groups as Python spells them."""
    return pcre.replace("(?<cw_", "(?P<cw_")


def nginx_key_value(values: dict[str, str], key: str, request: Request) -> str:
    """``proxy_cache_key`` with its variables replaced by this request's values."""
    return re.sub(r"\$\{?([a-z0-9_]+)\}?", lambda m: _var(values, request, m.group(1)), key)


def _var(values: dict[str, str], request: Request, name: str) -> str:
    if f"${name}" in values:
        return values[f"${name}"]
    return _source_value(f"${name}", request) if name.startswith("http_") else f"${name}"


def varnish_view(policy: Policy, rule: Rule, request: Request,
                 reasons: tuple[str, ...]) -> EngineView:
    """The Varnish side: selection condition, the rule's task variable, the profile and TTL a fetch
    derives from it, recv and hash."""
    model = lower_varnish.lower(policy)
    vcl_rule = next((r for chunk in model.chunks for r in chunk if r.name == rule.name),
                    model.default)
    profile = next(p for p in model.profiles if p.ident == vcl_rule.profile)
    lines = [("condition", vcl_rule.condition), ('var "rule"', rule.name),
             ("X-Cw-Profile", f"{profile.ident} (on a fetch; behaviour shared by rules: {profile.rules})"),
             ("X-Cw-Ttl", f"{vcl_rule.ttl} (on a fetch)"),
             ("vcl_recv", "return (pass)" if reasons else "return (hash)"),
             ("vcl_hash", " + ".join(varnish_hash(model, profile.behaviour)))]
    lines += [("cookies", _cookie_mode(profile.behaviour))]
    if profile.behaviour.vary_headers:
        lines.append(("beresp.http.Vary", "+ " + ", ".join(profile.behaviour.vary_headers)))
    return EngineView("varnish", tuple(lines))


def varnish_hash(model: lower_varnish.VarnishModel, b: lower_varnish.Behaviour) -> list[str]:
    """The ``hash_data`` arguments of ``vcl_hash`` for this behaviour."""
    parts = [model.scheme] if model.hash_scheme else []
    parts += ["req.http.host"] if model.key_host else []
    parts += ["req.url" if model.key_query else "var.get(\"path\")"]
    return [*parts, *b.hash_parts]


def _cookie_mode(b: lower_varnish.Behaviour) -> str:
    if b.cookie_mode == "strip":
        return "unset req.http.Cookie"
    if b.cookie_mode == "keep":
        return f'cookie.keep("{b.keep_cookies}")'
    return "a Cookie header makes the request pass (var \"pass\")"


# --------------------------------------------------------------------------- text

#: the width of the label column of the text output, and of a whole line (values wrap)
LABEL, WIDTH = 14, 100


def render(e: Explanation, level: int = ui.NORMAL) -> str:
    """The explanation as text: the decision (``-q``: rule, cached or why not, TTL), the key and
    what the origin receives (default), each engine's internals (``-v``)."""
    lines = [e.request, *_warnings(e), *_decision(e)]
    if level >= ui.NORMAL:
        lines += [*_key_lines(e), *_origin_lines(e.origin), *_cache_status(e)]
    if level >= ui.VERBOSE:
        for view in e.engines:
            lines += ["", *_section(view.engine, list(view.lines))]
    elif level == ui.NORMAL and e.engines:
        lines += ["", "(add -v for each engine's internals: nginx's map and location, the VCL's "
                      "variables and subroutines)"]
    return "\n".join(lines)


def _line(label: str, value: str, indent: int = 0) -> str:
    """``label`` in the label column (indented by ``indent``), ``value`` wrapped beside it."""
    wrapped = textwrap.wrap(value, WIDTH - LABEL, break_long_words=False,
                            break_on_hyphens=False) or [""]
    head = " " * indent + label.ljust(LABEL - indent - 2) + "  "
    return "\n".join([head + wrapped[0], *(" " * LABEL + rest for rest in wrapped[1:])])


def _lines(label: str, values: tuple[str, ...] | list[str], indent: int = 2) -> list[str]:
    """Several values under one label, each on its own line."""
    return [_line(label if i == 0 else "", v, indent) for i, v in enumerate(values)]


def _warnings(e: Explanation) -> list[str]:
    """An engine's lowering that disagrees with the selection model: shown whatever the level."""
    return [f"warning: {value}" for view in e.engines for what, value in view.lines
            if what == "DISAGREEMENT"]


def _decision(e: Explanation) -> list[str]:
    if e.rule is None:
        lines = [_line("rule", "none: the engines answer before choosing a rule")]
    else:
        lines = [_line("rule", f"{e.rule}  ({e.rule_source})"), *_lines("matched", e.conditions)]
    return [*lines, _line("cached", _verdict(e)), *_lines("because", e.reasons),
            *_lines("ttl", e.ttl), *_lines("stale", e.stale),
            *(_lines("not stored", [e.never_stored]) if e.never_stored else [])]


def _verdict(e: Explanation) -> str:
    return {"cached": "yes: looked up in the cache; a miss is fetched and stored",
            "bypass": "no: not looked up, not stored; every request reaches the origin",
            "purge": "no: a purge request, answered by the purge interface",
            "redirect": f"no: a {e.status} redirect to https://",
            "refused": f"no: refused with {e.status}"}[e.verdict]


def _key_lines(e: Explanation) -> list[str]:
    """The cache key as the URL it is built from, then its extra parts (a cached request only)."""
    if e.verdict != "cached":
        return []
    parts = dict(e.key)
    url = (f"{parts['scheme']}://" if "scheme" in parts else "") + parts.get("host", "") + \
        parts.get("path", "") + (f"?{parts['query']}" if parts.get("query") else "")
    shown = [p for p in ("scheme", "host", "path", "query") if p in parts]
    extras = [(name.partition(" "), value) for name, value in e.key if name not in shown]
    return [_line("key", f"{url}  ({' + '.join(shown)})"),
            *(_line(f"+ {kind}", f"{name}{'=' if kind == 'cookie' else ': '}{value or '(absent)'}", 2)
              for (kind, _, name), value in extras)]


def _origin_lines(o: OriginRequest | None) -> list[str]:
    if o is None:
        return []
    lines = [_line("origin", f"{o.method} {o.target}  (to {', '.join(o.servers)})"),
             _line("Host", o.host, 2)]
    if o.cookie or o.removed_cookies:
        lines.append(_line("Cookie", _cookie_text(o), 2))
    if o.removed_query:
        lines.append(_line("query", f"without {'&'.join(o.removed_query)} (cache.query.ignore)", 2))
    if o.dropped_headers:
        lines.append(_line("removed", ", ".join(o.dropped_headers), 2))
    by_value: dict[str, list[str]] = {}
    for name, value in o.set_headers:
        by_value.setdefault(value, []).append(name)
    lines.append(_line("set", "; ".join(f"{', '.join(n)}: {v}" for v, n in by_value.items()), 2))
    if o.passed_headers:
        lines.append(_line("unchanged", ", ".join(o.passed_headers), 2))
    return lines


def _cookie_text(o: OriginRequest) -> str:
    """The Cookie header the origin gets and the cookies taken out (by the only two ways a rule
    removes cookies: strip_cookies all, key.cookies all but the keyed ones)."""
    removed = ", ".join(o.removed_cookies)
    if o.cookie is None:
        return f"none: {removed} removed (strip_cookies)"
    return f"{o.cookie} ({removed} removed: only key.cookies are passed on)" if removed else o.cookie


def _cache_status(e: Explanation) -> list[str]:
    statuses = list(dict.fromkeys(e.cache_status))
    if not statuses:
        return []
    return _lines("Cache-Status", [statuses[0], *(f"then {s}" for s in statuses[1:])], 0)


def _section(title: str, pairs: list[Pair]) -> list[str]:
    if not pairs:
        return []
    width = max(len(k) for k, v in pairs if v) if any(v for _, v in pairs) else 0
    return [f"{title}:"] + [f"  {k:{width}}  {v}".rstrip() if v else f"  - {k}" for k, v in pairs]
