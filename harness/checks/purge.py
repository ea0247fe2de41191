"""Checks of the purge interface: one URL (and all its variants), refusal from addresses outside
``purge.allow``, prefix bans, tag purges and purge-everything.

Purges are sent from a loopback address inside ``purge.allow`` (127.0.0.1 where allowed) and
refused ones from a loopback address outside it (127.0.0.2 where possible): on Linux the whole
127.0.0.0/8 is local, so a client may bind any of them as its source. Every purge carries the
same key values (headers, cookies) as the GET it targets. Objects are primed (miss, then a hit
with one origin request) before a purge; "gone" means the next GET misses and the origin count
rises by exactly one, "kept" that it hits and the count does not move.
"""

from __future__ import annotations

import ipaddress
import os.path
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Unpack

from cachewright.generator.capabilities import FEATURES
from cachewright.generator.model import Policy, Rule

from ..client import Client, Response
from ..origin import RuleSpec
from ..runtime.prepare import request_host
from ..selection import Request, probe_for, select_rule, tagged_path
from .base import Check, CheckSkipped, Ctx
from .rules import isolated_rule, origin_answer, own, part_values, stored_when_fresh

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
PURGER = "127.0.0.1"
OUTSIDERS = ("127.0.0.2", "127.0.0.3", "127.0.1.2", "127.1.0.2", "127.254.254.254")
OTHER_HOST = "other.cachewright.test"
TAG_HEADER = "Cache-Tags"
SCOPE_HEADER = "Cache-Purge-Scope"
REFUSED = (403, 405)
NOT_OFFERED = 501
#: how long a background fetch may take to replace a soft-purged object
REFRESH_WAIT = 3.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --------------------------------------------------------------------------- addresses


def _allowed(policy: Policy) -> list[Network]:
    allow = policy.purge.allow if policy.purge else ()
    return [ipaddress.ip_network(n, strict=False) for n in allow]


