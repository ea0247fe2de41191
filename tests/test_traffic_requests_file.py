"""The requests file (``METHOD URL [Name: value]...``), the replay's timer scaling and its
baseline, without engines: lines read with their numbers, bad lines as Malformed, timers
divided by the speed with a note where whole seconds cannot hold them, a changed outcome named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachewright.generator.errors import UsageError
from cachewright.generator.load import loads
from cachewright.harness.cli import main
from cachewright.harness.traffic import baseline
from cachewright.harness.traffic.drive import time_scaled
from cachewright.harness.traffic.entry import Entry, Malformed
from cachewright.harness.traffic.requests_file import parse_line, read_requests

POLICY = """\
version: 1
name: replay
origin: {url: http://origin.test:8000}
listen: {hosts: [shop.test], http: {port: 80}}
cache: {default_ttl: 30s, stale: {while_revalidate: 20s}}
rules:
  - {name: static, match: {path_prefix: /static/}, ttl: 1h}
  - {name: api, match: {path_prefix: /api/}, ttl: 7s}
  - {name: account, match: {path_prefix: /account/}, cache: false}
"""


def test_a_line_with_a_target_and_headers() -> None:
    entry = parse_line("GET /a?x=1 Accept-Language: de Cookie: a=b; c=d", 3)
    assert entry == Entry(3, "GET", "/a?x=1", None, (("Accept-Language", "de"), ("Cookie", "a=b; c=d")))


def test_an_absolute_url_gives_the_host() -> None:
    entry = parse_line("HEAD https://Shop.Test:8443/x", 1)
    assert isinstance(entry, Entry)
    assert (entry.method, entry.target, entry.host) == ("HEAD", "/x", "shop.test")


@pytest.mark.parametrize(("line", "why"), [
    ("GET", "no URL"),
    ("G@T /a", "expected METHOD URL"),
    ("GET ftp://x/a", "expected /path?query or http(s)://host/path?query"),
    ("GET /a junk", "expected headers as Name: value"),
])
def test_bad_lines_are_malformed_with_the_reason(line: str, why: str) -> None:
    bad = parse_line(line, 7)
    assert isinstance(bad, Malformed) and bad.line == 7 and why in bad.reason


def test_the_file_skips_comments_and_blank_lines_keeping_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "requests.txt"
    path.write_text("# traffic\n\nGET /a\nnonsense\nPOST /b X-A: 1\n", encoding="utf-8")
    read = list(read_requests(path))
    assert [type(r).__name__ for r in read] == ["Entry", "Malformed", "Entry"]
    assert [r.line for r in read] == [3, 4, 5]


def test_timers_are_divided_by_the_speed_with_notes_where_seconds_cannot_hold_them() -> None:
    policy = loads(POLICY, "replay.yaml")
    scaled, notes = time_scaled(policy, 10)
    assert [r.ttl for r in scaled.rules] == [360, 1, None]
    assert scaled.cache.default_ttl == 3
    assert scaled.cache.stale.while_revalidate == 2
    assert any(n.startswith("rules.api.ttl: 7s at speed 10 is 0.70s, run as 1s") for n in notes)
    assert not any(n.startswith("rules.static") for n in notes)
    assert time_scaled(policy, 1.0) == (policy, ())


def test_a_changed_outcome_is_named_with_its_line() -> None:
    before = {"GET shop.test/a": baseline.Outcome("static", ("miss", "hit"), 1, 4)}
    now = {"GET shop.test/a": baseline.Outcome("static", ("bypass", "bypass"), 2, 4),
           "GET shop.test/b": baseline.Outcome("api", ("miss",), 1, 9)}
    assert baseline.changes(before, now) == [
        "line 4: GET shop.test/a: baseline rule static, miss hit, origin 1; now rule static, bypass bypass, origin 2",
        "line 9: GET shop.test/b: baseline not in the baseline; now rule api, miss, origin 1",
    ]
    assert baseline.changes(before, {"GET shop.test/a": baseline.Outcome("static", ("miss", "hit"), 1, 5)}) == []


def test_a_baseline_round_trips_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    saved = {"nginx": {"GET shop.test/a": baseline.Outcome("static", ("miss", "hit"), 1, 4)}}
    baseline.save(tmp_path / "b.json", saved, tmp_path / "log")
    assert baseline.load(tmp_path / "b.json") == saved
    assert baseline.load(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text('{"x": 1}', encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad.json: cannot read the replay baseline: not a replay baseline"):
        baseline.load(tmp_path / "bad.json")


def test_bad_replay_options_exit_2_before_any_engine_starts(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    assert main(["test", str(policy), "--replay", str(tmp_path / "none.txt")]) == 2
    assert "--replay" in capsys.readouterr().err
    (tmp_path / "r.txt").write_text("GET /a\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text("[", encoding="utf-8")
    assert main(["test", str(policy), "--replay", str(tmp_path / "r.txt"),
                 "--replay-baseline", str(tmp_path / "bad.json")]) == 2
    assert "cannot read the replay baseline" in capsys.readouterr().err
    assert main(["test", str(policy), "--replay-baseline", str(tmp_path / "bad.json")]) == 2
