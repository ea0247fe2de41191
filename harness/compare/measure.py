"""The performance half of ``cachewright compare``: what one engine does under load.

Every measurement runs on one engine of a running stack while the others are idle (the engines
take turns), uses paths of its own, and counts what reached the origin on the sample origin's
control port -- the ground truth for hits, as in the checks:

- ``hit``: cached-hit throughput and latency under a fixed concurrency (wrk when installed),
  on a request the policy caches, warmed first; the origin must see no request during the load;
- ``cold_miss``: latency of requests that each miss (one connection, distinct paths);
- ``herd``: N concurrent cold requests for one path on a slow origin -> origin requests (ideal 1);
- ``slow_origin``: latency while an expired entry is revalidated from an origin that takes
  ``origin_delay_s`` to answer (with ``stale.while_revalidate`` it stays at hit latency);
- ``origin_down``: the share of requests answered (from stale) while the origin refuses
  connections, for an expired entry inside ``stale.if_error``;
- ``zipf``: hit ratio on a Zipf-distributed request mix against the ideal for that mix
  ((requests - distinct keys) / requests), with the hit ratio over time;
- ``rss_kb``: the resident memory of the engine's processes at the end.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cachewright.generator.model import Policy, Rule

from ..checks.base import Ctx
from ..checks.defaults import cacheable_rule
from ..checks.rules import effective_ttl
from ..runtime.api import HarnessError, Stack
from ..runtime.prepare import request_host
from ..selection import Request, probe_for, select_rule
from .figures import ColdMiss, Herd, HitRun, OriginDown, Skipped, SlowOrigin, Zipf
from .load import ideal_hit_ratio, run_load, zipf_paths
from .loadspec import LoadResult, OnResponse
from .settings import Settings

#: seconds an entry with ``max-age=1`` needs to be expired on both engines
EXPIRE_WAIT_S = 2.2
#: the share of wall time the stale measurements may use of the policy's windows
WINDOW_MARGIN_S = 1.0
TIMELINE_STEP_S = 0.5
#: the origin's max-age where a measurement needs an entry to stay fresh throughout
MAX_AGE_S = 600
STORED = f"public, max-age={MAX_AGE_S}"


class MeasureError(HarnessError):
    """A measurement could not be made as designed (e.g. the engine did not store the hit path)."""


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Probe:
    """A request a rule handles, and the token in it that variants replace."""

    rule: Rule
    request: Request
    tag: str

    def variant(self, suffix: str) -> Request:
        """The same request with ``suffix`` after the tag (a distinct cache key, same rule)."""
        req = self.request
        return dataclasses.replace(req, path=req.path.replace(self.tag, self.tag + suffix),
                                   query=req.query.replace(self.tag, self.tag + suffix))

    def origin_pattern(self) -> dict[str, str]:
        """The origin rule selector covering every variant (a glob when the tag is in the path)."""
        path = self.request.path
        if self.tag not in path:
            return {"path": path}
        head, tail = path.split(self.tag, 1)
        return {"pattern": _glob_escape(head) + self.tag + "*" + _glob_escape(tail)}


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def hit_probe(ctx: Ctx) -> Probe:
    """The request the cached-hit measurements repeat (``plain_get``), checked on the engine."""
    tag = ctx.tag()
    rule, req = plain_get(ctx.policy, tag)
    return checked(ctx, Probe(rule, req, tag))


def plain_get(policy: Policy, tag: str) -> tuple[Rule, Request]:
    """The first cacheable rule a plain GET (no cookie, no Authorization) reaches, and that GET:
    what a hand-written baseline config caches too."""
    for rule in (*policy.rules, policy.default_rule):
        if not rule.cache:
            continue
        req = probe_for(policy, rule, tag=tag, host=request_host(policy))
        if req is None or req.method != "GET" or req.cookie_header:
            continue
        if any(name.lower() == "authorization" for name, _ in req.headers):
            continue
        return rule, req
    raise MeasureError("no cacheable rule that a plain GET reaches: there is no hit path to measure")


def stale_probe(ctx: Ctx) -> Probe | None:
    """A rule that respects the origin's max-age (so an entry can be made to expire), or None."""
    probe = respecting_probe(ctx)
    return checked(ctx, probe) if probe is not None else None


def respecting_probe(ctx: Ctx) -> Probe | None:
    """The probe of a cacheable rule that respects the origin's max-age, not yet ``checked``; None
    where there is no such rule or it cannot be probed."""
    rule = cacheable_rule(ctx.policy, respect=True)
    if rule is None:
        return None
    tag = ctx.tag()
    req = probe_for(ctx.policy, rule, tag=tag, host=request_host(ctx.policy))
    return Probe(rule, req, tag) if req is not None else None


