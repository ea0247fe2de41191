"""``cachewright compare``: one policy on both engines -- capabilities, correctness, performance.

    report = compare(policy, "policy.yaml", runtime_for, ("nginx", "varnish"), Settings())

Two stacks run side by side, each with its own sample origin: the generated configs, and the
hand-written baselines (``harness.compare.baseline``). Correctness is ``cachewright test``'s
derived checks and scenarios on the generated stack. Then each engine in turn is measured
(``harness.compare.measure``), its cached-hit throughput alternating with its baseline's for
``rounds`` rounds. Each round measures the generated config and the baseline back to back, the
generated one first in odd rounds and second in even ones (so neither gains from going first);
the throughput ratio is the median of the rounds' ratios (on a shared machine one disturbed round
moves a best-of or a mean, not the median of pairs), reported with a distribution-free confidence
interval for that median (``median_interval``). The best round of each is kept for its latency
distribution. Last, the origin offload (``harness.compare.offload``): each engine's generated
config, its baseline and a third stack of the generated config with revalidation turned off,
under the same load on URLs that expire every second, counted by each origin (its request log
and its body byte counter).
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import statistics
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from cachewright.generator.model import Policy

from .. import checks
from ..origin import OriginClient
from ..report import conformance_of
from ..report.results import CheckResult
from ..runtime.api import HarnessError, Runtime, Stack
from ..runtime.prepare import Configs, generated
from ..scenarios import Scenario
from .baseline import baseline_configs
from .figures import (
    EngineResult,
    HitRun,
    Interval,
    NotMeasured,
    Offload,
    OffloadResult,
    PerConfig,
    Performance,
    Skipped,
)
from .judge import capability_rows, correctness_summary, targets, verdict
from .measure import (
    MeasureError,
    Probe,
    Target,
    hit_probe,
    measure_cold_miss,
    measure_herd,
    measure_hit,
    measure_hit_latency,
    measure_origin_down,
    measure_slow_origin,
    measure_zipf,
    prepare_hit,
    rss_kb,
    stale_probe,
)
from .offload import (
    VARIANTS,
    generated_revalidates,
    measure_offload,
    no_revalidation,
    offload_probe,
    offload_result,
)
from .records import FORMAT, FORMAT_VERSION, CompareReport, Conformance, Machine, PolicyRef, ReportSettings
from .settings import OffloadSettings, Settings

#: the least confidence of the interval reported around the throughput ratio
INTERVAL_CONFIDENCE = 0.90
DEFAULT_OFFLOAD = OffloadSettings()
#: a runtime for a config source (generated or baseline)
RuntimeFor = Callable[[Configs], Runtime]
#: runs the scenarios on a stack; the command passes ``cachewright test``'s own runner
ScenarioRunner = Callable[[Stack, Policy, tuple[str, ...]], list[CheckResult]]
Progress = Callable[[str], None]


def compare(policy: Policy, policy_file: str, runtime_for: RuntimeFor, engines: tuple[str, ...],
            settings: Settings, *, correctness: bool = True, scenarios: Sequence[Scenario] = (),
            run_scenarios: ScenarioRunner | None = None, progress: Progress | None = None,
            offload: OffloadSettings | None = DEFAULT_OFFLOAD, conformance: bool = True) -> CompareReport:
    """The whole comparison (``harness.compare.text`` and ``.page`` draw it); no origin offload
    section with ``offload`` None; with ``correctness`` and ``conformance``, the RFC 9111 report
    of each engine (the rfc family, when a rule respects origin headers)."""
    say = progress or (lambda _: None)
    generated_runtime = runtime_for(generated)
    report = _head(policy, policy_file, generated_runtime.name, engines, settings, offload)
    with ExitStack() as stacks:
        say("starting the generated configs and the baselines")
        stack = stacks.enter_context(generated_runtime.start(policy, engines))
        base = stacks.enter_context(runtime_for(baseline_configs).start(policy, engines))
        if correctness:
            runner = (lambda s: run_scenarios(s, policy, engines)) if run_scenarios and scenarios else None
            report = _checked(report, stack, policy, engines, runner, conformance, say)
        report = replace(report, performance=_performance(stack, base, policy, engines, settings, say))
        if offload is not None:
            say("origin offload: generated, baseline, no revalidation")
            report = replace(report, offload=offload_section(
                {"generated": stack, "baseline": base}, runtime_for(no_revalidation), policy, engines, settings,
                offload))
    report = replace(report, targets=targets(report))
    return replace(report, verdict=verdict(report))


def _head(policy: Policy, policy_file: str, runtime: str, engines: tuple[str, ...], settings: Settings,
          offload: OffloadSettings | None) -> CompareReport:
    """The report before anything ran: what, where and how it is measured."""
    return CompareReport(
        format=FORMAT, version=FORMAT_VERSION, policy=PolicyRef(name=policy.name, file=policy_file),
        runtime=runtime, generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        machine=machine(engines), settings=ReportSettings.of(settings, load_tool(), offload),
        capabilities=capability_rows(policy), performance={}, targets=(), verdict=())


def _checked(report: CompareReport, stack: Stack, policy: Policy, engines: tuple[str, ...],
             scenarios: Callable[[Stack], list[CheckResult]] | None, conformance: bool,
             say: Progress) -> CompareReport:
    """``report`` with the derived checks' and scenarios' results, and the rfc family's."""
    say("correctness: derived checks and scenarios")
    results = checks.run_checks(checks.derive(policy), stack, policy, engines)
    if scenarios is not None:
        results += scenarios(stack)
    report = replace(report, correctness={e: correctness_summary(results, e) for e in engines})
    rfc = checks.select(checks.derive(policy, conformance=True), ["rfc"]) if conformance else []
    if not rfc:
        return report
    say("conformance: the rfc family")
    found = conformance_of(checks.run_checks(rfc, stack, policy, engines))
    return replace(report, conformance={engine: Conformance.from_json(entry) for engine, entry in found.items()})


