"""A small declarative schema: one description of the policy language that reads YAML nodes
(collecting every problem with its position), publishes JSON Schema, and writes the reference docs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem
from .units import DURATION_EXAMPLES, SIZE_EXAMPLES, format_duration, parse_duration, parse_size

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SCALAR_TYPES = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


class Missing:
    """Marks a value that could not be read (its problem is already recorded)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = Missing()
REQUIRED: Any = object()


@dataclass
class Reader:
    """Walks YAML nodes for one file, recording problems and the position of every path."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)
    _constructor: yaml.SafeLoader = field(default_factory=lambda: yaml.SafeLoader(""))

    def problem(self, node: yaml.Node | None, path: str, message: str) -> Any:
        """Record a problem at ``node`` (or at ``path``'s recorded position) and return MISSING."""
        line, col = self.position(node, path)
        self.problems.append(Problem(self.file, line, col, path, message))
        return MISSING

    def position(self, node: yaml.Node | None, path: str) -> tuple[int, int]:
        if node is not None:
            return node.start_mark.line + 1, node.start_mark.column + 1
        return self.marks.get(path, (1, 1))

    def scalar(self, node: yaml.Node) -> Any:
        """The Python value of a scalar node (YAML core schema)."""
        return self._constructor.construct_object(node)


def shown(text: str) -> str:
    """``text`` as it may appear in a message: unprintable and non-ASCII characters escaped."""
    if text.isascii() and text.isprintable():
        return text  # the common case (printable ASCII is " " to "~"), without a walk per character
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)


