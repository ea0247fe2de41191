"""The security suite: each check names the failure mode it guards and proves, on the real
engine, that the generated configuration does not have it.

Families (each check is tagged "security" and its family):

* ``private``   — one client's credentialed response, cookie or uncacheable answer never reaches
  another client;
* ``poisoning`` — unkeyed inputs (forwarding/override headers, a body on GET, oversized or
  malformed headers) neither reach the origin nor change what the next client gets;
* ``host``      — unknown hosts are refused, absolute-form targets cannot write another host's
  entry, and key parts cannot be shifted into one another;
* ``deception`` — path tricks never make a personalised page cacheable for anonymous users;
* ``cloaking``  — two requests that share a key send the origin the same target;
* ``methods``   — unsafe methods reach the origin uncached, odd methods are refused;
* ``fill``      — variants in ignored parameters or unkeyed headers store one object.

The ground truth is the origin's request log: a response "carries a secret" when the origin
request that produced it (found by its response id) carried the secret.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial

from cachewright.generator.hygiene import stripped
from cachewright.generator.model import SAFE_METHODS, Policy, Rule

from ..client import Response
from ..origin_client import OriginError, SeenRequest, parse_echo
from ..probe import Request, probe_for, select_rule, unmarked
from ..regexgen import example
from ..runtime.prepare import request_host
from .base import STORE_WAIT, Check, CheckSkipped, Ctx
from .rules import isolated_rule, origin_answer, probe

FILL_VARIANTS = 20
MAX_RULES = 3
OVERSIZED = 16 * 1024
UNSAFE_METHODS = ("PUT", "PATCH", "DELETE", "OPTIONS")
ODD_METHODS = ("get", "Get", "PROPFIND", "CW-M_1")
SEPARATORS = ("", "#", "|", ":", "?", ";", ",")


# --------------------------------------------------------------------------- shared helpers


def _cacheable_rules(policy: Policy, limit: int = MAX_RULES, relaxed: str = "") -> list[Rule]:
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


def _rules_or_skip(policy: Policy, limit: int = MAX_RULES, relaxed: str = "") -> list[Rule]:
    rules = _cacheable_rules(policy, limit, relaxed)
    if not rules:
        but = f" that keeps the {relaxed} deviation" if relaxed else ""
        raise CheckSkipped(f"no reachable cacheable rule{but} to exercise")
    return rules


def _secret(ctx: Ctx) -> str:
    return f"cwsecret{ctx.tag()}"


def _produced_by(ctx: Ctx, path: str, response: Response) -> SeenRequest | None:
    """The origin request that produced ``response`` (by its response id), if any."""
    if response.response_id is None:
        return None
    seen = ctx.control().requests(path=path)
    return next((r for r in seen if r.response_id == response.response_id), None)


def _carries(seen: SeenRequest | None, secret: str) -> bool:
    """Whether an origin request carried ``secret`` in any header or its target."""
    if seen is None:
        return False
    return secret in seen.target or any(secret in v for _, v in seen.headers)


def _expect_not_leaked(ctx: Ctx, path: str, response: Response, secret: str, who: str) -> None:
    """``response`` (sent to ``who``) was not produced from a request carrying ``secret`` and
    hands out no cookie holding it."""
    origin = _produced_by(ctx, path, response)
    ctx.expect(not _carries(origin, secret), f"{who} was served response {response.response_id} "
               f"({response.cache.outcome}), produced for the client that sent the credential")
    if origin is None or not origin.header_values("cookie"):
        return
    cookies = [v for n, v in response.headers if n.lower() == "set-cookie" and secret in v]
    ctx.expect(not cookies, f"{who} was handed a cookie set for another client: {cookies}")


# --------------------------------------------------------------------------- private data


def check_authorization_isolated(ctx: Ctx) -> None:
    """Failure mode: a response to a request with Authorization is served to another client
    (stock nginx reuses it). Client A sends a token; anonymous B and client C (another token)
    must not get A's response."""
    for rule in _rules_or_skip(ctx.policy):
        req = probe(ctx, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule))
        secret = _secret(ctx)
        ctx.send(req, headers={"Authorization": f"Bearer {secret}"})
        _expect_not_leaked(ctx, req.unit, ctx.send(req), secret, f"rule '{rule.name}': anonymous B")
        other = ctx.send(req, headers={"Authorization": "Bearer cw-other"})
        _expect_not_leaked(ctx, req.unit, other, secret, f"rule '{rule.name}': C (another token)")


