"""The performance charts of a ``cachewright compare`` report, drawn by matplotlib (an optional
dependency, imported only when a chart is drawn) as inline SVG for ``harness.compare.page``.

The figures are plain ``Figure`` objects, never registered with pyplot, drawn inside
``chart_style()`` so that the same report gives the same bytes whatever the user's matplotlibrc.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..runtime.api import HarnessError
from .figures import EngineResult, HitRun, OriginDown
from .records import CompareReport
from .sections import NA, count, fmt, measured, rate, share
from .targets import ratio_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MATPLOTLIB_MISSING: Final = "--html needs matplotlib: pip install 'cachewright[report]'"
_ENGINE_COLORS: Final = ("#1b7f3b", "#3b6fb6", "#b5651d", "#7a4fa0")
_SVG_ID: Final = re.compile(r'(\bid="|href="#|url\(#)')  # where an SVG defines or refers to an id
#: the two configs' cached-hit runs: where each is, its label and its line style
_KINDS: Final[tuple[tuple[Callable[[EngineResult], HitRun | None], str, str], ...]] = (
    (lambda e: e.hit, "generated", "-"), (lambda e: e.baseline_hit, "baseline", ":"))


@dataclass(frozen=True)
class Chart:
    """One chart: its caption, and its figure (None where nothing was measured)."""

    caption: str
    figure: Figure | None


def require_matplotlib() -> None:
    """HarnessError (saying how to install it) when matplotlib, which ``--html`` needs, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise HarnessError(MATPLOTLIB_MISSING) from None


@contextmanager
def chart_style() -> Iterator[None]:
    """Draw and save charts inside this: matplotlib's defaults plus ours, whatever the user's rc.

    Raises HarnessError when matplotlib is not installed.
    """
    require_matplotlib()
    import matplotlib
    import matplotlib.style
    # Fixed so the same report gives the same bytes: SVG clip-path ids hash with the salt, glyphs
    # are paths (no font needed to view), and the default style, not the user's matplotlibrc,
    # decides the look.
    with matplotlib.style.context("default"), matplotlib.rc_context({
            "svg.hashsalt": "cachewright", "svg.fonttype": "path", "font.size": 9.0,
            "axes.grid": True, "axes.axisbelow": True, "grid.alpha": 0.3}):
        yield


def charts(report: CompareReport) -> list[Chart]:
    """The performance charts as matplotlib figures; build and save them inside ``chart_style()``.

    The figures are plain ``Figure`` objects, never registered with pyplot: no backend is
    chosen, no global state changes, and they are freed like any other object.
    """
    names = [n for n in report.engines() if report.performance.get(n) is not None]
    perf = {name: measured(report.performance.get(name)) for name in names}
    return [Chart("Latency of cached hits, generated vs baseline config", _latency_cdf(perf, names)),
            Chart("Cached-hit throughput, generated vs baseline config", _throughput(perf, names)),
            Chart("Zipf workload: hit ratio over time, ideal dashed", _zipf(perf, names)),
            Chart("Thundering herd and origin outage, ideal dashed", _herd_and_stale(perf, names))]


