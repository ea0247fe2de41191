"""What the rfc checks share: the timings, the helpers that send, settle and count, the
two-request reuse check (``Reuse``), and the record of one check of the family (``Spec``) with the
capability names and section prefixes the areas cite."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Unpack

from cachewright.generator.model import Rule

from ...client import Response
from ...origin import RuleSpec
from ...selection import Request
from ..base import RECORD_WAIT, Ctx, Probing
from ..rules import probe

Answer = RuleSpec
#: how long a check lets the engine write an entry it is expected NOT to store (a write that
#: comes later than this would make "not reused" pass by accident)
SETTLE = 0.6
#: a one-second lifetime has surely run out after this long
EXPIRED = 2.2
#: how long a background fetch (stale-while-revalidate) is awaited
BACKGROUND = 2.0
#: a body big enough that sending it again is unmistakable (issue 19's offload target)
BIG_BODY = 16 * 1024
#: how long a request whose origin answer starts with a 1xx is waited for
INTERIM_WAIT = 5.0
SECTION = re.compile(r"^(RFC \d+ §[0-9.]+)")
TAG = "rfc"


def section_of(description: str) -> str | None:
    """The RFC section a check's description starts with (``RFC 9111 §4.2.1``)."""
    found = SECTION.match(description)
    return found.group(1) if found else None


def http_date(offset: float = 0.0) -> str:
    """An HTTP-date ``offset`` seconds from now."""
    return email.utils.formatdate(time.time() + offset, usegmt=True)


# --------------------------------------------------------------------------- sending and counting


def send(ctx: Ctx, req: Request, headers: Mapping[str, str] | None = None, **kw: Unpack[Probing]) -> Response:
    return ctx.send(req, headers=dict(headers or {}), **kw)


def settle(ctx: Ctx, req: Request, stores: bool) -> None:
    """Give the engine the time to write ``req``'s entry: until its record shows it when it
    should store, a short while otherwise."""
    ctx.stored(req, wait=RECORD_WAIT if stores else SETTLE)


def gets(ctx: Ctx, req: Request) -> int:
    """GET requests the origin received for ``req``."""
    ctx.count(req.unit)
    return ctx.control().count(req.unit, "GET")


def await_count(ctx: Ctx, req: Request, wanted: int, wait: float = BACKGROUND) -> int:
    """The origin's count for ``req``, polled until it reaches ``wanted`` (a background fetch)."""
    deadline = time.monotonic() + wait
    while (seen := ctx.count(req.unit)) < wanted and time.monotonic() < deadline:
        ctx.sleep(0.1)
    return seen


def said(response: Response) -> str:
    """A response as evidence in a message."""
    return (f"{response.status} Cache-Status {response.cache.outcome}, Age "
            f"{response.header('Age')!s}, X-Response-Id {response.response_id!s}")


def echoed_id(response: Response) -> str | None:
    """The response id the origin wrote into the body (the stored body keeps it when a 304
    updates the headers)."""
    match = re.search(rb'"response_id": "([^"]+)"', response.body)
    return match.group(1).decode() if match else None


def program(ctx: Ctx, req: Request, answer: Answer | Callable[[], Answer]) -> None:
    ctx.program(req.unit, **(answer() if callable(answer) else answer))


# --------------------------------------------------------------------------- reused or not


@dataclass(frozen=True)
class Reuse:
    """Two requests for one URL: the origin answers ``answer`` (a dict, or a function giving
    one, for dates relative to now); after ``wait`` seconds the second request must (``reused``)
    or must not be answered with the stored response."""

    answer: Answer | Callable[[], Answer]
    reused: bool
    first: Mapping[str, str] = field(default_factory=dict)
    second: Mapping[str, str] = field(default_factory=dict)
    wait: float = 0.0

    def __call__(self, ctx: Ctx, rule: Rule) -> None:
        req = probe(ctx, rule)
        program(ctx, req, self.answer)
        first = send(ctx, req, self.first)
        settle(ctx, req, self.reused or self.wait > 0)
        ctx.sleep(self.wait)
        second = send(ctx, req, self.second)
        seen = ctx.count(req.unit) if self.reused else await_count(ctx, req, 2, SETTLE)
        evidence = f"first: {said(first)}; second: {said(second)}"
        if self.reused:
            ctx.expect(seen == 1 and second.response_id == first.response_id,
                       f"the second request was not answered with the stored response: origin saw "
                       f"{seen} requests, expected 1 ({evidence})")
        else:
            ctx.expect(seen == 2, f"the stored response was reused: origin saw {seen} requests, "
                       f"expected 2 ({evidence})")


def fresh(cache_control: str = "max-age=60", /, **answer: Unpack[RuleSpec]) -> Answer:
    return {"status": 200, "cache_control": cache_control, **answer}


# --------------------------------------------------------------------------- the family's records


@dataclass(frozen=True)
class Spec:
    """One check of the family: ``rfc.<id>``, the section it was written from, what it proves,
    how, and the capability an engine may lack for it."""

    id: str
    section: str
    says: str
    run: Callable[[Ctx, Rule], None]
    feature: str | None = None


def reuse_spec(ident: str, section: str, says: str, answer: Answer | Callable[[], Answer],
               reused: bool, feature: str | None = None, *, first: Mapping[str, str] | None = None,
               second: Mapping[str, str] | None = None, wait: float = 0.0) -> Spec:
    return Spec(ident, section, says, Reuse(answer, reused, first or {}, second or {}, wait), feature)


def make_spec(ident: str, section: str, says: str, run: Callable[..., None],
              feature: str | None = None, *args: object) -> Spec:
    return Spec(ident, section, says, partial(run, *args) if args else run, feature)


R9111, R9110, R5861, R9213 = "RFC 9111 §", "RFC 9110 §", "RFC 5861 §", "RFC 9213 §"
LM_OLD = 10 * 86400  # seconds since Last-Modified: a heuristic lifetime of hours at 10 %
AGE, HEURISTIC, INVALIDATE, TARGETED = "http.age", "http.heuristic", "http.invalidate_on_unsafe", "http.targeted_cc"
CONNECTION, VARY_EMPTY, PARTIAL, INTERIM = ("http.connection_fields", "http.vary_absent_empty",
                                            "http.partial_responses", "http.interim_responses")
FRESHNESS_DATES, UPDATE_HEADERS = "http.expires_date", "http.update_headers"
AGE_FRESHNESS, CONNECTION_REQUEST = "http.age_freshness", "http.connection_request_fields"
STALE_IF_ERROR_STATUS = "http.stale_if_error_status"
REQUEST_DIRECTIVES = "http.request_directives"
#: checks of what a named deviation (docs/policy.md) forgoes: derived where the rule relaxes it
RELAXED_BY = {HEURISTIC: "heuristic-freshness", REQUEST_DIRECTIVES: "request-no-cache"}
#: an expired response the origin forbids serving stale, against the policy's own stale windows
NO_STALE = "http.no_stale_directives"


def lm_answer(status: int = 200) -> Callable[[], Answer]:
    return lambda: {"status": status, "last_modified": int(time.time()) - LM_OLD}
