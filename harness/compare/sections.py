"""The rows of a ``cachewright compare`` report, shared by its renderers (``harness.compare.text``
for a terminal, ``harness.compare.page`` for one self-contained HTML page).

Both read a ``CompareReport`` (``harness.compare.records``). Any section or value may be missing
where a measurement was not possible (None, or a ``Skipped`` / ``NotMeasured`` record); it is
then shown as "n/a". The engines shown are those of ``performance`` and ``correctness``, nginx
and Varnish first. The sections are plain data with every decision made here; the renderers only
lay them out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .figures import (
    EngineResult,
    HitRun,
    Interval,
    Latency,
    NotMeasured,
    OffloadResult,
    OffloadRun,
    OriginDown,
    Skipped,
    SlowOrigin,
)
from .records import Capability, CompareReport, Correctness, Failure, Target
from .targets import THROUGHPUT_TARGET, ratio_text, throughput_status

NA: Final = "n/a"

Tone = Literal["good", "bad", "warn"]
# A table cell: plain text, or text with a tone (colour in a terminal, a CSS class in HTML).
Cell = str | tuple[str, Tone]

_CAPABILITY_TONE: Final[Mapping[str, Tone]] = {"native": "good", "unsupported": "warn"}
_OUTCOMES: Final = ("passed", "failed", "unsupported", "skipped")


@dataclass(frozen=True)
class Table:
    """A table both renderers lay out: a header row and rows of cells (same length)."""

    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Section:
    """One titled part of the report: an optional table, then lines (failures, verdicts)."""

    title: str
    table: Table | None
    lines: tuple[Cell, ...] = ()


# --------------------------------------------------------------------------- formatting values


def text(value: object) -> str:
    return NA if value is None or value == "" else str(value)


def fmt(value: float | None, shown: Callable[[float], str]) -> str:
    return NA if value is None else shown(value)


def rate(v: float) -> str:
    return f"{v:,.0f}"


def _ms(v: float) -> str:
    return f"{v:.2f}"


def count(v: float) -> str:
    return f"{v:.0f}"


def share(v: float) -> str:
    return f"{v * 100:.1f}%"


def _points(v: float) -> str:
    return f"{v:.2f}"


def _mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


def _kib(value: float) -> str:
    return f"{value / 1024:,.0f} KiB"


def measured(entry: object) -> EngineResult:
    """An engine's measurements; an empty record (every figure n/a) where it has none."""
    return entry if isinstance(entry, EngineResult) else _NOTHING


_NOTHING: Final = EngineResult.from_json({})


# --------------------------------------------------------------------------- the header


def header_facts(report: CompareReport) -> list[tuple[str, str]]:
    """The report's header as (label, value) pairs: policy, runtime, load, machine."""
    policy, settings = report.policy, report.settings
    name, file = (policy.name, policy.file) if policy else (None, None)
    duration = fmt(settings.duration_s if settings else None, lambda v: f"{v:g} s")
    return [("policy", f"{text(name)} ({text(file)})"), ("runtime", text(report.runtime)),
            ("load tool", text(settings.load_tool if settings else None)),
            ("concurrency", fmt(settings.concurrency if settings else None, count)),
            ("duration", duration), ("machine", _machine(report)),
            ("generated at", text(report.generated_at))]


def _machine(report: CompareReport) -> str:
    machine = report.machine
    if machine is None:
        return f"{NA}, {NA}; {NA}"
    cpus = fmt(machine.cpus, lambda v: f"{v:.0f} CPUs")
    engine_list = ", ".join(f"{name} {text(version)}" for name, version in machine.engines.items()) or NA
    return f"{cpus}, {text(machine.platform)}; {engine_list}"


def sections(report: CompareReport) -> list[Section]:
    """The report's body, in order: capabilities, correctness, RFC conformance, performance,
    origin offload, verdict."""
    names = report.engines()
    return [_capabilities(report), _correctness(report, names), _conformance(report, names),
            _performance(report, names), _offload(report, names), _verdict(report)]


# --------------------------------------------------------------------------- capabilities, checks


