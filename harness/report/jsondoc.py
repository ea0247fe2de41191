"""A ``RunResult`` as a JSON document, and back.

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

``conformance`` is what ``report.conformance`` finds in the rfc family's results (tag ``rfc``).
``from_json`` reads that document back into a ``RunResult``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from .conformance import conformance
from .results import OUTCOMES, CheckResult, RunResult

FORMAT: Final = "cachewright-test-results"
FORMAT_VERSION: Final = 1


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
