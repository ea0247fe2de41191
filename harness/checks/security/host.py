"""``host``: unknown hosts are refused, absolute-form targets cannot write another host's entry,
and key parts cannot be shifted into one another."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

from cachewright.generator.model import Policy, Rule

from ...runtime.prepare import request_host
from ...selection import Request, example, probe_for, select_rule
from ..base import CheckSkipped, Ctx
from ..rules import origin_answer, probe
from .shared import cacheable_rules, rules_or_skip

SEPARATORS = ("", "#", "|", ":", "?", ";", ",")


def check_unknown_hosts(ctx: Ctx) -> None:
    """Failure mode: a cache answering any Host stores entries for attacker-chosen hosts (and
    serves the origin's default site for them). Other hosts, by header or by an absolute-form
    target, get 421."""
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    req = probe(ctx, rule)
    evil = "evil.cachewright.invalid"
    by_header = ctx.send(replace(req, host=evil))
    ctx.expect(by_header.status == 421, f"Host: {evil} answered {by_header.status}, expected 421")
    absolute = ctx.client.request("GET", f"{ctx.scheme}://{evil}{req.target}", {},
                                  host=req.host, scheme=ctx.scheme)
    ctx.expect(absolute.status == 421, f"GET {ctx.scheme}://{evil}{req.target} (Host: {req.host}) "
               f"answered {absolute.status}, expected 421")


def _other_host(policy: Policy) -> str:
    exact = [h for h in policy.listen.hosts if not h.startswith("*.")]
    return exact[1] if len(exact) > 1 else "other.cachewright.test"


def check_absolute_form(ctx: Ctx) -> None:
    """Failure mode: ``GET http://other/path`` with ``Host: victim`` is routed by one name and
    keyed by the other, so the response written for it is served to the victim's clients."""
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    req = probe(ctx, rule)
    if rule.match.hosts:
        raise CheckSkipped(f"rule '{rule.name}' matches on host")
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    other = _other_host(ctx.policy)
    target = f"{ctx.scheme}://{other}{req.target}"
    first = ctx.client.request("GET", target, {}, host=req.host, scheme=ctx.scheme)
    if first.status in (400, 421):
        ctx.notes.append(f"absolute-form to {other} refused ({first.status})")
        return
    victim = ctx.send(req)
    ctx.expect(victim.response_id != first.response_id, f"{req.host} was served the entry written "
               f"by GET {target} (Host: {req.host}): {victim.cache.outcome}")


def _key_parts(rule: Rule) -> list[tuple[str, str, str]]:
    """The rule's extra key parts as (kind, name, label as the engines write it)."""
    parts = [("header", h, f"h:{h.lower()}:") for h in rule.key.headers]
    parts += [("cookie", c, f"c:{c}:") for c in rule.key.cookies]
    return parts


def _with_part(req: Request, kind: str, name: str, value: str) -> Request:
    if kind == "header":
        headers = tuple((n, v) for n, v in req.headers if n.lower() != name.lower())
        return replace(req, headers=(*headers, (name, value)))
    cookies = tuple((n, v) for n, v in req.cookies if n != name)
    return replace(req, cookies=(*cookies, (name, value)))


def _lead(rule: Rule, kind: str, name: str) -> str:
    """What a value of this key part must start with for the rule's own condition on it to
    hold (``^2`` → ``2``); ``""`` where the rule puts none."""
    conditions = [c.regex for c in (rule.match.headers if kind == "header" else rule.match.cookies)
                  if c.regex and (c.name.lower() == name.lower() if kind == "header" else c.name == name)]
    if not conditions:
        return ""
    leads = [x for x in (example(r, seed=s) for r in conditions for s in range(3)) if x is not None]
    return next((lead for lead in ("", *leads) if all(re.search(r, lead + "x") for r in conditions)), "")


def _collision_pairs(req: Request, rule: Rule) -> Iterator[tuple[str, Request, Request]]:
    """Pairs whose key parts, concatenated with a separator, are equal: text is shifted from
    the query into the first extra part, and from each part into the next. Every part value
    starts with what the rule's own condition on that part needs, so both stay the rule's."""
    parts = [(kind, name, label, _lead(rule, kind, name)) for kind, name, label in _key_parts(rule)]
    for sep in SEPARATORS:
        kind, name, label, lead = parts[0]
        a = _with_part(req.with_query(f"cwq=1{sep}{label}{lead}x"), kind, name, f"{lead}y")
        b = _with_part(req.with_query("cwq=1"), kind, name, f"{lead}x{sep}{label}{lead}y")
        yield f"query|{name} with '{sep}'", a, b
        for (k1, n1, _, p1), (k2, n2, l2, p2) in zip(parts, parts[1:], strict=False):
            a = _with_part(_with_part(req, k1, n1, f"{p1}x{sep}{l2}{p2}y"), k2, n2, f"{p2}z")
            b = _with_part(_with_part(req, k1, n1, f"{p1}x"), k2, n2, f"{p2}y{sep}{l2}{p2}z")
            yield f"{n1}|{n2} with '{sep}'", a, b


def _both_schemes(policy: Policy) -> bool:
    https = policy.listen.https
    return bool(https and policy.listen.http and not https.redirect_http
                and {"scheme", "host"} <= set(policy.cache.key))


def _scheme_host_pair(ctx: Ctx) -> Iterator[tuple[str, Request, str, Request, str]]:
    """http://s<host>/p and https://<host>/p: equal when scheme and host are concatenated."""
    if not _both_schemes(ctx.policy):
        return
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    yield "scheme|host", replace(req, host="s" + req.host), "http", req, "https"


def _part_pairs(ctx: Ctx) -> Iterator[tuple[str, Request, str, Request, str]]:
    """Pairs for the first rule with extra key parts, both of whose requests that rule still
    answers (a value the rule's own match condition refuses would measure another rule)."""
    rule = _keyed_rule(ctx.policy)
    if rule is None:
        return
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    for what, a, b in _usable_pairs(ctx.policy, req, rule):
        yield what, a, ctx.scheme, b, ctx.scheme


def _keyed_rule(policy: Policy) -> Rule | None:
    return next((r for r in cacheable_rules(policy, limit=16) if _key_parts(r)), None)


def _usable_pairs(policy: Policy, req: Request, rule: Rule) -> Iterator[tuple[str, Request, Request]]:
    """The collision pairs that can collide under this key (a query shifted into a part only
    where the key holds the query) and that ``rule`` answers on both sides."""
    keyed_query = "query" in policy.cache.key
    for what, a, b in _collision_pairs(req, rule):
        if (keyed_query or not what.startswith("query|")) and \
                select_rule(policy, a) == rule == select_rule(policy, b):
            yield what, a, b


def collidable(policy: Policy) -> bool:
    """Whether some pair of requests could collide: both schemes served with the scheme in the
    key, or a keyed rule with a usable pair (values it accepts that can hold a separator)."""
    if _both_schemes(policy):
        return True
    rule = _keyed_rule(policy)
    sample = probe_for(policy, rule, tag="cwprobe", host=request_host(policy)) if rule else None
    return rule is not None and sample is not None and \
        next(_usable_pairs(policy, sample, rule), None) is not None


def check_key_collision(ctx: Ctx) -> None:
    """Failure mode: key parts concatenated without an unambiguous separator collide, so a
    crafted request writes the entry another client's (different) request reads."""
    if not _both_schemes(ctx.policy) and not any(_key_parts(r) for r in cacheable_rules(ctx.policy, 16)):
        raise CheckSkipped("one scheme, and no rule keys on headers or cookies (host and path "
                           "cannot collide: a host holds no '/')")
    pairs = [*_scheme_host_pair(ctx), *_part_pairs(ctx)]
    if not pairs:
        raise CheckSkipped("no pair of requests the same rule answers can shift one key part "
                           "into another (the rule's own conditions refuse the crafted values)")
    for what, a, a_scheme, b, b_scheme in pairs:
        first = ctx.send(a, scheme=a_scheme)
        second = ctx.send(b, scheme=b_scheme)
        if first.status >= 400 or second.status >= 400:
            continue  # refused: cannot collide
        ctx.expect(second.response_id != first.response_id, f"key parts collide ({what}): "
                   f"{b_scheme}://{b.host}{b.target} {b.headers} {b.cookies} was served the entry of "
                   f"{a_scheme}://{a.host}{a.target} {a.headers} {a.cookies}")