def _capabilities(report: CompareReport) -> Section:
    if not report.capabilities:
        return Section("Capabilities", None, (NA,))
    rows = tuple((text(f.feature), _support(f, "nginx"), _support(f, "varnish"),
                  text(f.alternative) if f.alternative else "-") for f in report.capabilities)
    return Section("Capabilities", Table(("feature", "nginx", "varnish", "alternative"), rows))


def _support(feature: Capability, engine: str) -> Cell:
    level = text(feature.level(engine))
    how = feature.how.get(engine)
    shown = f"{level}: {how}" if level == "module" and how else level  # as `cachewright capabilities`
    tone = _CAPABILITY_TONE.get(level)
    return (shown, tone) if tone else shown


def _correctness(report: CompareReport, names: Sequence[str]) -> Section:
    correctness = report.correctness
    if not correctness:
        return Section("Correctness", None, (NA,))
    rows = tuple((name, *_outcome_counts(correctness.get(name))) for name in names)
    failures = tuple(_failure_line(name, failure) for name in names
                     for failure in _failures(correctness.get(name)))
    return Section("Correctness", Table(("engine", *_OUTCOMES), rows), failures)


def _failures(summary: Correctness | None) -> tuple[Failure, ...]:
    return summary.failures if summary else ()


def _outcome_counts(summary: Correctness | None) -> list[Cell]:
    if summary is None:
        return [NA] * len(_OUTCOMES)
    cells: list[Cell] = [fmt(n, count) for n in (summary.passed, summary.failed, summary.unsupported,
                                                  summary.skipped)]
    if summary.failed is not None:
        cells[1] = (count(summary.failed), "bad" if summary.failed else "good")
    return cells


def _failure_line(engine: str, failure: Failure) -> Cell:
    return (f"FAIL {text(failure.check)} [{engine}]: {text(failure.message)}", "bad")


def _conformance(report: CompareReport, names: Sequence[str]) -> Section:
    """The rfc family per engine: passed, failed, engine limits (with their capabilities)."""
    found = report.conformance
    title = "RFC 9111 conformance (docs/rfc.md)"
    if not found:
        return Section(title, None, (NA,))
    rows: list[tuple[Cell, ...]] = []
    for name in names:
        entry = found.get(name)
        if entry is None:
            rows.append((name, NA, NA, NA, "—"))
            continue
        limits = sorted({text(item.capability) for item in entry.limits})
        verdict: Cell = (count(entry.failed), "bad" if entry.failed else "good") if entry.failed is not None else NA
        rows.append((name, fmt(entry.passed, count), verdict, fmt(entry.engine_limit, count),
                     ", ".join(limits) or "—"))
    failures = tuple(f"{name}: {check}" for name in names if (entry := found.get(name)) is not None
                     for section in entry.sections.values() for check in section.get("failed", ()))
    return Section(title, Table(("engine", "passed", "failed", "engine limits", "capabilities"),
                                tuple(rows)), failures)


# --------------------------------------------------------------------------- performance


@dataclass(frozen=True)
class Metric:
    """One performance row: a label, and how to find its value in an engine's measurements."""

    label: str
    value: Callable[[EngineResult], float | None]
    shown: Callable[[float], str]


def _slow(e: EngineResult) -> SlowOrigin | None:
    return e.slow_origin if isinstance(e.slow_origin, SlowOrigin) else None


def _down(e: EngineResult) -> OriginDown | None:
    return e.origin_down if isinstance(e.origin_down, OriginDown) else None


def _latency(run: HitRun | None) -> Latency:
    return run.latency_ms if run and run.latency_ms else Latency.from_json({})


