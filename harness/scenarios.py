"""User-written scenarios: YAML request sequences with expectations, run against one engine at a time.

A scenario file (format in ``docs/scenarios.md``) is validated with the policy language's schema
machinery (``generator.spec``), so its errors read like a policy's —
``scenarios.yaml:12:9: scenarios[0].steps[1].expect.cache: "hitt" is not one of: hit, miss,
bypass, stale`` — and is frozen into ``Scenario`` records once. ``run_scenario`` then sends each
step's request through one engine, compares the answer and the origin's request counts with the
step's expectations, and returns one ``CheckResult`` whose details hold every exchange.

``{run}`` in a path, pattern, header value, cookie value or body is replaced by a token unique to
one run of one scenario on one engine, so that a scenario starts from an empty cache however
often it runs against the same stack.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Protocol, cast
from urllib.parse import urlsplit

import yaml

from cachewright.generator.errors import PolicyError, Problem
from cachewright.generator.language import ADDRESS, COOKIE_NAME, ENGINES, HEADER_NAME, HOSTNAME, NAME
from cachewright.generator.load import reader_problem
from cachewright.generator.spec import MISSING, Duration, Enum, Field, Int, ListOf, MapOf, Obj, Reader, Str

from .client import SAMPLE_IDENTITY, Client, Identity, Response
from .origin_client import Counts, OriginClient, OriginError, RecordedRequest, RuleSpec
from .results import CheckResult, Outcome
from .runtime.api import Stack

TOKEN: Final = "{run}"
CACHE_OUTCOMES: Final = ("hit", "miss", "bypass", "stale")
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
LOG_LINES: Final = 20


class ScenarioError(PolicyError):
    """A scenario file that cannot be used; carries every problem found, sorted by position."""

    def render(self) -> str:
        count = len(self.problems)
        return f"{self}\n{count} {'error' if count == 1 else 'errors'} in scenario file"


# --------------------------------------------------------------------------- the format


def _check_target(value: str) -> str | None:
    if value == "*" or value.startswith(("/", "http://", "https://")):
        return None
    return f'"{value[:60]}" is not a request target (expected /path?query, http://host/path or *)'


#: how long a step that stored an answer waits for the engine to finish writing it
SETTLE = 2.0
TARGET = Str(r"\S+", "a request target without spaces, such as /products/{run}?page=2", 8192,
             _check_target)
ORIGIN_PATH = Str(r"[/*]\S*", "a path starting with /, such as /products/{run}", 2048)
GLOB = Str(r"[/*]\S*", "a glob on the path, such as /api/* (* also matches /)", 2048)
VALUE = Str(None, "a header value", 4096)
TEXT = Str(None, "a single line of text", 65536)
HOST = Str(HOSTNAME.replace(r"(?:\*\.)?", "") + r"(?::[0-9]{1,5})?",
           "a lowercase host name, optionally with :port", 260)
METHOD = Str(r"[A-Z][A-Z0-9_-]{0,31}", "an uppercase method name such as GET or PURGE", 32)
TAG = Str(r"[a-z0-9][a-z0-9_.-]{0,62}", "a lowercase tag such as smoke", 63)
SURROGATE_KEY = Str(r"[!-~]+", "a surrogate key without spaces", 256)

ORIGIN_RULE = Obj("origin rule", {
    "path": Field(ORIGIN_PATH, "Exact path the rule answers (query ignored).", None),
    "pattern": Field(GLOB, "Glob the rule answers; the last pattern registered wins.", None),
    "status": Field(Int(200, 599), "Response status (default 200; 500 with failure: error).", None),
    "cache_control": Field(VALUE, "Cache-Control of the response.", None),
    "expires_in": Field(Duration(), "Expires this long after the response.", None),
    "set_cookie": Field(ListOf(VALUE, unique=False, one_or_many=True), "Set-Cookie value(s).", ()),
    "vary": Field(VALUE, "Vary of the response.", None),
    "etag": Field(VALUE, "ETag (quoted automatically); conditional requests get 304.", None),
    "last_modified": Field(VALUE, "Last-Modified HTTP-date.", None),
    "body": Field(Enum(("echo", "filler")), "echo (JSON of the request) or filler bytes.", None),
    "body_size": Field(Int(0, 256 * 1024 * 1024), "Body size in bytes (needed for filler).", None),
    "delay": Field(Duration(maximum=3600), "Wait this long before answering.", None),
    "failure": Field(Enum(("error", "refuse", "close_mid_body")), "Fail instead of answering.",
                     None),
    "headers": Field(MapOf(HEADER_NAME, VALUE), "Extra response headers.", ()),
    "surrogate_keys": Field(ListOf(SURROGATE_KEY, one_or_many=True), "Surrogate-Key values.", ()),
}, "How the sample origin answers one path or pattern during the scenario.")

HEADER_EXPECTATIONS = Obj("header expectations", {
    "present": Field(ListOf(HEADER_NAME), "Headers the response must have.", ()),
    "absent": Field(ListOf(HEADER_NAME), "Headers the response must not have.", ()),
    "equal": Field(MapOf(HEADER_NAME, VALUE), "Headers that must have exactly this value.", ()),
    "contains": Field(MapOf(HEADER_NAME, ListOf(VALUE, one_or_many=True)),
                      "Headers whose value must contain this text (or each text of a list).", ()),
}, "Expectations on response headers.")

COOKIE_EXPECTATIONS = Obj("cookie expectations", {
    "present": Field(ListOf(COOKIE_NAME), "Cookies the origin must have received.", ()),
    "absent": Field(ListOf(COOKIE_NAME), "Cookies the origin must not have received.", ()),
    "equal": Field(MapOf(COOKIE_NAME, VALUE), "Cookies it must have received with this value.", ()),
}, "Expectations on the cookies the origin received.")

RECEIVED = Obj("origin received", {
    "headers": Field(HEADER_EXPECTATIONS, "Headers of the request the origin received.", None),
    "cookies": Field(COOKIE_EXPECTATIONS, "Cookies of the request the origin received.", None),
}, "What the sample origin received for this step's request (it must have received one).")

EXPECT = Obj("expectations", {
    "status": Field(ListOf(Int(100, 599), one_or_many=True), "Response status (or one of a list).",
                    ()),
    "cache": Field(ListOf(Enum(CACHE_OUTCOMES), one_or_many=True),
                   "Cache-Status outcome: hit, miss, bypass, stale (or one of a list).", ()),
    "rule": Field(NAME, "The rule named in Cache-Status (detail=).", None),
    "origin_delta": Field(Int(0, 100000), "Requests the origin received for this step's path.",
                          None),
    "origin_total_delta": Field(Int(0, 100000), "Requests the origin received in all.", None),
    "same_response_as": Field(NAME, "An earlier step whose response this is (same response "
                              "identity: X-Response-Id with the sample origin).", None),
    "different_response_from": Field(NAME, "An earlier step whose response this is not.", None),
    "headers": Field(HEADER_EXPECTATIONS, "Response header expectations.", None),
    "origin_received": Field(RECEIVED, "What the sample origin received for this step.", None),
}, "What the response and the origin's counts must show.")

STEP = Obj("step", {
    "name": Field(NAME, "Step name, for messages and same_response_as.", None),
    "wait": Field(Duration(maximum=600), "Pause this long (a wait step has nothing else).", None),
    "method": Field(METHOD, "Request method (default GET).", None),
    "path": Field(TARGET, "Raw request target, sent as written.", None),
    "headers": Field(MapOf(HEADER_NAME, VALUE), "Request headers.", ()),
    "cookies": Field(MapOf(COOKIE_NAME, VALUE), "Cookies, sent as one Cookie header.", ()),
    "scheme": Field(Enum(("http", "https")), "http (default) or https.", None),
    "host": Field(HOST, "Host header (default: the policy's first listen host).", None),
    "body": Field(TEXT, "Request body.", None),
    "from": Field(ADDRESS, "Source address to send from (e.g. 127.0.0.2).", None),
    "expect": Field(EXPECT, "Expectations.", None),
}, "One request with its expectations, or a wait.")

SCENARIO = Obj("scenario", {
    "name": Field(NAME, "Unique scenario name; the check id is scenario:<name>."),
    "description": Field(Str(None, "a one-line description", 500), "What the scenario proves.", ""),
    "engines": Field(ListOf(Enum(ENGINES), min_items=1), "Engines it runs on (default: all).",
                     ENGINES),
    "tags": Field(ListOf(TAG), "Tags added to the results.", ()),
    "origin": Field(ListOf(ORIGIN_RULE, unique=False), "Sample-origin rules for the scenario.", ()),
    "steps": Field(ListOf(STEP, min_items=1, unique=False), "Requests and waits, in order."),
}, "A named sequence of requests with expectations.")

SCENARIO_FILE = Obj("scenario file", {
    "version": Field(Int(1, 1), "Scenario format version; must be 1.", 1),
    "scenarios": Field(ListOf(SCENARIO, min_items=1, unique=False), "The scenarios."),
}, "A cachewright scenario file.")

_REQUEST_KEYS: Final = ("method", "path", "headers", "cookies", "scheme", "host", "body", "from",
                        "expect")


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class OriginRule:
    """One rule for the sample origin (``RuleSpec`` fields; ``{run}`` substituted when applied)."""

    path: str | None = None
    pattern: str | None = None
    status: int | None = None
    cache_control: str | None = None
    expires_in: int | None = None
    set_cookie: tuple[str, ...] = ()
    vary: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body: str | None = None
    body_size: int | None = None
    delay: int | None = None
    failure: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    surrogate_keys: tuple[str, ...] = ()

    def spec(self, token: str) -> RuleSpec:
        """The control port's rule, with ``{run}`` replaced by ``token``."""
        given = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "headers"}
        spec = {k: _substituted(v, token) for k, v in given.items() if v is not None and v != ()}
        if self.headers:
            spec["headers"] = {name: value.replace(TOKEN, token) for name, value in self.headers}
        return cast(RuleSpec, spec)


