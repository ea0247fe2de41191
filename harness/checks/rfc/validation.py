"""Validation (RFC 9111 §4.3, RFC 9110 §13): an expired entry is revalidated with its
validators and a 304 refreshes it; a client's own conditional request is answered from the cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from cachewright.generator.model import Rule

from ...client import Response
from ...selection import Request
from ..base import Ctx
from ..rules import probe
from .shared import (
    BIG_BODY,
    EXPIRED,
    R9110,
    R9111,
    UPDATE_HEADERS,
    Answer,
    Spec,
    await_count,
    echoed_id,
    fresh,
    http_date,
    make_spec,
    program,
    said,
    send,
)


def check_revalidates(validators: Answer, header: str, ctx: Ctx, rule: Rule) -> None:
    """An expired entry with validators is revalidated: the origin gets the conditional request
    and answers 304; the client gets the stored body."""
    req = probe(ctx, rule)
    program(ctx, req, fresh("max-age=1", **validators))
    first = ctx.send_stored(req)
    ctx.sleep(EXPIRED)
    second = send(ctx, req)
    await_count(ctx, req, 2)
    seen = ctx.control().requests(path=req.unit)
    ctx.expect(len(seen) == 2, f"origin saw {len(seen)} requests, expected 2 (one revalidation)")
    sent = seen[-1].header(header)
    ctx.expect(sent is not None, f"the expired entry was fetched again without {header} "
               f"(origin saw {seen[-1].headers}); validators were {dict(validators)}")
    ctx.expect(seen[-1].outcome == "not_modified", f"the origin answered {seen[-1].status} to "
               f"{header}: {sent}")
    ctx.expect(second.status == 200 and second.body == first.body,
               f"after the 304 the client got {said(second)}, not the stored body")


def check_304_saves_body(ctx: Ctx, rule: Rule) -> None:
    """An expired entry costs the origin a 304, not the body again."""
    req = probe(ctx, rule)
    program(ctx, req, fresh("max-age=1", etag="cw-big", body="filler", body_size=BIG_BODY))
    ctx.send_stored(req)
    ctx.sleep(EXPIRED)
    second = send(ctx, req)
    await_count(ctx, req, 2)
    sent = ctx.control().body_bytes(req.unit)
    ctx.expect(sent == BIG_BODY, f"the origin sent {sent} body bytes over two requests, expected "
               f"{BIG_BODY} (the second answered 304); second: {said(second)}")
    ctx.expect(len(second.body) == BIG_BODY, f"the client got {len(second.body)} bytes, "
               f"expected {BIG_BODY}")


def _revalidated(ctx: Ctx, rule: Rule, after: Answer) -> tuple[Request, Response, Response]:
    """An entry stored with ETag "v1" and max-age=1, expired, and requested again with the
    origin now answering ``after``: the request, the first and the second response. Inside the
    policy's stale-while-revalidate window the expired entry is served stale while the
    validation runs in the background: then the second response is the next request's, the
    first to see the validation's result."""
    req = probe(ctx, rule)
    program(ctx, req, fresh("max-age=1", etag="v1"))
    first = ctx.send_stored(req)
    ctx.sleep(EXPIRED)
    program(ctx, req, after)
    second = send(ctx, req)
    await_count(ctx, req, 2)
    ctx.stored(req)
    if ctx.policy.cache.stale.while_revalidate and second.cache.outcome == "stale":
        ctx.sleep(0.3)  # the background fetch has reached the origin: let the engine store it
        second = send(ctx, req)
    return req, first, second


def check_304_freshens(ctx: Ctx, rule: Rule) -> None:
    """The 304's own freshness applies to the stored entry: the next request is a hit."""
    req, _, second = _revalidated(ctx, rule, fresh("max-age=60", etag="v1"))
    third = send(ctx, req)
    seen = ctx.count(req.unit)
    ctx.expect(seen == 2 and third.status == 200, f"after a 304 with max-age=60 the next request "
               f"reached the origin: {seen} requests, expected 2; third: {said(third)}")


