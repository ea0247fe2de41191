"""Black-box checks: what the engines can be shown to do in front of the user's own app
(``--origin URL``, ``--origin-image``), where there is no control port to program answers or
count requests.

The ground truth is then the app's own **response identity** (``harness.client.Identity``): a
header the app sets per response (``--response-id-header``), else its ``ETag``, else a digest of
its body. Every check first asks the app directly (not through an engine) twice for the request it
will send: that shows what the app answers (status, ``Cache-Control``, ``Set-Cookie``), hence
what the policy must do with it, and whether the identity differs per response. When it does, an
equal identity through the engine proves a hit and a different one proves the origin answered;
when it does not (an ETag is per content), ``Cache-Status`` is the evidence and the check says so
in its note.

Probes use the paths the user's app really serves: ``--path RULE=/real/path``, else the path the
rule's own match suggests (its prefix, an example of its regex). Each probe adds a query parameter
``cw=TAG`` that no app needs, so that every check has cache entries of its own (when the policy's
key holds the query and does not ignore ``cw``). A cacheable rule whose probe the app answers with
a status the policy never stores (a 404 for a made-up path) cannot show a hit: that check is
skipped, naming the ``--path`` that would let it run.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from urllib.parse import urlsplit

from cachewright.generator.errors import CachewrightError
from cachewright.generator.language import PATH
from cachewright.generator.model import Policy, Rule
from cachewright.generator.quote import glob_regex

from ..client import Client, Identity, Response
from ..runtime.api import Endpoint
from ..runtime.prepare import request_host
from ..selection import Request, probe_for, select_rule
from .base import Check, CheckSkipped, Ctx
from .purge import purger_address
from .rules import effective_ttl, part_values, stored_when_fresh

#: statuses the policy ever stores; the rule's TTL applies to the first six (docs/policy.md)
STORED_BY_TTL = (200, 203, 204, 300, 301, 308)
STORABLE = (*STORED_BY_TTL, 302, 307, 404, 410, 414)
TAG_PARAM = "cw"
UNKNOWN_METHOD = "CWPROBE"
SESSION_COOKIE = "cw_session"
TAGS = ("blackbox",)


class BlackboxError(CachewrightError):
    """A ``--path`` that names no rule, is not a path, or is not matched by its rule."""


@dataclass(frozen=True)
class Options:
    """How black-box checks reach the user's app: its response identity, and real paths per
    rule name (``default`` for requests no rule matches)."""

    identity: Identity = Identity()
    paths: tuple[tuple[str, str], ...] = ()

    def path(self, rule: str) -> str | None:
        """The path given for ``rule``, or None."""
        return dict(self.paths).get(rule)


def parse_paths(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--path RULE=/path`` options as (rule, path) pairs; a malformed one is a BlackboxError."""
    pairs = []
    for item in items:
        rule, sep, path = item.partition("=")
        if not sep or not rule or not path.startswith("/"):
            raise BlackboxError(f"--path {item!r}: expected RULE=/path, e.g. static=/static/app.3f2a.js")
        pairs.append((rule, path))
    return tuple(pairs)


def blackbox_checks(policy: Policy, options: Options) -> list[Check]:
    """The black-box checks for ``policy``: every rule's behaviour, and for cacheable rules the
    cookie, Authorization and Vary defaults; methods; URL purging."""
    bases = _bases(policy, options)
    checks = [c for rule, base in bases for c in _rule_checks(policy, rule, base, options)]
    cached = next((base for rule, base in bases if stored_when_fresh(policy, rule, base)), None)
    if cached is not None:
        checks.append(Check("blackbox.methods", "POST reaches your app every time; an unknown "
                            "method gets 501", partial(check_methods, cached, options),
                            (*TAGS, "defaults"), needs_control=False))
    if cached is not None and policy.purge is not None and "url" in policy.purge.kinds:
        checks.append(Check("blackbox.purge.url", "an allowed PURGE makes the next request a "
                            "miss that your app answers", partial(check_purge, cached, options),
                            (*TAGS, "purge"), "purge.url", needs_control=False))
    return checks


