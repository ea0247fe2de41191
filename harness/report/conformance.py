"""The rfc family's results per engine: counts, RFC sections, engine limits.

It reads the results tagged ``rfc``: the RFC section each check's description starts with, and the
``http.*`` capability among its tags that makes a result an engine limit (``unsupported``), with
the capability table's alternative.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from cachewright.generator.capabilities import FEATURES

from .results import CheckResult, Outcome, RunResult

#: the rfc family: its tag, the citation its descriptions start with, its outcome names
RFC_TAG: Final = "rfc"
_SECTION: Final = re.compile(r"^(RFC \d+ §[0-9.]+)")
_CONFORMANCE: Final[Mapping[Outcome, str]] = {
    "passed": "passed", "failed": "failed", "unsupported": "engine_limit", "skipped": "skipped"}


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