def svg(figure: Figure, prefix: str) -> str:
    """The figure as an ``<svg>`` element for an HTML page: no XML prolog or DOCTYPE, and its ids
    prefixed so that several charts on one page never resolve each other's glyphs or clip paths."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return _SVG_ID.sub(lambda m: f"{m.group(1)}{prefix}", text[text.index("<svg"):].strip())


def _figure(width: float = 7.0, height: float = 3.6) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _color(names: Sequence[str], name: str) -> str:
    return _ENGINE_COLORS[names.index(name) % len(_ENGINE_COLORS)]


def _label(text: str) -> str:
    """Literal text for matplotlib: ``$`` would start mathtext, a leading ``_`` hides a label."""
    escaped = text.replace("$", r"\$")
    return f" {escaped}" if escaped.startswith("_") else escaped


def _latency_cdf(perf: Mapping[str, EngineResult], names: Sequence[str]) -> Figure | None:
    lines = [(name, kind, style, [(ms, pct) for pct, ms in _cdf(run(perf[name])) if ms > 0])
             for name in names for run, kind, style in _KINDS]
    lines = [line for line in lines if line[3]]
    if not lines:
        return None
    figure = _figure()
    ax = figure.add_subplot()
    for name, kind, style, points in lines:
        ax.plot(*zip(*points, strict=True), linestyle=style, marker=".", color=_color(names, name),
                label=_label(f"{name} {kind}"))
    ax.set_xscale("log")
    _plain_log_ticks(ax)
    ax.set(xlabel="latency (ms, log scale)", ylabel="percentile", ylim=(0, 100.5))
    ax.legend(loc="lower right")
    return figure


def _plain_log_ticks(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _cdf(run: HitRun | None) -> tuple[tuple[float, float], ...]:
    return run.latency_cdf if run else ()


def _throughput(perf: Mapping[str, EngineResult], names: Sequence[str]) -> Figure | None:
    values = {(name, kind): run.rps if (run := which(perf[name])) else None
              for name in names for which, kind, _ in _KINDS}
    if all(v is None for v in values.values()):
        return None
    figure = _figure(width=6.0)
    ax = figure.add_subplot()
    for offset, (_, kind, _) in zip((-0.2, 0.2), _KINDS, strict=True):
        heights = [values[name, kind] for name in names]
        bars = ax.bar([i + offset for i in range(len(names))], [h or 0.0 for h in heights], width=0.38,
                      label=kind, color="#4c72b0" if kind == "generated" else "#b8c2cc")
        ax.bar_label(bars, labels=[NA if h is None else rate(h) for h in heights], padding=2)
    ax.set_xticks(range(len(names)), [_label(_throughput_tick(perf, name)) for name in names])
    _thousands_axis(ax)
    ax.set(ylabel="requests per second")
    ax.margins(y=0.25)
    ax.legend(loc="upper center", ncols=2)
    return figure


def _thousands_axis(ax: Axes) -> None:
    from matplotlib.ticker import StrMethodFormatter

    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _throughput_tick(perf: Mapping[str, EngineResult], name: str) -> str:
    return f"{name}\nratio {fmt(perf[name].throughput_ratio, ratio_text)}"


def _zipf(perf: Mapping[str, EngineResult], names: Sequence[str]) -> Figure | None:
    zipfs = {name: perf[name].zipf for name in names}
    timelines = {name: zipf.timeline if zipf else () for name, zipf in zipfs.items()}
    ideals = {name: zipf.ideal if zipf else None for name, zipf in zipfs.items()}
    if not any(timelines.values()) and all(v is None for v in ideals.values()):
        return None
    figure = _figure()
    ax = figure.add_subplot()
    for name in names:
        if timelines[name]:
            ax.plot(*zip(*timelines[name], strict=True), marker=".", color=_color(names, name), label=_label(name))
    shared = {v for v in ideals.values() if v is not None}
    if len(shared) == 1:  # the same request stream: one ideal for all (the usual case)
        ax.axhline(shared.pop(), linestyle="--", linewidth=1, color="#59636e", label="ideal")
    else:
        for name, ideal in ideals.items():
            if ideal is not None:
                ax.axhline(ideal, linestyle="--", linewidth=1, color=_color(names, name),
                           label=_label(f"{name} ideal"))
    _percent_axis(ax)
    ax.set(xlabel="time (s)", ylabel="hit ratio (cumulative)")
    ax.legend(loc="lower right")
    return figure


def _percent_axis(ax: Axes) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))


def _herd_and_stale(perf: Mapping[str, EngineResult], names: Sequence[str]) -> Figure | None:
    herd = [herd.origin_requests if (herd := perf[name].herd) else None for name in names]
    stale = [down.share if isinstance(down := perf[name].origin_down, OriginDown) else None for name in names]
    if all(v is None for v in [*herd, *stale]):
        return None
    figure = _figure(height=3.0)
    left, right = figure.subplots(1, 2)
    _bars(left, names, herd, count, ideal=1.0)
    _integer_axis(left)
    left.set(title="herd: origin requests", ylabel="origin requests")
    _bars(right, names, stale, share, ideal=1.0)
    _percent_axis(right)
    right.set(title="origin down: answered from stale", ylim=(0, 1.15))
    return figure


def _integer_axis(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _bars(ax: Axes, names: Sequence[str], values: Sequence[float | None], fmt: Callable[[float], str],
          ideal: float) -> None:
    bars = ax.bar(range(len(names)), [v or 0.0 for v in values], width=0.5,
                  color=[_color(names, n) for n in names])
    ax.bar_label(bars, labels=[NA if v is None else fmt(v) for v in values], padding=2)
    ax.axhline(ideal, linestyle="--", linewidth=1, color="#59636e")
    ax.set_xticks(range(len(names)), [_label(n) for n in names])
    ax.margins(y=0.2)
