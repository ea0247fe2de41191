"""Start-up is a feature: the CLI builds its parser without the machinery of its commands.

Each check runs in a fresh interpreter and reads ``sys.modules``: not timed, so it cannot fail
under load, but it fails as soon as a command module imports something heavy at the top again.
(The timed figures are in docs/benchmarks.md, from benchmarks/compile/run.py.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop" / "policy.yaml"
#: what no command needs to build its parser (the checks, reports, HTTP, TLS, Docker, templates,
#: YAML, the policy model)
HEAVY = ("cachewright.harness.checks", "cachewright.harness.scenarios", "cachewright.harness.report",
         "cachewright.generator.model", "requests", "docker", "cryptography", "jinja2", "yaml", "greenery")
#: what compiling a policy does not need (verification, the harness's checks and reports)
NOT_FOR_COMPILE = ("cachewright.harness.checks", "cachewright.harness.report", "requests", "docker",
                   "cryptography", "cachewright.harness.engines.verify", "cachewright.harness.certs")
COMMANDS = ("init", "compile", "validate", "verify", "test", "compare", "serve", "explain", "replay",
            "diff", "purge",
            "capabilities", "schema")


def loaded(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = textwrap.dedent(code) + "\nprint('\\n'.join(sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", "import sys\n" + script], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(n for n in names if n in modules)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_builds_its_parser_without_its_machinery(name: str) -> None:
    modules = loaded(f"""
        import argparse
        from cachewright.harness.commands import {name}
        {name}.add_parser(argparse.ArgumentParser().add_subparsers())
    """)
    assert heavy(modules) == []


def test_the_cli_starts_without_any_command_machinery() -> None:
    """`cachewright --version` (and every parse) imports no command's machinery."""
    modules = loaded("from cachewright.harness import cli\ncli.parser()")
    assert heavy(modules) == []


def test_compile_imports_only_the_compiler(tmp_path: Path) -> None:
    modules = loaded(f"""
        import argparse
        from cachewright.harness.commands import compile
        top = argparse.ArgumentParser()
        compile.add_parser(top.add_subparsers())
        args = top.parse_args(["compile", {str(SHOP)!r}, "-o", {str(tmp_path)!r}])
        assert args.run(args) == 0
    """)
    assert "cachewright.generator.pipeline" in modules and "jinja2" in modules
    assert heavy(modules, NOT_FOR_COMPILE) == []


def test_validate_imports_only_the_compiler(tmp_path: Path) -> None:
    """The pre-commit hook's command: no verification, checks or reports (text format)."""
    modules = loaded(f"""
        from cachewright.harness.cli import main
        assert main(["validate", {str(SHOP)!r}, "-q"]) == 0
    """)
    assert "cachewright.generator.pipeline" in modules and "jinja2" in modules
    assert heavy(modules, NOT_FOR_COMPILE) == []


def test_the_commands_are_the_help_table() -> None:
    from cachewright.harness.commands import HELP

    assert tuple(HELP) == COMMANDS


@pytest.mark.parametrize("argv", [["-q", "compile", "p.yaml"], ["--version"], ["validate", "a", "b"]])
def test_a_start_imports_no_other_command(argv: list[str]) -> None:
    """Only the named command's module is imported (the rest are listed from HELP)."""
    modules = loaded(f"from cachewright.harness import cli\ncli.parser({argv!r})")
    named = [a for a in argv if not a.startswith("-")][:1]
    others = sorted(m for c in COMMANDS if c not in named
                    if (m := f"cachewright.harness.commands.{c}") in modules)
    assert others == []


def test_every_command_is_listed_with_the_summary_its_own_parser_has(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from cachewright.harness.cli import main, parser
    from cachewright.harness.commands import HELP

    (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert {c.dest: c.help for c in sub._choices_actions} == HELP
    assert main(["schema"]) == 0 and '"$schema"' in capsys.readouterr().out