def _rule_checks(policy: Policy, rule: Rule, base: Request, options: Options) -> Iterator[Check]:
    name, tags = rule.name, (*TAGS, "rules")
    kind = "is cached (miss, then a hit with your app's response)" if rule.cache else \
        "is never cached (every request reaches your app)"
    yield Check(f"blackbox.rule.{name}", f"rule '{name}' {kind}: {base.target}",
                partial(check_rule, rule, base, options), tags, needs_control=False)
    if not stored_when_fresh(policy, rule, base):
        return
    if rule.strip_cookies:
        yield Check(f"blackbox.rule.{name}.strip-cookies", f"rule '{name}': a request with "
                    "cookies gets the shared copy", partial(check_strip_cookies, rule, base, options),
                    (*tags, "defaults"), needs_control=False)
    elif not rule.key.cookies and "request-cookie" not in rule.relax:
        yield Check(f"blackbox.rule.{name}.cookies", f"rule '{name}': a request with cookies "
                    "bypasses the cache", partial(check_bypass, rule, base, options, "cookie"),
                    (*tags, "defaults"), needs_control=False)
    if ("authorization" not in {h.lower() for h in (*rule.key.headers, *rule.vary)}
            and "authorization-lookup" not in rule.relax):
        yield Check(f"blackbox.rule.{name}.authorization", f"rule '{name}': a request with "
                    "Authorization bypasses the cache",
                    partial(check_bypass, rule, base, options, "authorization"),
                    (*tags, "defaults"), needs_control=False)
    if rule.vary:
        yield Check(f"blackbox.rule.{name}.vary", f"rule '{name}' stores variants by "
                    f"{rule.vary[0]}", partial(check_vary, rule, base, options),
                    (*tags, "vary"), "vary", needs_control=False)


# --------------------------------------------------------------------------- paths


def _bases(policy: Policy, options: Options) -> list[tuple[Rule, Request]]:
    """Each reachable rule with the request its checks send (before the tag is added)."""
    rules = (*policy.rules, policy.default_rule)
    names = {r.name for r in rules}
    unknown = [rule for rule, _ in options.paths if rule not in names]
    if unknown:
        raise BlackboxError(f"--path {unknown[0]}=…: the policy has no rule {unknown[0]!r} "
                            f"(rules: {', '.join(sorted(names))})")
    out = []
    for rule in rules:
        base = base_request(policy, rule, options.path(rule.name))
        if base is not None:
            out.append((rule, base))
    return out


def base_request(policy: Policy, rule: Rule, given: str | None) -> Request | None:
    """The request ``rule``'s black-box checks send: its probe (method, headers, cookies) on the
    given path, or on the plainest path the rule matches; None when no request reaches ``rule``.
    A given path the rule does not get is a BlackboxError."""
    host = request_host(policy)
    probe = probe_for(policy, rule, tag="", host=host)
    if probe is not None and "//" in probe.path:  # no plain path: a word in place of the tag
        probe = probe_for(policy, rule, tag="page", host=host)
    if given is None:
        return probe
    path, _, query = given.partition("?")
    if re.fullmatch(PATH, path) is None:
        raise BlackboxError(f"--path {rule.name}={given}: not a path a client can send")
    request = replace(probe, path=path, query=query) if probe else Request("GET", path, host, query)
    chosen = select_rule(policy, request)
    if chosen != rule:
        raise BlackboxError(f"--path {rule.name}={given}: that request selects rule "
                            f"'{chosen.name}', not '{rule.name}'")
    return request


def _tagged(ctx: Ctx, base: Request) -> Request:
    """``base`` with a fresh ``cw=TAG`` query parameter: a cache entry of its own."""
    query = "&".join(q for q in (base.query, f"{TAG_PARAM}={ctx.tag()}") if q)
    return replace(base, query=query)


def isolated(policy: Policy) -> bool:
    """Whether the tag parameter gives each probe its own cache entry (the key holds the query,
    and ``cw`` is not an ignored parameter)."""
    ignored = any(re.fullmatch(glob_regex(g), TAG_PARAM) for g in policy.cache.query.ignore)
    return "query" in policy.cache.key and not ignored


# --------------------------------------------------------------------------- the app, directly


@dataclass(frozen=True)
class View:
    """What the app answers for one probe, asked directly (twice)."""

    request: Request
    direct: Response
    #: whether the identity differs between two direct answers (then it proves hits)
    unique: bool
    identity: Identity

    def same(self, a: Response, b: Response) -> bool:
        """Whether ``a`` and ``b`` have the same identity (an absent one matches nothing)."""
        return self.identity.of(a) is not None and self.identity.of(a) == self.identity.of(b)

    def ids(self, **responses: Response) -> str:
        """``first ETag "x", second ETag "y"``: the evidence identities give."""
        return ", ".join(f"{label} {self.identity.describe(r)}" for label, r in responses.items())


