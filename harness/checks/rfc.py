"""The ``rfc`` family: a policy that respects origin headers must make each engine a correct shared
HTTP cache (RFC 9111, with RFC 9110's conditional and range requests, RFC 5861's stale
directives and RFC 9213's targeted fields).

Each check cites the section it was written from at the start of its description
(``RFC 9111 §4.2.1: ...``); the conformance report groups results by that citation. A check of a
behaviour some engine cannot provide names its capability (``http.<name>``, also one of its
tags) so that the engine reports it as a documented limit, not a failure.

The checks exercise one cacheable rule that respects origin headers and whose probes get cache
entries of their own; the origin's answer is what each check programs. They count what the
origin received per probe (the ground truth of "was it reused") and prove storage by the
engine's own record before asking for a hit. Lifetimes are one second and waits a few.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from cachewright.generator.capabilities import FEATURES, serves_stale
from cachewright.generator.model import Policy, Rule

from ..client import Response
from ..selection import Request, select_rule
from .base import RECORD_WAIT, Check, CheckFailed, CheckSkipped, Ctx
from .defaults import cacheable_rule
from .rules import isolated_rule, probe

Answer = Mapping[str, Any]
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


# --------------------------------------------------------------------------- what the checks share


def _send(ctx: Ctx, req: Request, headers: Mapping[str, str] | None = None, **kw: Any) -> Response:
    return ctx.send(req, headers=dict(headers or {}), **kw)


def _settle(ctx: Ctx, req: Request, stores: bool) -> None:
    """Give the engine the time to write ``req``'s entry: until its record shows it when it
    should store, a short while otherwise."""
    ctx.stored(req, wait=RECORD_WAIT if stores else SETTLE)


def _gets(ctx: Ctx, req: Request) -> int:
    """GET requests the origin received for ``req``."""
    ctx.count(req.unit)
    return ctx.control().count(req.unit, "GET")


def _await_count(ctx: Ctx, req: Request, wanted: int, wait: float = BACKGROUND) -> int:
    """The origin's count for ``req``, polled until it reaches ``wanted`` (a background fetch)."""
    deadline = time.monotonic() + wait
    while (seen := ctx.count(req.unit)) < wanted and time.monotonic() < deadline:
        ctx.sleep(0.1)
    return seen


def _said(response: Response) -> str:
    """A response as evidence in a message."""
    return (f"{response.status} Cache-Status {response.cache.outcome}, Age "
            f"{response.header('Age')!s}, X-Response-Id {response.response_id!s}")


def _echoed_id(response: Response) -> str | None:
    """The response id the origin wrote into the body (the stored body keeps it when a 304
    updates the headers)."""
    match = re.search(rb'"response_id": "([^"]+)"', response.body)
    return match.group(1).decode() if match else None


def _program(ctx: Ctx, req: Request, answer: Answer | Callable[[], Answer]) -> None:
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
        _program(ctx, req, self.answer)
        first = _send(ctx, req, self.first)
        _settle(ctx, req, self.reused or self.wait > 0)
        ctx.sleep(self.wait)
        second = _send(ctx, req, self.second)
        seen = ctx.count(req.unit) if self.reused else _await_count(ctx, req, 2, SETTLE)
        evidence = f"first: {_said(first)}; second: {_said(second)}"
        if self.reused:
            ctx.expect(seen == 1 and second.response_id == first.response_id,
                       f"the second request was not answered with the stored response: origin saw "
                       f"{seen} requests, expected 1 ({evidence})")
        else:
            ctx.expect(seen == 2, f"the stored response was reused: origin saw {seen} requests, "
                       f"expected 2 ({evidence})")


def _fresh(cache_control: str = "max-age=60", **answer: Any) -> Answer:
    return {"status": 200, "cache_control": cache_control, **answer}


# --------------------------------------------------------------------------- validation


def check_revalidates(validators: Answer, header: str, ctx: Ctx, rule: Rule) -> None:
    """An expired entry with validators is revalidated: the origin gets the conditional request
    and answers 304; the client gets the stored body."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh("max-age=1", **validators))
    first = ctx.send_stored(req)
    ctx.sleep(EXPIRED)
    second = _send(ctx, req)
    _await_count(ctx, req, 2)
    seen = ctx.control().requests(path=req.unit)
    ctx.expect(len(seen) == 2, f"origin saw {len(seen)} requests, expected 2 (one revalidation)")
    sent = seen[-1].header(header)
    ctx.expect(sent is not None, f"the expired entry was fetched again without {header} "
               f"(origin saw {seen[-1].headers}); validators were {dict(validators)}")
    ctx.expect(seen[-1].outcome == "not_modified", f"the origin answered {seen[-1].status} to "
               f"{header}: {sent}")
    ctx.expect(second.status == 200 and second.body == first.body,
               f"after the 304 the client got {_said(second)}, not the stored body")


def check_304_saves_body(ctx: Ctx, rule: Rule) -> None:
    """An expired entry costs the origin a 304, not the body again."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh("max-age=1", etag="cw-big", body="filler", body_size=BIG_BODY))
    ctx.send_stored(req)
    ctx.sleep(EXPIRED)
    second = _send(ctx, req)
    _await_count(ctx, req, 2)
    sent = ctx.control().body_bytes(req.unit)
    ctx.expect(sent == BIG_BODY, f"the origin sent {sent} body bytes over two requests, expected "
               f"{BIG_BODY} (the second answered 304); second: {_said(second)}")
    ctx.expect(len(second.body) == BIG_BODY, f"the client got {len(second.body)} bytes, "
               f"expected {BIG_BODY}")


