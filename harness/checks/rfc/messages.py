"""What a stored response carries and how it answers other requests: Age and Date (RFC 9111
§4.2.3, §5.1), HEAD and ranges (RFC 9110 §9.3.2, §14), interim and partial responses (RFC 9111
§3), and hop-by-hop fields (RFC 9110 §7.6.1)."""

from __future__ import annotations

from collections.abc import Iterator

from cachewright.generator.model import Rule

from ..base import CheckFailed, Ctx
from ..rules import probe
from .shared import (
    AGE,
    CONNECTION,
    CONNECTION_REQUEST,
    INTERIM_WAIT,
    R9110,
    R9111,
    Answer,
    Spec,
    echoed_id,
    fresh,
    make_spec,
    program,
    said,
    send,
    settle,
)


def check_age_on_hit(ctx: Ctx, rule: Rule) -> None:
    """A response served from the cache carries Age: the seconds it has been stored, as digits."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    ctx.send_stored(req)
    ctx.sleep(1.2)
    hit = send(ctx, req)
    age = hit.header("Age") or ""
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {said(hit)}")
    ctx.expect(age.isdigit() and int(age) >= 1, f"the hit stored 1.2s ago has Age {age!r}, "
               "expected an integer of at least 1")


def check_age_from_origin(ctx: Ctx, rule: Rule) -> None:
    """The Age the origin sent is part of the stored response's age."""
    req = probe(ctx, rule)
    program(ctx, req, fresh(headers={"Age": "30"}))
    ctx.send_stored(req)
    hit = send(ctx, req)
    age = hit.header("Age") or ""
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {said(hit)}")
    ctx.expect(age.isdigit() and int(age) >= 30, f"the origin said Age: 30; the hit says Age "
               f"{age!r}, expected at least 30")


def check_date_on_hit(ctx: Ctx, rule: Rule) -> None:
    """A hit carries the stored response's Date (with Age, the client can tell how old it is)."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    first = ctx.send_stored(req)
    ctx.sleep(1.2)
    hit = send(ctx, req)
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {said(hit)}")
    ctx.expect(hit.header("Date") == first.header("Date"), f"the hit's Date is "
               f"{hit.header('Date')!r}, the stored response's {first.header('Date')!r} "
               f"(Age {hit.header('Age')!s})")


# --------------------------------------------------------------------------- HEAD and ranges


def check_head_from_get(ctx: Ctx, rule: Rule) -> None:
    """A stored GET response answers HEAD: its header fields, no body, no origin request."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    first = ctx.send_stored(req)
    head = send(ctx, req, method="HEAD")
    ctx.expect(ctx.count(req.unit) == 1, f"HEAD reached the origin: {said(head)}")
    ctx.expect(head.status == 200 and head.body == b"", f"HEAD answered {said(head)} with "
               f"{len(head.body)} body bytes")
    ctx.expect(head.header("Content-Length") == str(len(first.body)),
               f"HEAD's Content-Length {head.header('Content-Length')!r}, the GET's body is "
               f"{len(first.body)} bytes")


