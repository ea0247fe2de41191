"""Tests for the harness's result records and reporters: table, JSON, JUnit XML, progress line."""

from __future__ import annotations

import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cachewright.harness.report import (
    Progress,
    failures_only,
    from_json,
    should_color,
    summary_line,
    table,
    to_json,
    to_junit,
)
from cachewright.harness.report.results import CheckResult, EngineSummary, Outcome, RunResult

STARTED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def result(check_id: str, engine: str, outcome: Outcome = "passed", message: str = "",
           details: tuple[str, ...] = (), duration: float = 0.0,
           tags: tuple[str, ...] = ()) -> CheckResult:
    return CheckResult(check_id, f"{check_id} works", engine, outcome, message, details, duration,
                       tags)


def make_run(*results: CheckResult) -> RunResult:
    return RunResult("shop", "examples/shop/policy.yaml", "local", ("nginx", "varnish"), results,
                     STARTED, 12.3456)


FAILED = result("rule-products-hit", "varnish", "failed",
                message="step 2 'again': expected cache hit, got miss",
                details=("GET https://shop.example.com/products/x -> 200", "origin counts: /products/x 2",
                         "varnish log (last 20 lines):\n  Child starts"),
                duration=0.25, tags=("rule",))
RUN = make_run(
    result("rule-products-hit", "nginx", duration=0.1, tags=("rule",)),
    FAILED,
    result("purge-tag", "nginx", "unsupported", message="purge.tag is unsupported on nginx"),
    result("purge-tag", "varnish"),
    result("scenario:cart", "varnish", "skipped", message="runs on varnish only"),
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------- results


def test_run_passes_unless_a_result_failed() -> None:
    assert not RUN.passed and RUN.exit_code == 1
    assert make_run(*(r for r in RUN.results if not r.failed)).passed
    assert make_run().passed and make_run().exit_code == 0


def test_summaries_count_by_outcome() -> None:
    assert RUN.summaries() == (EngineSummary("nginx", passed=1, unsupported=1),
                               EngineSummary("varnish", passed=1, failed=1, skipped=1))
    assert RUN.summary("varnish").total == 3
    assert RUN.check_ids() == ("rule-products-hit", "purge-tag", "scenario:cart")
    assert RUN.result("scenario:cart", "nginx") is None
    assert RUN.failures() == (FAILED,)


# --------------------------------------------------------------------------- table


def test_table_rows_cells_and_summary() -> None:
    text = table(RUN, color=False)
    lines = text.splitlines()
    assert lines[0] == ("cachewright test: policy shop (examples/shop/policy.yaml), runtime local, "
                        "engines nginx, varnish")
    assert lines[2:6] == [
        "CHECK              NGINX        VARNISH  DESCRIPTION",
        "rule-products-hit  PASS         FAIL     rule-products-hit works",
        "purge-tag          UNSUPPORTED  PASS     purge-tag works",
        "scenario:cart      -            SKIP     scenario:cart works",
    ]
    assert lines[-1] == ("FAILED (1 failed, 1 skipped) in 12.3s — nginx: 1 passed, 1 unsupported; "
                         "varnish: 1 passed, 1 failed, 1 skipped")
    assert "\x1b[" not in text


def test_table_shows_every_failure_with_its_details() -> None:
    text = table(RUN, color=False)
    block = text[text.index("FAIL rule-products-hit [varnish]"):]
    assert block.splitlines()[:6] == [
        "FAIL rule-products-hit [varnish]: rule-products-hit works",
        "  step 2 'again': expected cache hit, got miss",
        "    GET https://shop.example.com/products/x -> 200",
        "    origin counts: /products/x 2",
        "    varnish log (last 20 lines):",
        "      Child starts",
    ]
    assert "UNSUPPORTED purge-tag [nginx]: purge.tag is unsupported on nginx" in text
    assert "SKIP 1× runs on varnish only" in text
    assert "SKIP scenario:cart [varnish]: runs on varnish only" in table(RUN, False, verbose=True)


def test_table_colours_cells_only_when_asked() -> None:
    text = table(RUN, color=True)
    assert "\x1b[32mPASS       \x1b[0m" in text  # padded before painting: columns stay aligned
    assert "\x1b[1;31mFAIL   \x1b[0m" in text
    assert "\x1b[33mUNSUPPORTED\x1b[0m" in text


SKIPS = make_run(result("a", "nginx"), result("a", "varnish"),
                 *(result(f"s{i}", e, "skipped", message="needs the sample origin")
                   for i in range(3) for e in ("nginx", "varnish")),
                 result("t", "nginx", "skipped", message="too long to wait"),
                 result("u", "nginx", "unsupported", message="no such feature"))


def test_a_run_with_skips_is_incomplete_and_exits_4() -> None:
    assert SKIPS.passed and SKIPS.verdict == "incomplete" and SKIPS.exit_code == 4
    assert SKIPS.skip_reasons() == (("needs the sample origin", 6), ("too long to wait", 1))
    assert summary_line(SKIPS).startswith("INCOMPLETE (7 skipped) in 12.3s — nginx: 1 passed, "
                                          "1 unsupported, 4 skipped")


def test_skips_are_one_line_per_reason_unless_verbose() -> None:
    text = table(SKIPS, color=False)
    assert "SKIP 6× needs the sample origin\nSKIP 1× too long to wait" in text
    assert "SKIP s0 [nginx]" not in text
    assert "UNSUPPORTED u [nginx]: no such feature" in text
    verbose = table(SKIPS, color=False, verbose=True)
    assert verbose.count("needs the sample origin") == 6 and "SKIP 6×" not in verbose
    assert failures_only(SKIPS, False).splitlines()[0] == "SKIP 6× needs the sample origin"


def test_allow_skips_exits_0_and_still_says_incomplete() -> None:
    allowed = replace(SKIPS, allow_skips=True)
    assert allowed.exit_code == 0 and allowed.verdict == "incomplete"
    assert summary_line(allowed).startswith("INCOMPLETE (7 skipped, allowed by --allow-skips)")


def test_a_failure_wins_over_skips() -> None:
    run = replace(SKIPS, results=(*SKIPS.results, result("f", "nginx", "failed")), allow_skips=True)
    assert run.verdict == "failed" and run.exit_code == 1
    assert summary_line(run).startswith("FAILED (1 failed, 7 skipped)")


def test_unsupported_alone_passes() -> None:
    run = make_run(result("a", "nginx"), result("u", "nginx", "unsupported", message="gap"))
    assert run.verdict == "passed" and run.exit_code == 0


def test_run_notes_are_printed_and_kept() -> None:
    run = replace(SKIPS, notes=("12 derived checks need the sample origin",))
    assert "NOTE 12 derived checks need the sample origin" in table(run, color=False)
    assert from_json(to_json(run)).notes == run.notes


def test_summary_line_of_a_passing_run() -> None:
    run = make_run(result("a", "nginx"), result("a", "varnish"))
    assert summary_line(run) == "PASSED in 12.3s — nginx: 1 passed; varnish: 1 passed"
    assert "FAIL" not in table(run, color=False)


@pytest.mark.parametrize(("env", "tty", "expected"), [
    ({}, True, True),
    ({}, False, False),
    ({"NO_COLOR": "1"}, True, False),
    ({"NO_COLOR": ""}, True, True),  # no-color.org: only a non-empty value counts
    ({"TERM": "dumb"}, True, False),
    ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),
])
def test_should_color(env: dict[str, str], tty: bool, expected: bool) -> None:
    stream = Tty() if tty else io.StringIO()
    assert should_color(stream, env) is expected


