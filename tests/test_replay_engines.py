"""``cachewright replay --engine``: the real engines' hit ratio and origin requests beside the
prediction for the same requests, and the engines' own prediction where they differ (nginx's
stale responses have no age limit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.harness.cli import main
from cachewright.harness.traffic.entry import Entry
from cachewright.harness.traffic.predict import combined, feed_all, predictors
from cachewright.harness.traffic.report import table

POLICY = """\
version: 1
name: replay-engines
origin: {url: http://origin.test:8000}
listen: {hosts: [shop.test], http: {port: 80}}
rules:
  - {name: static, match: {path_prefix: /static/}, ttl: 1h}
  - {name: account, match: {path_prefix: /account/}, cache: false}
"""
STALE = POLICY.replace("rules:", "cache: {stale: {while_revalidate: 10s}}\nrules:").replace("1h", "2s")


def combined_line(n: int, path: str, second: int) -> str:
    minute, sec = divmod(second, 60)
    return (f'127.0.0.1 - - [07/Dec/2026:10:{minute:02d}:{sec:02d} +0000] "GET {path} HTTP/1.1" '
            f'200 5 "-" "curl/8"\n')


@pytest.mark.engine
def test_measured_beside_predicted_on_both_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """120 requests over 12 static URLs (1h TTL) and 30 to the bypass rule: 108 hits, 42 origin
    requests, predicted and measured alike by the origin's own counts; the 151st line and on
    are past --max-requests, in neither."""
    policy, log = tmp_path / "policy.yaml", tmp_path / "access.log"
    policy.write_text(POLICY)
    lines = [combined_line(i, f"/static/{i % 12}.css", i // 10) for i in range(120)]
    lines += [combined_line(i, f"/account/{i}", 12) for i in range(30)]
    lines += [combined_line(i, f"/static/late{i}.css", 13) for i in range(5)]
    log.write_text("".join(lines))
    code = main(["replay", str(policy), str(log), "--json", "--engine", "both", "--speed", "100",
                 "--max-requests", "150"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = {r["rule"]: r for r in out["rules"]}
    assert (rows["static"]["requests"], rows["static"]["hits"], rows["static"]["origin_requests"]) == (120, 108, 12)
    assert (rows["account"]["hits"], rows["account"]["origin_requests"]) == (0, 30)
    for rule in ("static", "account"):
        measured = {m["engine"]: m for m in rows[rule]["measured"]}
        assert set(measured) == {"nginx", "varnish"}
        for m in measured.values():
            assert (m["requests"], m["hits"], m["origin_requests"]) == \
                (rows[rule]["requests"], rows[rule]["hits"], rows[rule]["origin_requests"]), (rule, m)
    assert out["engines"] == {}  # no stale window: the engines do not differ


def test_nginx_is_predicted_on_its_own_where_stale_has_no_age_limit() -> None:
    """A 2 s TTL and a 10 s stale window; a URL asked at 0, 5 and 30 s: Varnish (the window) a
    miss, a stale hit, a miss; nginx (no age limit) a miss and two stale hits. Each stale hit
    sends one refresh to the origin."""
    policy = loads(STALE, "stale.yaml")
    entries = [Entry(i, "GET", "/static/a.css", time=t) for i, t in enumerate((0.0, 5.0, 30.0))]
    chosen = predictors(policy)
    assert [p.engine for p in chosen] == ["", "nginx"]
    feed_all(chosen, entries)
    result = combined(chosen, "log", "json", 0)
    (static,) = [r for r in result.rules if r.rule == "static"]
    (nginx,) = [r for r in result.predicted_for("nginx") if r.rule == "static"]
    assert (static.hits, static.stale, static.origin_requests) == (1, 1, 3)
    assert (nginx.hits, nginx.stale, nginx.origin_requests) == (2, 2, 3)
    assert result.predicted_for("varnish") == result.rules
    assert "nginx predicted" in table(result)[0]


def test_engine_options_are_checked_before_any_engine_starts(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    assert main(["replay", str(policy), "-", "--engine", "nginx"]) == 2
    assert "give a file, not standard input" in capsys.readouterr().err
    log = tmp_path / "a.log"
    log.write_text(combined_line(0, "/static/a", 0))
    assert main(["replay", str(policy), str(log), "--engine", "nginx", "--max-requests", "0"]) == 2
    assert "--max-requests takes a count from 1" in capsys.readouterr().err