def check_session_cookie_isolated(ctx: Ctx) -> None:
    """Failure mode: a response personalised by a session cookie is served to an anonymous
    client. Rules that strip cookies may share the response: the origin never saw the cookie."""
    for rule in _rules_or_skip(ctx.policy, relaxed="request-cookie"):
        req = probe(ctx, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule))
        secret = _secret(ctx)
        ctx.send(replace(req, cookies=(*req.cookies, ("cw_session", secret))))
        _expect_not_leaked(ctx, req.unit, ctx.send(req), secret, f"rule '{rule.name}': anonymous B")


def check_set_cookie_isolated(ctx: Ctx) -> None:
    """Failure mode: a cacheable response carrying Set-Cookie is stored with it, so every later
    client is handed the first client's session cookie."""
    for rule in _rules_or_skip(ctx.policy, relaxed="set-cookie"):
        req = probe(ctx, rule)
        secret = _secret(ctx)
        ctx.program(req.unit, set_cookie=[f"cw_session={secret}; Path=/"],
                    **origin_answer(ctx.policy, rule))
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
    rules = _rules_or_skip(ctx.policy, limit=8)
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


# --------------------------------------------------------------------------- cache poisoning


@dataclass(frozen=True)
class Poison:
    """One unkeyed input: extra headers (``{m}`` is replaced by a unique marker) and a body."""

    name: str
    guards: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


POISONS = (
    Poison("forwarded-host", "X-Forwarded-Host rewrites absolute links / redirects to the "
           "attacker's host", (("X-Forwarded-Host", "{m}.example"),)),
    Poison("host-override", "X-Host, X-Original-Host, X-Forwarded-Server and X-Forwarded-Port "
           "change the host and port frameworks build links from",
           (("X-Host", "{m}.example"), ("X-Original-Host", "{m}.example"),
            ("X-Forwarded-Server", "{m}.example"), ("X-Forwarded-Port", "4{n}"))),
    Poison("forwarded-prefix", "X-Forwarded-Prefix, X-Forwarded-Ssl and X-Url-Scheme change the "
           "path prefix and scheme of absolute links", (("X-Forwarded-Prefix", "/{m}"),
                                                        ("X-Forwarded-Ssl", "on"),
                                                        ("X-Url-Scheme", "{scheme}"))),
    Poison("forwarded", "RFC 7239 Forwarded (host=, proto=) is trusted like X-Forwarded-*",
           (("Forwarded", "for=203.0.113.9;host={m}.example;proto=http"),)),
    Poison("forwarded-proto", "a spoofed scheme caches redirect loops or http:// links",
           (("X-Forwarded-Proto", "{scheme}"), ("X-Forwarded-Scheme", "{scheme}"))),
    Poison("rewrite-url", "X-Original-URL / X-Rewrite-URL make the origin serve another path",
           (("X-Original-URL", "/{m}"), ("X-Rewrite-URL", "/{m}"))),
    Poison("method-override", "X-HTTP-Method-Override turns a cached GET into a write",
           (("X-HTTP-Method-Override", "DELETE"), ("X-HTTP-Method", "DELETE"),
            ("X-Method-Override", "DELETE"))),
    Poison("get-body", "a body on GET changes the answer but is not in the key",
           (("Content-Type", "application/x-www-form-urlencoded"),), b"cw={m}"),
    Poison("oversized-header", "a 16 kB header makes the origin fail and the error is cached",
           (("X-Cw-Pad", "{m}" + "a" * OVERSIZED),)),
    Poison("underscore-header", "X_Forwarded_Host is not stripped, and CGI/WSGI/PHP origins read it "
           "as X-Forwarded-Host (HTTP_X_FORWARDED_HOST)", (("X_Forwarded_Host", "{m}.example"),)),
    Poison("malformed-header", "a header name with a space before the colon slips past the strip "
           "list and is read as X-Forwarded-Host", (("X-Forwarded-Host ", "{m}.example"),)),
)


def _poison_headers(ctx: Ctx, poison: Poison, marker: str) -> dict[str, str]:
    other = "http" if ctx.scheme == "https" else "https"
    port = str(sum(map(ord, marker)) % 1000)
    return {n: v.replace("{m}", marker).replace("{scheme}", other).replace("{n}", port)
            for n, v in poison.headers}


