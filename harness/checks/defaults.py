"""Checks of the safe defaults and of the cache-wide settings: Authorization, cookies, Set-Cookie,
unsafe methods, forwarding headers, guards, query normalisation, status TTLs, scheme and host
in the key, stale serving and request collapsing."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import replace
from functools import partial

from cachewright.generator.capabilities import serves_stale
from cachewright.generator.lower_nginx import LOCK_TIMEOUT_MS
from cachewright.generator.model import Policy, Rule

from ..runtime.prepare import request_host
from ..selection import probe_for
from .base import MAX_WAIT, STORE_WAIT, Check, CheckSkipped, Ctx
from .rules import effective_ttl, expect_stored_ttl, isolated_rule, origin_answer, probe

COLLAPSE_REQUESTS = 8
#: the origin's answer time in the collapse check: nginx collapses only misses the origin answers
#: within its lock timeout (generator/lower_nginx.py, LOCK_TIMEOUT_MS; the origin takes 40 % of
#: it), Varnish any
COLLAPSE_DELAY = {"nginx": LOCK_TIMEOUT_MS / 2500, "varnish": 1.0}
COLLAPSE_TRIALS = 3


def cacheable_rule(policy: Policy, *, respect: bool = False, plain: bool = False) -> Rule | None:
    """The first cacheable rule a probe can reach (the default rule last), preferring one whose
    probes get cache entries of their own. ``plain``: one that neither strips nor keys on
    cookies nor relaxes a deviation; ``respect``: one that respects origin headers."""
    fallback = None
    for rule in (*policy.rules, policy.default_rule):
        if not rule.cache or (respect and rule.origin_headers != "respect"):
            continue
        if plain and (rule.match.cookies or rule.key.cookies or rule.strip_cookies or rule.relax):
            continue
        if "authorization" in {h.lower() for h in rule.key.headers}:
            continue
        probe = probe_for(policy, rule, tag="cwprobe", host=request_host(policy))
        if probe is None or probe.method != "GET":
            continue
        if isolated_rule(policy, rule):
            return rule
        fallback = fallback or rule
    return fallback


def rule_or_skip(policy: Policy, *, respect: bool = False, plain: bool = False) -> Rule:
    rule = cacheable_rule(policy, respect=respect, plain=plain)
    if rule is None:
        kind = " that respects origin headers" if respect else ""
        kind += " that neither strips nor keys on cookies" if plain else ""
        raise CheckSkipped(f"no reachable cacheable rule{kind} to exercise")
    return rule


def check_authorization(ctx: Ctx) -> None:
    """Requests with Authorization reach the origin and are not stored for others."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    auth = {"Authorization": "Bearer cw-secret"}
    ctx.send(req, headers=auth)
    ctx.send(req, headers=auth)
    anonymous = ctx.send(req)
    ctx.expect(ctx.count(req.unit) == 3, f"origin saw {ctx.count(req.unit)} requests, expected 3 "
               "(two with Authorization, then an anonymous miss)")
    ctx.expect(anonymous.cache.outcome == "miss", "a response to an Authorization request was stored")


def check_cookie_bypass(ctx: Ctx) -> None:
    """Requests with cookies bypass rules that neither strip nor key on cookies."""
    rule = rule_or_skip(ctx.policy, plain=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    with_cookie = replace(req, cookies=(("session", "cw-1"),))
    ctx.send(with_cookie)
    ctx.send(with_cookie)
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2")


def _unmatched_cookie(policy: Policy) -> str:
    """A cookie name no rule matches or keys on (a rule matching ``session`` would take the
    request the strip-cookies check sends)."""
    taken = {c.name for r in policy.rules for c in r.match.cookies}
    taken |= {c for r in policy.rules for c in r.key.cookies}
    return next((n for n in ("session", "cw_session") if n not in taken), "cw_strip_probe")


def check_strip_cookies(rule: Rule, ctx: Ctx) -> None:
    """strip_cookies: the origin sees no Cookie, Set-Cookie is dropped, the response is shared."""
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule) | {"set_cookie": ["cw_session=leak"]})
    first = ctx.send_stored(replace(req, cookies=(*req.cookies, (_unmatched_cookie(ctx.policy), "cw-1"))))
    second = ctx.send(req)
    seen = ctx.control().requests(path=req.unit)[-1].header("cookie")
    ctx.expect(seen is None, f"origin saw Cookie {seen!r}")
    ctx.expect(first.header("Set-Cookie") is None, "Set-Cookie reached the client")
    ctx.expect(second.cache.outcome == "hit" and ctx.count(req.unit) == 1,
               f"second request {second.cache.outcome}, origin count {ctx.count(req.unit)}")


