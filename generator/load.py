"""Load a policy file: YAML with positions (``yamlnode``, the reader scenario files share) →
checked, frozen ``Policy``. Every problem is collected and reported at once, as
``file:line:col: path: what is wrong (what is expected)``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import capabilities, dialect, fleet, paths, reach
from .errors import PolicyError, Problem
from .language import ORIGIN_TLS, POLICY
from .model import (
    CACHEABLE_METHODS,
    CachePolicy,
    ExtraKey,
    Headers,
    Hsts,
    HttpListener,
    HttpsListener,
    Listen,
    Match,
    NginxOptions,
    Origin,
    OriginTls,
    Policy,
    Probe,
    Purge,
    QueryPolicy,
    Rule,
    Server,
    Stale,
    ValueMatch,
)
from .pipeline import collection_paused
from .spec import MISSING, Reader, shown
from .yamlnode import Document, compose

MAX_POLICY_BYTES = 16 * 1024 * 1024
RESERVED_NAMES = ("default", "guard", "purge", "redirect")
POLICY_FILE = Document("policy file", MAX_POLICY_BYTES, "16 MiB", "the policy is empty (expected "
                       "a mapping with version, name, origin, ...)")


def load(path: str | Path) -> Policy:
    """Read and validate the policy at ``path``; raises PolicyError listing every problem."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyError([Problem(str(path), 1, 1, "", f"cannot read policy: {exc.strerror}")]) from None
    return loads(text, str(path))


def loads(data: bytes | str, filename: str = "<policy>") -> Policy:
    """Validate policy text; ``filename`` is used in messages and in the generated files'
    headers, so anything unprintable in it is escaped first."""
    with collection_paused():
        return _loads(data, shown(filename))


def _loads(data: bytes | str, filename: str) -> Policy:
    node = compose(data, filename, POLICY_FILE)
    reader = Reader(filename)
    raw = POLICY.read(reader, node, "")
    if reader.problems or raw is MISSING:
        raise PolicyError(reader.problems)
    policy = _build(raw, filename, reader.marks)
    problems, warned = _cross_checks(policy, reader)
    if problems:
        raise PolicyError(problems)
    return replace(policy, warnings=tuple(str(w) for w in sorted(set(warned))))


def _build(raw: dict[str, Any], source: str, marks: dict[str, tuple[int, int]]) -> Policy:
    cache = _cache(raw["cache"])
    rules = tuple(_rule(i, r, cache) for i, r in enumerate(raw["rules"]))
    default = Rule("default", len(rules), Match(), True, None, cache.origin_headers, False, (),
                   ExtraKey(), None)
    purge = raw["purge"]
    return Policy(
        version=raw["version"],
        name=raw["name"],
        source=source,
        origin=_origin(raw["origin"]),
        listen=_listen(raw["listen"]),
        cache=cache,
        rules=rules,
        default_rule=default,
        purge=Purge(purge["allow"], purge["kinds"], purge["soft"]) if purge else None,
        headers=Headers(raw["headers"]["cache_status"], raw["headers"]["cache_status_name"]),
        accept_missing=tuple((k, v) for k, v in sorted(raw["accept_missing"].items()) if v),
        nginx=NginxOptions(raw["nginx"]["njs"]),
        fleet=fleet.build(raw["fleet"]),
        marks=dict(marks),
    )


def _origin(raw: dict[str, Any]) -> Origin:
    servers = []
    for url in raw["url"]:
        scheme, _, hostport = url.rstrip("/").partition("://")
        host, _, port = hostport.partition(":")
        servers.append(Server(host, int(port or (443 if scheme == "https" else 80)), scheme))
    probe = Probe(**raw["probe"]) if raw["probe"] else None
    tls = raw["tls"]
    if tls is None and any(s.scheme == "https" for s in servers):
        tls = ORIGIN_TLS.fill({})  # https with every default: verified against the system CAs
    return Origin(tuple(servers), raw["host_header"], probe, raw["connect_timeout"],
                  raw["read_timeout"], OriginTls(**tls) if tls else None)