def _performance(stack: Stack, base: Stack, policy: Policy, engines: tuple[str, ...], settings: Settings,
                 say: Progress) -> dict[str, Performance]:
    """Each engine measured in turn, or the error that stopped it."""
    found: dict[str, Performance] = {}
    for engine in engines:
        say(f"performance: {engine}")
        try:
            found[engine] = measure_engine(stack, base, policy, engine, settings)
        except MeasureError as exc:  # e.g. nothing in the policy is cacheable by a plain GET
            found[engine] = NotMeasured(error=str(exc))
    return found


def measure_engine(stack: Stack, base: Stack, policy: Policy, engine: str, settings: Settings) -> EngineResult:
    """Every measurement of one engine (the other engines are idle meanwhile)."""
    with _target(stack, policy, engine, settings) as target, _target(base, policy, engine, settings) as baseline:
        probe = hit_probe(target.ctx)
        prepare_hit(target, probe)
        prepare_hit(baseline, probe)
        hits, base_hits = hit_rounds(target, baseline, probe, settings.rounds)
        ratios = _round_ratios(hits, base_hits)
        stale = stale_probe(target.ctx)
        windows = policy.cache.stale
        hit_p50 = measure_hit_latency(target, probe)
        return EngineResult(
            hit=_best(hits), hit_rounds=tuple(h.rps or 0.0 for h in hits),
            baseline_hit=_best(base_hits), baseline_rounds=tuple(h.rps or 0.0 for h in base_hits),
            round_ratios=tuple(ratios), throughput_ratio=statistics.median(ratios) if ratios else None,
            throughput_ratio_interval=median_interval(ratios),
            cpu_us_per_hit=PerConfig(generated=_least(h.cpu_us_per_request for h in hits),
                                     baseline=_least(h.cpu_us_per_request for h in base_hits)),
            user_cpu_us_per_hit=PerConfig(generated=_least(h.user_us_per_request for h in hits),
                                          baseline=_least(h.user_us_per_request for h in base_hits)),
            rule=probe.rule.name, cold_miss=measure_cold_miss(target, probe),
            herd=measure_herd(target, probe, policy.cache.collapse_requests),
            slow_origin=measure_slow_origin(target, stale, windows.while_revalidate, hit_p50),
            origin_down=measure_origin_down(target, stale, windows.if_error),
            zipf=measure_zipf(target, probe), rss_kb=rss_kb(stack, engine))


def offload_section(stacks: dict[str, Stack], variant: Runtime, policy: Policy, engines: tuple[str, ...],
                    settings: Settings, offload: OffloadSettings) -> dict[str, Offload]:
    """Each engine's origin offload: ``stacks`` (generated, baseline) and a stack of ``variant``
    (the generated config without revalidation), started here and stopped when done."""
    with ExitStack() as running:
        try:
            unrevalidated = running.enter_context(variant.start(policy, engines))
        except HarnessError as exc:  # e.g. the edited config did not compile
            return {engine: NotMeasured(error=f"the no-revalidation variant did not start: {exc}")
                    for engine in engines}
        every = {**stacks, "no_revalidation": unrevalidated}
        return {engine: _offload_or_error(every, policy, engine, settings, offload) for engine in engines}


