"""The CLI through its real entry point: exit codes, messages, atomic output, drift checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cachewright.harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop" / "policy.yaml"
BAD = "version: 1\nname: x\norigin: {url: http://app:8000}\ncache: {default_ttl: soon}\n"


def test_compile_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cachewright-out"
    assert main(["compile", str(SHOP), "-o", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["hitch/hitch.conf", "nginx/ffdhe2048.pem", "nginx/nginx.conf", "varnish/default.vcl",
                       "varnish/varnishd.args"]
    assert "warning: purge by tag" in capsys.readouterr().err


def test_policy_error_exits_2_without_traceback_or_output(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BAD)
    assert main(["compile", str(policy), "-o", str(tmp_path / "cachewright-out")]) == 2
    err = capsys.readouterr().err
    assert err == (f'{policy}:4:22: cache.default_ttl: "soon" is not a duration '
                   "(examples: 10s, 5m, 1h30m, 30d)\n1 error in policy\n")
    assert not (tmp_path / "cachewright-out").exists()


def test_unsupported_feature_is_a_compile_error_for_that_engine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(SHOP.read_text().replace("accept_missing:\n  nginx: [purge.tag]\n", ""))
    assert main(["compile", str(policy), "-o", str(tmp_path / "b"), "--target", "nginx"]) == 2
    err = capsys.readouterr().err
    assert "purge.kinds: purge by tag (surrogate keys) (purge.tag) is unsupported on nginx" in err
    assert "alternative: purge each URL (purge.kinds: [url])" in err
    assert not (tmp_path / "b").exists()
    assert main(["compile", str(policy), "-o", str(tmp_path / "b"), "--target", "varnish"]) == 0


def test_check_reports_drift_with_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cachewright-out"
    assert main(["compile", str(SHOP), "-o", str(out)]) == 0
    assert main(["compile", str(SHOP), "-o", str(out), "--check"]) == 0
    vcl = out / "varnish" / "default.vcl"
    vcl.write_text(vcl.read_text().replace("set beresp.grace = 3630s;", "set beresp.grace = 1s;"))
    capsys.readouterr()
    assert main(["compile", str(SHOP), "-o", str(out), "--check"]) == 1
    diff = capsys.readouterr().out
    assert "-    set beresp.grace = 1s;" in diff and "+    set beresp.grace = 3630s;" in diff


def test_capabilities_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capabilities"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["feature", "nginx", "varnish", "alternative"]
    assert any(line.startswith("purge.tag") and "unsupported" in line for line in out.splitlines())


@pytest.mark.engine
def test_verify_reports_engine_versions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(SHOP)]) == 0
    out = capsys.readouterr().out
    assert "ok: nginx accepts the configuration (nginx version: nginx/1." in out
    assert "ok: varnish accepts the configuration (varnishd (varnish-" in out
    assert "ok: hitch accepts the configuration" in out


@pytest.mark.engine
def test_verify_maps_an_engine_error_to_the_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from cachewright.generator import render

    original = render.render

    def broken(template: str, model: object, source: str) -> str:
        text = original(template, model, source)
        return text.replace("var.set(\"rule\", \"cart\");",
                            "var.set(\"rule\", cart);")

    monkeypatch.setattr("cachewright.generator.render.render", broken)  # what pipeline renders with
    assert main(["verify", str(SHOP), "--target", "varnish"]) == 1
    err = capsys.readouterr().err
    assert "varnishd -C rejected the generated default.vcl" in err
    assert "produced by rule cart (" in err


def test_installed_console_script_finds_its_templates(tmp_path: Path) -> None:
    """What `pip install .` gives: the console script, run outside the source tree."""
    script = shutil.which("cachewright", path=str(Path(sys.executable).parent))
    assert script, "the cachewright console script is not installed next to this Python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([script, "compile", str(SHOP), "-o", "out"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "varnish" / "default.vcl").read_text().startswith("# Generated by")