METRICS: Final = (
    Metric("cached hit throughput (req/s)", lambda e: e.hit.rps if e.hit else None, rate),
    Metric("baseline hit throughput (req/s)", lambda e: e.baseline_hit.rps if e.baseline_hit else None, rate),
    Metric("engine CPU per hit (µs)", lambda e: e.cpu_us_per_hit.generated if e.cpu_us_per_hit else None, _points),
    Metric("baseline engine CPU per hit (µs)",
           lambda e: e.cpu_us_per_hit.baseline if e.cpu_us_per_hit else None, _points),
    Metric("  of which user space (µs)",
           lambda e: e.user_cpu_us_per_hit.generated if e.user_cpu_us_per_hit else None, _points),
    Metric("  baseline user space (µs)",
           lambda e: e.user_cpu_us_per_hit.baseline if e.user_cpu_us_per_hit else None, _points),
    Metric("cached hit latency p50 (ms)", lambda e: _latency(e.hit).p50, _ms),
    Metric("cached hit latency p99 (ms)", lambda e: _latency(e.hit).p99, _ms),
    Metric("baseline hit latency p99 (ms)", lambda e: _latency(e.baseline_hit).p99, _ms),
    Metric("load errors", lambda e: e.hit.errors if e.hit else None, count),
    Metric("cold miss p50 (ms)", lambda e: e.cold_miss.p50_ms if e.cold_miss else None, _ms),
    Metric("cold miss p99 (ms)", lambda e: e.cold_miss.p99_ms if e.cold_miss else None, _ms),
    Metric("herd: origin requests (ideal 1)", lambda e: e.herd.origin_requests if e.herd else None, count),
    Metric("slow origin: p50 (ms)", lambda e: s.p50_ms if (s := _slow(e)) else None, _ms),
    Metric("slow origin: p99 (ms)", lambda e: s.p99_ms if (s := _slow(e)) else None, _ms),
    Metric("slow origin: origin requests", lambda e: s.origin_requests if (s := _slow(e)) else None, count),
    Metric("origin down: stale share", lambda e: d.share if (d := _down(e)) else None, share),
    Metric("zipf hit ratio", lambda e: e.zipf.hit_ratio if e.zipf else None, share),
    Metric("zipf ideal hit ratio", lambda e: e.zipf.ideal if e.zipf else None, share),
    Metric("zipf gap (points)", lambda e: e.zipf.gap_points if e.zipf else None, _points),
    Metric("resident memory", lambda e: e.rss_kb, _mib),
)


def _performance(report: CompareReport, names: Sequence[str]) -> Section:
    if not report.performance:
        return Section("Performance", None, (NA,))
    engines = [measured(report.performance.get(name)) for name in names]
    rows = [(m.label, *(fmt(m.value(e), m.shown) for e in engines)) for m in METRICS]
    ratio = (f"throughput generated/baseline (target {THROUGHPUT_TARGET})", *(_ratio_cell(e) for e in engines))
    interval = ("confidence interval of that median", *(_interval(e.throughput_ratio_interval) for e in engines))
    return Section("Performance", Table(("metric", *names), (*rows[:2], ratio, interval, *rows[2:])))


def _interval(value: Interval | None) -> Cell:
    """``low-high (confidence)``; n/a with too few rounds for one."""
    if value is None or value.low is None or value.high is None or value.confidence is None:
        return NA
    return f"{ratio_text(value.low)}-{ratio_text(value.high)} ({value.confidence:.0%})"


#: how a target's status reads: its mark and tone
_MARKS: Final[Mapping[str, tuple[str, Tone]]] = {
    "met": ("PASS", "good"), "missed": ("FAIL", "bad"), "inconclusive": ("INCONCLUSIVE", "warn")}


def _ratio_cell(figures: EngineResult) -> Cell:
    """The median ratio and its mark, judged on its interval where there is one."""
    ratio = figures.throughput_ratio
    if ratio is None:
        return NA
    interval = figures.throughput_ratio_interval
    low, high = (interval.low, interval.high) if interval else (None, None)
    mark, tone = _MARKS[throughput_status(ratio, low, high)]
    return (f"{ratio_text(ratio)} {mark}", tone)


# --------------------------------------------------------------------------- origin offload

#: the offload run's configs, as the report names them and as the table shows them
_OFFLOAD_VARIANTS: Final = (("generated", "generated"), ("baseline", "baseline"),
                            ("no_revalidation", "no revalidation"))


