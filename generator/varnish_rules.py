"""Rule selection in VCL: the first-match chain, and what a selected rule's name tells the rest.

One ``if / elsif`` chain in ``vcl_recv`` selects the rule (in subroutines of ``CHUNK`` rules for
a large policy). Each rule's conditions are written in their cheapest exact form. Rules that
behave alike share a profile (one branch in each subroutine); the hit path keeps only the rule's
name in a task variable, and its profile and TTL are derived from it where a fetch follows.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .hygiene import OVERRIDE_HEADERS, stripped
from .model import Match, Policy, Rule
from .quote import extension_pattern, host_regex, literal_regex, vcl_str

#: rules per selection subroutine (gcc compiles many small functions far faster than one huge one)
CHUNK = 50
#: at most this many listed hosts are compared as strings on the hit path (one regex beyond)
HOST_COMPARISONS = 8
#: at most this many rule names are compared as strings where a profile or TTL is derived
RULE_COMPARISONS = 4


@dataclass(frozen=True)
class Admission:
    """What ``vcl_recv`` does with a request of the rule before the lookup, each part optional,
    in this order: pass it outright; pass it when ``pass_when`` holds; remove its cookies, or
    keep only those it keys on; then the Authorization handling (``Behaviour.auth_*``)."""

    passes: bool = False
    pass_when: str = ""
    unset_cookie: bool = False
    keep_cookies: str = ""
    authorization: bool = False


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
    admission: Admission = Admission()
    #: the rule strips cookies: the origin's Set-Cookie is removed before the object is stored
    strip_set_cookie: bool = False


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
    #: the subroutine of its profile's request handling (None: the handling is written inline)
    handler: str | None = None



@dataclass(frozen=True)
class Selection:
    """The rules as VCL: the chain (inline in vcl_recv where it fits in one chunk, else one
    subroutine per chunk, called in turn, with one request-handling subroutine per profile),
    the default rule, the profiles and the TTL of each rule."""

    chunks: tuple[tuple[VclRule, ...], ...]
    default: VclRule
    profiles: tuple[VclProfile, ...]
    #: the chain written in vcl_recv, the default rule last (empty: chunked, or no rule)
    inline_chain: tuple[VclRule, ...]
    #: one cw_select_<n> subroutine each (empty: not chunked)
    select_subs: tuple[tuple[VclRule, ...], ...]
    #: one cw_request_<profile> subroutine each (empty: not chunked)
    request_subs: tuple[VclProfile, ...]
    #: (TTL, VCL true for a rule with that TTL), for the fetch that stores the object
    ttl_tests: tuple[tuple[int, str], ...]


def selection(policy: Policy) -> Selection:
    behaviours = {r.index: _behaviour(r) for r in (*policy.rules, policy.default_rule)}
    profiles = _profiles(policy, behaviours)
    chunked = len(policy.rules) > CHUNK
    rules = tuple(_rule(policy, r, profiles[behaviours[r.index]], chunked) for r in policy.rules)
    default = _rule(policy, policy.default_rule, profiles[behaviours[policy.default_rule.index]], chunked)
    chunks = _chunks(rules)
    return Selection(
        chunks=chunks,
        default=default,
        profiles=tuple(profiles.values()),
        inline_chain=chunks[0] if len(chunks) == 1 else (),
        select_subs=chunks if chunked else (),
        request_subs=tuple(profiles.values()) if chunked else (),
        ttl_tests=_ttl_tests((*rules, default)),
    )


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
    beyond_key = _ByLiteral([r for r in cacheable if _matches_beyond_key(r.match, key)])
    return tuple(r.name for r in cacheable
                 if any(r is other or _may_overlap(r.match, other.match, key)
                        for other in beyond_key.near(r.match)))


class _ByLiteral:
    """Rules by their prefix or exact path (escapes in one hex case), to find the ones whose
    paths may overlap a match's: those without one, and those whose literal starts the match's
    or starts with it; any other is apart (``_paths_apart``). Comparing every pair made a large
    policy's compile quadratic."""

    def __init__(self, rules: list[Rule]) -> None:
        self.loose = [r for r in rules if _literal(r.match) is None]
        self.by_literal: dict[str, list[Rule]] = {}
        for rule in rules:
            literal = _literal(rule.match)
            if literal is not None:
                self.by_literal.setdefault(literal, []).append(rule)
        self.literals = sorted(self.by_literal)

    def near(self, match: Match) -> list[Rule]:
        """The rules whose paths may overlap ``match``'s (in no particular order)."""
        literal = _literal(match)
        if literal is None:
            return [*self.loose, *(r for rules in self.by_literal.values() for r in rules)]
        heads = (literal[:end] for end in range(1, len(literal) + 1))
        out = [*self.loose, *(r for head in heads for r in self.by_literal.get(head, ()))]
        at = bisect.bisect_right(self.literals, literal)
        while at < len(self.literals) and self.literals[at].startswith(literal):
            out += self.by_literal[self.literals[at]]
            at += 1
        return out


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
    first, second = _literal(a), _literal(b)
    if first is None or second is None:
        return False
    if a.path is not None and b.path is not None:
        return first != second
    if a.path is not None:  # an exact path against a prefix
        return not first.startswith(second)
    return not (first.startswith(second) or second.startswith(first))