def _poisoned(ctx: Ctx, rule: Rule, seen: SeenRequest, marker: str, *, body: bool) -> str | None:
    """What of the poison ``seen`` (an origin request or echo for ``rule``) shows, or None when
    clean. Override headers the rule keys on may reach the origin (each value has its entry)."""
    names = {n.strip().lower().replace("_", "-") for n, _ in seen.headers}
    found = sorted(names & {h.lower() for h in stripped(rule)})
    if found:
        return f"client headers {found}"
    if marker in seen.target or any(marker in v for _, v in seen.headers):
        return "the poison's marker"
    if seen.method != "GET":
        return f"method {seen.method}"
    if body and seen.body_length:
        return f"a {seen.body_length}-byte GET body"
    proto = seen.header_values("X-Forwarded-Proto")
    if proto and proto != [ctx.scheme]:
        return f"X-Forwarded-Proto {proto}"
    return None


def check_poison(poison: Poison, ctx: Ctx) -> None:
    """Send the poisoned request, then a clean one: no origin request shows the poison, the clean
    client's answer (echo) shows none of it, and an error the poison caused is not reused."""
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    marker = f"cwpoison{ctx.tag()}"
    bad = ctx.send(req, headers=_poison_headers(ctx, poison, marker),
                   body=poison.body.replace(b"{m}", marker.encode()) if poison.body else None)
    clean = ctx.send(req)
    ctx.expect(clean.status == 200, f"after a poisoned request ({bad.status}) the clean request "
               f"got {clean.status} {clean.cache.outcome}: the error was reused")
    for seen in ctx.control().requests(path=req.unit):
        shown = _poisoned(ctx, rule, seen, marker, body=True)
        ctx.expect(shown is None, f"the origin received {shown} (response {seen.response_id})")
    try:
        echo = parse_echo(clean.body)
    except OriginError:
        return
    shown = _poisoned(ctx, rule, echo, marker, body=True)
    ctx.expect(shown is None, f"the clean client got response {clean.response_id} "
               f"({clean.cache.outcome}) made from {shown}")


# --------------------------------------------------------------------------- host and key confusion


def check_unknown_hosts(ctx: Ctx) -> None:
    """Failure mode: a cache answering any Host stores entries for attacker-chosen hosts (and
    serves the origin's default site for them). Other hosts, by header or by an absolute-form
    target, get 421."""
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
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
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
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
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
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
    return next((r for r in _cacheable_rules(policy, limit=16) if _key_parts(r)), None)


def _usable_pairs(policy: Policy, req: Request, rule: Rule) -> Iterator[tuple[str, Request, Request]]:
    """The collision pairs that can collide under this key (a query shifted into a part only
    where the key holds the query) and that ``rule`` answers on both sides."""
    keyed_query = "query" in policy.cache.key
    for what, a, b in _collision_pairs(req, rule):
        if (keyed_query or not what.startswith("query|")) and \
                select_rule(policy, a) == rule == select_rule(policy, b):
            yield what, a, b


def _collidable(policy: Policy) -> bool:
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
    if not _both_schemes(ctx.policy) and not any(_key_parts(r) for r in _cacheable_rules(ctx.policy, 16)):
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


# --------------------------------------------------------------------------- web cache deception


@dataclass(frozen=True)
class DeceptionPair:
    """A personalised (uncached) rule and a cacheable rule whose shape a trick path borrows."""

    private: Rule
    cacheable: Rule


def deception_pair(policy: Policy) -> DeceptionPair | None:
    """The first uncached GET rule with a path condition, and a later cacheable rule with
    extensions (preferred) or a path prefix. An earlier one is the policy's own order: a trick
    path it takes is the policy's decision, not the engines' (nothing for them to prove)."""
    host = request_host(policy)
    private = next((r for r in policy.rules if not r.cache and (r.match.path_prefix or r.match.path_regex)
                    and not r.match.cookies and not r.match.headers
                    and (p := probe_for(policy, r, tag="cwprobe", host=host)) is not None
                    and p.method == "GET"), None)
    if private is None:
        return None
    shaped = [r for r in (*policy.rules, policy.default_rule)
              if r.cache and (r.match.extensions or r.match.path_prefix) and r.index > private.index]
    shaped.sort(key=lambda r: not r.match.extensions)
    sample = probe_for(policy, private, tag="cwprobe", host=host)
    pair = DeceptionPair(private, shaped[0]) if shaped and sample else None
    return pair if pair and sample and tricks(policy, pair, sample) else None


