"""The terminal report (a check × engine table, failures, skips, a summary line) and the live
progress line."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Final, TextIO

from .conformance import conformance_line
from .results import OUTCOMES, CheckResult, Outcome, RunResult

CELL: Final[Mapping[Outcome, str]] = {
    "passed": "PASS", "failed": "FAIL", "unsupported": "UNSUPPORTED", "skipped": "SKIP"}
NOT_RUN: Final = "-"
_SGR: Final[Mapping[Outcome, str]] = {
    "passed": "32", "failed": "1;31", "unsupported": "33", "skipped": "2"}


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
