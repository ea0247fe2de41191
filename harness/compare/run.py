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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

from cachewright.generator.capabilities import used_features
from cachewright.generator.model import Policy

from .. import checks
from ..origin_client import OriginClient
from ..report import conformance_of
from ..results import CheckResult
from ..runtime.api import HarnessError, Runtime, Stack
from ..runtime.prepare import Configs, generated
from ..scenarios import Scenario
from .baseline import baseline_configs
from .load import LoadResult
from .measure import (
    MeasureError,
    Probe,
    Settings,
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
    OffloadSettings,
    generated_revalidates,
    measure_offload,
    no_revalidation,
    offload_probe,
    offload_result,
)
from .targets import THROUGHPUT_TARGET, ratio_text, throughput_status

FORMAT_VERSION = 1
#: the least confidence of the interval reported around the throughput ratio
INTERVAL_CONFIDENCE = 0.90
ZIPF_GAP_TARGET = 2.0
#: the share of the origin's answers during the offload load that must be 304s: every refresh of
#: an unchanged entry that has validators (issue 19: "an expired entry costs the origin a 304")
OFFLOAD_304_TARGET = 1.0
DEFAULT_OFFLOAD = OffloadSettings()
#: a runtime for a config source (generated or baseline)
RuntimeFor = Callable[[Configs], Runtime]
#: runs the scenarios on a stack; the command passes ``cachewright test``'s own runner
ScenarioRunner = Callable[[Stack, Policy, tuple[str, ...]], list[CheckResult]]
Progress = Callable[[str], None]


def compare(policy: Policy, policy_file: str, runtime_for: RuntimeFor, engines: tuple[str, ...],
            settings: Settings, *, correctness: bool = True, scenarios: Sequence[Scenario] = (),
            run_scenarios: ScenarioRunner | None = None, progress: Progress | None = None,
            offload: OffloadSettings | None = DEFAULT_OFFLOAD, conformance: bool = True) -> dict[str, Any]:
    """The whole comparison as a JSON-able report (``harness.compare.render`` draws it); no
    origin offload section with ``offload`` None; with ``correctness`` and ``conformance``, the
    RFC 9111 report of each engine (the rfc family, when a rule respects origin headers)."""
    say = progress or (lambda _: None)
    generated_runtime = runtime_for(generated)
    report: dict[str, Any] = {
        "format": "cachewright-compare", "version": FORMAT_VERSION,
        "policy": {"name": policy.name, "file": policy_file},
        "runtime": generated_runtime.name,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(engines),
        "settings": {**settings.to_json(), "load_tool": load_tool()},
        "capabilities": capability_rows(policy),
    }
    with ExitStack() as stacks:
        say("starting the generated configs and the baselines")
        stack = stacks.enter_context(generated_runtime.start(policy, engines))
        base = stacks.enter_context(runtime_for(baseline_configs).start(policy, engines))
        if correctness:
            say("correctness: derived checks and scenarios")
            results = checks.run_checks(checks.derive(policy), stack, policy, engines)
            if run_scenarios is not None and scenarios:
                results += run_scenarios(stack, policy, engines)
            report["correctness"] = {e: correctness_summary(results, e) for e in engines}
            rfc = checks.select(checks.derive(policy, conformance=True), ["rfc"]) if conformance else []
            if rfc:
                say("conformance: the rfc family")
                report["conformance"] = conformance_of(checks.run_checks(rfc, stack, policy, engines))
        performance = {}
        for engine in engines:
            say(f"performance: {engine}")
            try:
                performance[engine] = measure_engine(stack, base, policy, engine, settings)
            except MeasureError as exc:  # e.g. nothing in the policy is cacheable by a plain GET
                performance[engine] = {"error": str(exc)}
        report["performance"] = performance
        if offload is not None:
            say("origin offload: generated, baseline, no revalidation")
            report["settings"]["offload"] = offload.to_json()
            report["offload"] = offload_section({"generated": stack, "baseline": base}, runtime_for(no_revalidation),
                                                policy, engines, settings, offload)
    report["targets"] = targets(report)
    report["verdict"] = verdict(report)
    return report


