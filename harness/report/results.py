"""What a harness run produces: one ``CheckResult`` per check and engine, gathered in a ``RunResult``.

The records are plain frozen values so that every reporter (terminal table, JSON, JUnit XML,
the HTML comparison) reads the same thing, and a JSON report can be read back into them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias

Outcome: TypeAlias = Literal["passed", "failed", "unsupported", "skipped"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("passed", "failed", "unsupported", "skipped")
Verdict: TypeAlias = Literal["passed", "failed", "incomplete"]

#: ``cachewright test``'s exit codes by verdict (1 check failed, 2 bad policy and 3 environment
#: come from the error classes; 4 is a run that passed what ran but skipped checks)
EXIT_PASSED: Final = 0
EXIT_FAILED: Final = 1
EXIT_INCOMPLETE: Final = 4


@dataclass(frozen=True)
class CheckResult:
    """One check on one engine.

    ``message`` says in one line why a check failed, is unsupported or was skipped; ``details``
    explain a failure: the requests and responses, the origin's counts, the engine's log tail.
    """

    check_id: str
    description: str
    engine: str
    outcome: Outcome
    message: str = ""
    details: tuple[str, ...] = ()
    duration: float = 0.0
    tags: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether this result fails the run."""
        return self.outcome == "failed"


@dataclass(frozen=True)
class EngineSummary:
    """How many checks had each outcome on one engine."""

    engine: str
    passed: int = 0
    failed: int = 0
    unsupported: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        """Every result on the engine, whatever its outcome."""
        return self.passed + self.failed + self.unsupported + self.skipped

    def count(self, outcome: Outcome) -> int:
        """The number of results with ``outcome``."""
        counts = {"passed": self.passed, "failed": self.failed,
                  "unsupported": self.unsupported, "skipped": self.skipped}
        return counts[outcome]


@dataclass(frozen=True)
class RunResult:
    """Every result of one ``cachewright test`` run, in the order the checks ran."""

    policy_name: str
    policy_file: str
    runtime: str
    engines: tuple[str, ...]
    results: tuple[CheckResult, ...]
    started: datetime
    duration: float
    #: skipped checks were accepted (``--allow-skips``): the exit code is 0, the verdict still
    #: says what was skipped
    allow_skips: bool = False
    #: what the run's selection left out and why, one line each (e.g. with ``--origin``, the
    #: checks that need the sample origin)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when no result failed (unsupported and skipped checks do not fail a run)."""
        return not any(result.failed for result in self.results)

    @property
    def skipped(self) -> tuple[CheckResult, ...]:
        """The results of checks that were selected but did not run, in run order."""
        return tuple(result for result in self.results if result.outcome == "skipped")

    @property
    def verdict(self) -> Verdict:
        """``failed`` when a check failed; else ``incomplete`` when one was skipped; else
        ``passed``. ``unsupported`` is a result, not a gap: the capability matrix says the
        engine lacks the feature, and the policy compiled for it only with that gap accepted."""
        if not self.passed:
            return "failed"
        return "incomplete" if self.skipped else "passed"

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 0 passed (or incomplete with ``allow_skips``), 1 a check failed,
        4 incomplete (checks were skipped)."""
        if self.verdict == "failed":
            return EXIT_FAILED
        if self.verdict == "incomplete" and not self.allow_skips:
            return EXIT_INCOMPLETE
        return EXIT_PASSED

    def skip_reasons(self) -> tuple[tuple[str, int], ...]:
        """Each distinct reason checks were skipped for, with how many results it covers, most
        frequent first (ties in run order)."""
        return tuple(Counter(r.message or "no reason given" for r in self.skipped).most_common())

    def summary(self, engine: str) -> EngineSummary:
        """Counts by outcome of ``engine``'s results."""
        outcomes = [r.outcome for r in self.results if r.engine == engine]
        return EngineSummary(engine, *(outcomes.count(outcome) for outcome in OUTCOMES))

    def summaries(self) -> tuple[EngineSummary, ...]:
        """One summary per engine, in ``engines`` order."""
        return tuple(self.summary(engine) for engine in self.engines)

    def check_ids(self) -> tuple[str, ...]:
        """Every check id once, in the order each first ran."""
        return tuple(dict.fromkeys(result.check_id for result in self.results))

    def result(self, check_id: str, engine: str) -> CheckResult | None:
        """The result of ``check_id`` on ``engine`` (None when it did not run there)."""
        for result in self.results:
            if result.check_id == check_id and result.engine == engine:
                return result
        return None

    def failures(self) -> tuple[CheckResult, ...]:
        """The failed results, in run order."""
        return tuple(result for result in self.results if result.failed)
