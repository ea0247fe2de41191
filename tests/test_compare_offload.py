"""``cachewright compare``'s origin offload (issue 19, part 4): what reaches the origin as entries
with validators and ``max-age=1`` expire, on the generated config, the baseline and the generated
config with revalidation turned off -- every figure checked against the origin's own counters and
request log, on both real engines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile
from cachewright.harness.cli import main
from cachewright.harness.compare.baseline import baseline_configs
from cachewright.harness.compare.figures import OffloadRun
from cachewright.harness.compare.judge import targets
from cachewright.harness.compare.offload import (
    ETAG,
    generated_revalidates,
    measure_offload,
    no_revalidation,
    offload_probe,
    offload_result,
    origin_figures,
    revalidates,
    saved_bytes,
    without_revalidation,
)
from cachewright.harness.compare.page import html_report
from cachewright.harness.compare.records import CompareReport
from cachewright.harness.compare.run import _target
from cachewright.harness.compare.settings import OffloadSettings, Settings
from cachewright.harness.compare.text import text_report
from cachewright.harness.origin import RecordedRequest
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.runtime.prepare import Placement, generated

ENGINES = ("nginx", "varnish")
FILE = {"nginx": "nginx.conf", "varnish": "default.vcl"}
#: a policy that respects the origin and has no stale windows: what issue 19 calls a new user's
POLICY_TEXT = ("version: 1\nname: respect\norigin: {url: 'http://app:8000'}\nlisten: {http: {port: 80}}\n"
               "cache: {origin_headers: respect}\n")
POLICY = loads(POLICY_TEXT, "respect.yaml")
OFFLOAD = OffloadSettings()
PLACE = Placement("127.0.0.1", 8080, 8443, "127.0.0.1", 9000)
#: what a refresh carries when the engine revalidates
VALIDATORS = ("If-None-Match", "If-Modified-Since")


def revalidating(policy: Policy, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
    """A positive control: the generated files with revalidation turned on by hand (nginx:
    ``proxy_cache_revalidate on``; Varnish: a day of ``beresp.keep`` on every object), so the
    measurement is shown to count 304s before the generated configs revalidate themselves."""
    files = generated(policy, engine, place, options)
    text = files[FILE[engine]].text
    if engine == "nginx" and "proxy_cache_revalidate on;" not in text:
        text = text.replace("    proxy_cache_methods GET HEAD;\n",
                            "    proxy_cache_methods GET HEAD;\n    proxy_cache_revalidate on;\n", 1)
    elif engine == "varnish":
        text = re.sub(r"set beresp\.keep = [^;]+;", "set beresp.keep = 1d;", text)
    files[FILE[engine]] = OutputFile(FILE[engine], text)
    return files


CONFIGS = {"generated": generated, "baseline": baseline_configs, "no_revalidation": no_revalidation,
           "revalidating": revalidating}


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, Stack]]:
    """Both engines under each config (each stack with its own sample origin)."""
    with ExitStack() as running:
        yield {name: running.enter_context(LocalRuntime(configs=configs).start(POLICY, ENGINES))
               for name, configs in CONFIGS.items()}


def _measure(stack: Stack, engine: str) -> tuple[dict[str, Any], list[RecordedRequest], int]:
    """One offload run, what the origin logged for its URLs during the load (re-read here by
    path), and how many requests the origin counted from the first warm-up on."""
    with _target(stack, POLICY, engine, Settings()) as target:
        probe = offload_probe(target.ctx)
        assert probe is not None and probe.tag in probe.request.path  # one origin path per URL
        origin = target.ctx.control()
        before = origin.counts().total
        figures = measure_offload(target, probe, OFFLOAD).to_json()
        counted = origin.counts().total - before
        paths = [probe.variant(f"o{i}").path for i in range(OFFLOAD.urls)]
        logged = [entry for path in paths for entry in origin.requests(path=path)]
        return figures, _after_warm_up(logged, paths), counted


def _after_warm_up(logged: list[RecordedRequest], paths: list[str]) -> list[RecordedRequest]:
    """The log entries after each URL's first (its warm-up miss)."""
    first = {path: min(e.seq for e in logged if e.path == path) for path in paths}
    return sorted((e for e in logged if e.seq != first[e.path]), key=lambda e: e.seq)


