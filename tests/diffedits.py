"""Edited copies of a policy for the ``diff`` tests, made programmatically (load the YAML, edit
one thing, dump), and what each edit must change: the oracle the diff is held to.

The oracle is independent of ``diff``'s outcome fields: it names the requests whose selected rule
is the edited one (or whose selected rule changes), by ``select_rule`` and the checks' own
``stored_when_fresh``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cachewright.generator.errors import CachewrightError
from cachewright.generator.load import load, loads
from cachewright.generator.model import Policy
from cachewright.harness.checks.rules import stored_when_fresh
from cachewright.harness.diffing.compare import DiffResult, diff
from cachewright.harness.diffing.sources import Probe, derived, request_set
from cachewright.harness.runtime.prepare import request_host
from cachewright.harness.selection import Request, probe_for, select_rule

REPO = Path(__file__).resolve().parents[1]
SINGLE_NODE = ("static-site", "shop", "api", "wordpress")
KINDS = ("ttl", "move", "key-cookie", "delete")
KEY_COOKIE = "cwkey"

Raw = dict[str, Any]


def example(name: str) -> Path:
    return REPO / "examples" / name / "policy.yaml"


@dataclass(frozen=True)
class Edit:
    """One planted change: its kind (``none``: a plain load-and-dump copy), the rule it is
    about, and (for a move) the rule it now precedes."""

    kind: str
    rule: str
    above: str = ""

    def apply(self, raw: Raw) -> Raw:
        out = copy.deepcopy(raw)
        rules: list[Raw] = out["rules"]
        if self.kind == "none":
            return out
        index = next(i for i, r in enumerate(rules) if r["name"] == self.rule)
        if self.kind == "ttl":
            rules[index]["ttl"] = "17m" if rules[index].get("ttl") != "17m" else "19m"
        elif self.kind == "key-cookie":
            key = rules[index].setdefault("key", {})
            key["cookies"] = [*key.get("cookies", []), KEY_COOKIE]
            rules[index].pop("strip_cookies", None)  # a rule keyed on a cookie keeps cookies
        elif self.kind == "delete":
            del rules[index]
        else:
            moved = rules.pop(index)
            rules.insert(next(i for i, r in enumerate(rules) if r["name"] == self.above), moved)
        return out


def write_edited(source: Path, edit: Edit, folder: Path) -> Path:
    """``source`` with ``edit`` applied, dumped as a new file in ``folder``."""
    raw = yaml.safe_load(source.read_text())
    target = folder / f"{source.parent.name}-{edit.kind}-{edit.rule}.yaml"
    target.write_text(yaml.safe_dump(edit.apply(raw), sort_keys=False))
    return target


def candidates(source: Path, kind: str) -> list[Edit]:
    """Every edit of ``kind`` to the policy at ``source`` that plants a change (a reachable
    rule; for a TTL or key cookie, a cached rule; for a move, a rule moved above an earlier one)
    and leaves a valid policy (the loader refuses a rule the move shadows)."""
    raw = yaml.safe_load(source.read_text())
    return [e for e in _edits(load(source), kind) if _valid(yaml.safe_dump(e.apply(raw)))]


def _valid(text: str) -> bool:
    try:
        loads(text)
    except CachewrightError:
        return False
    return True


def _edits(policy: Policy, kind: str) -> list[Edit]:
    host = request_host(policy)
    reachable = [r for r in policy.rules if probe_for(policy, r, tag="cwx", host=host) is not None]
    if kind == "move":
        return [Edit("move", later.name, first.name) for i, first in enumerate(policy.rules)
                for later in policy.rules[i + 1:] if later in reachable and first in reachable]
    cached = [r for r in reachable if r.cache]
    return [Edit(kind, r.name) for r in (reachable if kind == "delete" else cached)]


def diffed(old_path: Path, new_path: Path) -> tuple[DiffResult, tuple[Probe, ...]]:
    old, new = load(old_path), load(new_path)
    probes = request_set(derived(old, "old"), derived(new, "new"))
    return diff(old, new, probes, (str(old_path), str(new_path))), probes


def expected(edit: Edit, old: Policy, new: Policy, probes: tuple[Probe, ...]) -> set[Request]:
    """The requests ``edit`` must change (by the oracle), among ``probes``."""
    judge = _JUDGES[edit.kind]
    return {p.request for p in probes if judge(edit, old, new, p.request)}


def _ttl(edit: Edit, old: Policy, new: Policy, r: Request) -> bool:
    rule = select_rule(old, r)
    return rule.name == edit.rule and stored_when_fresh(old, rule, r)


def _keyed(edit: Edit, old: Policy, new: Policy, r: Request) -> bool:
    return select_rule(old, r).name == edit.rule


def _rule_changes(edit: Edit, old: Policy, new: Policy, r: Request) -> bool:
    return select_rule(old, r).name != select_rule(new, r).name


_JUDGES: dict[str, Callable[[Edit, Policy, Policy, Request], bool]] = {
    "ttl": _ttl, "key-cookie": _keyed, "delete": _rule_changes, "move": _rule_changes}


def random_edit(rng: random.Random) -> tuple[str, Edit] | None:
    """A random example and a random edit planting a change in it (None: the draw has none)."""
    name = rng.choice(SINGLE_NODE)
    kind = rng.choice(KINDS)
    found = candidates(example(name), kind)
    return (name, rng.choice(found)) if found else None


def loads_ok(path: Path) -> bool:
    return _valid(path.read_text())
