"""``cachewright init``: every archetype is a commented policy that loads, compiles for both engines
and (marked ``engine``) passes the real engines' checks; existing files are kept without --force."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cachewright.generator.load import load, loads
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.commands import init
from cachewright.harness.engines.verify import unresolvable, verify


def run(argv: list[str]) -> int:
    top = argparse.ArgumentParser(prog="cachewright")
    init.add_parser(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["init", *argv])
    code: int = args.run(args)
    return code


@pytest.mark.parametrize("name", sorted(init.ARCHETYPES))
def test_archetype_loads_and_compiles_for_both_engines(name: str) -> None:
    text = init.archetype_text(name)
    assert text.startswith("# yaml-language-server: $schema=")
    policy = loads(text, f"{name}.yaml")
    files = {f.path for f in compile_policy(policy).files}
    assert {"nginx/nginx.conf", "varnish/default.vcl"} <= files


@pytest.mark.engine
@pytest.mark.parametrize("name", sorted(init.ARCHETYPES))
def test_archetype_passes_the_engines_checks(name: str, tmp_path: Path) -> None:
    assert run(["--archetype", name, "-o", str(tmp_path / "policy.yaml")]) == 0
    policy = load(tmp_path / "policy.yaml")
    hosts = unresolvable(s.host for s in policy.origin.servers)
    done = verify(compile_policy(policy).files, tmp_path, hosts)
    assert {v.engine for v in done} >= {"nginx", "varnish"}


def test_writes_the_default_archetype(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run([]) == 0
    assert (tmp_path / "policy.yaml").read_text() == init.archetype_text("static")
    assert "cachewright compile policy.yaml" in capsys.readouterr().out


def test_refuses_to_overwrite_without_force(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "policy.yaml"
    target.write_text("mine\n")
    assert run(["-o", str(target), "--archetype", "api"]) == 2
    assert target.read_text() == "mine\n"
    assert "already exists (use --force to overwrite it)" in capsys.readouterr().err
    assert run(["-o", str(target), "--archetype", "api", "--force"]) == 0
    assert target.read_text() == init.archetype_text("api")


def test_prints_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["-o", "-", "--archetype", "cms"]) == 0
    assert capsys.readouterr().out == init.archetype_text("cms")


def test_archetypes_are_package_data() -> None:
    shipped = Path(init.__file__).parents[1] / "archetypes"
    assert sorted(p.stem for p in shipped.glob("*.yaml")) == sorted(init.ARCHETYPES)


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["--help"])
    assert "cachewright init --archetype shop -o shop.yaml" in capsys.readouterr().out