# --------------------------------------------------------------------------- on both engines


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("config", ["no_revalidation", "revalidating"])
def test_the_measurement_counts_what_the_origin_saw(stacks: dict[str, Stack], engine: str, config: str) -> None:
    """Requests, 200s, 304s and body bytes as the origin's counters and its log show them: each
    URL's warm-up was one miss, and the rest are the refreshes the load caused."""
    figures, refreshes, counted = _measure(stacks[config], engine)
    assert counted == OFFLOAD.urls + figures["origin_requests"], (counted, figures)
    assert figures["origin_requests"] == len(refreshes) >= OFFLOAD.urls, figures  # each URL expired at least once
    statuses = [e.status for e in refreshes]
    assert figures["origin_200"] == statuses.count(200) and figures["origin_304"] == statuses.count(304)
    assert figures["origin_other"] == 0 and figures["client_errors"] == 0
    # the origin's own byte counter agrees with its log: a whole body per 200, none per 304
    assert figures["origin_body_bytes"] == statuses.count(200) * OFFLOAD.body_size, figures
    conditional = [e for e in refreshes if any(e.header(name) for name in VALIDATORS)]
    if config == "no_revalidation":
        assert not conditional and figures["origin_304"] == 0, [e.headers for e in conditional]
    else:
        assert all(e.header("If-None-Match") == ETAG for e in refreshes), [e.headers for e in refreshes]
        assert figures["share_304"] == 1.0, figures


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_the_baseline_is_measured_like_the_others(stacks: dict[str, Stack], engine: str) -> None:
    """nginx's minimal config has no proxy_cache_revalidate: every refresh is a full 200; Varnish's
    builtin VCL keeps 10 s of grace, inside which it revalidates: every refresh is a 304."""
    figures, refreshes, counted = _measure(stacks["baseline"], engine)
    assert counted == OFFLOAD.urls + figures["origin_requests"] == OFFLOAD.urls + len(refreshes)
    if engine == "nginx":
        assert figures["origin_304"] == 0 and figures["origin_200"] >= OFFLOAD.urls, figures
    else:
        assert figures["origin_200"] == 0 and figures["origin_304"] >= OFFLOAD.urls, figures


@pytest.mark.engine
@pytest.mark.parametrize("engine", ENGINES)
def test_revalidation_keeps_origin_bytes_far_below_no_revalidation(stacks: dict[str, Stack], engine: str) -> None:
    """Issue 19's target: with a 16 KiB body and max-age=1, an expired entry costs the origin a
    304. Meaningful once the generated config revalidates; until then it skips, and turns on by
    itself when the compiler emits proxy_cache_revalidate / a beresp.keep above 0."""
    if not generated_revalidates(POLICY, engine):
        directive = "proxy_cache_revalidate on" if engine == "nginx" else "a beresp.keep above 0s"
        pytest.skip(f"the generated {engine} config does not revalidate yet (no {directive}; issue 19 part 1)")
    ours, _, _ = _measure(stacks["generated"], engine)
    without, _, _ = _measure(stacks["no_revalidation"], engine)
    assert without["origin_body_bytes"] >= OFFLOAD.urls * OFFLOAD.body_size, without
    assert ours["origin_body_bytes"] <= without["origin_body_bytes"] / 10, (ours, without)
    assert ours["share_304"] is not None and ours["share_304"] >= 0.9, ours