def _offload_or_error(stacks: dict[str, Stack], policy: Policy, engine: str, settings: Settings,
                      offload: OffloadSettings) -> Offload:
    try:
        return measure_offload_engine(stacks, policy, engine, settings, offload)
    except MeasureError as exc:
        return NotMeasured(error=str(exc))


def measure_offload_engine(stacks: dict[str, Stack], policy: Policy, engine: str, settings: Settings,
                           offload: OffloadSettings) -> OffloadResult | Skipped:
    """One engine's offload run on each of ``VARIANTS`` in turn (the same load, fresh URLs)."""
    variants = {}
    rule = ""
    for name in VARIANTS:
        with _target(stacks[name], policy, engine, settings) as target:
            probe = offload_probe(target.ctx)
            if probe is None:
                return Skipped(skipped="no cacheable rule that respects the origin's max-age and that a "
                                       "request without cookies reaches: no entry to expire and refresh")
            variants[name] = measure_offload(target, probe, offload)
            rule = probe.rule.name
    return offload_result(engine, rule, generated_revalidates(policy, engine), variants)


def hit_rounds(target: Target, baseline: Target, probe: Probe,
               rounds: int) -> tuple[list[HitRun], list[HitRun]]:
    """``rounds`` cached-hit measurements of each, back to back, ``target`` first in odd rounds
    and second in even ones (so neither gains from going first)."""
    hits, base_hits = [], []
    for index in range(max(1, rounds)):
        if index % 2:
            base_hits.append(measure_hit(baseline, probe))
            hits.append(measure_hit(target, probe))
        else:
            hits.append(measure_hit(target, probe))
            base_hits.append(measure_hit(baseline, probe))
    return hits, base_hits


@contextmanager
def _target(stack: Stack, policy: Policy, engine: str, settings: Settings) -> Iterator[Target]:
    """A ``Target`` for ``engine`` of ``stack``, with its own control client to the origin."""
    with OriginClient(stack.origin.control_url) as origin:
        yield Target(checks.context(stack, policy, engine, origin), settings)


def _best(runs: list[HitRun]) -> HitRun:
    return max(runs, key=lambda run: run.rps or 0.0)


def _round_ratios(hits: list[HitRun], base_hits: list[HitRun]) -> list[float]:
    """Generated / baseline throughput of each round (both measured back to back)."""
    return [(h.rps or 0.0) / b.rps for h, b in zip(hits, base_hits, strict=True) if b.rps]


def median_interval(values: Sequence[float], confidence: float = INTERVAL_CONFIDENCE) -> Interval | None:
    """A distribution-free confidence interval for the median of ``values``: the k-th least and the
    k-th greatest value, for the largest k whose coverage, 1 - 2 P(Binomial(n, 1/2) < k), is at
    least ``confidence``. None when even the least..greatest falls short (under 5 values at 90 %).
    On this machine a single round's ratio moves by about 10 %: the interval says how far the
    median of this run's rounds can be trusted."""
    ordered = sorted(values)
    n = len(ordered)
    interval = None
    for k in range(1, n // 2 + 1):
        coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
        if coverage < confidence:
            break
        interval = Interval(low=ordered[k - 1], high=ordered[n - k], confidence=round(coverage, 4))
    return interval


def _least(values: Iterable[float | None]) -> float | None:
    """The least CPU time per hit over the rounds (None where the runtime has no pids)."""
    found = [value for value in values if value is not None]
    return min(found) if found else None


# --------------------------------------------------------------------------- environment


def machine(engines: Sequence[str]) -> Machine:
    """Where the figures were measured: CPUs, platform, the local engines' versions."""
    versions = {}
    for name, argv in (("nginx", ["nginx", "-v"]), ("varnish", ["varnishd", "-V"]),
                       ("hitch", ["hitch", "--version"])):
        if shutil.which(argv[0]):
            versions[name] = _version(argv)
    return Machine(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version(),
                   engines=versions)


def _version(argv: list[str]) -> str:
    """The first ``N.N[.N]`` a program prints about itself (either stream), or "unknown"."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"\d+\.\d+(?:\.\d+)?", done.stdout + done.stderr)
    return found[0] if found else "unknown"


def load_tool() -> str:
    """What measures cached-hit throughput: wrk when installed, else the builtin client."""
    if shutil.which("wrk"):
        return f"wrk {_version(['wrk', '--version'])}"
    return "builtin (install wrk for higher load)"


__all__ = ["Settings", "compare"]
