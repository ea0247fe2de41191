"""The generated parts of the documentation: the policy reference (from ``language.POLICY``) and the
capability table (from ``capabilities.TABLE``).

``docs/policy.md`` and ``docs/capabilities.md`` are hand-written pages with one generated section
each, between marker comments. Regenerate them in place with::

    python -m generator.docs            # rewrite the generated sections
    python -m generator.docs --check    # exit 1 when they are out of date (CI)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import capabilities, language
from .spec import REQUIRED, Field, Kind, ListOf, MapOf, Obj

NONE = "—"
REFERENCE_MARKERS = ("<!-- BEGIN GENERATED REFERENCE -->", "<!-- END GENERATED REFERENCE -->")
TABLE_MARKERS = ("<!-- BEGIN GENERATED TABLE -->", "<!-- END GENERATED TABLE -->")
REGENERATE = "python -m generator.docs"


@dataclass(frozen=True)
class Section:
    """One object of the language: where it sits (``cache.stale``, ``rules[].match``), its
    documentation and its fields."""

    path: str
    obj: Obj


def sections(obj: Obj = language.POLICY, path: str = "") -> Iterator[Section]:
    """Every object of the language, depth first in declaration order, starting with ``obj``."""
    yield Section(path, obj)
    for key, spec in obj.fields.items():
        nested, sub = _nested(spec.kind, _join(path, key))
        if nested is not None:
            yield from sections(nested, sub)


def _nested(kind: Kind, path: str) -> tuple[Obj | None, str]:
    """The object ``kind`` holds (directly, or as list items / mapping values) and its path."""
    if isinstance(kind, Obj):
        return kind, path
    if isinstance(kind, ListOf):
        return _nested(kind.item, f"{path}[]")
    if isinstance(kind, MapOf):
        return _nested(kind.value, f"{path}.*")
    return None, path


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def policy_reference() -> str:
    """The field-by-field reference of the policy language, as Markdown."""
    out = [
        "Generated from `generator/language.py` by `python -m generator.docs`; do not edit by "
        "hand. `rules[]` stands for every item of the `rules` list. *Type* is what the field "
        "takes; *default* is what it means when absent (**required**: it must be given when its "
        "section is).",
    ]
    for section in sections():
        title = f"`{section.path}`" if section.path else "Top level"
        out += ["", f"### {title}", ""]
        if section.obj.doc:
            out += [_sentence(section.obj.doc), ""]
        out += ["| field | type | default | description | example | nginx | varnish |",
                "|---|---|---|---|---|---|---|"]
        for key, spec in section.obj.fields.items():
            out.append(_field_row(_join(section.path, key), spec))
    return "\n".join(out) + "\n"


def _field_row(path: str, spec: Field) -> str:
    kind = spec.kind.describe() + (" or null" if spec.nullable else "")
    cells = (
        f"`{path}`",
        kind,
        _default(spec),
        _cell(spec.doc),
        _code(_flow(spec.example)) if spec.example is not None else NONE,
        _cell(spec.nginx) if spec.nginx else NONE,
        _cell(spec.varnish) if spec.varnish else NONE,
    )
    return "| " + " | ".join(cells) + " |"


def _default(spec: Field) -> str:
    if spec.default is REQUIRED:
        return "**required**"
    if spec.default is None:
        return "not set" if spec.nullable else NONE
    if isinstance(spec.kind, Obj) and isinstance(spec.default, Mapping):
        if spec.kind.fill(spec.default) == spec.kind.fill({}):
            return "its fields' defaults"
        inner = ", ".join(f"{k}: {spec.kind.fields[k].kind.show(v)}"
                          for k, v in spec.default.items())
        return _code("{" + inner + "}")
    return _code(spec.kind.show(spec.default))


def _flow(value: Any) -> str:
    """``value`` as a YAML flow value, as one would write it in a policy."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes escaped once, no line breaks)."""
    text = " ".join(text.split()).replace("\\|", "|").replace("|", "\\|")
    parts = text.split("`")  # outside code spans (even parts), '*' would start emphasis
    return "`".join(p if i % 2 else p.replace("*", "\\*") for i, p in enumerate(parts))


def _code(text: str) -> str:
    return _cell(f"`{text}`")


def _sentence(text: str) -> str:
    return text if text.endswith((".", ")")) else text + "."


