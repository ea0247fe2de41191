"""Reporters for a ``RunResult``: a terminal table, JSON, JUnit XML, and a live progress line.

JSON shape (``FORMAT`` / ``FORMAT_VERSION``; keys always in this order, results in run order)::

    {
      "format": "cachewright-test-results",
      "format_version": 1,
      "policy": {"name": "shop", "file": "examples/shop/policy.yaml"},
      "runtime": "local",
      "engines": ["nginx", "varnish"],
      "started": "2024-05-01T12:00:00+00:00",     # ISO 8601
      "duration": 12.345,                           # seconds, 3 decimals
      "passed": false,                              # no result failed
      "verdict": "failed",                          # passed | failed | incomplete (a check skipped)
      "allow_skips": false,                         # --allow-skips: incomplete exits 0
      "exit_code": 1,                               # 0 passed, 1 failed, 4 incomplete
      "skip_reasons": [{"reason": "...", "count": 3}],   # most frequent first
      "notes": ["..."],                             # what the selection left out, and why
      "summary": {"nginx": {"passed": 10, "failed": 1, "unsupported": 2, "skipped": 0,
                            "total": 13}, "varnish": {...}},
      "results": [
        {"check_id": "rule-static-hit", "description": "...", "engine": "nginx",
         "outcome": "failed",                      # passed | failed | unsupported | skipped
         "message": "...", "details": ["...", ...], "duration": 0.052, "tags": ["rule"]}
      ],
      "conformance": {                              # only when rfc checks ran (--checks rfc)
        "nginx": {"passed": 80, "failed": 3, "engine_limit": 9, "skipped": 0,
                  "sections": {"RFC 9111 §4.2.1": {"passed": ["rfc...."], "failed": [],
                                                   "engine_limit": [], "skipped": []}},
                  "limits": [{"check_id": "rfc.age.on-hit", "capability": "http.age",
                              "how": "...", "alternative": "..."}]},
        "varnish": {...}
      }
    }

``conformance`` reads the rfc family's results (tag ``rfc``): the RFC section each check's
description starts with, and the ``http.*`` capability among its tags that makes a result an
engine limit (``unsupported``), with the capability table's alternative.

``from_json`` reads that document back into a ``RunResult``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, TextIO

from cachewright.generator.capabilities import FEATURES

from .results import OUTCOMES, CheckResult, Outcome, RunResult

FORMAT: Final = "cachewright-test-results"
FORMAT_VERSION: Final = 1

CELL: Final[Mapping[Outcome, str]] = {
    "passed": "PASS", "failed": "FAIL", "unsupported": "UNSUPPORTED", "skipped": "SKIP"}
NOT_RUN: Final = "-"
_SGR: Final[Mapping[Outcome, str]] = {
    "passed": "32", "failed": "1;31", "unsupported": "33", "skipped": "2"}
# Characters XML 1.0 cannot hold at all (not even escaped): shown as \xNN instead.
#: the rfc family: its tag, the citation its descriptions start with, its outcome names
RFC_TAG: Final = "rfc"
_SECTION: Final = re.compile(r"^(RFC \d+ §[0-9.]+)")
_CONFORMANCE: Final[Mapping[Outcome, str]] = {
    "passed": "passed", "failed": "failed", "unsupported": "engine_limit", "skipped": "skipped"}
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --------------------------------------------------------------------------- colour


def should_color(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output for ``stream``: a TTY, unless NO_COLOR is set (no-color.org)
    or TERM is ``dumb``; FORCE_COLOR turns colour on even when not a TTY."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    return _isatty(stream) and env.get("TERM") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream is not a terminal
        return False


def _paint(text: str, sgr: str, color: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if color else text


# --------------------------------------------------------------------------- terminal table


def failures_only(run: RunResult, color: bool) -> str:
    """The ``--quiet`` report: every failure's details, why checks were skipped, what the
    selection left out, then the summary line."""
    parts = [_failure_block(result, color) for result in run.failures()]
    skips = "\n".join([*skip_lines(run), *(f"NOTE {note}" for note in run.notes)])
    extra = [text for text in (skips, conformance_line(run)) if text]
    return "\n\n".join([*parts, *extra, summary_line(run, color)]) + "\n"


def notes(run: RunResult) -> str:
    """The ``--verbose`` extra: what passed checks noted (e.g. the negotiated TLS versions)."""
    return "\n".join(f"PASS {r.check_id} [{r.engine}]: {r.message}" for r in run.results
                     if r.outcome == "passed" and r.message)


def table(run: RunResult, color: bool, verbose: bool = False) -> str:
    """The terminal report: a check × engine table, every failure's details, why checks were
    unsupported or skipped (skips grouped by reason with a count; one line each when
    ``verbose``), the run's notes, and a summary line."""
    parts = [_heading(run), _grid(run, color)]
    failures = run.failures()
    if failures:
        parts.append("\n\n".join(_failure_block(result, color) for result in failures))
    shown = [r for r in run.results if r.message and (
        r.outcome == "unsupported" or (verbose and r.outcome == "skipped"))]
    lines = [_note_line(result) for result in shown]
    if not verbose:
        lines += skip_lines(run)
    lines += [f"NOTE {note}" for note in run.notes]
    if lines:
        parts.append("\n".join(lines))
    parts += [line for line in [conformance_line(run)] if line]
    parts.append(summary_line(run, color))
    return "\n\n".join(parts) + "\n"


