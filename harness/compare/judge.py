"""The parts of the ``compare`` report that judge what ran: capabilities, the correctness summary
per engine, the issue's targets and the verdict's sentences.

Pure functions of the policy, the check results and the measured records, so each is tested
without an engine (tests/test_compare.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cachewright.generator.capabilities import used_features
from cachewright.generator.model import Policy

from ..report.results import CheckResult
from .figures import EngineResult, Interval, NotMeasured, OriginDown
from .records import Capability, CompareReport, Correctness, Ends, Failure, Target
from .targets import THROUGHPUT_TARGET, ratio_text, throughput_status

ZIPF_GAP_TARGET = 2.0
#: the share of the origin's answers during the offload load that must be 304s: every refresh of
#: an unchanged entry that has validators (issue 19: "an expired entry costs the origin a 304")
OFFLOAD_304_TARGET = 1.0


def capability_rows(policy: Policy) -> tuple[Capability, ...]:
    """Each feature the policy uses: native / module / unsupported per engine, and the way out."""
    rows = []
    for feature in used_features(policy):
        accepted = tuple(e for e in ("nginx", "varnish") if feature.id in policy.accepted_missing(e))
        nginx, varnish = feature.on("nginx", policy), feature.on("varnish", policy)
        rows.append(Capability(feature=feature.id, title=feature.title, nginx=nginx.level, varnish=varnish.level,
                               how={"nginx": nginx.how, "varnish": varnish.how},
                               alternative=feature.alternative or None, accepted_missing=accepted))
    return tuple(rows)


def correctness_summary(results: Sequence[CheckResult], engine: str) -> Correctness:
    mine = [r for r in results if r.engine == engine]
    return Correctness(
        passed=sum(r.outcome == "passed" for r in mine), failed=sum(r.outcome == "failed" for r in mine),
        unsupported=sum(r.outcome == "unsupported" for r in mine), skipped=sum(r.outcome == "skipped" for r in mine),
        failures=tuple(Failure(check=r.check_id, message=r.message) for r in mine if r.failed),
        unsupported_checks=tuple(Failure(check=r.check_id, message=r.message)
                                 for r in mine if r.outcome == "unsupported"))


def targets(report: CompareReport) -> tuple[Target, ...]:
    """The issue's targets, per engine: throughput vs baseline, herd, stale share, Zipf gap,
    and the origin offload's 304 share."""
    out = [row for engine, perf in report.performance.items() if isinstance(perf, EngineResult)
           for row in _engine_targets(engine, perf)]
    for engine in report.offload or {}:
        found = report.offload_result(engine)
        generated = found.variants.get("generated") if found and found.variants else None
        if generated is not None:
            out.append(_target_row("origin offload: expired entries refreshed with a 304 (share of origin "
                                   "answers)", engine, generated.share_304, OFFLOAD_304_TARGET,
                                   lambda v: v >= OFFLOAD_304_TARGET))
    return tuple(out)


def _engine_targets(engine: str, perf: EngineResult) -> list[Target]:
    out = [throughput_row(engine, perf.throughput_ratio, perf.throughput_ratio_interval)]
    if perf.herd is not None and perf.herd.collapse_requests:
        out.append(_target_row("herd: origin requests", engine, perf.herd.origin_requests, 1, lambda v: v == 1))
    if isinstance(perf.origin_down, OriginDown):
        out.append(_target_row("origin down: share answered from stale (inside stale.if_error)",
                               engine, perf.origin_down.share, 1.0, lambda v: v == 1.0))
    gap = perf.zipf.gap_points if perf.zipf is not None else None
    out.append(_target_row(f"zipf hit ratio within {ZIPF_GAP_TARGET:g} points of the ideal", engine,
                           gap, ZIPF_GAP_TARGET, lambda v: v <= ZIPF_GAP_TARGET))
    return out


def _target_row(name: str, engine: str, value: float | None, target: float,
                met: Callable[[float], bool]) -> Target:
    """A target judged on its value alone: ``status`` met or missed (None: not measured)."""
    judged = met(value) if value is not None else None
    status = None if judged is None else "met" if judged else "missed"
    return Target(name=name, engine=engine, value=_shown(value), target=target, met=judged, status=status)


