"""What ``compare`` measured on one engine, as frozen records (the report's ``performance`` and
``offload`` sections; ``harness.compare.records`` holds the rest).

Each record's fields are its JSON keys in order (``harness.compare.reading``). A measurement
that could not be made as designed is a ``Skipped`` (the policy gives it nothing to measure) or,
for a whole engine, a ``NotMeasured`` (the error that stopped it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .loadspec import LoadResult
from .reading import Record, counts, flag, number, numbers, pairs, read, record, table, text


@dataclass(frozen=True, kw_only=True)
class Skipped(Record):
    """A measurement the policy gives nothing to measure, and why."""

    skipped: str | None = read(text)


@dataclass(frozen=True, kw_only=True)
class NotMeasured(Record):
    """An engine (or its offload) not measured: the error that stopped it."""

    error: str | None = read(text)


@dataclass(frozen=True, kw_only=True)
class Latency(Record):
    mean: float | None = read(number)
    p50: float | None = read(number)
    p90: float | None = read(number)
    p99: float | None = read(number)
    max: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class HitRun(Record):
    """One cached-hit load run (``LoadResult``'s figures), what reached the origin meanwhile
    (0: every response was a hit) and the engine's CPU time per request."""

    tool: str | None = read(text)
    requests: float | None = read(number)
    errors: float | None = read(number)
    status_errors: float | None = read(number)
    statuses: Mapping[str, float] = read(counts)
    duration_s: float | None = read(number)
    rps: float | None = read(number)
    latency_ms: Latency | None = read(record(Latency))
    latency_cdf: tuple[tuple[float, float], ...] = read(pairs)
    path: str | None = read(text)
    origin_requests: float | None = read(number)
    cpu_us_per_request: float | None = read(number)
    user_us_per_request: float | None = read(number)

    @classmethod
    def from_load(cls, result: LoadResult, *, path: str, origin_requests: int, cpu_us_per_request: float | None,
                  user_us_per_request: float | None) -> HitRun:
        """``result`` of a load on ``path``, with what it cost the origin and the engine."""
        ms = result.latency_ms
        return cls(tool=result.tool, requests=result.requests, errors=result.errors,
                   status_errors=result.status_errors, statuses=result.to_json()["statuses"],
                   duration_s=result.duration_s, rps=result.rps,
                   latency_ms=Latency(mean=ms["mean"], p50=ms["p50"], p90=ms["p90"], p99=ms["p99"], max=ms["max"]),
                   latency_cdf=tuple(result.latency_cdf), path=path, origin_requests=origin_requests,
                   cpu_us_per_request=cpu_us_per_request, user_us_per_request=user_us_per_request)


@dataclass(frozen=True, kw_only=True)
class ColdMiss(Record):
    samples: float | None = read(number)
    errors: float | None = read(number)
    p50_ms: float | None = read(number)
    p99_ms: float | None = read(number)
    max_ms: float | None = read(number)
    origin_requests: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class Herd(Record):
    concurrent: float | None = read(number)
    origin_requests: float | None = read(number)
    ideal: float | None = read(number)
    collapse_requests: bool | None = read(flag)
    statuses: Mapping[str, float] = read(counts)
    errors: float | None = read(number)
    p50_ms: float | None = read(number)
    max_ms: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class SlowOrigin(Record):
    origin_delay_s: float | None = read(number)
    window_s: float | None = read(number)
    requests: float | None = read(number)
    errors: float | None = read(number)
    statuses: Mapping[str, float] = read(counts)
    p50_ms: float | None = read(number)
    p99_ms: float | None = read(number)
    max_ms: float | None = read(number)
    hit_p50_ms: float | None = read(number)
    origin_requests: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class OriginDown(Record):
    requests: float | None = read(number)
    stale: float | None = read(number)
    share: float | None = read(number)
    window_s: float | None = read(number)
    statuses: Mapping[str, float] = read(counts)
    errors: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class Zipf(Record):
    requests: float | None = read(number)
    errors: float | None = read(number)
    distinct_keys: float | None = read(number)
    origin_requests: float | None = read(number)
    hit_ratio: float | None = read(number)
    ideal: float | None = read(number)
    gap_points: float | None = read(number)
    rps: float | None = read(number)
    timeline: tuple[tuple[float, float], ...] = read(pairs)


@dataclass(frozen=True, kw_only=True)
class Interval(Record):
    """A confidence interval for a median (``harness.compare.run.median_interval``)."""

    low: float | None = read(number)
    high: float | None = read(number)
    confidence: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class PerConfig(Record):
    """A figure of the generated config and of the baseline."""

    generated: float | None = read(number)
    baseline: float | None = read(number)


S = TypeVar("S", SlowOrigin, OriginDown)


def _or_skipped(kind: type[S]) -> Callable[[object], S | Skipped | None]:
    def reader(value: object) -> S | Skipped | None:
        if isinstance(value, Mapping) and "skipped" in value:
            return Skipped.from_json(value)
        return record(kind)(value)
    return reader


@dataclass(frozen=True, kw_only=True)
class EngineResult(Record):
    """Every measurement of one engine (``harness.compare.run.measure_engine``)."""

    hit: HitRun | None = read(record(HitRun))
    hit_rounds: tuple[float, ...] = read(numbers)
    baseline_hit: HitRun | None = read(record(HitRun))
    baseline_rounds: tuple[float, ...] = read(numbers)
    round_ratios: tuple[float, ...] = read(numbers)
    throughput_ratio: float | None = read(number)
    throughput_ratio_interval: Interval | None = read(record(Interval))
    cpu_us_per_hit: PerConfig | None = read(record(PerConfig))
    user_cpu_us_per_hit: PerConfig | None = read(record(PerConfig))
    rule: str | None = read(text)
    cold_miss: ColdMiss | None = read(record(ColdMiss))
    herd: Herd | None = read(record(Herd))
    slow_origin: SlowOrigin | Skipped | None = read(_or_skipped(SlowOrigin))
    origin_down: OriginDown | Skipped | None = read(_or_skipped(OriginDown))
    zipf: Zipf | None = read(record(Zipf))
    rss_kb: float | None = read(number)


#: an engine's performance entry: measured, or the error that stopped it
Performance = EngineResult | NotMeasured


def performance(value: object) -> Performance | None:
    """An engine's performance entry read from JSON (None where it is not an object)."""
    if isinstance(value, Mapping) and "error" in value:
        return NotMeasured.from_json(value)
    return record(EngineResult)(value)


# --------------------------------------------------------------------------- origin offload


@dataclass(frozen=True, kw_only=True)
class OriginCounts(Record):
    """What the origin logged during an offload load: requests, its 200 and 304 answers."""

    origin_requests: float | None = read(number)
    origin_200: float | None = read(number)
    origin_304: float | None = read(number)
    origin_other: float | None = read(number)
    share_304: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class OffloadRun(Record):
    """One config's offload run: what the client got, what reached the origin (the fields of
    ``OriginCounts``) and the response body bytes the origin sent."""

    client_requests: float | None = read(number)
    client_errors: float | None = read(number)
    client_statuses: Mapping[str, float] = read(counts)
    origin_requests: float | None = read(number)
    origin_200: float | None = read(number)
    origin_304: float | None = read(number)
    origin_other: float | None = read(number)
    share_304: float | None = read(number)
    origin_body_bytes: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class OffloadResult(Record):
    """One engine's offload section (``harness.compare.offload.offload_result``)."""

    rule: str | None = read(text)
    generated_revalidates: bool | None = read(flag)
    no_revalidation_is: str | None = read(text)
    variants: Mapping[str, OffloadRun | None] = read(table(record(OffloadRun)))
    saved_bytes: Mapping[str, float | None] = read(table(number))
    saved_share: Mapping[str, float | None] = read(table(number))


#: an engine's offload entry: measured, skipped (no rule to measure it on) or not measured
Offload = OffloadResult | Skipped | NotMeasured


def offload(value: object) -> Offload | None:
    """An engine's offload entry read from JSON (None where it is not an object)."""
    if isinstance(value, Mapping) and value.get("skipped"):
        return Skipped.from_json(value)
    if isinstance(value, Mapping) and value.get("error"):
        return NotMeasured.from_json(value)
    return record(OffloadResult)(value)
