"""Reachability: a rule that earlier rules always pre-empt is an error; where that cannot be
decided, or a later, narrower rule is partly pre-empted, a warning.

Only what is proven is claimed. A rule ``b`` can never match when, for every request it matches,
an earlier rule matches too: here, when earlier rules whose other conditions (methods, hosts,
headers, cookies) hold wherever ``b``'s hold together accept every path ``b`` accepts. Paths are
compared exactly (``generator/paths.py``: automata from greenery): prefixes, exact paths,
extensions and regexes alike. Rules without a regex are compared as before, on their text.
"""

from __future__ import annotations

import bisect
import importlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from .model import Match, Policy, Rule, ValueMatch
from .paths import (
    END,
    START,
    Language,
    TooComplex,
    compiled,
    every_path,
    find,
    path_regexes,
    regex_language,
    subset,
    word,
)
from .quote import extensions_regex

_parser: Any = importlib.import_module("re._parser")
#: at most this many overlapping earlier rules are combined to cover a later one
MAX_UNION = 8
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class PathCond:
    """A rule's path conditions: a literal ``head`` every path starts with, and the shape (an
    ``exact`` path or a prefix, with ``exts``) or, where a regex or an escape is involved, the
    ``regexes`` whose language (built only when needed) is compared."""

    head: str
    exact: bool
    exts: tuple[str, ...]
    regexes: tuple[str, ...] = ()

    @property
    def shape(self) -> bool:
        return not self.regexes

    @cached_property
    def lang(self) -> Language | None:
        """The paths accepted (None for a shape, compared on its text)."""
        if self.shape:
            return None
        lang = Language(every_path(), every_path())
        for regex in self.regexes:
            lang = lang & regex_language(regex)
        return lang


def path_cond(m: Match) -> PathCond:
    """The path conditions of ``m``, as cheaply as they can be compared."""
    literal = m.path if m.path is not None else m.path_prefix
    if m.path_regex is None and "%" not in (literal or ""):
        return PathCond(literal or "/", m.path is not None, m.extensions)
    head = literal.split("%")[0] if literal else regex_head(m.path_regex or "")
    return PathCond(head or "/", m.path is not None, m.extensions, path_regexes(m))


@lru_cache(maxsize=4096)
def regex_head(regex: str) -> str:
    """The literal text after ``^`` that an anchored regex's matches start with ("" when not
    anchored or case-insensitive)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = _parser.parse(regex)
    except (re.error, RecursionError):
        return ""
    tree = list(parsed)
    if not tree or str(tree[0][0]) != "AT" or not str(tree[0][1]).startswith("AT_BEGINNING"):
        return ""
    head = ""
    for op, arg in tree[1:]:
        if str(op) != "LITERAL" or parsed.state.flags & re.IGNORECASE:
            break
        head += chr(arg)
    return head


def _compatible(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


# --- the languages of shapes, derived where they are needed ---


@lru_cache(maxsize=256)
def _ext_lang(exts: tuple[str, ...]) -> Any:
    return regex_language(extensions_regex(exts)).under if exts else every_path()


def _tail(cond: PathCond) -> Any:
    """What may follow ``START + head`` in a path of the shape ``cond``."""
    base = _ext_lang(cond.exts).derive(START + cond.head)
    return base & _END_ONLY if cond.exact else base


_END_ONLY = word(END)


def _materialise(cond: PathCond) -> Language:
    """The language of ``cond`` (built for a shape too)."""
    return cond.lang if cond.lang is not None else _shape_language(cond.head, cond.exact, cond.exts)


@lru_cache(maxsize=1024)
def _shape_language(head: str, exact: bool, exts: tuple[str, ...]) -> Language:
    lang = regex_language("^" + re.escape(head) + ("$" if exact else ""))
    return lang & regex_language(extensions_regex(exts)) if exts else lang


def _sample(cond: PathCond) -> str | None:
    """A path ``cond`` surely accepts (cheap for a shape)."""
    if cond.shape:
        return cond.head if cond.exact else cond.head + "zq9" + (f".{cond.exts[0]}" if cond.exts else "")
    assert cond.lang is not None
    found = find((cond.lang.under,), all)
    return None if found is None else found.strip(START + END)


def _accepts(cond: PathCond, path: str) -> bool:
    """Whether ``cond`` accepts ``path``, read by Python's ``re`` (as the model reads it)."""
    if cond.shape:
        return _shape_accepts(cond, path)
    return all(compiled(regex).search(path) for regex in cond.regexes)


