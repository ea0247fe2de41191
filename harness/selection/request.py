"""A request as the harness sends it, and which rule it selects, in pure Python.

``select_rule`` evaluates first-match rule selection with the engines' semantics (see
``generator/nginx_dispatch.py`` and ``generator/varnish_rules.py``), using the same regex builders
(``generator.quote``) the engines are given:

* the raw request path (the target before the first ``?``) is matched, undecoded;
* the host is lowercased, without port or trailing dot (nginx's ``$host``);
* PURGE and BAN select the rule a GET would;
* an absent header or cookie is an empty value; "present" (no regex) means non-empty (``.``);
* a cookie's value is group 1 of ``(?:^|;)\\s*NAME=([^;]*)`` on the Cookie header (several Cookie
  lines joined with ``"; "``); a header's value is its first line.

The probes (``probes``) never rely on the corners above where the engines could differ.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

from cachewright.generator.model import Match, Policy, Rule
from cachewright.generator.quote import cookie_regex, extensions_regex, host_regex, prefix_regex

Pair = tuple[str, str]
TAG_PARAMS = ("cw", "cwtag", "cw_probe")  # harness/origin/state.py MARKERS: the same names
# The engines refuse these paths (400) before any rule is chosen: keep in step with the path
# hygiene maps in templates/nginx/nginx.conf.j2 and templates/varnish/default.vcl.j2.
REFUSED_PATHS = tuple(re.compile(r) for r in (
    r"(?:^|/)\.\.?(?:/|$)",
    r"\\",
    r"%(?![0-9A-Fa-f]{2})",
    r"(?i)%(?:2e|2f|5c|00)",
    r"(?i)%(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)",
))


@dataclass(frozen=True)
class Request:
    """One HTTP request as the harness sends it. ``headers`` should not repeat a name; cookies go
    in ``cookies`` (rendered into one Cookie header)."""

    method: str
    path: str
    host: str
    query: str = ""
    headers: tuple[Pair, ...] = ()
    cookies: tuple[Pair, ...] = ()

    @property
    def target(self) -> str:
        """The request target: path, and ``?query`` when there is a query."""
        return self.path + ("?" + self.query if self.query else "")

    @property
    def unit(self) -> str:
        """What the sample origin counts, answers and logs this request by: the path, plus ``?``
        and the tag parameters of the query when it has any (``harness/origin/state.py``, "Markers")."""
        marks = [p for p in self.query.split("&") if p.split("=", 1)[0] in TAG_PARAMS] if self.query else []
        return f"{self.path}?{'&'.join(marks)}" if marks else self.path

    def with_query(self, query: str) -> Request:
        """This request with ``query`` in place of its own, its tag parameters kept first (so
        it stays in its check's cache entry and origin count)."""
        marks = self.unit.partition("?")[2]
        return replace(self, query="&".join(q for q in (marks, query) if q))

    @property
    def raw_path(self) -> str:
        """What rules match: the target up to its first ``?``."""
        return self.target.split("?", 1)[0]

    @property
    def cookie_header(self) -> str:
        """The Cookie header the request sends (``""``: none): Cookie lines from ``headers``,
        then ``cookies`` as ``name=value`` pairs, joined with ``"; "`` as both engines do."""
        lines = [v for n, v in self.headers if n.lower() == "cookie"]
        lines += [f"{name}={value}" for name, value in self.cookies]
        return "; ".join(lines)

    def header(self, name: str) -> str:
        """The value rules see for header ``name`` (first line; ``""`` when absent)."""
        if name.lower() == "cookie":
            return self.cookie_header
        return next((v for n, v in self.headers if n.lower() == name.lower()), "")

    def cookie(self, name: str) -> str:
        """The value rules see for cookie ``name`` (``""`` when absent)."""
        found = compiled_regex(cookie_regex(name))
        hit = found.search(self.cookie_header) if found else None
        return hit.group(1) if hit else ""

    def http_headers(self) -> tuple[Pair, ...]:
        """Every header line to send: Host, the other headers, then Cookie (if any)."""
        others = tuple((n, v) for n, v in self.headers if n.lower() not in ("host", "cookie"))
        cookie = (("Cookie", self.cookie_header),) if self.cookie_header else ()
        return (("Host", self.host), *others, *cookie)


def unmarked(query: str) -> str:
    """``query`` without its tag parameters (what a check compares across its own probes)."""
    return "&".join(p for p in query.split("&") if p and p.split("=", 1)[0] not in TAG_PARAMS)


def engine_host(host: str) -> str:
    """The host rules see: lowercased, without port or trailing dot."""
    return re.sub(r":[0-9]+$", "", host.lower()).removesuffix(".")


def engine_method(method: str) -> str:
    """The method rules see: purges select the rule a GET would."""
    return "GET" if method in ("PURGE", "BAN") else method


def select_rule(policy: Policy, request: Request) -> Rule:
    """The rule both engines choose for ``request``: the first that matches, else the default."""
    return next((r for r in policy.rules if matches(r, request)), policy.default_rule)


def matches(rule: Rule, request: Request) -> bool:
    """Whether every condition of ``rule`` holds for ``request``."""
    return match_holds(rule.match, request)


def match_holds(m: Match, request: Request) -> bool:
    """Whether every condition of ``m`` holds for ``request``."""
    return (path_holds(m, request.raw_path)
            and (not m.methods or engine_method(request.method) in m.methods)
            and (not m.hosts or regex_holds(host_regex(m.hosts), engine_host(request.host)))
            and all(regex_holds(h.regex or ".", request.header(h.name)) for h in m.headers)
            and all(regex_holds(c.regex or ".", request.cookie(c.name)) for c in m.cookies))


def path_holds(m: Match, path: str) -> bool:
    """Whether the path conditions of ``m`` (prefix, exact path, regex, extensions) hold for raw
    ``path``."""
    return ((not m.path_prefix or regex_holds(prefix_regex(m.path_prefix), path))
            and (m.path is None or regex_holds(prefix_regex(m.path) + "$", path))
            and (m.path_regex is None or regex_holds(m.path_regex, path))
            and (not m.extensions or regex_holds(extensions_regex(m.extensions), path)))


@lru_cache(maxsize=1024)
def compiled_regex(regex: str) -> re.Pattern[str] | None:
    try:
        with warnings.catch_warnings():  # e.g. FutureWarning "Possible nested set"
            warnings.simplefilter("ignore")
            return re.compile(regex)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def regex_holds(regex: str, text: str) -> bool:
    """``re.search``; a regex Python cannot compile matches nothing (load rejects those)."""
    compiled = compiled_regex(regex)
    return compiled is not None and compiled.search(text) is not None
