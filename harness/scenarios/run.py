"""Running a scenario against one engine."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, Protocol

from ..client import SAMPLE_IDENTITY, Client, Identity, Response
from ..origin import Counts, OriginClient, OriginError, RecordedRequest, RuleSpec
from ..report.results import CheckResult, Outcome
from ..runtime.api import Stack
from .expectations import check_expectations
from .model import TOKEN, Exchange, Request, Scenario, Step

LOG_LINES: Final = 20
#: how long a step that stored an answer waits for the engine to finish writing it
SETTLE = 2.0


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
        except Exception as exc:  # a log we cannot read must not hide the failure
            tail = f"(logs unavailable: {exc})"
        self.details.append(f"{self.engine} log (last {LOG_LINES} lines):")
        self.details += [f"  {line}" for line in tail.splitlines() or ["(empty)"]]


def _exchange_line(exchange: Exchange, token: str) -> str:
    path = exchange.step.request.origin_path.replace(TOKEN, token) if exchange.step.request else "/"
    return (f"{exchange.response.summary()}; origin +{exchange.delta(path)} for {path}, "
            f"+{exchange.delta(None)} in all")
