"""``methods``: unsafe methods reach the origin uncached, odd methods are refused."""

from __future__ import annotations

from cachewright.generator.model import SAFE_METHODS

from ..base import Ctx
from ..rules import origin_answer, probe
from .shared import rules_or_skip

UNSAFE_METHODS = ("PUT", "PATCH", "DELETE", "OPTIONS")
ODD_METHODS = ("get", "Get", "PROPFIND", "CW-M_1")


def check_methods(ctx: Ctx) -> None:
    """Failure mode: writes answered from (or stored in) the cache, and unknown or odd methods
    piped to the origin. PUT/PATCH/DELETE/OPTIONS reach the origin every time and are never
    served to a GET; odd tokens get 400/405/501 and never reach it."""
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    ids = set()
    for method in (m for m in UNSAFE_METHODS if m in SAFE_METHODS):
        before = ctx.count(req.unit)
        for _ in range(2):
            ids.add(ctx.send(req, method=method, body=b"x=1").response_id)
        ctx.expect(ctx.count(req.unit) == before + 2, f"{method} twice made "
                   f"{ctx.count(req.unit) - before} origin requests, expected 2")
    get = ctx.send(req)
    ctx.expect(get.response_id not in ids, "a GET was served the answer to a write")
    before = ctx.count(req.unit)
    for method in ODD_METHODS:
        odd = ctx.send(req, method=method)
        ctx.expect(odd.status in (400, 405, 501), f"method {method!r} answered {odd.status}, "
                   "expected 400/405/501")
        ctx.expect(ctx.count(req.unit) == before, f"method {method!r} reached the origin")

