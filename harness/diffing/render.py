"""``diff``'s output: a terminal table, JSON (a stable schema), Markdown for a pull-request
comment, and GitHub annotations at the NEW policy's line of each rule whose requests change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cachewright.generator.model import Policy

from ..report.github import Annotation
from ..report.github import render as github_commands
from .compare import Change, DiffResult, RequestDiff

if TYPE_CHECKING:
    from .replay import Verdict

SCHEMA = "cachewright-diff/1"
LONG = 60            # values longer than this put "→ new" on a line of its own
DETAILS_ROWS = 15    # Markdown tables longer than this are folded into <details>
SHOWN_PER_RULE = 3   # requests named in one annotation
DECISIONS = ("rule", "verdict")


def summary(result: DiffResult) -> str:
    """One line: how many requests change (and the fleet layout)."""
    changed = len(result.changed)
    head = (f"{changed} of {result.compared} requests behave differently"
            if changed else f"no request of {result.compared} behaves differently")
    layout = f"; fleet layout: {len(result.layout)} changes" if result.layout else ""
    return f"{head} between {result.old_name} and {result.new_name}{layout}"


def _engines(change: Change) -> str:
    return "" if len(change.engines) > 1 else f"({change.engines[0]} only) "


def table(result: DiffResult) -> str:
    """The terminal table: each changed request, then its fields, old → new."""
    lines = [summary(result)]
    for item in result.changed:
        lines += ["", item.shown]
        width = max(len(c.field) for c in item.changes)
        for c in item.changes:
            label = f"  {c.field:<{width}}  {_engines(c)}"
            old, new = c.narrowed()
            if len(old) + len(new) > LONG:
                lines += [f"{label}{old}", f"  {'':<{width}}  → {new}"]
            else:
                lines.append(f"{label}{old} → {new}")
    if result.layout:
        lines += ["", "fleet layout", *(f"  {line}" for line in result.layout)]
    return "\n".join(lines) + "\n"


def to_json(result: DiffResult) -> dict[str, Any]:
    """The JSON document (``schema`` names its version)."""
    return {
        "schema": SCHEMA,
        "old": result.old_name,
        "new": result.new_name,
        "compared": result.compared,
        "changed": [_request_json(item) for item in result.changed],
        "layout": list(result.layout),
    }


def _request_json(item: RequestDiff) -> dict[str, Any]:
    r = item.probe.request
    return {
        "request": {"method": r.method, "scheme": item.scheme, "host": r.host, "target": r.target,
                    "headers": [list(h) for h in r.headers], "cookies": [list(c) for c in r.cookies]},
        "shown": item.shown,
        "sources": list(item.probe.sources),
        "rule": {"old": item.rule("old"), "new": item.rule("new")},
        "changes": [{"field": c.field, "engines": list(c.engines), "old": list(c.old),
                     "new": list(c.new)} for c in item.changes],
    }


def markdown(result: DiffResult) -> str:
    """A pull-request comment: the summary, then a table (folded when long)."""
    head = f"**cachewright diff**: {_md(summary(result))}"
    rows = [f"| `{_md(item.shown)}` | {_md(c.field)} {_md(_engines(c))}| {_md(c.narrowed()[0])} | "
            f"{_md(c.narrowed()[1])} |" for item in result.changed for c in item.changes]
    rows += [f"| fleet layout | | | {_md(line)} |" for line in result.layout]
    if not rows:
        return head + "\n"
    body = ["| request | what | old | new |", "|---|---|---|---|", *rows]
    if len(rows) > DETAILS_ROWS:
        body = [f"<details><summary>{len(rows)} changes</summary>", "", *body, "", "</details>"]
    return "\n".join([head, "", *body]) + "\n"


def _md(text: str) -> str:
    """Text safe in a Markdown table cell (no pipes, no line breaks, no HTML)."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("<", "&lt;")
            .replace("\n", " "))


def rule_annotations(result: DiffResult, new_file: str) -> list[Annotation]:
    """One annotation per rule of NEW whose requests change, at its line (a warning when a
    request changes rule or is cached differently; else a notice)."""
    by_rule: dict[str, list[RequestDiff]] = {}
    for item in result.changed:
        by_rule.setdefault(item.rule("new") or item.rule("old"), []).append(item)
    out = []
    for rule, items in by_rule.items():
        level = "warning" if any(c.field in DECISIONS for i in items for c in i.changes) else "notice"
        shown = "; ".join(f"{i.shown}: {_brief(i)}" for i in items[:SHOWN_PER_RULE])
        more = f" (and {len(items) - SHOWN_PER_RULE} more)" if len(items) > SHOWN_PER_RULE else ""
        out.append(Annotation(level, f"{len(items)} request(s) of rule '{rule}' behave differently: "
                              f"{shown}{more}", new_file, rule_line(result.new, rule),
                              title=f"cachewright diff: rule '{rule}'"))
    out += [Annotation("notice", f"fleet layout: {line}", new_file, _line(result.new, "fleet"),
                       title="cachewright diff: fleet") for line in result.layout]
    return out


def _brief(item: RequestDiff) -> str:
    """A request's changes in a line: the rule and verdict with their values (the other fields
    then by name), else each field with its values, shortened."""
    decisions = [c for c in item.changes if c.field in DECISIONS]
    if decisions:
        others = [c.field for c in item.changes if c.field not in DECISIONS]
        also = f"; also {', '.join(others)}" if others else ""
        return ", ".join(f"{c.field} {' → '.join(c.narrowed())}" for c in decisions) + also
    return ", ".join(f"{c.field} {' → '.join(_short(v) for v in c.narrowed())}" for c in item.changes)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def rule_line(policy: Policy, name: str) -> int:
    """The line of rule ``name`` in ``policy`` (the rules list for the default rule or a rule
    the policy no longer has)."""
    index = next((r.index for r in policy.rules if r.name == name), None)
    return _line(policy, f"rules[{index}]" if index is not None else "rules")


def _line(policy: Policy, path: str) -> int:
    return policy.marks.get(path, (0, 0))[0]


def github(result: DiffResult, new_file: str, verdicts: list[Verdict] | None) -> str:
    """The annotations as workflow commands; an error per engine disagreeing with a prediction."""
    found = rule_annotations(result, new_file)
    found += [Annotation("error", f"{v.engine} ({v.side} policy) {v.request}: predicted "
                         f"{v.predicted}; observed {v.observed}", new_file,
                         title="cachewright diff --verify-engines")
              for v in verdicts or [] if not v.agrees]
    return github_commands(found)


def verification(verdicts: list[Verdict]) -> str:
    """The replay's verdicts for the terminal: a block per disagreement, then the totals."""
    if not verdicts:
        return "engines: nothing replayed (no changed request served by both policies on an engine both compile for)\n"
    lines = ["engines:"]
    for v in verdicts:
        if not v.agrees:
            lines += [f"  DISAGREES {v.side} {v.engine}: {v.request}",
                      f"    predicted: {v.predicted}", f"    observed:  {v.observed}"]
    bad = sum(not v.agrees for v in verdicts)
    engines = ", ".join(dict.fromkeys(v.engine for v in verdicts))
    lines.append(f"  {len(verdicts) - bad} of {len(verdicts)} replays (changed requests x old, "
                 f"new x {engines}) do what was predicted" + (f"; {bad} disagree" if bad else ""))
    return "\n".join(lines) + "\n"


def verdicts_json(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [{"request": v.request, "side": v.side, "engine": v.engine, "predicted": v.predicted,
             "observed": v.observed, "agrees": v.agrees} for v in verdicts]