def _starts_with(fsm: Any, text: str) -> bool:
    """Every string ``fsm`` accepts starts with ``text`` (a walk: at each step the only live
    transition is on that one character)."""
    state = fsm.initial
    for char in text:
        live = [(cc, t) for cc, t in fsm.map[state].items() if fsm.islive(t)]
        if not live:
            return True
        if state in fsm.finals or len(live) > 1:
            return False
        charclass, state = live[0]
        if charclass.negated or list(charclass.get_chars()) != [char]:
            return False
    return True


def contains(a: PathCond, b: PathCond) -> bool | None:
    """Whether every path ``b`` accepts ``a`` accepts: True, False, or None (not decided)."""
    if a.shape and b.shape:
        return _shape_contains(a, b)
    if b.shape and not b.exact and not b.head.startswith(a.head):
        return False  # b has paths that leave a's head at its first differing character
    if b.exact and b.shape:
        sure = a.lang.under.accepts(START + b.head + END) if a.lang else False
        maybe = a.lang.over.accepts(START + b.head + END) if a.lang else False
        return True if sure else False if not maybe else None
    if a.shape:
        assert b.lang is not None
        if _shape_holds(a, b.lang.over):
            return True
        return None if not b.lang.exact and _shape_holds(a, b.lang.under) else False
    assert a.lang is not None
    if b.regexes and set(a.regexes) <= set(b.regexes):  # b has every condition a has
        return True
    if b.shape:
        if subset(_tail(b), a.lang.under.derive(START + b.head)):
            return True
        maybe = not a.lang.exact and subset(_tail(b), a.lang.over.derive(START + b.head))
        return None if maybe else False
    assert b.lang is not None
    if subset(b.lang.over, a.lang.under):
        return True
    exact = a.lang.exact and b.lang.exact
    return None if not exact and subset(b.lang.under, a.lang.over) else False


def _shape_holds(a: PathCond, fsm: Any) -> bool:
    """Every path ``fsm`` accepts has ``a``'s shape."""
    return _starts_with(fsm, START + a.head) and subset(fsm.derive(START + a.head), _tail(a))


def _shape_contains(a: PathCond, b: PathCond) -> bool:
    if b.exact:
        return _shape_accepts(a, b.head)
    if a.exact:
        return False
    return b.head.startswith(a.head) and (not a.exts or bool(b.exts) and set(b.exts) <= set(a.exts))


def _shape_accepts(cond: PathCond, path: str) -> bool:
    if cond.exact:
        return path == cond.head
    ext_ok = not cond.exts or any(path.lower().endswith("." + e) for e in cond.exts)
    return path.startswith(cond.head) and ext_ok


def overlap(a: PathCond, b: PathCond, surely: bool = True) -> str | None:
    """A path both accept (``surely``: both surely accept), or None when there is none."""
    if not _compatible(a.head, b.head):
        return None
    head = max(a.head, b.head, key=len)
    parts = []
    for cond in (a, b):
        if cond.lang is None:
            parts.append(_tail(cond).derive(head[len(cond.head):]))
        else:
            parts.append((cond.lang.under if surely else cond.lang.over).derive(START + head))
    rest = find((parts[0], parts[1]), all)
    return None if rest is None else (head + rest).replace(END, "")


# --- other conditions ---


def others_cover(a: Match, b: Match) -> bool:
    """Every request meeting ``b``'s conditions other than the path meets ``a``'s."""
    return ((not a.methods or (bool(b.methods) and set(b.methods) <= set(a.methods)))
            and (not a.hosts or (bool(b.hosts) and all(_host_covered(h, a.hosts) for h in b.hosts)))
            and _values_cover(a.headers, b.headers, str.lower)
            and _values_cover(a.cookies, b.cookies, str))