def skip_lines(run: RunResult) -> list[str]:
    """One line per reason checks were skipped, with how many results it covers."""
    return [f"SKIP {count}× {reason}" for reason, count in run.skip_reasons()]


def _heading(run: RunResult) -> str:
    return (f"cachewright test: policy {run.policy_name} ({run.policy_file}), "
            f"runtime {run.runtime}, engines {', '.join(run.engines) or 'none'}")


def _grid(run: RunResult, color: bool) -> str:
    header: list[tuple[str, Outcome | None]] = [("CHECK", None), *((e.upper(), None) for e in run.engines)]
    rows = [_row(run, check_id) for check_id in run.check_ids()]
    widths = [max(len(row[i][0]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_line(header, widths, "DESCRIPTION", color)]
    lines += [_line(row, widths, _description(run, check_id), color)
              for check_id, row in zip(run.check_ids(), rows, strict=True)]
    return "\n".join(lines)


def _line(cells: list[tuple[str, Outcome | None]], widths: list[int], last: str, color: bool) -> str:
    padded = [_cell(text, outcome, width, color) for (text, outcome), width in zip(cells, widths, strict=True)]
    return "  ".join([*padded, last]).rstrip()


def _description(run: RunResult, check_id: str) -> str:
    return next((r.description for r in run.results if r.check_id == check_id), "")


def _row(run: RunResult, check_id: str) -> list[tuple[str, Outcome | None]]:
    results = [run.result(check_id, engine) for engine in run.engines]
    cells: list[tuple[str, Outcome | None]] = [(check_id, None)]
    return cells + [(CELL[r.outcome], r.outcome) if r else (NOT_RUN, None) for r in results]


def _cell(text: str, outcome: Outcome | None, width: int, color: bool) -> str:
    padded = text.ljust(width)  # pad before painting: escape codes have no width
    return _paint(padded, _SGR[outcome], color) if outcome is not None else padded


def _failure_block(result: CheckResult, color: bool) -> str:
    title = _paint(f"FAIL {result.check_id} [{result.engine}]", _SGR["failed"], color)
    lines = [f"{title}: {result.description}"]
    if result.message:
        lines.append(f"  {result.message}")
    lines += [f"    {line}" for detail in result.details for line in detail.splitlines() or [""]]
    return "\n".join(lines)


def _note_line(result: CheckResult) -> str:
    return f"{CELL[result.outcome]} {result.check_id} [{result.engine}]: {result.message}"


def summary_line(run: RunResult, color: bool = False) -> str:
    """One line: the verdict, the run's duration and the counts per engine."""
    per_engine = []
    for summary in run.summaries():
        counts = [f"{summary.count(o)} {o}" for o in OUTCOMES if summary.count(o) or o == "passed"]
        per_engine.append(f"{summary.engine}: {', '.join(counts)}")
    return f"{verdict_text(run, color)} in {run.duration:.1f}s — {'; '.join(per_engine) or 'no engines'}"


def conformance_line(run: RunResult) -> str:
    """One line per engine of the rfc family's results (empty when none ran)."""
    found = conformance(run)
    lines = []
    for engine, entry in found.items():
        limits = sorted({str(item["capability"]) for item in entry["limits"]})
        named = f" ({', '.join(limits)})" if limits else ""
        lines.append(f"RFC conformance {engine}: {entry['passed']} passed, {entry['failed']} failed, "
                     f"{entry['engine_limit']} engine limits{named}, {entry['skipped']} skipped")
    return "\n".join(lines)


def conformance(run: RunResult) -> dict[str, dict[str, Any]]:
    """Per engine, the rfc family's results: counts, check ids by RFC section and outcome, and
    each engine limit with its capability and the table's alternative ({} when none ran)."""
    return conformance_of(run.results)


def conformance_of(results: Iterable[CheckResult]) -> dict[str, dict[str, Any]]:
    """``conformance`` of any results (``compare`` runs the family outside a ``RunResult``)."""
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        if RFC_TAG not in result.tags:
            continue
        entry = found.setdefault(result.engine, {**{k: 0 for k in _CONFORMANCE.values()},
                                                 "sections": {}, "limits": []})
        kind = _CONFORMANCE[result.outcome]
        entry[kind] += 1
        section = _section(result.description)
        entry["sections"].setdefault(section, {k: [] for k in _CONFORMANCE.values()})[kind].append(
            result.check_id)
        if result.outcome == "unsupported":
            entry["limits"].append(_limit(result))
    return found


def _section(description: str) -> str:
    found = _SECTION.match(description)
    return found.group(1) if found else "unspecified"


def _limit(result: CheckResult) -> dict[str, str]:
    capability = next((t for t in result.tags if t in FEATURES or t.startswith("http.")), "")
    feature = FEATURES.get(capability)
    return {"check_id": result.check_id, "capability": capability, "how": result.message,
            "alternative": feature.alternative if feature else ""}


def verdict_text(run: RunResult, color: bool = False) -> str:
    """``PASSED``, ``FAILED (2 failed, 3 skipped)`` or ``INCOMPLETE (3 skipped)``; with
    ``--allow-skips`` an incomplete run says the skips were allowed."""
    failed, skipped = len(run.failures()), len(run.skipped)
    counts = [f"{failed} failed"] if failed else []
    counts += [f"{skipped} skipped"] if skipped else []
    if run.verdict == "failed":
        return _paint(f"FAILED ({', '.join(counts)})", _SGR["failed"], color)
    if run.verdict == "incomplete":
        allowed = ", allowed by --allow-skips" if run.allow_skips else ""
        return _paint(f"INCOMPLETE ({skipped} skipped{allowed})", _SGR["unsupported"], color)
    return _paint("PASSED", _SGR["passed"], color)


# --------------------------------------------------------------------------- JSON


def to_json(run: RunResult) -> str:
    """The run as a JSON document (shape in this module's docstring), ending in a newline."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "policy": {"name": run.policy_name, "file": run.policy_file},
        "runtime": run.runtime,
        "engines": list(run.engines),
        "started": run.started.isoformat(),
        "duration": round(run.duration, 3),
        "passed": run.passed,
        "verdict": run.verdict,
        "allow_skips": run.allow_skips,
        "exit_code": run.exit_code,
        "skip_reasons": [{"reason": reason, "count": count} for reason, count in run.skip_reasons()],
        "notes": list(run.notes),
        "summary": {s.engine: {**{o: s.count(o) for o in OUTCOMES}, "total": s.total}
                    for s in run.summaries()},
        "results": [_result_json(result) for result in run.results],
    }
    found = conformance(run)
    if found:
        document["conformance"] = found
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _result_json(result: CheckResult) -> dict[str, object]:
    return {
        "check_id": result.check_id,
        "description": result.description,
        "engine": result.engine,
        "outcome": result.outcome,
        "message": result.message,
        "details": list(result.details),
        "duration": round(result.duration, 3),
        "tags": list(result.tags),
    }


def from_json(text: str) -> RunResult:
    """Read a document written by ``to_json``; raises ValueError for anything else."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format_version {doc.get('format_version')!r}")
    try:
        return RunResult(
            policy_name=str(doc["policy"]["name"]), policy_file=str(doc["policy"]["file"]),
            runtime=str(doc["runtime"]), engines=tuple(str(e) for e in doc["engines"]),
            results=tuple(_result_from(raw) for raw in doc["results"]),
            started=datetime.fromisoformat(doc["started"]), duration=float(doc["duration"]),
            allow_skips=bool(doc.get("allow_skips", False)),
            notes=tuple(str(n) for n in doc.get("notes", ())))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {FORMAT} document: {exc!r}") from exc


def _result_from(raw: dict[str, Any]) -> CheckResult:
    outcome = raw["outcome"]
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    return CheckResult(
        check_id=str(raw["check_id"]), description=str(raw["description"]),
        engine=str(raw["engine"]), outcome=outcome, message=str(raw["message"]),
        details=tuple(str(d) for d in raw["details"]), duration=float(raw["duration"]),
        tags=tuple(str(t) for t in raw["tags"]))


# --------------------------------------------------------------------------- JUnit XML


def to_junit(run: RunResult) -> str:
    """JUnit XML: one ``testsuite`` per engine, one ``testcase`` per check (classname
    ``cachewright.<engine>``); failures carry message and details, unsupported and skipped
    checks are ``skipped``."""
    root = ET.Element("testsuites", {"name": f"cachewright {run.policy_name}",
                                     **_counts(run.results, run.duration)})
    for engine in run.engines:
        root.append(_suite(run, engine))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _counts(results: tuple[CheckResult, ...], duration: float) -> dict[str, str]:
    outcomes = [r.outcome for r in results]
    skipped = outcomes.count("unsupported") + outcomes.count("skipped")
    return {"tests": str(len(results)), "failures": str(outcomes.count("failed")),
            "errors": "0", "skipped": str(skipped), "time": f"{duration:.3f}"}


def _suite(run: RunResult, engine: str) -> ET.Element:
    results = tuple(r for r in run.results if r.engine == engine)
    suite = ET.Element("testsuite", {"name": f"cachewright.{engine}",
                                     **_counts(results, sum(r.duration for r in results)),
                                     "timestamp": run.started.isoformat(timespec="seconds")})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("policy", run.policy_name), ("policy_file", run.policy_file),
                        ("runtime", run.runtime), ("engine", engine), ("verdict", run.verdict),
                        ("allow_skips", str(run.allow_skips).lower())):
        ET.SubElement(properties, "property", {"name": name, "value": _xml_text(value)})
    suite.extend(_testcase(result) for result in results)
    return suite