def checked(ctx: Ctx, probe: Probe, suffix: str = "v1") -> Probe:
    """``probe``, once its variant ``suffix`` selects the same rule (MeasureError otherwise)."""
    if select_rule(ctx.policy, probe.variant(suffix)) != probe.rule:
        raise MeasureError(f"variants of {probe.request.target} leave rule '{probe.rule.name}'")
    return probe


# --------------------------------------------------------------------------- one engine


class Target:
    """One engine of one stack, reached through a check context (for programming the origin and
    single requests) and a load generator (for everything concurrent)."""

    def __init__(self, ctx: Ctx, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.stack: Stack = ctx.stack
        self.base = ctx.stack.endpoints[ctx.engine].url(ctx.scheme)

    def url(self, req: Request) -> str:
        return self.base + req.target

    def load(self, reqs: Sequence[Request], *, concurrency: int, duration_s: float,
             max_requests: int | None = None, prefer: Literal["wrk", "builtin"] = "builtin",
             on_response: OnResponse | None = None) -> LoadResult:
        """``reqs`` in turn (all with the first one's headers) through ``run_load``."""
        first = reqs[0]
        headers = {n: v for n, v in first.http_headers() if n.lower() != "host"}
        return run_load([self.url(r) for r in reqs], host=first.host, concurrency=concurrency,
                        duration_s=duration_s, threads=self.settings.threads, max_requests=max_requests,
                        headers=headers, ca_file=self.stack.ca_file, on_response=on_response,
                        prefer=prefer)

    def program(self, selector: Mapping[str, str], **answer: str | float) -> None:
        self.ctx.control().add_rule({**selector, **answer})  # type: ignore[typeddict-item]

    def count(self, path: str) -> int:
        return self.ctx.count(path)

    def counts(self, paths: set[str]) -> int:
        counted = self.ctx.control().counts().paths
        return sum(counted.get(p, 0) for p in paths)

    def warm(self, req: Request) -> None:
        """Store ``req`` and prove it: a second request must not reach the origin."""
        self.ctx.send(req)
        stored = self.count(req.path)
        self.ctx.send(req)
        if self.count(req.path) != stored:
            raise MeasureError(f"{self.ctx.engine} did not store {req.target} (a second request "
                               f"reached the origin)")


def hit_cache_control(policy: Policy, rule: Rule) -> str:
    """The hit path's Cache-Control: the lifetime the generated config gives the entry, so that a
    baseline following the origin stores it as long (and both engines log the same TTL and grace
    with every hit). A rule overriding the origin stores for its TTL, one respecting it for the
    origin's max-age (``MAX_AGE_S``); both keep the policy's stale windows, which the answer
    gives as stale-while-revalidate (Varnish's builtin VCL takes its grace from it)."""
    max_age = effective_ttl(policy, rule) if rule.origin_headers == "override" else MAX_AGE_S
    grace = policy.cache.stale.while_revalidate + policy.cache.stale.if_error
    return f"public, max-age={max_age}" + (f", stale-while-revalidate={grace}" if grace else "")


def store_hit(target: Target, probe: Probe) -> None:
    """Program the hit path's answer (``body_size`` bytes, the lifetime of ``hit_cache_control``),
    store it and prove it stored."""
    req = probe.request
    target.program({"path": req.path}, status=200, cache_control=hit_cache_control(target.ctx.policy, probe.rule),
                   body="filler", body_size=target.settings.body_size)
    target.warm(req)


def prepare_hit(target: Target, probe: Probe) -> None:
    """``store_hit``, then one short unrecorded run (the first run after a start is slower)."""
    store_hit(target, probe)
    s = target.settings
    target.load([probe.request], concurrency=s.concurrency, duration_s=min(1.0, s.duration_s), prefer="wrk")


def measure_hit(target: Target, probe: Probe) -> HitRun:
    """Cached-hit throughput and latency: the prepared request under ``concurrency`` connections,
    with the origin requests it caused (0: every response was a hit) and the engine's CPU time
    per request."""
    s = target.settings
    req = probe.request
    before, cpu_before = target.count(req.path), cpu_times(target.stack, target.ctx.engine)
    result = target.load([req], concurrency=s.concurrency, duration_s=s.duration_s, prefer="wrk")
    cpu = cpu_times(target.stack, target.ctx.engine)
    total = user = None
    if cpu is not None and cpu_before is not None and result.requests:
        total = (sum(cpu) - sum(cpu_before)) * 1e6 / result.requests
        user = (cpu[0] - cpu_before[0]) * 1e6 / result.requests
    return HitRun.from_load(result, path=req.target, origin_requests=target.count(req.path) - before,
                            cpu_us_per_request=total, user_us_per_request=user)


def measure_hit_latency(target: Target, probe: Probe) -> float:
    """p50 of warmed hits through the builtin client (the reference for ``slow_origin``)."""
    result = target.load([probe.request], concurrency=4, duration_s=0.5)
    return result.latency_ms["p50"]


def measure_cold_miss(target: Target, probe: Probe) -> ColdMiss:
    """Requests that each miss, one at a time on one connection."""
    s = target.settings
    reqs = [probe.variant(f"c{i}") for i in range(s.cold_samples)]
    target.program(probe.origin_pattern(), status=200, cache_control=STORED, body="filler",
                   body_size=s.body_size)
    paths = {r.path for r in reqs}
    before = target.counts(paths)
    result = target.load(reqs, concurrency=1, duration_s=30.0, max_requests=len(reqs))
    latency = result.latency_ms
    return ColdMiss(samples=result.requests, errors=result.errors, p50_ms=latency["p50"],
                    p99_ms=latency["p99"], max_ms=latency["max"], origin_requests=target.counts(paths) - before)


def measure_herd(target: Target, probe: Probe, collapse: bool) -> Herd:
    """``herd_size`` concurrent cold requests for one path on an origin that takes
    ``origin_delay_s``: how many reach it (1 when the engine collapses them)."""
    s = target.settings
    req = probe.variant("herd")
    target.program({"path": req.path}, status=200, cache_control=STORED, delay=s.origin_delay_s)
    result = target.load([req] * s.herd_size, concurrency=s.herd_size, max_requests=s.herd_size,
                         duration_s=s.origin_delay_s + 20.0)
    return Herd(concurrent=s.herd_size, origin_requests=target.count(req.path), ideal=1,
                collapse_requests=collapse, statuses=result.to_json()["statuses"], errors=result.errors,
                p50_ms=result.latency_ms["p50"], max_ms=result.latency_ms["max"])


def _expired(target: Target, req: Request, **answer: str | float) -> None:
    """Store ``req`` with ``max-age=1`` and wait until it has expired."""
    target.program({"path": req.path}, status=200, cache_control="max-age=1", **answer)
    target.warm(req)
    time.sleep(EXPIRE_WAIT_S)


def _stale_entry(target: Target, probe: Probe | None, window_s: int, suffix: str,
                 no_window: str) -> tuple[Request, float] | Skipped:
    """A fresh path with an expired entry inside a stale window of ``window_s``, and how long a
    load on it may run inside that window; or why there is none (the measurement's result)."""
    if probe is None:
        return Skipped(skipped="no cacheable rule respects the origin's max-age (an entry cannot expire)")
    if window_s <= 0:
        return Skipped(skipped=no_window)
    req = probe.variant(suffix)
    _expired(target, req)
    return req, max(0.5, min(target.settings.stale_duration_s, window_s - WINDOW_MARGIN_S))


def measure_slow_origin(target: Target, probe: Probe | None, window_s: int,
                        hit_p50_ms: float) -> SlowOrigin | Skipped:
    """Latency while an expired entry is revalidated from a slow origin."""
    s = target.settings
    entry = _stale_entry(target, probe, window_s, "slow",
                         "the policy has no stale.while_revalidate: every expired request waits")
    if isinstance(entry, Skipped):
        return entry
    req, duration = entry
    target.program({"path": req.path}, status=200, cache_control="max-age=1", delay=s.origin_delay_s)
    before = target.count(req.path)
    result = target.load([req], concurrency=4, duration_s=duration)
    latency = result.latency_ms
    return SlowOrigin(origin_delay_s=s.origin_delay_s, window_s=window_s, requests=result.requests,
                      errors=result.errors, statuses=result.to_json()["statuses"], p50_ms=latency["p50"],
                      p99_ms=latency["p99"], max_ms=latency["max"], hit_p50_ms=hit_p50_ms,
                      origin_requests=target.count(req.path) - before)


def measure_origin_down(target: Target, probe: Probe | None, window_s: int) -> OriginDown | Skipped:
    """The share of requests answered with the stored copy while the origin refuses connections."""
    entry = _stale_entry(target, probe, window_s, "down", "the policy has no stale.if_error: errors reach the client")
    if isinstance(entry, Skipped):
        return entry
    req, duration = entry
    with _origin_down(target):
        result = target.load([req], concurrency=4, duration_s=duration)
    total = result.requests + result.errors
    stale = result.statuses.get(200, 0)
    return OriginDown(requests=total, stale=stale, share=stale / total if total else None, window_s=window_s,
                      statuses=result.to_json()["statuses"], errors=result.errors)


@contextmanager
def _origin_down(target: Target) -> Iterator[None]:
    control = target.ctx.control()
    control.down()
    try:
        yield
    finally:
        control.up()


def measure_zipf(target: Target, probe: Probe) -> Zipf:
    """Hit ratio over a Zipf-distributed mix of ``zipf_keys`` keys, against the ideal."""
    s = target.settings
    ranks = zipf_paths(s.zipf_requests, s.zipf_keys, prefix="z")
    reqs = [probe.variant(rank) for rank in ranks]
    target.program(probe.origin_pattern(), status=200, cache_control=STORED, body="filler",
                   body_size=s.body_size)
    paths = {r.path for r in reqs}
    before = target.counts(paths)
    timeline = _Timeline(target)
    with timeline.running():
        result = target.load(reqs, concurrency=s.zipf_concurrency, duration_s=120.0,
                             max_requests=len(reqs), on_response=timeline.response)
    origin = target.counts(paths) - before
    ideal = ideal_hit_ratio(ranks)
    hit_ratio = 1 - origin / result.requests if result.requests else None
    return Zipf(requests=result.requests, errors=result.errors, distinct_keys=len(set(ranks)),
                origin_requests=origin, hit_ratio=hit_ratio, ideal=ideal,
                gap_points=(ideal - hit_ratio) * 100 if hit_ratio is not None else None,
                rps=result.rps, timeline=timeline.points())


class _Timeline:
    """Hit ratio per ``TIMELINE_STEP_S``: responses counted as they arrive, origin requests read
    from the origin's counter at the same moments (1 - origin requests / responses)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.responses = 0
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()

    def response(self, t: float, path: str, status: int, headers: Mapping[str, str]) -> None:
        self.responses += 1

    @contextmanager
    def running(self) -> Iterator[None]:
        control = self.target.ctx.control()
        started = time.monotonic()

        def sample() -> None:
            while True:
                self.samples.append((time.monotonic() - started, self.responses, control.counts().total))
                if self._stop.wait(TIMELINE_STEP_S):
                    break

        thread = threading.Thread(target=sample, name="cw-zipf-timeline", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()
            self.samples.append((time.monotonic() - started, self.responses, control.counts().total))

    def points(self) -> tuple[tuple[float, float], ...]:
        out = []
        for (_, r0, o0), (t1, r1, o1) in zip(self.samples, self.samples[1:], strict=False):
            if r1 > r0:
                out.append((round(t1, 2), max(0.0, min(1.0, 1 - (o1 - o0) / (r1 - r0)))))
        return tuple(out)


def rss_kb(stack: Stack, engine: str) -> int | None:
    """Resident memory of every process of ``engine`` (varnishd's manager and child, hitch;
    nginx's master, workers and cache manager), from /proc; None where the runtime has no pids."""
    total = 0
    for text in _proc_files(stack, engine, "status"):
        match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        total += int(match[1]) if match else 0
    return total if _pids(stack, engine) is not None else None


def cpu_times(stack: Stack, engine: str) -> tuple[float, float] | None:
    """CPU time (user, system) the engine's live processes have used, from /proc; None where
    the runtime has no pids. Steadier than throughput: the work per request. The policy's own
    logic runs in user time; system time is mostly the network, the same for any config."""
    user = system = 0
    for text in _proc_files(stack, engine, "stat"):
        fields = text.rsplit(")", 1)[-1].split()
        user, system = user + int(fields[11]), system + int(fields[12])  # stat fields 14, 15
    tick = os.sysconf("SC_CLK_TCK")
    return (user / tick, system / tick) if _pids(stack, engine) is not None else None


def _pids(stack: Stack, engine: str) -> list[int] | None:
    pids: Callable[[str], list[int]] | None = getattr(stack, "pids", None)
    return pids(engine) if pids is not None else None


def _proc_files(stack: Stack, engine: str, name: str) -> Iterator[str]:
    for pid in _pids(stack, engine) or []:
        try:
            yield Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue  # exited meanwhile
