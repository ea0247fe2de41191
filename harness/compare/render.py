"""Renderers for a ``cachewright compare`` report: terminal tables, and one self-contained HTML page.

Both read the report dict ``compare`` produces (``version`` 1: policy, runtime, machine,
settings, capabilities, correctness, performance per engine, targets, verdict). Any section or
value may be missing or null where a measurement was not possible; it is then shown as "n/a".
The engines shown are the keys of ``performance`` and ``correctness``, nginx and Varnish first.

Both renderers build the same rows (plain data, decisions made here) and only lay them out
differently. The HTML page loads nothing from anywhere: inline CSS, charts as inline SVG drawn
by matplotlib (an optional dependency, imported only by ``html_report``), and a
Content-Security-Policy that forbids scripts and remote resources should anything slip through.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from cachewright.generator import __version__
from cachewright.harness.compare.targets import THROUGHPUT_TARGET, ratio_text, throughput_status
from cachewright.harness.engines import ENGINES
from cachewright.harness.runtime.api import HarnessError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NA: Final = "n/a"
MATPLOTLIB_MISSING: Final = "--html needs matplotlib: pip install 'cachewright[report]'"

Tone = Literal["good", "bad", "warn"]
# A table cell: plain text, or text with a tone (colour in a terminal, a CSS class in HTML).
Cell = str | tuple[str, Tone]

_SGR: Final[Mapping[Tone, str]] = {"good": "32", "bad": "1;31", "warn": "33"}
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")  # never reaches a terminal raw
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


# --------------------------------------------------------------------------- reading the report


def _at(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None where a step is missing, null or not a mapping."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    """A finite number, or None (null, a string, a bool, NaN...: not a measurement)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return NA if value is None or value == "" else str(value)


def engines(report: Mapping[str, Any]) -> list[str]:
    """The engines the report covers: nginx and Varnish first, then any other, each once."""
    found = [str(key) for section in ("performance", "correctness")
             if isinstance(report.get(section), Mapping) for key in report[section]]
    return [e for e in ENGINES if e in found] + list(dict.fromkeys(e for e in found if e not in ENGINES))


def _pairs(value: Any) -> list[tuple[float, float]]:
    """A list of ``[x, y]`` number pairs (a CDF, a timeline); anything else in it is skipped."""
    if not isinstance(value, list):
        return []
    pairs = [(_number(p[0]), _number(p[1])) for p in value if isinstance(p, list | tuple) and len(p) == 2]
    return [(x, y) for x, y in pairs if x is not None and y is not None]


# --------------------------------------------------------------------------- formatting numbers


def _fmt(value: Any, fmt: Callable[[float], str]) -> str:
    number = _number(value)
    return NA if number is None else fmt(number)


def _rate(v: float) -> str:
    return f"{v:,.0f}"


def _ms(v: float) -> str:
    return f"{v:.2f}"


def _count(v: float) -> str:
    return f"{v:.0f}"


def _share(v: float) -> str:
    return f"{v * 100:.1f}%"


def _points(v: float) -> str:
    return f"{v:.2f}"


def _mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


# --------------------------------------------------------------------------- the sections