def _revalidated(ctx: Ctx, rule: Rule, after: Answer) -> tuple[Request, Response, Response]:
    """An entry stored with ETag "v1" and max-age=1, expired, and requested again with the
    origin now answering ``after``: the request, the first and the second response. Inside the
    policy's stale-while-revalidate window the expired entry is served stale while the
    validation runs in the background: then the second response is the next request's, the
    first to see the validation's result."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh("max-age=1", etag="v1"))
    first = ctx.send_stored(req)
    ctx.sleep(EXPIRED)
    _program(ctx, req, after)
    second = _send(ctx, req)
    _await_count(ctx, req, 2)
    ctx.stored(req)
    if ctx.policy.cache.stale.while_revalidate and second.cache.outcome == "stale":
        ctx.sleep(0.3)  # the background fetch has reached the origin: let the engine store it
        second = _send(ctx, req)
    return req, first, second


def check_304_freshens(ctx: Ctx, rule: Rule) -> None:
    """The 304's own freshness applies to the stored entry: the next request is a hit."""
    req, _, second = _revalidated(ctx, rule, _fresh("max-age=60", etag="v1"))
    third = _send(ctx, req)
    seen = ctx.count(req.unit)
    ctx.expect(seen == 2 and third.status == 200, f"after a 304 with max-age=60 the next request "
               f"reached the origin: {seen} requests, expected 2; third: {_said(third)}")


def check_304_updates_headers(ctx: Ctx, rule: Rule) -> None:
    """A 304 replaces the stored header fields it carries (X-Cw-Version 1 becomes 2), for this
    response and for the hits after it."""
    req, _, second = _revalidated(ctx, rule, _fresh("max-age=60", etag="v1",
                                                    headers={"X-Cw-Version": "2"}))
    third = _send(ctx, req)
    for label, response in (("revalidated", second), ("next hit", third)):
        ctx.expect(response.header("X-Cw-Version") == "2", f"the {label} response has "
                   f"X-Cw-Version {response.header('X-Cw-Version')!r}, expected '2' from the 304 "
                   f"({_said(response)})")


def check_changed_replaces(ctx: Ctx, rule: Rule) -> None:
    """A validation answered 200 (the resource changed) replaces the stored response."""
    req, first, second = _revalidated(ctx, rule, _fresh("max-age=60", etag="v2"))
    third = _send(ctx, req)
    ctx.expect(_echoed_id(second) != _echoed_id(first), f"the changed resource was answered with "
               f"the old body ({_said(second)})")
    ctx.expect(third.body == second.body and ctx.count(req.unit) == 2,
               f"the new response was not stored: third {_said(third)}, origin count "
               f"{ctx.count(req.unit)}")


def check_weak_stays_weak(ctx: Ctx, rule: Rule) -> None:
    """A weak entity tag reaches the client weak, on the miss and on the hit."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh(etag='W/"cw-weak"'))
    first = ctx.send_stored(req)
    second = _send(ctx, req)
    for response in (first, second):
        ctx.expect(response.header("ETag") == 'W/"cw-weak"', f"ETag {response.header('ETag')!r}, "
                   f"expected W/\"cw-weak\" ({_said(response)})")
    ctx.expect(ctx.count(req.unit) == 1, f"origin saw {ctx.count(req.unit)} requests, expected 1")


@dataclass(frozen=True)
class Conditional:
    """A client's own conditional request for a fresh stored response (ETag "v1",
    Last-Modified a day ago) is answered by the cache: ``status`` (304 or 200), no origin
    request."""

    headers: Callable[[], Mapping[str, str]]
    status: int

    def __call__(self, ctx: Ctx, rule: Rule) -> None:
        req = probe(ctx, rule)
        _program(ctx, req, _fresh(etag="v1", last_modified=int(time.time()) - 86400))
        ctx.send_stored(req)
        conditions = self.headers()
        answer = _send(ctx, req, conditions)
        ctx.expect(answer.status == self.status, f"{conditions} answered {_said(answer)}, expected "
                   f"{self.status}")
        ctx.expect(ctx.count(req.unit) == 1, f"{conditions} reached the origin "
                   f"({ctx.count(req.unit)} requests, expected 1)")


def _since(offset: float) -> Callable[[], Mapping[str, str]]:
    return lambda: {"If-Modified-Since": http_date(offset)}


# --------------------------------------------------------------------------- stale


def _after_expiry(ctx: Ctx, rule: Rule, cache_control: str, wait: float,
                  then: Answer) -> tuple[Request, Response, Response]:
    """A response stored with ``cache_control``; ``wait`` seconds later the origin answers
    ``then`` and the URL is asked again: the request, the first and the second response."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh(cache_control))
    first = ctx.send_stored(req)
    ctx.sleep(wait)
    _program(ctx, req, then)
    return req, first, _send(ctx, req)


_FAILING: Answer = {"status": 500, "failure": "error"}


def check_no_stale_on_error(cache_control: str, ctx: Ctx, rule: Rule) -> None:
    """With the origin failing after expiry, the stale response is not served: an error is."""
    _, first, second = _after_expiry(ctx, rule, cache_control, EXPIRED, _FAILING)
    ctx.expect(second.status >= 500 and second.body != first.body,
               f"'{cache_control}' expired and the origin failing: {_said(second)}, expected "
               "an error (504 or the origin's 500), not the stale response")


def check_stale_if_error(ctx: Ctx, rule: Rule) -> None:
    """Inside the origin's stale-if-error window, a failing origin's error is replaced by the
    stale response."""
    _, first, second = _after_expiry(ctx, rule, "max-age=1, stale-if-error=60", EXPIRED, _FAILING)
    ctx.expect(second.status == 200 and second.body == first.body,
               f"origin failing inside stale-if-error=60: {_said(second)}, expected the stale copy")


def check_stale_if_error_ends(ctx: Ctx, rule: Rule) -> None:
    """Past the origin's stale-if-error window, the origin's error is returned."""
    _policy_windows_or_skip(ctx.policy)
    _, _, second = _after_expiry(ctx, rule, "max-age=1, stale-if-error=1", EXPIRED + 1.5, _FAILING)
    ctx.expect(second.status >= 500, f"origin failing after stale-if-error=1 ended: "
               f"{_said(second)}, expected the origin's error")


def check_stale_while_revalidate(ctx: Ctx, rule: Rule) -> None:
    """Inside the origin's stale-while-revalidate window the stale response is served at once
    and one background request refreshes it."""
    slow = _fresh("max-age=1, stale-while-revalidate=60", delay=1.5)
    req, first, second = _after_expiry(ctx, rule, "max-age=1, stale-while-revalidate=60", EXPIRED,
                                       slow)
    ctx.expect(second.elapsed < 1.0 and second.body == first.body,
               f"inside stale-while-revalidate=60: {_said(second)} after {second.elapsed:.2f}s, "
               "expected the stale copy at once")
    seen = _await_count(ctx, req, 2, BACKGROUND + 1.5)
    ctx.expect(seen == 2, f"origin saw {seen} requests, expected 2 (one background refresh)")


