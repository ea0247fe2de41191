"""``cachewright explain``: what the compiled configurations do with one request.

The model and its text live in ``harness.selection`` (``explain``, ``explain_text``); this module
parses the command line, and reads each engine's internals from the same render models the
templates receive (``lower_nginx.lower`` and ``lower_varnish.lower``), cross-checking nginx's
rule-selection ``map`` against ``select_rule``. Its imports are inside the functions that need
them, so that listing the commands stays fast.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cachewright.generator import lower_nginx, lower_varnish
    from cachewright.generator.model import Policy, Rule
    from cachewright.generator.nginx_dispatch import Target
    from cachewright.generator.nginx_locations import Location
    from cachewright.generator.varnish_rules import Behaviour

    from ..selection.explain import EngineView, Explanation
    from ..selection.request import Pair, Request
from .. import ui
from . import common

NGINX_VERSION = (1, 22, 1)
NGINX_MODULES = "/usr/lib/nginx/modules"


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
    import json
    import sys

    from cachewright.generator.errors import UsageError
    from cachewright.generator.load import load

    from ..selection.explain import build_request, default_scheme, serves
    from ..selection.explain_text import render

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


def explain(policy: Policy, request: Request, scheme: str = "http") -> Explanation:
    """What the compiled configurations do with ``request`` arriving over ``scheme``, with each
    engine's internals."""
    from ..selection import explain as model

    return model.explain(policy, request, scheme, engine_views)


def engine_views(policy: Policy, rule: Rule, request: Request, scheme: str,
                 reasons: tuple[str, ...]) -> tuple[EngineView, ...]:
    """nginx's and Varnish's internals for ``request`` (which selects ``rule``)."""
    return (nginx_view(policy, rule, request, scheme),
            varnish_view(policy, rule, request, reasons))


# --------------------------------------------------------------------------- engines


def nginx_view(policy: Policy, rule: Rule, request: Request, scheme: str) -> EngineView:
    """The nginx side: dispatch map, named location, key and bypass directives."""
    from cachewright.generator import lower_nginx

    from ..selection.explain import EngineView, split_query

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


def _nginx_cache_lines(location: Location, values: dict[str, str],
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
    from ..selection.request import engine_host

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
                   key: str) -> tuple[str, Target | None]:
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
    from cachewright.generator import lower_varnish

    from ..selection.explain import EngineView

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


def varnish_hash(model: lower_varnish.VarnishModel, b: Behaviour) -> list[str]:
    """The ``hash_data`` arguments of ``vcl_hash`` for this behaviour."""
    parts = [model.scheme] if model.hash_scheme else []
    parts += ["req.http.host"] if model.key_host else []
    parts += ["req.url" if model.key_query else "var.get(\"path\")"]
    return [*parts, *b.hash_parts]


def _cookie_mode(b: Behaviour) -> str:
    if b.cookie_mode == "strip":
        return "unset req.http.Cookie"
    if b.cookie_mode == "keep":
        return f'cookie.keep("{b.keep_cookies}")'
    return "a Cookie header makes the request pass (var \"pass\")"