def _substituted(value: object, token: str) -> object:
    """``value`` with ``{run}`` replaced in it (or in each string of a tuple, as a list)."""
    if isinstance(value, tuple):
        return [_substituted(item, token) for item in value]
    return value.replace(TOKEN, token) if isinstance(value, str) else value


@dataclass(frozen=True)
class HeaderExpectations:
    """Expectations on response headers (names compared case-insensitively)."""

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    equal: tuple[tuple[str, str], ...] = ()
    contains: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class CookieExpectations:
    """Expectations on the cookies the origin received (names compared exactly)."""

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    equal: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Received:
    """What the sample origin must have received for a step's request."""

    headers: HeaderExpectations = field(default_factory=HeaderExpectations)
    cookies: CookieExpectations = field(default_factory=CookieExpectations)


@dataclass(frozen=True)
class Expect:
    """What one step's response and the origin's counts must show; empty means anything goes."""

    status: tuple[int, ...] = ()
    cache: tuple[str, ...] = ()
    rule: str | None = None
    origin_delta: int | None = None
    origin_total_delta: int | None = None
    same_response_as: str | None = None
    different_response_from: str | None = None
    headers: HeaderExpectations = field(default_factory=HeaderExpectations)
    origin_received: Received | None = None

    @property
    def needs_origin(self) -> bool:
        """Whether judging it needs the sample origin's control port (counts, its request log)."""
        return (self.origin_delta is not None or self.origin_total_delta is not None
                or self.origin_received is not None)


