"""The nginx dispatch: the maps that pick each request's named location.

One ``map`` (``$cw_target``) dispatches every request. Its source is
``[<predicate bits> ]<method> <Content-Length><Transfer-Encoding> <host> <raw target>`` (no field
before the target can hold a space), and its keys are all regexes, which nginx tests in order,
first match wins. One regex per rule (then one for the default rule) accepts a request that
passes every guard -- allowed method, no body on GET/HEAD, a listed host, a clean path -- and
meets the rule's conditions, capturing ``$cw_path`` and ``$cw_rawquery`` on the way; the value
names the rule's location. Requests no rule regex accepts are classified by the guard regexes
after them (400, 501, 421). Header, cookie, host and path-regex conditions are 1-character
``map`` variables (the bits), so untrusted text never reaches the separators.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from .model import SAFE_METHODS, Policy, Rule
from .quote import (
    cookie_regex,
    extension_pattern,
    extensions_regex,
    glob_regex,
    host_pattern,
    host_regex,
    literal_regex,
)


@dataclass(frozen=True)
class Predicate:
    """A 1-character map variable: ``1`` when ``source`` matches ``regex``."""

    var: str
    source: str
    regex: str
    comment: str
    #: its bit's place in the selector and the dispatch key (from 0, in first-use order)
    position: int


@dataclass(frozen=True)
class CookieValue:
    var: str
    regex: str
    name: str


@dataclass(frozen=True)
class Choice:
    regex: str
    ident: str


@dataclass(frozen=True)
class Target:
    """One entry of the dispatch map: a regex over ``DispatchMaps.key`` and its value."""

    regex: str
    value: str
    comment: str
    #: the rule whose location the value names ("" for PURGE and refusals)
    rule: str = ""


#: the query normalisation's passes: each removes one ignored parameter
QUERY_PASSES = 8


@dataclass(frozen=True)
class QueryPass:
    """One map of the query normalisation: ``target`` is ``source`` less its first ignored
    parameter (``source`` itself where it holds none)."""

    source: str
    target: str


@dataclass(frozen=True)
class DispatchMaps:
    """Every map that decides which named location a request goes to, and the query its key
    holds."""

    #: the dispatch map's source (see the module docstring) and its entries, first match wins
    key: str
    targets: tuple[Target, ...]
    #: where a request no dispatch regex accepts goes (only a host outside listen.hosts is left)
    default: str
    cookie_values: tuple[CookieValue, ...]
    predicates: tuple[Predicate, ...]
    #: some predicate reads the raw path: $cw_rawpath is defined
    raw_path: bool
    #: the source of the map that picks the rule a PURGE purges, and its entries
    selector: str
    choices: tuple[Choice, ...]
    #: an alternation of the ignored query parameters (None: the query is keyed as it comes)
    query_ignore: str | None
    query_passes: tuple[QueryPass, ...]


def dispatch_maps(policy: Policy, purge: bool) -> DispatchMaps:
    """The maps of ``policy``; ``purge``: PURGE of a URL is allowed (it has its own entry)."""
    cookies = _cookie_values(policy)
    predicates = _predicates(policy, cookies)
    ignore = _ignore_alternation(policy)
    return DispatchMaps(
        key=_dispatch_key(predicates),
        targets=_dispatch(policy, predicates, cookies, purge),
        default="guard-421" if policy.listen.hosts else "guard-400",
        cookie_values=tuple(cookies.values()),
        predicates=tuple(predicates.values()),
        raw_path=any(p.source == "$cw_rawpath" for p in predicates.values()),
        selector='"' + "".join(f"${{{p.var}}}" for p in predicates.values()) + ':GET:$cw_path"',
        choices=tuple(Choice(_choice_regex(r, predicates, cookies), r.ident) for r in policy.rules),
        query_ignore=ignore,
        query_passes=_query_passes() if ignore else (),
    )


def _ignore_alternation(policy: Policy) -> str | None:
    ignore = policy.cache.query.ignore
    return "(?:" + "|".join(glob_regex(g) for g in ignore) + ")" if ignore else None


def _cookie_values(policy: Policy) -> dict[str, CookieValue]:
    names = {c.name for r in policy.rules for c in r.match.cookies}
    names |= {c for r in policy.rules for c in r.key.cookies}
    out = {}
    for i, name in enumerate(sorted(names), 1):
        var = f"cw_cookie{i}"
        regex = cookie_regex(name).replace("=([^;]*)", f"=(?<{var}v>[^;]*)")
        out[name] = CookieValue(var, regex, name)
    return out


def _predicates(policy: Policy, cookies: dict[str, CookieValue]) -> dict[tuple[str, str], Predicate]:
    """One predicate per distinct (source, regex) condition, in first-use order."""
    out: dict[tuple[str, str], Predicate] = {}

    def add(source: str, regex: str, comment: str) -> None:
        if (source, regex) not in out:
            out[(source, regex)] = Predicate(f"cw_p{len(out) + 1}", source, regex, comment, len(out))

    for rule in policy.rules:
        m = rule.match
        if m.hosts:
            add("$host", host_regex(m.hosts), f"host of rule {rule.name}")
        if m.path_regex is not None:
            add("$cw_rawpath", m.path_regex, f"path_regex of rule {rule.name}")
        for h in m.headers:
            add(header_var(h.name), h.regex or ".", f"header {h.name} of rule {rule.name}")
        for c in m.cookies:
            add(f"${cookies[c.name].var}", c.regex or ".", f"cookie {c.name} of rule {rule.name}")
    return out


def header_var(name: str) -> str:
    return "$http_" + name.lower().replace("-", "_")


def _bits(rule: Rule, predicates: dict[tuple[str, str], Predicate],
          cookies: dict[str, CookieValue]) -> str:
    """Lookaheads requiring the bits of the rule's predicates to be 1."""
    m = rule.match
    wanted = set()
    if m.hosts:
        wanted.add(("$host", host_regex(m.hosts)))
    if m.path_regex is not None:
        wanted.add(("$cw_rawpath", m.path_regex))
    wanted |= {(header_var(h.name), h.regex or ".") for h in m.headers}
    wanted |= {(f"${cookies[c.name].var}", c.regex or ".") for c in m.cookies}
    # each wanted predicate's bit, by position (lookaheads keep the regex short however many
    # predicates the policy has)
    positions = sorted(predicates[key].position for key in wanted if key in predicates)
    return "".join(f"(?=[01]{{{i}}}1)" if i else "(?=1)" for i in positions)


