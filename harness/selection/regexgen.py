"""Example strings for regular expressions: walk Python's parse of a regex and build a string that
``re.search`` matches. Used by the probe builder to turn ``path_regex`` and header/cookie regexes
into concrete requests.

Choices prefer characters that are safe in a URL path (letters, digits, ``-._~``) and use the
fewest repetitions; ``seed`` 0 is the canonical choice, other seeds vary branches, counts and
characters. Every result is checked with ``re.search``; anything unsupported gives ``None``.
"""

from __future__ import annotations

import importlib
import random
import re
import string
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_parser: Any = importlib.import_module("re._parser")  # no stubs for re._parser; sre_parse warns

ATTEMPTS = 24
MAX_LENGTH = 4096
UNRESERVED = string.ascii_lowercase + string.digits + string.ascii_uppercase + "-_~."
SUB_DELIMS = "!$&'()*+,;=:@"
RISKY = "/%?# "
# Preference tiers for one character: unreserved, sub-delims, other printable, risky, the rest.
_PRINTABLE_OTHER = "".join(c for c in map(chr, range(33, 127))
                           if c not in UNRESERVED + SUB_DELIMS + RISKY)
_CONTROL = "".join(map(chr, (*range(0, 32), 127)))
_SPACE = " \t\n\r\f\v"
_NON_ASCII = "\u00e9\u00ff\u20ac\u0100"


class _Unsat(Exception):
    """This walk cannot produce a match (tried again with another seed, or ``None``)."""


@dataclass
class _Walk:
    """State of one walk: choices (seeded), flags, captured groups and the output so far."""

    rng: random.Random | None
    avoid: str
    icase: bool
    groups: dict[int, str] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    length: int = 0

    def emit(self, text: str) -> None:
        """Append ``text``; refuse runaway output."""
        self.out.append(text)
        self.length += len(text)
        if self.length > MAX_LENGTH:
            raise _Unsat("too long")

    def pick(self, count: int) -> int:
        """Index of the alternative to take: the first one on the canonical walk."""
        return 0 if self.rng is None else self.rng.randrange(count)


def example(regex: str, *, avoid: str = "", seed: int = 0) -> str | None:
    """A string that ``re.search(regex, s)`` matches, or ``None`` if none was found.

    ``avoid`` lists characters used only when nothing else fits. Never raises.
    """
    try:
        with warnings.catch_warnings():  # e.g. FutureWarning "Possible nested set"
            warnings.simplefilter("ignore")
            compiled = re.compile(regex)
            tree = _parser.parse(regex)
    except Exception:  # hostile input: unparseable means no example
        return None
    for attempt in _attempts(seed):
        text = _try(tree, compiled, avoid, attempt)
        if text is not None:
            return text
    return None


def _attempts(seed: int) -> Iterable[random.Random | None]:
    """The walks to try: the seed's own, then seeded variations of it."""
    yield None if seed == 0 else random.Random(seed)
    for i in range(1, ATTEMPTS):
        yield random.Random(f"{seed}:{i}")


def _try(tree: Any, compiled: re.Pattern[str], avoid: str, rng: random.Random | None) -> str | None:
    """One walk, verified."""
    walk = _Walk(rng, avoid, bool(tree.state.flags & re.IGNORECASE))
    try:
        _sequence(walk, tree)
        text = "".join(walk.out)
        return text if compiled.search(text) else None
    except (_Unsat, RecursionError, ValueError, TypeError, IndexError, KeyError):
        return None


def _sequence(walk: _Walk, items: Iterable[tuple[Any, Any]]) -> None:
    """Emit each item of a parsed (sub)pattern in order."""
    for op, arg in items:
        handler = _HANDLERS.get(str(op))
        if handler is None:
            raise _Unsat(f"unsupported: {op}")
        handler(walk, arg)


def _literal(walk: _Walk, code: int) -> None:
    walk.emit(chr(code))


def _not_literal(walk: _Walk, code: int) -> None:
    walk.emit(_choose(walk, lambda c: not _same(walk, c, chr(code))))


def _any(walk: _Walk, _arg: object) -> None:
    walk.emit(_choose(walk, lambda c: c != "\n"))


def _in(walk: _Walk, items: list[tuple[Any, Any]]) -> None:
    walk.emit(_choose(walk, _class_test(walk, items), _class_extra(items)))


def _branch(walk: _Walk, arg: tuple[Any, list[Any]]) -> None:
    alternatives = arg[1]
    _sequence(walk, alternatives[walk.pick(len(alternatives))])