def _check_origin(policy: Policy, marks: dict[str, tuple[int, int]], problem: Report) -> None:
    """https and http servers are not mixed; TLS settings only for https; one name to verify."""
    servers, tls = policy.origin.servers, policy.origin.tls

    def url_path(i: int) -> str:
        return f"origin.url[{i}]" if f"origin.url[{i}]" in marks else "origin.url"

    for i, server in enumerate(servers):
        if server.scheme != servers[0].scheme:
            problem(url_path(i), f"is {server.scheme} while origin.url[0] is {servers[0].scheme} "
                    "(expected every origin URL with the same scheme: the cache speaks one "
                    "protocol to its origin servers)")
            return
    if tls is None:
        return
    if servers[0].scheme == "http":
        problem("origin.tls", "applies to https origins only (origin.url is http://...; write "
                "https://host[:port] or remove origin.tls)")
        return
    _check_origin_name(policy, url_path, problem)
    _check_origin_ca(policy, problem)


def _check_origin_name(policy: Policy, url_path: Any, problem: Report) -> None:
    servers, tls = policy.origin.servers, policy.origin.tls
    if tls is None or tls.server_name is not None:
        return
    hosts = list(dict.fromkeys(s.host for s in servers))
    if len(hosts) > 1:
        problem("origin.url", f"https servers with different host names ({', '.join(hosts)}): "
                "nginx sends and verifies one name for all of them (expected "
                "origin.tls.server_name: the name their certificates share)")
    elif tls.verify and re.fullmatch(r"[0-9.]+", hosts[0]):
        problem(url_path(0), f"{hosts[0]} is an IP address: no SNI is sent for an address and "
                "the certificate is checked by name (expected origin.tls.server_name: the name "
                "in the origin's certificate)")


def _check_origin_ca(policy: Policy, problem: Report) -> None:
    tls = policy.origin.tls
    if tls is None or tls.ca is None:
        return
    if not tls.verify:
        problem("origin.tls.ca", "has no effect with verify: false (remove one of them)")
        return
    path = Path(policy.source).parent / tls.ca
    try:
        text = path.read_bytes()[:MAX_POLICY_BYTES]
    except OSError as exc:
        problem("origin.tls.ca", f"cannot read {shown(str(path))} ({exc.strerror}; a relative "
                "path is read beside the policy file)")
        return
    if b"-----BEGIN CERTIFICATE-----" not in text:
        problem("origin.tls.ca", f"{shown(str(path))} holds no PEM certificate (expected "
                "-----BEGIN CERTIFICATE----- blocks)")


def _listen(raw: dict[str, Any]) -> Listen:
    http = HttpListener(**raw["http"]) if raw["http"] else None
    https = None
    if raw["https"]:
        fields = dict(raw["https"])
        fields["hsts"] = Hsts(**fields["hsts"]) if fields["hsts"] else None
        https = HttpsListener(**fields)
    return Listen(http, https, raw["hosts"])


def _cache(raw: dict[str, Any]) -> CachePolicy:
    return CachePolicy(
        size=raw["size"],
        key=raw["key"],
        query=QueryPolicy(raw["query"]["ignore"], raw["query"]["sort"]),
        origin_headers=raw["origin_headers"],
        default_ttl=raw["default_ttl"],
        stale=Stale(raw["stale"]["while_revalidate"], raw["stale"]["if_error"]),
        collapse_requests=raw["collapse_requests"],
        status_ttl=raw["status_ttl"],
        keep=raw["keep"],
        targeted=raw["targeted_fields"],
    )