def check_head_then_get(ctx: Ctx, rule: Rule) -> None:
    """A HEAD on a miss never leaves an empty entry that a GET is then answered with."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    send(ctx, req, method="HEAD")
    settle(ctx, req, False)
    get = send(ctx, req)
    length = get.header("Content-Length")
    ctx.expect(get.status == 200 and echoed_id(get) is not None,
               f"GET after HEAD answered {said(get)} with {len(get.body)} body bytes")
    ctx.expect(length is None or length == str(len(get.body)),
               f"GET after HEAD: Content-Length {length} but {len(get.body)} bytes")


_HUNDRED: Answer = fresh(body="filler", body_size=100)


def check_range_from_stored(ctx: Ctx, rule: Rule) -> None:
    """A range of a stored full response is answered from the cache: 206 with exactly those
    bytes and their Content-Range, or (a server may ignore Range) the whole 200."""
    req = probe(ctx, rule)
    program(ctx, req, _HUNDRED)
    first = ctx.send_stored(req)
    part = send(ctx, req, {"Range": "bytes=0-9"})
    ranged = part.status == 206 and part.body == first.body[:10] and \
        part.header("Content-Range") == "bytes 0-9/100"
    ctx.expect(ranged or (part.status == 200 and part.body == first.body),
               f"Range bytes=0-9 answered {said(part)} with {len(part.body)} bytes, Content-Range "
               f"{part.header('Content-Range')!r}")
    ctx.expect(ctx.count(req.unit) == 1, f"the range reached the origin ({ctx.count(req.unit)} requests)")
    if not ranged:
        ctx.notes.append("Range ignored: the whole 200 was sent")


def check_range_on_miss(ctx: Ctx, rule: Rule) -> None:
    """A range request on a miss leaves the full response stored for the next request."""
    req = probe(ctx, rule)
    program(ctx, req, _HUNDRED)
    part = send(ctx, req, {"Range": "bytes=0-9"})
    settle(ctx, req, True)
    full = send(ctx, req)
    ctx.expect(part.status in (200, 206), f"Range on a miss answered {said(part)}")
    ctx.expect(full.status == 200 and len(full.body) == 100 and ctx.count(req.unit) == 1,
               f"the next full request: {said(full)}, {len(full.body)} bytes, origin count "
               f"{ctx.count(req.unit)} (expected a hit of 100 bytes)")


def check_range_unsatisfiable(ctx: Ctx, rule: Rule) -> None:
    """A range past the end of a stored response is answered from the cache with 416 (or, a
    server may ignore Range, the whole 200), never a 206."""
    req = probe(ctx, rule)
    program(ctx, req, _HUNDRED)
    first = ctx.send_stored(req)
    part = send(ctx, req, {"Range": "bytes=500-600"})
    ctx.expect(part.status == 416 or (part.status == 200 and part.body == first.body),
               f"Range bytes=500-600 of 100 bytes answered {said(part)}")
    ctx.expect(ctx.count(req.unit) == 1, f"the range reached the origin ({ctx.count(req.unit)} requests)")


def check_interim(ctx: Ctx, rule: Rule) -> None:
    """An interim 103 before the final 200: the client gets the 200, and the 200 is stored."""
    req = probe(ctx, rule)
    program(ctx, req, fresh(interim=[103]))
    try:
        first = send(ctx, req, timeout=INTERIM_WAIT)
        ctx.stored(req)
        second = send(ctx, req, timeout=INTERIM_WAIT)
    except TimeoutError as exc:
        raise CheckFailed(f"no answer within {INTERIM_WAIT:.0f}s to a request the origin answered "
                          "103 then 200 at once") from exc
    ctx.expect(first.status == 200, f"the final 200 reached the client as {said(first)}")
    ctx.expect(ctx.count(req.unit) == 1, f"the final response was not stored: {said(second)}")


def check_partial_not_full(ctx: Ctx, rule: Rule) -> None:
    """A 206 the origin sends to a full request reaches the client as 206 and is never used
    as the full response."""
    req = probe(ctx, rule)
    program(ctx, req, fresh(status=206, body="filler", body_size=10,
                            headers={"Content-Range": "bytes 0-9/100"}))
    first = send(ctx, req)
    settle(ctx, req, False)
    second = send(ctx, req)
    ctx.expect(first.status == 206, f"the origin's 206 reached the client as {said(first)}")
    ctx.expect(ctx.count(req.unit) == 2, f"the stored partial response answered a full "
               f"request: {said(second)}")


# --------------------------------------------------------------------------- hop-by-hop fields


def check_connection_response(ctx: Ctx, rule: Rule) -> None:
    """A field the origin lists in Connection reaches neither the client nor the stored entry."""
    req = probe(ctx, rule)
    program(ctx, req, fresh(connection=["X-Cw-Hop"], headers={"X-Cw-Hop": "secret"}))
    first = ctx.send_stored(req)
    hit = send(ctx, req)
    for label, response in (("miss", first), ("hit", hit)):
        ctx.expect(response.header("X-Cw-Hop") is None, f"the {label} carries the hop-by-hop "
                   f"field X-Cw-Hop: {response.header('X-Cw-Hop')} ({said(response)})")
    ctx.expect(ctx.count(req.unit) == 1, f"no hit: {said(hit)}")


def check_connection_request(ctx: Ctx, rule: Rule) -> None:
    """A field the client lists in Connection does not reach the origin."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    send(ctx, req, {"Connection": "X-Cw-Hop", "X-Cw-Hop": "secret"})
    seen = ctx.control().requests(path=req.unit)[-1]
    ctx.expect(seen.header("X-Cw-Hop") is None, f"the origin received the client's hop-by-hop "
               f"field X-Cw-Hop: {seen.header('X-Cw-Hop')}")


def message_specs() -> Iterator[Spec]:
    """Age, Date, HEAD and ranges."""
    yield make_spec("age.on-hit", f"{R9111}5.1", "a hit carries Age, the seconds it was stored",
                    check_age_on_hit, AGE)
    yield make_spec("age.from-origin", f"{R9111}4.2.3", "the origin's Age is part of the hit's Age",
                    check_age_from_origin)
    yield make_spec("date.on-hit", f"{R9111}4.2.3", "a hit carries the stored response's Date",
                    check_date_on_hit)
    yield make_spec("head.from-get", f"{R9110}9.3.2", "a stored GET response answers HEAD",
                    check_head_from_get)
    yield make_spec("head.then-get", f"{R9111}4.3.5", "a HEAD on a miss never leaves an empty "
                    "entry for GET", check_head_then_get)
    yield make_spec("range.from-stored", f"{R9110}14.2", "a range of a stored response is answered "
                    "from the cache: 206 with those bytes, or the whole 200", check_range_from_stored)
    yield make_spec("range.on-miss", f"{R9111}3.4", "a range request on a miss leaves the full "
                    "response stored", check_range_on_miss)
    yield make_spec("range.unsatisfiable", f"{R9110}15.5.17", "a range past the end of a stored "
                    "response is answered 416 (or the whole 200), never 206", check_range_unsatisfiable)


def connection_specs() -> Iterator[Spec]:
    """Hop-by-hop fields."""
    yield make_spec("connection.response", f"{R9110}7.6.1", "fields the origin lists in Connection "
                    "are neither forwarded nor stored", check_connection_response, CONNECTION)
    yield make_spec("connection.request", f"{R9110}7.6.1", "fields the client lists in Connection "
                    "do not reach the origin", check_connection_request, CONNECTION_REQUEST)
