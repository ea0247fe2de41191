"""nginx's part of ``cachewright explain -v``: which named location the dispatch map picks for a
request, and the cache directives that location holds, with the variables evaluated.

Read from the render model the template receives (``lower_nginx.lower``), never from the rendered
text; the dispatch map's regexes run with Python's ``re`` (PCRE's ``(?<name>`` spelled
``(?P<name>``), and a disagreement with ``select_rule`` is shown, not hidden.
"""

from __future__ import annotations

import re

from cachewright.generator import lower_nginx
from cachewright.generator.model import Policy, Rule
from cachewright.generator.nginx_dispatch import Target
from cachewright.generator.nginx_locations import Location
from cachewright.generator.pipeline import Options

from ..selection.explain import EngineView, split_query
from ..selection.request import Pair, Request, engine_host


def view(policy: Policy, rule: Rule, request: Request, scheme: str,
         reasons: tuple[str, ...]) -> EngineView:
    """The nginx side: dispatch map, named location, key and bypass directives (the bypass
    ``reasons`` are the directives' own business here)."""
    options = Options()
    model = lower_nginx.lower(policy, options.nginx_version, options.nginx_modules_dir)
    location = next(loc for loc in model.locations if loc.ident == rule.ident)
    key = dispatch_key(model, request)
    chosen, entry = dispatch(model, request, key)
    # a purge request is dispatched to purge-<ident>: the rule whose entries it purges
    lines = [("DISAGREEMENT", f"nginx's dispatch map selects {chosen}, select_rule {rule.ident} "
              "(please report this)")] if chosen.removeprefix("purge-") != rule.ident else []
    query, dropped = split_query(policy, request.query)
    named = f"@{rule.ident}" + ("q" if dropped else "")
    lines += [("location", f"{named} (error_page 418 = @$cw_target; rule {rule.name})"),
              ("dispatch key", f"{model.dispatch_key} = \"{key}\""),
              ("map $cw_target", f"~{entry.regex} -> {entry.value}" if entry else "(no regex matched)")]
    values = variables(model, request, scheme, query)
    lines += _cache_lines(location, values, request, plain=not dropped)
    return EngineView("nginx", tuple(lines))


def _cache_lines(location: Location, values: dict[str, str], request: Request,
                 plain: bool) -> list[Pair]:
    if not location.cache:
        return [("proxy_cache", "off (cache: false)"),
                ("Cookie to origin", f"proxy_set_header Cookie {location.forward_cookie}")]
    valid = "; ".join(f"{codes} {t}" for codes, t in location.valid) or "(none)"
    key = location.plain_key if plain else location.key
    return [("proxy_cache_key", key),
            ("key value", key_value(values, key, request)),
            ("proxy_cache_bypass", (location.plain_bypass if plain else location.bypass) or "(none)"),
            ("proxy_no_cache", location.plain_no_cache if plain else location.no_cache),
            ("proxy_cache_valid", valid), ("proxy_ignore_headers", location.ignore_headers),
            ("Cookie to origin", f"proxy_set_header Cookie {location.forward_cookie}")]


def variables(model: lower_nginx.NginxModel, request: Request, scheme: str,
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
    """A ``$http_NAME`` variable's value (other sources are set by ``variables``)."""
    name = source.removeprefix("$http_").replace("_", "-")
    return request.header(name)


def dispatch_key(model: lower_nginx.NginxModel, request: Request) -> str:
    """The string the dispatch map tests: [predicate bits ]method body host target."""
    values = variables(model, request, "http", "")
    bits = "".join("1" if re.search(p.regex, values[p.source]) else "0" for p in model.predicates)
    body = request.header("Content-Length") + request.header("Transfer-Encoding")
    fields = f"{request.method} {body} {values['$host']} {request.target}"
    return f"{bits} {fields}" if model.predicates else fields


def dispatch(model: lower_nginx.NginxModel, request: Request,
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


def key_value(values: dict[str, str], key: str, request: Request) -> str:
    """``proxy_cache_key`` with its variables replaced by this request's values."""
    return re.sub(r"\$\{?([a-z0-9_]+)\}?", lambda m: _var(values, request, m.group(1)), key)


def _var(values: dict[str, str], request: Request, name: str) -> str:
    if f"${name}" in values:
        return values[f"${name}"]
    return _source_value(f"${name}", request) if name.startswith("http_") else f"${name}"
