"""Requests built to select a given rule: the probes every check sends.

The builders (``probe_for``, ``overlap_probe``, ``other_probe``) search a small space of
candidate requests (paths from prefixes, extensions and ``regexgen`` examples, with the tag
inserted; methods; hosts; header and cookie values) and return the first that ``select_rule``
proves does what is asked. Probes never rely on the corners where the engines could differ (see
``request``): one line per header, each cookie once, no spaces around values, paths that pass the
engines' path hygiene.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice, product

from cachewright.generator.language import PATH
from cachewright.generator.model import SAFE_METHODS, Match, Policy, Rule
from cachewright.generator.quote import glob_regex, host_regex

from .regexgen import example
from .request import (
    REFUSED_PATHS,
    TAG_PARAMS,
    Pair,
    Request,
    engine_host,
    match_holds,
    matches,
    path_holds,
    regex_holds,
    select_rule,
)

MAX_TRIES = 4000
MAX_PATHS = 32
TAGS_PER_SHAPE = 2
SEEDS = 6
VALUES_PER_NAME = 4
ABSENT = ""
ESCAPE_VALUE = "cw-none"
COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
HOST = re.compile(r"[a-z0-9_.-]+")


def probe_for(policy: Policy, rule: Rule, *, tag: str, host: str) -> Request | None:
    """A request that ``select_rule`` maps to ``rule``, its path containing ``tag`` where the
    rule allows (else ``tag`` is a query parameter); ``None`` when none was found (the rule is
    shadowed by earlier ones, or its conditions cannot hold together)."""
    return _solve(policy, (rule.match,), tag, host, lambda r: select_rule(policy, r) == rule)


def overlap_probe(policy: Policy, first: Rule, later: Rule, *, tag: str,
                  host: str) -> Request | None:
    """A request matching both ``first`` and ``later`` that ``select_rule`` maps to ``first``:
    the proof that the earlier rule wins. ``None`` when the rules cannot overlap."""
    return _solve(policy, (first.match, later.match), tag, host,
                  lambda r: select_rule(policy, r) == first)


def other_probe(policy: Policy, rule: Rule, *, tag: str, host: str) -> Request | None:
    """A request like ``rule``'s probe that does not match ``rule`` (a different prefix,
    extension, method, host, or a missing header or cookie); ``None`` if ``rule`` matches
    everything."""
    base = _solve(policy, (rule.match,), tag, host, lambda r: True)
    base = base or Request("GET", "/" + tag, host)
    for variant in _variants(policy, rule.match, base, host):
        if _request_ok(policy, variant) and not matches(rule, variant):
            return variant
    return None


def _solve(policy: Policy, constraints: Sequence[Match], tag: str, host: str,
           accept: Callable[[Request], bool]) -> Request | None:
    """The first candidate request that meets every constraint and ``accept``."""
    try:
        space = _Space.build(policy, constraints, tag, host)
        for request in islice(space.requests(), MAX_TRIES):
            if all(match_holds(m, request) for m in constraints) and accept(request):
                return request
    except RecursionError:  # a pathological regex: no probe rather than a crash
        return None
    return None


@dataclass(frozen=True)
class _Space:
    """Candidate values per dimension, best first."""

    paths: tuple[Pair, ...]
    methods: tuple[str, ...]
    hosts: tuple[str, ...]
    headers: tuple[tuple[Pair, ...], ...]
    cookies: tuple[tuple[Pair, ...], ...]

    @classmethod
    def build(cls, policy: Policy, constraints: Sequence[Match], tag: str, host: str) -> _Space:
        """The candidates for requests meeting ``constraints`` in ``policy``."""
        others = [r.match for r in policy.rules]
        return cls(
            paths=_paths(policy, constraints, tag),
            methods=_methods(constraints),
            hosts=_hosts(policy, constraints, host),
            headers=_value_dims(constraints, others, _header_conditions, _HEADER_KIND),
            cookies=_value_dims(constraints, others, _cookie_conditions, _COOKIE_KIND),
        )

    def requests(self) -> Iterator[Request]:
        """Every combination; paths vary fastest, then methods, hosts, headers, cookies."""
        hosts = tuple(("host", h) for h in self.hosts)
        methods = tuple(("method", m) for m in self.methods)
        for combo in product(*self.cookies, *self.headers, hosts, methods, self.paths):
            *values, (_, host), (_, method), (path, query) = combo
            cookies = tuple(v for v in values[:len(self.cookies)] if v[1] != ABSENT)
            headers = tuple(v for v in values[len(self.cookies):] if v[1] != ABSENT)
            yield Request(method, path, host, query, headers, cookies)


# --- paths ---


def _paths(policy: Policy, constraints: Sequence[Match], tag: str) -> tuple[Pair, ...]:
    """(path, query) candidates: paths holding the tag first, then tag-less ones with the tag
    in the query. A few per shape, so that every base gets tried."""
    extensions = _common_extensions(constraints)
    if extensions is None:
        return ()

    def ok(path: str) -> bool:
        return _path_ok(path) and all(path_holds(m, path) for m in constraints)

    # an exact path is the longest prefix there is: the shapes built on it include it as is
    prefix = max((m.path or m.path_prefix or "" for m in constraints), key=len)
    tagged: list[str] = []
    untagged: list[str] = []
    forms = tag_forms(tag)
    for base in _bases(prefix, [m.path_regex for m in constraints if m.path_regex is not None]):
        for shaped in _shapes(base, prefix, extensions):
            for form in forms:
                tagged += islice(filter(ok, _with_tag(shaped, form)), TAGS_PER_SHAPE)
            untagged += [shaped] if ok(shaped) and not any(f in shaped for f in forms) else []
    query = f"{_tag_param(policy)}={tag}"
    return (*((p, "") for p in list(dict.fromkeys(tagged))[:MAX_PATHS]),
            *((p, query) for p in list(dict.fromkeys(untagged))[:MAX_PATHS // 2]))


def tag_forms(tag: str) -> tuple[str, str, str]:
    """``tag`` as it is, and spelled in hex and in digits (derived from it, so as unique), for
    paths whose rule allows only such characters where the tag goes (``app\\.[0-9a-f]+\\.js``)."""
    digest = hashlib.blake2s(tag.encode(), digest_size=6).hexdigest()
    return tag, digest, str(int(digest, 16)).zfill(15)


def tagged_path(request: Request, tag: str) -> bool:
    """Whether ``request``'s path holds ``tag`` (in one of its ``tag_forms``)."""
    return any(form in request.path for form in tag_forms(tag))