def _literal(m: Match) -> str | None:
    """The exact path or prefix, escapes in one hex case (None: neither)."""
    text = m.path if m.path is not None else m.path_prefix
    if text is None or "%" not in text:
        return text
    return _ESCAPE.sub(lambda e: e.group(0).upper(), text)


_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


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
        parts.append(host_condition(m.hosts))
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


def host_condition(hosts: tuple[str, ...]) -> str:
    """The (lowercased, port-less) Host is one of ``hosts``: string comparisons for a few exact
    names, one regex otherwise."""
    if compared(hosts):
        return " || ".join(f"req.http.host == {vcl_str(h)}" for h in hosts)
    return f"req.http.host ~ {vcl_str(host_regex(hosts))}"


def compared(hosts: tuple[str, ...]) -> bool:
    """A few exact names: string comparisons are cheaper than a regex match."""
    return len(hosts) <= HOST_COMPARISONS and not any(h.startswith("*.") for h in hosts)


def _method_names(methods: tuple[str, ...]) -> tuple[str, ...]:
    """A rule's methods; PURGE and BAN select the rule a GET would."""
    return (*methods, "PURGE", "BAN") if "GET" in methods else methods


def _behaviour(rule: Rule) -> Behaviour:
    keyed_auth = "authorization" in {h.lower() for h in rule.key.headers}
    hash_parts = tuple(f'"h:{h.lower()}:" + req.http.{h}' for h in rule.key.headers)
    hash_parts += tuple(f'"c:{c}:" + cookie.get({vcl_str(c)})' for c in rule.key.cookies)
    cookie_mode = ("strip" if rule.strip_cookies else "keep" if rule.key.cookies
                   else "forward" if "request-cookie" in rule.relax else "bypass")
    auth_store = rule.cache and not keyed_auth and rule.origin_headers == "respect"
    removed = stripped(rule)
    return Behaviour(
        cache=rule.cache,
        pass_auth=not keyed_auth,
        cookie_mode=cookie_mode,
        keep_cookies=",".join(rule.key.cookies),
        hash_parts=hash_parts,
        override=rule.origin_headers == "override",
        vary_headers=rule.vary,
        tags_header=rule.tags_from_header,
        forwards=tuple(h for h in OVERRIDE_HEADERS if h not in removed),
        auth_store=auth_store,
        auth_lookup="authorization-lookup" in rule.relax,
        store_set_cookie="set-cookie" in rule.relax,
        heuristic="heuristic-freshness" in rule.relax,
        request_no_cache="request-no-cache" in rule.relax,
        admission=_admission(rule, cookie_mode, not keyed_auth, auth_store),
        strip_set_cookie=rule.cache and cookie_mode == "strip",
    )


def _admission(rule: Rule, cookie_mode: str, pass_auth: bool, auth_store: bool) -> Admission:
    """An uncached rule passes; one that neither strips, keeps nor forwards cookies passes a
    request with Cookie (and one with Authorization, unless it keys on it or stores its answer);
    the others handle their cookies, then Authorization."""
    if not rule.cache:
        return Admission(passes=True)
    if cookie_mode == "bypass":
        auth = "req.http.Authorization || " if pass_auth and not auth_store else ""
        return Admission(pass_when=auth + "req.http.Cookie", authorization=auth_store)
    if cookie_mode == "forward":
        return Admission(authorization=True)
    return Admission(unset_cookie=cookie_mode == "strip",
                     keep_cookies=",".join(rule.key.cookies) if cookie_mode == "keep" else "",
                     authorization=pass_auth)


def _profiles(policy: Policy, behaviours: dict[int, Behaviour]) -> dict[Behaviour, VclProfile]:
    """One profile per distinct behaviour (``behaviours``: each rule's, by index), numbered in
    order of first use."""
    names: dict[Behaviour, list[str]] = {}
    for rule in (*policy.rules, policy.default_rule):
        names.setdefault(behaviours[rule.index], []).append(rule.name)
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


def _rule(policy: Policy, rule: Rule, profile: VclProfile, chunked: bool) -> VclRule:
    marker = f"rule {rule.name} ({policy.where(f'rules[{rule.index}]')})"
    if rule.name == "default":
        marker = "rule default (requests no rule matches)"
    ttl = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    return VclRule(rule.name, marker, _condition(rule), profile.ident, ttl, profile.behaviour,
                   f"cw_request_{profile.ident}" if chunked else None)


def _chunks(rules: tuple[VclRule, ...]) -> tuple[tuple[VclRule, ...], ...]:
    """The selection chain in subroutines of CHUNK rules: gcc compiles many small functions far
    faster than one huge one."""
    return tuple(rules[i:i + CHUNK] for i in range(0, len(rules), CHUNK))
