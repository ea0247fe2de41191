"""Replaying traffic against the real engines, and measuring what they did.

``drive`` sends a stream of ``Entry`` records through one engine of a running stack, on
loopback, and measures per rule: requests, hits (the engine's Cache-Status; without one, a
response whose origin id was already seen) and origin requests (the sample origin's counters,
the ground truth). ``measure`` is the whole run for a policy file: one stack per engine, started
through the runtime API, driven, stopped.

Time. Entry ``i`` is sent ``(time_i - time_0) / speed`` seconds after the start (entries
without a time, and ``speed`` infinite, as fast as the workers go), at most ``max_requests``
of them and none after ``max_seconds``. Compressing time compresses the TTLs' share of it: a
60 s TTL covers an hour of a log replayed at speed 60. So ``measure`` runs the policy with its
timers (rule and default TTLs, status TTLs, stale windows) divided by ``speed`` too
(``time_scaled``), and entries expire at the same point of the log as they would have. The
engines count whole seconds, so a timer that scales below ``MIN_SCALED`` seconds, or is
rounded by more than a tenth, is named in the result's notes: choose a lower speed then
(``fitting_speed`` gives the lowest that fits a log's span into the time bound).

Concurrency. Requests go out on ``concurrency`` keep-alive connections; all requests for one
URL go through the same one, in log order, so a URL's misses and hits follow the log as a
sequential prediction assumes (no two requests for one key race each other).
"""

from __future__ import annotations

import http.client
import math
import queue
import socket
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cachewright.generator.model import Policy

from ..client import parse_cache_status
from ..runtime.api import Endpoint, Stack
from ..runtime.prepare import request_host
from ..selection.request import select_rule
from .entry import Entry, Malformed

#: the least a scaled timer may be, in seconds (the engines count whole seconds)
MIN_SCALED = 5
#: a request sent later than this after its time (seconds) counts as late
LATE = 0.5
#: entries waiting per connection (the log is read as they are sent, never held whole)
BACKLOG = 256
TIMEOUT = 15.0
#: the bucket for origin requests for paths the replay never sent (none, unless an engine
#: rewrote a path or fetched one on its own)
UNSENT = "(not sent)"
Observer = Callable[["Sent"], None]


@dataclass(frozen=True)
class RuleMeasure:
    """What one rule's requests did."""

    requests: int = 0
    hits: int = 0
    origin: int = 0

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Sent:
    """One request as sent and answered: status (None: no answer), the engine's outcome (hit,
    stale, miss, bypass, ... or "error"), the rule, and how late it went out (seconds)."""

    entry: Entry
    status: int | None
    outcome: str
    rule: str
    lag: float
    #: why there was no answer (a refused connection, a target http.client cannot send, ...)
    error: str = ""

    @property
    def path(self) -> str:
        """What the origin counts this request by: its raw path."""
        return self.entry.target.partition("?")[0] or "/"


