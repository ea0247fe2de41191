"""``private``: one client's credentialed response, cookie or uncacheable answer never reaches
another client."""

from __future__ import annotations

from dataclasses import replace

from ..base import STORE_WAIT, Ctx
from ..rules import origin_answer, probe
from .shared import expect_not_leaked, rules_or_skip, secret_for


def check_authorization_isolated(ctx: Ctx) -> None:
    """Failure mode: a response to a request with Authorization is served to another client
    (stock nginx reuses it). Client A sends a token; anonymous B and client C (another token)
    must not get A's response."""
    for rule in rules_or_skip(ctx.policy):
        req = probe(ctx, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule))
        secret = secret_for(ctx)
        ctx.send(req, headers={"Authorization": f"Bearer {secret}"})
        expect_not_leaked(ctx, req.unit, ctx.send(req), secret, f"rule '{rule.name}': anonymous B")
        other = ctx.send(req, headers={"Authorization": "Bearer cw-other"})
        expect_not_leaked(ctx, req.unit, other, secret, f"rule '{rule.name}': C (another token)")


def check_session_cookie_isolated(ctx: Ctx) -> None:
    """Failure mode: a response personalised by a session cookie is served to an anonymous
    client. Rules that strip cookies may share the response: the origin never saw the cookie."""
    for rule in rules_or_skip(ctx.policy, relaxed="request-cookie"):
        req = probe(ctx, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule))
        secret = secret_for(ctx)
        ctx.send(replace(req, cookies=(*req.cookies, ("cw_session", secret))))
        expect_not_leaked(ctx, req.unit, ctx.send(req), secret, f"rule '{rule.name}': anonymous B")


def check_set_cookie_isolated(ctx: Ctx) -> None:
    """Failure mode: a cacheable response carrying Set-Cookie is stored with it, so every later
    client is handed the first client's session cookie."""
    for rule in rules_or_skip(ctx.policy, relaxed="set-cookie"):
        req = probe(ctx, rule)
        secret = secret_for(ctx)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule) | {"set_cookie": [f"cw_session={secret}; Path=/"]})
        first = ctx.send(req)
        ctx.stored(req, wait=STORE_WAIT)  # an engine that stores it may finish after answering
        second = ctx.send(req)
        cookies = [v for n, v in second.headers if n.lower() == "set-cookie" and secret in v]
        ctx.expect(second.response_id != first.response_id or not cookies,
                   f"rule '{rule.name}': B was served A's stored response {first.response_id} "
                   f"with A's Set-Cookie {cookies}")


def check_directives(ctx: Ctx) -> None:
    """Failure mode: private / no-store (always) and no-cache / max-age=0 (when respecting
    origin headers) answers are stored and served to the next client."""
    rules = rules_or_skip(ctx.policy, limit=8)
    cases = []
    respect = next((r for r in rules if r.origin_headers == "respect"), None)
    override = next((r for r in rules if r.origin_headers == "override"), None)
    if respect is not None:
        cases += [(respect, d) for d in ("private", "no-store", "no-cache", "max-age=0")]
    if override is not None:
        cases += [(override, d) for d in ("private", "no-store")]
    for rule, directive in cases:
        req = probe(ctx, rule)
        ctx.program(req.unit, status=200, cache_control=directive)
        first, second = ctx.send(req), ctx.send(req)
        ctx.expect(second.response_id != first.response_id and ctx.count(req.unit) == 2,
                   f"rule '{rule.name}' ({rule.origin_headers}): a 'Cache-Control: {directive}' "
                   f"answer was served again ({second.cache.outcome})")