def _subpattern(walk: _Walk, arg: tuple[int | None, int, int, Any]) -> None:
    group, add_flags, del_flags, pattern = arg
    saved, start = walk.icase, len(walk.out)
    walk.icase = (walk.icase or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
    _sequence(walk, pattern)
    walk.icase = saved
    if group is not None:
        walk.groups[group] = "".join(walk.out[start:])


def _repeat(walk: _Walk, arg: tuple[int, int, Any]) -> None:
    low, high, pattern = arg
    count = low
    if walk.rng is not None:
        count = walk.rng.randint(low, min(high, low + 2))
    if count > MAX_LENGTH:
        raise _Unsat("repeat too large")
    for _ in range(count):
        _sequence(walk, pattern)


def _atomic(walk: _Walk, pattern: Any) -> None:
    _sequence(walk, pattern)


def _groupref(walk: _Walk, group: int) -> None:
    if group not in walk.groups:
        raise _Unsat("reference to an unset group")
    walk.emit(walk.groups[group])


def _groupref_exists(walk: _Walk, arg: tuple[int, Any, Any]) -> None:
    group, yes, no = arg
    chosen = yes if group in walk.groups else no
    if chosen is not None:
        _sequence(walk, chosen)


def _at(walk: _Walk, where: Any) -> None:
    """Anchors: a start anchor after output cannot hold; end anchors are checked at the end."""
    if str(where) in ("AT_BEGINNING", "AT_BEGINNING_STRING") and walk.length:
        raise _Unsat("start anchor after text")


def _assert(walk: _Walk, arg: tuple[int, Any]) -> None:
    """Positive lookarounds, best effort: a lookbehind's text is emitted where nothing precedes
    it; a lookahead's on some seeded walks. The final ``re.search`` decides."""
    direction, pattern = arg
    behind = direction < 0 and (walk.length == 0 or walk.rng is not None)
    ahead = direction > 0 and walk.rng is not None and walk.rng.random() < 0.5
    if behind or ahead:
        _sequence(walk, pattern)


def _skip(walk: _Walk, _arg: object) -> None:
    """Negative lookarounds generate nothing; the final ``re.search`` decides."""


def _class_test(walk: _Walk, items: list[tuple[Any, Any]]) -> Callable[[str], bool]:
    """Membership test for a character class ``[...]``."""
    negate = bool(items) and str(items[0][0]) == "NEGATE"
    body = items[1:] if negate else items

    def test(char: str) -> bool:
        hit = any(_class_item(walk, op, arg, char) for op, arg in body)
        return hit != negate

    return test


def _class_item(walk: _Walk, op: Any, arg: Any, char: str) -> bool:
    name = str(op)
    if name == "LITERAL":
        return _same(walk, char, chr(arg))
    if name == "RANGE":
        return any(arg[0] <= ord(c) <= arg[1] for c in _cases(walk, char))
    if name == "CATEGORY":
        return _category(str(arg), char)
    raise _Unsat(f"unsupported class item: {name}")


def _class_extra(items: list[tuple[Any, Any]]) -> str:
    """Non-ASCII characters a class names explicitly (candidates beyond the ASCII tiers)."""
    out = []
    for op, arg in items:
        if str(op) == "LITERAL":
            out.append(chr(arg))
        elif str(op) == "RANGE":
            out.append(chr(arg[0]))
    return "".join(c for c in out if ord(c) > 127)


def _category(name: str, char: str) -> bool:
    tests: dict[str, Callable[[str], bool]] = {
        "CATEGORY_DIGIT": str.isdigit,
        "CATEGORY_SPACE": lambda c: c in _SPACE,
        "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
        "CATEGORY_LINEBREAK": lambda c: c == "\n",
    }
    positive = name.replace("_NOT_", "_")
    if positive not in tests:
        raise _Unsat(f"unsupported category: {name}")
    return tests[positive](char) != (positive != name)


def _cases(walk: _Walk, char: str) -> set[str]:
    return {char, char.lower(), char.upper()} if walk.icase else {char}


def _same(walk: _Walk, char: str, other: str) -> bool:
    return other in _cases(walk, char)


def _choose(walk: _Walk, allowed: Callable[[str], bool], extra: str = "") -> str:
    """The preferred character that ``allowed`` accepts (seeded walks pick within the best tier)."""
    for tier in _tiers(walk.avoid, extra):
        fits = [c for c in tier if allowed(c)]
        if fits:
            return fits[walk.pick(len(fits))]
    raise _Unsat("empty character class")


def _tiers(avoid: str, extra: str) -> list[str]:
    tiers = [UNRESERVED, SUB_DELIMS, _PRINTABLE_OTHER, RISKY, extra + _NON_ASCII, _CONTROL]
    ordered = ["".join(c for c in tier if c not in avoid) for tier in tiers]
    return [*ordered[:-2], avoid, *ordered[-2:]]


_HANDLERS: dict[str, Callable[[_Walk, Any], None]] = {
    "LITERAL": _literal,
    "NOT_LITERAL": _not_literal,
    "ANY": _any,
    "IN": _in,
    "BRANCH": _branch,
    "SUBPATTERN": _subpattern,
    "MAX_REPEAT": _repeat,
    "MIN_REPEAT": _repeat,
    "POSSESSIVE_REPEAT": _repeat,
    "ATOMIC_GROUP": _atomic,
    "GROUPREF": _groupref,
    "GROUPREF_EXISTS": _groupref_exists,
    "AT": _at,
    "ASSERT": _assert,
    "ASSERT_NOT": _skip,
}
