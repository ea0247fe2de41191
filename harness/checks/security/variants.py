"""``cloaking`` and ``fill``: variants in what the key leaves out (ignored parameters, unkeyed
headers) neither reach the origin as another target than the key says nor store more objects."""

from __future__ import annotations

from ...selection import unmarked
from ..base import Ctx
from ..rules import origin_answer, probe
from .shared import produced_by, rules_or_skip

FILL_VARIANTS = 20


def cloaking_queries(param: str) -> list[str]:
    """Queries that differ only in an ignored parameter, some smuggling a value inside it."""
    return ["a=1", f"a=1&{param}=x;a=evil", f"a=1&{param}=x&a=2", f"a=1&{param}=x%26a%3Devil",
            f"{param}=x&a=1", f"a=1&{param}", f"a=1&{param}=x%3Ba=evil", f"a=1&{param}=&a=evil"]


def check_cloaking(ctx: Ctx) -> None:
    """Failure mode: the key drops an ignored parameter that still reaches the origin (or the
    reverse), so a value cloaked inside it is stored under the clean URL's key. For each query,
    a fresh path shows what the origin receives; on one shared path, every answer must have
    been produced from exactly that target."""
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    param = ctx.policy.cache.query.ignore[0].replace("*", "source")
    shared = probe(ctx, rule)
    ctx.program(shared.unit, **origin_answer(ctx.policy, rule))
    for query in cloaking_queries(param):
        fresh = probe(ctx, rule)
        ctx.program(fresh.unit, **origin_answer(ctx.policy, rule))
        ctx.send(fresh.with_query(query))
        expected = _forwarded_query(ctx, fresh.unit)
        answer = ctx.send(shared.with_query(query))
        produced = produced_by(ctx, shared.unit, answer)
        got = unmarked(produced.query) if produced else None
        ctx.expect(got is None or got == expected, f"?{query}: the origin receives ?{expected}, "
                   f"but the answer ({answer.cache.outcome}) was made for ?{got}")


def _forwarded_query(ctx: Ctx, path: str) -> str | None:
    seen = ctx.control().requests(path=path)
    return unmarked(seen[-1].query) if seen else None


def check_fill(ctx: Ctx) -> None:
    """Failure mode: an attacker fills (and evicts) the cache with variants that differ only in
    what is not keyed. After N variants in ignored parameters and N in unkeyed headers, the
    engine's own record holds at most one object per path."""
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    ignore = ctx.policy.cache.query.ignore
    for kind in ("query", "header") if ignore else ("header",):
        req = probe(ctx, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule))
        for i in range(FILL_VARIANTS):
            if kind == "query":
                ctx.send(req.with_query(f"{ignore[-1].replace('*', 'fill')}={i}"))
            else:
                ctx.send(req, headers={"X-Cw-Fill": str(i), "User-Agent": f"cw-fill/{i}"})
        stored = len(ctx.stored(req))
        ctx.expect(stored <= 1, f"{FILL_VARIANTS} variants in unkeyed {kind} stored {stored} "
                   f"objects for {req.unit}, expected at most 1")

