"""Which rule a request selects, in pure Python, and requests built to select a given rule.

``select_rule`` evaluates first-match rule selection with the engines' semantics (see
``generator/nginx_dispatch.py`` and ``generator/varnish_rules.py``), using the same regex builders
(``generator.quote``) the engines are given:

* the raw request path (the target before the first ``?``) is matched, undecoded;
* the host is lowercased, without port or trailing dot (nginx's ``$host``);
* PURGE and BAN select the rule a GET would;
* an absent header or cookie is an empty value; "present" (no regex) means non-empty (``.``);
* a cookie's value is group 1 of ``(?:^|;)\\s*NAME=([^;]*)`` on the Cookie header (several Cookie
  lines joined with ``"; "``); a header's value is its first line.

The probe builders (``probe_for``, ``overlap_probe``, ``other_probe``) search a small space of
candidate requests (paths from prefixes, extensions and ``regexgen`` examples, with the tag
inserted; methods; hosts; header and cookie values) and return the first that ``select_rule``
proves does what is asked. Probes never rely on the corners above where the engines could differ:
one line per header, each cookie once, no spaces around values, paths that pass the engines'
path hygiene.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice, product

from cachewright.generator.language import PATH
from cachewright.generator.model import SAFE_METHODS, Match, Policy, Rule
from cachewright.generator.quote import cookie_regex, extensions_regex, glob_regex, host_regex, prefix_regex

from .regexgen import example

Pair = tuple[str, str]
MAX_TRIES = 4000
MAX_PATHS = 32
TAGS_PER_SHAPE = 2
SEEDS = 6
VALUES_PER_NAME = 4
TAG_PARAMS = ("cw", "cwtag", "cw_probe")  # harness/origin.py MARKERS: the same names
ABSENT = ""
ESCAPE_VALUE = "cw-none"
# The engines refuse these paths (400) before any rule is chosen: keep in step with the path
# hygiene maps in templates/nginx/nginx.conf.j2 and templates/varnish/default.vcl.j2.
REFUSED_PATHS = tuple(re.compile(r) for r in (
    r"(?:^|/)\.\.?(?:/|$)",
    r"\\",
    r"%(?![0-9A-Fa-f]{2})",
    r"(?i)%(?:2e|2f|5c|00)",
    r"(?i)%(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)",
))
COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
HOST = re.compile(r"[a-z0-9_.-]+")


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
        and the tag parameters of the query when it has any (``harness/origin.py``, "Markers")."""
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
        found = _compiled(cookie_regex(name))
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
            and (not m.hosts or _search(host_regex(m.hosts), engine_host(request.host)))
            and all(_search(h.regex or ".", request.header(h.name)) for h in m.headers)
            and all(_search(c.regex or ".", request.cookie(c.name)) for c in m.cookies))


def path_holds(m: Match, path: str) -> bool:
    """Whether the path conditions of ``m`` (prefix, exact path, regex, extensions) hold for raw
    ``path``."""
    return ((not m.path_prefix or _search(prefix_regex(m.path_prefix), path))
            and (m.path is None or _search(prefix_regex(m.path) + "$", path))
            and (m.path_regex is None or _search(m.path_regex, path))
            and (not m.extensions or _search(extensions_regex(m.extensions), path)))


@lru_cache(maxsize=1024)
def _compiled(regex: str) -> re.Pattern[str] | None:
    try:
        with warnings.catch_warnings():  # e.g. FutureWarning "Possible nested set"
            warnings.simplefilter("ignore")
            return re.compile(regex)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def _search(regex: str, text: str) -> bool:
    """``re.search``; a regex Python cannot compile matches nothing (load rejects those)."""
    compiled = _compiled(regex)
    return compiled is not None and compiled.search(text) is not None


# --- probes ---------------------------------------------------------------------------------


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
          and all(not m.hosts or _search(host_regex(m.hosts), engine_host(c)) for m in constraints)]
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
    return not policy.listen.hosts or _search(host_regex(policy.listen.hosts), name)


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
          if v and kind.valid.fullmatch(v) and all(_search(r, v) for r in regexes)]
    return ok[:count]


def _values(regexes: list[str], kind: _Kind) -> list[str]:
    """Values every regex matches (``""`` stands for "absent"), best first."""
    candidates = ["1"] if set(regexes) == {"."} else []
    candidates += [x for seed in range(SEEDS) for r in regexes
                   if (x := example(r, seed=seed, avoid=kind.avoid)) is not None]
    ok = [v for v in dict.fromkeys([*candidates, "1"])
          if kind.valid.fullmatch(v) and all(_search(r, v) for r in regexes)]
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
