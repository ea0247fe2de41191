"""What a policy predicts for real traffic: each logged request through the rule it selects
(``select_rule``), cached or bypassed as ``explain`` decides, under its cache key, into one
simulated shared cache that keeps each stored key for its TTL on the log's own clock.

``Predictor.feed`` takes the log's entries one by one; ``Predictor.result`` is the ``Prediction``
(per rule, totals, the busiest keys, the malformed lines, the assumptions made).

Memory: constant but for the tables. The *decision memo* maps what decides a request's outcome
(method, host, path and the values of the headers the policy reads; not the query, which only
the key holds) to its rule, verdict and key: a log repeats URLs, and ``explain``'s model runs
once per distinct request. It (and the memo of queries without their ignored parameters) holds
at most ``MEMO_SIZE`` entries, about 300 bytes each; the oldest quarter is dropped when full.
The *key table* holds one entry per distinct cache key
(when it is fresh until, its requests and origin requests; about 250 bytes a key): at
``max_keys`` entries the keys seen once and expired are forgotten, then the least requested
half, and the prediction says so (their next request counts a miss; distinct keys and the busiest
keys become approximate).
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from cachewright.generator.model import Policy, Rule
from cachewright.generator.quote import glob_regex
from cachewright.generator.status import DEFAULT_STATUSES

from ..engines import ENGINES, stale_age_limit
from ..runtime.prepare import request_host
from ..selection.explain import PURGES, bypass_reasons, default_scheme, guard, key_parts
from ..selection.request import Pair, select_rule
from .entry import Entry, Malformed
from .report import KeyRow, Prediction, RuleRow, assumptions

MAX_KEYS = 500_000
MEMO_SIZE = 131_072
MALFORMED_SHOWN = 10
NEVER = float("-inf")  # "fresh until" of a key not stored
#: logged statuses that stand for the stored response: a 304 answered a conditional request
#: and a 206 a range from a stored 200; a line without a status is taken as 200
AS_STORED = {304: 200, 206: 200, None: 200}


@dataclass(frozen=True)
class Decision:
    """What the policy does with one distinct request, its query aside (memoized)."""

    #: the rule's position in ``Predictor.rules`` (-1: refused before any rule)
    rule: int
    cacheable: bool
    purge: bool
    #: the key up to its query (``https://host/path``), and what follows it (``[cookie c=1]``)
    url: str
    extras: str
    #: the key holds the query (``cache.key``)
    keyed_query: bool
    #: seconds a response with each status stays fresh (statuses absent: not stored)
    ttls: dict[int, int]
    #: the key without a query: one string for every such request (its hash is computed once)
    plain: str

    def key(self, query: str, kept: QueryFilter) -> str:
        """The cache key for this request with ``query``."""
        filtered = kept(query) if query and self.keyed_query else ""
        return f"{self.url}?{filtered}{self.extras}" if filtered else self.plain


class QueryFilter:
    """A query without the parameters ``cache.query.ignore`` drops (``explain``'s
    ``split_query``, its globs compiled once, its answers memoized)."""

    def __init__(self, policy: Policy) -> None:
        self.ignore = [re.compile(glob_regex(g)) for g in policy.cache.query.ignore]
        self.memo: dict[str, str] = {}

    def __call__(self, query: str) -> str:
        found = self.memo.get(query)
        if found is None:
            if len(self.memo) >= MEMO_SIZE:
                forget_oldest(self.memo)
            params = [p for p in query.split("&") if p]
            found = self.memo[query] = "&".join(
                p for p in params if not any(r.fullmatch(p.partition("=")[0]) for r in self.ignore))
        return found


class Predictor:
    """A shared cache simulated over a log (see the module's docstring)."""

    def __init__(self, policy: Policy, *, max_keys: int = MAX_KEYS, engine: str = "") -> None:
        self.policy = policy
        self.rules: tuple[Rule, ...] = (*policy.rules, policy.default_rule)
        self.scheme = default_scheme(policy)
        self.host = request_host(policy)
        #: the engine whose own behaviour is simulated ("": the policy as written, Varnish's)
        self.engine = engine
        self.swr = float(policy.cache.stale.while_revalidate)
        if engine and self.swr and not stale_age_limit(engine):  # nginx: stale without an age limit
            self.swr = float("inf")
        self.soft = policy.purge is not None and policy.purge.soft
        self.watched = watched_headers(policy)
        self.ttls = [status_ttls(policy, rule) for rule in self.rules]
        self.max_keys = max_keys
        self.memo: dict[tuple[object, ...], Decision] = {}
        self.kept = QueryFilter(policy)
        # the key of a request without a query: the ignored parameters (compiled on every call
        # of key_parts) cannot matter, so key_parts is given a policy without them
        self.unqueried = dataclasses.replace(policy, cache=dataclasses.replace(
            policy.cache, query=dataclasses.replace(policy.cache.query, ignore=())))
        self.table: dict[str, list[float]] = {}  # key -> [fresh until, requests, origin, rule]
        count = len(self.rules)
        self.requests, self.cacheable = [0] * count, [0] * count
        self.hits, self.stale, self.origin, self.keys = [0] * count, [0] * count, [0] * count, [0] * count
        self.refused = self.purges = self.lines = self.forgotten = 0
        self.malformed: list[Malformed] = []
        self.malformed_count = 0
        self.now = 0.0
        self.first: float | None = None

    def feed_all(self, items: Iterable[Entry | Malformed]) -> None:
        for item in items:
            self.feed(item)

    def feed(self, item: Entry | Malformed) -> None:
        """Take one log line's record."""
        self.lines += 1
        if item.__class__ is Malformed:
            self.malformed_count += 1
            if len(self.malformed) < MALFORMED_SHOWN:
                self.malformed.append(item)
            return
        entry: Entry = item  # type: ignore[assignment]  # (not Malformed: checked by class, faster)
        if entry.time is not None:
            self.now = entry.time
            if self.first is None:
                self.first = entry.time
        path, _, query = entry.target.partition("?")
        decision = self.decide(entry, path)
        if decision.rule < 0:
            self.refused += 1
            return
        key = decision.key(query, self.kept)
        if decision.purge:  # a PURGE empties its key (soft: expires it); a BAN is only counted
            self.purges += 1
            slot = self.table.get(key)
            if slot is not None and entry.method == "PURGE":
                slot[0] = min(slot[0], self.now) if self.soft else NEVER
        else:
            self.serve(decision, key, AS_STORED.get(entry.status, entry.status))

    def serve(self, decision: Decision, key: str, status: int | None) -> None:
        """One request through the simulated cache."""
        r, now = decision.rule, self.now
        slot = self.table.get(key)
        if slot is None:
            if len(self.table) >= self.max_keys:
                self.shrink()
            slot = self.table[key] = [NEVER, 0, 0, r]
            self.keys[r] += 1
        slot[1] += 1
        self.requests[r] += 1
        if decision.cacheable:
            self.cacheable[r] += 1
            if now < slot[0]:
                self.hits[r] += 1
                return
            if now < slot[0] + self.swr:  # served stale while one refresh goes to the origin
                self.hits[r] += 1
                self.stale[r] += 1
            ttl = decision.ttls.get(status, 0) if status is not None else 0
            slot[0] = now + ttl if ttl else NEVER
        self.origin[r] += 1
        slot[2] += 1

    def decide(self, entry: Entry, path: str) -> Decision:
        """The memoized decision for ``entry`` (whose target's path is ``path``)."""
        memo_key: tuple[object, ...] = (entry.method, entry.host, path)
        if entry.headers and self.watched:
            memo_key += tuple((n.lower(), v) for n, v in entry.headers if n.lower() in self.watched)
        found = self.memo.get(memo_key)
        if found is None:
            if len(self.memo) >= MEMO_SIZE:
                forget_oldest(self.memo)
            found = self.memo[memo_key] = self.computed(dataclasses.replace(entry, target=path or "/"))
        return found

    def computed(self, entry: Entry) -> Decision:
        """``explain``'s model for ``entry`` (no query): guard, rule, bypass reasons, the key."""
        request = entry.request(self.host)
        if guard(self.policy, request, self.scheme) is not None:
            return Decision(-1, False, False, "", "", False, {}, "")
        rule = select_rule(self.policy, request)
        url, extras = key_text(key_parts(self.unqueried, rule, request, self.scheme))
        purge = request.method in PURGES
        cacheable = not purge and not bypass_reasons(self.policy, rule, request)
        return Decision(rule.index, cacheable, purge, url, extras, "query" in self.policy.cache.key,
                        self.ttls[rule.index], url + extras)

    def shrink(self) -> None:
        """Make room in the full key table (see the module's docstring)."""
        before = len(self.table)
        for key in [k for k, s in self.table.items() if s[1] == 1 and s[0] + self.swr <= self.now]:
            del self.table[key]
        if len(self.table) > self.max_keys * 3 // 4:
            kept = heapq.nlargest(self.max_keys // 2, self.table.items(), key=lambda kv: kv[1][1])
            self.table = dict(kept)
        self.forgotten += before - len(self.table)

    def result(self, log: str, format: str, top: int = 10) -> Prediction:
        """The prediction so far."""
        rows = tuple(RuleRow(rule.name, rule.index if rule.name != "default" else None, rule.cache,
                             self.requests[i], self.cacheable[i], self.hits[i], self.stale[i],
                             self.origin[i], self.keys[i])
                     for i, rule in enumerate(self.rules))
        busiest = heapq.nsmallest(top, self.table.items(), key=lambda kv: (-kv[1][1], kv[0]))
        keys = tuple(KeyRow(key, self.rules[int(s[3])].name, int(s[1]), int(s[2])) for key, s in busiest)
        span = (self.now - self.first) if self.first is not None else None
        return Prediction(
            policy=self.policy.source, log=log, format=format, lines=self.lines,
            rules=rows, refused=self.refused, purges=self.purges, top_keys=keys,
            malformed=self.malformed_count, malformed_first=tuple(self.malformed),
            span_seconds=span, key_table_limit=self.max_keys, keys_forgotten=self.forgotten,
            assumptions=assumptions(self.policy, self.rules, self.scheme, self.forgotten))


def differing_engines(policy: Policy) -> tuple[str, ...]:
    """The engines whose hit ratio for this policy differs from the policy as written, each
    predicted on its own: nginx serves a stale response while it is refreshed without an age
    limit (``stale.while_revalidate`` bounds it on Varnish only; ``explain`` says so too)."""
    if not policy.cache.stale.while_revalidate:
        return ()
    return tuple(e for e in ENGINES if not stale_age_limit(e))


def predictors(policy: Policy, *, max_keys: int = MAX_KEYS) -> list[Predictor]:
    """The policy's predictor, then one per engine that differs (``differing_engines``)."""
    return [Predictor(policy, max_keys=max_keys),
            *(Predictor(policy, max_keys=max_keys, engine=e) for e in differing_engines(policy))]


def feed_all(chosen: list[Predictor], items: Iterable[Entry | Malformed]) -> None:
    """Every item to every predictor, the log read once."""
    if len(chosen) == 1:
        chosen[0].feed_all(items)
        return
    for item in items:
        for predictor in chosen:
            predictor.feed(item)


def combined(chosen: list[Predictor], log: str, format: str, top: int) -> Prediction:
    """The first predictor's result with the others' rows beside it, by engine."""
    result = chosen[0].result(log, format, top)
    for other in chosen[1:]:
        result = result.with_engine(other.engine, other.result(log, format, 0).rules)
    return result


def forget_oldest(memo: dict[Any, Any]) -> None:
    """Drop the oldest quarter of a full memo (insertion order): what is still requested comes
    back at its next request, and a memo never holds more than ``MEMO_SIZE`` entries."""
    for key in list(islice(memo, len(memo) // 4)):
        del memo[key]


def watched_headers(policy: Policy) -> frozenset[str]:
    """The request headers (lowercased) whose values can change a decision: Cookie and
    Authorization (the safe defaults), and those the rules match, key or vary on."""
    names = {"cookie", "authorization"}
    for rule in (*policy.rules, policy.default_rule):
        names |= {h.name.lower() for h in rule.match.headers}
        names |= {h.lower() for h in (*rule.key.headers, *rule.vary)}
    return frozenset(names)


def status_ttls(policy: Policy, rule: Rule) -> dict[int, int]:
    """Seconds each status stays fresh under ``rule``, as the configurations store it when the
    origin says nothing: the rule's ttl (else ``cache.default_ttl``) for the default statuses,
    ``cache.status_ttl`` for those it lists; statuses absent are not stored."""
    lifetime = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    if not rule.cache:
        return {}
    out = {int(code): lifetime for code in DEFAULT_STATUSES.split()}
    out.update(policy.cache.status_ttl)
    return {code: ttl for code, ttl in out.items() if ttl > 0}


def key_text(parts: tuple[Pair, ...]) -> tuple[str, str]:
    """A cache key (of a request without a query) as one line, in two pieces: the URL
    (``https://host/path``, where the query goes next) and a ``[name=value]`` for each part a
    rule adds (``[cookie currency=eur]``)."""
    values = dict(parts)
    url = (values["scheme"] + "://" if "scheme" in values else "") + values.get("host", "")
    extra = "".join(f" [{name}={value}]" for name, value in parts
                    if name not in ("scheme", "host", "path", "query"))
    return url + values.get("path", ""), extra