@dataclass(frozen=True)
class Measured:
    """A replay's measurement on one engine. ``rules`` excludes refused and unanswered
    requests; ``origin_total`` is every request the origin counted during the replay."""

    engine: str
    rules: dict[str, RuleMeasure]
    sent: int
    refused: int
    errors: int
    malformed: int
    origin_total: int
    seconds: float
    speed: float
    late: int
    max_lag: float
    #: requests not sent because the workers reached them only after ``max_seconds``
    dropped: int = 0
    stopped: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> RuleMeasure:
        """Every rule's requests, hits and origin requests together."""
        rules = self.rules.values()
        return RuleMeasure(sum(r.requests for r in rules), sum(r.hits for r in rules),
                           sum(r.origin for r in rules))

    def to_json(self) -> dict[str, Any]:
        """Plain data (the same per-rule shape as the prediction: requests, hits, origin)."""
        rules = {name: {"requests": r.requests, "hits": r.hits, "origin_requests": r.origin,
                        "hit_ratio": round(r.hit_ratio, 4)} for name, r in self.rules.items()}
        return {"engine": self.engine, "rules": rules, "sent": self.sent, "refused": self.refused,
                "errors": self.errors, "malformed": self.malformed,
                "origin_requests": self.origin_total, "seconds": round(self.seconds, 3),
                "speed": self.speed if math.isfinite(self.speed) else None, "late": self.late,
                "max_lag": round(self.max_lag, 3), "dropped": self.dropped, "stopped": self.stopped,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class Bounds:
    """How fast and how much: ``speed`` divides the log's gaps (``math.inf``: no gaps)."""

    speed: float = 1.0
    max_requests: int = 100_000
    max_seconds: float = 300.0
    concurrency: int = 8


@dataclass
class _Tally:
    """Counts kept while the workers send (under ``lock``)."""

    observe: Observer | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    path_rule: dict[str, str] = field(default_factory=dict)
    other: Counter[str] = field(default_factory=Counter)
    max_lag: float = 0.0
    first_error: str = ""
    #: what stopped a worker (an observer's exception): raised again once every worker is done
    failure: BaseException | None = None

    def drop(self) -> None:
        """A request not sent: its time came after the deadline (the workers fell behind)."""
        with self.lock:
            self.other["dropped"] += 1

    def add(self, sent: Sent) -> None:
        with self.lock:
            self.max_lag = max(self.max_lag, sent.lag)
            self.other["late"] += sent.lag > LATE
            if sent.status is None or sent.status == 400:
                self.other["errors" if sent.status is None else "refused"] += 1
                self.first_error = self.first_error or sent.error
            else:
                self.rules[sent.rule] += 1
                self.hits[sent.rule] += sent.outcome in ("hit", "stale")
                self.path_rule.setdefault(sent.path, sent.rule)
            if self.observe is not None:
                self.observe(sent)


class _Sender:
    """One keep-alive connection to the engine, reopened after a failure."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.conn: http.client.HTTPConnection | None = None

    def send(self, entry: Entry, lag: float) -> Sent:
        request = entry.request(self.target.host)
        try:
            response, rid = self._exchange(entry.method, request.target, request.http_headers())
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: unsendable
            self.close()
            return Sent(entry, None, "error", "", lag, f"line {entry.line}: {type(exc).__name__}: {exc}")
        status = parse_cache_status(response.getheader("Cache-Status"), self.target.cache_name)
        outcome = status.outcome if status.raw else self.target.seen(rid)
        rule = status.detail or select_rule(self.target.policy, request).name
        return Sent(entry, response.status, outcome, rule, lag)

    def _exchange(self, method: str, target: str,
                  headers: tuple[tuple[str, str], ...]) -> tuple[http.client.HTTPResponse, str | None]:
        if self.conn is None:
            self.conn = self.target.connect()
        self.conn.request(method, target, headers=dict(headers))
        response = self.conn.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return response, response.getheader("X-Response-Id")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Target:
    """One engine of a running stack, as the replay reaches it."""

    endpoint: Endpoint
    policy: Policy
    ca_file: Path | None = None
    ids: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return request_host(self.policy)

    @property
    def cache_name(self) -> str:
        return self.policy.headers.cache_status_name

    @property
    def scheme(self) -> str:
        """https when plain HTTP only redirects (or is not served), else http."""
        listen = self.policy.listen
        return "https" if listen.https and (listen.http is None or listen.https.redirect_http) else "http"

    def seen(self, response_id: str | None) -> str:
        """Without Cache-Status: "hit" for a response the origin made earlier, else "miss"."""
        with self.lock:
            known = response_id is None or response_id in self.ids
            if response_id is not None:
                self.ids.add(response_id)
        return "hit" if known else "miss"

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "http":
            return http.client.HTTPConnection(self.endpoint.host, self.endpoint.http_port, timeout=TIMEOUT)
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.check_hostname = False
        return _Tls(self.endpoint.host, self.endpoint.https_port, self.host, context)


class _Tls(http.client.HTTPSConnection):
    """HTTPS to a loopback address with the SNI name of the policy's host."""

    def __init__(self, host: str, port: int | None, server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=TIMEOUT, context=context)
        self._server_name = server_name
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)