def _values_cover(a: tuple[ValueMatch, ...], b: tuple[ValueMatch, ...], fold: Callable[[str], str]) -> bool:
    """Every value ``b``'s conditions let through (per header or cookie name) meets ``a``'s: the
    same condition, or regexes whose languages show it. A name ``b`` does not test may be absent
    (an empty value) or hold anything, so only a condition ``b`` has can be covered."""
    for cond in a:
        same = [c for c in b if fold(c.name) == fold(cond.name)]
        if not same:
            return False
        if cond in same or (cond.regex or ".") in {c.regex or "." for c in same}:
            continue
        try:
            allowed = regex_language(cond.regex or ".", values=True).under
            let_through = regex_language(same[0].regex or ".", values=True).over
            for other in same[1:]:
                let_through = let_through & regex_language(other.regex or ".", values=True).over
            if not subset(let_through, allowed):
                return False
        except TooComplex:
            return False
    return True


def _host_covered(host: str, patterns: tuple[str, ...]) -> bool:
    return any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in patterns)


# --- the analysis ---


@dataclass
class Findings:
    """Errors and warnings, each as (policy path, message)."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Heads:
    """Rules by the literal head of their paths (a rule can overlap another only when one head
    starts with the other)."""

    heads: list[str] = field(default_factory=list)
    rules: dict[str, list[tuple[Rule, PathCond]]] = field(default_factory=dict)

    def add(self, rule: Rule, cond: PathCond) -> None:
        if cond.head not in self.rules:
            bisect.insort(self.heads, cond.head)
            self.rules[cond.head] = []
        self.rules[cond.head].append((rule, cond))

    def compatible(self, head: str) -> list[tuple[Rule, PathCond]]:
        """The rules whose head starts ``head`` or starts with it."""
        out = [entry for end in range(1, len(head) + 1) for entry in self.rules.get(head[:end], [])]
        at = bisect.bisect_right(self.heads, head)
        while at < len(self.heads) and self.heads[at].startswith(head):
            out += self.rules[self.heads[at]]
            at += 1
        return out


@dataclass
class _Earlier:
    """Earlier rules by the kinds of condition they have besides the path (methods, hosts,
    headers, cookies: a rule covers only rules that have every kind it has, ``others_cover``),
    then by head. Without the first split, each of a large policy's per-host rules for every
    path was compared with every later rule."""

    kinds: dict[tuple[bool, ...], _Heads] = field(default_factory=dict)

    def add(self, rule: Rule, cond: PathCond) -> None:
        self.kinds.setdefault(_kinds(rule.match), _Heads()).add(rule, cond)

    def covering(self, match: Match, head: str) -> list[tuple[Rule, PathCond]]:
        """Earlier rules whose head is compatible with ``head`` (``match``'s) and whose other
        conditions hold wherever ``match``'s do (``others_cover``: true of a rule without
        any), in rule order."""
        has = _kinds(match)
        out = []
        for kinds, heads in self.kinds.items():
            if all(h or not k for k, h in zip(kinds, has, strict=True)):
                found = heads.compatible(head)
                out += [e for e in found if others_cover(e[0].match, match)] if any(kinds) else found
        return sorted(out, key=lambda entry: entry[0].index)


def _kinds(m: Match) -> tuple[bool, ...]:
    return bool(m.methods), bool(m.hosts), bool(m.headers), bool(m.cookies)


def check(policy: Policy) -> Findings:
    """Every rule that can never match (errors), and the undecided or partly shadowed ones."""
    found = Findings()
    earlier = _Earlier()
    for rule in policy.rules:
        if rule.match != Match():
            cond = path_cond(rule.match)
            try:
                _check_rule(rule, cond, earlier, found)
            except TooComplex:
                found.warnings.append((f"rules[{rule.index}].match", (
                    f"warning: whether rule '{rule.name}' can ever match is not decided: its paths "
                    "and earlier rules' make automata too large to compare")))
            earlier.add(rule, cond)
    return found


def _check_rule(rule: Rule, cond: PathCond, earlier: _Earlier, found: Findings) -> None:
    at = f"rules[{rule.index}].match"
    if not cond.head.startswith("/"):
        found.errors.append((at, f"rule '{rule.name}' can never match: its path_regex requires "
                                 f"paths to start with '{cond.head[:20]}', and every path starts with /"))
        return
    candidates = earlier.covering(rule.match, cond.head)
    if not candidates:
        return
    undecided: Rule | None = None
    prefix = cond.shape and not cond.exact
    for other, other_cond in candidates:
        if prefix and not cond.head.startswith(other_cond.head):
            continue  # paths of this rule leave the other's head: not contained (``contains``)
        verdict = contains(other_cond, cond)
        if verdict and not cond.shape and find((_materialise(cond).over,), all) is None:
            found.errors.append((at, f"rule '{rule.name}' can never match: no path meets its path "
                                     "conditions (together)"))
            return
        if verdict:
            found.errors.append((at, _never(rule, [other])))
            return
        if verdict is None and undecided is None:
            undecided = other
    regexy = not cond.shape or any(not c.shape for _r, c in candidates)
    if regexy and _union_covers(rule, cond, candidates, found):
        return
    if undecided is not None:
        found.warnings.append((at, _undecided(rule, cond, undecided, candidates)))
        return
    if regexy:
        _partly(rule, cond, candidates, found)


def _never(rule: Rule, others: list[Rule]) -> str:
    first = others[0]
    if len(others) == 1:
        return (f"rule '{rule.name}' can never match: rule '{first.name}' (rules[{first.index}]) "
                f"matches every request it matches (move it before '{first.name}' or narrow "
                f"'{first.name}')")
    names = ", ".join(f"'{r.name}' (rules[{r.index}])" for r in others)
    return (f"rule '{rule.name}' can never match: rules {names} together match every request it "
            f"matches (move it before '{first.name}' or narrow them)")


def _union_covers(rule: Rule, cond: PathCond, candidates: list[tuple[Rule, PathCond]],
                  found: Findings) -> bool:
    """Several earlier rules that together take every path of ``rule``: an error."""
    if len(candidates) < 2:
        return False
    sample = _sample(cond)
    # a condition accepts only paths that start with its head (PathCond): others need no test
    if sample is None or not any(_accepts(c, sample) for _r, c in candidates if sample.startswith(c.head)):
        return False  # a path of the rule that no earlier rule takes (or none to try)
    overlapping = [(r, c) for r, c in candidates if _may_overlap(c, cond)]
    if not 2 <= len(overlapping) <= MAX_UNION:
        return False
    machines = (_materialise(cond).over, *(_materialise(c).under for _r, c in overlapping))
    if find(machines, lambda f: f[0] and not any(f[1:])) is None:
        found.errors.append((f"rules[{rule.index}].match", _never(rule, [r for r, _c in overlapping])))
        return True
    return False


def _may_overlap(a: PathCond, b: PathCond) -> bool:
    return overlap(a, b, surely=False) is not None


def _undecided(rule: Rule, cond: PathCond, other: Rule, candidates: list[tuple[Rule, PathCond]]) -> str:
    why = cond.lang.why if cond.lang is not None and cond.lang.why else next(
        (c.lang.why for r, c in candidates if r is other and c.lang is not None), "a construct")
    return (f"warning: whether rule '{rule.name}' can ever match is not decided: rule "
            f"'{other.name}' (rules[{other.index}]) may match every request it matches, and the "
            f"check does not analyse {why} (make sure, or write the regex without it)")


def _partly(rule: Rule, cond: PathCond, candidates: list[tuple[Rule, PathCond]], found: Findings) -> None:
    """A later rule nested under an earlier, broader one that takes part of its requests."""
    for other, other_cond in candidates:
        nested = cond.head.startswith(other_cond.head) and len(cond.head) > len(other_cond.head) > 1
        if not nested:  # an earlier rule for paths anywhere (/feed$, \.php$) is no section
            continue
        if contains(cond, other_cond) is not False:
            continue  # the earlier rule is a carve-out of this one
        example = overlap(other_cond, cond)
        if example is not None:
            found.warnings.append((f"rules[{rule.index}].match", (
                f"warning: rule '{rule.name}' is partly shadowed: rule '{other.name}' "
                f"(rules[{other.index}]) takes requests it matches, such as {example} (move it "
                f"before '{other.name}' or narrow '{other.name}')")))
            return