def test_should_color_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert should_color(Tty()) is False


# --------------------------------------------------------------------------- JSON


def test_json_shape() -> None:
    doc = json.loads(to_json(RUN))
    assert list(doc) == ["format", "format_version", "policy", "runtime", "engines", "started",
                         "duration", "passed", "verdict", "allow_skips", "exit_code",
                         "skip_reasons", "notes", "summary", "results"]
    assert (doc["verdict"], doc["allow_skips"], doc["exit_code"]) == ("failed", False, 1)
    assert doc["skip_reasons"] == [{"reason": "runs on varnish only", "count": 1}]
    assert doc["format"] == "cachewright-test-results" and doc["format_version"] == 1
    assert doc["policy"] == {"name": "shop", "file": "examples/shop/policy.yaml"}
    assert doc["started"] == "2024-05-01T12:00:00+00:00"
    assert doc["duration"] == 12.346
    assert doc["passed"] is False
    assert doc["summary"]["varnish"] == {"passed": 1, "failed": 1, "unsupported": 0, "skipped": 1,
                                         "total": 3}
    assert doc["results"][1] == {
        "check_id": "rule-products-hit", "description": "rule-products-hit works",
        "engine": "varnish", "outcome": "failed",
        "message": "step 2 'again': expected cache hit, got miss",
        "details": list(FAILED.details), "duration": 0.25, "tags": ["rule"]}