def check_stale_while_revalidate_ends(ctx: Ctx, rule: Rule) -> None:
    """Past the origin's stale-while-revalidate window the client waits for a fresh response."""
    _policy_windows_or_skip(ctx.policy)
    _, first, second = _after_expiry(ctx, rule, "max-age=1, stale-while-revalidate=1",
                                     EXPIRED + 1.5, _fresh("max-age=60"))
    ctx.expect(second.body != first.body, f"after stale-while-revalidate=1 ended: {_said(second)}, "
               "expected a fresh response, not the stale copy")


def _policy_windows_or_skip(policy: Policy) -> None:
    stale = policy.cache.stale
    if serves_stale(policy):
        raise CheckSkipped(f"the policy serves stale itself (cache.stale: while_revalidate "
                           f"{stale.while_revalidate}s, if_error {stale.if_error}s), so the end of "
                           "the origin's own window is not observable")


def check_stale_needs_permission(ctx: Ctx, rule: Rule) -> None:
    """Without the origin's or the policy's permission, an expired response is not served
    stale when the origin fails."""
    _policy_windows_or_skip(ctx.policy)
    check_no_stale_on_error("max-age=1", ctx, rule)


# --------------------------------------------------------------------------- Age and Date


def check_age_on_hit(ctx: Ctx, rule: Rule) -> None:
    """A response served from the cache carries Age: the seconds it has been stored, as digits."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    ctx.send_stored(req)
    ctx.sleep(1.2)
    hit = _send(ctx, req)
    age = hit.header("Age") or ""
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {_said(hit)}")
    ctx.expect(age.isdigit() and int(age) >= 1, f"the hit stored 1.2s ago has Age {age!r}, "
               "expected an integer of at least 1")


def check_age_from_origin(ctx: Ctx, rule: Rule) -> None:
    """The Age the origin sent is part of the stored response's age."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh(headers={"Age": "30"}))
    ctx.send_stored(req)
    hit = _send(ctx, req)
    age = hit.header("Age") or ""
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {_said(hit)}")
    ctx.expect(age.isdigit() and int(age) >= 30, f"the origin said Age: 30; the hit says Age "
               f"{age!r}, expected at least 30")


def check_date_on_hit(ctx: Ctx, rule: Rule) -> None:
    """A hit carries the stored response's Date (with Age, the client can tell how old it is)."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    first = ctx.send_stored(req)
    ctx.sleep(1.2)
    hit = _send(ctx, req)
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {_said(hit)}")
    ctx.expect(hit.header("Date") == first.header("Date"), f"the hit's Date is "
               f"{hit.header('Date')!r}, the stored response's {first.header('Date')!r} "
               f"(Age {hit.header('Age')!s})")


# --------------------------------------------------------------------------- HEAD and ranges


def check_head_from_get(ctx: Ctx, rule: Rule) -> None:
    """A stored GET response answers HEAD: its header fields, no body, no origin request."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    first = ctx.send_stored(req)
    head = _send(ctx, req, method="HEAD")
    ctx.expect(ctx.count(req.unit) == 1, f"HEAD reached the origin: {_said(head)}")
    ctx.expect(head.status == 200 and head.body == b"", f"HEAD answered {_said(head)} with "
               f"{len(head.body)} body bytes")
    ctx.expect(head.header("Content-Length") == str(len(first.body)),
               f"HEAD's Content-Length {head.header('Content-Length')!r}, the GET's body is "
               f"{len(first.body)} bytes")


def check_head_then_get(ctx: Ctx, rule: Rule) -> None:
    """A HEAD on a miss never leaves an empty entry that a GET is then answered with."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    _send(ctx, req, method="HEAD")
    _settle(ctx, req, False)
    get = _send(ctx, req)
    length = get.header("Content-Length")
    ctx.expect(get.status == 200 and _echoed_id(get) is not None,
               f"GET after HEAD answered {_said(get)} with {len(get.body)} body bytes")
    ctx.expect(length is None or length == str(len(get.body)),
               f"GET after HEAD: Content-Length {length} but {len(get.body)} bytes")


_HUNDRED: Answer = _fresh(body="filler", body_size=100)


def check_range_from_stored(ctx: Ctx, rule: Rule) -> None:
    """A range of a stored full response is answered from the cache: 206 with exactly those
    bytes and their Content-Range, or (a server may ignore Range) the whole 200."""
    req = probe(ctx, rule)
    _program(ctx, req, _HUNDRED)
    first = ctx.send_stored(req)
    part = _send(ctx, req, {"Range": "bytes=0-9"})
    ranged = part.status == 206 and part.body == first.body[:10] and \
        part.header("Content-Range") == "bytes 0-9/100"
    ctx.expect(ranged or (part.status == 200 and part.body == first.body),
               f"Range bytes=0-9 answered {_said(part)} with {len(part.body)} bytes, Content-Range "
               f"{part.header('Content-Range')!r}")
    ctx.expect(ctx.count(req.unit) == 1, f"the range reached the origin ({ctx.count(req.unit)} requests)")
    if not ranged:
        ctx.notes.append("Range ignored: the whole 200 was sent")


def check_range_on_miss(ctx: Ctx, rule: Rule) -> None:
    """A range request on a miss leaves the full response stored for the next request."""
    req = probe(ctx, rule)
    _program(ctx, req, _HUNDRED)
    part = _send(ctx, req, {"Range": "bytes=0-9"})
    _settle(ctx, req, True)
    full = _send(ctx, req)
    ctx.expect(part.status in (200, 206), f"Range on a miss answered {_said(part)}")
    ctx.expect(full.status == 200 and len(full.body) == 100 and ctx.count(req.unit) == 1,
               f"the next full request: {_said(full)}, {len(full.body)} bytes, origin count "
               f"{ctx.count(req.unit)} (expected a hit of 100 bytes)")


def check_range_unsatisfiable(ctx: Ctx, rule: Rule) -> None:
    """A range past the end of a stored response is answered from the cache with 416 (or, a
    server may ignore Range, the whole 200), never a 206."""
    req = probe(ctx, rule)
    _program(ctx, req, _HUNDRED)
    first = ctx.send_stored(req)
    part = _send(ctx, req, {"Range": "bytes=500-600"})
    ctx.expect(part.status == 416 or (part.status == 200 and part.body == first.body),
               f"Range bytes=500-600 of 100 bytes answered {_said(part)}")
    ctx.expect(ctx.count(req.unit) == 1, f"the range reached the origin ({ctx.count(req.unit)} requests)")


def check_interim(ctx: Ctx, rule: Rule) -> None:
    """An interim 103 before the final 200: the client gets the 200, and the 200 is stored."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh(interim=[103]))
    try:
        first = _send(ctx, req, timeout=INTERIM_WAIT)
        ctx.stored(req)
        second = _send(ctx, req, timeout=INTERIM_WAIT)
    except TimeoutError as exc:
        raise CheckFailed(f"no answer within {INTERIM_WAIT:.0f}s to a request the origin answered "
                          "103 then 200 at once") from exc
    ctx.expect(first.status == 200, f"the final 200 reached the client as {_said(first)}")
    ctx.expect(ctx.count(req.unit) == 1, f"the final response was not stored: {_said(second)}")


