"""``cachewright compare``: the end-to-end run on both real engines with a short load, the
baseline configs, and the pieces of the report that are pure functions."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cachewright.generator.load import load, loads
from cachewright.generator.pipeline import Options
from cachewright.harness.cli import main
from cachewright.harness.client import Client
from cachewright.harness.compare.baseline import baseline_configs
from cachewright.harness.compare.judge import capability_rows, targets, verdict
from cachewright.harness.compare.measure import Probe, hit_cache_control, hit_probe, store_hit
from cachewright.harness.compare.records import CompareReport
from cachewright.harness.compare.run import _target, median_interval
from cachewright.harness.compare.settings import Settings
from cachewright.harness.origin import OriginClient
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.runtime.prepare import Placement
from cachewright.harness.selection import Request

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENGINES = ("nginx", "varnish")
SHORT = ["--duration", "1", "--rounds", "1", "--concurrency", "8", "--herd", "10",
         "--zipf-requests", "1500", "--zipf-keys", "150"]
PERFORMANCE_SECTIONS = ("hit", "baseline_hit", "throughput_ratio", "throughput_ratio_interval", "cpu_us_per_hit",
                        "cold_miss", "herd", "slow_origin", "origin_down", "zipf", "rss_kb")


@pytest.fixture(scope="module")
def shop_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, int]:
    """One short comparison of the shop example (HTTPS, stale windows, collapse), run once."""
    out = tmp_path_factory.mktemp("compare")
    # the offload has its own end-to-end test (tests/test_compare_offload.py)
    code = main(["compare", str(EXAMPLES / "shop" / "policy.yaml"), *SHORT, "--no-offload",
                 "--json", str(out / "report.json"), "--html", str(out / "report.html")])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report, (out / "report.html").read_text(encoding="utf-8"), code


@pytest.mark.engine
@pytest.mark.slow
def test_compare_reports_every_section_for_both_engines(shop_report: tuple[dict[str, Any], str, int]) -> None:
    report, _, code = shop_report
    assert code == 0, report.get("correctness")
    for key in ("policy", "runtime", "machine", "settings", "capabilities", "correctness", "performance",
                "targets", "verdict"):
        assert report[key], key
    assert set(report["correctness"]) == set(report["performance"]) == set(ENGINES)
    # the RFC 9111 report (the rfc family on a respecting rule of shop's): a report, not a verdict
    assert set(report["conformance"]) == set(ENGINES)
    for engine in ENGINES:
        conformance = report["conformance"][engine]
        assert conformance["passed"] > 60 and conformance["sections"], conformance
        summary = report["correctness"][engine]
        assert summary["passed"] > 50 and summary["failed"] == 0, summary["failures"]
        perf = report["performance"][engine]
        assert set(PERFORMANCE_SECTIONS) <= set(perf)
        # every hit was a hit: the origin saw nothing during the load, on either config
        assert perf["hit"]["requests"] > 1000 and perf["hit"]["origin_requests"] == 0
        assert perf["baseline_hit"]["requests"] > 1000 and perf["baseline_hit"]["origin_requests"] == 0
        assert perf["hit"]["errors"] == 0 and perf["hit"]["status_errors"] == 0
        assert 0 < perf["throughput_ratio"] < 10
        assert perf["cpu_us_per_hit"]["generated"] > 0 and perf["cpu_us_per_hit"]["baseline"] > 0
        cold = perf["cold_miss"]
        assert cold["samples"] == 50 and cold["origin_requests"] == 50  # every one a miss
        # nginx collapses only misses answered within its lock timeout (75 ms; the herd's origin
        # takes 1 s): each waiter then fetches for itself (docs/benchmarks.md, Cache lock latency)
        herd = 1 if engine == "varnish" else 10
        assert perf["herd"]["origin_requests"] == herd and perf["herd"]["statuses"] == {"200": 10}
        slow = perf["slow_origin"]  # shop: while_revalidate 30s, the origin slowed to 1 s
        assert slow["requests"] > 10 and slow["p99_ms"] < 500, slow
        assert perf["origin_down"]["share"] == 1.0, perf["origin_down"]
        zipf = perf["zipf"]
        assert zipf["requests"] == 1500 and zipf["distinct_keys"] <= 150
        assert zipf["origin_requests"] >= zipf["distinct_keys"]  # each key missed at least once
        assert abs(zipf["gap_points"]) <= 2.0, zipf
        assert zipf["timeline"] and all(0 <= ratio <= 1 for _, ratio in zipf["timeline"])
        assert perf["rss_kb"] > 1000


@pytest.mark.engine
@pytest.mark.slow
def test_compare_capabilities_name_what_nginx_lacks(shop_report: tuple[dict[str, Any], str, int]) -> None:
    report, _, _ = shop_report
    rows = {row["feature"]: row for row in report["capabilities"]}
    assert rows["purge.tag"]["nginx"] == "unsupported" and rows["purge.tag"]["accepted_missing"] == ["nginx"]
    assert rows["purge.tag"]["alternative"]
    assert report["correctness"]["nginx"]["unsupported"] >= 1  # purge.tag checks, reported not passed
    assert any("nginx lacks" in line and "purge.tag" in line for line in report["verdict"])


@pytest.mark.engine
@pytest.mark.slow
def test_compare_html_is_one_self_contained_page(shop_report: tuple[dict[str, Any], str, int]) -> None:
    _, page, _ = shop_report
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") == 4
    for remote in ('src="http', 'href="http', "<script", "<link", "@import", "url(http", "<img"):
        assert remote not in page, remote
    assert "nginx" in page and "varnish" in page and "shop" in page
    assert "RFC 9111 conformance" in page


@pytest.mark.engine
def test_baselines_start_and_cache_on_both_engines() -> None:
    """The hand-written baselines run in the harness like the generated configs and store a
    plain GET: of two requests, only the first reaches the origin (each engine its own cache)."""
    policy = load(EXAMPLES / "static-site" / "policy.yaml")
    with LocalRuntime(configs=baseline_configs).start(policy, ENGINES) as stack, \
            OriginClient(stack.origin.control_url) as origin:
        origin.add_rule({"path": "/x", "cache_control": "max-age=60"})
        for engine in ENGINES:
            conf = stack.run_dir / engine / ("nginx.conf" if engine == "nginx" else "default.vcl")
            assert "compare baseline" in conf.read_text()
            client = Client(stack.endpoints[engine], "static.example.com", stack.ca_file)
            before = origin.count("/x")
            assert [client.request("GET", "/x").status for _ in range(2)] == [200, 200]
            assert origin.count("/x") - before == 1, engine


@pytest.mark.engine
@pytest.mark.parametrize(("example", "cache_control"), [
    ("static-site", "public, max-age=31536000, stale-while-revalidate=86460"),  # 365d; 1m + 1d
    ("api", "public, max-age=600, stale-while-revalidate=630"),  # respects the origin; 30s + 10m
])
def test_the_baseline_stores_the_hit_path_as_long_as_the_generated_config(example: str, cache_control: str) -> None:
    """The hit path's answer gives the lifetime the generated config gives the entry (static-site:
    a rule overriding the origin for a year; api: one respecting the origin's max-age), so each
    engine's own record shows the same TTL and grace for both configs."""
    policy = load(EXAMPLES / example / "policy.yaml")
    settings = Settings()
    with LocalRuntime().start(policy, ENGINES) as stack, \
            LocalRuntime(configs=baseline_configs).start(policy, ENGINES) as base:
        for engine in ENGINES:
            with _target(stack, policy, engine, settings) as target, \
                    _target(base, policy, engine, settings) as baseline:
                probe = hit_probe(target.ctx)
                records = []
                for one in (target, baseline):
                    store_hit(one, probe)
                    stored = one.stack.stored(engine, probe.request.path)
                    assert stored, (engine, one.stack.run_dir)
                    records.append(stored[-1])
                generated, hand_written = records
                assert abs(generated.ttl - hand_written.ttl) < 5, (engine, records)
                if engine == "varnish":  # nginx's cache file has no grace
                    assert generated.grace == hand_written.grace, records
    assert hit_cache_control(policy, probe.rule) == cache_control