def header_facts(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The report's header as (label, value) pairs: policy, runtime, load, machine."""
    policy = f"{_text(_at(report, 'policy', 'name'))} ({_text(_at(report, 'policy', 'file'))})"
    duration = _fmt(_at(report, "settings", "duration_s"), lambda v: f"{v:g} s")
    return [("policy", policy), ("runtime", _text(report.get("runtime"))),
            ("load tool", _text(_at(report, "settings", "load_tool"))),
            ("concurrency", _fmt(_at(report, "settings", "concurrency"), _count)),
            ("duration", duration), ("machine", _machine(report)),
            ("generated at", _text(report.get("generated_at")))]


def _machine(report: Mapping[str, Any]) -> str:
    cpus = _fmt(_at(report, "machine", "cpus"), lambda v: f"{v:.0f} CPUs")
    versions = _at(report, "machine", "engines")
    engine_list = ", ".join(f"{name} {_text(version)}" for name, version in versions.items()) \
        if isinstance(versions, Mapping) and versions else NA
    return f"{cpus}, {_text(_at(report, 'machine', 'platform'))}; {engine_list}"


def sections(report: Mapping[str, Any]) -> list[Section]:
    """The report's body, in order: capabilities, correctness, RFC conformance, performance,
    origin offload, verdict."""
    names = engines(report)
    return [_capabilities(report), _correctness(report, names), _conformance(report, names),
            _performance(report, names), _offload(report, names), _verdict(report)]


def _capabilities(report: Mapping[str, Any]) -> Section:
    features = [f for f in _list(report.get("capabilities")) if isinstance(f, Mapping)]
    if not features:
        return Section("Capabilities", None, (NA,))
    rows = tuple((_text(f.get("feature")), _support(f, "nginx"), _support(f, "varnish"),
                  _text(f.get("alternative")) if f.get("alternative") else "-") for f in features)
    return Section("Capabilities", Table(("feature", "nginx", "varnish", "alternative"), rows))


def _support(feature: Mapping[str, Any], engine: str) -> Cell:
    level = _text(feature.get(engine))
    how = _at(feature, "how", engine)
    text = f"{level}: {how}" if level == "module" and how else level  # as `cachewright capabilities`
    tone = _CAPABILITY_TONE.get(level)
    return (text, tone) if tone else text


def _correctness(report: Mapping[str, Any], names: Sequence[str]) -> Section:
    correctness = report.get("correctness")
    if not isinstance(correctness, Mapping) or not correctness:
        return Section("Correctness", None, (NA,))
    rows = tuple((name, *_outcome_counts(correctness.get(name))) for name in names)
    failures = tuple(_failure_line(name, failure) for name in names
                     for failure in _list(_at(correctness, name, "failures")) if isinstance(failure, Mapping))
    return Section("Correctness", Table(("engine", *_OUTCOMES), rows), failures)


def _conformance(report: Mapping[str, Any], names: Sequence[str]) -> Section:
    """The rfc family per engine: passed, failed, engine limits (with their capabilities)."""
    found = report.get("conformance")
    title = "RFC 9111 conformance (docs/rfc.md)"
    if not isinstance(found, Mapping) or not found:
        return Section(title, None, (NA,))
    rows: list[tuple[Cell, ...]] = []
    for name in names:
        entry = _at(found, name)
        limits = sorted({_text(_at(item, "capability")) for item in _list(_at(entry, "limits"))})
        failed = _number(_at(entry, "failed"))
        verdict: Cell = (_count(failed), "bad" if failed else "good") if failed is not None else NA
        rows.append((name, _fmt(_at(entry, "passed"), _count), verdict,
                     _fmt(_at(entry, "engine_limit"), _count), ", ".join(limits) or "—"))
    failures = tuple(f"{name}: {check}" for name in names
                     for section in (_at(found, name, "sections") or {}).values()
                     for check in _list(_at(section, "failed")))
    return Section(title, Table(("engine", "passed", "failed", "engine limits", "capabilities"),
                                tuple(rows)), failures)


def _outcome_counts(counts: Any) -> list[Cell]:
    cells: list[Cell] = [_fmt(_at(counts, outcome), _count) for outcome in _OUTCOMES]
    failed = _number(_at(counts, "failed"))
    if failed is not None:
        cells[1] = (_count(failed), "bad" if failed else "good")
    return cells


def _failure_line(engine: str, failure: Mapping[str, Any]) -> Cell:
    return (f"FAIL {_text(failure.get('check'))} [{engine}]: {_text(failure.get('message'))}", "bad")


@dataclass(frozen=True)
class Metric:
    """One performance row: a label and where its value sits in an engine's measurements."""

    label: str
    path: tuple[str, ...]
    fmt: Callable[[float], str]


METRICS: Final = (
    Metric("cached hit throughput (req/s)", ("hit", "rps"), _rate),
    Metric("baseline hit throughput (req/s)", ("baseline_hit", "rps"), _rate),
    Metric("engine CPU per hit (µs)", ("cpu_us_per_hit", "generated"), _points),
    Metric("baseline engine CPU per hit (µs)", ("cpu_us_per_hit", "baseline"), _points),
    Metric("  of which user space (µs)", ("user_cpu_us_per_hit", "generated"), _points),
    Metric("  baseline user space (µs)", ("user_cpu_us_per_hit", "baseline"), _points),
    Metric("cached hit latency p50 (ms)", ("hit", "latency_ms", "p50"), _ms),
    Metric("cached hit latency p99 (ms)", ("hit", "latency_ms", "p99"), _ms),
    Metric("baseline hit latency p99 (ms)", ("baseline_hit", "latency_ms", "p99"), _ms),
    Metric("load errors", ("hit", "errors"), _count),
    Metric("cold miss p50 (ms)", ("cold_miss", "p50_ms"), _ms),
    Metric("cold miss p99 (ms)", ("cold_miss", "p99_ms"), _ms),
    Metric("herd: origin requests (ideal 1)", ("herd", "origin_requests"), _count),
    Metric("slow origin: p50 (ms)", ("slow_origin", "p50_ms"), _ms),
    Metric("slow origin: p99 (ms)", ("slow_origin", "p99_ms"), _ms),
    Metric("slow origin: origin requests", ("slow_origin", "origin_requests"), _count),
    Metric("origin down: stale share", ("origin_down", "share"), _share),
    Metric("zipf hit ratio", ("zipf", "hit_ratio"), _share),
    Metric("zipf ideal hit ratio", ("zipf", "ideal"), _share),
    Metric("zipf gap (points)", ("zipf", "gap_points"), _points),
    Metric("resident memory", ("rss_kb",), _mib),
)


def _performance(report: Mapping[str, Any], names: Sequence[str]) -> Section:
    performance = report.get("performance")
    if not isinstance(performance, Mapping) or not performance:
        return Section("Performance", None, (NA,))
    rows = [(m.label, *(_fmt(_at(performance, name, *m.path), m.fmt) for name in names)) for m in METRICS]
    ratio = (f"throughput generated/baseline (target {THROUGHPUT_TARGET})",
             *(_ratio_cell(_at(performance, name)) for name in names))
    interval = ("confidence interval of that median",
                *(_interval(_at(performance, name, "throughput_ratio_interval")) for name in names))
    return Section("Performance", Table(("metric", *names), (*rows[:2], ratio, interval, *rows[2:])))


def _interval(value: Any) -> Cell:
    """``low-high (confidence)``; n/a with too few rounds for one."""
    if not isinstance(value, Mapping):
        return NA
    low, high, confidence = (_number(value.get(k)) for k in ("low", "high", "confidence"))
    if low is None or high is None or confidence is None:
        return NA
    return f"{ratio_text(low)}-{ratio_text(high)} ({confidence:.0%})"


#: how a target's status reads: its mark and tone
_MARKS: Final[Mapping[str, tuple[str, Tone]]] = {
    "met": ("PASS", "good"), "missed": ("FAIL", "bad"), "inconclusive": ("INCONCLUSIVE", "warn")}


def _ratio_cell(figures: Any) -> Cell:
    """The median ratio and its mark, judged on its interval where there is one."""
    ratio = _number(_at(figures, "throughput_ratio"))
    if ratio is None:
        return NA
    interval = _at(figures, "throughput_ratio_interval")
    low, high = _number(_at(interval, "low")), _number(_at(interval, "high"))
    mark, tone = _MARKS[throughput_status(ratio, low, high)]
    return (f"{ratio_text(ratio)} {mark}", tone)


#: the offload run's configs, as the report names them and as the table shows them
_OFFLOAD_VARIANTS: Final = (("generated", "generated"), ("baseline", "baseline"),
                            ("no_revalidation", "no revalidation"))


def _offload(report: Mapping[str, Any], names: Sequence[str]) -> Section:
    """Per engine and config: what reached the origin while entries expired, and the body bytes
    revalidation saved against the generated config without it."""
    offload = report.get("offload")
    if not isinstance(offload, Mapping) or not offload:
        return Section("Origin offload", None, (NA,))
    rows = tuple(_offload_row(name, key, label, _at(offload, name))
                 for name in names if _at(offload, name, "variants") for key, label in _OFFLOAD_VARIANTS)
    lines = [_offload_setup(report)] + [line for name in names for line in _offload_notes(name, _at(offload, name))]
    header = ("engine", "config", "origin requests", "200", "304", "304 share", "origin body bytes",
              "saved vs no revalidation", "client requests")
    return Section("Origin offload", Table(header, rows) if rows else None, tuple(lines))


def _offload_row(engine: str, key: str, label: str, figures: Mapping[str, Any]) -> tuple[Cell, ...]:
    variant = _at(figures, "variants", key)
    return (engine, label, *(_fmt(_at(variant, k), _count) for k in ("origin_requests", "origin_200", "origin_304")),
            _fmt(_at(variant, "share_304"), _share), _fmt(_at(variant, "origin_body_bytes"), _kib),
            _saved(figures, key), _fmt(_at(variant, "client_requests"), _count))


def _saved(figures: Mapping[str, Any], key: str) -> str:
    """Body bytes saved against no revalidation, with the share of its bytes ("-" for itself)."""
    saved = _number(_at(figures, "saved_bytes", key))
    if key == "no_revalidation":
        return "-"
    if saved is None:
        return NA
    share = _number(_at(figures, "saved_share", key))
    return _kib(saved) + (f" ({share:.0%})" if share is not None else "")


def _kib(value: float) -> str:
    return f"{value / 1024:,.0f} KiB"


def _offload_setup(report: Mapping[str, Any]) -> Cell:
    s = _at(report, "settings", "offload")
    urls, conns, secs, size, age = (_fmt(_at(s, k), lambda v: f"{v:g}")
                                    for k in ("urls", "concurrency", "duration_s", "body_size", "max_age_s"))
    return (f"{urls} URLs answered with a {size}-byte body, ETag, Last-Modified and max-age={age}, each "
            f"stored once, then {conns} connections over them for {secs} s; counted in the origin's "
            "request log and its body byte counter (a 304 has no body). Saved: what the config's "
            "origin requests would have cost at the no-revalidation run's body bytes per request, "
            "less what they cost.")


def _offload_notes(engine: str, figures: Any) -> list[Cell]:
    """Why an engine was not measured; else what its no-revalidation config is, and whether the
    generated config revalidates on its own."""
    for reason in ("skipped", "error"):
        if _at(figures, reason):
            return [(f"{engine}: not measured: {_text(_at(figures, reason))}", "warn")]
    if not _at(figures, "variants"):
        return []
    says = "has" if _at(figures, "generated_revalidates") else "does not have"
    directive = "proxy_cache_revalidate" if engine == "nginx" else "a beresp.keep above 0"
    return [f"{engine}: no revalidation = {_text(_at(figures, 'no_revalidation_is'))}; the generated "
            f"config {says} {directive} (rule '{_text(_at(figures, 'rule'))}')."]


def _verdict(report: Mapping[str, Any]) -> Section:
    targets = [_target_line(t) for t in _list(report.get("targets")) if isinstance(t, Mapping)]
    verdicts: list[Cell] = [_text(v) for v in _list(report.get("verdict"))]
    return Section("Verdict", None, tuple(targets + verdicts) or (NA,))


def _target_line(target: Mapping[str, Any]) -> Cell:
    met = target.get("met")
    status = target.get("status") or ("met" if met is True else "missed" if met is False else None)
    mark, tone = _MARKS.get(status, (NA, "warn")) if isinstance(status, str) else (NA, "warn")
    value = _fmt(target.get("value"), lambda v: f"{v:g}")
    low, high = (_number(_at(target, "interval", end)) for end in ("low", "high"))
    span = f", interval {ratio_text(low)}-{ratio_text(high)}" if low is not None and high is not None else ""
    return (f"{mark} {_text(target.get('name'))} [{_text(target.get('engine'))}]: {value}{span} "
            f"(target {_text(target.get('target'))})", tone)


# --------------------------------------------------------------------------- terminal


def text_report(report: Mapping[str, Any], color: bool = False) -> str:
    """The report as terminal text: a header, then each section's table and lines."""
    facts = header_facts(report)
    width = max(len(label) for label, _ in facts)
    head = [f"cachewright compare {__version__}"] + [f"{label.ljust(width)}  {_clean(value)}"
                                                      for label, value in facts]
    return "\n\n".join(["\n".join(head), *(_text_section(s, color) for s in sections(report))]) + "\n"


def _text_section(section: Section, color: bool) -> str:
    parts = [section.title, "-" * len(section.title)]
    if section.table is not None:
        parts.append(_text_table(section.table, color))
    parts += [_text_line(line, color) for line in section.lines]
    return "\n".join(parts)


def _text_table(table: Table, color: bool) -> str:
    rows: list[tuple[Cell, ...]] = [tuple(h.upper() for h in table.header), *table.rows]
    widths = [max(len(_clean(_plain(row[i]))) for row in rows) for i in range(len(table.header))]
    return "\n".join("  ".join(_text_cell(cell, w, color) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _text_cell(cell: Cell, width: int, color: bool) -> str:
    padded = _clean(_plain(cell)).ljust(width)  # pad before painting: escape codes have no width
    return _paint(padded, cell[1], color) if isinstance(cell, tuple) else padded


def _text_line(line: Cell, color: bool) -> str:
    first, *rest = _plain(line).split("\n")
    text = "\n".join([_clean(first), *(f"    {_clean(more)}" for more in rest)])  # a message's lines indented
    return _paint(text, line[1], color) if isinstance(line, tuple) else text


def _plain(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def _clean(text: str) -> str:
    """Control characters (a hostile message's escape sequences) shown as ``\\xNN``, never sent raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _paint(text: str, tone: Tone, color: bool) -> str:
    return f"\x1b[{_SGR[tone]}m{text}\x1b[0m" if color else text


# --------------------------------------------------------------------------- HTML

_CSS: Final = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1f2328; background: #fff; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; margin-top: 2rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem; }
dt { color: #59636e; }
dd { margin: 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: #1a7f37; }
.bad { color: #cf222e; font-weight: 600; }
.warn { color: #9a6700; }
ul.lines { padding-left: 1.2rem; }
ul.lines li { white-space: pre-wrap; }
figure { margin: 1rem 0 2rem; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #59636e; font-size: .9rem; }
.na { color: #59636e; font-style: italic; }
footer { margin-top: 3rem; color: #59636e; font-size: .85rem; }
"""
# Nothing may run or load: the page is meant to be opened from disk or attached to a CI run.
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def html_report(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (tables and inline SVG charts); needs matplotlib."""
    charts = _svg_charts(report)
    name = _h(_text(_at(report, "policy", "name")))
    body = [f"<header><h1>cachewright compare: {name}</h1>", _html_facts(header_facts(report)), "</header>"]
    for section in sections(report):
        body.append(_html_section(section, charts if section.title == "Performance" else ()))
    body.append(f"<footer>Generated by cachewright {_h(__version__)}, report format version "
                f"{_h(_text(report.get('version')))}.</footer>")
    return _page(f"cachewright compare: {name}", "\n".join(body))


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"cachewright {_h(__version__)}\">\n"
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_facts(facts: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_h(label)}</dt><dd>{_h(value)}</dd>" for label, value in facts)
    return f"<dl>{items}</dl>"


def _html_section(section: Section, charts: Sequence[str]) -> str:
    parts = [f"<section>\n<h2>{_h(section.title)}</h2>"]
    if section.table is not None:
        parts.append(_html_table(section.table))
    if section.lines:
        parts.append("<ul class=\"lines\">" + "".join(f"<li>{_html_cell(line)}</li>" for line in section.lines)
                     + "</ul>")
    parts += charts
    parts.append("</section>")
    return "\n".join(parts)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in table.header)
    rows = "".join("<tr>" + "".join(_html_td(cell, i) for i, cell in enumerate(row)) + "</tr>\n"
                   for row in table.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"


def _html_td(cell: Cell, column: int) -> str:
    numeric = column > 0 and _plain(cell)[:1].isdigit()
    return f"<td class=\"num\">{_html_cell(cell)}</td>" if numeric else f"<td>{_html_cell(cell)}</td>"


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, tuple):
        return f"<span class=\"{cell[1]}\">{_h(cell[0])}</span>"
    return f"<span class=\"na\">{NA}</span>" if cell == NA else _h(cell)


# --------------------------------------------------------------------------- charts

_ENGINE_COLORS: Final = ("#1b7f3b", "#3b6fb6", "#b5651d", "#7a4fa0")
_SVG_ID: Final = re.compile(r'(\bid="|href="#|url\(#)')  # where an SVG defines or refers to an id
_KINDS: Final = (("hit", "generated", "-"), ("baseline_hit", "baseline", ":"))


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


def charts(report: Mapping[str, Any]) -> list[Chart]:
    """The performance charts as matplotlib figures; build and save them inside ``chart_style()``.

    The figures are plain ``Figure`` objects, never registered with pyplot: no backend is
    chosen, no global state changes, and they are freed like any other object.
    """
    performance = report.get("performance")
    perf = performance if isinstance(performance, Mapping) else {}
    names = [n for n in engines(report) if isinstance(perf.get(n), Mapping)]
    return [Chart("Latency of cached hits, generated vs baseline config", _latency_cdf(perf, names)),
            Chart("Cached-hit throughput, generated vs baseline config", _throughput(perf, names)),
            Chart("Zipf workload: hit ratio over time, ideal dashed", _zipf(perf, names)),
            Chart("Thundering herd and origin outage, ideal dashed", _herd_and_stale(perf, names))]


def _svg_charts(report: Mapping[str, Any]) -> list[str]:
    """Each chart as an HTML ``<figure>`` holding inline SVG, or an n/a note."""
    with chart_style():
        return [_html_figure(chart, f"chart{i}-") for i, chart in enumerate(charts(report), 1)]


def _html_figure(chart: Chart, prefix: str) -> str:
    caption = f"<figcaption>{_h(chart.caption)}</figcaption>"
    drawing = f"<p class=\"na\">{NA}: not measured</p>" if chart.figure is None else _svg(chart.figure, prefix)
    return f"<figure>{drawing}{caption}</figure>"


def _svg(figure: Figure, prefix: str) -> str:
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


def _latency_cdf(perf: Mapping[str, Any], names: Sequence[str]) -> Figure | None:
    lines = [(name, kind, style, [(ms, pct) for pct, ms in _pairs(_at(perf, name, path, "latency_cdf")) if ms > 0])
             for name in names for path, kind, style in _KINDS]
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


def _throughput(perf: Mapping[str, Any], names: Sequence[str]) -> Figure | None:
    values = {(name, path): _number(_at(perf, name, path, "rps")) for name in names for path, _, _ in _KINDS}
    if all(v is None for v in values.values()):
        return None
    figure = _figure(width=6.0)
    ax = figure.add_subplot()
    for offset, (path, kind, _) in zip((-0.2, 0.2), _KINDS, strict=True):
        heights = [values[name, path] for name in names]
        bars = ax.bar([i + offset for i in range(len(names))], [h or 0.0 for h in heights], width=0.38,
                      label=kind, color="#4c72b0" if kind == "generated" else "#b8c2cc")
        ax.bar_label(bars, labels=[NA if h is None else _rate(h) for h in heights], padding=2)
    ax.set_xticks(range(len(names)), [_label(_throughput_tick(perf, name)) for name in names])
    _thousands_axis(ax)
    ax.set(ylabel="requests per second")
    ax.margins(y=0.25)
    ax.legend(loc="upper center", ncols=2)
    return figure


def _thousands_axis(ax: Axes) -> None:
    from matplotlib.ticker import StrMethodFormatter

    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _throughput_tick(perf: Mapping[str, Any], name: str) -> str:
    return f"{name}\nratio {_fmt(_at(perf, name, 'throughput_ratio'), ratio_text)}"


def _zipf(perf: Mapping[str, Any], names: Sequence[str]) -> Figure | None:
    timelines = {name: _pairs(_at(perf, name, "zipf", "timeline")) for name in names}
    ideals = {name: _number(_at(perf, name, "zipf", "ideal")) for name in names}
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


def _herd_and_stale(perf: Mapping[str, Any], names: Sequence[str]) -> Figure | None:
    herd = [_number(_at(perf, name, "herd", "origin_requests")) for name in names]
    stale = [_number(_at(perf, name, "origin_down", "share")) for name in names]
    if all(v is None for v in [*herd, *stale]):
        return None
    figure = _figure(height=3.0)
    left, right = figure.subplots(1, 2)
    _bars(left, names, herd, _count, ideal=1.0)
    _integer_axis(left)
    left.set(title="herd: origin requests", ylabel="origin requests")
    _bars(right, names, stale, _share, ideal=1.0)
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
