"""Checks derived from each rule: cacheable or bypassed, first match wins, TTL proven, key parts,
Vary, and how origin headers are treated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache, partial

from cachewright.generator.model import Policy, Rule

from ..origin import RuleSpec
from ..runtime.prepare import request_host
from ..selection import Request, distinct_values, isolate, overlap_probe, probe_for
from .base import Check, CheckSkipped, Ctx

SHORT_TTL = 4  # TTLs up to this are proven by waiting; longer ones by the engine's own record
TTL_TOLERANCE = 3.0


def effective_ttl(policy: Policy, rule: Rule) -> int:
    return rule.ttl if rule.ttl is not None else policy.cache.default_ttl


def stored_when_fresh(policy: Policy, rule: Rule, req: Request) -> bool:
    """Whether ``req`` may be answered from the cache under ``rule`` (the policy's safe defaults)."""
    if not rule.cache or req.method not in ("GET", "HEAD"):
        return False
    if any(n.lower() == "authorization" for n, _ in req.headers):
        if not ("authorization" in {h.lower() for h in rule.key.headers}
                or "authorization-lookup" in rule.relax):
            return False
    if req.cookies and not (rule.strip_cookies or rule.key.cookies or "request-cookie" in rule.relax):
        return False
    return True


def origin_answer(policy: Policy, rule: Rule) -> RuleSpec:
    """An origin answer the rule will store: the rule's TTL applies unless origin headers are
    respected and the rule has none, in which case the origin says max-age=60."""
    if rule.origin_headers == "respect" and not effective_ttl(policy, rule):
        return {"status": 200, "cache_control": "max-age=60"}
    return {"status": 200}


def probe(ctx: Ctx, rule: Rule) -> Request:
    """A fresh request for ``rule`` whose origin count (and, when the rule caches, cache entry)
    no other check shares; skipped when the rule leaves no room for one."""
    tag = ctx.tag()
    req = probe_for(ctx.policy, rule, tag=tag, host=request_host(ctx.policy))
    if req is None:
        raise CheckSkipped(f"cannot build a request that rule '{rule.name}' matches")
    return own(ctx, req, tag, rule)


def own(ctx: Ctx, req: Request, tag: str, rule: Rule) -> Request:
    """``req``, or the same request on a host of its own, isolated from every other check's
    requests (``probe.isolate``); skipped when neither is."""
    found = isolate(ctx.policy, req, tag, entry=rule.cache)
    if found is None:
        raise CheckSkipped(f"rule '{rule.name}' leaves no room for a marker of this check in "
                           f"its requests ({req.target}: the path cannot vary and "
                           f"{_no_query_room(ctx.policy)}), so they would share "
                           "a cache entry with other checks")
    return found


def _no_query_room(policy: Policy) -> str:
    if "query" not in policy.cache.key:
        if "host" in policy.cache.key:
            return "cache.key has no query, and the rule is answered on no other host"
        return "cache.key has neither query nor host"
    return "cache.query.ignore drops the marker parameters"


@lru_cache(maxsize=4096)
def isolated_rule(policy: Policy, rule: Rule) -> bool:
    """Whether fresh probes of ``rule`` get cache entries of their own (rules that match one
    path, with no query in the key, do not): checks choosing among rules prefer these."""
    sample = probe_for(policy, rule, tag="cwprobe", host=request_host(policy))
    return sample is not None and isolate(policy, sample, "cwprobe", entry=rule.cache) is not None


def check_rule(rule: Rule, ctx: Ctx) -> None:
    """Cacheable: miss, then hit with one origin request and the same response.
    Not cacheable: every request reaches the origin."""
    req = probe(ctx, rule)
    expect_rule_behaviour(ctx, rule, req)


def expect_rule_behaviour(ctx: Ctx, rule: Rule, req: Request) -> None:
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    stores = stored_when_fresh(ctx.policy, rule, req)
    first = ctx.send_stored(req) if stores else ctx.send(req)
    second = ctx.send(req)
    ctx.expect(first.status == 200, f"status {first.status}, expected 200")
    for response in (first, second):
        ctx.expect(response.cache.detail == rule.name,
                   f"Cache-Status names rule {response.cache.detail!r}, expected {rule.name!r}")
    if stores:
        ctx.expect(first.cache.outcome == "miss", f"first request: {first.cache.outcome}, expected miss")
        ctx.expect(second.cache.outcome == "hit", f"second request: {second.cache.outcome}, expected hit")
        ctx.expect(ctx.count(req.unit) == 1, f"origin saw {ctx.count(req.unit)} requests, expected 1")
        ctx.expect(first.response_id == second.response_id, "the hit is not the stored response")
    else:
        ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2")
        ctx.expect(second.cache.outcome == "bypass", f"{second.cache.outcome}, expected bypass")


def check_first_match(rule: Rule, later: Rule, ctx: Ctx) -> None:
    """A request both rules match gets the earlier rule's behaviour."""
    tag = ctx.tag()
    req = overlap_probe(ctx.policy, rule, later, tag=tag, host=request_host(ctx.policy))
    if req is None:
        raise CheckSkipped(f"no request matches both '{rule.name}' and '{later.name}'")
    expect_rule_behaviour(ctx, rule, own(ctx, req, tag, rule))


def check_ttl(rule: Rule, ctx: Ctx) -> None:
    """The stored TTL is the rule's: by waiting when short, by the engine's record otherwise."""
    ttl = effective_ttl(ctx.policy, rule)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=200)
    if ttl <= SHORT_TTL and ctx.policy.cache.stale.while_revalidate == 0:
        started = time.monotonic()
        ctx.send_stored(req)
        hit = ctx.send(req)  # stored at all: a TTL that never began would also "expire"
        ctx.expect(ctx.count(req.unit) == 1, f"the second request within {ttl}s reached the "
                   f"origin ({hit.cache.outcome}): the answer was not stored")
        ctx.sleep(max(0.0, ttl + 1.5 - (time.monotonic() - started)))
        again = ctx.send(req)
        ctx.expect(ctx.count(req.unit) == 2, f"after {ttl}s the origin saw {ctx.count(req.unit)} "
                   f"requests, expected 2 (expired); last: {again.cache.outcome}")
        return
    ctx.send(req)
    expect_stored_ttl(ctx, req, ttl)


