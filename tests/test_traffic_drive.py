"""Replaying traffic through the real nginx and Varnish: origin counts equal a hand computation
(five requests within the TTL reach the origin once, a bypass rule's every request does, a TTL
expires where the compressed log says), refused URLs are counted, and ``test --replay`` passes
against its own baseline and fails, naming the request, once the policy changes its outcome."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.harness.cli import main
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.traffic.drive import drive, measure
from cachewright.harness.traffic.entry import Entry, Malformed

pytestmark = pytest.mark.engine

POLICY = """\
version: 1
name: replay
origin: {url: http://origin.test:8000}
listen: {hosts: [shop.test], http: {port: 80}}
rules:
  - {name: static, match: {path_prefix: /static/}, ttl: 10s}
  - {name: account, match: {path_prefix: /account/}, cache: false}
"""
ENGINES = ("nginx", "varnish")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with LocalRuntime().start(loads(POLICY, "replay.yaml"), ENGINES) as running:
        yield running


def token() -> str:
    return uuid.uuid4().hex[:8]


@pytest.mark.parametrize("engine", ENGINES)
def test_five_requests_within_the_ttl_reach_the_origin_once(stack: Stack, engine: str) -> None:
    path = f"/static/{token()}"
    measured = drive(stack, engine, loads(POLICY, "replay.yaml"), [Entry(i, "GET", path) for i in range(5)])
    assert measured.rules["static"].requests == 5
    assert measured.rules["static"].origin == 1 == measured.origin_total
    assert measured.rules["static"].hits == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bypass_rule_sends_every_request_to_the_origin(stack: Stack, engine: str) -> None:
    path = f"/account/{token()}"
    measured = drive(stack, engine, loads(POLICY, "replay.yaml"), [Entry(i, "GET", path) for i in range(4)])
    assert (measured.rules["account"].requests, measured.rules["account"].hits) == (4, 0)
    assert measured.rules["account"].origin == 4 == measured.origin_total


@pytest.mark.parametrize("engine", ENGINES)
def test_refused_urls_and_bad_lines_are_counted_not_fatal(stack: Stack, engine: str) -> None:
    path = f"/static/{token()}"
    entries = [Entry(1, "GET", "/static/../etc"), Malformed(2, "nonsense"), Entry(3, "GET", path),
               Entry(4, "GET", path)]
    measured = drive(stack, engine, loads(POLICY, "replay.yaml"), entries, concurrency=2)
    assert (measured.refused, measured.malformed, measured.errors, measured.sent) == (1, 1, 0, 3)
    assert measured.rules["static"].origin == 1 and measured.rules["static"].requests == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_unsendable_requests_are_errors_and_a_failing_observer_stops_the_replay(stack: Stack, engine: str) -> None:
    policy = loads(POLICY, "replay.yaml")
    entries = [Entry(1, "GET", "/static/a b"), Entry(2, "GET", "/static/x", headers=(("X-A", "1\r\nX-B: 2"),)),
               *(Entry(i, "GET", f"/static/{token()}") for i in range(3, 1003))]
    measured = drive(stack, engine, policy, entries, concurrency=2)
    assert (measured.errors, measured.sent, measured.rules["static"].requests) == (2, 1002, 1000)
    assert any(n.startswith("2 requests got no answer; the first: line ") for n in measured.notes), measured.notes

    def observe(sent: object) -> None:
        raise RuntimeError("observer broke")

    with pytest.raises(RuntimeError, match="observer broke"):
        drive(stack, engine, policy, entries, concurrency=2, observe=observe)


def test_a_ttl_expires_where_the_compressed_log_says(tmp_path: Path) -> None:
    # Log times 0, 5, 16, 18 s with a 10 s TTL: the third request comes after the first
    # answer expired. At speed 5 the TTL runs as 2 s and the requests go at 0, 1, 3.2, 3.6 s.
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    entries = [Entry(i, "GET", "/static/expiring", time=1000.0 + t) for i, t in enumerate((0, 5, 16, 18))]
    for measured in measure(policy, lambda: entries, "both", speed=5.0, max_seconds=20.0):
        assert measured.rules["static"].origin == 2, measured
        assert measured.rules["static"].hits == 2, measured
        assert measured.late == 0 and measured.seconds >= 3.6


TRAFFIC = ("/static/a", "/static/a", "/account/x", "/static/../x")


def _gzip_combined() -> bytes:
    import gzip

    return gzip.compress("".join(f'127.0.0.1 - - [07/Dec/2026:10:00:0{i} +0000] "GET {t} HTTP/1.1" 200 5 '
                                 '"-" "curl/8"\n' for i, t in enumerate(TRAFFIC)).encode())


@pytest.mark.parametrize("kind", ["requests file", "gzipped access log"])
def test_replay_passes_against_its_baseline_and_fails_naming_a_changed_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    policy, edited, traffic = tmp_path / "policy.yaml", tmp_path / "edited.yaml", tmp_path / "traffic"
    policy.write_text(POLICY, encoding="utf-8")
    edited.write_text(POLICY.replace("ttl: 10s", "cache: false"), encoding="utf-8")
    if kind == "requests file":
        traffic.write_text("".join(f"GET {t}\n" for t in TRAFFIC), encoding="utf-8")
    else:
        traffic.write_bytes(_gzip_combined())
    saved = tmp_path / "baseline.json"
    replay = ["--no-derived", "--no-scenarios", "--replay", str(traffic), "--replay-baseline", str(saved)]
    assert main(["test", str(policy), *replay]) == 0  # records
    assert saved.is_file()
    assert main(["test", str(policy), *replay]) == 0  # compares: unchanged
    capsys.readouterr()
    assert main(["test", str(edited), *replay]) == 1
    out = capsys.readouterr().out
    assert "1 of 3 requests changed outcome" in out
    assert ("line 1: GET shop.test/static/a: baseline rule static, miss hit, origin 1; "
            "now rule static, bypass bypass, origin 2") in out
    assert "/account/x" not in out