@pytest.mark.parametrize(("values", "expected"), [
    ([1.0], None), ([1.0, 2.0, 3.0, 4.0], None),  # even least..greatest covers under 90 %
    ([0.99, 1.19, 0.94, 0.98, 0.99], (0.94, 1.19, 0.9375)),  # 1 - 2/32
    ([float(v) for v in range(15)], (3.0, 11.0, 0.9648)),  # k=4: 1 - 2*576/32768; k=5 is 88 %
    ([float(v) for v in range(20)], (5.0, 14.0, 0.9586)),
])
def test_the_median_interval_is_the_order_statistics_with_90_percent_coverage(
        values: list[float], expected: tuple[float, float, float] | None) -> None:
    got = median_interval(values)
    assert (got and (got.low, got.high, got.confidence)) == expected
    if got:
        assert got.low is not None and got.high is not None
        assert got.low <= sorted(values)[len(values) // 2] <= got.high


def test_baseline_refuses_a_value_that_is_not_a_plain_address() -> None:
    policy = load(EXAMPLES / "static-site" / "policy.yaml")
    place = Placement("127.0.0.1", 8080, 8443, "origin;\n  include /etc/passwd", 80)
    with pytest.raises(ValueError, match="not a plain address"):
        baseline_configs(policy, "nginx", place, Options())


def test_baseline_keeps_hitch_and_the_proxy_listener_of_the_generated_files() -> None:
    policy = load(EXAMPLES / "shop" / "policy.yaml")
    place = Placement("127.0.0.1", 8080, 8443, "127.0.0.1", 9000, "/tls/server.crt", "/tls/server.key")
    files = baseline_configs(policy, "varnish", place, Options())
    assert "backend origin" in files["default.vcl"].text and "import" not in files["default.vcl"].text
    args = files["varnishd.args"].text
    assert "-a http=127.0.0.1:8080" in args and re.search(r"^-a https=\S+,PROXY", args, re.M)
    assert "hitch.conf" in files
    nginx = baseline_configs(policy, "nginx", place, Options())["nginx.conf"].text
    assert "listen 127.0.0.1:8443 ssl;" in nginx and 'ssl_certificate "/tls/server.crt";' in nginx
    assert "proxy_cache_valid 200 10m;" in nginx and "map " not in nginx


def test_variants_stay_in_the_rule_and_the_origin_pattern_covers_them() -> None:
    policy = loads("version: 1\nname: v\norigin: {url: 'http://a:1'}\nlisten: {http: {port: 80}}\n"
                   "rules:\n  - name: r\n    match: {path_prefix: '/a'}\n    ttl: 1m\n", "v.yaml")
    req = Request("GET", "/a[1]?/cwTAG.css", "example.com")
    probe = Probe(policy.rules[0], req, "cwTAG")
    assert probe.variant("z7").path == "/a[1]?/cwTAGz7.css"
    assert probe.origin_pattern() == {"pattern": "/a[[]1][?]/cwTAG*.css"}
    in_query = Probe(policy.rules[0], Request("GET", "/a/x", "example.com", query="t=cwTAG"), "cwTAG")
    assert in_query.variant("z1").query == "t=cwTAGz1" and in_query.origin_pattern() == {"path": "/a/x"}


def _perf(ratio: float, herd: int, share: float | None, gap: float) -> dict[str, Any]:
    down: dict[str, Any] = {"skipped": "no if_error"} if share is None else {"share": share}
    return {"throughput_ratio": ratio, "herd": {"origin_requests": herd, "collapse_requests": True},
            "origin_down": down, "zipf": {"gap_points": gap}, "hit": {"rps": 1000.0}}


def _targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of a report given as JSON, as JSON."""
    return [target.to_json() for target in targets(CompareReport.from_json(report))]


def _verdict(report: dict[str, Any]) -> list[str | None]:
    return list(verdict(CompareReport.from_json(report)))


def test_targets_are_judged_per_engine() -> None:
    report = {"performance": {"nginx": _perf(0.96, 1, 1.0, 0.5), "varnish": _perf(0.90, 3, None, 2.5)}}
    met = {(t["engine"], t["name"].split(":")[0].split(" ")[0]): t["met"] for t in _targets(report)}
    assert met[("nginx", "cached-hit")] is True and met[("varnish", "cached-hit")] is False
    assert met[("nginx", "herd")] is True and met[("varnish", "herd")] is False
    assert met[("nginx", "origin")] is True and ("varnish", "origin") not in met  # no window: not judged
    assert met[("nginx", "zipf")] is True and met[("varnish", "zipf")] is False


def test_verdict_names_missing_features_failures_and_missed_targets() -> None:
    policy = load(EXAMPLES / "shop" / "policy.yaml")
    report: dict[str, Any] = {
        "capabilities": [row.to_json() for row in capability_rows(policy)],
        "correctness": {"nginx": {"passed": 70, "failed": 2, "unsupported": 3},
                        "varnish": {"passed": 75, "failed": 0, "unsupported": 0}},
        "performance": {"nginx": _perf(0.9, 1, 1.0, 0.0), "varnish": _perf(1.0, 1, 1.0, 0.0)},
    }
    report["targets"] = _targets(report)
    lines = [str(line) for line in _verdict(report)]
    assert any(line.startswith("nginx lacks") and "purge.tag" in line for line in lines)
    assert any(line.startswith("nginx fails 2 check(s)") for line in lines)
    assert any(line.startswith("varnish passes every check") for line in lines)
    assert any(line.startswith("Targets missed") and "[nginx]" in line for line in lines)


def test_compare_refuses_a_users_origin(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(EXAMPLES / "shop" / "policy.yaml"), "--origin", "http://127.0.0.1:9"])
    assert code == 2
    assert "--origin" in capsys.readouterr().err


def test_compare_bad_load_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(EXAMPLES / "shop" / "policy.yaml"), "--duration", "0"])
    assert exc.value.code == 2
    assert "between 0 and 600" in capsys.readouterr().err


@pytest.mark.engine
def test_a_policy_that_caches_nothing_is_reported_not_measured(tmp_path: Path) -> None:
    path = tmp_path / "nocache.yaml"
    path.write_text("version: 1\nname: nocache\norigin: {url: 'http://app:8000'}\nlisten: {http: {port: 80}}\n"
                    "cache: {default_ttl: 0}\nrules:\n  - name: all\n    match: {path_prefix: /}\n"
                    "    cache: false\n", encoding="utf-8")
    out = tmp_path / "report.json"
    assert main(["compare", str(path), "--no-correctness", *SHORT, "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    for engine in ENGINES:
        assert "no cacheable rule" in report["performance"][engine]["error"]
    assert report["targets"] == []
    assert any(line.startswith("varnish: not measured") for line in report["verdict"])


@pytest.mark.parametrize(("ratio", "interval", "status", "met"), [
    (0.938, (0.851, 1.074), "inconclusive", None),  # the issue's Varnish figure: was a FAIL
    (0.983, (0.90, 1.05), "inconclusive", None),  # a median above the target is not enough either
    (0.97, (0.95, 1.01), "met", True),  # the interval's lower end on the target meets it
    (0.94, (0.90, 0.95), "inconclusive", None),  # its upper end on the target does not miss it
    (0.90, (0.85, 0.9499), "missed", False),
    (0.94, None, "missed", False),  # fewer than 5 rounds: no interval, the median decides
    (0.95, None, "met", True),
])
def test_the_throughput_target_is_judged_on_its_interval(
        ratio: float, interval: tuple[float, float] | None, status: str, met: bool | None) -> None:
    perf = _perf(ratio, 1, 1.0, 0.0)
    perf["throughput_ratio_interval"] = {"low": interval[0], "high": interval[1], "confidence": 0.94} \
        if interval else None
    row = _targets({"performance": {"varnish": perf}})[0]
    assert row["name"].startswith("cached-hit throughput")
    assert (row["status"], row["met"]) == (status, met)


def test_verdict_says_inconclusive_with_the_interval() -> None:
    perf = _perf(0.938, 1, 1.0, 0.0)
    perf["throughput_ratio_interval"] = {"low": 0.851, "high": 1.074, "confidence": 0.9375}
    report: dict[str, Any] = {"capabilities": [], "performance": {"varnish": perf}}
    report["targets"] = _targets(report)
    assert _verdict(report) == [
        "Inconclusive: cached-hit throughput generated/baseline >= 0.95 [varnish]: median 0.938, but its "
        "confidence interval 0.851-1.074 spans 0.95: this run cannot tell whether the target is met "
        "(more --rounds narrow the interval)."]


@pytest.mark.parametrize(("interval", "strict", "code"), [
    ((0.851, 1.074), True, 0), ((0.851, 1.074), False, 0),  # inconclusive: --strict does not fail it
    ((0.80, 0.94), True, 1), ((0.80, 0.94), False, 0),  # missed: only --strict fails it
])
def test_strict_fails_a_missed_target_not_an_inconclusive_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        interval: tuple[float, float], strict: bool, code: int) -> None:
    import cachewright.harness.commands.compare as command
    import cachewright.harness.compare.run as compare_run

    perf = _perf(0.9, 1, 1.0, 0.0)
    perf["throughput_ratio_interval"] = {"low": interval[0], "high": interval[1], "confidence": 0.94}

    def fake_compare(*_: Any, **__: Any) -> CompareReport:
        report = CompareReport.from_json({"capabilities": [], "correctness": {}, "performance": {"varnish": perf}})
        report = replace(report, targets=targets(report))
        return replace(report, verdict=verdict(report))

    monkeypatch.setattr(compare_run, "compare", fake_compare)
    monkeypatch.setattr(command, "engines", lambda _: ("varnish",))
    argv = ["compare", str(EXAMPLES / "shop" / "policy.yaml"), "--no-correctness"]
    assert main([*argv, "--strict"] if strict else argv) == code
    shown = "INCONCLUSIVE" if interval[1] >= 0.95 else "FAIL"
    out = capsys.readouterr().out
    assert f"{shown} cached-hit throughput generated/baseline >= 0.95 [varnish]: 0.9, interval " in out