def measure_engine(stack: Stack, base: Stack, policy: Policy, engine: str, settings: Settings) -> dict[str, Any]:
    """Every measurement of one engine (the other engines are idle meanwhile)."""
    with _target(stack, policy, engine, settings) as target, _target(base, policy, engine, settings) as baseline:
        probe = hit_probe(target.ctx)
        prepare_hit(target, probe)
        prepare_hit(baseline, probe)
        hits, base_hits = hit_rounds(target, baseline, probe, settings.rounds)
        best, best_base = _best(hits), _best(base_hits)
        ratios = _round_ratios(hits, base_hits)
        collapse = policy.cache.collapse_requests
        stale = stale_probe(target.ctx)
        windows = policy.cache.stale
        hit_p50 = measure_hit_latency(target, probe)
        return {
            "hit": best, "hit_rounds": [h["rps"] for h in hits],
            "baseline_hit": best_base, "baseline_rounds": [h["rps"] for h in base_hits],
            "round_ratios": ratios,
            "throughput_ratio": statistics.median(ratios) if ratios else None,
            "throughput_ratio_interval": median_interval(ratios),
            "cpu_us_per_hit": {"generated": _least(hits, "cpu_us_per_request"),
                               "baseline": _least(base_hits, "cpu_us_per_request")},
            "user_cpu_us_per_hit": {"generated": _least(hits, "user_us_per_request"),
                                    "baseline": _least(base_hits, "user_us_per_request")},
            "rule": probe.rule.name,
            "cold_miss": measure_cold_miss(target, probe),
            "herd": measure_herd(target, probe, collapse),
            "slow_origin": measure_slow_origin(target, stale, windows.while_revalidate, hit_p50),
            "origin_down": measure_origin_down(target, stale, windows.if_error),
            "zipf": measure_zipf(target, probe),
            "rss_kb": rss_kb(stack, engine),
        }


def offload_section(stacks: dict[str, Stack], variant: Runtime, policy: Policy, engines: tuple[str, ...],
                    settings: Settings, offload: OffloadSettings) -> dict[str, Any]:
    """Each engine's origin offload: ``stacks`` (generated, baseline) and a stack of ``variant``
    (the generated config without revalidation), started here and stopped when done."""
    with ExitStack() as running:
        try:
            unrevalidated = running.enter_context(variant.start(policy, engines))
        except HarnessError as exc:  # e.g. the edited config did not compile
            return {engine: {"error": f"the no-revalidation variant did not start: {exc}"} for engine in engines}
        every = {**stacks, "no_revalidation": unrevalidated}
        return {engine: _offload_or_error(every, policy, engine, settings, offload) for engine in engines}


def _offload_or_error(stacks: dict[str, Stack], policy: Policy, engine: str, settings: Settings,
                      offload: OffloadSettings) -> dict[str, Any]:
    try:
        return measure_offload_engine(stacks, policy, engine, settings, offload)
    except MeasureError as exc:
        return {"error": str(exc)}


def measure_offload_engine(stacks: dict[str, Stack], policy: Policy, engine: str, settings: Settings,
                           offload: OffloadSettings) -> dict[str, Any]:
    """One engine's offload run on each of ``VARIANTS`` in turn (the same load, fresh URLs)."""
    variants = {}
    rule = ""
    for name in VARIANTS:
        with _target(stacks[name], policy, engine, settings) as target:
            probe = offload_probe(target.ctx)
            if probe is None:
                return {"skipped": "no cacheable rule that respects the origin's max-age and that a "
                                   "request without cookies reaches: no entry to expire and refresh"}
            variants[name] = measure_offload(target, probe, offload)
            rule = probe.rule.name
    return offload_result(engine, rule, generated_revalidates(policy, engine), variants)


