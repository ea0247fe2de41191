"""Path conditions as finite automata, to decide which requests a rule's path conditions accept.

A rule's path conditions (prefix, exact path, regex, extensions) are each a regex that the engines
search the raw path with. Each is parsed with Python's own parser (``re._parser``: the policy's
dialect is one Python reads as PCRE2 does, ``generator/dialect.py``) and built into a
deterministic automaton with greenery, which does the automaton work: intersection, difference,
emptiness. What a search accepts is the language of whole paths, written between two sentinels
(``^`` reads the start sentinel, ``$`` the end one), so anchors need no special states.

Lookarounds, ``\\b``, possessive repeats and atomic groups are not regular in this reading: such a
regex gets an inexact language, an under- and an over-approximation (what it surely matches, what
it may match). Paths are byte strings (the engines' PCRE2 runs without UTF), so characters are
code points 0-255; ``\\d \\w \\s`` and ``(?i)`` are ASCII, as in PCRE2's default tables.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from .model import Match
from .quote import extensions_regex, literal_regex

_fsm: Any = importlib.import_module("greenery.fsm")  # greenery ships no type information
_crawl = _fsm.crawl
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

START, END = "\ue000", "\ue001"  # sentinels: never in a path (bytes only)
BYTES = frozenset(range(256))
#: what a raw path holds after the leading "/": no control bytes, space or "?"
PATH_BYTES = frozenset(range(0x21, 0x100)) - {0x7F, ord("?")}
LINE_FEED = 10
#: repeats with more iterations than this are approximated (building them costs states)
MAX_COUNT = 40
#: transitions followed in one automaton construction or product walk before giving up: a
#: hostile regex (``.*a.{30}``) has exponentially many states, and a policy must still load
MAX_STEPS = 20_000
_DIGIT = frozenset(range(0x30, 0x3A))
_WORD = _DIGIT | frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B)) | {0x5F}
_SPACE = frozenset((9, 10, 11, 12, 13, 32))
_CATEGORIES = {
    "CATEGORY_DIGIT": _DIGIT, "CATEGORY_NOT_DIGIT": BYTES - _DIGIT,
    "CATEGORY_WORD": _WORD, "CATEGORY_NOT_WORD": BYTES - _WORD,
    "CATEGORY_SPACE": _SPACE, "CATEGORY_NOT_SPACE": BYTES - _SPACE,
}


@dataclass(frozen=True)
class Language:
    """The texts (paths, or header and cookie values) a condition accepts: ``under`` surely,
    ``over`` at most; ``why`` names what made them differ ("" when exact)."""

    under: Any
    over: Any
    why: str = ""

    @property
    def exact(self) -> bool:
        return not self.why

    def __and__(self, other: Language) -> Language:
        return Language(self.under & other.under, self.over & other.over, self.why or other.why)


def _charclass(codes: Iterable[int]) -> Any:
    ranges: list[tuple[str, str]] = []
    for code in sorted(codes):
        if ranges and ord(ranges[-1][1]) == code - 1:
            ranges[-1] = (ranges[-1][0], chr(code))
        else:
            ranges.append((chr(code), chr(code)))
    return _fsm.Charclass(tuple(ranges))


def _cls(codes: Iterable[int]) -> Any:
    """An automaton accepting one character of ``codes``."""
    return _fsm.from_charclass(_charclass(codes))


def word(text: str) -> Any:
    """An automaton accepting exactly ``text``."""
    return _fsm.Fsm.concatenate(_fsm.EPSILON, *(_fsm.from_charclass(_fsm.Charclass(c)) for c in text))


ANY = _fsm.from_charclass(~_fsm.Charclass())  # one class: small alphabets keep products cheap

# The automata below are built on first use: each takes milliseconds, and most policies load
# without comparing any automata (paths that are literal text are compared as text).


@cache
def every_path() -> Any:
    """Every raw path, between its sentinels."""
    return word(START + "/") + _cls(PATH_BYTES).star() + word(END)


@cache
def _every_value() -> Any:
    """Every header or cookie value (empty: absent), between the sentinels."""
    return word(START) + _cls(frozenset(range(0x20, 0x100)) - {0x7F} | {9}).star() + word(END)


@cache
def _doubled() -> Any:
    """A pair of anchors no text can hold both of (only the translation of ^^ or $$ needs one)."""
    return ANY.star() + (word(START + START) | word(END + END) | word(END + START)) + ANY.star()


class _Inexact(Exception):
    """Not regular as the engines read it (the message says why)."""


class TooComplex(Exception):
    """An automaton grew past ``MAX_STEPS``: the question is left undecided."""


def _budgeted_crawl(alphabet: Any, initial: Any, final: Any, follow: Any) -> Any:
    """greenery's ``crawl`` (which builds every automaton it returns), with a step budget."""
    steps = [0]

    def counted(state: Any, symbol: Any) -> Any:
        steps[0] += 1
        if steps[0] > MAX_STEPS:
            raise TooComplex("too many automaton states")
        return follow(state, symbol)

    return _crawl(alphabet, initial, final, counted)