def _choice_regex(rule: Rule, predicates: dict[tuple[str, str], Predicate],
                  cookies: dict[str, CookieValue]) -> str:
    """The rule's regex over ``NginxModel.selector`` (``<bits>:GET:<raw path>``): selects the rule
    a PURGE purges, the one a GET of its target would use."""
    m = rule.match
    bits = _bits(rule, predicates, cookies)
    methods = "(?:" + "|".join(m.methods) + ")" if m.methods else "[A-Z_-]+"
    path = literal_regex(m.path_prefix) if m.path_prefix else ""
    if m.path is not None:
        path = (f"(?={path})" if path else "") + literal_regex(m.path) + "$"
    if m.extensions:  # the prefix and the extension may share characters (/logo.png + png)
        path = (f"(?={path})" if path else "") + ".*" + extensions_regex(m.extensions)
    return f"^{bits}[01]*:{methods}:{path}"


# Path hygiene, in the dispatch regexes. A dot segment ends at '/', at the query or at the end.
DOT_SEGMENT = r"\.\.?(?:/|\?|$)"
# encoded . / \ NUL, and encoded unreserved characters
BAD_HEX = r"(?i:2e|2f|5c|00|3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)"
# A raw path holding none of them, read in one pass without backtracking: runs of ordinary
# characters, a '/' that starts no dot segment, a '%' that encodes nothing refused. A backslash
# (\x5c) stops it, so the target cannot match.
CLEAN_PATH = rf"(?!{DOT_SEGMENT})(?:[^?/\x5c%]++|/(?!{DOT_SEGMENT})|%(?!{BAD_HEX}))*+"
BAD_PATH = rf"(?:{DOT_SEGMENT}|[^?]*?(?:/{DOT_SEGMENT}|\x5c|%{BAD_HEX}))"
READ_METHODS = ("GET", "HEAD")


def _dispatch_key(predicates: dict[tuple[str, str], Predicate]) -> str:
    """The dispatch map's source: [bits ]method body host target (see the module docstring)."""
    bits = "".join(f"${{{p.var}}}" for p in predicates.values())
    fields = "$request_method $http_content_length$http_transfer_encoding $host $request_uri"
    return f"{bits} {fields}" if bits else fields