def hit_rounds(target: Target, baseline: Target, probe: Probe,
               rounds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda run: run["rps"])


def _round_ratios(hits: list[dict[str, Any]], base_hits: list[dict[str, Any]]) -> list[float]:
    """Generated / baseline throughput of each round (both measured back to back)."""
    return [h["rps"] / b["rps"] for h, b in zip(hits, base_hits, strict=True) if b["rps"]]


def median_interval(values: Sequence[float],
                    confidence: float = INTERVAL_CONFIDENCE) -> dict[str, float] | None:
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
        interval = {"low": ordered[k - 1], "high": ordered[n - k], "confidence": round(coverage, 4)}
    return interval


def _least(runs: list[dict[str, Any]], key: str) -> float | None:
    """The least of ``key`` (a CPU time per hit) over the rounds (None where the runtime has no pids)."""
    values = [run[key] for run in runs if run[key] is not None]
    return min(values) if values else None


# --------------------------------------------------------------------------- report sections


def capability_rows(policy: Policy) -> list[dict[str, Any]]:
    """Each feature the policy uses: native / module / unsupported per engine, and the way out."""
    rows = []
    for feature in used_features(policy):
        accepted = [e for e in ("nginx", "varnish") if feature.id in policy.accepted_missing(e)]
        nginx, varnish = feature.on("nginx", policy), feature.on("varnish", policy)
        rows.append({"feature": feature.id, "title": feature.title,
                     "nginx": nginx.level, "varnish": varnish.level,
                     "how": {"nginx": nginx.how, "varnish": varnish.how},
                     "alternative": feature.alternative or None, "accepted_missing": accepted})
    return rows