def check_set_cookie(ctx: Ctx) -> None:
    """A response with Set-Cookie is not stored (one client's cookie never goes to another)."""
    rule = rule_or_skip(ctx.policy, plain=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule) | {"set_cookie": ["cw_session=private"]})
    ctx.send(req)
    ctx.stored(req, wait=STORE_WAIT)  # an engine that stores it may finish after answering
    second = ctx.send(req)
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2")
    ctx.expect(second.cache.outcome != "hit", "a Set-Cookie response was served from the cache")


def check_unsafe_methods(ctx: Ctx) -> None:
    """POST always reaches the origin; an unknown method gets 501 and never reaches it."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    for _ in range(2):
        ctx.send(req, method="POST", body=b"x=1")
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} POSTs, expected 2")
    odd = ctx.send(req, method="FOO")
    ctx.expect(odd.status in (405, 501), f"method FOO answered {odd.status}, expected 501")
    ctx.expect(ctx.count(req.unit) == 2, "method FOO reached the origin")


def check_forwarding_headers(ctx: Ctx) -> None:
    """Client forwarding/override headers never reach the origin; X-Forwarded-* are the real ones."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    spoofed = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
               "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin",
               "X-HTTP-Method-Override": "DELETE", "X-Forwarded-For": "203.0.113.9"}
    ctx.send(req, headers=spoofed)
    seen = ctx.control().requests(path=req.unit)[-1]
    for name in ("X-Forwarded-Host", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override"):
        ctx.expect(seen.header(name) is None, f"origin saw client-sent {name}: {seen.header(name)!r}")
    ctx.expect(seen.header("X-Forwarded-Proto") == ctx.scheme,
               f"origin saw X-Forwarded-Proto {seen.header('X-Forwarded-Proto')!r}, expected {ctx.scheme}")
    client = ctx.stack.client_address
    ctx.expect(seen.header("X-Forwarded-For") == client,
               f"origin saw X-Forwarded-For {seen.header('X-Forwarded-For')!r}, expected {client}")


def check_path_guard(ctx: Ctx) -> None:
    """Dot segments and encoded unreserved characters are refused (400) before any rule."""
    for target in ("/a/../account", "/%61ccount", "/a%2fb", "/a\\b"):
        response = ctx.client.get(target, scheme=ctx.scheme)
        ctx.expect(response.status == 400, f"{target} answered {response.status}, expected 400")


def check_query_ignore(ctx: Ctx) -> None:
    """Ignored query parameters are out of the key and out of what the origin receives."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    param = ctx.policy.cache.query.ignore[0].replace("*", "x")
    first = ctx.send_stored(req.with_query(f"a=1&{param}=one"))
    second = ctx.send(req.with_query(f"{param}=two&a=1"))
    ctx.expect(second.response_id == first.response_id and ctx.count(req.unit) == 1,
               f"requests differing only in {param} were stored separately")
    target = ctx.control().requests(path=req.unit)[-1].target
    ctx.expect(param not in target, f"origin received the ignored parameter: {target}")


def check_query_sort(ctx: Ctx) -> None:
    """Query parameters in another order share one entry."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    ctx.send_stored(req.with_query("b=2&a=1"))
    again = ctx.send(req.with_query("a=1&b=2"))
    ctx.expect(again.cache.outcome == "hit" and ctx.count(req.unit) == 1,
               "reordered query parameters were stored separately")


def check_status_ttl(code: int, ttl: int, ctx: Ctx) -> None:
    """A response with this status is stored for its status_ttl."""
    rule = status_rule(ctx.policy) or rule_or_skip(ctx.policy, respect=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=code)
    ctx.send_stored(req)
    second = ctx.send(req)
    ctx.expect(second.status == code, f"status {second.status}, expected {code}")
    ctx.expect(ctx.count(req.unit) == 1, f"origin saw {ctx.count(req.unit)} requests, expected 1")
    expect_stored_ttl(ctx, req, ttl)


def _second_host(policy: Policy) -> bool:
    """Whether a second host is served to the rule ``check_host_in_key`` exercises (the policy
    serves one host only when ``listen.hosts`` names one; a rule may match on host)."""
    hosts = policy.listen.hosts
    rule = cacheable_rule(policy)
    return not (hosts and len([h for h in hosts if not h.startswith("*.")]) < 2) and \
        rule is not None and not rule.match.hosts


def check_host_in_key(ctx: Ctx) -> None:
    """The same path on another host is another entry."""
    hosts = ctx.policy.listen.hosts
    other = next((h for h in hosts[1:] if not h.startswith("*.")), "other.cachewright.test")
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    ctx.send_stored(req)  # stored before the other host asks: else a shared key would miss too
    elsewhere = ctx.send(replace(req, host=other))
    ctx.expect(elsewhere.cache.outcome == "miss" and ctx.count(req.unit) == 2,
               f"{other} was served {req.host}'s entry")


def check_scheme_in_key(ctx: Ctx) -> None:
    """The same URL over http and https are separate entries (no cached redirect loops)."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    ctx.send_stored(req, scheme="https")
    again = ctx.send(req, scheme="https")
    ctx.expect(again.cache.outcome == "hit", f"https repeat: {again.cache.outcome}, expected hit")
    if ctx.policy.listen.https and ctx.policy.listen.https.redirect_http:
        redirect = ctx.send(req, scheme="http")
        ctx.expect(redirect.status == 301, f"http answered {redirect.status}, expected 301")
        return
    plain = ctx.send(req, scheme="http")
    ctx.expect(plain.cache.outcome == "miss" and ctx.count(req.unit) == 2,
               "http was served the https entry")


def check_stale_while_revalidate(ctx: Ctx) -> None:
    """After expiry, stale is served at once while one background fetch refreshes."""
    rule = rule_or_skip(ctx.policy, respect=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=200, cache_control="max-age=1")
    ctx.send(req)
    ctx.sleep(2.2)
    ctx.program(req.unit, status=200, cache_control="max-age=1", delay=1.5)
    stale = ctx.send(req)
    ctx.expect(stale.elapsed < 1.0, f"stale answer took {stale.elapsed:.2f}s (waited for the origin)")
    ctx.expect(stale.cache.outcome == "stale", f"{stale.cache.outcome}, expected stale")
    ctx.sleep(2.0)
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2 "
               "(one background refresh)")


def check_stale_if_error(ctx: Ctx) -> None:
    """With the origin failing after expiry, the stale copy is served."""
    rule = rule_or_skip(ctx.policy, respect=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=200, cache_control="max-age=1")
    first = ctx.send(req)
    ctx.sleep(2.2)
    ctx.program(req.unit, status=500, failure="error")
    responses = [ctx.send(req) for _ in range(2)]
    ctx.sleep(0.5)
    for response in responses:
        ctx.expect(response.status == 200 and response.response_id == first.response_id,
                   f"origin failing: {response.status} {response.cache.outcome}, expected the stale copy")


def _stale_window_wait(policy: Policy) -> float:
    stale = policy.cache.stale
    return 1 + stale.while_revalidate + stale.if_error + 1.5


def check_stale_window_ends(ctx: Ctx) -> None:
    """Past while_revalidate + if_error, a failing origin's error is returned, not stale content."""
    wait = _stale_window_wait(ctx.policy)
    if wait > MAX_WAIT:
        raise CheckSkipped(f"the stale windows end {wait:.0f}s after a 1s lifetime: too long to "
                           f"wait for (at most {MAX_WAIT:.0f}s)")
    rule = rule_or_skip(ctx.policy, respect=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=200, cache_control="max-age=1")
    ctx.send(req)
    ctx.sleep(wait)
    ctx.program(req.unit, status=500, failure="error")
    late = ctx.send(req)
    ctx.expect(late.status >= 500, f"{late.status} {late.cache.outcome} after the window, "
               "expected the origin's error")


def check_collapse(ctx: Ctx) -> None:
    """Concurrent misses for one URL send one request to the origin. nginx collapses only misses
    whose fetch ends within its lock timeout, which a loaded machine can miss: up to
    ``COLLAPSE_TRIALS`` fresh URLs, and one that collapses proves it (without the lock, 8
    concurrent misses never make one origin request)."""
    rule = rule_or_skip(ctx.policy)
    counts = []
    for _ in range(COLLAPSE_TRIALS):
        req = probe(ctx, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule) | {"delay": COLLAPSE_DELAY[ctx.engine]})
        with concurrent.futures.ThreadPoolExecutor(COLLAPSE_REQUESTS) as pool:
            statuses = list(pool.map(lambda _, r=req: ctx.send(r).status, range(COLLAPSE_REQUESTS)))
        ctx.expect(all(s == 200 for s in statuses), f"statuses {statuses}")
        counts.append(ctx.count(req.unit))
        if counts[-1] == 1:
            return
    ctx.expect(False, f"{COLLAPSE_REQUESTS} concurrent misses made {counts[0]} origin requests, "
               f"expected 1 (in {COLLAPSE_TRIALS} trials: {counts})")