def _rule(index: int, raw: dict[str, Any], cache: CachePolicy) -> Rule:
    m = raw["match"]
    match = Match(
        path_prefix=m["path_prefix"],
        path_regex=_canonical(m["path_regex"]),
        path=m["path"],
        extensions=tuple(e.lower() for e in m["extensions"]),
        methods=m["methods"],
        hosts=m["host"],
        headers=tuple(ValueMatch(h["name"], _canonical(h["regex"])) for h in m["header"]),
        cookies=tuple(ValueMatch(c["name"], _canonical(c["regex"])) for c in m["cookie"]),
    )
    return Rule(
        name=raw["name"],
        index=index,
        match=match,
        cache=raw["cache"],
        ttl=raw["ttl"],
        origin_headers=raw["origin_headers"] or cache.origin_headers,
        strip_cookies=raw["strip_cookies"],
        vary=raw["vary"],
        key=ExtraKey(raw["key"]["headers"], raw["key"]["cookies"]),
        tags_from_header=raw["tags_from_header"],
        relax=raw["relax"],
    )


def _canonical(regex: str | None) -> str | None:
    """A regex as the engines are given it: named groups as non-capturing ones."""
    return None if regex is None else dialect.canonical(regex)


def _cross_checks(policy: Policy, reader: Reader) -> tuple[list[Problem], list[Problem]]:
    """Problems that involve more than one field, and warnings (messages start "warning:")."""
    out: list[Problem] = []
    warned: list[Problem] = []

    def problem(path: str, message: str) -> None:
        line, col = reader.position(None, path)
        (warned if message.startswith("warning: ") else out).append(
            Problem(reader.file, line, col, path, message))

    _check_listen(policy, problem)
    _check_origin(policy, reader.marks, problem)
    _check_cache(policy, problem)
    names: dict[str, int] = {}
    for rule in policy.rules:
        _check_rule(policy, rule, names, problem)
    found = reach.check(policy)
    for path, message in found.errors + found.warnings:
        problem(path, message)
    _warn_trailing_slash(policy, problem)
    _check_purge(policy, problem)
    _check_accept_missing(policy, problem)
    fleet.check(policy, problem)
    return out, warned


Report = Any  # Callable[[str, str], None]


def _check_listen(policy: Policy, problem: Report) -> None:
    listen = policy.listen
    if listen.http is None and listen.https is None:
        problem("listen", "no listener (expected listen.http, listen.https or both)")
    if listen.https and listen.https.redirect_http and listen.http is None:
        problem("listen.https.redirect_http", "needs listen.http to redirect from")
    if listen.http and listen.https and listen.http.port == listen.https.port:
        problem("listen.https.port", f"{listen.https.port} is also listen.http.port "
                "(expected two different ports)")


def _check_cache(policy: Policy, problem: Report) -> None:
    if "path" not in policy.cache.key:
        problem("cache.key", "must include path (expected e.g. [scheme, host, path, query])")
    ignore = policy.cache.query.ignore
    if ignore and "query" not in policy.cache.key:
        problem("cache.query.ignore", "has no effect without 'query' in cache.key")


def _check_rule(policy: Policy, rule: Rule, names: dict[str, int], problem: Report) -> None:
    at = f"rules[{rule.index}]"
    if rule.name in RESERVED_NAMES:
        problem(f"{at}.name", f"'{rule.name}' is reserved (Cache-Status uses default, guard, purge "
                "and redirect for responses of no rule)")
    elif rule.name in names:
        problem(f"{at}.name", f"'{rule.name}' is already the name of rules[{names[rule.name]}] "
                "(expected unique names)")
    names.setdefault(rule.name, rule.index)
    if rule.match == Match():
        problem(f"{at}.match", "has no condition (expected at least one; use path_prefix: / to "
                "match everything)")
    _check_contradictions(policy, rule, at, problem)