def _inside(address: str, networks: list[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in n for n in networks)


def purger_address(policy: Policy) -> str | None:
    """A loopback source address inside ``purge.allow`` (127.0.0.1 first), or None."""
    networks = _allowed(policy)
    candidates = [PURGER] + [str(next(iter(n.hosts()), n.network_address)) for n in networks
                             if isinstance(n, ipaddress.IPv4Network) and n.subnet_of(LOOPBACK)]
    return next((a for a in candidates if _inside(a, networks)), None)


def outsider_address(policy: Policy) -> str | None:
    """A loopback source address outside ``purge.allow`` (127.0.0.2 first), or None."""
    networks = _allowed(policy)
    return next((a for a in OUTSIDERS if not _inside(a, networks)), None)


def _purger(ctx: Ctx) -> str:
    address = purger_address(ctx.policy)
    if address is None:
        raise CheckSkipped("purge.allow holds no loopback address to purge from")
    return address


# --------------------------------------------------------------------------- rules and requests


def _keyed(rule: Rule) -> bool:
    m, k = rule.match, rule.key
    return bool(k.headers or k.cookies or m.headers or m.cookies or rule.strip_cookies)


def purge_rules(policy: Policy, need: Callable[[Rule], bool] = lambda r: True) -> list[Rule]:
    """Cacheable rules a fresh GET probe (the tag in its path) is stored under, that satisfy
    ``need``: rules without key or match headers and cookies first, then in policy order."""
    host = request_host(policy)
    found = []
    for rule in (*policy.rules, policy.default_rule):
        sample = probe_for(policy, rule, tag="cwprobe", host=host)
        if not (rule.cache and need(rule) and sample is not None and tagged_path(sample, "cwprobe")):
            continue
        if sample.method == "GET" and stored_when_fresh(policy, rule, sample):
            found.append(rule)
    return sorted(found, key=lambda r: (not isolated_rule(policy, r), _keyed(r)))


def _rule(ctx: Ctx, need: Callable[[Rule], bool] = lambda r: True, what: str = "") -> Rule:
    rules = purge_rules(ctx.policy, need)
    if not rules:
        raise CheckSkipped(f"no cacheable rule{what} whose URLs a fresh GET can reach")
    return rules[0]


def _probe(ctx: Ctx, rule: Rule, tag: str | None = None) -> Request:
    tag = tag or ctx.tag()
    req = probe_for(ctx.policy, rule, tag=tag, host=request_host(ctx.policy))
    if req is None:
        raise CheckSkipped(f"cannot build a request that rule '{rule.name}' matches")
    return own(ctx, req, tag, rule)


def _other_host(ctx: Ctx, rule: Rule, req: Request) -> Request | None:
    """``req`` on another host the policy serves, when the host is part of the key and the
    same rule applies there; else None."""
    if "host" not in ctx.policy.cache.key:
        return None
    concrete = ["cw." + h[2:] if h.startswith("*.") else h for h in ctx.policy.listen.hosts]
    other = next((h for h in concrete if h != req.host), None) if concrete else OTHER_HOST
    moved = replace(req, host=other) if other else None
    return moved if moved and select_rule(ctx.policy, moved) == rule else None


# --------------------------------------------------------------------------- expectations


def _label(req: Request) -> str:
    return f"{req.host}{req.target}"


def prime(ctx: Ctx, rule: Rule, req: Request, **origin: Unpack[RuleSpec]) -> Response:
    """Program the origin for ``req`` and store it: a miss, then a hit without a new origin
    request. ``origin`` adds to the rule's usual origin answer (e.g. surrogate keys)."""
    ctx.program(req.unit, **origin_answer(ctx.policy, rule) | origin)
    first = ctx.send(req)
    ctx.expect(first.status == 200, f"{_label(req)}: status {first.status}, expected 200")
    expect_kept(ctx, req, "after priming")
    return first


def expect_kept(ctx: Ctx, req: Request, when: str, scheme: str | None = None) -> None:
    """``req`` is answered from the cache: a hit, and the origin count does not move."""
    before = ctx.count(req.unit)
    again = ctx.send(req, scheme=scheme or ctx.scheme)
    ctx.expect(again.cache.outcome == "hit" and ctx.count(req.unit) == before,
               f"{when}: {_label(req)} {again.cache.outcome} (origin count {before} -> "
               f"{ctx.count(req.unit)}), expected a hit")


def expect_gone(ctx: Ctx, req: Request, when: str, scheme: str | None = None) -> None:
    """``req`` is no longer stored: a miss, and exactly one more origin request."""
    before = ctx.count(req.unit)
    again = ctx.send(req, scheme=scheme or ctx.scheme)
    ctx.expect(again.cache.outcome == "miss" and ctx.count(req.unit) == before + 1,
               f"{when}: {_label(req)} {again.cache.outcome} (origin count {before} -> "
               f"{ctx.count(req.unit)}), expected a miss and one origin request")


def expect_soft_gone(ctx: Ctx, req: Request, when: str) -> None:
    """``req`` was soft-purged: a miss, or (inside the stale windows) the old object served
    stale while one background fetch replaces it; either way the next answer is a new one."""
    before = ctx.count(req.unit)
    again = ctx.send(req)
    if again.cache.outcome != "miss":
        ctx.expect(again.cache.stale, f"{when}: {_label(req)} {again.cache.outcome}, expected a "
                   "miss or the stale object (a soft purge)")
        deadline = time.monotonic() + REFRESH_WAIT
        while ctx.count(req.unit) == before and time.monotonic() < deadline:
            ctx.sleep(0.1)
    ctx.expect(ctx.count(req.unit) == before + 1, f"{when}: origin count {before} -> "
               f"{ctx.count(req.unit)}, expected one request to replace the soft-purged object")
    fresh = ctx.send(req)
    ctx.expect(not fresh.cache.stale and fresh.response_id != again.response_id or
               again.cache.outcome == "miss",
               f"{when}: {_label(req)} still answered with the soft-purged object")


def send_purge(ctx: Ctx, req: Request, method: str = "PURGE", headers: dict[str, str] | None = None,
               target: str | None = None, scheme: str | None = None) -> Response:
    """A purge from the allowed address, answered 2xx and never forwarded to the origin."""
    path = (target or req.target).split("?", 1)[0]
    before = ctx.count(path)
    sent = replace(req, path=target, query="") if target else req
    response = ctx.send(sent, method=method, headers=headers or {}, source=_purger(ctx),
                        scheme=scheme or ctx.scheme)
    ctx.expect(200 <= response.status < 300, f"{method} {_label(sent)} answered "
               f"{response.status} {_first_line(response)!r}, expected 2xx")
    ctx.expect(ctx.count(path) == before, f"{method} {_label(sent)} reached the origin")
    return response


def _first_line(response: Response) -> str:
    text = response.body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:80] if text else ""


# --------------------------------------------------------------------------- the checks


def check_url(ctx: Ctx) -> None:
    """PURGE removes exactly that URL: not another cached URL, not the same path elsewhere."""
    rule = _rule(ctx)
    req, sibling = _probe(ctx, rule), _probe(ctx, rule)
    elsewhere = _other_host(ctx, rule, req)
    for r in (req, sibling, *([elsewhere] if elsewhere else [])):
        prime(ctx, rule, r)
    send_purge(ctx, req)
    expect_gone(ctx, req, "after PURGE")
    expect_kept(ctx, sibling, "after purging another URL")
    if elsewhere is not None:
        expect_kept(ctx, elsewhere, f"after purging the path on {req.host}")


