"""How much the CLI says: --quiet, --verbose, and test's --trace (one line per request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachewright.harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "examples" / "static-site" / "policy.yaml"
SHOP = ROOT / "examples" / "shop" / "policy.yaml"


def test_quiet_compile_prints_nothing_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compile", str(STATIC), "-o", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "nginx" / "nginx.conf").is_file()


@pytest.mark.engine
def test_quiet_test_prints_only_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "test", str(STATIC), "--checks", "rule.html", "--no-scenarios"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("PASSED in ")


@pytest.mark.engine
def test_trace_shows_each_request_and_whether_the_origin_answered(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(STATIC), "--checks", "rule.html", "--no-scenarios", "--trace"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trace ")]
    assert any("-> 200 miss (origin)" in line and line.startswith("trace nginx") for line in lines)
    assert any("-> 200 hit (cache)" in line and line.startswith("trace varnish") for line in lines)


@pytest.mark.engine
def test_verbose_shows_what_passed_checks_noted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "test", str(SHOP), "--checks", "tls.handshake", "--no-scenarios"]) == 0
    err = capsys.readouterr().err
    assert "PASS tls.handshake [nginx]: " in err and "TLSv1.3" in err


def test_quiet_and_verbose_also_after_the_command(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every command takes -q/-v after its name too (README: "Every command takes -q ...")."""
    assert main(["compile", str(STATIC), "-o", str(tmp_path), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["compile", str(STATIC), "-o", str(tmp_path), "--verbose"]) == 0
    assert str(tmp_path / "nginx" / "nginx.conf") in capsys.readouterr().out
    assert main(["-v", "capabilities", "-v"]) == 0


def test_quiet_and_verbose_exclude_each_other_wherever_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-q", "compile", str(STATIC), "-o", str(tmp_path), "-v"])
    assert exc.value.code == 2
    assert "-q/--quiet and -v/--verbose exclude each other" in capsys.readouterr().err
    assert not tmp_path.joinpath("nginx").exists()
