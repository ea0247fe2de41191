"""The ``compare`` report renderers: terminal text and the self-contained HTML page."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachewright.harness.compare.charts import MATPLOTLIB_MISSING
from cachewright.harness.compare.page import html_report as render_html
from cachewright.harness.compare.records import CompareReport
from cachewright.harness.compare.text import text_report as render_text
from cachewright.harness.runtime.api import HarnessError

SAMPLE = Path(__file__).parent / "data" / "compare-sample.json"
HOSTILE = "<script>alert(1)</script>"
# What would make the page reach the network (or run code) when opened.
REMOTE = ('src="http', "src='http", 'href="http', "href='http", "<script", "<link", "@import", "url(http",
          "<iframe", "<object", "<embed", "<img")


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    report: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return report


@pytest.fixture(scope="module")
def page(sample: dict[str, Any]) -> str:
    return html_report(sample)


def text_report(report: dict[str, Any], color: bool = False) -> str:
    """The terminal text of a report as ``--json`` writes it (or a broken one)."""
    return render_text(CompareReport.from_json(report), color=color)


def html_report(report: dict[str, Any]) -> str:
    return render_html(CompareReport.from_json(report))


def _nulled(value: Any) -> Any:
    """``value`` with every leaf (number, string, bool) replaced by null."""
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulled(item) for item in value]
    return None


def _without(report: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in keys}


# --------------------------------------------------------------------------- text


def test_text_has_every_section_and_the_header(sample: dict[str, Any]) -> None:
    text = text_report(sample)
    for heading in ("Capabilities", "Correctness", "Performance", "Verdict"):
        assert f"\n{heading}\n{'-' * len(heading)}\n" in text
    for fact in ("shop (examples/shop/policy.yaml)", "runtime       local", "wrk 4.1.0", "concurrency   32",
                 "duration      5 s", "2 CPUs, Linux-6.1.0-27-amd64", "nginx 1.22.1, varnish 7.1.1, hitch 1.7.2"):
        assert fact in text


def test_text_shows_both_engines_numbers_and_the_throughput_marks(sample: dict[str, Any]) -> None:
    text = text_report(sample)
    assert re.search(r"cached hit throughput \(req/s\) +21,841 +17,620\n", text)
    assert re.search(r"throughput generated/baseline \(target 0.95\) +0.979 PASS +0.935 FAIL\n", text)
    assert re.search(r"origin down: stale share +100.0% +92.0%\n", text)
    assert re.search(r"nginx +61 +1 +3 +0\nvarnish +64 +0 +0 +1\n", text)
    assert "FAIL rules.static.hit [nginx]: second GET /static/app.css reached the origin" in text
    assert "FAIL throughput generated/baseline ≥ 0.95 [varnish]: 0.935 (target 0.95)" in text
    assert "For this policy, Varnish supports every feature used" in text


def test_text_capabilities_name_the_module_as_cachewright_capabilities_does(sample: dict[str, Any]) -> None:
    text = text_report(sample)
    assert re.search(r"\npurge.tag +unsupported +module: vmod xkey \(varnish-modules\) +purge each URL", text)


@pytest.mark.parametrize(("ratio", "cell"), [(0.95, "0.950 PASS"), (0.9496, "0.949 FAIL"), (0.949, "0.949 FAIL"),
                                             (1.2, "1.200 PASS"), (0.29, "0.290 FAIL")])
def test_text_ratio_never_reads_as_meeting_a_target_it_missed(ratio: float, cell: str) -> None:
    text = text_report({"performance": {"nginx": {"throughput_ratio": ratio}}})
    assert re.search(rf"throughput generated/baseline \(target 0.95\) +{cell}\n", text)


@pytest.mark.parametrize(("interval", "cell"), [
    ({"low": 0.9412, "high": 1.19, "confidence": 0.9375}, "0.941-1.190 (94%)"),
    (None, "n/a"), ({"low": "0.9", "high": 1.1, "confidence": 0.9}, "n/a"), ("0.9-1.1", "n/a"),
])
def test_text_shows_the_ratios_interval_or_na(interval: Any, cell: str) -> None:
    text = text_report({"performance": {"varnish": {"throughput_ratio": 1.0, "throughput_ratio_interval": interval}}})
    assert re.search(rf"\nconfidence interval of that median +{re.escape(cell)}\n", text)


def test_text_colour_paints_the_marks_only_when_asked(sample: dict[str, Any]) -> None:
    assert "\x1b[" not in text_report(sample)
    coloured = text_report(sample, color=True)
    assert "\x1b[32m0.979 PASS\x1b[0m" in coloured
    assert "\x1b[1;31m0.935 FAIL\x1b[0m" in coloured


def test_text_never_sends_a_hostile_control_sequence_to_the_terminal(sample: dict[str, Any]) -> None:
    report = copy.deepcopy(sample)
    report["policy"]["name"] = "shop\x1b]0;pwned\x07"
    report["correctness"]["nginx"]["failures"][0]["message"] = "got\x1b[2J cleared\nsecond line"
    text = text_report(report)
    assert "\x1b" not in text and "\x07" not in text
    assert "shop\\x1b]0;pwned\\x07" in text
    assert "got\\x1b[2J cleared\n    second line" in text


# --------------------------------------------------------------------------- HTML


def test_html_is_one_document_with_four_inline_svg_charts(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert page.endswith("</html>\n")
    assert page.count("<html") == 1 and page.count("<body") == 1
    assert page.count("<svg") == 4 and page.count("</svg>") == 4
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_html_ids_are_unique_across_charts_and_every_reference_resolves(page: str) -> None:
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'(?:href="#|url\(#)([^")]+)', page))
    assert references and references <= set(ids)


def test_html_loads_nothing_from_anywhere(page: str) -> None:
    lowered = page.lower()
    for needle in REMOTE:
        assert needle not in lowered, needle
    assert "default-src 'none'" in page  # and the browser is told so, should anything slip through


def test_html_has_the_tables_and_marks(page: str) -> None:
    for heading in ("Capabilities", "Correctness", "Performance", "Verdict"):
        assert f"<h2>{heading}</h2>" in page
    assert '<span class="good">0.979 PASS</span>' in page
    assert '<span class="bad">0.935 FAIL</span>' in page
    assert "<td class=\"num\">21,841</td><td class=\"num\">17,620</td>" in page
    assert "throughput generated/baseline ≥ 0.95 [varnish]" in page


def test_html_escapes_every_string_from_the_report(sample: dict[str, Any]) -> None:
    report = copy.deepcopy(sample)
    report["policy"] = {"name": HOSTILE, "file": '"><img src=x onerror=alert(2)>'}
    report["correctness"]["nginx"]["failures"][0] = {"check": HOSTILE, "message": "</td></table><b>x</b>"}
    report["capabilities"][0]["alternative"] = "<style>body{display:none}</style>"
    report["verdict"] = [HOSTILE]
    page = html_report(report)
    assert "<script" not in page.lower() and "<img" not in page and "<b>x</b>" not in page
    assert "<style>body" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>cachewright compare: &lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page


def test_html_is_byte_identical_for_the_same_report(sample: dict[str, Any], page: str) -> None:
    assert html_report(copy.deepcopy(sample)) == page


def test_html_is_byte_identical_across_processes(page: str) -> None:
    # Another interpreter, another hash seed: nothing in the page may depend on either.
    code = ("import hashlib, json, sys; from cachewright.harness.compare.page import html_report; "
            "from cachewright.harness.compare.records import CompareReport; "
            f"report = CompareReport.from_json(json.loads(open({str(SAMPLE)!r}, encoding='utf-8').read())); "
            "print(hashlib.sha256(html_report(report).encode()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert out.stdout.strip() == hashlib.sha256(page.encode()).hexdigest()


def test_importing_and_rendering_leave_matplotlib_global_state_alone() -> None:
    code = (
        "import sys, json\n"
        "from cachewright.harness.compare import page, records\n"
        "assert 'matplotlib' not in sys.modules, 'imported eagerly'\n"
        "import matplotlib\n"
        "def rc(): return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != 'backend'}\n"
        "before = rc()\n"
        f"report = json.loads(open({str(SAMPLE)!r}, encoding='utf-8').read())\n"
        "page.html_report(records.CompareReport.from_json(report))\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot used'\n"
        "assert rc() == before, 'rcParams changed'\n"
    )  # reading rcParams['backend'] would itself import pyplot to resolve it
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_html_without_matplotlib_says_how_to_get_it(sample: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: import raises
    with pytest.raises(HarnessError) as raised:
        html_report(sample)
    assert str(raised.value) == MATPLOTLIB_MISSING
    assert MATPLOTLIB_MISSING == "--html needs matplotlib: pip install 'cachewright[report]'"


# --------------------------------------------------------------------------- missing measurements


def _variants(sample: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nginx_null = copy.deepcopy(sample)
    nginx_null["performance"]["nginx"] = None
    nginx_null["correctness"]["nginx"] = None
    sections_null = {key: None for key in sample}
    return {
        "empty": {},
        "sections null": sections_null,
        "no performance": _without(sample, "performance"),
        "no correctness, capabilities, targets, verdict": _without(
            sample, "correctness", "capabilities", "targets", "verdict"),
        "no machine or settings": _without(sample, "machine", "settings", "policy"),
        "nginx null": nginx_null,
        "every value null": _nulled(sample),
        "wrong types": {**sample, "verdict": "a string", "capabilities": {"a": 1}, "targets": [1, None],
                        "performance": {"nginx": {"hit": {"rps": "fast", "latency_cdf": [[1], "x", [50, None]]},
                                                  "zipf": {"timeline": [["t", 0.5]], "ideal": float("nan")}},
                                        "varnish": {"throughput_ratio": 1e308, "rss_kb": -1}}},
    }


@pytest.mark.parametrize("name", ["empty", "sections null", "no performance",
                                  "no correctness, capabilities, targets, verdict", "no machine or settings",
                                  "nginx null", "every value null", "wrong types"])
def test_missing_or_null_sections_render_as_na(sample: dict[str, Any], name: str) -> None:
    report = _variants(sample)[name]
    text = text_report(report)
    page = html_report(report)
    assert "n/a" in text and "n/a" in page
    for heading in ("Capabilities", "Correctness", "Performance", "Verdict"):
        assert heading in text and f"<h2>{heading}</h2>" in page


def test_an_engine_without_measurements_shows_na_in_its_column(sample: dict[str, Any]) -> None:
    text = text_report(_variants(sample)["nginx null"])
    assert re.search(r"cached hit throughput \(req/s\) +n/a +17,620\n", text)
    assert re.search(r"throughput generated/baseline \(target 0.95\) +n/a +0.935 FAIL\n", text)
    assert re.search(r"\nnginx +n/a +n/a +n/a +n/a\n", text)


def test_a_chart_with_nothing_measured_is_an_na_note(sample: dict[str, Any]) -> None:
    page = html_report(_without(sample, "performance"))
    assert page.count("<svg") == 0
    assert page.count('<p class="na">n/a: not measured</p>') == 4


def test_a_partly_measured_chart_is_still_drawn(sample: dict[str, Any]) -> None:
    report = copy.deepcopy(sample)
    report["performance"]["varnish"]["baseline_hit"] = None
    report["performance"]["nginx"]["zipf"]["timeline"] = []
    assert html_report(report).count("<svg") == 4


def test_engines_come_nginx_and_varnish_first_then_others_once() -> None:
    report: dict[str, Any] = {"performance": {"zeta": {}, "varnish": {}}, "correctness": {"nginx": {}, "zeta": {}}}
    assert CompareReport.from_json(report).engines() == ["nginx", "varnish", "zeta"]


def test_odd_engine_names_are_drawn_literally(sample: dict[str, Any]) -> None:
    report = copy.deepcopy(sample)
    report["performance"]["_$x$_"] = report["performance"].pop("varnish")  # no mathtext, no hidden label
    page = html_report(report)
    assert page.count("<svg") == 4
    assert "_$x$_" in text_report(report)


@pytest.mark.parametrize(("ratio", "low", "high", "cell"), [
    (0.938, 0.851, 1.074, "0.938 INCONCLUSIVE"), (0.983, 0.90, 1.05, "0.983 INCONCLUSIVE"),
    (0.97, 0.95, 1.01, "0.970 PASS"), (0.90, 0.85, 0.9499, "0.900 FAIL"),
])
def test_text_ratio_is_judged_on_its_interval(ratio: float, low: float, high: float, cell: str) -> None:
    interval = {"low": low, "high": high, "confidence": 0.9375}
    text = text_report({"performance": {"varnish": {"throughput_ratio": ratio,
                                                    "throughput_ratio_interval": interval}}})
    assert re.search(rf"throughput generated/baseline \(target 0.95\) +{cell}\n", text)


def test_text_target_line_shows_an_inconclusive_ratio_with_its_interval() -> None:
    target = {"name": "cached-hit throughput generated/baseline >= 0.95", "engine": "varnish", "value": 0.938,
              "target": 0.95, "met": None, "status": "inconclusive", "interval": {"low": 0.851, "high": 1.074}}
    coloured = text_report({"targets": [target]}, color=True)
    assert ("\x1b[33mINCONCLUSIVE cached-hit throughput generated/baseline >= 0.95 [varnish]: 0.938, "
            "interval 0.851-1.074 (target 0.95)\x1b[0m") in coloured
    hostile = text_report({"targets": [{**target, "status": ["met"], "interval": "x"}]})
    assert "n/a cached-hit throughput generated/baseline >= 0.95 [varnish]: 0.938 (target 0.95)" in hostile