def isolated(policy: Policy, request: Request, tag: str, *, entry: bool = True) -> bool:
    """Whether a request built like ``request`` with a fresh tag gets an origin count (and,
    with ``entry``, a cache entry) of its own: the tag is in its path, or in a query parameter
    that reaches the origin (and that the cache key keeps). Checks whose probes are not
    isolated would measure each other."""
    if tagged_path(request, tag):
        return True
    forwarded = request.unit != request.path and bool(_kept_params(policy))
    return forwarded and (not entry or "query" in policy.cache.key)


def isolate(policy: Policy, request: Request, tag: str, *, entry: bool = True) -> Request | None:
    """``request`` if it is ``isolated``; else the same request on a host of its own (a
    subdomain named by the tag) where the key holds the host, the marker reaches the origin and
    the same rule still answers; else ``None``."""
    if isolated(policy, request, tag, entry=entry):
        return request
    if "host" not in policy.cache.key or not isolated(policy, request, tag, entry=False):
        return None
    label = tag_forms(tag)[1]
    bases = [engine_host(request.host), *(h[2:] for h in policy.listen.hosts if h.startswith("*."))]
    rule = select_rule(policy, request)
    for base in bases:
        moved = replace(request, host=f"cw{label}.{base}")
        if _host_allowed(policy, moved.host) and select_rule(policy, moved) == rule:
            return moved
    return None


def _common_extensions(constraints: Sequence[Match]) -> tuple[str, ...] | None:
    """Extensions every constraint allows (``()``: unconstrained; ``None``: impossible)."""
    lists = [tuple(e.lower() for e in m.extensions) for m in constraints if m.extensions]
    if not lists:
        return ()
    common = tuple(e for e in lists[0] if all(e in other for other in lists[1:]))
    return common or None


def _bases(prefix: str, regexes: list[str]) -> Iterator[str]:
    """Starting paths: examples of each path regex (several seeds), then the prefix."""
    for seed in range(SEEDS):
        for regex in regexes:
            text = example(regex, seed=seed)
            if text is not None:
                yield text
    yield prefix or "/"


def _shapes(base: str, prefix: str, extensions: tuple[str, ...]) -> list[str]:
    """``base`` with the prefix and an extension put in where missing."""
    return [e for p in _with_prefix(base, prefix) for e in _with_extension(p, extensions)]


