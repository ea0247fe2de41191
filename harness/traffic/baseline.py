"""``test --replay``: no request of the traffic changes outcome relative to a baseline run.

Each engine replays the traffic in order, one request at a time and without the log's gaps (so
the outcome does not depend on timing), on its own cold origin count. Every distinct request
(method, host, target) gets an outcome: the rule the engine reported, the sequence of its
cache outcomes (``miss hit hit``; a status of 400 or more is written before the outcome,
``400 bypass``) and the origin's count for its path after the run, the ground truth. The first
run of an engine records them in the baseline file; later runs compare, and fail naming the
requests whose outcome changed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachewright.generator.errors import UsageError
from cachewright.generator.model import Policy

from ..report.results import CheckResult
from ..runtime.api import Stack
from ..runtime.prepare import request_host
from .drive import Measured, Sent, drive
from .entry import Entry, Malformed

FORMAT = "cachewright-replay-baseline"
CHECK_ID = "replay.baseline"
DESCRIPTION = "no request in the replayed traffic changes outcome relative to the baseline run"
#: changed requests listed in a failure (the count says how many in all)
SHOWN = 10
MAX_REQUESTS = 10_000
MAX_SECONDS = 300.0
Reader = Callable[[Path], Iterable[Entry | Malformed]]


@dataclass(frozen=True)
class Outcome:
    """What one distinct request did over the replay."""

    rule: str
    outcomes: tuple[str, ...]
    origin: int
    line: int

    def describe(self) -> str:
        return f"rule {self.rule}, {' '.join(self.outcomes)}, origin {self.origin}"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "outcomes": list(self.outcomes), "origin": self.origin, "line": self.line}


@dataclass
class _Recorder:
    """Collects each distinct request's rule and outcome sequence as the replay goes."""

    host: str
    rules: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, list[str]] = field(default_factory=dict)

    def __call__(self, sent: Sent) -> None:
        entry = sent.entry
        key = f"{entry.method} {(entry.host or self.host).lower()}{entry.target}"
        word = sent.outcome if sent.status is not None and sent.status < 400 else f"{sent.status} {sent.outcome}"
        self.rules.setdefault(key, sent.rule)
        self.lines.setdefault(key, entry.line)
        self.paths.setdefault(key, sent.path)
        self.outcomes.setdefault(key, []).append(word)

    def result(self, counts: dict[str, int]) -> dict[str, Outcome]:
        return {key: Outcome(self.rules[key], tuple(words), counts.get(self.paths[key], 0), self.lines[key])
                for key, words in self.outcomes.items()}


def record(stack: Stack, engine: str, policy: Policy,
           entries: Iterable[Entry | Malformed]) -> tuple[dict[str, Outcome], Measured]:
    """Replay ``entries`` through ``engine`` in order, one at a time, and each distinct
    request's outcome."""
    from ..origin import OriginClient

    recorder = _Recorder(request_host(policy))
    measured = drive(stack, engine, policy, entries, speed=math.inf, max_requests=MAX_REQUESTS,
                     max_seconds=MAX_SECONDS, concurrency=1, observe=recorder)
    with OriginClient(stack.origin.control_url, timeout=60.0) as origin:
        counts = dict(origin.counts().paths)
    return recorder.result(counts), measured


def changes(before: dict[str, Outcome], now: dict[str, Outcome]) -> list[str]:
    """One line per request whose outcome differs, in log order."""
    keys = sorted(before.keys() | now.keys(), key=lambda k: (now.get(k) or before[k]).line)
    out = []
    for key in keys:
        old, new = before.get(key), now.get(key)
        either = new or old
        if either is not None and not _same(old, new):
            line = either.line
            was = old.describe() if old else "not in the baseline"
            is_ = new.describe() if new else "not replayed"
            out.append(f"line {line}: {key}: baseline {was}; now {is_}")
    return out


def _same(a: Outcome | None, b: Outcome | None) -> bool:
    return a is not None and b is not None and (a.rule, a.outcomes, a.origin) == (b.rule, b.outcomes, b.origin)


def load(path: Path) -> dict[str, dict[str, Outcome]]:
    """The baseline file's outcomes by engine (an absent file: none); bad content is a
    ``UsageError`` naming the file."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"not a replay baseline (expected \"format\": \"{FORMAT}\")")
        return {engine: {key: Outcome(str(o["rule"]), tuple(str(w) for w in o["outcomes"]),
                                      int(o["origin"]), int(o["line"])) for key, o in requests.items()}
                for engine, requests in raw["engines"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: cannot read the replay baseline: {exc} (delete it to record "
                         "a new one)") from exc


def save(path: Path, engines: dict[str, dict[str, Outcome]], log: Path) -> None:
    """Write the baseline whole or not at all (a temporary file renamed into place)."""
    doc = {"format": FORMAT, "version": 1, "traffic": str(log),
           "engines": {e: {k: o.to_json() for k, o in reqs.items()} for e, reqs in sorted(engines.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)


def baseline_path(log: Path, given: Path | None) -> Path:
    """``--replay-baseline``, else ``LOG.baseline.json`` beside the traffic file."""
    return given or log.with_name(log.name + ".baseline.json")


def check(stack: Stack, policy: Policy, engines: Sequence[str], log: Path, baseline: Path,
          read: Reader) -> list[CheckResult]:
    """Replay ``log`` (read by ``read``) on each engine and compare with ``baseline``; an
    engine the baseline lacks is recorded into it."""
    stored = load(baseline)
    results = []
    for engine in engines:
        started = time.monotonic()
        now, measured = record(stack, engine, policy, read(log))
        if engine not in stored:
            stored[engine] = now
            save(baseline, stored, log)
            message = f"recorded the baseline ({_summary(now, measured)}) in {baseline}"
            results.append(_result(engine, "passed", message, (), started))
            continue
        changed = changes(stored[engine], now)
        if changed:
            message = (f"{len(changed)} of {len(now)} requests changed outcome relative to "
                       f"{baseline}: {changed[0]}")
            more = [f"... and {len(changed) - SHOWN} more"] if len(changed) > SHOWN else []
            results.append(_result(engine, "failed", message, (*changed[:SHOWN], *more), started))
        else:
            results.append(_result(engine, "passed", f"unchanged: {_summary(now, measured)}", (), started))
    return results


def _summary(now: dict[str, Outcome], measured: Measured) -> str:
    extra = [f"{n} {what}" for n, what in ((measured.malformed, "malformed lines skipped"),
                                           (measured.refused, "refused (400)")) if n]
    if measured.stopped:
        extra.append(f"stopped early: {measured.stopped}")
    return f"{len(now)} distinct requests of {measured.sent}" + "".join(f", {e}" for e in extra)


def _result(engine: str, outcome: str, message: str, details: tuple[str, ...],
            started: float) -> CheckResult:
    return CheckResult(CHECK_ID, DESCRIPTION, engine, outcome,  # type: ignore[arg-type]
                       message, details, time.monotonic() - started, ("replay",))