#: what kind of rule a check exercises (``cacheable_rule``'s arguments); one that no rule of the
#: policy fits has nothing to prove and is not derived
EXERCISES: dict[str, dict[str, bool]] = {
    "defaults.cookies": {"plain": True}, "defaults.set-cookie": {"plain": True},
    "cache.stale.while_revalidate": {"respect": True}, "cache.stale.if_error": {"respect": True},
    "cache.stale.window": {"respect": True},
}
#: checks that need no cacheable rule to exercise
RULELESS = ("defaults.path-guard", "cache.status_ttl.", "rule.")


def default_checks(policy: Policy) -> Iterator[Check]:
    """Checks of the safe defaults and cache-wide settings that apply to ``policy`` (those
    with no rule to exercise are not derived)."""
    for check in _default_checks(policy):
        if check.id.startswith(RULELESS) or cacheable_rule(policy, **EXERCISES.get(check.id, {})):
            if not check.id.startswith("cache.status_ttl.") or status_rule(policy) is not None:
                yield check


def status_rule(policy: Policy) -> Rule | None:
    """The rule a status_ttl check exercises: one that respects origin headers (the default
    rule when the policy has no rules)."""
    return cacheable_rule(policy, respect=True) if policy.rules else policy.default_rule


def _default_checks(policy: Policy) -> Iterator[Check]:
    yield Check("defaults.authorization", "requests with Authorization are never answered from "
                "or stored in the cache", check_authorization, ("defaults", "security"))
    yield Check("defaults.cookies", "requests with cookies bypass rules that do not strip or key "
                "on them", check_cookie_bypass, ("defaults", "security"))
    yield Check("defaults.set-cookie", "responses with Set-Cookie are not stored",
                check_set_cookie, ("defaults", "security"))
    yield Check("defaults.methods", "POST reaches the origin; unknown methods get 501",
                check_unsafe_methods, ("defaults", "security"))
    yield Check("defaults.forwarding-headers", "client forwarding headers never reach the origin",
                check_forwarding_headers, ("defaults", "security"))
    yield Check("defaults.path-guard", "dot segments and encoded characters are refused",
                check_path_guard, ("defaults", "security"), needs_control=False)
    for rule in policy.rules:
        if rule.strip_cookies:
            yield Check(f"rule.{rule.name}.strip-cookies", f"rule '{rule.name}' strips cookies "
                        "both ways and shares the response", partial(check_strip_cookies, rule),
                        ("rules", "cookies"))
    yield from _cache_checks(policy)