def _with_prefix(base: str, prefix: str) -> list[str]:
    rooted = base if base.startswith("/") else "/" + base
    if not prefix:
        return [rooted]
    if prefix.startswith(base):  # the prefix extends the base: it is the merge
        base = prefix
    if base.startswith(prefix):
        return [base + "/", base] if base == prefix and not prefix.endswith("/") else [base]
    variants = [prefix + base.lstrip("/"), prefix.rstrip("/") + rooted]
    if not prefix.endswith("/"):
        variants.insert(0, prefix + "/" + base.lstrip("/"))
    return variants


def _with_extension(path: str, extensions: tuple[str, ...]) -> list[str]:
    if not extensions:
        return [path]
    return [path, *(f"{path}.{e}" for e in extensions[:3])]


def _with_tag(path: str, tag: str) -> Iterator[str]:
    """``path`` with ``tag`` put in: before a final ``.ext``, after the last ``/``, as a segment
    of its own (last, first, after any ``/``), at the end, then anywhere else."""
    slash = path.rfind("/") + 1
    dot = path.rfind(".")
    end = dot if dot >= slash else len(path)
    candidates = [path[:end] + tag + path[end:], path[:slash] + tag + path[slash:],
                  path.rstrip("/") + "/" + tag, "/" + tag + path]
    candidates += [path[:i] + tag + "/" + path[i:] for i in range(1, len(path)) if path[i - 1] == "/"]
    candidates += [path[:i] + tag + path[i:] for i in range(len(path), -1, -1)]
    yield from dict.fromkeys(candidates)


def _path_ok(path: str) -> bool:
    """A path a client can send and the engines accept (pchar, no dot segments, no encoded
    unreserved characters)."""
    return re.fullmatch(PATH, path) is not None and not any(r.search(path) for r in REFUSED_PATHS)


def _tag_param(policy: Policy) -> str:
    """A query parameter name for the tag that the policy does not ignore."""
    return (_kept_params(policy) or list(TAG_PARAMS))[0]


def _kept_params(policy: Policy) -> list[str]:
    """The tag parameters ``cache.query.ignore`` keeps (in the key and on the way to the origin)."""
    ignored = [re.compile(glob_regex(g)) for g in policy.cache.query.ignore]
    return [p for p in TAG_PARAMS if not any(r.fullmatch(p) for r in ignored)]


# --- methods and hosts ---


def _methods(constraints: Sequence[Match]) -> tuple[str, ...]:
    """GET if every constraint allows it, then the others in the first constraint's order."""
    lists = [m.methods for m in constraints if m.methods]
    allowed = lists[0] if lists else SAFE_METHODS
    common = [x for x in allowed if all(x in other for other in lists)]
    return tuple(sorted(common, key=lambda x: x != "GET"))


def _hosts(policy: Policy, constraints: Sequence[Match], host: str) -> tuple[str, ...]:
    """Concrete hosts meeting every host condition and ``listen.hosts``."""
    named = [h for m in constraints for h in m.hosts]
    candidates = [c for h in named for c in _concrete(h)]
    if not named:
        candidates = [host, *(c for h in policy.listen.hosts for c in _concrete(h))]
    ok = [c for c in candidates if _host_allowed(policy, c)
          and all(not m.hosts or regex_holds(host_regex(m.hosts), engine_host(c)) for m in constraints)]
    return tuple(dict.fromkeys(ok))


def _concrete(pattern: str) -> list[str]:
    """Host names a host pattern covers (``*.example.com``: two subdomains)."""
    if pattern.startswith("*."):
        return [f"www.{pattern[2:]}", f"cw-probe.{pattern[2:]}"]
    return [pattern]


def _host_allowed(policy: Policy, host: str) -> bool:
    """Whether the engines serve ``host`` (``listen.hosts``; others get 421)."""
    name = engine_host(host)
    if not HOST.fullmatch(name):
        return False
    return not policy.listen.hosts or regex_holds(host_regex(policy.listen.hosts), name)


# --- header and cookie values ---

Conditions = Callable[[Match], Iterable[tuple[str, str]]]


def _header_conditions(m: Match) -> Iterable[tuple[str, str]]:
    """(name key, regex) per header condition; header names are case-insensitive."""
    return ((h.name, h.regex or ".") for h in m.headers)


def _cookie_conditions(m: Match) -> Iterable[tuple[str, str]]:
    """(name, regex) per cookie condition; cookie names are case-sensitive."""
    return ((c.name, c.regex or ".") for c in m.cookies)


