"""``cachewright validate`` (every file checked and reported, nothing written) and
``--format github`` on compile and validate: each problem an annotation at its policy line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachewright.generator.errors import PolicyError, Problem
from cachewright.harness.cli import main
from cachewright.harness.report.annotate import error_annotations
from cachewright.harness.report.github import render

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop" / "policy.yaml"
FLEET = ROOT / "examples" / "fleet-shard" / "policy.yaml"
GOOD = "version: 1\nname: good\norigin: {url: http://127.0.0.1:8000}\n"
BAD_TTL = "version: 1\nname: x\norigin: {url: http://app:8000}\ncache: {default_ttl: soon}\n"
BAD_RULE = ("version: 1\nname: y\norigin: {url: http://app:8000}\nrules:\n"
            "  - {name: r, match: {path_prefix: /a/}, ttl: 10 minutes}\n")
# rule 'admin' misses /admin (no trailing slash): a warning at rules[0].match.path_prefix (6:13)
WARNS = ("version: 1\nname: w\norigin: {url: http://127.0.0.1:8000}\nrules:\n  - name: admin\n"
         "    match: {path_prefix: /admin/}\n    cache: false\n  - name: pages\n"
         "    match: {path_prefix: /}\n    ttl: 1m\n")
TTL_MESSAGE = 'cache.default_ttl: "soon" is not a duration (examples: 10s, 5m, 1h30m, 30d)'
RULE_MESSAGE = 'rules[0].ttl: "10 minutes" is not a duration (examples: 10s, 5m, 1h30m, 30d)'


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the working directory (paths as a workflow gives them: relative)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_validate_reports_every_file_and_writes_nothing(work: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in {"good.yaml": GOOD, "ttl.yaml": BAD_TTL, "rule.yaml": BAD_RULE}.items():
        (work / name).write_text(text)
    before = files(work)
    assert main(["validate", "ttl.yaml", "missing.yaml", "good.yaml", "rule.yaml", str(FLEET)]) == 2
    out, err = capsys.readouterr()
    assert out == f"good.yaml: ok\n{FLEET}: ok\n"
    assert f"ttl.yaml:4:22: {TTL_MESSAGE}\n1 error in policy\n" in err
    assert "missing.yaml: no such file\n" in err
    assert f"rule.yaml:5:47: {RULE_MESSAGE}\n1 error in policy\n" in err
    assert err.endswith("3 of 5 policies are invalid\n") and "Traceback" not in err
    assert files(work) == before


def test_validate_exits_0_when_every_file_is_valid_and_is_quiet_with_q(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = [str(p) for p in sorted(ROOT.glob("examples/*/policy.yaml"))]
    assert main(["validate", *examples]) == 0
    assert capsys.readouterr().out == "".join(f"{p}: ok\n" for p in examples)
    assert main(["validate", *examples, "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert files(work) == []


def test_validate_compiles_for_every_engine(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A feature one engine lacks fails validate (as compile), unless --target leaves it out."""
    (work / "policy.yaml").write_text(SHOP.read_text().replace("accept_missing:\n  nginx: [purge.tag]\n", ""))
    assert main(["validate", "policy.yaml"]) == 2
    assert "purge.tag) is unsupported on nginx" in capsys.readouterr().err
    assert main(["validate", "policy.yaml", "--target", "varnish"]) == 0