_fsm.crawl = _budgeted_crawl  # greenery's operations look crawl up in their module


@dataclass
class _Build:
    """One translation of a parsed regex; ``loose`` reads each inexact construct by its
    over-approximation (else the under-approximation) and records why in ``why``."""

    loose: bool
    why: str = ""

    def seq(self, items: Any, icase: bool) -> Any:
        """A parsed sequence; runs of single characters become one chain automaton."""
        parts, run = [], []
        for op, arg in items:
            codes = _chars(str(op), arg, icase)
            if codes is not None:
                run.append(codes)
                continue
            if run:
                parts.append(_chain(run))
                run = []
            parts.append(self.item(op, arg, icase))
        if run:
            parts.append(_chain(run))
        return parts[0] if len(parts) == 1 else _fsm.Fsm.concatenate(_fsm.EPSILON, *parts)

    def item(self, op: Any, arg: Any, icase: bool) -> Any:
        name = str(op)
        if name == "BRANCH":
            return _fsm.Fsm.union(*(self.seq(alt, icase) for alt in arg[1]))
        if name == "SUBPATTERN":
            _group, add, remove, sub = arg
            return self.seq(sub, (icase or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):  # laziness changes no search's verdict
            return self.repeat(arg, icase)
        if name == "AT":
            return self.anchor(str(arg))
        if name == "POSSESSIVE_REPEAT":
            return self.inexact("a possessive repeat", self.repeat(arg, icase))
        if name == "ATOMIC_GROUP":
            return self.inexact("an atomic group", self.seq(arg, icase))
        if name in ("ASSERT", "ASSERT_NOT"):
            return self.inexact("a lookaround", _fsm.EPSILON)
        raise _Inexact(f"{name.lower()}")

    def repeat(self, arg: Any, icase: bool) -> Any:
        low, high, sub = arg
        body = self.seq(sub, icase)
        if low > MAX_COUNT or (high != _c.MAXREPEAT and high > MAX_COUNT):
            return self.inexact("a large repeat count", body.star())
        fixed = body.times(low)
        if high == _c.MAXREPEAT:
            return fixed + body.star()
        return fixed + (body | _fsm.EPSILON).times(high - low)

    def anchor(self, where: str) -> Any:
        if where in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
            return word(START)
        if where in ("AT_END", "AT_END_STRING"):
            return word(END)
        return self.inexact("\\b or \\B", _fsm.EPSILON)

    def inexact(self, what: str, loose: Any) -> Any:
        """``loose`` when over-approximating, nothing otherwise; remembers ``what``."""
        self.why = self.why or what
        return loose if self.loose else _fsm.NULL


def _chars(name: str, arg: Any, icase: bool) -> frozenset[int] | None:
    """The bytes one single-character item matches (None for any other item)."""
    if name == "LITERAL":
        return _fold({arg}, icase)
    if name == "NOT_LITERAL":
        return BYTES - _fold({arg}, icase)
    if name == "ANY":
        return BYTES - {LINE_FEED}
    if name == "IN":
        return _class(arg, icase)
    return None


def _chain(classes: list[frozenset[int]]) -> Any:
    """An automaton accepting one byte of each class in turn, built directly (greenery's
    concatenation minimises after every step, far slower for a run of literals)."""
    by_signature: dict[tuple[bool, ...], list[int]] = {}
    for code in range(256):
        by_signature.setdefault(tuple(code in c for c in classes), []).append(code)
    symbols = [(_charclass(codes), signature) for signature, codes in by_signature.items()]
    rest = ~_fsm.Charclass(((chr(0), chr(255)),))
    dead = len(classes) + 1
    transitions = {}
    for state in range(len(classes) + 2):
        row = {rest: dead}
        for symbol, signature in symbols:
            row[symbol] = state + 1 if state < len(classes) and signature[state] else dead
        transitions[state] = row
    return _fsm.Fsm(alphabet={rest, *(s for s, _ in symbols)}, states=set(transitions), initial=0,
                    finals={len(classes)}, map=transitions)


def _fold(codes: set[int] | frozenset[int], icase: bool) -> frozenset[int]:
    if not icase:
        return frozenset(codes)
    return frozenset(codes) | {ord(chr(c).swapcase()) for c in codes if chr(c).isascii() and chr(c).isalpha()}


def _class(items: Any, icase: bool) -> frozenset[int]:
    negate = bool(items) and str(items[0][0]) == "NEGATE"
    codes: set[int] = set()
    for op, arg in items[1:] if negate else items:
        name = str(op)
        if name == "LITERAL":
            codes.add(arg)
        elif name in ("RANGE", "RANGE_UNI_IGNORE"):
            codes |= set(range(arg[0], min(arg[1], 255) + 1))
        elif name == "CATEGORY":
            codes |= _CATEGORIES[str(arg)]
        else:
            raise _Inexact(name.lower())
    folded = _fold({c for c in codes if c < 256}, icase)
    return BYTES - folded if negate else folded


@lru_cache(maxsize=4096)
def regex_language(regex: str, values: bool = False) -> Language:
    """The raw paths (``values``: the header or cookie values) ``re.search(regex, text)``
    accepts, as the engines read it."""
    universe = _every_value() if values else every_path()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = _parser.parse(regex)
        icase = bool(tree.state.flags & re.IGNORECASE)
        strict, loose = _Build(False), _Build(True)
        pattern = strict.seq(tree, icase)
        under = _searched(pattern, universe, *_anchored(tree))
        if not strict.why and not (pattern & _doubled()).empty():
            return Language(under, universe, "an anchor next to another anchor")
        over = _searched(loose.seq(tree, icase), universe) if strict.why else under
    except TooComplex:
        return Language(_fsm.NULL, universe, "a regex this large (too many automaton states)")
    except (_Inexact, RecursionError, KeyError, re.error) as exc:
        return Language(_fsm.NULL, universe, f"{exc or 'a construct'}")
    return Language(under, over, strict.why)


def _searched(pattern: Any, universe: Any, starts: bool = False, ends: bool = False) -> Any:
    """The texts of ``universe`` in which ``pattern`` occurs somewhere (an anchored side needs
    no padding)."""
    padded = pattern if starts else ANY.star() + pattern
    return (padded if ends else padded + ANY.star()) & universe


def _anchored(tree: Any) -> tuple[bool, bool]:
    """Whether a parsed regex starts with ``^`` and ends with ``$`` (outside any group)."""
    items = list(tree)
    starts = bool(items) and str(items[0][0]) == "AT" and str(items[0][1]).startswith("AT_BEGINNING")
    ends = bool(items) and str(items[-1][0]) == "AT" and str(items[-1][1]).startswith("AT_END")
    return starts, ends


@lru_cache(maxsize=8192)
def path_regexes(match: Match) -> tuple[str, ...]:
    """The regexes the engines search the raw path with, one per path condition."""
    out = []
    if match.path_prefix:
        out.append("^" + literal_regex(match.path_prefix))
    if match.path is not None:
        out.append("^" + literal_regex(match.path) + "$")
    if match.path_regex is not None:
        out.append(match.path_regex)
    if match.extensions:
        out.append(extensions_regex(match.extensions))
    return tuple(out)


@lru_cache(maxsize=8192)
def compiled(regex: str) -> re.Pattern[str]:
    """``re.compile``, remembered for every regex of a large policy (``re``'s own cache holds
    512)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(regex)


def _readable(charclass: Any) -> str | None:
    """A character of ``charclass``: a letter or digit, else "/" or "-", else any."""
    for char in "abcdefghijklmnopqrstuvwxyz0123456789/-._~ABCDEFGHIJKLMNOPQRSTUVWXYZ" + START + END:
        if charclass.accepts(char):
            return char
    codes = [c for c in PATH_BYTES if charclass.accepts(chr(c))]
    return chr(codes[0]) if codes else None


def find(fsms: tuple[Any, ...], test: Callable[[list[bool]], bool]) -> str | None:
    """A shortest string taking ``fsms`` (run side by side) to states whose finality passes
    ``test``, or None; raises TooComplex past ``MAX_STEPS`` states. greenery's own product
    (``parallel``) minimises every result, which costs far more than the question "is there
    one?" needs; this walks the same product lazily and stops at the first answer."""
    unified = _fsm.unify_alphabets(fsms)
    symbols = sorted(unified[0].alphabet, key=_rank)
    start = tuple(f.initial for f in unified)
    seen = {start: ""}
    queue = [start]
    for state in queue:
        if test([s in f.finals for s, f in zip(state, unified, strict=True)]):
            return seen[state]
        if len(queue) > MAX_STEPS:
            raise TooComplex("too many automaton states")
        for symbol in symbols:
            target = tuple(f.map[s][symbol] for s, f in zip(state, unified, strict=True))
            if target not in seen:
                char = _readable(symbol)
                if char is not None:
                    seen[target] = seen[state] + char
                    queue.append(target)
    return None


def subset(a: Any, b: Any) -> bool:
    """Every string ``a`` accepts, ``b`` accepts."""
    return find((a, b), lambda f: f[0] and not f[1]) is None


def _rank(charclass: Any) -> tuple[int, str]:
    """Readable characters first, so that examples read well."""
    char = _readable(charclass)
    order = "abcdefghijklmnopqrstuvwxyz0123456789/-._~"
    return (order.index(char) if char and char in order else len(order), str(char))