def check_partial_not_full(ctx: Ctx, rule: Rule) -> None:
    """A 206 the origin sends to a full request reaches the client as 206 and is never used
    as the full response."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh(status=206, body="filler", body_size=10,
                              headers={"Content-Range": "bytes 0-9/100"}))
    first = _send(ctx, req)
    _settle(ctx, req, False)
    second = _send(ctx, req)
    ctx.expect(first.status == 206, f"the origin's 206 reached the client as {_said(first)}")
    ctx.expect(ctx.count(req.unit) == 2, f"the stored partial response answered a full "
               f"request: {_said(second)}")


# --------------------------------------------------------------------------- invalidation


def _invalidating(ctx: Ctx, method: str, req: Request, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """Send ``method`` to ``req``'s URL with the origin answering ``status``; skipped when the
    policy refuses the method before the origin."""
    before = ctx.control().count(req.unit, method)
    _program(ctx, req, {"status": status, "headers": dict(headers or {}),
                        **({"failure": "error"} if status >= 500 else {})})
    response = _send(ctx, req, method=method, body=b"cw=1")
    if ctx.control().count(req.unit, method) == before:
        raise CheckSkipped(f"the policy does not pass {method} to the origin ({response.status})")
    return response


def check_invalidate(method: str, ctx: Ctx, rule: Rule) -> None:
    """A successful unsafe request invalidates the stored response for its URL."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    ctx.send_stored(req)
    done = _invalidating(ctx, method, req)
    _program(ctx, req, _fresh())
    after = _send(ctx, req)
    ctx.expect(_gets(ctx, req) == 2, f"after {method} answered {done.status}, GET was answered "
               f"from the cache: {_said(after)}")


def check_failed_keeps(ctx: Ctx, rule: Rule) -> None:
    """An unsafe request that fails (500) does not invalidate the stored response."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    ctx.send_stored(req)
    done = _invalidating(ctx, "POST", req, 500)
    after = _send(ctx, req)
    ctx.expect(_gets(ctx, req) == 1 and after.status == 200, f"after a POST answered "
               f"{done.status}, GET: {_said(after)} (origin GETs {_gets(ctx, req)}, expected 1)")


def _sibling(ctx: Ctx, rule: Rule, req: Request) -> Request:
    """Another isolated URL of ``rule`` on ``req``'s host."""
    other = probe(ctx, rule)
    if other.host != req.host or other.path == req.path:
        raise CheckSkipped(f"rule '{rule.name}' gives no two paths on one host")
    return other


def check_invalidate_named(header: str, ctx: Ctx, rule: Rule) -> None:
    """A successful unsafe request invalidates the URL its response names in ``header``."""
    req = probe(ctx, rule)
    named = _sibling(ctx, rule, req)
    _program(ctx, named, _fresh())
    ctx.send_stored(named)
    done = _invalidating(ctx, "POST", req, 201 if header == "Location" else 200,
                         {header: named.target})
    after = _send(ctx, named)
    ctx.expect(_gets(ctx, named) == 2, f"after POST answered {done.status} with {header}: "
               f"{named.target}, that URL was answered from the cache: {_said(after)}")


def check_other_host_kept(ctx: Ctx, rule: Rule) -> None:
    """A Location on another host does not invalidate that host's stored response."""
    req = probe(ctx, rule)
    named = _other_host(ctx, _sibling(ctx, rule, req), rule)
    _program(ctx, named, _fresh())
    ctx.send_stored(named)
    _invalidating(ctx, "POST", req, 201, {"Location": f"http://{named.host}{named.target}"})
    after = _send(ctx, named)
    ctx.expect(_gets(ctx, named) == 1, f"a Location on {named.host} invalidated its entry: "
               f"{_said(after)}")


def _other_host(ctx: Ctx, req: Request, rule: Rule) -> Request:
    """``req`` on another host the policy serves with the same rule, in another entry."""
    policy = ctx.policy
    named = [h for h in policy.listen.hosts if not h.startswith("*.")]
    others = [h for h in named if h != req.host] if policy.listen.hosts else ["other.cachewright.test"]
    moved = replace(req, host=others[0]) if others else req
    if moved is req or "host" not in policy.cache.key or select_rule(policy, moved) != rule:
        raise CheckSkipped("needs a second host, in the key, that the same rule answers")
    return moved


# --------------------------------------------------------------------------- hop-by-hop fields


def check_connection_response(ctx: Ctx, rule: Rule) -> None:
    """A field the origin lists in Connection reaches neither the client nor the stored entry."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh(connection=["X-Cw-Hop"], headers={"X-Cw-Hop": "secret"}))
    first = ctx.send_stored(req)
    hit = _send(ctx, req)
    for label, response in (("miss", first), ("hit", hit)):
        ctx.expect(response.header("X-Cw-Hop") is None, f"the {label} carries the hop-by-hop "
                   f"field X-Cw-Hop: {response.header('X-Cw-Hop')} ({_said(response)})")
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {_said(hit)}")


def check_connection_request(ctx: Ctx, rule: Rule) -> None:
    """A field the client lists in Connection does not reach the origin."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh())
    _send(ctx, req, {"Connection": "X-Cw-Hop", "X-Cw-Hop": "secret"})
    seen = ctx.control().requests(path=req.unit)[-1]
    ctx.expect(seen.header("X-Cw-Hop") is None, f"the origin received the client's hop-by-hop "
               f"field X-Cw-Hop: {seen.header('X-Cw-Hop')}")