def check_304_updates_headers(ctx: Ctx, rule: Rule) -> None:
    """A 304 replaces the stored header fields it carries (X-Cw-Version 1 becomes 2), for this
    response and for the hits after it."""
    req, _, second = _revalidated(ctx, rule, fresh("max-age=60", etag="v1",
                                                   headers={"X-Cw-Version": "2"}))
    third = send(ctx, req)
    for label, response in (("revalidated", second), ("next hit", third)):
        ctx.expect(response.header("X-Cw-Version") == "2", f"the {label} response has "
                   f"X-Cw-Version {response.header('X-Cw-Version')!r}, expected '2' from the 304 "
                   f"({said(response)})")


def check_changed_replaces(ctx: Ctx, rule: Rule) -> None:
    """A validation answered 200 (the resource changed) replaces the stored response."""
    req, first, second = _revalidated(ctx, rule, fresh("max-age=60", etag="v2"))
    third = send(ctx, req)
    ctx.expect(echoed_id(second) != echoed_id(first), f"the changed resource was answered with "
               f"the old body ({said(second)})")
    ctx.expect(third.body == second.body and ctx.count(req.unit) == 2,
               f"the new response was not stored: third {said(third)}, origin count "
               f"{ctx.count(req.unit)}")


def check_weak_stays_weak(ctx: Ctx, rule: Rule) -> None:
    """A weak entity tag reaches the client weak, on the miss and on the hit."""
    req = probe(ctx, rule)
    program(ctx, req, fresh(etag='W/"cw-weak"'))
    first = ctx.send_stored(req)
    second = send(ctx, req)
    for response in (first, second):
        ctx.expect(response.header("ETag") == 'W/"cw-weak"', f"ETag {response.header('ETag')!r}, "
                   f"expected W/\"cw-weak\" ({said(response)})")
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
        program(ctx, req, fresh(etag="v1", last_modified=int(time.time()) - 86400))
        ctx.send_stored(req)
        conditions = self.headers()
        answer = send(ctx, req, conditions)
        ctx.expect(answer.status == self.status, f"{conditions} answered {said(answer)}, expected "
                   f"{self.status}")
        ctx.expect(ctx.count(req.unit) == 1, f"{conditions} reached the origin "
                   f"({ctx.count(req.unit)} requests, expected 1)")


def _since(offset: float) -> Callable[[], Mapping[str, str]]:
    return lambda: {"If-Modified-Since": http_date(offset)}


# --------------------------------------------------------------------------- specs


def validation_specs() -> Iterator[Spec]:
    yield make_spec("validation.etag", f"{R9111}4.3.1", "an expired entry with a strong ETag is "
                    "revalidated with If-None-Match; the 304 serves the stored body", check_revalidates,
                    None, {"etag": "v1"}, "If-None-Match")
    yield make_spec("validation.etag-weak", f"{R9111}4.3.1", "an expired entry with a weak ETag is "
                    "revalidated with If-None-Match", check_revalidates, None, {"etag": 'W/"v1"'},
                    "If-None-Match")
    yield make_spec("validation.last-modified", f"{R9111}4.3.1", "an expired entry with only "
                    "Last-Modified is revalidated with If-Modified-Since", check_revalidates, None,
                    {"last_modified": "Wed, 01 Jan 2025 00:00:00 GMT"}, "If-Modified-Since")
    yield make_spec("validation.304-saves-body", f"{R9111}4.3.4", "an expired 16 KiB entry costs "
                    "the origin a 304, not the body", check_304_saves_body)
    yield make_spec("validation.304-freshens", f"{R9111}4.3.4", "a 304 with max-age=60 makes the "
                    "entry fresh: the next request is a hit", check_304_freshens)
    yield make_spec("validation.304-updates-headers", f"{R9111}3.2", "a 304 replaces the stored "
                    "header fields it carries", check_304_updates_headers, UPDATE_HEADERS)
    yield make_spec("validation.200-replaces", f"{R9111}4.3.3", "a full 200 to a validation "
                    "replaces the stored response", check_changed_replaces)
    yield make_spec("validation.weak-stays-weak", f"{R9110}8.8.3", "a weak ETag reaches the client "
                    "weak, on a miss and on a hit", check_weak_stays_weak)


def conditional_specs() -> Iterator[Spec]:
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