def expect_stored_ttl(ctx: Ctx, req: Request, ttl: float) -> None:
    """The engine's own record says ``req`` is stored for ``ttl`` seconds."""
    stored = ctx.stored(req)
    ctx.expect(bool(stored), f"{ctx.engine} has no stored object for {req.host}{req.unit}")
    ttls = [round(s.ttl) for s in stored]
    ctx.expect(any(abs(s.ttl - ttl) <= TTL_TOLERANCE for s in stored),
               f"{ctx.engine} stored {req.host}{req.unit} with TTL {ttls}, expected {ttl}s")


def check_origin_headers(rule: Rule, ctx: Ctx) -> None:
    """respect: the origin's max-age wins; override: the rule's TTL wins. private is never stored."""
    req = probe(ctx, rule)
    ctx.program(req.unit, status=200, cache_control="max-age=77")
    ctx.send(req)
    expected = 77 if rule.origin_headers == "respect" else effective_ttl(ctx.policy, rule)
    expect_stored_ttl(ctx, req, expected)
    private = probe(ctx, rule)
    ctx.program(private.unit, status=200, cache_control="private, max-age=60")
    ctx.send(private)
    ctx.send(private)
    ctx.expect(ctx.count(private.unit) == 2, "a 'private' response was stored")


def check_vary(rule: Rule, ctx: Ctx) -> None:
    """Variants by each Vary header are stored separately; a repeated variant is a hit.
    Accept-Encoding is tested last and with real codings: Varnish stores one object for it and
    gunzips for clients without gzip (http_gzip_support), so there it proves the second client
    is not sent gzip instead of counting two variants."""
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    header = sorted(rule.vary, key=lambda h: h.lower() == "accept-encoding")[0]
    a, b = ("gzip", "identity") if header.lower() == "accept-encoding" else \
        part_values(rule, "header", header)
    first = ctx.send_stored(req, headers={header: a})
    second = ctx.send(req, headers={header: b})
    third = ctx.send(req, headers={header: a})
    ctx.expect(third.response_id == first.response_id, "third request is not variant a's response")
    if header.lower() == "accept-encoding" and ctx.engine == "varnish":
        ctx.expect(ctx.count(req.unit) == 1, f"origin saw {ctx.count(req.unit)} requests, expected 1 "
                   "(Varnish keeps one object and decodes it for clients without gzip)")
        coding = second.header("Content-Encoding") or ""
        ctx.expect("gzip" not in coding, f"a client sending {header}: {b} got Content-Encoding: {coding}")
        return
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2 "
               "(two variants)")
    ctx.expect(second.response_id != first.response_id, "variant b was served variant a")