def correctness_summary(results: Sequence[CheckResult], engine: str) -> dict[str, Any]:
    mine = [r for r in results if r.engine == engine]
    summary: dict[str, Any] = {o: sum(r.outcome == o for r in mine)
                               for o in ("passed", "failed", "unsupported", "skipped")}
    summary["failures"] = [{"check": r.check_id, "message": r.message} for r in mine if r.failed]
    summary["unsupported_checks"] = [{"check": r.check_id, "message": r.message}
                                     for r in mine if r.outcome == "unsupported"]
    return summary


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, per engine: throughput vs baseline, herd, stale share, Zipf gap."""
    out = []
    for engine, perf in report.get("performance", {}).items():
        if "error" in perf:
            continue
        out.append(throughput_row(engine, perf["throughput_ratio"], perf.get("throughput_ratio_interval")))
        herd = perf["herd"]
        if herd.get("collapse_requests"):
            out.append(_target_row("herd: origin requests", engine, herd["origin_requests"], 1,
                                   lambda v: v == 1))
        down = perf["origin_down"]
        if "skipped" not in down:
            out.append(_target_row("origin down: share answered from stale (inside stale.if_error)",
                                   engine, down["share"], 1.0, lambda v: v == 1.0))
        zipf = perf["zipf"]
        out.append(_target_row(f"zipf hit ratio within {ZIPF_GAP_TARGET:g} points of the ideal", engine,
                               zipf["gap_points"], ZIPF_GAP_TARGET, lambda v: v <= ZIPF_GAP_TARGET))
    for engine, figures in report.get("offload", {}).items():
        if "variants" in figures:
            out.append(_target_row("origin offload: expired entries refreshed with a 304 (share of origin "
                                   "answers)", engine, figures["variants"]["generated"]["share_304"],
                                   OFFLOAD_304_TARGET, lambda v: v >= OFFLOAD_304_TARGET))
    return out


def _target_row(name: str, engine: str, value: float | None, target: float,
                met: Callable[[float], bool]) -> dict[str, Any]:
    """A target judged on its value alone: ``status`` met or missed (None: not measured)."""
    judged = met(value) if value is not None else None
    status = None if judged is None else "met" if judged else "missed"
    return {"name": name, "engine": engine, "value": _shown(value), "target": target,
            "met": judged, "status": status}


def throughput_row(engine: str, ratio: float | None, interval: dict[str, float] | None) -> dict[str, Any]:
    """The throughput target, judged on the ratio's confidence interval (``harness.compare.targets``):
    ``met`` is True or False only when the interval is wholly above or below the target, None
    (``status`` inconclusive) when it spans it."""
    row = _target_row(f"cached-hit throughput generated/baseline >= {THROUGHPUT_TARGET}", engine,
                      ratio, THROUGHPUT_TARGET, lambda v: v >= THROUGHPUT_TARGET)
    if ratio is None:
        return row
    low, high = (interval["low"], interval["high"]) if interval else (None, None)
    status = throughput_status(ratio, low, high)
    # the interval as measured: the renderers round it as they round the performance table's
    ends = {"low": low, "high": high} if interval else None
    return {**row, "met": {"met": True, "missed": False}.get(status), "status": status, "interval": ends}


def _shown(value: float | None) -> float | None:
    return round(value, 4) + 0.0 if value is not None else None  # + 0.0: no "-0.0"


def verdict(report: dict[str, Any]) -> list[str]:
    """A few sentences a reader can act on: what each engine lacks, fails and does best."""
    lines = []
    for engine in ("nginx", "varnish"):
        lacking = [f["feature"] for f in report["capabilities"] if f[engine] == "unsupported"]
        if lacking:
            lines.append(f"{engine} lacks {', '.join(lacking)} for this policy "
                         "(see the alternatives above).")
    for engine, summary in report.get("correctness", {}).items():
        if summary["failed"]:
            lines.append(f"{engine} fails {summary['failed']} check(s): it does not do what the policy says.")
        else:
            lines.append(f"{engine} passes every check that applies to it ({summary['passed']} passed, "
                         f"{summary['unsupported']} unsupported).")
    perf = report.get("performance", {})
    for engine, figures in perf.items():
        if "error" in figures:
            lines.append(f"{engine}: not measured: {figures['error']}")
    for engine, figures in report.get("offload", {}).items():
        if "error" in figures:
            lines.append(f"{engine}: origin offload not measured: {figures['error']}")
    if {"nginx", "varnish"} <= set(perf) and not any("error" in figures for figures in perf.values()):
        n, v = perf["nginx"]["hit"]["rps"], perf["varnish"]["hit"]["rps"]
        if n and v:
            faster, slower, ratio = ("nginx", "varnish", n / v) if n >= v else ("varnish", "nginx", v / n)
            lines.append(f"Cached hits: {faster} served {ratio:.2f}x the requests per second of {slower} "
                         f"({max(n, v):,.0f} vs {min(n, v):,.0f}) on this machine.")
    missed = [t for t in report.get("targets", []) if t["met"] is False]
    if missed:
        lines.append("Targets missed: " + "; ".join(f"{t['name']} [{t['engine']}]" for t in missed) + ".")
    lines += [_inconclusive(t) for t in report.get("targets", []) if t.get("status") == "inconclusive"]
    return lines


def _inconclusive(target: dict[str, Any]) -> str:
    span = target["interval"]
    low, high = ratio_text(span["low"]), ratio_text(span["high"])
    return (f"Inconclusive: {target['name']} [{target['engine']}]: median {ratio_text(target['value'])}, but "
            f"its confidence interval {low}-{high} spans {target['target']}: "
            "this run cannot tell whether the target is met (more --rounds narrow the interval).")


# --------------------------------------------------------------------------- environment


def machine(engines: Sequence[str]) -> dict[str, Any]:
    """Where the figures were measured: CPUs, platform, the local engines' versions."""
    versions = {}
    for name, argv in (("nginx", ["nginx", "-v"]), ("varnish", ["varnishd", "-V"]),
                       ("hitch", ["hitch", "--version"])):
        if shutil.which(argv[0]):
            versions[name] = _version(argv)
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "engines": versions}


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


__all__ = ["LoadResult", "Settings", "THROUGHPUT_TARGET", "compare"]