@dataclass(frozen=True)
class Request:
    """One request as written (``{run}`` not yet substituted); ``host`` None: the stack's host."""

    method: str = "GET"
    target: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[tuple[str, str], ...] = ()
    scheme: str = "http"
    host: str | None = None
    body: str | None = None
    source: str | None = None

    @property
    def origin_path(self) -> str:
        """The path the origin counts this request under (target without scheme, host, query)."""
        return urlsplit(self.target).path or "/"


@dataclass(frozen=True)
class Step:
    """A request with expectations, or a wait (exactly one of ``request`` and ``wait``)."""

    index: int
    name: str | None = None
    request: Request | None = None
    expect: Expect = field(default_factory=Expect)
    wait: int | None = None

    @property
    def label(self) -> str:
        """How messages name the step: ``step 2 'again'`` (1-based)."""
        return f"step {self.index + 1}" + (f" '{self.name}'" if self.name else "")


@dataclass(frozen=True)
class Scenario:
    """One scenario, validated; ``source`` is ``file:line`` of its entry."""

    name: str
    description: str
    engines: tuple[str, ...]
    tags: tuple[str, ...]
    origin: tuple[OriginRule, ...]
    steps: tuple[Step, ...]
    source: str

    @property
    def check_id(self) -> str:
        """The id its results carry."""
        return f"scenario:{self.name}"

    @property
    def needs_origin(self) -> bool:
        """Whether it programs the sample origin, counts its requests or reads what it received
        (it cannot run against the user's own app)."""
        return bool(self.origin) or any(step.expect.needs_origin for step in self.steps)