def _dispatch(policy: Policy, predicates: dict[tuple[str, str], Predicate],
              cookies: dict[str, CookieValue], purge: bool) -> tuple[Target, ...]:
    """The dispatch map: a regex per rule, the default rule, PURGE, then the guards' verdicts.

    Values are named locations: ``<ident>`` for a request whose query holds no ignored parameter
    (every rule, then the default rule: first match wins), then the same regexes again for the
    others, valued ``<ident>q``; ``$cw_purge_target`` for PURGE; ``guard-<status>`` for refusals,
    in the guards' order: path 400, method 501, body on GET/HEAD 400, host 421.
    """
    field = "[01]* " if predicates else ""
    host = host_pattern(policy.listen.hosts) if policy.listen.hosts else "[^ ]*"
    rest = r"(?:\?(?<cw_rawquery>.*))?$"
    ignored = _ignore_alternation(policy)
    routes = []
    for rule in policy.rules:
        head = _bits(rule, predicates, cookies) + field + _methods_and_body(rule.match.methods or SAFE_METHODS)
        routes.append((f"^{head} {host} (?<cw_path>{_path_condition(rule)}{CLEAN_PATH})", rule.ident,
                       f"rule {rule.name}"))
    head = field + _methods_and_body(SAFE_METHODS)
    routes.append((f"^{head} {host} (?<cw_path>{CLEAN_PATH})", "default", "rule default (requests no rule matches)"))
    if ignored is None:
        out = [Target(regex + rest, ident, comment, ident) for regex, ident, comment in routes]
    else:
        # no parameter of the query is ignored: the rule's location proxies the target as is
        plain = rf"(?:\?(?<cw_rawquery>(?!(?:[^&]*&)*{ignored}(?:[=&]|$)).*))?$"
        out = [Target(regex + plain, ident, comment, ident) for regex, ident, comment in routes]
        out += [Target(regex + rest, f"{ident}q", f"{comment}, query holding an ignored parameter", ident)
                for regex, ident, comment in routes]
    if purge:
        out.append(Target(f"^{field}PURGE [^ ]* {host} (?<cw_path>{CLEAN_PATH}){rest}",
                          "$cw_purge_target", "PURGE"))
    methods = "|".join(SAFE_METHODS + (("PURGE",) if purge else ()))
    out += [Target(f"^{field}[^ ]* [^ ]* [^ ]* {BAD_PATH}", "guard-400", "path hygiene"),
            Target(f"^{field}(?!(?:{methods}) )", "guard-501", "methods"),
            Target(f"^{field}(?:GET|HEAD) (?!0* )", "guard-400",
                   "GET and HEAD with a body: the body would reach the origin without being in the key")]
    return tuple(out)


def _methods_and_body(methods: tuple[str, ...]) -> str:
    """The method and body fields: GET and HEAD without a body (Content-Length absent or 0), the
    other methods with any."""
    read = [m for m in methods if m in READ_METHODS]
    other = [m for m in methods if m in SAFE_METHODS and m not in READ_METHODS]
    fields = ([f"(?:{'|'.join(read)}) 0*"] if read else []) + ([f"(?:{'|'.join(other)}) [^ ]*"] if other else [])
    return "(?:" + "|".join(fields) + ")" if fields else "(?!)"


def _path_condition(rule: Rule) -> str:
    """Lookaheads at the start of the raw path: its prefix or exact path, its extension (before
    the query)."""
    m = rule.match
    out = f"(?={literal_regex(m.path_prefix)})" if m.path_prefix else ""
    if m.path is not None:  # the whole raw path: the query or the end follows
        out += rf"(?={literal_regex(m.path)}(?:\?|$))"
    if m.extensions:
        out += rf"(?=[^?]*{extension_pattern(m.extensions)}(?:\?|$))"
    return out


def _query_passes() -> tuple[QueryPass, ...]:
    """$cw_rawquery through $cw_q1, $cw_q2 ... to $cw_query."""
    names = ["$cw_rawquery", *(f"$cw_q{i}" for i in range(1, QUERY_PASSES)), "$cw_query"]
    return tuple(QueryPass(source, target) for source, target in pairwise(names))