@pytest.mark.engine
def test_compare_reports_the_offload_of_both_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command end to end: an "Origin offload" section in the text and the JSON, with every
    config of both engines measured and the saved bytes judged against no revalidation."""
    path = tmp_path / "respect.yaml"
    path.write_text(POLICY_TEXT, encoding="utf-8")
    out = tmp_path / "report.json"
    short = ["--duration", "1", "--rounds", "1", "--concurrency", "8", "--herd", "10",
             "--zipf-requests", "1500", "--zipf-keys", "150", "--offload-duration", "3"]
    assert main(["compare", str(path), "--no-correctness", *short, "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["settings"]["offload"]["duration_s"] == 3
    for engine in ENGINES:
        offload = report["offload"][engine]
        assert offload["rule"] == "default"
        assert offload["generated_revalidates"] is generated_revalidates(POLICY, engine)
        for variant in offload["variants"].values():
            assert variant["origin_requests"] >= OFFLOAD.urls and variant["client_errors"] == 0, variant
        assert offload["variants"]["no_revalidation"]["origin_304"] == 0
        assert offload["saved_share"]["baseline"] == (1.0 if engine == "varnish" else 0.0)  # see above
    text = capsys.readouterr().out
    assert "Origin offload" in text and "no revalidation = the generated nginx.conf without" in text
    assert any(t["name"].startswith("origin offload") for t in report["targets"])


# --------------------------------------------------------------------------- the configs


@pytest.mark.parametrize("engine", ENGINES)
def test_the_no_revalidation_variant_turns_revalidation_off(engine: str) -> None:
    """On the real generated files, with revalidation turned on by hand: the variant loses it, and
    differs only by the documented edit (nginx: one line less; Varnish: every keep 0s and the
    validators removed in vcl_backend_fetch)."""
    on = revalidating(POLICY, engine, PLACE, Options())
    off = without_revalidation(on, engine)
    assert revalidates(on, engine) and not revalidates(off, engine)
    assert not revalidates(no_revalidation(POLICY, engine, PLACE, Options()), engine)
    before, after = on[FILE[engine]].text.splitlines(), off[FILE[engine]].text.splitlines()
    removed, added = set(before) - set(after), set(after) - set(before)
    if engine == "nginx":
        assert {line.strip() for line in removed} == {"proxy_cache_revalidate on;"} and not added
    else:
        assert removed and all(line.strip().startswith("set beresp.keep = ") for line in removed)
        # (the block's closing "    }" is a line the VCL already has)
        assert added == {"    set beresp.keep = 0s;", "    if (!bereq.uncacheable) {",
                         "        unset bereq.http.If-None-Match;", "        unset bereq.http.If-Modified-Since;",
                         "    # cachewright compare, no_revalidation variant: no conditional refresh."}
    assert set(off) == set(on)  # hitch.conf, varnishd.args...: the generated ones


def test_revalidates_reads_the_directive_and_the_keep() -> None:
    nginx = "http {\n    proxy_cache_revalidate on;\n}\n"
    assert revalidates({"nginx.conf": OutputFile("nginx.conf", nginx)}, "nginx")
    assert not revalidates({"nginx.conf": OutputFile("nginx.conf", "    proxy_cache_revalidate off;\n")}, "nginx")
    for keep, expected in (("0s", False), ("0.0s", False), ("86400s", True), ("1d", True),
                           ('std.duration(var.get("keep") + "s", 0s)', True)):
        vcl = f"sub vcl_backend_response {{\n    set beresp.keep = {keep};\n}}\n"
        assert revalidates({"default.vcl": OutputFile("default.vcl", vcl)}, "varnish") is expected, keep


def test_origin_figures_count_the_answers() -> None:
    seen = [_entry(1, 200), _entry(2, 304), _entry(3, 304), _entry(4, 502, "error")]
    assert origin_figures(seen).to_json() == {"origin_requests": 4, "origin_200": 1, "origin_304": 2,
                                    "origin_other": 1, "share_304": 0.5}
    assert origin_figures([]).share_304 is None


def _entry(seq: int, status: int, outcome: str = "ok") -> RecordedRequest:
    return RecordedRequest("id", "GET", "/x", "/x", "", "HTTP/1.1", (), 0, "127.0.0.1", 1, None,
                           seq=seq, status=status, outcome=outcome if status != 304 else "not_modified")


def test_saved_bytes_are_per_origin_request_of_the_reference() -> None:
    """A run that happened to make fewer refreshes is not credited for them: the reference's body
    bytes per request times the variant's requests, less what the variant's cost."""
    def run(requests: int, body_bytes: int) -> OffloadRun:
        return OffloadRun.from_json({"origin_requests": requests, "origin_body_bytes": body_bytes})

    reference = run(24, 24 * 16384)
    assert saved_bytes(run(21, 16 * 16384), reference) == (5 * 16384, 5 / 21)
    assert saved_bytes(run(8, 0), reference) == (8 * 16384, 1.0)
    assert saved_bytes(run(8, 0), run(0, 0)) == (None, None)


# --------------------------------------------------------------------------- the report


def _variant(ok: int, not_modified: int) -> OffloadRun:
    seen = [_entry(i, 200) for i in range(ok)] + [_entry(i, 304) for i in range(not_modified)]
    return OffloadRun.from_json({"client_requests": 20000, "client_errors": 0, "client_statuses": {"200": 20000},
                                 **origin_figures(seen).to_json(), "origin_body_bytes": ok * 16384})


def _report() -> dict[str, Any]:
    nginx = offload_result("nginx", "default", False, {"generated": _variant(8, 0), "baseline": _variant(8, 0),
                                                      "no_revalidation": _variant(8, 0)})
    varnish = offload_result("varnish", "default", True, {
        "generated": _variant(0, 20), "baseline": _variant(0, 22), "no_revalidation": _variant(24, 0)})
    return {"settings": {"offload": OFFLOAD.to_json()},
            "offload": {"nginx": nginx.to_json(), "varnish": varnish.to_json()},
            "performance": {"nginx": {"error": "x"}, "varnish": {"error": "x"}}}


def test_the_reports_have_an_origin_offload_section() -> None:
    page = html_report(CompareReport.from_json(_report()))
    assert "<h2>Origin offload</h2>" in page and "no revalidation" in page
    text = text_report(CompareReport.from_json(_report()))
    section = text.split("Origin offload\n", 1)[1].split("\nVerdict", 1)[0]
    rows = [re.split(r"\s{2,}", line) for line in section.splitlines()[2:8]]
    assert rows[0] == ["nginx", "generated", "8", "8", "0", "0.0%", "128 KiB", "0 KiB (0%)", "20000"]
    assert rows[2] == ["nginx", "no revalidation", "8", "8", "0", "0.0%", "128 KiB", "-", "20000"]
    assert rows[3] == ["varnish", "generated", "20", "0", "20", "100.0%", "0 KiB", "320 KiB (100%)", "20000"]
    assert "8 URLs answered with a 16384-byte body, ETag, Last-Modified and max-age=1" in section
    assert "the generated config does not have proxy_cache_revalidate (rule 'default')" in section
    assert "the generated config has a beresp.keep above 0" in section


def test_offload_targets_and_what_was_not_measured() -> None:
    report = _report()
    rows = {t.engine: t for t in targets(CompareReport.from_json(report)) if str(t.name).startswith("origin offload")}
    assert rows["nginx"].met is False and rows["nginx"].value == 0
    assert rows["varnish"].met is True and rows["varnish"].value == 1
    report["offload"] = {"nginx": {"skipped": "no cacheable rule that respects the origin's max-age"},
                         "varnish": {"error": "the no-revalidation variant did not start: boom"}}
    assert not [t for t in targets(CompareReport.from_json(report)) if str(t.name).startswith("origin offload")]
    text = text_report(CompareReport.from_json(report))
    assert "nginx: not measured: no cacheable rule that respects" in text
    assert "varnish: not measured: the no-revalidation variant did not start: boom" in text
    assert "Origin offload\n--------------\nn/a" in text_report(CompareReport.from_json({}))
