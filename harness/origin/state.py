"""What the origin remembers: its rules, its counters and its request log (stdlib only).

Markers: a request whose query holds marker parameters (``cw``, ``cwtag``, ``cw_probe``) is also
known by its *unit*, ``/a?cw=t1`` (the path and its markers, in their order): it is counted under
its path and under its unit, an exact rule registered for ``/a?cw=t1`` answers it before a rule
for ``/a``, and ``/requests?path=/a?cw=t1`` lists it. Checks that probe one path at once each
use their own marker, so each owns its count and its answer.

Every request on the data port is counted and logged when it arrives (before any delay), so a
client that got its answer can read both at once. All of it is only ever touched from the
event loop, so nothing here locks.
"""

from __future__ import annotations

import fnmatch
import itertools
import uuid
from collections import Counter, deque
from dataclasses import dataclass

from .rules import JsonObject, Rule
from .wire import Outcome, Reply, Request

#: query parameters that mark a probe (harness/selection/probes.py puts one in when a rule leaves no room
#: for a marker in the path); engines keep them in the cache key and forward them
MARKERS = ("cw", "cwtag", "cw_probe")


def unit_of(path: str, query: str) -> str:
    """``path``, then ``?`` and the marker parameters of ``query`` in their order, if any."""
    marks = [p for p in query.split("&") if p.split("=", 1)[0] in MARKERS] if query else []
    return f"{path}?{'&'.join(marks)}" if marks else path


def keys_of(request: Request) -> tuple[str, ...]:
    """What counters and the log know ``request`` by: its path, and its unit when it differs,
    so that two checks probing one path with different markers never share a count."""
    return tuple(dict.fromkeys((request.path, unit_of(request.path, request.query))))


@dataclass(frozen=True)
class Recorded:
    """One request as the origin saw it, for the control port's request log."""

    seq: int
    time: float
    response_id: str
    request: Request
    rule: str | None
    status: int | None
    outcome: Outcome

    def to_json(self) -> JsonObject:
        """The log entry's JSON form."""
        req = self.request
        return {
            "seq": self.seq,
            "time": self.time,
            "response_id": self.response_id,
            "method": req.method,
            "target": req.target,
            "path": req.path,
            "query": req.query,
            "http_version": req.version,
            "headers": [list(h) for h in req.headers],
            "body_length": len(req.body),
            "client": {"host": req.client[0], "port": req.client[1]},
            "rule": self.rule,
            "status": self.status,
            "outcome": self.outcome,
        }


class RuleTable:
    """The rules in effect: exact ones by path (or unit), patterns in registration order, and
    how many requests each rule took since it was registered (for its ``sequence``)."""

    def __init__(self) -> None:
        self.exact: dict[str, Rule] = {}
        self.patterns: list[Rule] = []
        self.served: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.exact) + len(self.patterns)

    def add(self, rule: Rule) -> None:
        """Add or replace a rule; a replaced pattern moves to the end (it now wins ties). Its
        ``sequence`` starts again from the first answer."""
        self.served[rule.key] = 0
        if rule.path is not None:
            self.exact[rule.path] = rule
        else:
            self.patterns = [p for p in self.patterns if p.pattern != rule.pattern]
            self.patterns.append(rule)

    def remove(self, path: str | None, pattern: str | None) -> int:
        """Remove the rule for ``path`` or ``pattern``, or all rules when both are None."""
        before = len(self)
        if path is None and pattern is None:
            self.exact.clear()
            self.patterns.clear()
        if path is not None:
            self.exact.pop(path, None)
        if pattern is not None:
            self.patterns = [p for p in self.patterns if p.pattern != pattern]
        return before - len(self)

    def listed(self) -> list[Rule]:
        """Exact rules sorted by path, then patterns in registration order."""
        return [self.exact[p] for p in sorted(self.exact)] + list(self.patterns)

    def match(self, request: Request) -> Rule | None:
        """The rule for a request: exact by its unit (a marked path), exact by its path, then
        the last-registered matching pattern."""
        for exact in reversed(keys_of(request)):
            if exact in self.exact:
                return self.exact[exact]
        for rule in reversed(self.patterns):
            if rule.pattern is not None and fnmatch.fnmatchcase(request.path, rule.pattern):
                return rule
        return None

    def answer(self, rule: Rule) -> Rule:
        """The answer for the next request ``rule`` takes: the rule itself, or the next answer
        of its ``sequence`` (the last one repeats)."""
        served = self.served[rule.key]
        self.served[rule.key] += 1
        return rule.sequence[min(served, len(rule.sequence) - 1)] if rule.sequence else rule


class Counters:
    """Requests received (in total, per path or unit, per method) and body bytes sent.

    ``body_bytes`` counts the response body bytes the data port sent (none for HEAD and 304,
    half for ``close_mid_body``): what a revalidation answered with 304 saves.
    """

    def __init__(self) -> None:
        self.total = 0
        self.paths: Counter[str] = Counter()
        self.by_method: dict[str, Counter[str]] = {}
        self.body_bytes: Counter[str] = Counter()

    def arrived(self, request: Request) -> None:
        """Count a request under its path and its unit."""
        self.total += 1
        for key in keys_of(request):
            self.paths[key] += 1
            self.by_method.setdefault(key, Counter())[request.method] += 1

    def sent(self, request: Request, reply: Reply) -> None:
        """Count the body bytes of ``reply`` under the request's path and unit."""
        for key in keys_of(request):
            self.body_bytes[key] += len(reply.sent_body)

    def reset(self) -> None:
        """Zero every counter (sequence numbers and response ids keep increasing)."""
        self.total = 0
        self.paths.clear()
        self.by_method.clear()
        self.body_bytes.clear()

    def to_json(self, path: str | None) -> JsonObject:
        """The counters, all of them or for one path (or unit)."""
        if path is not None:
            methods = dict(self.by_method.get(path, {}))
            return {"path": path, "count": self.paths.get(path, 0), "by_method": methods,
                    "body_bytes": self.body_bytes.get(path, 0)}
        paths = dict(sorted(self.paths.items()))
        by_method = {p: dict(c) for p, c in sorted(self.by_method.items())}
        body_bytes = dict(sorted(self.body_bytes.items()))
        return {"total": self.total, "paths": paths, "by_method": by_method,
                "body_bytes": body_bytes}


class OriginState:
    """Rules, counters and the request log of one running origin."""

    def __init__(self, log_size: int) -> None:
        self.rules = RuleTable()
        self.counters = Counters()
        self.log: deque[Recorded] = deque(maxlen=log_size)
        self._boot = uuid.uuid4().hex[:8]
        self._seq = itertools.count(1)

    def arrive(self, request: Request) -> tuple[int, str]:
        """Count a request; returns its sequence number and response id."""
        self.counters.arrived(request)
        seq = next(self._seq)
        return seq, f"{self._boot}-{seq:06d}"

    def requests(self, path: str | None, method: str | None, since: int) -> list[Recorded]:
        """The log entries after ``since`` (a seq) for ``path`` (a path or a unit) and
        ``method``, oldest first; None matches any."""
        return [
            r
            for r in self.log
            if r.seq > since
            and (path is None or path in keys_of(r.request))
            and (method is None or method == r.request.method)
        ]

    def reset(self) -> None:
        """Forget the rules, the counts and the log."""
        self.rules.remove(None, None)
        self.counters.reset()
        self.log.clear()
