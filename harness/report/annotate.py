"""What ``--format github`` says, and where: a command's error, the compiler's warnings and a
``test`` run's failed checks as annotations on the policy lines they are about.

``github.py`` makes (and escapes) the workflow commands; this module only decides each
annotation's level, text and place. Commands reach it through ``commands/common.py``
(``add_format``, ``annotating_errors``, ``warn``), which imports it only under ``--format github``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from cachewright.generator.errors import (
    CachewrightError,
    CapabilityError,
    PolicyError,
    ToolMissing,
    UsageError,
    VerifyError,
)

from .github import Annotation

if TYPE_CHECKING:
    from cachewright.generator.model import Policy

    from .results import CheckResult, RunResult

#: a file and a 1-based line and column in it (0, 0: the whole file)
Place = tuple[str, int, int]

TITLES: tuple[tuple[type[CachewrightError], str], ...] = (
    (PolicyError, "policy error"), (CapabilityError, "unsupported by an engine"),
    (VerifyError, "rejected by an engine"), (ToolMissing, "tool missing"),
    (UsageError, "cannot be used"))


def error_annotations(exc: CachewrightError, file: str) -> list[Annotation]:
    """``exc`` as errors: each policy problem at its line and column; each engine's refusal of a
    capability error at the policy line it names (else on ``file``); anything else on ``file``."""
    title = "cachewright: " + next((t for kind, t in TITLES if isinstance(exc, kind)), "error")
    if isinstance(exc, PolicyError):
        return [Annotation("error", f"{p.path}: {p.message}" if p.path else p.message,
                           p.file, p.line, p.col, title) for p in exc.problems]
    if isinstance(exc, CapabilityError):
        return [located("error", line, file, title) for line in str(exc).splitlines() if line]
    return [Annotation("error", str(exc), file, title=title)]


def warning_annotations(lines: Iterable[str], source: str) -> list[Annotation]:
    """The compiler's warnings (``file:line:col: path: warning: ...``), each at its place."""
    return [located("warning", line.replace(": warning: ", ": ", 1), source, "cachewright: warning")
            for line in lines]


def located(level: str, text: str, source: str, title: str) -> Annotation:
    """``text`` at the ``source:line:col`` it names (that prefix taken out of the message; a fleet's
    refusals put ``tier NAME (engine):`` before it), else on the whole of ``source``."""
    match = re.search(re.escape(source) + r":(\d+):(\d+): ", text) if source else None
    if match is None:
        return Annotation(level, text, source, title=title)
    message = text[:match.start()] + text[match.end():]
    return Annotation(level, message, source, int(match.group(1)), int(match.group(2)), title)


def check_annotations(result: RunResult, places: Mapping[str, Place]) -> list[Annotation]:
    """Each failed check of ``result`` as one error (its engines together: GitHub shows ten per
    step) at the place of what it is about (``places``: check id, or ``rule.NAME`` → place, from
    ``check_places``), else on the policy file."""
    failed: dict[str, list[CheckResult]] = {}
    for r in result.results:
        if r.failed:
            failed.setdefault(r.check_id, []).append(r)
    return [_failed(check_id, rs, place_of(check_id, places, result.policy_file))
            for check_id, rs in failed.items()]


def _failed(check_id: str, results: list[CheckResult], place: Place) -> Annotation:
    file, line, col = place
    why = "; on ".join(f"{r.engine}: {r.message}" for r in results)
    engines = ", ".join(r.engine for r in results)
    return Annotation("error", f"{check_id} failed on {why}", file, line, col,
                      f"cachewright test: {check_id} ({engines})")


def place_of(check_id: str, places: Mapping[str, Place], policy_file: str) -> Place:
    """Where ``check_id`` points: its own place (a scenario's entry), else its rule's
    (``rule.NAME...``, ``blackbox.rule.NAME...``), else the whole policy file."""
    parts = check_id.removeprefix("blackbox.").split(".")
    rule = parts[1] if len(parts) > 1 and parts[0] == "rule" else None
    return places.get(check_id) or (places.get(f"rule.{rule}") if rule else None) or (policy_file, 0, 0)


def check_places(policy: Policy, scenarios: Mapping[str, str]) -> dict[str, Place]:
    """Each rule's place in the policy (as ``rule.NAME``), and each scenario's (``{check id: "file:line"}``,
    from ``Scenario.source``) by check id."""
    places: dict[str, Place] = {}
    for rule in policy.rules:
        mark = policy.marks.get(f"rules[{rule.index}]")
        if mark is not None:
            places[f"rule.{rule.name}"] = (policy.source, *mark)
    for check_id, source in scenarios.items():
        file, _, line = source.rpartition(":")
        if file and line.isdigit():
            places[check_id] = (file, int(line), 0)
    return places