def test_json_is_stable_and_reads_back() -> None:
    text = to_json(RUN)
    assert text == to_json(RUN) and text.endswith("}\n")
    back = from_json(text)
    assert back.results == RUN.results
    assert back == RunResult(RUN.policy_name, RUN.policy_file, RUN.runtime, RUN.engines,
                             RUN.results, RUN.started, 12.346)


def test_from_json_rejects_other_documents() -> None:
    with pytest.raises(ValueError, match="not a cachewright-test-results document"):
        from_json('{"format": "other"}')
    with pytest.raises(ValueError, match="unsupported format_version 2"):
        from_json('{"format": "cachewright-test-results", "format_version": 2}')


# --------------------------------------------------------------------------- JUnit XML


def test_junit_suites_cases_failures_and_skips() -> None:
    root = ET.fromstring(to_junit(RUN))
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5", "failures": "1", "errors": "0", "skipped": "2"}
    nginx, varnish = root.findall("testsuite")
    assert nginx.get("name") == "cachewright.nginx" and nginx.get("tests") == "2"
    assert varnish.get("failures") == "1" and varnish.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in nginx.iter("property")}
    assert props == {"policy": "shop", "policy_file": "examples/shop/policy.yaml",
                     "runtime": "local", "engine": "nginx", "verdict": "failed",
                     "allow_skips": "false"}
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    failure = cases[("cachewright.varnish", "rule-products-hit")].find("failure")
    assert failure is not None
    assert failure.get("message") == "step 2 'again': expected cache hit, got miss"
    assert failure.text is not None and "varnish log (last 20 lines):\n  Child starts" in failure.text
    skipped = cases[("cachewright.nginx", "purge-tag")].find("skipped")
    assert skipped is not None and skipped.get("message") == "unsupported: purge.tag is unsupported on nginx"
    assert list(cases[("cachewright.nginx", "rule-products-hit")]) == []
    assert cases[("cachewright.varnish", "rule-products-hit")].get("time") == "0.250"


def test_junit_escapes_markup_and_drops_what_xml_cannot_hold() -> None:
    nasty = result("a<b>&\"c'", "nginx", "failed", message='got <html> & "quotes"\x1b[31m',
                   details=("body: \x00\x07 \ud800 ]]> end",))
    text = to_junit(make_run(nasty))
    root = ET.fromstring(text)
    case = next(root.iter("testcase"))
    assert case.get("name") == "a<b>&\"c'"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == 'got <html> & "quotes"\\x1b[31m'
    assert failure.text is not None and "body: \\x00\\x07 \\ud800 ]]> end" in failure.text


def test_junitparser_reads_it() -> None:
    junitparser = pytest.importorskip("junitparser")
    xml = junitparser.JUnitXml.fromstring(to_junit(RUN))
    suites = list(xml)
    assert [s.name for s in suites] == ["cachewright.nginx", "cachewright.varnish"]
    cases = {(c.classname, c.name): c for s in suites for c in s}
    failed = cases[("cachewright.varnish", "rule-products-hit")]
    assert [type(r).__name__ for r in failed.result] == ["Failure"]
    assert failed.result[0].message == "step 2 'again': expected cache hit, got miss"
    assert [type(r).__name__ for r in cases[("cachewright.varnish", "scenario:cart")].result] == ["Skipped"]
    assert cases[("cachewright.nginx", "rule-products-hit")].is_passed


# --------------------------------------------------------------------------- progress


def test_progress_is_silent_off_a_tty() -> None:
    stream = io.StringIO()
    with Progress(stream, total=2) as progress:
        progress.start("nginx rule-products-hit")
        progress.done(RUN.results[0])
    assert stream.getvalue() == ""


def test_progress_rewrites_one_line_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((40, 10)))
    stream = Tty()
    with Progress(stream, total=2) as progress:
        progress.start("nginx rule-products-hit")
        progress.done(FAILED)
        progress.start("varnish a-check-with-a-very-long-name-that-is-cut")
        progress.done(RUN.results[0])
    out = stream.getvalue()
    assert "\n" not in out
    assert [segment.rstrip() for segment in out.split("\r")] == [
        "",
        "[1/2] nginx rule-products-hit",
        "[1/2, 1 failed] varnish rule-products-…",  # cut to the terminal's width
        "[2/2, 1 failed] varnish a-check-with-a…",
        "[2/2, 1 failed] nginx rule-products-hit",
        "",  # cleared: the report starts on a clean line
        "",
    ]
    assert out.endswith("\r" + " " * 39 + "\r")
