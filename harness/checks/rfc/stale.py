"""Serving stale (RFC 5861, RFC 9111 §4.2.4): inside the origin's windows the stale response
stands in; past them, or without permission, it does not."""

from __future__ import annotations

from collections.abc import Iterator

from cachewright.generator.capabilities import serves_stale
from cachewright.generator.model import Policy, Rule

from ...client import Response
from ...selection import Request
from ..base import CheckSkipped, Ctx
from ..rules import probe
from .shared import (
    BACKGROUND,
    EXPIRED,
    R5861,
    R9111,
    STALE_IF_ERROR_STATUS,
    Answer,
    Spec,
    await_count,
    fresh,
    make_spec,
    program,
    said,
    send,
)


def after_expiry(ctx: Ctx, rule: Rule, cache_control: str, wait: float,
                 then: Answer) -> tuple[Request, Response, Response]:
    """A response stored with ``cache_control``; ``wait`` seconds later the origin answers
    ``then`` and the URL is asked again: the request, the first and the second response."""
    req = probe(ctx, rule)
    program(ctx, req, fresh(cache_control))
    first = ctx.send_stored(req)
    ctx.sleep(wait)
    program(ctx, req, then)
    return req, first, send(ctx, req)


FAILING: Answer = {"status": 500, "failure": "error"}


def check_no_stale_on_error(cache_control: str, ctx: Ctx, rule: Rule) -> None:
    """With the origin failing after expiry, the stale response is not served: an error is."""
    _, first, second = after_expiry(ctx, rule, cache_control, EXPIRED, FAILING)
    ctx.expect(second.status >= 500 and second.body != first.body,
               f"'{cache_control}' expired and the origin failing: {said(second)}, expected "
               "an error (504 or the origin's 500), not the stale response")


def check_stale_if_error(ctx: Ctx, rule: Rule) -> None:
    """Inside the origin's stale-if-error window, a failing origin's error is replaced by the
    stale response."""
    _, first, second = after_expiry(ctx, rule, "max-age=1, stale-if-error=60", EXPIRED, FAILING)
    ctx.expect(second.status == 200 and second.body == first.body,
               f"origin failing inside stale-if-error=60: {said(second)}, expected the stale copy")


def check_stale_if_error_ends(ctx: Ctx, rule: Rule) -> None:
    """Past the origin's stale-if-error window, the origin's error is returned."""
    _policy_windows_or_skip(ctx.policy)
    _, _, second = after_expiry(ctx, rule, "max-age=1, stale-if-error=1", EXPIRED + 1.5, FAILING)
    ctx.expect(second.status >= 500, f"origin failing after stale-if-error=1 ended: "
               f"{said(second)}, expected the origin's error")


def check_stale_while_revalidate(ctx: Ctx, rule: Rule) -> None:
    """Inside the origin's stale-while-revalidate window the stale response is served at once
    and one background request refreshes it."""
    slow = fresh("max-age=1, stale-while-revalidate=60", delay=1.5)
    req, first, second = after_expiry(ctx, rule, "max-age=1, stale-while-revalidate=60", EXPIRED,
                                      slow)
    ctx.expect(second.elapsed < 1.0 and second.body == first.body,
               f"inside stale-while-revalidate=60: {said(second)} after {second.elapsed:.2f}s, "
               "expected the stale copy at once")
    seen = await_count(ctx, req, 2, BACKGROUND + 1.5)
    ctx.expect(seen == 2, f"origin saw {seen} requests, expected 2 (one background refresh)")


def check_stale_while_revalidate_ends(ctx: Ctx, rule: Rule) -> None:
    """Past the origin's stale-while-revalidate window the client waits for a fresh response."""
    _policy_windows_or_skip(ctx.policy)
    _, first, second = after_expiry(ctx, rule, "max-age=1, stale-while-revalidate=1",
                                    EXPIRED + 1.5, fresh("max-age=60"))
    ctx.expect(second.body != first.body, f"after stale-while-revalidate=1 ended: {said(second)}, "
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


# --------------------------------------------------------------------------- specs


def stale_specs() -> Iterator[Spec]:
    yield make_spec("stale.while-revalidate", f"{R5861}3", "inside the origin's "
                    "stale-while-revalidate window the stale response is served at once and refreshed "
                    "in the background", check_stale_while_revalidate)
    yield make_spec("stale.while-revalidate-ends", f"{R5861}3", "past the origin's "
                    "stale-while-revalidate window the client gets a fresh response",
                    check_stale_while_revalidate_ends)
    yield make_spec("stale.if-error", f"{R5861}4", "inside the origin's stale-if-error window a "
                    "failing origin is replaced by the stale response", check_stale_if_error,
                    STALE_IF_ERROR_STATUS)
    yield make_spec("stale.if-error-ends", f"{R5861}4", "past the origin's stale-if-error window "
                    "the origin's error is returned", check_stale_if_error_ends)
    yield make_spec("stale.needs-permission", f"{R9111}4.2.4", "without a stale directive an "
                    "expired response is not served when the origin fails",
                    check_stale_needs_permission)
