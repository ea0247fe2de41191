"""``cachewright replay POLICY ACCESS_LOG`` through the real entry point: the table, ``--json``'s
schema, malformed lines reported, ``--top``, ``--format``, standard input, exit codes (2 for an
unreadable log or a bad policy, with a message and no traceback), no progress off a terminal."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cachewright.generator.load import load
from cachewright.harness.cli import main
from cachewright.harness.traffic.synth import zipf_log

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop" / "policy.yaml"
RULE_FIELDS = {"rule", "index", "cache", "requests", "cacheable", "hits", "stale_hits", "hit_ratio",
               "origin_requests", "distinct_keys", "measured"}


@pytest.fixture(scope="module")
def shop_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2000 generated lines for the shop, then two malformed ones."""
    out = io.StringIO()
    zipf_log(load(SHOP), 2000, 5, out, urls=200, span=1800)
    path = tmp_path_factory.mktemp("logs") / "access.log"
    path.write_text(out.getvalue() + "not a log line\n" + '1.2.3.4 - - [99/Oct/2026:00:00:00 +0000] '
                    '"GET / HTTP/1.1" 200 1 "-" "-"\n', encoding="utf-8")
    return path


def test_the_table(shop_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SHOP), str(shop_log), "--top", "3"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # not a terminal: no progress
    lines = out.splitlines()
    assert lines[1].startswith(f"log     {shop_log} (combined, 2,002 lines, ")
    # shop has a stale.while_revalidate window: nginx, without an age limit, is predicted on its own
    assert lines[3].split() == ["rule", "requests", "cacheable", "hits", "hit", "ratio", "origin", "keys",
                                "nginx", "predicted"]
    assert any(line.startswith("cart (cache: false)") for line in lines)
    assert next(line for line in lines if line.startswith("total")).split()[1] == "2,000"
    busiest = lines.index("busiest keys")
    assert lines[busiest + 1].split() == ["requests", "origin", "rule", "key"]
    assert lines[busiest + 5] == ""  # --top 3
    assert "malformed lines: 2 (skipped; lines 2001, 2002); line 2001: " in out
    assert "origin_headers: respect" in out


def test_json_schema(shop_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SHOP), str(shop_log), "--json", "--top", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"schema", "policy", "log", "format", "lines", "span_seconds", "rules",
                         "totals", "refused", "purges", "top_keys", "malformed", "key_table",
                         "assumptions", "engines"}
    assert set(data["engines"]) == {"nginx"}  # shop's stale window: nginx's own prediction
    assert [r["rule"] for r in data["engines"]["nginx"]["rules"]] == [r["rule"] for r in data["rules"]]
    assert data["schema"] == "cachewright.replay/1" and data["format"] == "combined"
    assert [r["rule"] for r in data["rules"]] == ["static", "cart", "checkout", "account", "products",
                                                  "category", "default"]
    assert all(set(r) == RULE_FIELDS and r["measured"] == [] for r in data["rules"])
    assert set(data["totals"]) == RULE_FIELDS - {"rule", "index", "cache"}
    assert data["totals"]["requests"] == sum(r["requests"] for r in data["rules"]) == 2000
    assert data["malformed"] == {"count": 2, "first": [
        {"line": 2001, "reason": "no [time] field"},
        {"line": 2002, "reason": "bad time [99/Oct/2026:00:00:00 +0000] (expected [10/Oct/2000:13:55:36 -0700])"}]}
    assert len(data["top_keys"]) == 2 and set(data["top_keys"][0]) == {"key", "rule", "requests", "origin_requests"}
    assert data["key_table"] == {"limit": 500000, "forgotten": 0}


def test_gzip_stdin_and_format(shop_log: Path, tmp_path: Path) -> None:
    zipped = tmp_path / "access.log.1.gz"
    zipped.write_bytes(gzip.compress(shop_log.read_bytes()))
    args = [sys.executable, "-m", "cachewright.harness", "replay", str(SHOP)]
    plain = subprocess.run([*args, str(shop_log), "--json"], capture_output=True, text=True, check=True)
    piped = subprocess.run([*args, "-", "--json", "--format", "combined"], input=zipped.read_bytes(),
                           capture_output=True, check=True)
    first, second = json.loads(plain.stdout), json.loads(piped.stdout)
    assert second["log"] == "standard input" and plain.stderr == ""
    assert {k: v for k, v in first.items() if k != "log"} == {k: v for k, v in second.items() if k != "log"}


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.log", "cachewright replay: cannot read {}: No such file or directory"),
    (lambda d: d, "cachewright replay: cannot read {}: Is a directory"),
    (lambda d: _cut_gzip(d), "cachewright replay: cannot read {}: a damaged gzip stream"),
])
def test_an_unreadable_log_is_exit_2(make: object, message: str, tmp_path: Path) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    result = subprocess.run([sys.executable, "-m", "cachewright.harness", "replay", str(SHOP), str(path)],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(message.format(path)) and "Traceback" not in result.stderr


def _cut_gzip(folder: Path) -> Path:
    path = folder / "cut.gz"
    path.write_bytes(gzip.compress(b'1.2.3.4 - - [10/Oct/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1\n' * 500)[:-30])
    return path


def test_a_bad_policy_is_exit_2(tmp_path: Path, shop_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nname: x\n", encoding="utf-8")
    assert main(["replay", str(bad), str(shop_log)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"{bad}:") and "origin" in err


def test_bad_options_are_exit_2(shop_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SHOP), str(shop_log), "--top", "-1"]) == 2
    assert "--top takes a count from 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["replay", str(SHOP), str(shop_log), "--format", "apache"])
    assert exit_.value.code == 2


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    assert "cachewright replay policy.yaml /var/log/nginx/access.log" in capsys.readouterr().out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from cachewright.harness.traffic import progress

    monkeypatch.setattr(progress, "EVERY", 2)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    pipe, tty = io.StringIO(), Terminal()
    assert list(progress.counted(range(5), pipe)) == list(progress.counted(range(5), tty)) == [0, 1, 2, 3, 4]
    assert pipe.getvalue() == ""
    assert "\r4 lines read" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[K")