def check_variants(ctx: Ctx) -> None:
    """PURGE of a URL removes every Vary variant of it."""
    rule = _rule(ctx, lambda r: bool(r.vary), " with vary")
    req = _probe(ctx, rule)
    variants = [_with_header(req, rule.vary[0], v) for v in part_values(rule, "header", rule.vary[0])]
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    for variant in variants:
        ctx.send(variant)
        expect_kept(ctx, variant, "after priming")
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests for two "
               "variants, expected 2")
    send_purge(ctx, req)
    for variant in variants:
        expect_gone(ctx, variant, f"after PURGE without {rule.vary[0]}")


def check_schemes(ctx: Ctx) -> None:
    """PURGE over one scheme removes the URL's copy for both (the scheme is in the key)."""
    rule = _rule(ctx)
    req = _probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    for scheme in ("http", "https"):
        ctx.send(req, scheme=scheme)
        expect_kept(ctx, req, f"after priming over {scheme}", scheme)
    send_purge(ctx, req, scheme="http")
    for scheme in ("http", "https"):
        expect_gone(ctx, req, f"after PURGE over http ({scheme} copy)", scheme)


def _with_header(req: Request, name: str, value: str) -> Request:
    kept = tuple((n, v) for n, v in req.headers if n.lower() != name.lower())
    return replace(req, headers=(*kept, (name, value)))


def check_refused(ctx: Ctx) -> None:
    """PURGE and BAN from outside purge.allow are refused (spoofed forwarding headers do not
    help) and the entry stays."""
    relay = ctx.stack.outsider(ctx.engine)
    outsider = "another container" if relay else outsider_address(ctx.policy)
    if relay is None and not ctx.stack.distinct_sources:
        raise CheckSkipped("every request reaches the engines from one address here")
    if outsider is None:
        raise CheckSkipped("purge.allow covers every loopback address tried as an outsider")
    rule = _rule(ctx)
    req = _probe(ctx, rule)
    prime(ctx, rule, req)
    outside = Client(relay, ctx.client.host, ctx.stack.ca_file, cache_name=ctx.client.cache_name) if relay else None
    for method, headers in _refusal_attempts():
        if outside is not None:
            response = _send_via(outside, ctx, req, method, headers)
        else:
            response = ctx.send(req, method=method, headers=headers, source=outsider)
        expected = _refusal_statuses(ctx, method)
        extra = ", ".join(f"{n}: {v}" for n, v in headers.items()) or "no extra headers"
        ctx.expect(response.status in expected, f"{method} from {outsider} ({extra}) answered "
                   f"{response.status}, expected {' or '.join(map(str, expected))}")
    expect_kept(ctx, req, f"after refused purges from {outsider}")


def _send_via(client: Client, ctx: Ctx, req: Request, method: str,
              headers: dict[str, str]) -> Response:
    """``req`` sent as ``ctx.send`` would, through another client (the relay's endpoint)."""
    sent = {n: v for n, v in req.headers if n.lower() != "cookie"}
    if req.cookie_header:
        sent["Cookie"] = req.cookie_header
    return client.request(method, req.target, {**sent, **headers}, host=req.host,
                          scheme=ctx.scheme)


def _refusal_attempts() -> Iterator[tuple[str, dict[str, str]]]:
    spoofed = {"X-Forwarded-For": PURGER, "X-Real-IP": PURGER, "Forwarded": f"for={PURGER}"}
    for extra in ({}, spoofed):
        yield "PURGE", extra
        yield "PURGE", {**extra, TAG_HEADER: "cw-none"}
        yield "BAN", extra
        yield "BAN", {**extra, SCOPE_HEADER: "all"}


def _refusal_statuses(ctx: Ctx, method: str) -> tuple[int, ...]:
    """403 (or 405); 501 too where this engine offers no purge by ``method`` for the policy."""
    kinds = ("url", "tag") if method == "PURGE" else ("pattern", "all")
    used = ctx.policy.purge.kinds if ctx.policy.purge else ()
    offered = any(k in used and FEATURES[f"purge.{k}"].on(ctx.engine).level != "unsupported"
                  for k in kinds)
    return REFUSED if offered else (*REFUSED, NOT_OFFERED)


def check_pattern(ctx: Ctx) -> None:
    """BAN /prefix removes exactly the URLs under that prefix, on that host only."""
    rule = _rule(ctx)
    tag = ctx.tag()
    inside = [_probe(ctx, rule, f"{tag}x{i}") for i in (1, 2)]
    outside = _probe(ctx, rule, f"{tag}y1")
    prefix = os.path.commonprefix([r.path for r in inside])
    if f"{tag}x" not in prefix or outside.path.startswith(prefix):
        raise CheckSkipped(f"no fresh URL prefix for rule '{rule.name}' (probes {inside[0].path}, "
                           f"{outside.path})")
    elsewhere = _other_host(ctx, rule, inside[0])
    for r in (*inside, outside, *([elsewhere] if elsewhere else [])):
        prime(ctx, rule, r)
    send_purge(ctx, inside[0], "BAN", target=prefix)
    for r in inside:
        expect_gone(ctx, r, f"after BAN {prefix}")
    expect_kept(ctx, outside, f"after BAN {prefix} (not under it)")
    if elsewhere is not None:
        expect_kept(ctx, elsewhere, f"after BAN {prefix} on {inside[0].host}")


