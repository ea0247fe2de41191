"""The shipped JSON Schema (docs/cachewright.schema.json, for editors) is what `cachewright
schema` prints, and every field in it has a description and an example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cachewright.harness.commands.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "docs" / "cachewright.schema.json"


def test_shipped_schema_is_current() -> None:
    assert json.loads(SHIPPED.read_text()) == json.loads(json.dumps(json_schema())), (
        "docs/cachewright.schema.json is stale: cachewright schema > docs/cachewright.schema.json")


def _fields(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(node, dict):
        return out
    for key, prop in node.get("properties", {}).items():
        out.append((f"{path}.{key}", prop))
        out += _fields(prop, f"{path}.{key}")
    for key in ("items", "oneOf", "additionalProperties"):
        sub = node.get(key)
        for child in sub if isinstance(sub, list) else [sub]:
            out += _fields(child, f"{path}[]")
    return out


def test_every_field_has_a_description_and_an_example() -> None:
    fields = _fields(json_schema())
    assert len(fields) > 60
    assert [p for p, prop in fields if not prop.get("description")] == []
    assert [p for p, prop in fields if not prop.get("examples")] == []


def test_examples_point_editors_at_the_schema() -> None:
    for policy in sorted(ROOT.glob("examples/*/policy.yaml")):
        first = policy.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../../docs/cachewright.schema.json", policy
