"""Invalidation (RFC 9111 §4.4): a successful unsafe request invalidates the stored response
for its URL, and for its Location and Content-Location on the same host."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from cachewright.generator.model import Rule

from ...client import Response
from ...selection import Request, select_rule
from ..base import CheckSkipped, Ctx
from ..rules import probe
from .shared import INVALIDATE, R9111, Spec, fresh, gets, make_spec, program, said, send


def _invalidating(ctx: Ctx, method: str, req: Request, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """Send ``method`` to ``req``'s URL with the origin answering ``status``; skipped when the
    policy refuses the method before the origin."""
    before = ctx.control().count(req.unit, method)
    program(ctx, req, {"status": status, "headers": dict(headers or {}),
                       **({"failure": "error"} if status >= 500 else {})})
    response = send(ctx, req, method=method, body=b"cw=1")
    if ctx.control().count(req.unit, method) == before:
        raise CheckSkipped(f"the policy does not pass {method} to the origin ({response.status})")
    return response


def check_invalidate(method: str, ctx: Ctx, rule: Rule) -> None:
    """A successful unsafe request invalidates the stored response for its URL."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    ctx.send_stored(req)
    done = _invalidating(ctx, method, req)
    program(ctx, req, fresh())
    after = send(ctx, req)
    ctx.expect(gets(ctx, req) == 2, f"after {method} answered {done.status}, GET was answered "
               f"from the cache: {said(after)}")


def check_failed_keeps(ctx: Ctx, rule: Rule) -> None:
    """An unsafe request that fails (500) does not invalidate the stored response."""
    req = probe(ctx, rule)
    program(ctx, req, fresh())
    ctx.send_stored(req)
    done = _invalidating(ctx, "POST", req, 500)
    after = send(ctx, req)
    ctx.expect(gets(ctx, req) == 1 and after.status == 200, f"after a POST answered "
               f"{done.status}, GET: {said(after)} (origin GETs {gets(ctx, req)}, expected 1)")


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
    program(ctx, named, fresh())
    ctx.send_stored(named)
    done = _invalidating(ctx, "POST", req, 201 if header == "Location" else 200,
                         {header: named.target})
    after = send(ctx, named)
    ctx.expect(gets(ctx, named) == 2, f"after POST answered {done.status} with {header}: "
               f"{named.target}, that URL was answered from the cache: {said(after)}")


def check_other_host_kept(ctx: Ctx, rule: Rule) -> None:
    """A Location on another host does not invalidate that host's stored response."""
    req = probe(ctx, rule)
    named = _other_host(ctx, _sibling(ctx, rule, req), rule)
    program(ctx, named, fresh())
    ctx.send_stored(named)
    _invalidating(ctx, "POST", req, 201, {"Location": f"http://{named.host}{named.target}"})
    after = send(ctx, named)
    ctx.expect(gets(ctx, named) == 1, f"a Location on {named.host} invalidated its entry: "
               f"{said(after)}")


def _other_host(ctx: Ctx, req: Request, rule: Rule) -> Request:
    """``req`` on another host the policy serves with the same rule, in another entry."""
    policy = ctx.policy
    named = [h for h in policy.listen.hosts if not h.startswith("*.")]
    others = [h for h in named if h != req.host] if policy.listen.hosts else ["other.cachewright.test"]
    moved = replace(req, host=others[0]) if others else req
    if moved is req or "host" not in policy.cache.key or select_rule(policy, moved) != rule:
        raise CheckSkipped("needs a second host, in the key, that the same rule answers")
    return moved


# --------------------------------------------------------------------------- specs


def invalidation_specs() -> Iterator[Spec]:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        yield make_spec(f"invalidate.{method.lower()}", f"{R9111}4.4", f"a successful {method} "
                        "invalidates the stored response for its URL", check_invalidate, INVALIDATE,
                        method)
    yield make_spec("invalidate.location", f"{R9111}4.4", "a successful POST invalidates its "
                    "Location on the same host", check_invalidate_named, INVALIDATE, "Location")
    yield make_spec("invalidate.content-location", f"{R9111}4.4", "a successful POST invalidates "
                    "its Content-Location on the same host", check_invalidate_named, INVALIDATE,
                    "Content-Location")
    yield make_spec("invalidate.other-host", f"{R9111}4.4", "a Location on another host is not "
                    "invalidated", check_other_host_kept)
    yield make_spec("invalidate.failed", f"{R9111}4.4", "a POST answered 500 does not invalidate",
                    check_failed_keeps)