def view(ctx: Ctx, base: Request, options: Options) -> View:
    """Tag ``base`` and ask the app directly for it, twice."""
    request = _tagged(ctx, base)
    first, second = _direct(ctx, request, options), _direct(ctx, request, options)
    ids = (options.identity.of(first), options.identity.of(second))
    unique = None not in ids and ids[0] != ids[1]
    how = "differs per response: it proves hits" if unique else \
        "is the same on two direct requests: Cache-Status is the evidence of a hit"
    ctx.notes.append(f"identity {options.identity.name} {how}")
    return View(request, first, unique, options.identity)


def _direct(ctx: Ctx, request: Request, options: Options) -> Response:
    """``request`` sent to the app itself, with the Host the engines send it (logged with the
    check's exchanges, for its failure details)."""
    url = urlsplit(ctx.stack.origin.data_url)
    endpoint = Endpoint("origin", url.hostname or "127.0.0.1", url.port or 80, None)
    host = ctx.policy.origin.host_header or request.host
    headers = {n: v for n, v in request.headers if n.lower() != "cookie"}
    if request.cookie_header:
        headers["Cookie"] = request.cookie_header
    response = Client(endpoint, host).request(request.method, request.target, headers)
    ctx.client.log.append(f"direct to your app: {response.request} -> {response.status} "
                          f"Cache-Control: {response.header('Cache-Control')!s} "
                          f"{options.identity.describe(response)}")
    return response


@dataclass(frozen=True)
class Storage:
    """What the policy does with one answer of the app: stored or not, and what decided it."""

    stored: bool
    why: str
    #: not stored for its status (or for want of a TTL): the app's page is not one to prove a
    #: hit with, rather than an answer the policy refuses
    by_status: bool = False


def storable(policy: Policy, rule: Rule, response: Response) -> Storage:
    """Whether the policy stores the app's ``response`` under cacheable ``rule`` (docs/policy.md,
    "Safe defaults"), and what decided it."""
    cc = _directives(response.header("Cache-Control") or "")
    respect = rule.origin_headers == "respect"
    refusal = _refused(rule, response, cc, respect)
    if refusal:
        return Storage(False, refusal)
    lifetime = _lifetime(response, cc)
    status, by_status = response.status, dict(policy.cache.status_ttl)
    if status not in STORABLE and status not in by_status:
        return Storage(False, f"status {status}, never stored without status_ttl", True)
    if respect and lifetime:
        return Storage(True, f"status {status}, your app's lifetime {lifetime}s")
    if status in by_status:
        return Storage(by_status[status] > 0, f"status {status}, status_ttl {by_status[status]}s",
                       by_status[status] == 0)
    if status not in STORED_BY_TTL:
        lifetime_too = " or a lifetime from your app" if respect else ""
        return Storage(False, f"status {status}: stored only with status_ttl{lifetime_too}", True)
    ttl = effective_ttl(policy, rule)
    if ttl:
        return Storage(True, f"status {status}, TTL {ttl}s")
    return Storage(False, f"status {status} and no TTL: no ttl, cache.default_ttl 0s and no "
                   "lifetime from your app", True)


def _refused(rule: Rule, response: Response, cc: Mapping[str, str], respect: bool) -> str:
    """Why ``response`` is never stored whatever its status ("" when nothing refuses it)."""
    if "private" in cc or "no-store" in cc:
        return f"Cache-Control: {response.header('Cache-Control')}"
    if "*" in {v.strip() for v in (response.header("Vary") or "").split(",")}:
        return f"Vary: {response.header('Vary')}"
    if response.header("Set-Cookie") is not None and not (rule.strip_cookies or "set-cookie" in rule.relax):
        return "Set-Cookie"
    if respect and ("no-cache" in cc or _lifetime(response, cc) == 0):
        return f"Cache-Control: {response.header('Cache-Control')}"
    return ""