def tricks(policy: Policy, pair: DeceptionPair, base: Request) -> list[Request]:
    """``base`` (a request of the private rule) moved to each trick path that no rule before
    the private one takes: a path an earlier rule matches is that rule's by the policy's own
    order, whatever the engines do."""
    moved = [replace(base, path=p) for p in trick_paths(pair, base.path)]
    return [r for r in moved if select_rule(policy, r).index >= pair.private.index]


def trick_paths(pair: DeceptionPair, private_path: str) -> list[str]:
    """Paths a normalising origin resolves to ``private_path`` (or treats as it) that a cache
    may take for the cacheable rule's static resources."""
    ext = pair.cacheable.match.extensions[0] if pair.cacheable.match.extensions else "css"
    prefix = pair.cacheable.match.path_prefix or "/static/"
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    base = private_path.rstrip("/")
    return [f"{base}/x.{ext}", f"{base};x.{ext}", f"{base}%2fx.{ext}", f"{base}%3bx.{ext}",
            f"{prefix}..{base}", f"{prefix}..%2f{base.lstrip('/')}", f"{base}/.%2e/",
            f"{prefix}%2e%2e{base}"]


def _resolved(path: str) -> str:
    """The path an origin that decodes and normalises sees (``;`` parameters dropped)."""
    decoded = urllib.parse.unquote(path)
    return posixpath.normpath(decoded.split(";", 1)[0]) or "/"


def check_deception(ctx: Ctx) -> None:
    """Failure mode: ``/account/x.css`` and friends are taken for a static resource and the
    account page they resolve to is stored for everyone. Each trick path is requested with a
    session cookie (the origin answers private, with Set-Cookie), then anonymously."""
    pair = deception_pair(ctx.policy)
    if pair is None:
        raise CheckSkipped("no uncached path rule and cacheable extension/prefix rule to combine")
    base = probe(ctx, pair.private)
    for trick in tricks(ctx.policy, pair, base):
        _expect_trick_safe(ctx, pair, trick, base.path)


def _expect_trick_safe(ctx: Ctx, pair: DeceptionPair, req: Request, private_path: str) -> None:
    secret = _secret(ctx)
    ctx.program(req.unit, status=200, cache_control="private",
                set_cookie=[f"cw_session={secret}; Path=/"])
    personal = ctx.send(replace(req, cookies=(*req.cookies, ("cw_session", secret))))
    ctx.notes.append(f"{req.unit}: {personal.status} {personal.cache.detail or ''}".strip())
    if personal.status == 400:
        return  # refused by the path guard: safe
    anonymous = ctx.send(req)
    _expect_not_leaked(ctx, req.unit, anonymous, secret, f"anonymous {req.unit}")
    resolves_private = select_rule(ctx.policy, replace(req, path=_resolved(req.path))) == pair.private
    detail = personal.cache.detail
    if resolves_private and detail is not None and _resolved(req.path) == _resolved(private_path):
        ctx.expect(detail == pair.private.name, f"{req.path} resolves to {private_path} (rule "
                   f"'{pair.private.name}') but the cache applied rule '{detail}'")


# --------------------------------------------------------------------------- parameter cloaking


def cloaking_queries(param: str) -> list[str]:
    """Queries that differ only in an ignored parameter, some smuggling a value inside it."""
    return ["a=1", f"a=1&{param}=x;a=evil", f"a=1&{param}=x&a=2", f"a=1&{param}=x%26a%3Devil",
            f"{param}=x&a=1", f"a=1&{param}", f"a=1&{param}=x%3Ba=evil", f"a=1&{param}=&a=evil"]


def check_cloaking(ctx: Ctx) -> None:
    """Failure mode: the key drops an ignored parameter that still reaches the origin (or the
    reverse), so a value cloaked inside it is stored under the clean URL's key. For each query,
    a fresh path shows what the origin receives; on one shared path, every answer must have
    been produced from exactly that target."""
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
    param = ctx.policy.cache.query.ignore[0].replace("*", "source")
    shared = probe(ctx, rule)
    ctx.program(shared.unit, **origin_answer(ctx.policy, rule))
    for query in cloaking_queries(param):
        fresh = probe(ctx, rule)
        ctx.program(fresh.unit, **origin_answer(ctx.policy, rule))
        ctx.send(fresh.with_query(query))
        expected = _forwarded_query(ctx, fresh.unit)
        answer = ctx.send(shared.with_query(query))
        produced = _produced_by(ctx, shared.unit, answer)
        got = unmarked(produced.query) if produced else None
        ctx.expect(got is None or got == expected, f"?{query}: the origin receives ?{expected}, "
                   f"but the answer ({answer.cache.outcome}) was made for ?{got}")