def check_tag(ctx: Ctx) -> None:
    """PURGE with Cache-Tags: T removes exactly the objects tagged T (whatever the URL)."""
    rule = _rule(ctx, lambda r: r.tags_from_header is not None, " with tags_from_header")
    header = rule.tags_from_header
    assert header is not None, "_rule chose a rule with tags_from_header"
    t1, t2 = ctx.tag(), ctx.tag()
    keys = {"only-t1": [t1], "t1-and-t2": [t1, t2], "only-t2": [t2], "untagged": []}
    reqs = {name: _probe(ctx, rule) for name in keys}
    for name, req in reqs.items():
        prime(ctx, rule, req, surrogate_keys=keys[name], surrogate_key_header=header)
    # Sent to the untagged URL: a tag purge that fell back to purging the URL would show.
    send_purge(ctx, reqs["untagged"], headers={TAG_HEADER: t1})
    soft = ctx.policy.purge is not None and ctx.policy.purge.soft
    for name, req in reqs.items():
        if t1 in keys[name] and soft:
            expect_soft_gone(ctx, req, f"after soft-purging tag {t1} ({name})")
        elif t1 in keys[name]:
            expect_gone(ctx, req, f"after purging tag {t1} ({name})")
        else:
            expect_kept(ctx, req, f"after purging tag {t1} ({name})")


def check_all(ctx: Ctx) -> None:
    """BAN with Cache-Purge-Scope: all removes every object, on every host and rule."""
    rules = purge_rules(ctx.policy)
    if not rules:
        raise CheckSkipped("no cacheable rule whose URLs a fresh GET can reach")
    reqs = [(rule, _probe(ctx, rule)) for rule in dict.fromkeys([rules[0], rules[-1]])]
    elsewhere = _other_host(ctx, *reqs[0])
    if elsewhere is not None:
        reqs.append((reqs[0][0], elsewhere))
    for rule, req in reqs:
        prime(ctx, rule, req)
    send_purge(ctx, reqs[0][1], "BAN", headers={SCOPE_HEADER: "all"}, target="/")
    for _, req in reqs:
        expect_gone(ctx, req, "after purging everything")


def purge_checks(policy: Policy) -> Iterator[Check]:
    """The purge checks ``policy`` implies (none without a ``purge`` section, nor without a
    cacheable rule whose URLs a fresh GET can reach: nothing is stored to purge)."""
    if policy.purge is None or not purge_rules(policy):
        return
    for check in _purge_checks(policy, policy.purge.kinds):
        if check.id != "purge.tag" or purge_rules(policy, lambda r: r.tags_from_header is not None):
            yield check


def _purge_checks(policy: Policy, kinds: tuple[str, ...]) -> Iterator[Check]:
    if "url" in kinds:
        yield Check("purge.url", "PURGE removes exactly that URL (not others, not other hosts)",
                    check_url, ("purge",), "purge.url")
        if _both_schemes(policy):
            yield Check("purge.schemes", "PURGE over http also removes the https copy",
                        check_schemes, ("purge", "tls"), "purge.schemes")
        if purge_rules(policy, lambda r: bool(r.vary)):
            yield Check("purge.variants", "PURGE of a URL removes every Vary variant",
                        check_variants, ("purge", "vary"), "purge.variants")
    yield Check("purge.refused", "PURGE and BAN from outside purge.allow are refused, "
                "spoofed forwarding headers notwithstanding", check_refused, ("purge", "security"))
    yield from _kind_checks(kinds)


def _both_schemes(policy: Policy) -> bool:
    """Both schemes are served (plain HTTP does not just redirect) and are part of the key."""
    listen = policy.listen
    return (listen.http is not None and listen.https is not None and not listen.https.redirect_http
            and "scheme" in policy.cache.key)


def _kind_checks(kinds: tuple[str, ...]) -> Iterator[Check]:
    if "pattern" in kinds:
        yield Check("purge.pattern", "BAN /prefix removes exactly the URLs under it on that host",
                    check_pattern, ("purge",), "purge.pattern")
    if "tag" in kinds:
        yield Check("purge.tag", "PURGE with Cache-Tags removes exactly the tagged objects",
                    check_tag, ("purge",), "purge.tag")
    if "all" in kinds:
        yield Check("purge.all", "BAN with Cache-Purge-Scope: all removes everything",
                    check_all, ("purge", "exclusive"), "purge.all")


__all__ = ["outsider_address", "purge_checks", "purger_address"]