def check_key_parts(rule: Rule, ctx: Ctx) -> None:
    """Extra key headers and cookies split the cache; only keyed cookies reach the origin."""
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    a = _keyed(rule, req, 0)
    ctx.send_stored(a)
    ctx.send(_keyed(rule, req, 1))
    again = ctx.send(a)
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2")
    ctx.expect(again.cache.outcome == "hit", f"same key parts: {again.cache.outcome}, expected hit")
    if rule.key.cookies:
        seen = ctx.control().requests(path=req.unit)[-1].header("cookie") or ""
        ctx.expect("cw_other=" not in seen, f"origin saw unkeyed cookies: {seen!r}")


def _keyed(rule: Rule, req: Request, which: int) -> Request:
    """``req`` with the rule's key headers and cookies set to their first (``which`` 0) or
    second value: values the rule's own conditions on them accept."""
    headers = tuple((n, v) for n, v in req.headers if n not in rule.key.headers)
    headers += tuple((h, part_values(rule, "header", h)[which]) for h in rule.key.headers)
    cookies = tuple((n, v) for n, v in req.cookies if n not in rule.key.cookies)
    cookies += tuple((c, part_values(rule, "cookie", c)[which]) for c in rule.key.cookies)
    if rule.key.cookies:
        cookies += (("cw_other", "ab"[which]),)
    return replace(req, headers=headers, cookies=cookies)


def part_values(rule: Rule, kind: str, name: str) -> list[str]:
    """Two values for header or cookie ``name`` that the rule's own conditions on it accept
    (a rule matching ``X-Api-Version: ^2`` and keyed on it gets ``2a``, ``2b``)."""
    conditions = [c.regex or "." for c in (rule.match.headers if kind == "header" else rule.match.cookies)
                  if (c.name.lower() == name.lower() if kind == "header" else c.name == name)]
    values = distinct_values(conditions, cookie=kind == "cookie")
    if len(values) < 2:
        raise CheckSkipped(f"no two values of {kind} {name} that rule '{rule.name}' accepts")
    return values


def rule_checks(policy: Policy) -> Iterator[Check]:
    """Every rule's checks, in rule order."""
    host = request_host(policy)
    for rule in (*policy.rules, policy.default_rule):
        sample = probe_for(policy, rule, tag="cwprobe", host=host)
        if sample is None:
            continue  # e.g. the default rule when a catch-all rule precedes it
        name = rule.name
        kind = "is cached (miss, then hit with one origin request)" if rule.cache else \
            "is never cached (every request reaches the origin)"
        yield Check(f"rule.{name}", f"rule '{name}' {kind}", partial(check_rule, rule), ("rules",))
        later = next((r for r in policy.rules[rule.index + 1:] if overlap_probe(
            policy, rule, r, tag="x", host=request_host(policy))), None)
        if later is not None:
            yield Check(f"rule.{name}.first-match", f"a request matching '{name}' and "
                        f"'{later.name}' gets '{name}'", partial(check_first_match, rule, later),
                        ("rules", "order"))
        if sample.method in ("GET", "HEAD"):
            yield from _cached_rule_checks(policy, rule)


def _cached_rule_checks(policy: Policy, rule: Rule) -> Iterator[Check]:
    if not rule.cache:
        return
    name = rule.name
    if effective_ttl(policy, rule):
        yield Check(f"rule.{name}.ttl", f"rule '{name}' stores for {effective_ttl(policy, rule)}s",
                    partial(check_ttl, rule), ("rules", "ttl"))
    yield Check(f"rule.{name}.origin-headers", f"rule '{name}' {rule.origin_headers}s origin "
                "Cache-Control; private is never stored", partial(check_origin_headers, rule),
                ("rules", "ttl"))
    if rule.vary:
        yield Check(f"rule.{name}.vary", f"rule '{name}' stores variants by {', '.join(rule.vary)}",
                    partial(check_vary, rule), ("rules", "vary"), "vary")
    if rule.key.headers or rule.key.cookies:
        yield Check(f"rule.{name}.key", f"rule '{name}' keys on "
                    f"{', '.join((*rule.key.headers, *rule.key.cookies))}",
                    partial(check_key_parts, rule), ("rules", "key"))