def _forwarded_query(ctx: Ctx, path: str) -> str | None:
    seen = ctx.control().requests(path=path)
    return unmarked(seen[-1].query) if seen else None


# --------------------------------------------------------------------------- methods


def check_methods(ctx: Ctx) -> None:
    """Failure mode: writes answered from (or stored in) the cache, and unknown or odd methods
    piped to the origin. PUT/PATCH/DELETE/OPTIONS reach the origin every time and are never
    served to a GET; odd tokens get 400/405/501 and never reach it."""
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
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


# --------------------------------------------------------------------------- cache fill


def check_fill(ctx: Ctx) -> None:
    """Failure mode: an attacker fills (and evicts) the cache with variants that differ only in
    what is not keyed. After N variants in ignored parameters and N in unkeyed headers, the
    engine's own record holds at most one object per path."""
    rule = _rules_or_skip(ctx.policy, limit=1)[0]
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


# --------------------------------------------------------------------------- the suite


def _check(ident: str, family: str, description: str, run: Callable[[Ctx], None], *,
           needs_control: bool = True) -> Check:
    return Check(f"security.{ident}", description, run, ("security", family),
                 needs_control=needs_control)


def security_checks(policy: Policy) -> Iterator[Check]:
    """The security suite for ``policy``: every family, leaving out what the policy cannot have
    (with no cacheable rule nothing is stored to leak, poison or fill; a key-collision needs
    two schemes or keyed parts; a deception needs an uncached and a cacheable rule to combine)."""
    rules = _cacheable_rules(policy, 16)
    applies = {
        "security.deception.paths": deception_pair(policy) is not None,
        "security.host.key-collision": bool(rules) and _collidable(policy),
        "security.host.absolute-form": bool(rules) and not rules[0].match.hosts,
    }
    for check in _security_checks(policy):
        if applies.get(check.id, bool(rules)):
            yield check


def _security_checks(policy: Policy) -> Iterator[Check]:
    yield _check("private.authorization", "private", "a response to a request with Authorization "
                 "is never served to another client", check_authorization_isolated)
    yield _check("private.session-cookie", "private", "a response made for a session cookie is "
                 "never served to an anonymous client", check_session_cookie_isolated)
    yield _check("private.set-cookie", "private", "one client's Set-Cookie is never handed to "
                 "another", check_set_cookie_isolated)
    yield _check("private.directives", "private", "private/no-store (and no-cache/max-age=0 "
                 "when respecting) answers are not reused", check_directives)
    for poison in POISONS:
        yield _check(f"poisoning.{poison.name}", "poisoning", f"no cache poisoning: {poison.guards}",
                     partial(check_poison, poison))
    yield from _host_checks(policy)
    yield _check("deception.paths", "deception", "path tricks never make a personalised page "
                 "cacheable for anonymous users", check_deception)
    if policy.cache.query.ignore:
        yield _check("cloaking.query", "cloaking", "requests sharing a key send the origin the "
                     "same target (no parameter cloaking)", check_cloaking)
    yield _check("methods.unsafe", "methods", "PUT/PATCH/DELETE/OPTIONS reach the origin uncached; "
                 "odd methods are refused", check_methods)
    yield _check("fill.variants", "fill", f"{FILL_VARIANTS} variants in unkeyed inputs store one "
                 "object", check_fill)


def _host_checks(policy: Policy) -> Iterator[Check]:
    if policy.listen.hosts:
        yield _check("host.unknown", "host", "unknown hosts are refused (421), by Host or by an "
                     "absolute-form target", check_unknown_hosts)
    if "host" in policy.cache.key:
        yield _check("host.absolute-form", "host", "an absolute-form target cannot write another "
                     "host's entry", check_absolute_form)
    yield _check("host.key-collision", "host", "key parts cannot be shifted into one another",
                 check_key_collision)


__all__ = ["POISONS", "deception_pair", "security_checks", "trick_paths"]