# --------------------------------------------------------------------------- the family


@dataclass(frozen=True)
class Spec:
    """One check of the family: ``rfc.<id>``, the section it was written from, what it proves,
    how, and the capability an engine may lack for it."""

    id: str
    section: str
    says: str
    run: Callable[[Ctx, Rule], None]
    feature: str | None = None


def _reuse(ident: str, section: str, says: str, answer: Answer | Callable[[], Answer],
           reused: bool, feature: str | None = None, **kw: Any) -> Spec:
    return Spec(ident, section, says, Reuse(answer, reused, **kw), feature)


def _spec(ident: str, section: str, says: str, run: Callable[..., None],
          feature: str | None = None, *args: Any) -> Spec:
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


def _lm(status: int = 200) -> Callable[[], Answer]:
    return lambda: {"status": status, "last_modified": int(time.time()) - LM_OLD}


def _freshness() -> Iterator[Spec]:
    yield _reuse("freshness.max-age.fresh", f"{R9111}5.2.2.1", "a response with max-age=60 is "
                 "reused while fresh", _fresh(), True)
    yield _reuse("freshness.max-age.expired", f"{R9111}4.2", "a response with max-age=1 is not "
                 "reused once it has expired", _fresh("max-age=1"), False, wait=EXPIRED)
    yield _reuse("freshness.max-age.zero", f"{R9111}5.2.2.1", "max-age=0 is stale at once: not "
                 "reused without validation", _fresh("max-age=0"), False)
    yield _reuse("freshness.max-age.case", f"{R9111}5.2", "directive names are case-insensitive: "
                 "MAX-AGE=60 is reused", _fresh("MAX-AGE=60"), True)
    yield _reuse("freshness.max-age.duplicate", f"{R9111}4.2.1", "with max-age=1 and max-age=3600 "
                 "the first is used (or the response is stale): not reused after 2s",
                 _fresh("max-age=1, max-age=3600"), False, wait=EXPIRED)
    yield _reuse("freshness.s-maxage.over-max-age", f"{R9111}4.2.1", "a shared cache uses "
                 "s-maxage=60 over max-age=1", _fresh("max-age=1, s-maxage=60"), True,
                 wait=EXPIRED)
    yield _reuse("freshness.s-maxage.short", f"{R9111}4.2.1", "s-maxage=1 ends freshness even "
                 "with max-age=60", _fresh("max-age=60, s-maxage=1"), False, wait=EXPIRED)
    yield _reuse("freshness.s-maxage.over-expires", f"{R9111}5.2.2.10", "s-maxage=60 overrides "
                 "an Expires in the past", lambda: _fresh("s-maxage=60", expires=http_date(-3600)),
                 True)
    yield _reuse("freshness.s-maxage.zero", f"{R9111}5.2.2.10", "s-maxage=0 is stale at once "
                 "even with max-age=60", _fresh("max-age=60, s-maxage=0"), False)
    yield _reuse("freshness.max-age.over-expires", f"{R9111}5.3", "max-age=60 makes a recipient "
                 "ignore an Expires in the past", lambda: _fresh(expires=http_date(-3600)), True)
    yield _reuse("freshness.max-age.under-expires", f"{R9111}5.3", "max-age=1 ends freshness "
                 "even with Expires an hour ahead",
                 lambda: _fresh("max-age=1", expires=http_date(3600)), False, wait=EXPIRED)
    yield _reuse("freshness.expires.fresh", f"{R9111}5.3", "Expires a minute ahead is reused",
                 lambda: {"status": 200, "expires": http_date(60)}, True)
    yield _reuse("freshness.expires.expired", f"{R9111}4.2.1", "Expires 1s ahead is not reused "
                 "3s later", lambda: {"status": 200, "expires": http_date(1)}, False,
                 wait=EXPIRED + 1)
    yield _reuse("freshness.expires.past", f"{R9111}5.3", "Expires in the past is stale: not "
                 "reused", lambda: {"status": 200, "expires": http_date(-3600)}, False)
    yield _reuse("freshness.expires.zero", f"{R9111}5.3", "Expires: 0 (an invalid date) is in the "
                 "past: not reused", {"status": 200, "expires": "0"}, False)
    yield _reuse("freshness.expires.invalid", f"{R9111}5.3", "an Expires that is not a date is in "
                 "the past: not reused", {"status": 200, "expires": "next tuesday"}, False)
    yield _reuse("freshness.expires.before-date", f"{R9111}4.2.1", "Expires earlier than Date "
                 "gives a negative lifetime: not reused, though Expires is ahead of the cache's "
                 "clock", lambda: {"status": 200, "expires": http_date(1800),
                                   "headers": {"Date": http_date(3600)}}, False,
                 FRESHNESS_DATES)
    yield _reuse("freshness.age.counted", f"{R9111}4.2.3", "the origin's Age counts: Age 58 with "
                 "max-age=60 is stale 3s later", _fresh(headers={"Age": "58"}), False, AGE_FRESHNESS,
                 wait=EXPIRED + 1)
    yield _reuse("freshness.age.exceeds", f"{R9111}4.2.3", "Age 120 with max-age=60 arrives "
                 "stale: not reused", _fresh(headers={"Age": "120"}), False, AGE_FRESHNESS)
    yield _reuse("freshness.age.apparent", f"{R9111}4.2.3", "a Date an hour old makes max-age=60 "
                 "stale on arrival (apparent age)",
                 lambda: _fresh(headers={"Date": http_date(-3600)}), False, AGE_FRESHNESS)
    yield _reuse("freshness.age.invalid", f"{R9111}5.1", "an Age that is not a non-negative "
                 "integer (1.5) is ignored: max-age=60 is reused", _fresh(headers={"Age": "1.5"}),
                 True)
    yield _reuse("freshness.age.list", f"{R9111}5.1", "of a list-based Age (5, 100) the first "
                 "member counts: max-age=60 is reused", _fresh(headers={"Age": "5, 100"}), True)
    yield _reuse("freshness.heuristic.200", f"{R9111}4.2.2", "a 200 with Last-Modified ten days "
                 "ago and no explicit lifetime is reused (heuristic freshness)", _lm(), True,
                 HEURISTIC)