def _testcase(result: CheckResult) -> ET.Element:
    case = ET.Element("testcase", {"name": _xml_text(result.check_id),
                                   "classname": f"cachewright.{result.engine}",
                                   "time": f"{result.duration:.3f}"})
    text = _xml_text("\n".join([result.description, *result.details]))
    if result.outcome == "failed":
        failure = ET.SubElement(case, "failure", {"message": _xml_text(result.message or "failed"),
                                                  "type": "CheckFailed"})
        failure.text = text
    elif result.outcome in ("unsupported", "skipped"):
        message = f"{result.outcome}: {result.message}" if result.message else result.outcome
        ET.SubElement(case, "skipped", {"message": _xml_text(message)})
    return case


def _xml_text(value: str) -> str:
    """``value`` without characters XML cannot carry (ElementTree escapes the rest)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", value)


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress indicator, rewritten in place with ``\\r`` on a TTY; silent otherwise.

    ``with Progress(sys.stderr, total=n) as progress: progress.start("nginx rule-x") ...
    progress.done(result)``; the line is cleared on exit so the report starts on a clean line.
    """

    def __init__(self, stream: TextIO, total: int, enabled: bool | None = None) -> None:
        self.stream = stream
        self.total = total
        self.enabled = _isatty(stream) if enabled is None else enabled
        self.finished = 0
        self.failed = 0
        self._width = 0
        self._lock = threading.Lock()  # engines may run their checks in parallel threads

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def start(self, label: str) -> None:
        """Show that the check ``label`` (e.g. ``"varnish scenario:cart"``) is running."""
        with self._lock:
            self._show(f"[{self.finished + 1}/{self.total}{self._failed()}] {label}")

    def done(self, result: CheckResult) -> None:
        """Count a finished check."""
        with self._lock:
            self.finished += 1
            self.failed += result.failed
            self._show(f"[{self.finished}/{self.total}{self._failed()}] {result.engine} {result.check_id}")

    def close(self) -> None:
        """Erase the line."""
        with self._lock:
            if self.enabled and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0

    def _failed(self) -> str:
        return f", {self.failed} failed" if self.failed else ""

    def _show(self, text: str) -> None:
        if not self.enabled:
            return
        columns = shutil.get_terminal_size((80, 24)).columns - 1
        text = text if len(text) <= columns else text[: max(columns - 1, 0)] + "…"
        self.stream.write("\r" + text.ljust(self._width))  # the padding erases a longer old line
        self.stream.flush()
        self._width = len(text)