def drive(stack: Stack, engine: str, policy: Policy, entries: Iterable[Entry | Malformed], *,
          speed: float = 1.0, max_requests: int = 100_000, max_seconds: float = 300.0,
          concurrency: int = 8, observe: Observer | None = None) -> Measured:
    """Replay ``entries`` through ``engine`` of ``stack`` (running ``policy``) and measure it;
    ``observe`` is called with every ``Sent`` (from the sending threads, one at a time)."""
    from ..origin import OriginClient

    bounds = Bounds(speed, max_requests, max_seconds, max(1, concurrency))
    target = Target(stack.endpoints[engine], policy, stack.ca_file)
    tally = _Tally(observe)
    with OriginClient(stack.origin.control_url, timeout=60.0) as origin:
        origin.reset_counts()
        started = time.monotonic()
        malformed, stopped = _dispatch(target, entries, bounds, tally)
        seconds = time.monotonic() - started
        if tally.failure is not None:
            raise tally.failure
        counts = origin.counts()
    rules = {name: RuleMeasure(n, tally.hits[name]) for name, n in tally.rules.items()}
    for path, count in counts.paths.items():
        if "?" in path:  # a marked unit, also counted under its path
            continue
        name = tally.path_rule.get(path, UNSENT)
        old = rules.get(name, RuleMeasure())
        rules[name] = replace(old, origin=old.origin + count)
    sent = sum(tally.rules.values()) + tally.other["refused"] + tally.other["errors"]
    return Measured(engine, dict(sorted(rules.items())), sent, tally.other["refused"],
                    tally.other["errors"], malformed, counts.total, seconds, speed,
                    tally.other["late"], tally.max_lag, tally.other["dropped"], stopped,
                    _pace_note(tally.other["late"], sent, tally.max_lag) + _error_note(tally))


def _error_note(tally: _Tally) -> tuple[str, ...]:
    errors = tally.other["errors"]
    return (f"{errors} requests got no answer; the first: {tally.first_error}",) if errors else ()


def _pace_note(late: int, sent: int, max_lag: float) -> tuple[str, ...]:
    """A note when more than 1% of the requests went out late: the engine (or this machine)
    did not keep the pace, and the gaps that decide TTL expiry were not the log's."""
    if late * 100 <= sent:
        return ()
    return (f"{late} of {sent} requests went out more than {LATE:g} s late (at most {max_lag:.1f} s): "
            "the pace was not kept, so expiry-dependent results are approximate; lower the speed",)


def _dispatch(target: Target, entries: Iterable[Entry | Malformed], bounds: Bounds,
              tally: _Tally) -> tuple[int, str | None]:
    """Hand entries to the workers at their times; returns the malformed count and why the
    replay stopped early (None: the entries ran out)."""
    queues: list[queue.Queue[tuple[Entry, float] | None]] = [
        queue.Queue(BACKLOG) for _ in range(bounds.concurrency)]
    start = time.monotonic()
    deadline = start + bounds.max_seconds
    workers = [threading.Thread(target=_work, args=(target, q, tally, deadline), daemon=True)
               for q in queues]
    for worker in workers:
        worker.start()
    malformed, handed, stopped = 0, 0, None
    try:
        for entry, due in _schedule(entries, bounds, start):
            if entry is None:
                malformed += 1
            elif due > deadline or handed >= bounds.max_requests:
                stopped = _why(due > deadline, bounds)
                break
            else:
                key = f"{entry.host} {entry.target}".encode()
                queues[zlib.crc32(key) % len(queues)].put((entry, due))
                handed += 1
    finally:
        for q in queues:
            q.put(None)
        for worker in workers:
            worker.join()
    return malformed, stopped


def _why(late: bool, bounds: Bounds) -> str:
    return f"max_seconds reached ({bounds.max_seconds:g} s)" if late else "max_requests reached"


def _schedule(entries: Iterable[Entry | Malformed], bounds: Bounds,
              start: float) -> Iterator[tuple[Entry | None, float]]:
    """Each entry with the monotonic time it is due (a Malformed as None)."""
    first: float | None = None
    for entry in entries:
        if isinstance(entry, Malformed):
            yield None, start
            continue
        if entry.time is None or not math.isfinite(bounds.speed):
            yield entry, start
            continue
        first = entry.time if first is None else first
        yield entry, start + max(0.0, entry.time - first) / bounds.speed


