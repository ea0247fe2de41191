"""The record ``replay`` prints: what a policy predicts for a log, per rule, with the busiest keys,
the malformed lines and the assumptions the prediction rests on; as text or as JSON
(``to_json``, schema ``SCHEMA``: fields are only ever added).

A rule's row has room for what the engines measured on the same log (``measured``: one
``Measured`` per engine, empty until an engine replays the log), printed beside the prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cachewright.generator.model import Policy, Rule

SCHEMA = "cachewright.replay/1"


@dataclass(frozen=True)
class Measured:
    """What one engine did with a rule's requests when the log was replayed against it."""

    engine: str
    requests: int
    hits: int
    origin_requests: int

    def to_json(self) -> dict[str, Any]:
        return {"engine": self.engine, "requests": self.requests, "hits": self.hits,
                "hit_ratio": ratio(self.hits, self.requests), "origin_requests": self.origin_requests}


@dataclass(frozen=True)
class RuleRow:
    """A rule's requests and what the simulated cache did with them. ``hits`` counts requests
    answered from the cache, ``stale`` of them past their TTL (stale.while_revalidate, each
    sending one refresh to the origin); ``origin_requests`` is what reached the origin (misses,
    refreshes, bypasses); ``distinct_keys`` the cache keys the rule's requests used."""

    rule: str
    #: position in the policy's rules (None: the implicit default rule)
    index: int | None
    #: the policy caches the rule at all (``cache: false`` is False)
    cache: bool
    requests: int
    cacheable: int
    hits: int
    stale: int
    origin_requests: int
    distinct_keys: int
    measured: tuple[Measured, ...] = ()

    @property
    def hit_ratio(self) -> float | None:
        """Hits over all of the rule's requests (None: no requests)."""
        return ratio(self.hits, self.requests)

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "index": self.index, "cache": self.cache,
                "requests": self.requests, "cacheable": self.cacheable, "hits": self.hits,
                "stale_hits": self.stale, "hit_ratio": self.hit_ratio,
                "origin_requests": self.origin_requests, "distinct_keys": self.distinct_keys,
                "measured": [m.to_json() for m in self.measured]}


@dataclass(frozen=True)
class KeyRow:
    """One of the busiest cache keys."""

    key: str
    rule: str
    requests: int
    origin_requests: int


