"""The rule table every generated nginx.conf and default.vcl starts with (after its header).

A reviewer of a generated diff finds a rule here without reading the dispatch regexes: its
order, name, a one-line summary of its conditions, its TTL (or ``bypass``), where its block is
(nginx: the named locations the dispatch map selects; VCL: the subroutine and branch) and the
line that block starts on. The rows are computed here from the policy and the lowering's model;
the line numbers are found in the rendered file (at the comment ``# cachewright: <marker>``
each rule's block carries) and shifted by the table's own length, which is known before the
numbers are (a row per rule and two lines of headings). Linear in the file's size.

hitch.conf and varnishd.args get no table: they hold no rule (varnishd.args only the listeners,
storage and parameters default.vcl needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .model import Match, Policy, Rule, ValueMatch
from .nginx_locations import Location
from .quote import comment_text
from .units import format_duration
from .varnish_rules import Selection

#: the comment each rule's block carries in both templates (the rest of its line is the marker)
MARK = "# cachewright: "
#: rows of headings above the rules
HEADINGS = 2


@dataclass(frozen=True)
class Entry:
    """What the table says of a rule in either engine's file."""

    order: str
    name: str
    match: str
    ttl: str


@dataclass(frozen=True)
class Row:
    """One rule in an engine's table, before its line number is known."""

    entry: Entry
    #: nginx: the named locations; VCL: the subroutine and branch
    place: str
    #: the rendered file's comment above the rule's block (``# cachewright: <marker>``)
    marker: str
    #: the block's first line, counted from the marker's (1: the line after, -1: the line before)
    offset: int = 1


@dataclass(frozen=True)
class Table:
    #: what the place column holds
    place: str
    rows: tuple[Row, ...]


def entries(policy: Policy) -> tuple[Entry, ...]:
    """Each rule's entry, the default rule's last (derived once for both engines' tables)."""
    out = [Entry(str(rule.index + 1), comment_text(rule.name, 63), summary(rule.match), _ttl(policy, rule))
           for rule in policy.rules]
    out.append(Entry("-", "default", "no rule above matches", _ttl(policy, policy.default_rule)))
    return tuple(out)


def nginx_table(rules: tuple[Entry, ...], locations: tuple[Location, ...]) -> Table:
    """The rules of nginx.conf: each rule's named locations (the values of the dispatch map,
    ``$cw_target``); its line is the plain location's ``location @<rule> {``."""
    return Table("location", tuple(
        Row(entry, ", ".join(f"@{v.ident}" for v in loc.variants), loc.variants[0].marker)
        for entry, loc in zip(rules, locations, strict=True)))


def vcl_table(rules: tuple[Entry, ...], selection: Selection) -> Table:
    """The rules of default.vcl: the subroutine and branch of the first-match chain that selects
    each (``vcl_recv``, or ``cw_select_<n>`` for a large policy); its line is the branch's
    ``if`` / ``elsif``. The default rule's comment is inside its branch, after the ``else``
    (or, chunked, the ``if`` that no rule was selected)."""
    places = [(f"cw_select_{number}" if selection.select_subs else "vcl_recv", "elsif" if at else "if", rule.marker)
              for number, chunk in enumerate(selection.chunks, start=1) for at, rule in enumerate(chunk)]
    rows = [Row(entry, f"{sub} {branch}", marker)
            for entry, (sub, branch, marker) in zip(rules[:-1], places, strict=True)]
    branch = "else" if selection.inline_chain else "if no rule"
    rows.append(Row(rules[-1], f"vcl_recv {branch}", selection.default.marker, -1))
    return Table("subroutine, branch", tuple(rows))


def _ttl(policy: Policy, rule: Rule) -> str:
    if not rule.cache:
        return "bypass"
    if rule.ttl is None:
        return f"{_duration(policy.cache.default_ttl)} (default)"
    return _duration(rule.ttl)


_duration = lru_cache(maxsize=256)(format_duration)


def summary(match: Match) -> str:
    """A rule's conditions on one line (cut where long), safe inside a ``#`` comment."""
    parts = []
    if match.path is not None:
        parts.append(f"path {match.path}")
    if match.path_prefix is not None:
        parts.append(f"prefix {match.path_prefix}")
    if match.path_regex is not None:
        parts.append(f"regex {match.path_regex}")
    if match.extensions:
        parts.append("ext " + ",".join(match.extensions))
    if match.methods:
        parts.append("methods " + ",".join(match.methods))
    if match.hosts:
        parts.append("host " + ",".join(match.hosts))
    parts += [f"header {_value(v)}" for v in match.headers]
    parts += [f"cookie {_value(v)}" for v in match.cookies]
    return comment_text("; ".join(parts) or "any request")


def _value(condition: ValueMatch) -> str:
    return condition.name if condition.regex is None else f"{condition.name}~{condition.regex}"


def prepend(text: str, table: Table) -> str:
    """``text`` with ``table`` after its header comment (its leading ``#`` lines), each rule's
    line number counted in the result."""
    head = _header_end(text)
    size = HEADINGS + len(table.rows)
    numbers = [line + row.offset + size for row, line in zip(table.rows, _marker_lines(text, table.rows),
                                                             strict=True)]
    # one copy of a large file (replace's), not the two of slicing and concatenating
    return text.replace(text[:head], text[:head] + _format(table, numbers), 1)


def _header_end(text: str) -> int:
    """Where the leading comment lines end."""
    pos = 0
    while text.startswith("#", pos):
        pos = text.index("\n", pos) + 1
    return pos


def _marker_lines(text: str, rows: tuple[Row, ...]) -> list[int]:
    """The line (1-based) of each row's comment ``# cachewright: <marker>``: the first that is a
    whole line but its indentation (a hostile regex may hold the same words inside a
    directive). Each is looked for after the one before (the rules are in order in the file);
    a comment before it (VCL's default rule, in vcl_recv before the chunks' subroutines) from the
    start again. Linear for the rules in order."""
    lines: list[int] = []
    pos = counted = 0
    line = 1
    for row in rows:
        needle = f"{MARK}{row.marker}\n"
        found = _line_comment(text, needle, pos)
        if found == -1:
            found = _line_comment(text, needle, 0)
        if found == -1:
            raise LookupError(f"rule table: no block found for {row.marker!r}")
        if found < counted:
            line, counted = 1, 0
        line += text.count("\n", counted, found)
        counted = pos = found
        lines.append(line)
    return lines


def _line_comment(text: str, needle: str, pos: int) -> int:
    """Where ``needle`` is first a line of its own (but its indentation) from ``pos``; -1: nowhere."""
    pos = text.find(needle, pos)
    while pos != -1 and text[text.rfind("\n", 0, pos) + 1:pos].strip(" "):
        pos = text.find(needle, pos + 1)
    return pos


def _format(table: Table, numbers: list[int]) -> str:
    """The table: a title, the column headings, a row per rule; columns aligned."""
    cells = [("order", "rule", "match", "ttl", table.place)]
    cells += [(r.entry.order, r.entry.name, r.entry.match, r.entry.ttl, r.place) for r in table.rows]
    o, n, m, t, p = (max(len(row[i]) for row in cells) for i in range(5))
    out = ["# Rules, first match wins (line: where the rule's block starts in this file):\n"]
    out += [f"#   {a:<{o}}  {b:<{n}}  {c:<{m}}  {d:<{t}}  {e:<{p}}  {line}\n"
            for (a, b, c, d, e), line in zip(cells, ["line", *numbers], strict=True)]
    return "".join(out)
