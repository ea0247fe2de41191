"""The policy's regex dialect: the regexes that nginx (PCRE2), Varnish (PCRE2) and the Python
model (``harness/selection/request.py``, ``re``) all read the same way on request paths and header values.

Both engines on Debian 12 link libpcre2-8 10.42, without UTF mode; the model uses ``re``. A regex
is accepted when Python compiles it and it uses none of the forms below, which one of the three
reads differently (``check``). Named groups ``(?<name>...)`` and ``(?P<name>...)`` are accepted
and written to the engines as ``(?:...)`` (``canonical``): a policy regex never needs a capture,
and nginx turns every named capture into a variable (``(?<host>...)`` would fail ``nginx -t``;
``(?<cw_path>...)`` would overwrite the generator's own).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_parser: Any = __import__("re._parser", fromlist=["parse"])  # no stubs for re._parser
_constants: Any = __import__("re._constants", fromlist=["MAXREPEAT"])
_compiler: Any = __import__("re._compiler", fromlist=["compile"])

PCRE2_MAX_REPEAT = 65535
GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_NAMED = re.compile(r"\(\?P?<(?![=!])([^>]*)>")


@dataclass(frozen=True)
class Token:
    """One piece of a regex: an escape (``\\x``), a class (``[...]``), a group opening (``(?...``
    up to its first ``:``, ``>`` or ``)``), or any other character."""

    kind: str
    text: str
    start: int


def tokens(regex: str) -> Iterator[Token]:
    """The regex's top-level pieces, read as PCRE and Python both read them."""
    i = 0
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            yield Token("escape", regex[i:i + 2], i)
            i += 2
        elif char == "[":
            end = _class_end(regex, i)
            yield Token("class", regex[i:end], i)
            i = end
        elif regex.startswith("(?", i) or regex.startswith("(*", i):
            match = re.match(r"\([?*](?:P?<(?![=!])[^>]*>|P=[^)]*\)|[^:>)]*[:>)]?)", regex[i:])
            text = match.group(0) if match else "(?"
            yield Token("group", text, i)
            i += len(text)
        else:
            yield Token("char", char, i)
            i += 1


def _class_end(regex: str, start: int) -> int:
    """Index after the ``]`` closing the class opened at ``start`` (a leading ``]`` or ``^]`` is
    a literal in both dialects); the end of the text when it is not closed."""
    i = start + 1
    if regex.startswith("^", i):
        i += 1
    if regex.startswith("]", i):
        i += 1
    while i < len(regex) and regex[i] != "]":
        i += 2 if regex[i] == "\\" else 1
    return min(i + 1, len(regex))


def canonical(regex: str) -> str:
    """``regex`` with named groups written as non-capturing ones (the same matches)."""
    if "(?<" not in regex and "(?P<" not in regex:
        return regex  # no named group: the common case, without tokenising
    out = []
    for token in tokens(regex):
        out.append("(?:" if token.kind == "group" and _NAMED.fullmatch(token.text) else token.text)
    return "".join(out)


def check(regex: str) -> str | None:
    """What is wrong with ``regex`` as a policy regex, or None when every reader agrees on it."""
    found = list(tokens(regex))
    for token in found:
        problem = _token_problem(token)
        if problem:
            return problem
    names = [m.group(1) for t in found if t.kind == "group" and (m := _NAMED.fullmatch(t.text))]
    bad = next((n for n in names if not GROUP_NAME.fullmatch(n)), None)
    if bad is not None:
        return (f"group name '{bad[:40]}' is not a PCRE2 name (letters, digits and _, not starting "
                "with a digit, at most 32 characters)")
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        return f"group name '{twice}' is used twice (PCRE2 and Python refuse that)"
    return _open_repeat_problem(regex) or _compile_problem(regex)


def _compile_problem(regex: str) -> str | None:
    """Python's verdict on the canonical form, and repeat counts PCRE2 cannot hold."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. FutureWarning "possible nested set"
            tree = _parser.parse(canonical(regex))
            _compiler.compile(tree)  # what re.compile does after parsing (a lookbehind's width, ...)
    except (re.error, RecursionError, OverflowError) as exc:
        return f'"{regex[:60]}" is not a valid regular expression ({exc})'
    if _largest_repeat(tree) > PCRE2_MAX_REPEAT:
        return f"a repeat count above {PCRE2_MAX_REPEAT} (PCRE2's limit)"
    return None


def _largest_repeat(items: Any) -> int:
    """The largest finite repeat bound anywhere in a parsed regex."""
    largest = 0
    for _op, arg in items:
        if isinstance(arg, tuple | list):
            for part in arg:
                if isinstance(part, int) and part != _constants.MAXREPEAT:
                    largest = max(largest, part)
                elif isinstance(part, _parser.SubPattern):
                    largest = max(largest, _largest_repeat(part))
                elif isinstance(part, list) and part and isinstance(part[0], _parser.SubPattern):
                    largest = max(largest, *(_largest_repeat(p) for p in part))
        elif isinstance(arg, _parser.SubPattern):
            largest = max(largest, _largest_repeat(arg))
    return largest


_ESCAPES = {
    "v": r"\v is a vertical tab in Python but any vertical space in PCRE (write \x0b)",
    "u": r"\u, \U, \N and the (?a), (?u), (?L) flags are Python-only (PCRE has \x{...})",
    "U": r"\u, \U, \N and the (?a), (?u), (?L) flags are Python-only (PCRE has \x{...})",
    "N": r"\u, \U, \N and the (?a), (?u), (?L) flags are Python-only (PCRE has \x{...})",
    "g": "back-references are not supported (a rule matches a path or a value, never a capture)",
    "k": "back-references are not supported (a rule matches a path or a value, never a capture)",
}


def _token_problem(token: Token) -> str | None:
    text = token.text
    if token.kind == "escape" and len(text) == 2:
        if text[1] in "123456789":
            return _ESCAPES["g"]
        return _ESCAPES.get(text[1])
    if token.kind == "class":
        if re.search(r"\[[:.=]", text[1:]):
            return ("POSIX classes such as [:alpha:] inside [...] are read differently by PCRE and "
                    "Python (write the characters, e.g. [a-zA-Z])")
        if re.search(r"(?<!\\)(?:\\\\)*\\[vuUN]", text):
            return _ESCAPES["v"] if re.search(r"(?<!\\)(?:\\\\)*\\v", text) else _ESCAPES["u"]
    if token.kind == "group":
        return _group_problem(text)
    return None


def _group_problem(text: str) -> str | None:
    if text.startswith("(?P="):
        return _ESCAPES["g"]
    if text.startswith("(?("):
        return "conditional groups (?(...)...) are not supported"
    if text.startswith("(*"):
        return "PCRE verbs such as (*UTF) are not supported"
    flags = re.fullmatch(r"\(\?([a-zA-Z-]*)[:)]", text)
    if flags and "x" in flags.group(1):
        return "(?x) is not supported (PCRE and Python read whitespace and # in it differently)"
    if flags and re.search("[auL]", flags.group(1)):
        return _ESCAPES["u"]
    return None


def _open_repeat_problem(regex: str) -> str | None:
    """``{,n}``: a literal in PCRE2 10.42, a repeat of 0 to n in Python."""
    for token in tokens(regex):
        if token.kind == "char" and token.text == "{" and re.match(r"\{,\d*\}", regex[token.start:]):
            return "{,n} is literal text in PCRE2 but a repeat in Python (write {0,n})"
    return None