def _work(target: Target, jobs: queue.Queue[tuple[Entry, float] | None], tally: _Tally,
          deadline: float) -> None:
    """One connection's requests, each at its time; those left at the deadline are dropped."""
    sender = _Sender(target)
    try:
        while (job := jobs.get()) is not None:
            entry, due = job
            now = time.monotonic()
            if tally.failure is not None:
                continue  # keep taking jobs, so that the dispatcher never waits on a full queue
            if now < due:
                time.sleep(due - now)
            elif now > deadline:
                tally.drop()
                continue
            try:
                tally.add(sender.send(entry, max(0.0, time.monotonic() - due)))
            except Exception as exc:  # the observer's: the replay stops and drive raises it
                tally.failure = exc
    finally:
        sender.close()


def measure(policy_file: Path, entries: Callable[[], Iterable[Entry | Malformed]], engine: str, *,
            runtime: str = "local", speed: float = 1.0, max_requests: int = 100_000,
            max_seconds: float = 300.0, concurrency: int = 8) -> list[Measured]:
    """``replay POLICY LOG --engine nginx|varnish|both``: for each engine, start a stack for
    the policy (its timers scaled by ``speed``), replay ``entries()`` (a fresh stream per
    engine) and stop it. A stack of its own per engine: a cold cache and the origin's counts
    for that engine alone."""
    from cachewright.generator.load import load

    policy = load(policy_file)
    scaled, notes = time_scaled(policy, speed)
    out = []
    for name in ("nginx", "varnish") if engine == "both" else (engine,):
        with _runtime(runtime).start(scaled, (name,)) as stack:
            measured = drive(stack, name, scaled, entries(), speed=speed, max_requests=max_requests,
                             max_seconds=max_seconds, concurrency=concurrency)
        out.append(replace(measured, notes=notes + measured.notes))
    return out


def _runtime(name: str) -> Any:
    """The runtime called ``name`` (local processes or Docker, default settings)."""
    if name == "docker":
        from ..runtime.docker import DockerRuntime

        return DockerRuntime()
    from ..runtime.local import LocalRuntime

    return LocalRuntime()


def fitting_speed(span: float, max_seconds: float) -> float:
    """The lowest speed (at least 1) at which a log spanning ``span`` seconds is replayed in
    nine tenths of ``max_seconds`` (the rest is room for falling behind)."""
    return max(1.0, span / (0.9 * max_seconds))


def time_scaled(policy: Policy, speed: float) -> tuple[Policy, tuple[str, ...]]:
    """``policy`` with its timers divided by ``speed`` (whole seconds, at least 1), and a note
    for each timer scaled below ``MIN_SCALED`` seconds or rounded by more than a tenth."""
    if speed == 1.0 or not math.isfinite(speed):
        return policy, ()
    notes: list[str] = []

    def scale(seconds: int, what: str) -> int:
        if seconds <= 0:
            return seconds
        exact = seconds / speed
        scaled = max(1, round(exact))
        if exact < MIN_SCALED or abs(scaled - exact) > exact / 10:
            notes.append(f"{what}: {seconds}s at speed {speed:g} is {exact:.2f}s, run as {scaled}s "
                         f"(the engines count whole seconds): results for it are approximate; "
                         f"a speed of at most {seconds / MIN_SCALED:g} keeps it")
        return scaled

    cache = policy.cache
    stale = replace(cache.stale, while_revalidate=scale(cache.stale.while_revalidate, "cache.stale.while_revalidate"),
                    if_error=scale(cache.stale.if_error, "cache.stale.if_error"))
    cache = replace(cache, default_ttl=scale(cache.default_ttl, "cache.default_ttl"), stale=stale,
                    status_ttl=tuple((code, scale(t, f"cache.status_ttl.{code}")) for code, t in cache.status_ttl))
    rules = tuple(replace(r, ttl=None if r.ttl is None else scale(r.ttl, f"rules.{r.name}.ttl"))
                  for r in policy.rules)
    default = policy.default_rule
    if default.ttl is not None:
        default = replace(default, ttl=scale(default.ttl, "cache.default_ttl"))
    return replace(policy, cache=cache, rules=rules, default_rule=default), tuple(dict.fromkeys(notes))
