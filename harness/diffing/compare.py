"""The diff: every request of the set, over each scheme either policy answers on, whose outcome
changes between OLD and NEW on some engine, with the fields that change (old → new).

A change the engines share is listed once, for both; one that only an engine sees (its purge
reach, its own rule selection) names that engine. A fleet's layout is compared simply: tiers and
nodes added or removed, a tier's engine or routing changed (``layout``); requests are compared
as a single node of the policy answers them (``explain`` without the fleet's routing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cachewright.generator.model import Fleet, Policy

from ..selection.explain import default_scheme
from .outcome import FORWARDED, Outcome, outcomes
from .sources import Probe


@dataclass(frozen=True)
class Change:
    """One field of a request's outcome that differs, on ``engines``."""

    field: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    engines: tuple[str, ...]

    def narrowed(self) -> tuple[str, str]:
        """(old, new) as one line each, without the lines both share."""
        old = [line for line in self.old if line not in self.new]
        new = [line for line in self.new if line not in self.old]
        if not old and not new:  # the same lines in another order
            old, new = list(self.old), list(self.new)
        return " · ".join(old) or "(none)", " · ".join(new) or "(none)"


@dataclass(frozen=True)
class RequestDiff:
    """A request whose outcome changes, and how."""

    probe: Probe
    scheme: str
    changes: tuple[Change, ...]
    old: tuple[Outcome, ...]
    new: tuple[Outcome, ...]

    @property
    def shown(self) -> str:
        """``GET https://host/path [Cookie: a=1]``: the request as a person reads it."""
        r = self.probe.request
        extra = [f"{n}: {v}" for n, v in r.headers] + ([f"Cookie: {r.cookie_header}"]
                                                        if r.cookie_header else [])
        more = f" [{'; '.join(extra)}]" if extra else ""
        return f"{r.method} {self.scheme}://{r.host}{r.target}{more}"

    def rule(self, which: str) -> str:
        """The rule the old or new policy selects (empty when none: a guard answered)."""
        return next((r for o in (self.old if which == "old" else self.new) if (r := o.get("rule"))), "")


@dataclass(frozen=True)
class DiffResult:
    """Everything ``diff`` found."""

    old_name: str
    new_name: str
    old: Policy
    new: Policy
    compared: int
    changed: tuple[RequestDiff, ...]
    #: a fleet's layout changes, one line each (empty: none, or no fleet)
    layout: tuple[str, ...]

    @property
    def any(self) -> bool:
        return bool(self.changed or self.layout)


def diff(old: Policy, new: Policy, probes: Sequence[Probe], names: tuple[str, str]) -> DiffResult:
    """Compare what ``old`` and ``new`` do with every probe, on each scheme either defaults to."""
    schemes = tuple(dict.fromkeys((default_scheme(old), default_scheme(new))))
    changed = []
    for probe in probes:
        for scheme in schemes:
            before = outcomes(old, probe.request, scheme)
            after = outcomes(new, probe.request, scheme)
            changes = compare(before, after)
            if changes:
                changed.append(RequestDiff(probe, scheme, changes, before, after))
    return DiffResult(names[0], names[1], old, new, len(probes) * len(schemes), tuple(changed),
                      layout(old.fleet, new.fleet))


def compare(old: Sequence[Outcome], new: Sequence[Outcome]) -> tuple[Change, ...]:
    """The fields that differ, per engine, merged where the engines agree on the change."""
    merged: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for before, after in zip(old, new, strict=True):
        a, b = dict(before.fields), dict(after.fields)
        for name in dict.fromkeys([*a, *b]):
            if name in FORWARDED and (name not in a or name not in b):
                continue
            if a.get(name, ()) != b.get(name, ()):
                merged.setdefault((name, a.get(name, ()), b.get(name, ())), []).append(before.engine)
    return tuple(Change(f, o, n, tuple(e)) for (f, o, n), e in merged.items())


def layout(old: Fleet | None, new: Fleet | None) -> tuple[str, ...]:
    """A fleet's layout changes: tiers and nodes added or removed, engine or routing changed."""
    if old is None and new is None:
        return ()
    if old is None or new is None:
        return ("fleet: section added" if old is None else "fleet: section removed",)
    before = {t.name: t for t in old.tiers}
    after = {t.name: t for t in new.tiers}
    out = [f"tier {n}: added" for n in after if n not in before]
    out += [f"tier {n}: removed" for n in before if n not in after]
    for name in (n for n in after if n in before):
        was, now = before[name], after[name]
        out += [f"tier {name}: {what} {getattr(was, what)} → {getattr(now, what)}"
                for what in ("engine", "routing") if getattr(was, what) != getattr(now, what)]
        nodes_was = {n.name: n.address for n in was.nodes}
        nodes_now = {n.name: n.address for n in now.nodes}
        out += [f"tier {name}: node {n} ({a}) added" for n, a in nodes_now.items() if n not in nodes_was]
        out += [f"tier {name}: node {n} ({a}) removed" for n, a in nodes_was.items() if n not in nodes_now]
        out += [f"tier {name}: node {n} address {nodes_was[n]} → {a}" for n, a in nodes_now.items()
                if n in nodes_was and nodes_was[n] != a]
    return tuple(out)