def key_text(node: yaml.Node) -> str:
    """A mapping key as it may appear in a path or message: a scalar escaped with ``shown``
    (a key may hold a line break or a control character), anything else ``?``."""
    return shown(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def describe_node(reader: Reader, node: yaml.Node) -> str:
    """How a wrong value reads in a message: the value itself for scalars, its kind otherwise."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    text = shown(node.value if len(node.value) <= 60 else node.value[:57] + "...")
    kind = _SCALAR_TYPES.get(node.tag, "a value")
    return "null" if node.tag.endswith(":null") else f'{kind} "{text}"' if kind != "a string" else f'"{text}"'


class Kind:
    """A type in the policy language."""

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        return "—" if value is None else str(value)


def _scalar_of(r: Reader, node: yaml.Node, path: str, expected: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return r.problem(node, path, f"{describe_node(r, node)} is not {expected}")
    return r.scalar(node)


@dataclass(frozen=True)
class Str(Kind):
    """A string; ``pattern`` (a full match) and ``hint`` say what is expected."""

    pattern: str | None = None
    hint: str = "a string"
    max_len: int = 1024
    check: Callable[[str], str | None] | None = None

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        value = _scalar_of(r, node, path, self.hint)
        if value is MISSING:
            return MISSING
        if not isinstance(value, str) or node.tag != "tag:yaml.org,2002:str":
            return r.problem(node, path, f"{describe_node(r, node)} is not {self.hint}")
        return self.validate(r, node, path, value)

    def validate(self, r: Reader, node: yaml.Node, path: str, value: str) -> Any:
        if _CONTROL.search(value) or "\t" in value:
            return r.problem(node, path, "control characters (newline, tab, NUL, ...) are not allowed")
        if len(value) > self.max_len:
            return r.problem(node, path, f"is {len(value)} characters long (at most {self.max_len})")
        if not value.isascii():
            return r.problem(node, path, f'"{shown(value[:40])}" has non-ASCII characters ({self.hint})')
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return r.problem(node, path, f'"{value[:60]}" is not valid ({self.hint})')
        message = self.check(value) if self.check else None
        return r.problem(node, path, message) if message else value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "maxLength": self.max_len}
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        return out

    def describe(self) -> str:
        return "string"


@dataclass(frozen=True)
class Enum(Kind):
    values: tuple[str, ...]

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        value = _scalar_of(r, node, path, self.hint())
        if value is MISSING:
            return MISSING
        if value not in self.values:
            return r.problem(node, path, f"{describe_node(r, node)} is not {self.hint()}")
        return value

    def hint(self) -> str:
        return "one of: " + ", ".join(self.values)

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}

    def describe(self) -> str:
        return " \\| ".join(f"`{v}`" for v in self.values)


@dataclass(frozen=True)
class Int(Kind):
    minimum: int = 0
    maximum: int = 2**31 - 1

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        hint = f"an integer from {self.minimum} to {self.maximum}"
        value = _scalar_of(r, node, path, hint)
        if value is MISSING:
            return MISSING
        if isinstance(value, bool) or not isinstance(value, int):
            return r.problem(node, path, f"{describe_node(r, node)} is not {hint}")
        if not self.minimum <= value <= self.maximum:
            return r.problem(node, path, f"{value} is out of range ({hint})")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def describe(self) -> str:
        return "integer"


@dataclass(frozen=True)
class Bool(Kind):
    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        value = _scalar_of(r, node, path, "true or false")
        if value is MISSING:
            return MISSING
        if not isinstance(value, bool):
            return r.problem(node, path, f"{describe_node(r, node)} is not true or false")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def describe(self) -> str:
        return "boolean"

    def show(self, value: Any) -> str:
        return "—" if value is None else str(value).lower()


@dataclass(frozen=True)
class Duration(Kind):
    """A duration in seconds, written ``10s``, ``5m``, ``1h30m``, ``30d`` (or plain seconds)."""

    maximum: int = 10 * 31536000

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        value = _scalar_of(r, node, path, f"a duration ({DURATION_EXAMPLES})")
        if value is MISSING:
            return MISSING
        seconds = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str):
            seconds = parse_duration(value)
        if seconds is None:
            return r.problem(node, path, f"{describe_node(r, node)} is not a duration ({DURATION_EXAMPLES})")
        if seconds > self.maximum:
            return r.problem(node, path, f"{value} is too long (at most {format_duration(self.maximum)})")
        return seconds

    def schema(self) -> dict[str, Any]:
        pattern = r"^(0|([0-9]+[smhdwy])+)$"
        return {"oneOf": [{"type": "string", "pattern": pattern}, {"type": "integer", "minimum": 0}]}

    def describe(self) -> str:
        return "duration"

    def show(self, value: Any) -> str:
        return "—" if value is None else format_duration(value)


@dataclass(frozen=True)
class Size(Kind):
    minimum: int = 1024 * 1024

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        value = _scalar_of(r, node, path, f"a size ({SIZE_EXAMPLES})")
        if value is MISSING:
            return MISSING
        size = parse_size(value) if isinstance(value, str) else None
        if size is None:
            return r.problem(node, path, f"{describe_node(r, node)} is not a size ({SIZE_EXAMPLES})")
        if size < self.minimum:
            return r.problem(node, path, f"{value} is too small (at least 1m)")
        return size

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[0-9]+[kmgtKMGT]?$"}

    def describe(self) -> str:
        return "size"

    def show(self, value: Any) -> str:
        if value is None:
            return "—"
        for unit, size in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
            if value % size == 0:
                return f"{value // size}{unit}"
        return str(value)


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    min_items: int = 0
    unique: bool = True
    one_or_many: bool = False

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        if self.one_or_many and not isinstance(node, yaml.SequenceNode):
            value = self.item.read(r, node, path)
            return MISSING if value is MISSING else (value,)
        if not isinstance(node, yaml.SequenceNode):
            return r.problem(node, path, f"{describe_node(r, node)} is not a list of {self.item.describe()}")
        values = [self._item(r, child, f"{path}[{i}]") for i, child in enumerate(node.value)]
        if MISSING in values:
            return MISSING
        return self._checked(r, node, path, values)

    def _item(self, r: Reader, child: yaml.Node, path: str) -> Any:
        r.marks[path] = r.position(child, path)
        return self.item.read(r, child, path)

    def _checked(self, r: Reader, node: yaml.Node, path: str, values: list[Any]) -> Any:
        if len(values) < self.min_items:
            return r.problem(node, path, f"needs at least {self.min_items} item(s)")
        if self.unique:
            seen: set[Any] = set()
            for i, value in enumerate(values):
                if value in seen:
                    return r.problem(node.value[i], f"{path}[{i}]", f"{value!r} is listed twice")
                seen.add(value)
        return tuple(values)

    def schema(self) -> dict[str, Any]:
        many: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            many["minItems"] = self.min_items
        if self.unique:
            many["uniqueItems"] = True
        return {"oneOf": [self.item.schema(), many]} if self.one_or_many else many

    def describe(self) -> str:
        prefix = f"{self.item.describe()} or " if self.one_or_many else ""
        return f"{prefix}list of {self.item.describe()}"

    def show(self, value: Any) -> str:
        if value is None:
            return "—"
        return "[" + ", ".join(self.item.show(v) for v in value) + "]"


@dataclass(frozen=True)
class MapOf(Kind):
    """A mapping with keys of one kind (e.g. status codes) to values of another."""

    key: Kind
    value: Kind

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return r.problem(node, path, f"{describe_node(r, node)} is not a mapping")
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.key.read(r, key_node, path)
            sub = f"{path}.{key_text(key_node)}"
            value = self.value.read(r, value_node, sub)
            if key is not MISSING and key in out:
                r.problem(key_node, sub, "is given twice")
            elif MISSING not in (key, value):
                out[key] = value
        return tuple(sorted(out.items()))

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.value.schema()}

    def describe(self) -> str:
        return f"mapping of {self.key.describe()} to {self.value.describe()}"

    def show(self, value: Any) -> str:
        return "{}" if not value else str(dict(value))


@dataclass(frozen=True)
class Field:
    """One key of an object: its kind, default, and documentation."""

    kind: Kind
    doc: str
    default: Any = REQUIRED
    nullable: bool = False
    example: Any = None
    nginx: str = ""
    varnish: str = ""


@dataclass(frozen=True)
class Obj(Kind):
    """A mapping with a fixed set of keys."""

    name: str
    fields: Mapping[str, Field]
    doc: str = ""

    def read(self, r: Reader, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return r.problem(node, path, f"{describe_node(r, node)} is not a mapping ({self.name})")
        given = self._keys(r, node, path)
        out = {}
        for key, spec in self.fields.items():
            sub = f"{path}.{key}" if path else key
            if key in given:
                out[key] = self._value(r, given[key], sub, spec)
            elif spec.default is REQUIRED:
                out[key] = r.problem(node, path or "(top level)", f"missing required key '{key}'")
            else:
                r.marks.setdefault(sub, r.position(node, path))
                out[key] = _filled(spec)
        return out

    def fill(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        """``partial`` completed with every field's default (recursively for nested objects)."""
        out = {}
        for key, spec in self.fields.items():
            value = partial.get(key, spec.default)
            if isinstance(spec.kind, Obj) and isinstance(value, Mapping):
                value = spec.kind.fill(value)
            out[key] = value
        return out

    def _keys(self, r: Reader, node: yaml.MappingNode, path: str) -> dict[str, yaml.Node]:
        given: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            text = key_text(key_node)
            sub = f"{path}.{text}" if path else text
            if key not in self.fields:
                r.problem(key_node, sub, f"unknown key '{text}'{self._suggest(key)}")
            elif key in given:
                r.problem(key_node, sub, "is given twice")
            else:
                r.marks[sub] = r.position(key_node, sub)
                given[key] = value_node
        return given

    def _suggest(self, key: str) -> str:
        close = difflib.get_close_matches(key, list(self.fields), n=1, cutoff=0.6)
        if close:
            return f" (did you mean '{close[0]}'?)"
        return f" (expected one of: {', '.join(self.fields)})"

    @staticmethod
    def _value(r: Reader, node: yaml.Node, path: str, spec: Field) -> Any:
        if spec.nullable and isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return None
        return spec.kind.read(r, node, path)

    def schema(self) -> dict[str, Any]:
        props = {}
        for key, spec in self.fields.items():
            prop = spec.kind.schema()
            if spec.nullable:
                prop = {"oneOf": [prop, {"type": "null"}]}
            prop["description"] = spec.doc
            example = field_example(spec)
            if example is not None:
                prop["examples"] = [example]
            props[key] = prop
        out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
        required = [k for k, s in self.fields.items() if s.default is REQUIRED]
        if required:
            out["required"] = required
        if self.doc:
            out["description"] = self.doc
        return out

    def describe(self) -> str:
        return "mapping"


def field_example(spec: Field) -> Any:
    """An example value for ``spec`` as YAML/JSON would hold it: the declared example, else one
    built from the default or, for mappings, from their fields' examples."""
    if spec.example is not None:
        return spec.example
    return kind_example(spec.kind, spec.default)


def kind_example(kind: Kind, default: Any) -> Any:
    if isinstance(kind, Obj):
        return {k: e for k, f in kind.fields.items() if (e := field_example(f)) is not None}
    if isinstance(kind, ListOf):
        if default in (REQUIRED, None) or not default:
            item = kind_example(kind.item, REQUIRED)
            return [item] if item is not None else None
        return [kind_example(kind.item, v) for v in default]
    if default is REQUIRED or default is None:
        return None
    if isinstance(kind, (Duration, Size)):
        return kind.show(default)
    if isinstance(kind, MapOf):
        return {str(k): kind_example(kind.value, v) for k, v in default} or None
    return default


def _filled(spec: Field) -> Any:
    if isinstance(spec.kind, Obj) and isinstance(spec.default, Mapping):
        return spec.kind.fill(spec.default)
    return spec.default