def capabilities_table(only: tuple[str, ...] = ()) -> str:
    """The feature × engine table, as Markdown (only features whose id starts with ``only``)."""
    out = [
        "Generated from `generator/capabilities.py` by `python -m generator.docs`; do not edit by "
        "hand. **native**: the engine does it itself; **module**: it needs the named module; "
        "**unsupported**: a policy using the feature fails to compile for that engine unless "
        "`accept_missing` names it (features marked *reported only* compile anyway).",
        "",
        "| feature | what (policy field) | nginx | varnish | alternative when unsupported |",
        "|---|---|---|---|---|",
    ]
    for f in capabilities.TABLE:
        if only and not f.id.startswith(only):
            continue
        path = f"`{f.path}`"
        alternative = _cell(f.alternative) if f.alternative else NONE
        if not getattr(f, "enforced", True):
            alternative += " (reported only: never a compile error)"
        if not f.acceptable:
            alternative += " (accept_missing cannot waive it)"
        nginx = _support(f.nginx)
        if f.with_njs is not None:
            nginx += f"; with `nginx: {{njs: true}}`: {_support(f.with_njs)}"
        out.append(f"| `{f.id}` | {_cell(f.title)} ({path}) | {nginx} | "
                   f"{_support(f.varnish)} | {alternative} |")
    return "\n".join(out) + "\n"


def _support(support: capabilities.Support) -> str:
    return f"**{support.level}**: {_cell(support.how)}"


# -- the documents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """A generated section of a committed Markdown file."""

    file: str
    markers: tuple[str, str]
    render: Any  # Callable[[], str]


def tls_and_invalidation_table() -> str:
    """The rows of the capability table about TLS and invalidation (docs/engines.md)."""
    return capabilities_table(("tls", "origin.https", "purge"))


GENERATED = (
    Generated("docs/policy.md", REFERENCE_MARKERS, policy_reference),
    Generated("docs/capabilities.md", TABLE_MARKERS, capabilities_table),
    Generated("docs/engines.md", TABLE_MARKERS, tls_and_invalidation_table),
)


class MarkersMissing(ValueError):
    """A document lacks its generated-section markers."""


def generated_section(text: str, markers: tuple[str, str]) -> str:
    """The text between ``markers`` in ``text`` (without the surrounding newlines)."""
    begin, end = markers
    start, stop = text.find(begin), text.find(end)
    if start == -1 or stop == -1 or stop < start:
        raise MarkersMissing(f"expected the lines {begin!r} and {end!r}, in that order")
    return text[start + len(begin):stop].strip("\n")


def replace_section(text: str, markers: tuple[str, str], body: str) -> str:
    """``text`` with the part between ``markers`` replaced by ``body``."""
    generated_section(text, markers)  # both present, in order
    begin, end = markers
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n\n{body.strip(chr(10))}\n\n{end}{tail}"


def default_root() -> Path:
    """The project root: beside the ``generator`` package when run from a checkout."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "docs").is_dir() else Path.cwd()


def stale(root: Path) -> list[str]:
    """The documents under ``root`` whose generated section differs from a fresh rendering."""
    out = []
    for g in GENERATED:
        text = (root / g.file).read_text(encoding="utf-8")
        if generated_section(text, g.markers) != g.render().strip("\n"):
            out.append(g.file)
    return out


def regenerate(root: Path) -> list[str]:
    """Rewrite every generated section under ``root``; returns the files that changed."""
    changed = []
    for g in GENERATED:
        path = root / g.file
        text = path.read_text(encoding="utf-8")
        new = replace_section(text, g.markers, g.render())
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(g.file)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m generator.docs",
                                description="Regenerate the generated sections of docs/policy.md "
                                            "and docs/capabilities.md.")
    p.add_argument("--root", type=Path, default=None, help="project root (default: this checkout)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a generated section is out of date")
    args = p.parse_args(argv)
    root: Path = args.root or default_root()
    try:
        if args.check:
            out_of_date = stale(root)
            for name in out_of_date:
                print(f"{name}: generated section is out of date (run {REGENERATE})",
                      file=sys.stderr)
            return 1 if out_of_date else 0
        for name in regenerate(root):
            print(f"updated {name}")
    except (OSError, MarkersMissing) as exc:
        print(f"{REGENERATE}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