def _heuristic_statuses(policy: Policy) -> Iterator[Spec]:
    kept = dict(policy.cache.status_ttl)
    for code in (301, 404, 410, 501):
        yield _reuse(f"status.heuristic.{code}", f"{R9111}4.2.2", f"{code} is heuristically "
                     "cacheable: with Last-Modified and no lifetime it is reused", _lm(code), True,
                     HEURISTIC)
    if 302 not in kept:
        yield _reuse("status.heuristic.302-not", f"{R9111}4.2.2", "302 is not heuristically "
                     "cacheable: with only Last-Modified it is not reused", _lm(302), False)


def _statuses(policy: Policy) -> Iterator[Spec]:
    for code in (203, 302, 303, 307, 400, 403, 405, 500, 502, 503):
        yield _reuse(f"status.explicit.{code}", f"{R9111}3", f"a final {code} with explicit "
                     "freshness (max-age=60) is stored and reused", _fresh(status=code), True)
    yield from _heuristic_statuses(policy)
    yield _spec("status.interim", f"{R9111}3", "a 103 before the final 200 is not stored; the "
                "final response is", check_interim, INTERIM)
    yield _reuse("status.must-understand", f"{R9111}5.2.2.3", "must-understand on a status the "
                 "cache does not know (299) keeps it out, with no-store",
                 _fresh("must-understand, no-store, max-age=60", status=299), False)
    yield _spec("status.206-not-full", f"{R9111}3.3", "a 206 to a full request is passed on as "
                "206 and never used as the full response", check_partial_not_full, PARTIAL)


def _validation() -> Iterator[Spec]:
    yield _spec("validation.etag", f"{R9111}4.3.1", "an expired entry with a strong ETag is "
                "revalidated with If-None-Match; the 304 serves the stored body", check_revalidates,
                None, {"etag": "v1"}, "If-None-Match")
    yield _spec("validation.etag-weak", f"{R9111}4.3.1", "an expired entry with a weak ETag is "
                "revalidated with If-None-Match", check_revalidates, None, {"etag": 'W/"v1"'},
                "If-None-Match")
    yield _spec("validation.last-modified", f"{R9111}4.3.1", "an expired entry with only "
                "Last-Modified is revalidated with If-Modified-Since", check_revalidates, None,
                {"last_modified": "Wed, 01 Jan 2025 00:00:00 GMT"}, "If-Modified-Since")
    yield _spec("validation.304-saves-body", f"{R9111}4.3.4", "an expired 16 KiB entry costs "
                "the origin a 304, not the body", check_304_saves_body)
    yield _spec("validation.304-freshens", f"{R9111}4.3.4", "a 304 with max-age=60 makes the "
                "entry fresh: the next request is a hit", check_304_freshens)
    yield _spec("validation.304-updates-headers", f"{R9111}3.2", "a 304 replaces the stored "
                "header fields it carries", check_304_updates_headers, UPDATE_HEADERS)
    yield _spec("validation.200-replaces", f"{R9111}4.3.3", "a full 200 to a validation "
                "replaces the stored response", check_changed_replaces)
    yield _spec("validation.weak-stays-weak", f"{R9110}8.8.3", "a weak ETag reaches the client "
                "weak, on a miss and on a hit", check_weak_stays_weak)


def _conditional() -> Iterator[Spec]:
    cases = (
        ("inm-match", f"{R9111}4.3.2", "If-None-Match naming the stored ETag: 304 from the cache",
         lambda: {"If-None-Match": '"v1"'}, 304),
        ("inm-weak", f"{R9110}13.1.2", "If-None-Match with W/\"v1\" matches \"v1\" by weak "
         "comparison: 304", lambda: {"If-None-Match": 'W/"v1"'}, 304),
        ("inm-star", f"{R9110}13.1.2", "If-None-Match: * matches a stored response: 304",
         lambda: {"If-None-Match": "*"}, 304),
        ("inm-mismatch", f"{R9111}4.3.2", "If-None-Match naming another ETag: the full 200 from "
         "the cache", lambda: {"If-None-Match": '"other"'}, 200),
        ("ims-match", f"{R9111}4.3.2", "If-Modified-Since at or after Last-Modified: 304 from the "
         "cache", _since(0), 304),
        ("ims-older", f"{R9111}4.3.2", "If-Modified-Since before Last-Modified: the full 200",
         _since(-30 * 86400), 200),
        ("inm-over-ims", f"{R9110}13.2.2", "If-None-Match takes precedence: a mismatch gives 200 "
         "even when If-Modified-Since would give 304",
         lambda: {"If-None-Match": '"other"', "If-Modified-Since": http_date()}, 200),
    )
    for ident, section, says, headers, status in cases:
        yield Spec(f"conditional.{ident}", section, says, Conditional(headers, status))


