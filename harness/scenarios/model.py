"""The frozen records a scenario file becomes, and the record of one request step as it happened."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final, cast
from urllib.parse import urlsplit

from ..client import Response
from ..origin import Counts, RecordedRequest, RuleSpec

TOKEN: Final = "{run}"


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