@dataclass(frozen=True)
class Prediction:
    """Everything ``replay`` says about a log (``to_json`` is the ``--json`` output)."""

    policy: str
    log: str
    format: str
    lines: int
    rules: tuple[RuleRow, ...]
    #: requests the engines answer before any rule (400 path hygiene, 421 host, 501 method)
    refused: int
    purges: int
    top_keys: tuple[KeyRow, ...]
    malformed: int
    malformed_first: tuple[Any, ...]
    #: seconds from the first to the last timestamp (None: the log has none)
    span_seconds: float | None
    key_table_limit: int
    keys_forgotten: int
    assumptions: tuple[str, ...]
    #: an engine's own prediction where it differs from the policy as written (``rules`` above):
    #: (engine, its rows), e.g. nginx's stale responses without an age limit
    engines: tuple[tuple[str, tuple[RuleRow, ...]], ...] = ()

    def with_engine(self, engine: str, rows: tuple[RuleRow, ...]) -> Prediction:
        """This prediction with ``engine``'s own rows beside it."""
        return replace(self, engines=(*self.engines, (engine, rows)))

    def predicted_for(self, engine: str) -> tuple[RuleRow, ...]:
        """The rows predicted for ``engine``: its own where it differs, else the policy's."""
        return dict(self.engines).get(engine, self.rules)

    def with_measured(self, measured: Mapping[str, Measured]) -> Prediction:
        """This prediction with what an engine measured per rule (by rule name) beside it."""
        rows = tuple(replace(r, measured=(*r.measured, measured[r.rule])) if r.rule in measured else r
                     for r in self.rules)
        return replace(self, rules=rows)

    @property
    def totals(self) -> RuleRow:
        """Every rule's row added up."""
        def total(field: str) -> int:
            return sum(getattr(r, field) for r in self.rules)
        engines = sorted({m.engine for r in self.rules for m in r.measured})
        measured = tuple(Measured(e, *(sum(getattr(m, f) for r in self.rules for m in r.measured
                                           if m.engine == e)
                                       for f in ("requests", "hits", "origin_requests")))
                         for e in engines)
        return RuleRow("total", None, True, total("requests"), total("cacheable"), total("hits"),
                       total("stale"), total("origin_requests"), total("distinct_keys"), measured)

    def to_json(self) -> dict[str, Any]:
        totals = self.totals.to_json()
        for name in ("rule", "index", "cache"):
            del totals[name]
        return {
            "schema": SCHEMA, "policy": self.policy, "log": self.log, "format": self.format,
            "lines": self.lines, "span_seconds": self.span_seconds,
            "rules": [r.to_json() for r in self.rules], "totals": totals,
            "refused": self.refused, "purges": self.purges,
            "top_keys": [{"key": k.key, "rule": k.rule, "requests": k.requests,
                          "origin_requests": k.origin_requests} for k in self.top_keys],
            "malformed": {"count": self.malformed,
                          "first": [{"line": m.line, "reason": m.reason} for m in self.malformed_first]},
            "key_table": {"limit": self.key_table_limit, "forgotten": self.keys_forgotten},
            "assumptions": list(self.assumptions),
            "engines": {engine: {"rules": [r.to_json() for r in rows],
                                 "totals": _totals_json(rows)} for engine, rows in self.engines},
        }


def _totals_json(rows: tuple[RuleRow, ...]) -> dict[str, Any]:
    requests, hits = sum(r.requests for r in rows), sum(r.hits for r in rows)
    return {"requests": requests, "hits": hits, "hit_ratio": ratio(hits, requests),
            "origin_requests": sum(r.origin_requests for r in rows)}


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def assumptions(policy: Policy, rules: Sequence[Rule], scheme: str, forgotten: int) -> tuple[str, ...]:
    """What the prediction assumes where a log says nothing."""
    respect = [r.name for r in rules if r.cache and r.origin_headers == "respect"]
    out = []
    if respect:
        out.append(f"origin_headers: respect ({', '.join(respect)}): the origin's Cache-Control and "
                   "Expires decide the TTL, and a log does not record them; the fallback TTL "
                   "(the rule's ttl, else cache.default_ttl; cache.status_ttl per status) is used")
    out += [
        f"every request arrives over {scheme} (a log does not say; the policy's default scheme)",
        "a line without a host is for the policy's first host; without a time, at the time of "
        "the line before; without a status, a 200",
        "a logged 304 or 206 was answered from a stored 200; a response is stored for its "
        "status's TTL, and never when the status has none (the origin's Set-Cookie, Vary and "
        "no-store are not in the log)",
        "one shared cache of unlimited size (cache.size is not simulated); a stored response is "
        "fresh for its TTL, then served stale for stale.while_revalidate while one refresh goes "
        "to the origin; a miss is stored at once (concurrent misses are not collapsed or counted)",
    ]
    if policy.cache.query.sort:
        out.append("cache.query.sort (Varnish only): queries are keyed as logged, in their order, "
                   "as on nginx; on Varnish queries that differ only in order share a key")
    if policy.cache.stale.while_revalidate:
        out.append("nginx serves a stale response while it is refreshed without an age limit "
                   "(stale.while_revalidate bounds it on Varnish): its own prediction is the "
                   "'nginx predicted' column (JSON: engines.nginx)")
    if policy.fleet is not None:
        out.append("fleet: the fleet is predicted as one cache (every tier applies the same "
                   "rules and key; how tiers and shards split the keys is not simulated)")
    if forgotten:
        out.append(f"the key table reached its limit: {forgotten} rarely requested keys were "
                   "forgotten (their next request counted a miss); distinct keys and the busiest "
                   "keys are approximate")
    return tuple(out)