def _directives() -> Iterator[Spec]:
    yield _reuse("no-cache.response", f"{R9111}5.2.2.4", "a response with no-cache is not reused "
                 "without validation", _fresh("no-cache, max-age=60", etag="v1"), False)
    yield _reuse("no-cache.request", f"{R9111}5.2.1.4", "a request with no-cache is not answered "
                 "from the cache without validation", _fresh(), False, REQUEST_DIRECTIVES,
                 second={"Cache-Control": "no-cache"})
    yield _reuse("no-cache.pragma", f"{R9111}5.4", "Pragma: no-cache without Cache-Control acts "
                 "as no-cache", _fresh(), False, REQUEST_DIRECTIVES, second={"Pragma": "no-cache"})
    yield _reuse("request.max-age-0", f"{R9111}5.2.1.1", "a request with max-age=0 is not "
                 "answered with a stored response older than 0s", _fresh(), False,
                 REQUEST_DIRECTIVES, second={"Cache-Control": "max-age=0"}, wait=1.1)
    yield _reuse("no-store.response", f"{R9111}5.2.2.5", "a response with no-store is not stored",
                 _fresh("no-store, max-age=60"), False)
    yield _reuse("no-store.case", f"{R9111}5.2", "No-Store is no-store (case-insensitive)",
                 _fresh("max-age=60, No-Store"), False)
    yield _reuse("no-store.with-public", f"{R9111}5.2.2.5", "public does not undo no-store",
                 _fresh("public, no-store, max-age=60"), False)
    yield _reuse("no-store.request", f"{R9111}5.2.1.5", "the response to a request with no-store "
                 "is not stored", _fresh(), False, first={"Cache-Control": "no-store"})
    yield _reuse("private.response", f"{R9111}5.2.2.7", "a private response is not stored by a "
                 "shared cache", _fresh("private, max-age=60"), False)
    yield _reuse("private.with-s-maxage", f"{R9111}5.2.2.7", "private wins over s-maxage",
                 _fresh("private, s-maxage=60"), False)
    yield _spec("private.field", f"{R9111}5.2.2.7", "private=\"X-Cw-Secret\": a shared cache "
                "does not store that field", check_private_field)
    yield _spec("must-revalidate.no-stale", f"{R9111}5.2.2.2", "must-revalidate: an expired "
                "response is not served stale when the origin fails", check_no_stale_on_error,
                NO_STALE, "max-age=1, must-revalidate")
    yield _spec("proxy-revalidate.no-stale", f"{R9111}5.2.2.8", "proxy-revalidate: a shared "
                "cache does not serve the expired response when the origin fails",
                check_no_stale_on_error, NO_STALE, "max-age=1, proxy-revalidate")
    yield _spec("s-maxage.no-stale", f"{R9111}5.2.2.10", "s-maxage implies proxy-revalidate: "
                "the expired response is not served when the origin fails",
                check_no_stale_on_error, NO_STALE, "s-maxage=1")


def check_private_field(ctx: Ctx, rule: Rule) -> None:
    """A response naming a field in private= may be stored, but never with that field."""
    req = probe(ctx, rule)
    _program(ctx, req, _fresh('private="X-Cw-Secret", max-age=60', headers={"X-Cw-Secret": "s1"}))
    ctx.send_stored(req)
    second = _send(ctx, req)
    stored = ctx.count(req.unit) == 1
    ctx.expect(not stored or second.header("X-Cw-Secret") is None, "a hit carries the private "
               f"field X-Cw-Secret: {second.header('X-Cw-Secret')} ({_said(second)})")


def _vary() -> Iterator[Spec]:
    one = _fresh(vary="X-Cw-Vary")
    two = _fresh(vary="X-Cw-Vary, X-Cw-Other")
    yield _reuse("vary.one.match", f"{R9111}4.1", "Vary: X-Cw-Vary with the same value is reused",
                 one, True, first={"X-Cw-Vary": "a"}, second={"X-Cw-Vary": "a"})
    yield _reuse("vary.one.differ", f"{R9111}4.1", "Vary: X-Cw-Vary with another value is not "
                 "reused", one, False, first={"X-Cw-Vary": "a"}, second={"X-Cw-Vary": "b"})
    yield _reuse("vary.one.absent", f"{R9111}4.1", "Vary: X-Cw-Vary with the field absent from "
                 "the second request is not reused", one, False, first={"X-Cw-Vary": "a"})
    yield _reuse("vary.one.both-absent", f"{R9111}4.1", "Vary: X-Cw-Vary absent from both "
                 "requests is reused", one, True)
    yield _reuse("vary.one.absent-vs-empty", f"{R9111}4.1", "an empty X-Cw-Vary does not match an "
                 "absent one", one, False, VARY_EMPTY, first={"X-Cw-Vary": ""})
    yield _reuse("vary.name-case", f"{R9111}4.1", "Vary names are case-insensitive: vary: "
                 "x-cw-vary still tells values apart", _fresh(vary="x-cw-vary"), False,
                 first={"X-Cw-Vary": "a"}, second={"X-Cw-Vary": "b"})
    yield _reuse("vary.several.match", f"{R9111}4.1", "Vary on two fields with both the same is "
                 "reused", two, True, first={"X-Cw-Vary": "a", "X-Cw-Other": "1"},
                 second={"X-Cw-Vary": "a", "X-Cw-Other": "1"})
    yield _reuse("vary.several.second-differs", f"{R9111}4.1", "Vary on two fields with the "
                 "second differing is not reused", two, False,
                 first={"X-Cw-Vary": "a", "X-Cw-Other": "1"},
                 second={"X-Cw-Vary": "a", "X-Cw-Other": "2"})
    yield _reuse("vary.star", f"{R9111}4.1", "Vary: * always fails to match: not reused",
                 _fresh(vary="*"), False)
    yield _reuse("vary.star-in-list", f"{R9111}4.1", "Vary: X-Cw-Vary, * fails to match: not "
                 "reused", _fresh(vary="X-Cw-Vary, *"), False, first={"X-Cw-Vary": "a"},
                 second={"X-Cw-Vary": "a"})
    yield _reuse("vary.empty-field", f"{R9110}12.5.5", "an empty Vary names no field: reused",
                 _fresh(headers={"Vary": ""}), True)


def _authorization() -> Iterator[Spec]:
    """The answer is reused for a request without Authorization: cachewright's configs never
    answer a request with Authorization from the cache (the authorization-lookup deviation,
    which RFC 9111 3.5 allows to be stricter than it)."""
    mine: dict[str, str] = {"Authorization": "Bearer cw-one"}
    other: dict[str, str] = {}
    yield _reuse("auth.not-shared", f"{R9111}3.5", "a response to a request with Authorization "
                 "and only max-age is not reused for another request", _fresh(), False,
                 first=mine)
    yield _reuse("auth.public", f"{R9111}3.5", "public lets a response to Authorization be "
                 "reused", _fresh("public, max-age=60"), True, first=mine, second=other)
    yield _reuse("auth.s-maxage", f"{R9111}3.5", "s-maxage lets a response to Authorization be "
                 "reused", _fresh("s-maxage=60"), True, first=mine, second=other)
    yield _reuse("auth.must-revalidate", f"{R9111}3.5", "must-revalidate lets a response to "
                 "Authorization be reused while fresh", _fresh("must-revalidate, max-age=60"),
                 True, first=mine, second=other)
    yield _reuse("auth.proxy-revalidate", f"{R9111}3.5", "proxy-revalidate is not among the "
                 "directives that allow sharing: not reused", _fresh("proxy-revalidate, max-age=60"),
                 False, first=mine, second=other)


