"""``cachewright diff`` through the real entry point: the output formats, exit codes, bad input,
``--requests`` and ``REV:path`` from a temporary git repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from diffedits import Edit, example, write_edited

from cachewright.harness.cli import main

SHOP = str(example("shop"))


@pytest.fixture()
def ttl_edit(tmp_path: Path) -> str:
    return str(write_edited(example("shop"), Edit("ttl", "products"), tmp_path))


def test_identical_policies_exit_0_even_with_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", SHOP, SHOP, "--exit-code"]) == 0
    assert capsys.readouterr().out.startswith("no request of 15 behaves differently between ")


def test_changes_exit_1_only_with_exit_code(ttl_edit: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", SHOP, ttl_edit]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"2 of 15 requests behave differently between {SHOP} and {ttl_edit}\n")
    assert "\nGET https://shop.example.com/products/cwdefc228\n  ttl  without them: 10m" in out
    assert "       → without them: 17m (the rule's ttl)" in out
    assert main(["diff", SHOP, ttl_edit, "--exit-code"]) == 1


def test_json_has_a_stable_schema(ttl_edit: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", SHOP, ttl_edit, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"schema", "old", "new", "compared", "changed", "layout"}
    assert (doc["schema"], doc["compared"], len(doc["changed"])) == ("cachewright-diff/1", 15, 2)
    first = doc["changed"][0]
    assert set(first) == {"request", "shown", "sources", "rule", "changes"}
    assert first["request"] == {"method": "GET", "scheme": "https", "host": "shop.example.com",
                                "target": "/products/cwdefc228", "headers": [], "cookies": []}
    assert first["rule"] == {"old": "products", "new": "products"}
    assert first["sources"] == ["rule 'products' (old): matches", "rule 'products' (new): matches"]
    change = first["changes"][0]
    assert (change["field"], change["engines"]) == ("ttl", ["nginx", "varnish"])
    assert "without them: 17m (the rule's ttl) for 200 203 204 300 301 308" in change["new"]


def test_markdown_summary_then_table(ttl_edit: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", SHOP, ttl_edit, "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"**cachewright diff**: 2 of 15 requests behave differently between {SHOP} and {ttl_edit}"
    assert lines[2:4] == ["| request | what | old | new |", "|---|---|---|---|"]
    assert lines[4].startswith("| `GET https://shop.example.com/products/cwdefc228` | ttl | without them: 10m")
    assert len(lines) == 6


def test_long_markdown_is_folded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = write_edited(example("wordpress"), Edit("delete", "admin"), tmp_path)
    assert main(["diff", str(example("wordpress")), str(edited), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "\n<details><summary>" in out and out.endswith("</details>\n")


def test_github_annotations_at_the_new_rule_line(ttl_edit: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", SHOP, ttl_edit, "--format", "github"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(n for n, text in enumerate(Path(ttl_edit).read_text().splitlines(), 1)
                if text == "- name: products")
    assert len(lines) == 1
    assert lines[0].startswith(f"::notice file={ttl_edit},line={line},title=cachewright diff%3A "
                               "rule 'products'::2 request(s) of rule 'products' behave differently")


def test_a_rule_change_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = write_edited(example("api"), Edit("delete", "me"), tmp_path)
    assert main(["diff", str(example("api")), str(edited), "--format", "github"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("::warning file=") and "rule 'v1'" in out


def test_requests_file_adds_requests(tmp_path: Path, ttl_edit: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "requests.txt"
    listed.write_text("# shop traffic\nGET /products/42?utm_source=x\n\n"
                      "GET https://www.shop.example.com/products/7 Cookie: currency=eur Accept: text/html\n"
                      "GET /cart/1\n")
    assert main(["diff", SHOP, ttl_edit, "--requests", str(listed), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["compared"] == 18
    shown = {c["shown"]: c["sources"] for c in doc["changed"]}
    assert shown["GET https://shop.example.com/products/42?utm_source=x"] == [f"{listed}:2"]
    assert shown["GET https://www.shop.example.com/products/7 [Accept: text/html; Cookie: currency=eur]"] \
        == [f"{listed}:4"]
    assert not any("/cart/1" in s for s in shown)


@pytest.mark.parametrize(("content", "message"), [
    ("GET\n", "requests.txt:1: GET: no URL (expected METHOD URL [Name: value]...)"),
    ("GET ftp://x/a\n", "requests.txt:1: 'ftp://x/a': expected /path?query or http(s)://host/path?query"),
    ("GET /a b c\n", "requests.txt:1: 'b c': expected headers as Name: value"),
])
def test_a_bad_requests_line_is_exit_2(tmp_path: Path, content: str, message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "requests.txt"
    listed.write_text(content)
    assert main(["diff", SHOP, SHOP, "--requests", str(listed)]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.strip().endswith(message)


def test_bad_policies_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", SHOP, str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such policy file (or give REV:path" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: x\norigin: {url: http://a}\n"
                      "rules: [{name: a, match: {path_prefix: /}, ttl: soon}]\n")
    assert main(["diff", SHOP, str(broken)]) == 2
    err = capsys.readouterr()
    assert err.out == "" and f"{broken}:4:" in err.err and "1 error in policy" in err.err


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with two commits of site/policy.yaml (the second changes a TTL), whose
    origin CA is a relative path beside it (only in the working tree)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    site = tmp_path / "site"
    site.mkdir()
    (site / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    text = ("version: 1\nname: t\norigin: {url: 'https://app', tls: {ca: ca.pem}}\n"
            "rules:\n  - {name: pages, match: {path_prefix: /}, ttl: 5m}\n")
    git(tmp_path, "init", "-q")
    for ttl in ("5m", "9m"):
        (site / "policy.yaml").write_text(text.replace("5m", ttl))
        git(tmp_path, "add", "site/policy.yaml")
        git(tmp_path, "commit", "-qm", ttl)
    monkeypatch.chdir(site)
    return tmp_path


def test_rev_path_from_git(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``REV:path`` from the repository's top; the CA resolves beside the working tree file."""
    assert main(["diff", "HEAD~1:site/policy.yaml", "policy.yaml", "--exit-code"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("1 of 1 requests behave differently between HEAD~1:site/policy.yaml and "
                          "policy.yaml")
    assert "  ttl  (nginx only) without them: 5m (the rule's ttl)" in out and "→ without them: 9m" in out
    assert main(["diff", "HEAD~1:./policy.yaml", "HEAD~1:site/policy.yaml", "--exit-code"]) == 0


@pytest.mark.parametrize(("spec", "message"), [
    ("HEAD~5:site/policy.yaml", "git show HEAD~5:site/policy.yaml: fatal: invalid object name 'HEAD~5'."),
    ("HEAD:site/missing.yaml",
     "git show HEAD:site/missing.yaml: fatal: path 'site/missing.yaml' does not exist in 'HEAD'"),
])
def test_a_bad_revision_or_path_is_exit_2(repo: Path, spec: str, message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", spec, "policy.yaml"]) == 2
    assert capsys.readouterr().err.strip() == message


def test_a_bad_policy_in_git_is_named_by_rev_path(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "site" / "policy.yaml").write_text("version: 1\nname: t\n")
    git(repo, "commit", "-qam", "broken")
    assert main(["diff", "HEAD:site/policy.yaml", "HEAD~1:site/policy.yaml"]) == 2
    assert capsys.readouterr().err.startswith("HEAD:site/policy.yaml:")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["diff", "--help"])
    out = capsys.readouterr().out
    assert "cachewright diff HEAD~1:policy.yaml policy.yaml" in out and "--verify-engines" in out


def test_a_fleet_layout_change_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rules of a fleet policy are compared as one node answers; its layout simply."""
    source = example("fleet-shard").read_text()
    edited = tmp_path / "policy.yaml"
    edited.write_text(source.replace("        - {name: shard-3, address: 10.0.1.23}\n", ""))
    assert edited.read_text() != source
    assert main(["diff", str(example("fleet-shard")), str(edited), "--exit-code"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no request of 5 behaves differently between ")
    assert out.endswith("fleet layout\n  tier shard: node shard-3 (10.0.1.23) removed\n")
    assert main(["diff", str(example("fleet-shard")), str(edited), "--verify-engines"]) == 2
    assert "--verify-engines replays single-node policies" in capsys.readouterr().err


def test_quiet_prints_the_summary_only(ttl_edit: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "diff", SHOP, ttl_edit]) == 0
    assert capsys.readouterr().out == f"2 of 15 requests behave differently between {SHOP} and {ttl_edit}\n"


def test_annotations_for_rev_path_name_the_file(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "HEAD~1:site/policy.yaml", "HEAD:site/policy.yaml", "--format", "github"]) == 0
    assert capsys.readouterr().out.startswith("::notice file=policy.yaml,line=5,")


def _combined(target: str, second: int) -> str:
    return (f'10.0.0.1 - - [07/Dec/2026:10:00:{second:02d} +0000] "GET {target} HTTP/1.1" 200 5 '
            '"-" "curl/8"\n')


def test_an_access_log_adds_its_distinct_requests(tmp_path: Path, ttl_edit: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A gzipped combined log: each distinct request compared once, named by its first line;
    a malformed line and the requests past --max-log-requests are noted, not fatal."""
    import gzip

    log = tmp_path / "access.log.gz"
    lines = [_combined("/products/42?utm_source=x", 1), _combined("/products/42?utm_source=x", 2),
             "garbage\n", _combined("/cart/1", 3), _combined("/products/43", 4)]
    log.write_bytes(gzip.compress("".join(lines).encode()))
    code = main(["diff", SHOP, ttl_edit, "--access-log", str(log), "--max-log-requests", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    shown = {c["shown"]: c["sources"] for c in json.loads(captured.out)["changed"]}
    assert shown["GET https://shop.example.com/products/42?utm_source=x"] == [f"{log}:1"]
    assert not any("/cart/1" in s or "/products/43" in s or "User-Agent" in s for s in shown)
    assert f"note: {log}: 1 malformed lines skipped (lines 3)" in captured.err
    assert f"note: {log}: 1 requests beyond the first 2 distinct ones not compared" in captured.err


def test_an_unreadable_access_log_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "access.log.gz"
    damaged.write_bytes(gzip_header_only())
    assert main(["diff", SHOP, SHOP, "--access-log", str(damaged)]) == 2
    assert f"--access-log {damaged}: cannot read it" in capsys.readouterr().err
    assert main(["diff", SHOP, SHOP, "--access-log", str(tmp_path / "missing.log")]) == 2


def gzip_header_only() -> bytes:
    import gzip

    return gzip.compress(b"x" * 1000)[:20]