def _directives(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip().strip('"')
    return out


def _lifetime(response: Response, cc: Mapping[str, str]) -> int | None:
    """The app's own freshness lifetime in seconds (s-maxage, max-age, Expires), or None."""
    for name in ("s-maxage", "max-age"):
        if name in cc:
            return int(cc[name]) if cc[name].isdigit() else 0
    expires = response.header("Expires")
    if expires is None:
        return None
    try:
        until = email.utils.parsedate_to_datetime(expires)
        now = email.utils.parsedate_to_datetime(response.header("Date") or "")
    except (TypeError, ValueError):
        return 0  # an invalid Expires means "already expired" (RFC 9111 section 5.3)
    return max(int((until - now).total_seconds()), 0)


# --------------------------------------------------------------------------- evidence


def _stored_view(ctx: Ctx, rule: Rule, base: Request, options: Options) -> View:
    """The view of a probe the policy must store; skipped (with why) when it would not."""
    seen = view(ctx, base, options)
    storage = storable(ctx.policy, rule, seen.direct)
    if not storage.stored:
        raise CheckSkipped(_unproven(rule, base, storage))
    return seen


def _unproven(rule: Rule, base: Request, storage: Storage) -> str:
    """Why a cacheable rule's checks cannot run on the app's answer, and what would help."""
    return (f"rule '{rule.name}': {base.target} is not stored ({storage.why}); name a page of "
            f"your app it stores with --path {rule.name}=/real/page")


def _outcomes(ctx: Ctx) -> bool:
    """Whether the engines write Cache-Status (``headers.cache_status``)."""
    return ctx.policy.headers.cache_status


def _evidence(ctx: Ctx, seen: View) -> None:
    """A check needs one of its two witnesses: Cache-Status or an identity per response."""
    if not _outcomes(ctx) and not seen.unique:
        raise CheckSkipped(f"no Cache-Status (headers.cache_status: false) and your app's "
                           f"{seen.identity.name} is the same on every response: a hit cannot be "
                           "told from a miss (pass --response-id-header NAME)")


def _status_line(response: Response) -> str:
    return f"{response.status} {response.header('Cache-Status')}"


def expect_hit(ctx: Ctx, seen: View, first: Response, second: Response, *, fresh: bool) -> None:
    """``first`` was fetched (a miss, when ``fresh``) and ``second`` is the stored response."""
    _evidence(ctx, seen)
    ids = seen.ids(first=first, second=second)
    if _outcomes(ctx):
        if fresh:
            ctx.expect(first.cache.outcome == "miss",
                       f"first request: {_status_line(first)}, expected a miss ({ids})")
        ctx.expect(second.cache.outcome == "hit",
                   f"second request: {_status_line(second)}, expected a hit ({ids})")
    ctx.expect(seen.same(first, second), f"the hit is not the stored response: {ids}")


def expect_fetched(ctx: Ctx, seen: View, first: Response, second: Response, outcome: str) -> None:
    """``second`` was not answered from what ``first`` stored: it reached the app."""
    _evidence(ctx, seen)
    ids = seen.ids(first=first, second=second)
    if _outcomes(ctx):
        ctx.expect(second.cache.outcome == outcome if outcome == "bypass" else
                   second.cache.outcome not in ("hit", "stale"),
                   f"second request: {_status_line(second)}, expected {outcome} ({ids})")
    if seen.unique:
        ctx.expect(not seen.same(first, second), f"the second answer is the first one's: {ids}")


def _expect_rule(ctx: Ctx, rule: Rule, *responses: Response) -> None:
    if not _outcomes(ctx):
        return
    for response in responses:
        ctx.expect(response.cache.detail == rule.name, f"Cache-Status names rule "
                   f"{response.cache.detail!r} ({_status_line(response)}), expected {rule.name!r}")


# --------------------------------------------------------------------------- the checks


def check_rule(rule: Rule, base: Request, options: Options, ctx: Ctx) -> None:
    """Cacheable: a miss, then a hit with the same response (or, when the app's answer is one
    the policy never stores, two fetches). ``cache: false``: every request reaches the app."""
    seen = view(ctx, base, options)
    stored = False
    if stored_when_fresh(ctx.policy, rule, base):
        storage = storable(ctx.policy, rule, seen.direct)
        if storage.by_status:
            raise CheckSkipped(_unproven(rule, base, storage))
        stored = storage.stored
        ctx.notes.append(f"{base.target}: {'stored' if stored else 'not stored'} ({storage.why})")
    first, second = ctx.send(seen.request), ctx.send(seen.request)
    _expect_rule(ctx, rule, first, second)
    if stored:
        expect_hit(ctx, seen, first, second, fresh=isolated(ctx.policy))
    else:
        bypass = not stored_when_fresh(ctx.policy, rule, base)
        expect_fetched(ctx, seen, first, second, "bypass" if bypass else "no hit")


def check_bypass(rule: Rule, base: Request, options: Options, what: str, ctx: Ctx) -> None:
    """A stored page requested with a cookie (or Authorization) is not answered from the cache."""
    seen = _stored_view(ctx, rule, base, options)
    stored = ctx.send(seen.request)
    ctx.send(seen.request)  # now stored, whatever the first found
    header = {"cookie": ("Cookie", f"{SESSION_COOKIE}={ctx.tag()}"),
              "authorization": ("Authorization", f"Bearer {ctx.tag()}")}[what]
    other = ctx.send(seen.request, headers=dict([header]))
    _expect_rule(ctx, rule, other)
    expect_fetched(ctx, seen, stored, other, "bypass")


def check_strip_cookies(rule: Rule, base: Request, options: Options, ctx: Ctx) -> None:
    """With ``strip_cookies``, a request with cookies gets the shared copy, without Set-Cookie."""
    seen = _stored_view(ctx, rule, base, options)
    first = ctx.send(seen.request)
    other = ctx.send(seen.request, headers={"Cookie": f"{SESSION_COOKIE}={ctx.tag()}"})
    _expect_rule(ctx, rule, other)
    expect_hit(ctx, seen, first, other, fresh=isolated(ctx.policy))
    ctx.expect(other.header("Set-Cookie") is None,
               f"the client got Set-Cookie: {other.header('Set-Cookie')}")


def check_vary(rule: Rule, base: Request, options: Options, ctx: Ctx) -> None:
    """Two values of the rule's Vary header are stored apart; a repeated value is a hit."""
    seen = _stored_view(ctx, rule, base, options)
    header = rule.vary[0]
    va, vb = part_values(rule, "header", header)
    a = ctx.send(seen.request, headers={header: va})
    b = ctx.send(seen.request, headers={header: vb})
    again = ctx.send(seen.request, headers={header: va})
    _expect_rule(ctx, rule, a, b, again)
    if _outcomes(ctx):
        ctx.expect(b.cache.outcome == "miss", f"{header}: cw-b after cw-a: {_status_line(b)}, "
                   f"expected a miss (a variant of its own; {seen.ids(a=a, b=b)})")
    expect_hit(ctx, seen, a, again, fresh=isolated(ctx.policy))


def check_methods(base: Request, options: Options, ctx: Ctx) -> None:
    """POST is never answered from the cache; an unknown method gets 501 from the engine."""
    seen = view(ctx, base, options)
    ctx.send(seen.request)
    posts = [ctx.send(seen.request, method="POST", body=b"cw") for _ in range(2)]
    if _outcomes(ctx):
        for post in posts:
            ctx.expect(post.cache.outcome == "bypass", f"POST: {_status_line(post)}, expected bypass")
    unknown = ctx.send(seen.request, method=UNKNOWN_METHOD)
    ctx.expect(unknown.status == 501, f"{UNKNOWN_METHOD}: status {unknown.status}, expected 501")


def check_purge(base: Request, options: Options, ctx: Ctx) -> None:
    """A stored page, purged from an allowed address, is fetched again on the next request."""
    rule = select_rule(ctx.policy, base)
    seen = _stored_view(ctx, rule, base, options)
    source = purger_address(ctx.policy)
    if source is None:
        raise CheckSkipped("purge.allow holds no loopback address to purge from")
    first, hit = ctx.send(seen.request), ctx.send(seen.request)
    expect_hit(ctx, seen, first, hit, fresh=isolated(ctx.policy))
    purge = ctx.send(seen.request, method="PURGE", source=source)
    ctx.expect(200 <= purge.status < 300, f"PURGE {seen.request.target}: status {purge.status}, "
               "expected 2xx")
    after = ctx.send(seen.request)
    if _outcomes(ctx):
        ctx.expect(after.cache.outcome == "miss", f"after the PURGE: {_status_line(after)}, "
                   f"expected a miss ({seen.ids(stored=hit, after=after)})")
    if seen.unique:
        ctx.expect(not seen.same(hit, after), f"after the PURGE the stored response was served: "
                   f"{seen.ids(stored=hit, after=after)}")