def _stale() -> Iterator[Spec]:
    yield _spec("stale.while-revalidate", f"{R5861}3", "inside the origin's "
                "stale-while-revalidate window the stale response is served at once and refreshed "
                "in the background", check_stale_while_revalidate)
    yield _spec("stale.while-revalidate-ends", f"{R5861}3", "past the origin's "
                "stale-while-revalidate window the client gets a fresh response",
                check_stale_while_revalidate_ends)
    yield _spec("stale.if-error", f"{R5861}4", "inside the origin's stale-if-error window a "
                "failing origin is replaced by the stale response", check_stale_if_error,
                STALE_IF_ERROR_STATUS)
    yield _spec("stale.if-error-ends", f"{R5861}4", "past the origin's stale-if-error window "
                "the origin's error is returned", check_stale_if_error_ends)
    yield _spec("stale.needs-permission", f"{R9111}4.2.4", "without a stale directive an "
                "expired response is not served when the origin fails",
                check_stale_needs_permission)


def _others() -> Iterator[Spec]:
    yield _spec("age.on-hit", f"{R9111}5.1", "a hit carries Age, the seconds it was stored",
                check_age_on_hit, AGE)
    yield _spec("age.from-origin", f"{R9111}4.2.3", "the origin's Age is part of the hit's Age",
                check_age_from_origin)
    yield _spec("date.on-hit", f"{R9111}4.2.3", "a hit carries the stored response's Date",
                check_date_on_hit)
    yield _spec("head.from-get", f"{R9110}9.3.2", "a stored GET response answers HEAD",
                check_head_from_get)
    yield _spec("head.then-get", f"{R9111}4.3.5", "a HEAD on a miss never leaves an empty "
                "entry for GET", check_head_then_get)
    yield _spec("range.from-stored", f"{R9110}14.2", "a range of a stored response is answered "
                "from the cache: 206 with those bytes, or the whole 200", check_range_from_stored)
    yield _spec("range.on-miss", f"{R9111}3.4", "a range request on a miss leaves the full "
                "response stored", check_range_on_miss)
    yield _spec("range.unsatisfiable", f"{R9110}15.5.17", "a range past the end of a stored "
                "response is answered 416 (or the whole 200), never 206", check_range_unsatisfiable)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        yield _spec(f"invalidate.{method.lower()}", f"{R9111}4.4", f"a successful {method} "
                    "invalidates the stored response for its URL", check_invalidate, INVALIDATE,
                    method)
    yield _spec("invalidate.location", f"{R9111}4.4", "a successful POST invalidates its "
                "Location on the same host", check_invalidate_named, INVALIDATE, "Location")
    yield _spec("invalidate.content-location", f"{R9111}4.4", "a successful POST invalidates "
                "its Content-Location on the same host", check_invalidate_named, INVALIDATE,
                "Content-Location")
    yield _spec("invalidate.other-host", f"{R9111}4.4", "a Location on another host is not "
                "invalidated", check_other_host_kept)
    yield _spec("invalidate.failed", f"{R9111}4.4", "a POST answered 500 does not invalidate",
                check_failed_keeps)
    yield _reuse("targeted.over-cache-control", f"{R9213}2.2", "CDN-Cache-Control: max-age=60 "
                 "is used, and Cache-Control: no-store ignored",
                 _fresh("no-store", headers={"CDN-Cache-Control": "max-age=60"}), True, TARGETED)
    yield _reuse("targeted.no-store", f"{R9213}2.2", "CDN-Cache-Control: no-store keeps a "
                 "max-age=60 response out", _fresh(headers={"CDN-Cache-Control": "no-store"}),
                 False, TARGETED)
    yield _reuse("targeted.shorter", f"{R9213}2.2", "CDN-Cache-Control: max-age=1 ends freshness "
                 "before Cache-Control: max-age=3600",
                 _fresh("max-age=3600", headers={"CDN-Cache-Control": "max-age=1"}), False,
                 TARGETED, wait=EXPIRED)
    yield _reuse("targeted.invalid-ignored", f"{R9213}2.1", "a CDN-Cache-Control that does not "
                 "parse is ignored: Cache-Control: no-store applies",
                 _fresh("no-store", headers={"CDN-Cache-Control": "max-age=60, %%%"}), False)
    yield _spec("connection.response", f"{R9110}7.6.1", "fields the origin lists in Connection "
                "are neither forwarded nor stored", check_connection_response, CONNECTION)
    yield _spec("connection.request", f"{R9110}7.6.1", "fields the client lists in Connection "
                "do not reach the origin", check_connection_request, CONNECTION_REQUEST)


def specs(policy: Policy) -> list[Spec]:
    """Every check of the family, by area."""
    return [*_freshness(), *_statuses(policy), *_validation(), *_conditional(), *_directives(),
            *_vary(), *_authorization(), *_stale(), *_others()]


def rfc_rule(policy: Policy) -> Rule | None:
    """The rule the family exercises: a cacheable one that respects origin headers and whose
    probes get entries of their own; None when the policy has none."""
    rule = cacheable_rule(policy, respect=True)
    return rule if rule is not None and isolated_rule(policy, rule) else None


def rfc_checks(policy: Policy) -> Iterator[Check]:
    """The family's checks for ``policy`` (none without a rule to exercise)."""
    rule = rfc_rule(policy)
    if rule is None:
        return
    for spec in specs(policy):
        if spec.feature in RELAXED_BY and RELAXED_BY[spec.feature] not in rule.relax:
            continue  # a named deviation of cachewright's (docs/policy.md), unless relaxed
        # a capability the policy does not use cannot limit the check (http.no_stale_directives
        # is used only where the policy serves stale): it runs on every engine
        feature = spec.feature if spec.feature and FEATURES[spec.feature].used(policy) else None
        tags = (TAG, *((feature,) if feature else ()))
        yield Check(f"rfc.{spec.id}", f"{spec.section}: {spec.says}",
                    partial(_run, spec.run, rule), tags, feature)


def _run(run: Callable[[Ctx, Rule], None], rule: Rule, ctx: Ctx) -> None:
    run(ctx, rule)