def _warn_trailing_slash(policy: Policy, problem: Report) -> None:
    """``path_prefix: /x/`` leaves ``/x`` to whatever comes next: say so where that is a rule for
    any path (or the default) that caches where this rule does not, or the other way round (a
    ``cache: false`` section whose bare name would be cached), as no rule names ``/x`` itself."""
    takers = _Takers(policy.rules)
    for rule in policy.rules:
        prefix = rule.match.path_prefix
        if not prefix or len(prefix) < 3 or not prefix.endswith("/"):
            continue
        bare = prefix[:-1]
        taker = takers.first(bare, rule)
        if taker is not None and (taker.match.path_prefix not in (None, "/") or taker.match.path
                                  or taker.match.path_regex or taker.match.extensions):
            continue
        if (taker or policy.default_rule).cache == rule.cache:
            continue
        goes = f"rule '{taker.name}' (rules[{taker.index}])" if taker else "the default rule"
        problem(f"rules[{rule.index}].match.path_prefix",
                f"warning: rule '{rule.name}' does not match {bare} (no trailing slash), which goes "
                f"to {goes} (write path_prefix: {bare} to take it too, or add a rule with "
                f"path: {bare})")


class _Takers:
    """The rules a plain GET may meet, by the literal head every path they take starts with
    (``reach.path_cond``: a prefix or exact path up to its first escape, an anchored regex's
    leading text, else "/"; a path holds no line break, so ``^`` is its start). A path is tried
    only against the rules whose head starts it, a lookup per prefix of the path: walking every
    rule for every path made the warning quadratic (14 million ``_takes`` at 4000 rules)."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.by_head: dict[str, list[Rule]] = {}
        for rule in rules:
            if _plain_get(rule.match):
                self.by_head.setdefault(reach.path_cond(rule.match).head, []).append(rule)

    def first(self, path: str, besides: Rule) -> Rule | None:
        """The first rule other than ``besides`` that a plain GET of ``path`` meets."""
        heads = (path[:end] for end in range(1, len(path) + 1))
        found = sorted((r for head in heads for r in self.by_head.get(head, ())), key=_index)
        return next((r for r in found if r is not besides and _takes(r.match, path)), None)


def _index(rule: Rule) -> int:
    return rule.index


def _plain_get(match: Match) -> bool:
    """Whether a GET without headers, cookies or a host may meet ``match`` (its path aside)."""
    return not (match.hosts or match.headers or match.cookies
                or (match.methods and "GET" not in match.methods))


def _takes(match: Match, path: str) -> bool:
    """Whether a plain GET of ``path`` (no headers, cookies or host condition) meets ``match``."""
    if not _plain_get(match):
        return False
    literal = match.path if match.path is not None else match.path_prefix
    if literal and "%" not in literal and not path.startswith(literal):
        return False  # the common case, without a regex
    regexes = paths.path_regexes(match)
    return bool(regexes) and all(paths.compiled(r).search(path) for r in regexes)


def _check_contradictions(policy: Policy, rule: Rule, at: str, problem: Report) -> None:
    if not rule.cache:
        extras = [name for name, on in (
            ("ttl", rule.ttl is not None), ("strip_cookies", rule.strip_cookies),
            ("vary", bool(rule.vary)), ("key", rule.key != ExtraKey()),
            ("tags_from_header", rule.tags_from_header is not None)) if on]
        extras += ["relax"] if rule.relax else []
        for name in extras:
            problem(f"{at}.{name}", f"contradicts cache: false (an uncached rule has no {name})")
        return
    methods = rule.match.methods
    if methods and not set(methods) & set(CACHEABLE_METHODS) and rule.ttl is not None:
        problem(f"{at}.ttl", f"methods {list(methods)} are never cached (only GET and HEAD are); "
                "remove ttl or set cache: false")
    if rule.strip_cookies and rule.key.cookies:
        problem(f"{at}.strip_cookies", "contradicts key.cookies (stripped cookies cannot be in "
                "the key)")
    if rule.origin_headers == "override" and not (rule.ttl or policy.cache.default_ttl):
        problem(f"{at}.origin_headers", "override needs a ttl (expected rules[].ttl or "
                "cache.default_ttl)")
    _check_relax(rule, at, problem)


def _check_relax(rule: Rule, at: str, problem: Report) -> None:
    """``relax`` drops a deviation where it is in force, under respect only; set-cookie and
    request-cookie share with everyone what the origin may have meant for one client, and
    request-no-cache lets any client reach the origin: a warning."""
    if rule.relax and rule.origin_headers == "override":
        problem(f"{at}.relax", "applies to rules that respect origin headers (what RFC 9111 "
                "allows depends on the origin's Cache-Control; remove relax or origin_headers: "
                "override)")
        return
    moot = {"authorization-lookup": "authorization" in {h.lower() for h in rule.key.headers}
            and "key.headers holds Authorization (each token has its own entry)",
            "request-cookie": (rule.strip_cookies and "strip_cookies removes the cookies")
            or (bool(rule.key.cookies) and "key.cookies keys on them"),
            "set-cookie": rule.strip_cookies and "strip_cookies removes Set-Cookie",
            "heuristic-freshness": bool(rule.ttl) and "the rule's ttl is the lifetime of a "
                                   "response that gives none",
            "request-no-cache": False}
    for i, deviation in enumerate(rule.relax):
        if moot[deviation]:
            problem(f"{at}.relax[{i}]", f"{deviation} is not in force for this rule: {moot[deviation]}")
    if "set-cookie" in rule.relax and not moot["set-cookie"]:
        problem(f"{at}.relax", f"warning: rule '{rule.name}' stores responses with Set-Cookie and "
                "sends that Set-Cookie to every client given the stored copy (the origin should "
                "send Cache-Control: private or no-cache=\"Set-Cookie\" where a cookie is personal)")
    if "request-cookie" in rule.relax and not moot["request-cookie"]:
        problem(f"{at}.relax", f"warning: rule '{rule.name}' shares one stored answer between "
                "requests with different cookies (the origin must answer Vary: Cookie or "
                "Cache-Control: private where a page depends on them)")
    if "request-no-cache" in rule.relax:
        problem(f"{at}.relax", f"warning: rule '{rule.name}' sends every request with "
                "Cache-Control: no-cache or max-age=0 to the origin (any client can, e.g. a "
                "browser's reload: a popular URL's reloads all reach the origin)")


def _check_purge(policy: Policy, problem: Report) -> None:
    if policy.purge and "tag" in policy.purge.kinds:
        if not any(r.tags_from_header for r in policy.rules):
            problem("purge.kinds", "'tag' needs a rule with tags_from_header (expected e.g. "
                    "tags_from_header: Surrogate-Key)")
    if policy.purge and "tag" in policy.purge.kinds:
        return
    why = "the policy has no purge section" if policy.purge is None else "purge.kinds has no 'tag'"
    for rule in policy.rules:
        if rule.tags_from_header:
            problem(f"rules[{rule.index}].tags_from_header",
                    f"warning: the tags in {rule.tags_from_header} can never be purged: {why} "
                    "(add purge: {allow: [...], kinds: [tag]}, or remove tags_from_header)")


def _check_accept_missing(policy: Policy, problem: Report) -> None:
    for engine, features in policy.accept_missing:
        for i, feature in enumerate(features):
            if feature not in capabilities.FEATURES:
                close = [f for f in capabilities.FEATURES if fnmatch.fnmatch(f, f"*{feature}*")]
                hint = f"did you mean '{close[0]}'?" if close else "see cachewright capabilities"
                problem(f"accept_missing.{engine}[{i}]", f"unknown feature '{feature}' ({hint})")


def covers(a: Match, b: Match) -> bool:
    """True when every request ``b`` matches is provably matched by ``a`` (``generator/reach.py``)."""
    return reach.others_cover(a, b) and reach.contains(reach.path_cond(a), reach.path_cond(b)) is True

