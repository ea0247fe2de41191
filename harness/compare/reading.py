"""The base of the ``compare`` report's records: their JSON, written and read.

A record is a frozen dataclass whose fields are named as its JSON keys and declared in their
order, each with the reader that takes it back from JSON (``field(metadata=...)``, via ``read``).
``to_json`` gives the dict ``cachewright compare --json`` writes; ``from_json`` reads any JSON
value back, tolerantly: a report read from disk may be partial or edited, and its renderers show
what is missing, null or of the wrong type as "n/a" (None here) rather than failing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, Self, TypeVar

#: turns one JSON value (anything ``json.loads`` gives) into a record's field value
Reader = Callable[[object], object]
R = TypeVar("R", bound="Record")


def read(reader: Reader, *, omit_none: bool = False, default: object = None, required: bool = True) -> Any:
    """A record field read by ``reader``; with ``omit_none`` its key is left out of the JSON
    while it is None (a section the run did not make). Typed ``Any`` as ``dataclasses.field``
    is: the field's own annotation is its type."""
    metadata = {"read": reader, "omit_none": omit_none}
    return field(metadata=metadata) if required else field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Record:
    """A frozen part of the report, written by ``to_json`` and read back by ``from_json``."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this record: its fields in order, records and tuples as JSON."""
        return {f.name: as_json(getattr(self, f.name)) for f in fields(self) if _written(self, f)}

    @classmethod
    def from_json(cls, data: object) -> Self:
        """The record in ``data``; a missing or malformed value reads as its reader's None."""
        found = data if isinstance(data, Mapping) else {}
        return cls(**{f.name: f.metadata["read"](found.get(f.name)) for f in fields(cls) if "read" in f.metadata})


def _written(record: Record, spec: Field[Any]) -> bool:
    if "read" not in spec.metadata:
        return False
    return not (spec.metadata["omit_none"] and getattr(record, spec.name) is None)


def as_json(value: object) -> Any:  # any JSON value
    """``value`` as JSON: records by ``to_json``, tuples as lists, mappings as dicts."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [as_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: as_json(item) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------- readers


def number(value: object) -> float | None:
    """A finite number as it was (an int stays an int), or None (null, a string, a bool, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def text(value: object) -> str | None:
    """A string; any other value but null as its ``str``."""
    return None if value is None else value if isinstance(value, str) else str(value)


def flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def record(kind: type[R]) -> Callable[[object], R | None]:
    """A reader of one ``kind`` of record (None where the value is not an object)."""
    return lambda value: kind.from_json(value) if isinstance(value, Mapping) else None


def records(kind: type[R]) -> Callable[[object], tuple[R, ...]]:
    """A reader of a list of ``kind`` records (what is not an object is left out)."""
    return lambda value: tuple(kind.from_json(item) for item in listed(value) if isinstance(item, Mapping))


def table(reader: Reader) -> Callable[[object], dict[str, object]]:
    """A reader of an object whose values ``reader`` reads (per engine, per config...)."""
    return lambda value: {str(k): reader(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def listed(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def texts(value: object) -> tuple[str | None, ...]:
    return tuple(text(item) for item in listed(value))


def numbers(value: object) -> tuple[float, ...]:
    return tuple(n for n in (number(item) for item in listed(value)) if n is not None)


def counts(value: object) -> dict[str, float]:
    """Status codes (as strings) and their counts."""
    found = value if isinstance(value, Mapping) else {}
    return {str(key): n for key, n in ((key, number(v)) for key, v in found.items()) if n is not None}


def pairs(value: object) -> tuple[tuple[float, float], ...]:
    """A list of ``[x, y]`` number pairs (a CDF, a timeline); anything else in it is left out."""
    found = [(number(p[0]), number(p[1])) for p in listed(value) if isinstance(p, list | tuple) and len(p) == 2]
    return tuple((x, y) for x, y in found if x is not None and y is not None)
