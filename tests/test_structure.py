"""The shape of the code, measured from its source: sizes, the import graph, and the rooms' rules.

- No module over 500 lines, no function over 40 lines, no class over 200 lines.
- The import graph of ``cachewright`` has no cycle, and no module imports another module's
  private (``_underscored``) names.
- ``harness`` depends on ``generator``, never the reverse.
- Runtimes orchestrate, engines know: ``harness/runtime/`` reaches engine-specific code only
  through ``harness/engines/`` (never a lowering, the checks, the commands or compare), and the
  engines know nothing of runtimes; checks reach no command; the sample origin nothing outside itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("generator", "harness", "templates")
LIMITS = {"module": 500, "function": 40, "class": 200}


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (``cachewright.harness.cli``)."""
    out = {}
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("cachewright", *parts))] = path
    return out


MODULES = _modules()


def _package(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for each import of ``name``, relative
    imports resolved; only imports of cachewright's own modules."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cachewright."):
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(name).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if not base.startswith("cachewright."):
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            if submodules:
                yield from ((sub, [], node.lineno) for sub in submodules)
                names = [n for n in names if f"{base}.{n}" not in MODULES]
            if names:
                yield base, names, node.lineno


def _graph() -> dict[str, set[str]]:
    return {name: {target for target, _, _ in _imports(name) if target in MODULES and target != name}
            for name in MODULES}


def _sizes(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    if lines > LIMITS["module"]:
        yield f"{path.relative_to(REPO)}: module of {lines} lines"
    for node in ast.walk(ast.parse(text)):
        kind = ("function" if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                else "class" if isinstance(node, ast.ClassDef) else None)
        if kind:
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > LIMITS[kind]:
                yield f"{path.relative_to(REPO)}:{node.lineno}: {kind} {node.name} of {size} lines"


def test_no_module_function_or_class_over_its_size() -> None:
    over = [problem for path in MODULES.values() for problem in _sizes(path)]
    assert not over, "\n".join(over)


def test_the_import_graph_has_no_cycle() -> None:
    graph, state, cycles = _graph(), dict.fromkeys(MODULES, 0), []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state[target] == 1:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif state[target] == 0:
                visit(target, [*trail, target])
        state[name] = 2

    for name in MODULES:
        if state[name] == 0:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_no_module_imports_anothers_private_names() -> None:
    private = [f"{MODULES[name].relative_to(REPO)}:{line}: {', '.join(taken)} from {target}"
               for name in MODULES for target, names, line in _imports(name)
               if target != name and (taken := [n for n in names if n.startswith("_") and not n.startswith("__")])]
    assert not private, "\n".join(private)


@pytest.mark.parametrize(("room", "forbidden"), [
    ("cachewright.generator", ("cachewright.harness",)),
    ("cachewright.harness.runtime", ("cachewright.generator.lower_", "cachewright.generator.nginx_",
                                     "cachewright.generator.varnish_",
                                     "cachewright.harness.checks", "cachewright.harness.commands",
                                     "cachewright.harness.compare")),
    ("cachewright.harness.checks", ("cachewright.harness.commands", "cachewright.harness.compare")),
    ("cachewright.harness.engines", ("cachewright.harness.runtime", "cachewright.harness.checks",
                                     "cachewright.harness.commands")),
    ("cachewright.harness.origin", ("cachewright.generator", "cachewright.harness.runtime",
                                    "cachewright.harness.engines", "cachewright.harness.checks")),
])
def test_a_room_imports_only_what_it_may(room: str, forbidden: tuple[str, ...]) -> None:
    members = [name for name in MODULES if name == room or name.startswith(f"{room}.")]
    assert members, f"no module in {room}"
    wrong = [f"{MODULES[name].relative_to(REPO)}:{line}: imports {target}"
             for name in members for target, _, line in _imports(name) if target.startswith(forbidden)]
    assert not wrong, "\n".join(wrong)