def throughput_row(engine: str, ratio: float | None, interval: Interval | None) -> Target:
    """The throughput target, judged on the ratio's confidence interval (``harness.compare.targets``):
    ``met`` is True or False only when the interval is wholly above or below the target, None
    (``status`` inconclusive) when it spans it."""
    row = _target_row(f"cached-hit throughput generated/baseline >= {THROUGHPUT_TARGET}", engine,
                      ratio, THROUGHPUT_TARGET, lambda v: v >= THROUGHPUT_TARGET)
    if ratio is None:
        return row
    low, high = (interval.low, interval.high) if interval else (None, None)
    status = throughput_status(ratio, low, high)
    # the interval as measured: the renderers round it as they round the performance table's
    ends = Ends(low=low, high=high) if interval else None
    return Target(name=row.name, engine=engine, value=row.value, target=row.target,
                  met={"met": True, "missed": False}.get(status), status=status, interval=ends, on_interval=True)


def _shown(value: float | None) -> float | None:
    return round(value, 4) + 0.0 if value is not None else None  # + 0.0: no "-0.0"


def verdict(report: CompareReport) -> tuple[str, ...]:
    """A few sentences a reader can act on: what each engine lacks, fails and does best."""
    lines = _lacking(report) + _failing(report) + _not_measured(report) + _fastest(report)
    missed = [t for t in report.targets if t.met is False]
    if missed:
        lines.append("Targets missed: " + "; ".join(f"{t.name} [{t.engine}]" for t in missed) + ".")
    lines += [_inconclusive(t) for t in report.targets if t.status == "inconclusive"]
    return tuple(lines)


def _lacking(report: CompareReport) -> list[str]:
    lines = []
    for engine in ("nginx", "varnish"):
        lacking = [str(f.feature) for f in report.capabilities if f.level(engine) == "unsupported"]
        if lacking:
            lines.append(f"{engine} lacks {', '.join(lacking)} for this policy (see the alternatives above).")
    return lines


def _failing(report: CompareReport) -> list[str]:
    lines = []
    for engine, summary in (report.correctness or {}).items():
        if summary is None:
            continue
        if summary.failed:
            lines.append(f"{engine} fails {summary.failed} check(s): it does not do what the policy says.")
        else:
            lines.append(f"{engine} passes every check that applies to it ({summary.passed} passed, "
                         f"{summary.unsupported} unsupported).")
    return lines


def _not_measured(report: CompareReport) -> list[str]:
    lines = [f"{engine}: not measured: {perf.error}" for engine, perf in report.performance.items()
             if perf is not None and not isinstance(perf, EngineResult)]
    for engine, found in (report.offload or {}).items():
        if isinstance(found, NotMeasured):
            lines.append(f"{engine}: origin offload not measured: {found.error}")
    return lines


def _fastest(report: CompareReport) -> list[str]:
    """Which engine served more cached hits per second, when both were measured."""
    perf = report.performance
    nginx, varnish = perf.get("nginx"), perf.get("varnish")
    if not (isinstance(nginx, EngineResult) and isinstance(varnish, EngineResult)) or \
            not all(isinstance(figures, EngineResult) for figures in perf.values()):
        return []
    n, v = nginx.hit.rps if nginx.hit else None, varnish.hit.rps if varnish.hit else None
    if not n or not v:
        return []
    faster, slower, ratio = ("nginx", "varnish", n / v) if n >= v else ("varnish", "nginx", v / n)
    return [f"Cached hits: {faster} served {ratio:.2f}x the requests per second of {slower} "
            f"({max(n, v):,.0f} vs {min(n, v):,.0f}) on this machine."]


def _inconclusive(target: Target) -> str:
    span = target.interval or Ends(low=None, high=None)
    low, high = (ratio_text(end) if end is not None else "n/a" for end in (span.low, span.high))
    value = ratio_text(target.value) if target.value is not None else "n/a"
    return (f"Inconclusive: {target.name} [{target.engine}]: median {value}, but "
            f"its confidence interval {low}-{high} spans {target.target}: "
            "this run cannot tell whether the target is met (more --rounds narrow the interval).")