# --------------------------------------------------------------------------- loading


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
    raw = SCENARIO_FILE.read(reader, _compose(data, filename), "")
    if not reader.problems and raw is not MISSING:
        _cross_checks(raw["scenarios"], reader)
    if reader.problems or raw is MISSING:
        raise ScenarioError(reader.problems)
    return tuple(_scenario(i, item, reader) for i, item in enumerate(raw["scenarios"]))


def _compose(data: bytes | str, filename: str) -> yaml.Node:
    def fail(line: int, col: int, message: str) -> ScenarioError:
        return ScenarioError([Problem(filename, line, col, "", message)])

    if len(data) > MAX_FILE_BYTES:
        raise fail(1, 1, "scenario file is larger than 4 MiB")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise fail(1, 1, f"not UTF-8 text ({exc.reason})") from None
    except yaml.reader.ReaderError as exc:  # a control character: positioned like the policy's
        raise ScenarioError([reader_problem(text, exc, filename, yaml.SafeLoader)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        hint = _token_hint(text, line) if isinstance(text, str) else ""
        raise fail(line, col, f"invalid YAML: {exc.problem or 'invalid YAML'}{hint}") from None
    except yaml.YAMLError as exc:
        raise fail(1, 1, f"invalid YAML: {exc}") from None
    if node is None:
        raise fail(1, 1, "the scenario file is empty (expected a mapping with scenarios: [...])")
    return node


def _token_hint(text: str, line: int) -> str:
    """A hint for the likeliest mistake: an unquoted ``{run}`` inside a ``{...}`` or ``[...]``."""
    lines = text.splitlines()
    nearby = lines[max(line - 2, 0):line]
    if any(TOKEN in candidate for candidate in nearby):
        return f' (inside {{...}} or [...], quote a value containing {TOKEN}: "/p/{TOKEN}")'
    return ""


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


# --------------------------------------------------------------------------- running


class EngineClient(Protocol):
    """Sends requests to one engine (``harness.client.Client`` is one)."""

    def request(self, method: str, target: str, headers: dict[str, str] | None = None, *,
                scheme: str = "http", body: bytes | None = None, source: str | None = None,
                host: str | None = None, timeout: float = ...) -> Response:
        """Send one request with the raw ``target``."""
        ...


class OriginControl(Protocol):
    """What the runner needs of the origin's control port (``OriginClient`` is one)."""

    def add_rules(self, rules: Sequence[RuleSpec]) -> None:
        """Add or replace rules."""
        ...

    def delete_rules(self, *, path: str | None = None, pattern: str | None = None) -> int:
        """Delete one rule."""
        ...

    def counts(self) -> Counts:
        """All request counters."""
        ...

    def requests(self, *, path: str | None = None, method: str | None = None,
                 since: int | None = None, limit: int | None = None) -> list[RecordedRequest]:
        """The request log."""
        ...


class ScenarioContext(Protocol):
    """Where scenarios run: a client per engine, the origin's control port, the engines' logs."""

    @property
    def origin(self) -> OriginControl:
        """The sample origin's control client."""
        ...

    def client(self, engine: str) -> EngineClient:
        """A client for ``engine`` whose default Host is the policy's request host."""
        ...

    def logs(self, engine: str, lines: int = 40) -> str:
        """The last ``lines`` lines of the engine's logs."""
        ...

    def stored_count(self, engine: str, path: str) -> int:
        """How many objects ``engine`` has stored for request path ``path`` (its own record)."""
        ...


class StackContext:
    """A ``ScenarioContext`` over a running ``Stack``; ``host`` is ``prepare.request_host(policy)``.

    Safe to share between threads running different engines: each thread gets its own
    control-port client.
    """

    def __init__(self, stack: Stack, host: str, cache_name: str = "cachewright") -> None:
        self.stack = stack
        self.host = host
        self.cache_name = cache_name
        self._local = threading.local()

    @property
    def origin(self) -> OriginClient:
        """This thread's client for the origin's control port."""
        client: OriginClient | None = getattr(self._local, "origin", None)
        if client is None:
            client = self._local.origin = OriginClient(self.stack.origin.control_url)
        return client

    def client(self, engine: str) -> Client:
        """A fresh client for ``engine``."""
        return Client(self.stack.endpoints[engine], self.host, self.stack.ca_file, cache_name=self.cache_name)

    def logs(self, engine: str, lines: int = 40) -> str:
        """The engine's log tail."""
        return self.stack.logs(engine, lines)

    def stored_count(self, engine: str, path: str) -> int:
        """Objects the engine's record holds for ``path``."""
        return len(self.stack.stored(engine, path))


def new_token() -> str:
    """A fresh ``{run}`` token: 12 hex digits, safe in paths, headers and cookies."""
    return uuid.uuid4().hex[:12]


def run_scenarios(scenarios: Iterable[Scenario], ctx: ScenarioContext,
                  engines: Sequence[str]) -> Iterator[CheckResult]:
    """Every scenario on each engine of ``engines`` it runs on (``engines:``), one at a time."""
    for scenario in scenarios:
        for engine in engines:
            if engine in scenario.engines:
                yield run_scenario(scenario, ctx, engine)


def run_scenario(scenario: Scenario, ctx: ScenarioContext, engine: str,
                 token: str | None = None, identity: Identity = SAMPLE_IDENTITY) -> CheckResult:
    """Run ``scenario`` against ``engine``; the result's details explain a failure.
    ``identity`` is what ``same_response_as`` compares (the sample origin's X-Response-Id)."""
    if engine not in scenario.engines:
        return _result(scenario, engine, "skipped", f"runs on {', '.join(scenario.engines)} only")
    started = time.monotonic()
    run = _Run(scenario, ctx, engine, token or new_token(), identity)
    failure = run.execute()
    outcome: Outcome = "passed" if failure is None else "failed"
    details = tuple(run.details) if failure is not None else ()
    return _result(scenario, engine, outcome, failure or "", details, time.monotonic() - started)


def _result(scenario: Scenario, engine: str, outcome: Outcome, message: str,
            details: tuple[str, ...] = (), duration: float = 0.0) -> CheckResult:
    return CheckResult(scenario.check_id, scenario.description or scenario.name, engine, outcome,
                       message, details, duration, ("scenario", *scenario.tags))


@dataclass(frozen=True)
class Exchange:
    """One request step as it happened."""

    step: Step
    response: Response
    before: Counts
    after: Counts
    #: the request the origin received for the step's path (read when ``origin_received`` asks)
    received: RecordedRequest | None = None

    def delta(self, path: str | None) -> int:
        """How many requests the origin received meanwhile (for ``path``, or in all)."""
        if path is None:
            return self.after.total - self.before.total
        return self.after.path(path) - self.before.path(path)


class _Run:
    """One scenario on one engine: origin set-up, the steps, the record of what happened."""

    def __init__(self, scenario: Scenario, ctx: ScenarioContext, engine: str, token: str,
                 identity: Identity) -> None:
        self.scenario = scenario
        self.ctx = ctx
        self.engine = engine
        self.token = token
        self.identity = identity
        self.exchanges: dict[str, Exchange] = {}
        self.details: list[str] = [f"scenario {scenario.name} ({scenario.source}) on {engine}, "
                                   f"{TOKEN} = {token}"]

    def execute(self) -> str | None:
        """Run every step; the first failure's message, or None when all passed."""
        specs = [rule.spec(self.token) for rule in self.scenario.origin]
        try:
            self._setup(specs)
            return self._steps()
        except OriginError as exc:
            return self._fail(f"origin control port: {exc}")
        finally:
            self._teardown(specs)

    def _setup(self, specs: list[RuleSpec]) -> None:
        if specs:
            self.ctx.origin.add_rules(specs)
            self.details += [f"origin rule: {json.dumps(spec)}" for spec in specs]

    def _teardown(self, specs: list[RuleSpec]) -> None:
        for spec in specs:
            try:
                self.ctx.origin.delete_rules(path=spec.get("path"), pattern=spec.get("pattern"))
            except OriginError as exc:  # the origin may be the reason the scenario failed
                self.details.append(f"could not remove origin rule {json.dumps(spec)}: {exc}")

    def _steps(self) -> str | None:
        client = self.ctx.client(self.engine)
        for step in self.scenario.steps:
            failure = self._step(client, step)
            if failure is not None:
                return failure
        return None

    def _step(self, client: EngineClient, step: Step) -> str | None:
        if step.request is None:
            self.details.append(f"{step.label}: wait {step.wait}s")
            time.sleep(step.wait or 0)
            return None
        try:
            exchange = self._send(client, step, step.request)
        except (OSError, http.client.HTTPException) as exc:
            return self._fail(f"{step.label}: request failed: {type(exc).__name__}: {exc}", step)
        self.details.append(f"{step.label}: {_exchange_line(exchange, self.token)}")
        problems = check_expectations(exchange, self.exchanges, self.token, self.identity)
        if step.name:
            self.exchanges[step.name] = exchange
        if problems:
            return self._fail_expectations(exchange, problems)
        return None

    def _send(self, client: EngineClient, step: Step, request: Request) -> Exchange:
        sub = self._sub
        headers = {name: sub(value) for name, value in request.headers}
        if request.cookies:
            headers["Cookie"] = "; ".join(f"{k}={sub(v)}" for k, v in request.cookies)
        body = None if request.body is None else sub(request.body).encode()
        before = self.ctx.origin.counts()
        path = sub(request.origin_path)
        stored = self.ctx.stored_count(self.engine, path)
        response = client.request(request.method, sub(request.target), headers, scheme=request.scheme,
                                  body=body, source=request.source, host=request.host)
        if response.cache.outcome == "miss":
            self._settle(path, stored)
        after = self.ctx.origin.counts()
        received = None
        if step.expect.origin_received is not None and after.path(path) > before.path(path):
            received = next(iter(self.ctx.origin.requests(path=path, limit=1)), None)
        return Exchange(step, response, before, after, received)

    def _settle(self, path: str, before: int) -> None:
        """After a miss the engine says it stores, wait (at most ``SETTLE``) until its record
        holds one more object for ``path``: engines finish writing after the answer is sent,
        and the next step may expect the hit."""
        deadline = time.monotonic() + SETTLE
        while self.ctx.stored_count(self.engine, path) <= before and time.monotonic() < deadline:
            time.sleep(0.05)

    def _sub(self, text: str) -> str:
        return text.replace(TOKEN, self.token)

    def _fail_expectations(self, exchange: Exchange, problems: list[str]) -> str:
        self.details += [f"  expected {problem}" for problem in problems]
        self.details.append("  response headers:")
        self.details += [f"    {name}: {value}" for name, value in exchange.response.headers]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return self._fail(f"{exchange.step.label}: expected {problems[0]}{more}", exchange.step)

    def _fail(self, message: str, step: Step | None = None) -> str:
        if step is not None and step.request is not None:
            self._origin_view(self._sub(step.request.origin_path))
        self._log_tail()
        return message

    def _origin_view(self, path: str) -> None:
        try:
            seen = self.ctx.origin.requests(path=path, limit=5)
        except OriginError as exc:
            self.details.append(f"origin request log unavailable: {exc}")
            return
        self.details.append(f"origin received for {path}: {len(seen)} request(s) (last 5 shown)")
        self.details += [f"  #{r.seq} {r.method} {r.target} -> {r.status} ({r.outcome}) id {r.response_id}"
                         for r in seen]

    def _log_tail(self) -> None:
        try:
            tail = self.ctx.logs(self.engine, LOG_LINES)
        except Exception as exc:  # noqa: BLE001 - a log we cannot read must not hide the failure
            tail = f"(logs unavailable: {exc})"
        self.details.append(f"{self.engine} log (last {LOG_LINES} lines):")
        self.details += [f"  {line}" for line in tail.splitlines() or ["(empty)"]]


def _exchange_line(exchange: Exchange, token: str) -> str:
    path = exchange.step.request.origin_path.replace(TOKEN, token) if exchange.step.request else "/"
    return (f"{exchange.response.summary()}; origin +{exchange.delta(path)} for {path}, "
            f"+{exchange.delta(None)} in all")


# --------------------------------------------------------------------------- expectations


def check_expectations(exchange: Exchange, earlier: Mapping[str, Exchange], token: str,
                       identity: Identity = SAMPLE_IDENTITY) -> list[str]:
    """Every expectation of ``exchange``'s step the exchange does not meet, each phrased to follow
    the word "expected" (``cache hit, got miss (...)``); empty when all are met. ``identity``
    tells responses apart for ``same_response_as`` and ``different_response_from``."""
    expect = exchange.step.expect
    response = exchange.response
    problems = [_status(expect, response), _cache(expect, response), _rule(expect, response),
                *_origin(expect, exchange, token), *_identity(expect, response, earlier, identity),
                *_headers(expect.headers, response, token), *_received(exchange, token)]
    return [problem for problem in problems if problem is not None]


def _status(expect: Expect, response: Response) -> str | None:
    if not expect.status or response.status in expect.status:
        return None
    return f"status {_either(str(s) for s in expect.status)}, got {response.status}"


def _cache(expect: Expect, response: Response) -> str | None:
    outcome = response.cache.outcome
    if not expect.cache or outcome in expect.cache:
        return None
    return f"cache {_either(expect.cache)}, got {outcome} (Cache-Status: {response.header('Cache-Status')})"


def _rule(expect: Expect, response: Response) -> str | None:
    if expect.rule is None or response.cache.detail == expect.rule:
        return None
    return (f"rule {expect.rule}, got {response.cache.detail or 'none'} "
            f"(Cache-Status: {response.header('Cache-Status')})")


def _origin(expect: Expect, exchange: Exchange, token: str) -> Iterator[str]:
    request = exchange.step.request
    path = request.origin_path.replace(TOKEN, token) if request else "/"
    if expect.origin_delta is not None and exchange.delta(path) != expect.origin_delta:
        yield (f"the origin to receive {_requests(expect.origin_delta)} for {path}, "
               f"got {exchange.delta(path)}")
    total = exchange.delta(None)
    if expect.origin_total_delta is not None and total != expect.origin_total_delta:
        yield f"the origin to receive {_requests(expect.origin_total_delta)} in all, got {total}"


def _identity(expect: Expect, response: Response, earlier: Mapping[str, Exchange],
              identity: Identity) -> Iterator[str]:
    mine = identity.of(response)
    if expect.same_response_as is not None:
        theirs = earlier[expect.same_response_as].response
        if mine is None or mine != identity.of(theirs):
            yield (f"the same response as '{expect.same_response_as}' "
                   f"({identity.describe(theirs)}), got {identity.describe(response)}")
    if expect.different_response_from is not None:
        theirs = earlier[expect.different_response_from].response
        if mine is None or mine == identity.of(theirs):
            yield (f"a different response from '{expect.different_response_from}' "
                   f"({identity.describe(theirs)}), got {identity.describe(response)}")


class _Headers(Protocol):
    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        ...


def _headers(expect: HeaderExpectations, response: _Headers, token: str,
             where: str = "header") -> Iterator[str]:
    for name in expect.present:
        if response.header(name) is None:
            yield f"{where} {name} to be present, it is absent"
    for name in expect.absent:
        if response.header(name) is not None:
            yield f"{where} {name} to be absent, got {name}: {response.header(name)}"
    for name, value in expect.equal:
        wanted = value.replace(TOKEN, token)
        if response.header(name) != wanted:
            yield f"{where} {name}: {wanted}, got {_shown(name, response)}"
    for name, texts in expect.contains:
        for wanted in (text.replace(TOKEN, token) for text in texts):
            if wanted not in (response.header(name) or ""):
                yield f"{where} {name} to contain {wanted!r}, got {_shown(name, response)}"


def _shown(name: str, response: _Headers) -> str:
    value = response.header(name)
    return "no such header" if value is None else f"{name}: {value}"


def _received(exchange: Exchange, token: str) -> Iterator[str]:
    """What the origin received for the step, against ``origin_received``."""
    wanted = exchange.step.expect.origin_received
    if wanted is None:
        return
    request = exchange.step.request
    path = request.origin_path.replace(TOKEN, token) if request else "/"
    seen = exchange.received
    if seen is None:
        yield f"the origin to receive a request for {path}, it received none"
        return
    yield from _headers(wanted.headers, seen, token, "the origin to receive header")
    cookies = _cookies(seen.header_values("cookie"))
    shown = "; ".join(f"{k}={v}" for k, v in cookies.items()) or "none"
    for name in wanted.cookies.present:
        if name not in cookies:
            yield f"the origin to receive cookie {name}, it received cookies: {shown}"
    for name in wanted.cookies.absent:
        if name in cookies:
            yield f"the origin not to receive cookie {name}, it received cookies: {shown}"
    for name, value in wanted.cookies.equal:
        if cookies.get(name) != value.replace(TOKEN, token):
            yield (f"the origin to receive cookie {name}={value.replace(TOKEN, token)}, it "
                   f"received cookies: {shown}")


def _cookies(lines: Sequence[str]) -> dict[str, str]:
    """The cookies of Cookie header lines, by name (the first of a repeated name)."""
    out: dict[str, str] = {}
    for line in lines:
        for pair in line.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name not in out:
                out[name] = value
    return out


def _either(values: Iterable[str]) -> str:
    return " or ".join(values)


def _requests(count: int) -> str:
    return f"{count} request" + ("" if count == 1 else "s")
