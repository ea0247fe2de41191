"""``poisoning``: unkeyed inputs (forwarding/override headers, a body on GET, oversized or
malformed headers) neither reach the origin nor change what the next client gets."""

from __future__ import annotations

from dataclasses import dataclass

from cachewright.generator.hygiene import stripped
from cachewright.generator.model import Rule

from ...client import Response
from ...origin import OriginError, SeenRequest, parse_echo
from ..base import Ctx
from ..rules import origin_answer, probe
from .shared import rules_or_skip

OVERSIZED = 16 * 1024
#: the sample origin's answer to a header line that is not ``token: value``
ORIGIN_MALFORMED = b'{"error": "malformed header field"}'


@dataclass(frozen=True)
class Poison:
    """One unkeyed input: extra headers (``{m}`` is replaced by a unique marker) and a body."""

    name: str
    guards: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    #: each header in a request of its own: an engine that refuses one line answers 400 to the
    #: whole request, which would hide what it does with the others
    apart: bool = False


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
    Poison("malformed-header", "a header name with a space before the colon, or with a character "
           "outside the token set (X@Forwarded@Host: a gateway that turns every other character into "
           "'_' reads HTTP_X_FORWARDED_HOST), slips past the strip list and is read as X-Forwarded-Host",
           (("X-Forwarded-Host ", "{m}.example"), ("X@Forwarded@Host", "{m}.example")), apart=True),
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


def _origin_refused(response: Response) -> bool:
    """Whether ``response`` is the sample origin's own answer to a header line it cannot parse
    (``harness/origin/wire.py``): the engine passed the line on, and a lax origin would have read it."""
    return response.status == 400 and response.body.strip() == ORIGIN_MALFORMED


def check_poison(poison: Poison, ctx: Ctx) -> None:
    """Send the poisoned request, then a clean one: no origin request shows the poison, the clean
    client's answer (echo) shows none of it, and an error the poison caused is not reused."""
    rule = rules_or_skip(ctx.policy, limit=1)[0]
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    marker = f"cwpoison{ctx.tag()}"
    headers = _poison_headers(ctx, poison, marker)
    body = poison.body.replace(b"{m}", marker.encode()) if poison.body else None
    for sent in [{n: v} for n, v in headers.items()] if poison.apart else [headers]:
        bad = ctx.send(req, headers=sent, body=body)
        ctx.expect(not _origin_refused(bad), f"the origin refused {sorted(sent)} as a malformed header "
                   f"({bad.status} {bad.body.strip()!r}): the engine passed the line on")
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

