"""The CI integration files: the pre-commit hooks and the GitHub Actions workflow parse, have the
expected structure, validate against the GitHub workflow schema where ``check-jsonschema`` (which
vendors it) is installed, and each hook's entry works on an example without any engine."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HOOKS = REPO / ".pre-commit-hooks.yaml"
WORKFLOW = REPO / "examples/ci/github-actions.yml"


def hooks() -> dict[str, dict[str, Any]]:
    return {h["id"]: h for h in yaml.safe_load(HOOKS.read_text())}


def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def test_hooks_have_the_required_keys() -> None:
    assert set(hooks()) == {"cachewright-validate", "cachewright-check"}
    for hook in hooks().values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"


def test_workflow_structure() -> None:
    data = workflow()
    on = data["on"] if "on" in data else data[True]  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on and "push" in on
    steps = data["jobs"]["cache-policy"]["steps"]
    assert all(("run" in s) != ("uses" in s) for s in steps)
    runs = " ".join(s["run"] for s in steps if "run" in s)
    assert "cachewright compile" in runs and "--check" in runs
    assert "cachewright test" in runs and "--runtime docker" in runs
    assert "--junit" in runs and "--json" in runs
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in steps)


def test_workflow_reports_as_annotations_and_comments_the_diff() -> None:
    data = workflow()
    steps = data["jobs"]["cache-policy"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    assert data["permissions"] == {"contents": "read", "pull-requests": "write"}
    lines = workflow_commands()
    for command in ("validate", "compile", "test"):
        assert any(argv[1] == command and "--format" in argv and "github" in argv for argv in lines), command
    (diff,) = [argv for argv in lines if argv[1] == "diff"]
    assert diff[2:4] == ["origin/$BASE_REF:$POLICY", "$POLICY"] and "--markdown" in diff
    comment = next(s for s in steps if "cachewright diff" in s.get("run", ""))
    assert "gh pr comment" in comment["run"] and "--body-file cachewright-diff.md" in comment["run"]
    assert comment["env"]["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "github.event_name == 'pull_request'" in comment["if"]


def workflow_commands() -> list[list[str]]:
    """Every ``cachewright ...`` command of the workflow's steps, as argv (up to a shell
    operator: ``>``, ``|``, ``||``, ``;``, ...; not ``pip install cachewright``)."""
    found = []
    for step in workflow()["jobs"]["cache-policy"]["steps"]:
        for line in step.get("run", "").replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = list(lexer)
            for i, word in enumerate(words):
                if word == "cachewright" and (i == 0 or operator(words[i - 1])):  # a command
                    found.append(list(itertools.takewhile(lambda w: not operator(w), words[i:])))
    return found


def operator(word: str) -> bool:
    return set(word) <= set("();<>|&!")


def test_every_cachewright_command_in_the_workflow_parses() -> None:
    """Each command line names a subcommand and options the CLI's parser accepts."""
    from cachewright.harness.cli import parser

    top = parser()
    (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    registered = set(sub.choices)
    lines = workflow_commands()
    assert len(lines) >= 4
    for argv in lines:
        assert argv[1] in registered, argv
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            try:
                top.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{shlex.join(argv)}: {errors.getvalue()}")


def github_workflow_schema() -> dict[str, Any] | None:
    """The schema check-jsonschema vendors from SchemaStore, if that package is installed."""
    try:
        vendor = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
        schema: dict[str, Any] = json.loads((vendor / "github-workflows.json").read_text())
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return schema


def test_workflow_matches_the_github_schema() -> None:
    schema = github_workflow_schema()
    if schema is None:
        pytest.skip("check-jsonschema (which ships the GitHub workflow schema) is not installed; "
                    "structural checks only")
    import jsonschema  # type: ignore[import-untyped]

    data = workflow()
    data["on"] = data.pop(True, data.get("on"))
    jsonschema.validate(data, schema)


def entry_argv(entry: str) -> list[str]:
    """A hook's entry as a local command: this venv's cachewright and python."""
    argv = shlex.split(entry)
    script = shutil.which("cachewright", path=str(Path(sys.executable).parent))
    local = {"python": sys.executable, "cachewright": script or "cachewright"}
    return [local.get(argv[0], argv[0]), *argv[1:]]


def test_validate_hook_accepts_the_examples_and_rejects_a_bad_policy(tmp_path: Path) -> None:
    argv = entry_argv(hooks()["cachewright-validate"]["entry"])
    assert argv[1] == "validate"  # the command, not a one-liner over the CLI's internals
    good = [str(p) for p in sorted(REPO.glob("examples/*/policy.yaml"))]
    done = subprocess.run([*argv, *good], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nname: x\norigin: {url: http://a:1}\nrules:\n  - {name: r, ttl: 10 minutes}\n")
    done = subprocess.run([*argv, str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "is not a duration" in done.stderr and "Traceback" not in done.stderr


def test_validate_hook_reports_every_bad_file_and_writes_nothing(tmp_path: Path) -> None:
    argv = entry_argv(hooks()["cachewright-validate"]["entry"])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "policy.yaml").write_text("version: 1\nname: a\norigin: {url: http://a:1}\n"
                                                "cache: {default_ttl: soon}\n")
    (tmp_path / "policy.yml").write_text("version: 2\nname: b\norigin: {url: http://a:1}\n")
    before = sorted(tmp_path.rglob("*"))
    names = ["a/policy.yaml", str(REPO / "examples/shop/policy.yaml"), "policy.yml"]
    done = subprocess.run([*argv, *names], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "a/policy.yaml:4:22: cache.default_ttl:" in done.stderr
    assert "policy.yml:1:10: version:" in done.stderr
    assert done.stdout == ""  # -q: the good file is checked, not announced
    assert sorted(tmp_path.rglob("*")) == before


def test_check_hook_passes_on_an_up_to_date_example() -> None:
    argv = entry_argv(hooks()["cachewright-check"]["entry"])
    # relative paths, as pre-commit runs from the repository root (the headers name the policy)
    done = subprocess.run([*argv, "examples/shop/policy.yaml", "-o", "examples/shop/expected"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_validate_hook_matches_policy_files_only() -> None:
    import re

    pattern = re.compile(hooks()["cachewright-validate"]["files"])
    assert pattern.search("examples/shop/policy.yaml") and pattern.search("policy.yml")
    assert not pattern.search("examples/shop/scenarios.yaml")
