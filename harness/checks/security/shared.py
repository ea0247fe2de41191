"""What the security checks share: the cacheable rules a probe can reach, and the ground truth
of a leak (the origin request that produced a response, and what it carried)."""

from __future__ import annotations

from cachewright.generator.model import Policy, Rule

from ...client import Response
from ...origin import SeenRequest
from ...runtime.prepare import request_host
from ...selection import probe_for
from ..base import CheckSkipped, Ctx
from ..rules import isolated_rule

MAX_RULES = 3


def cacheable_rules(policy: Policy, limit: int = MAX_RULES, relaxed: str = "") -> list[Rule]:
    """Up to ``limit`` cacheable rules a GET probe can reach, in policy order (rules whose
    probes get cache entries of their own first); none that relaxes the deviation ``relaxed``
    (its user chose the RFC's behaviour, which the check calls a leak)."""
    host = request_host(policy)
    found = []
    for rule in (*policy.rules, policy.default_rule):
        if relaxed in rule.relax:
            continue
        sample = probe_for(policy, rule, tag="cwprobe", host=host) if rule.cache else None
        if sample is not None and sample.method == "GET":
            found.append(rule)
    return sorted(found, key=lambda r: not isolated_rule(policy, r))[:limit]


def rules_or_skip(policy: Policy, limit: int = MAX_RULES, relaxed: str = "") -> list[Rule]:
    rules = cacheable_rules(policy, limit, relaxed)
    if not rules:
        but = f" that keeps the {relaxed} deviation" if relaxed else ""
        raise CheckSkipped(f"no reachable cacheable rule{but} to exercise")
    return rules


def secret_for(ctx: Ctx) -> str:
    return f"cwsecret{ctx.tag()}"


def produced_by(ctx: Ctx, path: str, response: Response) -> SeenRequest | None:
    """The origin request that produced ``response`` (by its response id), if any."""
    if response.response_id is None:
        return None
    seen = ctx.control().requests(path=path)
    return next((r for r in seen if r.response_id == response.response_id), None)


def carries(seen: SeenRequest | None, secret: str) -> bool:
    """Whether an origin request carried ``secret`` in any header or its target."""
    if seen is None:
        return False
    return secret in seen.target or any(secret in v for _, v in seen.headers)


def expect_not_leaked(ctx: Ctx, path: str, response: Response, secret: str, who: str) -> None:
    """``response`` (sent to ``who``) was not produced from a request carrying ``secret`` and
    hands out no cookie holding it."""
    origin = produced_by(ctx, path, response)
    ctx.expect(not carries(origin, secret), f"{who} was served response {response.response_id} "
               f"({response.cache.outcome}), produced for the client that sent the credential")
    if origin is None or not origin.header_values("cookie"):
        return
    cookies = [v for n, v in response.headers if n.lower() == "set-cookie" and secret in v]
    ctx.expect(not cookies, f"{who} was handed a cookie set for another client: {cookies}")

