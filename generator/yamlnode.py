"""YAML text → node tree with positions: the one reader of policies and scenario files.

Both are validated from the node tree (``spec.Obj.read`` keeps each node's ``start_mark``), so
this reader owns everything that goes wrong before there is a tree: a file too large, text that
is not UTF-8, a character YAML does not allow, invalid YAML, an empty document. Each becomes a
``Problem`` positioned like a schema problem, raised in the caller's error class (a
``PolicyError`` or a subclass), so a scenario file's errors read like a policy's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from .errors import PolicyError, Problem
from .spec import shown

if TYPE_CHECKING:  # CSafeLoader exists only with libyaml
    #: the loaders a document may be composed with (libyaml's, else PyYAML's own)
    Loader = type[yaml.SafeLoader] | type[yaml.CSafeLoader]

LOADER: Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: same nodes and positions
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Document:
    """What a kind of document is called in messages, and its limits.

    ``hint`` adds to an invalid-YAML message a hint for the likeliest mistake on that line (given
    the text and the 1-based line number; an empty string: no hint). ``loader`` composes: the
    nodes and positions are the same with libyaml and PyYAML, but not every invalid-YAML message
    (libyaml: "did not find expected node content", PyYAML: "expected the node content, but
    found '<stream end>'"), and a reader error counts bytes in one, characters in the other.
    """

    kind: str  # "policy file", "scenario file"
    max_bytes: int
    size_shown: str  # "16 MiB"
    empty: str  # the message for an empty document
    error: type[PolicyError] = PolicyError
    hint: Callable[[str, int], str] | None = None
    loader: Loader = LOADER


def compose(data: bytes | str, filename: str, document: Document) -> yaml.Node:
    """The node tree of ``data``; raises ``document.error`` with the one problem that stops
    reading (``filename`` names the file in it)."""
    def fail(problem: Problem) -> PolicyError:
        return document.error([problem])

    if len(data) > document.max_bytes:
        raise fail(Problem(filename, 1, 1, "", f"{document.kind} is larger than {document.size_shown}"))
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(Problem(filename, 1, 1, "", f"not UTF-8 text ({exc.reason})")) from None
    try:
        node = yaml.compose(data, Loader=document.loader)
    except yaml.MarkedYAMLError as exc:
        raise fail(_marked_problem(data, exc, filename, document)) from None
    except yaml.reader.ReaderError as exc:
        raise fail(reader_problem(data, exc, filename, document.loader)) from None
    except yaml.YAMLError as exc:
        raise fail(Problem(filename, 1, 1, "", f"invalid YAML: {exc}")) from None
    if node is None:
        raise fail(Problem(filename, 1, 1, "", document.empty))
    return node


def _marked_problem(text: str, exc: yaml.MarkedYAMLError, filename: str,
                    document: Document) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    hint = document.hint(text, line) if document.hint else ""
    return Problem(filename, line, col, "", f"invalid YAML: {exc.problem or 'invalid YAML'}{hint}")


def reader_problem(text: str, exc: yaml.reader.ReaderError, filename: str,
                   loader: Loader = LOADER) -> Problem:
    """The problem for a character YAML does not allow (a control character, U+FFFE, ...),
    positioned in ``text`` (which ``loader`` was reading)."""
    line, col = _text_position(text, exc.position, _counts_bytes(loader))
    if not isinstance(exc.character, int):
        return Problem(filename, line, col, "", f"invalid YAML: {exc.reason}")
    escape = shown(chr(exc.character))
    return Problem(filename, line, col, "", f"invalid YAML: unprintable character "
                   f"#x{exc.character:04x} (expected printable text; inside double quotes write "
                   f'it as "{escape}")')


def _text_position(text: str, offset: int, in_bytes: bool) -> tuple[int, int]:
    """Line and column (from 1) of the character at ``offset`` in ``text``."""
    before = text.encode("utf-8")[:offset].decode("utf-8", "ignore") if in_bytes else text[:offset]
    lines = _LINE_BREAK.split(before.removeprefix("\ufeff"))
    return len(lines), len(lines[-1]) + 1


def _counts_bytes(loader: Loader) -> bool:
    """libyaml counts a reader error's position in bytes of the UTF-8 text, PyYAML in characters."""
    c_parser = getattr(getattr(yaml, "cyaml", None), "CParser", None)  # None without libyaml
    return c_parser is not None and issubclass(loader, c_parser)