def _offload(report: CompareReport, names: Sequence[str]) -> Section:
    """Per engine and config: what reached the origin while entries expired, and the body bytes
    revalidation saved against the generated config without it."""
    if not report.offload:
        return Section("Origin offload", None, (NA,))
    found = {name: report.offload_result(name) for name in names}
    rows = tuple(_offload_row(name, key, label, result) for name, result in found.items()
                 if result is not None and result.variants for key, label in _OFFLOAD_VARIANTS)
    lines = [_offload_setup(report)] + [line for name in names for line in _offload_notes(name, report)]
    header = ("engine", "config", "origin requests", "200", "304", "304 share", "origin body bytes",
              "saved vs no revalidation", "client requests")
    return Section("Origin offload", Table(header, rows) if rows else None, tuple(lines))


def _offload_row(engine: str, key: str, label: str, figures: OffloadResult) -> tuple[Cell, ...]:
    run = figures.variants.get(key) or OffloadRun.from_json({})
    return (engine, label, *(fmt(n, count) for n in (run.origin_requests, run.origin_200, run.origin_304)),
            fmt(run.share_304, share), fmt(run.origin_body_bytes, _kib), _saved(figures, key),
            fmt(run.client_requests, count))


def _saved(figures: OffloadResult, key: str) -> str:
    """Body bytes saved against no revalidation, with the share of its bytes ("-" for itself)."""
    saved = figures.saved_bytes.get(key)
    if key == "no_revalidation":
        return "-"
    if saved is None:
        return NA
    part = figures.saved_share.get(key)
    return _kib(saved) + (f" ({part:.0%})" if part is not None else "")


def _offload_setup(report: CompareReport) -> Cell:
    s = report.settings.offload if report.settings else None
    values = (s.urls, s.concurrency, s.duration_s, s.body_size, s.max_age_s) if s else (None,) * 5
    urls, conns, secs, size, age = (fmt(v, lambda v: f"{v:g}") for v in values)
    return (f"{urls} URLs answered with a {size}-byte body, ETag, Last-Modified and max-age={age}, each "
            f"stored once, then {conns} connections over them for {secs} s; counted in the origin's "
            "request log and its body byte counter (a 304 has no body). Saved: what the config's "
            "origin requests would have cost at the no-revalidation run's body bytes per request, "
            "less what they cost.")


def _offload_notes(engine: str, report: CompareReport) -> list[Cell]:
    """Why an engine was not measured; else what its no-revalidation config is, and whether the
    generated config revalidates on its own."""
    entry = (report.offload or {}).get(engine)
    if isinstance(entry, Skipped | NotMeasured):
        reason = entry.skipped if isinstance(entry, Skipped) else entry.error
        return [(f"{engine}: not measured: {text(reason)}", "warn")]
    if entry is None or not entry.variants:
        return []
    says = "has" if entry.generated_revalidates else "does not have"
    directive = "proxy_cache_revalidate" if engine == "nginx" else "a beresp.keep above 0"
    return [f"{engine}: no revalidation = {text(entry.no_revalidation_is)}; the generated "
            f"config {says} {directive} (rule '{text(entry.rule)}')."]


# --------------------------------------------------------------------------- verdict


def _verdict(report: CompareReport) -> Section:
    targets = [_target_line(t) for t in report.targets]
    verdicts: list[Cell] = [text(v) for v in report.verdict]
    return Section("Verdict", None, tuple(targets + verdicts) or (NA,))


def _target_line(target: Target) -> Cell:
    met = target.met
    status = target.status or ("met" if met is True else "missed" if met is False else None)
    mark, tone = _MARKS.get(status, (NA, "warn")) if status is not None else (NA, "warn")
    value = fmt(target.value, lambda v: f"{v:g}")
    low, high = (target.interval.low, target.interval.high) if target.interval else (None, None)
    span = f", interval {ratio_text(low)}-{ratio_text(high)}" if low is not None and high is not None else ""
    return (f"{mark} {text(target.name)} [{text(target.engine)}]: {value}{span} "
            f"(target {text(target.target)})", tone)