def _cache_checks(policy: Policy) -> Iterator[Check]:
    cache = policy.cache
    if cache.query.ignore:
        yield Check("cache.query.ignore", "ignored query parameters are out of the key and the "
                    "origin request", check_query_ignore, ("key",), "query.ignore")
    if cache.query.sort:
        yield Check("cache.query.sort", "query parameter order does not matter",
                    check_query_sort, ("key",), "query.sort")
    for code, ttl in cache.status_ttl:
        yield Check(f"cache.status_ttl.{code}", f"status {code} is stored for {ttl}s",
                    partial(check_status_ttl, code, ttl), ("ttl",))
    if "host" in cache.key and _second_host(policy):
        yield Check("cache.key.host", "different hosts never share entries", check_host_in_key,
                    ("key", "security"))
    if "scheme" in cache.key and policy.listen.https:
        yield Check("cache.key.scheme", "http and https never share entries",
                    check_scheme_in_key, ("key", "tls"))
    if cache.stale.while_revalidate:
        yield Check("cache.stale.while_revalidate", "stale is served at once while one "
                    "background fetch refreshes", check_stale_while_revalidate, ("stale",),
                    "stale.while_revalidate")
    if cache.stale.if_error:
        yield Check("cache.stale.if_error", "the stale copy is served while the origin fails",
                    check_stale_if_error, ("stale",), "stale.if_error")
    if serves_stale(policy):
        yield Check("cache.stale.window", "stale content is not served past the policy's windows",
                    check_stale_window_ends, ("stale",), "stale.window",
                    wait=_stale_window_wait(policy))
    if cache.collapse_requests:
        yield Check("cache.collapse_requests", f"{COLLAPSE_REQUESTS} concurrent misses make one "
                    "origin request", check_collapse, ("collapse",), "collapse_requests")


__all__ = ["default_checks", "effective_ttl"]
