"""Reading a scenario file: validation, the checks across fields, the records it becomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from cachewright.generator.errors import PolicyError, Problem
from cachewright.generator.spec import MISSING, Reader
from cachewright.generator.yamlnode import Document, compose

from .language import SCENARIO_FILE
from .model import TOKEN, CookieExpectations, Expect, HeaderExpectations, OriginRule, Received, Request, Scenario, Step

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
_REQUEST_KEYS: Final = ("method", "path", "headers", "cookies", "scheme", "host", "body", "from",
                        "expect")


class ScenarioError(PolicyError):
    """A scenario file that cannot be used; carries every problem found, sorted by position."""

    def render(self) -> str:
        count = len(self.problems)
        return f"{self}\n{count} {'error' if count == 1 else 'errors'} in scenario file"


def load_scenarios(path: str | Path) -> tuple[Scenario, ...]:
    """Read and validate the scenario file at ``path``; raises ScenarioError (a PolicyError)
    listing every problem as ``file:line:col: path: message``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"cannot read scenarios: {exc.strerror}")]) \
            from None
    return loads_scenarios(data, str(path))


def loads_scenarios(data: bytes | str, filename: str = "<scenarios>") -> tuple[Scenario, ...]:
    """Validate scenario text; ``filename`` is used in messages and in each ``Scenario.source``."""
    reader = Reader(filename)
    raw = SCENARIO_FILE.read(reader, compose(data, filename, SCENARIO_DOCUMENT), "")
    if not reader.problems and raw is not MISSING:
        _cross_checks(raw["scenarios"], reader)
    if reader.problems or raw is MISSING:
        raise ScenarioError(reader.problems)
    return tuple(_scenario(i, item, reader) for i, item in enumerate(raw["scenarios"]))


def _token_hint(text: str, line: int) -> str:
    """A hint for the likeliest mistake: an unquoted ``{run}`` inside a ``{...}`` or ``[...]``."""
    lines = text.splitlines()
    nearby = lines[max(line - 2, 0):line]
    if any(TOKEN in candidate for candidate in nearby):
        return f' (inside {{...}} or [...], quote a value containing {TOKEN}: "/p/{TOKEN}")'
    return ""


#: read with PyYAML's own loader, whose messages the scenario format's docs and tests quote
SCENARIO_DOCUMENT: Final = Document(
    "scenario file", MAX_FILE_BYTES, "4 MiB",
    "the scenario file is empty (expected a mapping with scenarios: [...])", ScenarioError,
    _token_hint, yaml.SafeLoader)


def _cross_checks(scenarios: list[dict[str, Any]], reader: Reader) -> None:
    """Problems that involve more than one field (run once every field is valid)."""
    seen: dict[str, str] = {}
    for i, scenario in enumerate(scenarios):
        where = f"scenarios[{i}]"
        _unique(reader, f"{where}.name", f"scenario '{scenario['name']}'", seen, where)
        for j, rule in enumerate(scenario["origin"]):
            _check_origin_rule(reader, f"{where}.origin[{j}]", rule)
        _check_steps(reader, f"{where}.steps", scenario["steps"])


def _problem(reader: Reader, path: str, message: str) -> None:
    reader.problem(None, path, message)


def _unique(reader: Reader, path: str, what: str, seen: dict[str, str], here: str) -> None:
    """Record ``what`` as defined at ``here``, or report where it already was."""
    if what in seen:
        _problem(reader, path, f"{what} is already defined ({seen[what]})")
    else:
        seen[what] = here


def _check_origin_rule(reader: Reader, path: str, rule: dict[str, Any]) -> None:
    if (rule["path"] is None) == (rule["pattern"] is None):
        _problem(reader, path, "needs exactly one of path and pattern")
    if rule["failure"] == "error" and rule["status"] is not None and rule["status"] < 500:
        _problem(reader, f"{path}.status", f'{rule["status"]} with failure "error" (expected a 5xx status)')
    if rule["body"] == "filler" and rule["body_size"] is None:
        _problem(reader, f"{path}.body", 'body "filler" needs body_size')