@dataclass(frozen=True)
class _Kind:
    """How names compare and which values can be sent, for headers or for cookies."""

    fold: Callable[[str], str]
    valid: re.Pattern[str]
    avoid: str


_HEADER_KIND = _Kind(str.lower, HEADER_VALUE, "")
_COOKIE_KIND = _Kind(str, COOKIE_VALUE, ' ",;\\')


def _value_dims(constraints: Sequence[Match], others: Sequence[Match], conditions: Conditions,
                kind: _Kind) -> tuple[tuple[Pair, ...], ...]:
    """One dimension per header (or cookie) name: values meeting the constraints' conditions;
    names only other rules test get "absent" first, then a value that may escape them."""
    wanted: dict[str, tuple[str, list[str]]] = {}
    for m in constraints:
        for name, regex in conditions(m):
            wanted.setdefault(kind.fold(name), (name, []))[1].append(regex)
    dims = [tuple((name, v) for v in _values(regexes, kind)) for name, regexes in wanted.values()]
    for m in others:
        for name, _regex in conditions(m):
            if kind.fold(name) not in wanted:
                wanted[kind.fold(name)] = (name, [])
                dims.append(((name, ABSENT), (name, ESCAPE_VALUE)))
    return tuple(dims)


def distinct_values(regexes: Sequence[str], *, cookie: bool = False, count: int = 2) -> list[str]:
    """Up to ``count`` different values every regex matches that a client can send as a header
    (or ``cookie``) value: ``cw-a``, ``cw-b`` where nothing constrains them."""
    kind = _COOKIE_KIND if cookie else _HEADER_KIND
    seeds = [x for seed in range(SEEDS * 2) for r in regexes
             if (x := example(r, seed=seed, avoid=kind.avoid)) is not None]
    candidates = [*seeds, *(f"{x}{s}" for x in seeds for s in ("a", "b", "1", "2")), "cw-a", "cw-b"]
    ok = [v for v in dict.fromkeys(candidates)
          if v and kind.valid.fullmatch(v) and all(regex_holds(r, v) for r in regexes)]
    return ok[:count]


def _values(regexes: list[str], kind: _Kind) -> list[str]:
    """Values every regex matches (``""`` stands for "absent"), best first."""
    candidates = ["1"] if set(regexes) == {"."} else []
    candidates += [x for seed in range(SEEDS) for r in regexes
                   if (x := example(r, seed=seed, avoid=kind.avoid)) is not None]
    ok = [v for v in dict.fromkeys([*candidates, "1"])
          if kind.valid.fullmatch(v) and all(regex_holds(r, v) for r in regexes)]
    return ok[:VALUES_PER_NAME]


# --- variants that do not match ---


def _variants(policy: Policy, m: Match, base: Request, host: str) -> Iterator[Request]:
    """Requests that differ from ``base`` in one respect, path first."""
    for path in _other_paths(m, base.path):
        yield replace(base, path=path)
    for method in sorted(set(SAFE_METHODS) - set(m.methods or SAFE_METHODS), key=SAFE_METHODS.index):
        yield replace(base, method=method)
    for other in [host, *(c for h in policy.listen.hosts for c in _concrete(h)), "cw-other.invalid"]:
        yield replace(base, host=other)
    for h in m.headers:
        yield replace(base, headers=tuple(p for p in base.headers if p[0].lower() != h.name.lower()))
    for c in m.cookies:
        yield replace(base, cookies=tuple(p for p in base.cookies if p[0] != c.name))


def _other_paths(m: Match, path: str) -> Iterator[str]:
    """The same path under another prefix, with another extension, or plainly elsewhere."""
    if m.path_prefix and path.startswith(m.path_prefix):
        yield "/cw-other/" + path[len(m.path_prefix):].lstrip("/")
        yield "/cw-other" + path
    if m.extensions:
        stem = path.rsplit(".", 1)[0]
        yield stem + ".cwx"
        yield stem
    yield "/cw-other" + path
    yield "/cw-other/" + path.rsplit("/", 1)[-1]
    yield path.rstrip("/") + "/cw-other"
    yield "/cw-other/" + path.rsplit("/", 1)[-1].split(".", 1)[0]


def _request_ok(policy: Policy, request: Request) -> bool:
    """A request the engines serve (a sendable path, a served host)."""
    return _path_ok(request.path) and _host_allowed(policy, request.host)