def test_validate_github_annotations(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "ttl.yaml").write_text(BAD_TTL)
    (work / "warns.yaml").write_text(WARNS)
    assert main(["validate", "ttl.yaml", "warns.yaml", "gone.yaml", "--format", "github"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"::error file=ttl.yaml,line=4,col=22,title=cachewright%3A policy error::{TTL_MESSAGE}",
        "::warning file=warns.yaml,line=6,col=13,title=cachewright%3A warning::"
        "rules[0].match.path_prefix: rule 'admin' does not match /admin (no trailing slash), which "
        "goes to rule 'pages' (rules[1]) (write path_prefix: /admin to take it too, or add a rule "
        "with path: /admin)",
        "warns.yaml: ok",
        "::error file=gone.yaml,title=cachewright%3A cannot be used::gone.yaml: no such file",
    ]


def test_compile_github_annotations_at_the_policy_line(work: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (work / "policy.yaml").write_text(BAD_RULE.replace("/a/}", "/a/}, vary: [Bad Header]"))
    assert main(["compile", "policy.yaml", "--format", "github"]) == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("::error file=policy.yaml,line=5,col=") for line in lines)
    assert lines[1] == f"::error file=policy.yaml,line=5,col=67,title=cachewright%3A policy error::{RULE_MESSAGE}"
    assert "rules[0].vary[0]" in lines[0]
    assert RULE_MESSAGE in err  # the text report as without --format
    assert not (work / "cachewright-out").exists()


def test_compile_github_capability_error_names_engine_and_line(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "policy.yaml").write_text(SHOP.read_text().replace("accept_missing:\n  nginx: [purge.tag]\n", ""))
    assert main(["compile", "policy.yaml", "--target", "nginx", "--format", "github"]) == 2
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("::error file=policy.yaml,line=57,col=3,title=cachewright%3A unsupported "
                           "by an engine::purge.kinds: purge by tag (surrogate keys) (purge.tag) is "
                           "unsupported on nginx")


def test_compile_github_warnings_and_drift(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "policy.yaml").write_text(WARNS)
    assert main(["compile", "policy.yaml", "-q", "--format", "github"]) == 0
    assert capsys.readouterr().out.startswith("::warning file=policy.yaml,line=6,col=13,")
    assert (work / "cachewright-out" / "nginx" / "nginx.conf").is_file()  # the default output folder
    (work / "policy.yaml").write_text(WARNS.replace("ttl: 1m", "ttl: 2m"))
    assert main(["compile", "policy.yaml", "--check", "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert out.endswith("::error file=policy.yaml,title=cachewright%3A drift::cachewright-out: out of "
                        "date with policy.yaml (run cachewright compile)\n")


def test_text_format_prints_no_annotations(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "policy.yaml").write_text(BAD_TTL)
    assert main(["compile", "policy.yaml", "--format", "text"]) == 2
    assert main(["validate", "policy.yaml"]) == 2
    assert capsys.readouterr().out == ""


def test_hostile_values_cannot_forge_an_annotation(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A line break or '::' in a value, a key or the file's name stays inside one annotation."""
    name = "p,line=9:x.yaml"
    (work / name).write_text('version: 1\nname: "a\\n::error file=forged.yaml::pwned"\n'
                             'origin: {url: "http://app:8000/\\n::warning::x"}\n'
                             '"key\\n::error::k": 1\n')
    assert main(["validate", name, "--format", "github"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3
    assert all(line.startswith("::error file=p%2Cline=9%3Ax.yaml,line=") for line in lines), lines


def test_a_line_break_in_a_message_stays_in_its_annotation() -> None:
    problem = Problem("p.yaml", 2, 3, "name", "bad\r\n::error file=x::forged")
    text = render(error_annotations(PolicyError([problem]), "p.yaml"))
    assert text == ("::error file=p.yaml,line=2,col=3,title=cachewright%3A policy error::"
                    "name: bad%0D%0A::error file=x::forged\n")


TINY = ("version: 1\nname: tiny\norigin: {url: http://127.0.0.1:8000}\nrules:\n"
        "  - name: assets\n    match: {path_prefix: /assets/}\n    ttl: 1h\n"
        "    origin_headers: override\n")
FAILING_SCENARIO = ("version: 1\nscenarios:\n  - name: wrong\n    steps:\n"
                    "      - {path: \"/assets/{run}/a.css\", expect: {status: 404}}\n")


@pytest.mark.engine
def test_a_failed_check_is_annotated_at_its_rule(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Real nginx, its cache turned off for rule 'assets': rule.assets fails at the rule's line
    (5:5), the failing scenario at its entry in scenarios.yaml; the text report is unchanged."""
    from tampering import tamper

    (work / "policy.yaml").write_text(TINY)
    (work / "scenarios.yaml").write_text(FAILING_SCENARIO)
    rule = "proxy_no_cache $http_authorization $http_cookie $cw_nostore;"
    changed = tamper(monkeypatch, lambda path, text: text.replace(rule, "proxy_no_cache 1;", 1))
    argv = ["test", "policy.yaml", "--engine", "nginx", "--checks", "rule.assets", "--format", "github"]
    assert main(argv) == 1
    assert changed == ["nginx/nginx.conf"]
    out = capsys.readouterr().out
    annotations = [line for line in out.splitlines() if line.startswith("::")]
    scenario = [a for a in annotations if "scenario%3Awrong" in a]
    assert scenario == [a for a in annotations if a.startswith("::error file=scenarios.yaml,line=3,"
                                                                "title=cachewright test%3A scenario%3A"
                                                                "wrong (nginx)::scenario:wrong failed on nginx: ")]
    rules = [a for a in annotations if a not in scenario]
    assert any(a.startswith("::error file=policy.yaml,line=5,col=5,title=cachewright test%3A rule.assets "
                            "(nginx)::rule.assets failed on nginx: ") for a in rules), rules
    assert all(a.startswith("::error file=policy.yaml,line=5,col=5,title=cachewright test%3A rule.assets")
               for a in rules), rules
    assert len(scenario) == 1
    assert "FAILED" in out  # the table and verdict, as without --format


def test_a_check_points_at_its_rule_else_at_the_policy_file() -> None:
    from cachewright.harness.report.annotate import place_of

    places = {"rule.api": ("p.yaml", 9, 5), "scenario:s": ("s.yaml", 3, 0)}
    assert place_of("rule.api.ttl", places, "p.yaml") == ("p.yaml", 9, 5)
    assert place_of("blackbox.rule.api.vary", places, "p.yaml") == ("p.yaml", 9, 5)
    assert place_of("scenario:s", places, "p.yaml") == ("s.yaml", 3, 0)
    assert place_of("rule.apix", places, "p.yaml") == ("p.yaml", 0, 0)
    assert place_of("purge.url", places, "p.yaml") == ("p.yaml", 0, 0)


def test_an_engine_refusal_is_an_error_on_the_whole_policy_file() -> None:
    from cachewright.generator.errors import VerifyError

    refused = VerifyError("nginx -t rejected the generated nginx.conf:\nunknown directive")
    assert render(error_annotations(refused, "p.yaml")) == (
        "::error file=p.yaml,title=cachewright%3A rejected by an engine::nginx -t rejected the "
        "generated nginx.conf:%0Aunknown directive\n")


def test_a_check_failed_on_both_engines_is_one_annotation() -> None:
    from datetime import UTC, datetime

    from cachewright.harness.report.annotate import check_annotations
    from cachewright.harness.report.results import CheckResult, RunResult

    results = (CheckResult("rule.api.ttl", "d", "nginx", "failed", "stored 5s"),
               CheckResult("rule.api.ttl", "d", "varnish", "failed", "stored 6s"),
               CheckResult("purge.url", "d", "nginx", "passed"),
               CheckResult("purge.url", "d", "varnish", "failed", "still cached"))
    run = RunResult("p", "p.yaml", "local", ("nginx", "varnish"), results, datetime.now(UTC), 1.0)
    assert render(check_annotations(run, {"rule.api": ("p.yaml", 9, 5)})) == (
        "::error file=p.yaml,line=9,col=5,title=cachewright test%3A rule.api.ttl (nginx%2C varnish)::"
        "rule.api.ttl failed on nginx: stored 5s; on varnish: stored 6s\n"
        "::error file=p.yaml,title=cachewright test%3A purge.url (varnish)::purge.url failed on "
        "varnish: still cached\n")