def _check_steps(reader: Reader, path: str, steps: list[dict[str, Any]]) -> None:
    names: dict[str, str] = {}
    requests: list[str] = []
    for j, step in enumerate(steps):
        where = f"{path}[{j}]"
        if step["name"] is not None:
            _unique(reader, f"{where}.name", f"step '{step['name']}'", names, f"steps[{j}]")
        if step["wait"] is not None:
            _check_wait(reader, where, step)
            continue
        if step["path"] is None:
            _problem(reader, where, "a step needs either path (a request) or wait (a pause)")
        if step["cookies"] and any(k.lower() == "cookie" for k, _ in step["headers"]):
            _problem(reader, f"{where}.cookies", "give cookies or a Cookie header, not both")
        _check_references(reader, f"{where}.expect", step["expect"], requests)
        if step["name"] is not None:
            requests.append(step["name"])


def _check_wait(reader: Reader, where: str, step: dict[str, Any]) -> None:
    extra = [key for key in _REQUEST_KEYS if step[key] not in (None, ())]
    if extra:
        _problem(reader, f"{where}.wait", f"a wait step takes no request fields (found: {', '.join(extra)})")


def _check_references(reader: Reader, path: str, expect: dict[str, Any] | None,
                      named: Sequence[str]) -> None:
    for key in ("same_response_as", "different_response_from"):
        name = (expect or {}).get(key)
        if name is not None and name not in named:
            earlier = ", ".join(named) or "none"
            _problem(reader, f"{path}.{key}",
                     f"'{name}' is not the name of an earlier request step (earlier: {earlier})")


def _scenario(index: int, raw: dict[str, Any], reader: Reader) -> Scenario:
    line, _ = reader.position(None, f"scenarios[{index}]")
    steps = tuple(_step(j, s) for j, s in enumerate(raw["steps"]))
    origin = tuple(OriginRule(**{**r, "set_cookie": tuple(r["set_cookie"]),
                                 "surrogate_keys": tuple(r["surrogate_keys"])}) for r in raw["origin"])
    return Scenario(raw["name"], raw["description"], tuple(raw["engines"]), tuple(raw["tags"]),
                    origin, steps, f"{reader.file}:{line}")


def _step(index: int, raw: dict[str, Any]) -> Step:
    if raw["wait"] is not None:
        return Step(index, raw["name"], wait=raw["wait"])
    request = Request(raw["method"] or "GET", raw["path"], tuple(raw["headers"]), tuple(raw["cookies"]),
                      raw["scheme"] or "http", raw["host"], raw["body"],
                      raw["from"] and raw["from"].strip("[]"))
    return Step(index, raw["name"], request, _expect(raw["expect"] or {}))


def _expect(raw: Mapping[str, Any]) -> Expect:
    if not raw:
        return Expect()
    received = raw["origin_received"]
    return Expect(tuple(raw["status"]), tuple(raw["cache"]), raw["rule"], raw["origin_delta"],
                  raw["origin_total_delta"], raw["same_response_as"], raw["different_response_from"],
                  _header_expectations(raw["headers"]),
                  None if received is None else Received(
                      _header_expectations(received["headers"]),
                      _cookie_expectations(received["cookies"])))


def _header_expectations(raw: Mapping[str, Any] | None) -> HeaderExpectations:
    if not raw:
        return HeaderExpectations()
    return HeaderExpectations(tuple(raw["present"]), tuple(raw["absent"]), tuple(raw["equal"]),
                              tuple(raw["contains"]))


def _cookie_expectations(raw: Mapping[str, Any] | None) -> CookieExpectations:
    if not raw:
        return CookieExpectations()
    return CookieExpectations(tuple(raw["present"]), tuple(raw["absent"]), tuple(raw["equal"]))
