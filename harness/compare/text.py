"""A ``cachewright compare`` report as terminal text: a header, then each section's table and lines
(``harness.compare.sections`` builds them). Colour only when asked; a report's own strings never
reach the terminal raw (control characters shown as ``\\xNN``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from cachewright.generator import __version__

from .records import CompareReport
from .sections import Cell, Section, Table, Tone, header_facts, sections

_SGR: Final[Mapping[Tone, str]] = {"good": "32", "bad": "1;31", "warn": "33"}
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")  # never reaches a terminal raw


def text_report(report: CompareReport, color: bool = False) -> str:
    """The report as terminal text: a header, then each section's table and lines."""
    facts = header_facts(report)
    width = max(len(label) for label, _ in facts)
    head = [f"cachewright compare {__version__}"] + [f"{label.ljust(width)}  {_clean(value)}"
                                                      for label, value in facts]
    return "\n\n".join(["\n".join(head), *(_text_section(s, color) for s in sections(report))]) + "\n"


def _text_section(section: Section, color: bool) -> str:
    parts = [section.title, "-" * len(section.title)]
    if section.table is not None:
        parts.append(_text_table(section.table, color))
    parts += [_text_line(line, color) for line in section.lines]
    return "\n".join(parts)


def _text_table(table: Table, color: bool) -> str:
    rows: list[tuple[Cell, ...]] = [tuple(h.upper() for h in table.header), *table.rows]
    widths = [max(len(_clean(_plain(row[i]))) for row in rows) for i in range(len(table.header))]
    return "\n".join("  ".join(_text_cell(cell, w, color) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _text_cell(cell: Cell, width: int, color: bool) -> str:
    padded = _clean(_plain(cell)).ljust(width)  # pad before painting: escape codes have no width
    return _paint(padded, cell[1], color) if isinstance(cell, tuple) else padded


def _text_line(line: Cell, color: bool) -> str:
    first, *rest = _plain(line).split("\n")
    text = "\n".join([_clean(first), *(f"    {_clean(more)}" for more in rest)])  # a message's lines indented
    return _paint(text, line[1], color) if isinstance(line, tuple) else text


def _plain(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def _clean(text: str) -> str:
    """Control characters (a hostile message's escape sequences) shown as ``\\xNN``, never sent raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _paint(text: str, tone: Tone, color: bool) -> str:
    return f"\x1b[{_SGR[tone]}m{text}\x1b[0m" if color else text
