"""A ``RunResult`` as JUnit XML: one ``testsuite`` per engine, one ``testcase`` per check."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

from .results import CheckResult, RunResult

# Characters XML 1.0 cannot hold at all (not even escaped): shown as \xNN instead.
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
