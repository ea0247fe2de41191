"""The ``cachewright compare`` report as frozen records: ``CompareReport`` and its sections.

``compare`` (``harness.compare.run``) builds one; ``CompareReport.to_json()`` is the JSON that
``--json`` writes (format ``cachewright-compare``, ``version`` 1), and ``from_json`` reads such a
file back for the renderers (``harness.compare.text``, ``harness.compare.page``), which read
attributes, never dict keys. The per-engine measurements are in ``harness.compare.figures``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..engines import ENGINES
from .figures import Offload, OffloadResult, Performance, offload, performance
from .reading import Reader, Record, flag, number, read, record, records, table, text, texts
from .settings import OffloadSettings, Settings

FORMAT: Final = "cachewright-compare"
FORMAT_VERSION: Final = 1


@dataclass(frozen=True, kw_only=True)
class PolicyRef(Record):
    name: str | None = read(text)
    file: str | None = read(text)


@dataclass(frozen=True, kw_only=True)
class Machine(Record):
    """Where the figures were measured: CPUs, platform, the local engines' versions."""

    cpus: float | None = read(number)
    platform: str | None = read(text)
    python: str | None = read(text)
    engines: Mapping[str, str | None] = read(table(text))


@dataclass(frozen=True, kw_only=True)
class OffloadShown(Record):
    """The offload run's settings (``harness.compare.offload.OffloadSettings``) as reported."""

    urls: float | None = read(number)
    concurrency: float | None = read(number)
    duration_s: float | None = read(number)
    body_size: float | None = read(number)
    max_age_s: float | None = read(number)


@dataclass(frozen=True, kw_only=True)
class ReportSettings(Record):
    """The measurements' settings (``harness.compare.measure.Settings``, field for field), the load
    tool and, when it ran, the offload's."""

    concurrency: float | None = read(number)
    duration_s: float | None = read(number)
    threads: float | None = read(number)
    rounds: float | None = read(number)
    cold_samples: float | None = read(number)
    herd_size: float | None = read(number)
    origin_delay_s: float | None = read(number)
    stale_duration_s: float | None = read(number)
    zipf_requests: float | None = read(number)
    zipf_keys: float | None = read(number)
    zipf_concurrency: float | None = read(number)
    body_size: float | None = read(number)
    load_tool: str | None = read(text)
    offload: OffloadShown | None = read(record(OffloadShown), omit_none=True, required=False)

    @classmethod
    def of(cls, settings: Settings, load_tool: str, offload: OffloadSettings | None = None) -> ReportSettings:
        """The measurements' ``settings``, the load tool and the offload's settings (None: not run)."""
        shown = OffloadShown(**dataclasses.asdict(offload)) if offload is not None else None
        return cls(**dataclasses.asdict(settings), load_tool=load_tool, offload=shown)


@dataclass(frozen=True, kw_only=True)
class Capability(Record):
    """A feature the policy uses: native / module / unsupported per engine, and the way out."""

    feature: str | None = read(text)
    title: str | None = read(text)
    nginx: str | None = read(text)
    varnish: str | None = read(text)
    how: Mapping[str, str | None] = read(table(text))
    alternative: str | None = read(text)
    accepted_missing: tuple[str | None, ...] = read(texts)

    def level(self, engine: str) -> str | None:
        return self.nginx if engine == "nginx" else self.varnish if engine == "varnish" else None


@dataclass(frozen=True, kw_only=True)
class Failure(Record):
    check: str | None = read(text)
    message: str | None = read(text)


@dataclass(frozen=True, kw_only=True)
class Correctness(Record):
    """One engine's checks and scenarios: counts per outcome, and the failed and unsupported ones."""

    passed: float | None = read(number)
    failed: float | None = read(number)
    unsupported: float | None = read(number)
    skipped: float | None = read(number)
    failures: tuple[Failure, ...] = read(records(Failure))
    unsupported_checks: tuple[Failure, ...] = read(records(Failure))


@dataclass(frozen=True, kw_only=True)
class Limit(Record):
    check_id: str | None = read(text)
    capability: str | None = read(text)
    how: str | None = read(text)
    alternative: str | None = read(text)


@dataclass(frozen=True, kw_only=True)
class Conformance(Record):
    """One engine's RFC 9111 report (``harness.report.conformance_of``): counts, the check ids
    per section and outcome, and the engine limits."""

    passed: float | None = read(number)
    failed: float | None = read(number)
    engine_limit: float | None = read(number)
    skipped: float | None = read(number)
    sections: Mapping[str, Mapping[str, tuple[str | None, ...]]] = read(table(table(texts)))
    limits: tuple[Limit, ...] = read(records(Limit))


@dataclass(frozen=True, kw_only=True)
class Ends(Record):
    low: float | None = read(number)
    high: float | None = read(number)


def _status(value: object) -> str | None:
    return str(value) if value else None


@dataclass(frozen=True, kw_only=True)
class Target(Record):
    """One of the issue's targets for one engine: met (True), missed (False) or not decided
    (None: not measured, or ``status`` inconclusive). Only the throughput target, judged on a
    confidence interval, has an ``interval`` key (``on_interval``)."""

    name: str | None = read(text)
    engine: str | None = read(text)
    value: float | None = read(number)
    target: float | None = read(number)
    met: bool | None = read(flag)
    status: str | None = read(_status)
    interval: Ends | None = read(record(Ends), required=False)
    on_interval: bool = False

    def to_json(self) -> dict[str, Any]:
        found = super().to_json()
        return found if self.on_interval else {k: v for k, v in found.items() if k != "interval"}

    @classmethod
    def from_json(cls, data: object) -> Target:
        read_back = super().from_json(data)
        on_interval = isinstance(data, Mapping) and "interval" in data
        return dataclasses.replace(read_back, on_interval=on_interval)


def _section(reader: Reader) -> Reader:
    """A reader of a per-engine section the run may not have made (None: no such key)."""
    return lambda value: table(reader)(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True, kw_only=True)
class CompareReport(Record):
    """The whole comparison. ``correctness`` and ``conformance`` are None when they did not run,
    ``offload`` when the origin offload was not measured (their keys are then left out)."""

    format: str | None = read(text)
    version: float | None = read(number)
    policy: PolicyRef | None = read(record(PolicyRef))
    runtime: str | None = read(text)
    generated_at: str | None = read(text)
    machine: Machine | None = read(record(Machine))
    settings: ReportSettings | None = read(record(ReportSettings))
    capabilities: tuple[Capability, ...] = read(records(Capability))
    correctness: Mapping[str, Correctness | None] | None = read(
        _section(record(Correctness)), omit_none=True, required=False)
    conformance: Mapping[str, Conformance | None] | None = read(
        _section(record(Conformance)), omit_none=True, required=False)
    performance: Mapping[str, Performance | None] = read(table(performance))
    offload: Mapping[str, Offload | None] | None = read(_section(offload), omit_none=True, required=False)
    targets: tuple[Target, ...] = read(records(Target))
    verdict: tuple[str | None, ...] = read(texts)

    def engines(self) -> list[str]:
        """The engines the report covers: nginx and Varnish first, then any other, each once."""
        found = [*self.performance, *(self.correctness or {})]
        first = [e for e in ENGINES if e in found]
        return first + list(dict.fromkeys(e for e in found if e not in first))

    def offload_result(self, engine: str) -> OffloadResult | None:
        entry = (self.offload or {}).get(engine)
        return entry if isinstance(entry, OffloadResult) else None