def render(p: Prediction) -> str:
    """The terminal report: the table per rule, the totals, the busiest keys, the malformed
    lines, the assumptions."""
    span = f", {duration(p.span_seconds)} of traffic" if p.span_seconds else ""
    lines = [f"policy  {p.policy}", f"log     {p.log} ({p.format}, {p.lines:,} lines{span})", ""]
    lines += table(p)
    if p.refused or p.purges:
        lines.append(f"also: {p.refused:,} refused before any rule (400/421/501), {p.purges:,} purges")
    if p.top_keys:
        lines += ["", "busiest keys", *aligned([("requests", "origin", "rule", "key")] + [
            (f"{k.requests:,}", f"{k.origin_requests:,}", k.rule, k.key) for k in p.top_keys],
            right=(0, 1))]
    lines += ["", malformed_line(p), "", "assumptions (a log does not record everything):"]
    lines += [f"  - {a}" for a in p.assumptions]
    return "\n".join(lines)


def table(p: Prediction) -> list[str]:
    """Per rule: the prediction, each differing engine's own predicted hit ratio, then what the
    engines measured."""
    engines = sorted({m.engine for r in p.rules for m in r.measured})
    own = [(engine, {r.rule: r for r in (*rows, _total(rows))}) for engine, rows in p.engines]
    head = ("rule", "requests", "cacheable", "hits", "hit ratio", "origin", "keys",
            *(f"{e} predicted" for e, _ in own),
            *(f"{e} {what}" for e in engines for what in ("hit ratio", "origin")))
    rows = [head] + [_row(r, own, engines) for r in (*p.rules, p.totals)]
    return aligned(rows, right=tuple(range(1, len(head))), rule_before=len(rows) - 1)


def _total(rows: tuple[RuleRow, ...]) -> RuleRow:
    return RuleRow("total", None, True, *(sum(getattr(r, f) for r in rows) for f in (
        "requests", "cacheable", "hits", "stale", "origin_requests", "distinct_keys")))


def _row(r: RuleRow, own: list[tuple[str, dict[str, RuleRow]]], engines: list[str]) -> tuple[str, ...]:
    measured = {m.engine: m for m in r.measured}
    cells = [r.rule + ("" if r.cache else " (cache: false)"), f"{r.requests:,}", f"{r.cacheable:,}",
             f"{r.hits:,}", percent(r.hit_ratio), f"{r.origin_requests:,}", f"{r.distinct_keys:,}"]
    cells += [percent(rows[r.rule].hit_ratio) if r.rule in rows else "" for _, rows in own]
    for engine in engines:
        m = measured.get(engine)
        cells += [percent(ratio(m.hits, m.requests)), f"{m.origin_requests:,}"] if m else ["", ""]
    return tuple(cells)


def aligned(rows: Sequence[tuple[str, ...]], right: tuple[int, ...] = (),
            rule_before: int | None = None) -> list[str]:
    """Rows as columns two spaces apart (``right``: right-aligned columns); a dashed line before
    row ``rule_before``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                     for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
           for row in rows]
    if rule_before is not None:
        out.insert(rule_before, "-" * len(max(out, key=len)))
    return out


def malformed_line(p: Prediction) -> str:
    if not p.malformed:
        return "malformed lines: none"
    first = p.malformed_first[0]
    shown = ", ".join(str(m.line) for m in p.malformed_first)
    more = ", ..." if p.malformed > len(p.malformed_first) else ""
    return (f"malformed lines: {p.malformed:,} (skipped; lines {shown}{more}); "
            f"line {first.line}: {first.reason}")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """``3h 12m``, ``45s``."""
    total = int(seconds or 0)
    days, rest = divmod(total, 86400)
    parts = [(days, "d"), (rest // 3600, "h"), (rest % 3600 // 60, "m"), (rest % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"
