"""The ``compare`` report's records: the JSON ``cachewright compare --json`` writes keeps its keys,
order and values (``tests/data/compare-report.json`` is a report written before the records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cachewright.harness.compare.figures import HitRun, NotMeasured, Skipped
from cachewright.harness.compare.judge import throughput_row
from cachewright.harness.compare.loadspec import LoadResult
from cachewright.harness.compare.records import CompareReport, ReportSettings, Target
from cachewright.harness.compare.settings import OffloadSettings, Settings

GOLDEN = Path(__file__).parent / "data" / "compare-report.json"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    report: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return report


def _written(report: CompareReport) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"  # as the command writes it


def test_a_report_reads_back_to_the_same_json_byte_for_byte(golden: dict[str, Any]) -> None:
    assert _written(CompareReport.from_json(golden)) == GOLDEN.read_text(encoding="utf-8")


def test_the_golden_report_has_every_section(golden: dict[str, Any]) -> None:
    assert list(golden) == ["format", "version", "policy", "runtime", "generated_at", "machine", "settings",
                            "capabilities", "correctness", "conformance", "performance", "offload", "targets",
                            "verdict"]
    report = CompareReport.from_json(golden)
    assert report.engines() == ["nginx", "varnish"]
    nginx = report.performance["nginx"]
    assert nginx is not None and not isinstance(nginx, NotMeasured)
    assert nginx.hit is not None and nginx.hit.rps == golden["performance"]["nginx"]["hit"]["rps"]


@pytest.mark.parametrize("left_out", ["correctness", "conformance", "offload"])
def test_a_section_that_did_not_run_has_no_key(golden: dict[str, Any], left_out: str) -> None:
    partial = {key: value for key, value in golden.items() if key != left_out}
    assert CompareReport.from_json(partial).to_json() == partial


def test_settings_are_the_measurements_then_the_load_tool_then_the_offloads() -> None:
    shown = ReportSettings.of(Settings(), "wrk 4.1.0", OffloadSettings()).to_json()
    assert shown == {**Settings().to_json(), "load_tool": "wrk 4.1.0", "offload": OffloadSettings().to_json()}
    assert list(shown)[-2:] == ["load_tool", "offload"]
    assert "offload" not in ReportSettings.of(Settings(), "builtin").to_json()


def test_a_hit_run_is_the_load_result_and_what_it_cost() -> None:
    result = LoadResult("wrk 4.1.0", 100, 1, {200: 99}, 1.0, 100.0,
                        {"mean": 1.0, "p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0}, [(50.0, 1.0), (99.0, 3.0)])
    run = HitRun.from_load(result, path="/x", origin_requests=0, cpu_us_per_request=5.0, user_us_per_request=None)
    assert run.to_json() == {**result.to_json(), "path": "/x", "origin_requests": 0, "cpu_us_per_request": 5.0,
                             "user_us_per_request": None}


def test_only_the_throughput_target_has_an_interval() -> None:
    assert "interval" in throughput_row("nginx", 0.99, None).to_json()
    assert "interval" not in throughput_row("nginx", None, None).to_json()
    plain = Target(name="herd", engine="nginx", value=1, target=1, met=True, status="met")
    assert list(plain.to_json()) == ["name", "engine", "value", "target", "met", "status"]
    assert Target.from_json(throughput_row("nginx", 0.99, None).to_json()).on_interval


def test_skipped_and_not_measured_read_back_as_such() -> None:
    report = CompareReport.from_json({
        "performance": {"nginx": {"error": "no hit path"}, "varnish": {"origin_down": {"skipped": "no window"}}},
        "offload": {"nginx": {"skipped": "no rule"}, "varnish": {"error": "boom"}}})
    assert report.performance["nginx"] == NotMeasured(error="no hit path")
    varnish = report.performance["varnish"]
    assert varnish is not None and not isinstance(varnish, NotMeasured)
    assert varnish.origin_down == Skipped(skipped="no window")
    assert report.offload == {"nginx": Skipped(skipped="no rule"), "varnish": NotMeasured(error="boom")}
