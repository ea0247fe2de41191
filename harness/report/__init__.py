"""What a harness run produces (``results``) and its reporters: a terminal table with a live
progress line (``terminal``), a JSON document that reads back (``jsondoc``), JUnit XML
(``junit``), and the rfc family's conformance summary they all show (``conformance``).

Every reporter reads the same frozen ``RunResult``; none decides anything about a check.
"""

from .conformance import RFC_TAG, conformance, conformance_line, conformance_of
from .jsondoc import FORMAT, FORMAT_VERSION, from_json, to_json
from .junit import to_junit
from .results import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_PASSED,
    OUTCOMES,
    CheckResult,
    EngineSummary,
    Outcome,
    RunResult,
)
from .terminal import (
    CELL,
    NOT_RUN,
    Progress,
    failures_only,
    notes,
    should_color,
    skip_lines,
    summary_line,
    table,
    verdict_text,
)

__all__ = [
    "CELL", "EXIT_FAILED", "EXIT_INCOMPLETE", "EXIT_PASSED", "FORMAT", "FORMAT_VERSION", "NOT_RUN",
    "OUTCOMES", "RFC_TAG", "CheckResult", "EngineSummary", "Outcome", "Progress", "RunResult",
    "conformance", "conformance_line", "conformance_of", "failures_only", "from_json", "notes",
    "should_color", "skip_lines", "summary_line", "table", "to_json", "to_junit", "verdict_text",
]
