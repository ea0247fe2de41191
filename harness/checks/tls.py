"""Checks of a policy's HTTPS listener: protocols and ciphers of its Mozilla profile, ALPN, the
HTTP→HTTPS redirect, HSTS, caching over HTTPS, scheme in the key and forwarding headers.

A refused handshake proves nothing when the client could not have offered what it was refused
(OpenSSL builds without TLS 1.0, or a certificate type that rules a cipher out by itself). So
every refusal is preceded by a self-test: the same client offer must complete a handshake with a
permissive in-process TLS server holding a certificate of the engine's key type
(``tls_handshake``). When it cannot, the check is skipped with that reason, never passed.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

from cachewright.generator.model import HttpsListener, Policy
from cachewright.generator.tls import PROFILES, Profile

from ..client import Response
from ..runtime.prepare import request_host
from .base import Check, CheckFailed, CheckSkipped, Ctx
from .defaults import rule_or_skip
from .rules import origin_answer, probe
from .tls_handshake import Offer, Session, attempt, key_type, open_tls, untestable

LEGACY = ("TLSv1", "TLSv1.1", "TLSv1.2")
ANY_CIPHER = "DEFAULT:@SECLEVEL=0"  # OpenSSL 3 offers TLS < 1.2 only at security level 0
ECDHE_GCM = "ECDHE+AESGCM"
NO_FORWARD_SECRECY = "kRSA:@SECLEVEL=0"  # RSA key exchange: AES128-GCM-SHA256 and the like
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes((0, 0, 0, 4, 0, 0, 0, 0, 0))
H2_SETTINGS = 4
STS = "Strict-Transport-Security"


# --------------------------------------------------------------------------- handshakes


def _address(ctx: Ctx) -> tuple[str, int]:
    endpoint = ctx.stack.endpoints[ctx.engine]
    if endpoint.https_port is None:
        raise CheckFailed(f"{ctx.engine} has no HTTPS endpoint")
    return endpoint.host, endpoint.https_port


def _try(ctx: Ctx, offer: Offer) -> Session | str:
    """``offer`` against this engine's HTTPS listener."""
    return attempt(_address(ctx), offer, ctx.stack.ca_file, request_host(ctx.policy))


def _expect_session(ctx: Ctx, offer: Offer) -> Session:
    outcome = _try(ctx, offer)
    if isinstance(outcome, str):
        raise CheckFailed(f"{offer.describe()}: handshake refused ({outcome})")
    if offer.low == offer.high:
        ctx.expect(outcome.version == offer.high, f"{offer.describe()}: negotiated {outcome.version}")
    return outcome


def _expect_refused(ctx: Ctx, offer: Offer) -> None:
    outcome = _try(ctx, offer)
    ctx.expect(isinstance(outcome, str), f"{offer.describe()}: handshake accepted "
               f"({outcome.describe() if isinstance(outcome, Session) else ''})")


def _baseline(ctx: Ctx) -> Session:
    """A handshake every profile accepts (TLS 1.3): the listener is up and speaks TLS, so a
    refusal that follows is the server's choice, not a dead port."""
    return _expect_session(ctx, Offer("TLSv1.3", "TLSv1.3"))

# --------------------------------------------------------------------------- protocol checks


def _https(policy: Policy) -> HttpsListener:
    https = policy.listen.https
    assert https is not None, "TLS checks are derived only for policies with listen.https"
    return https


def _profile(policy: Policy) -> Profile:
    return PROFILES[_https(policy).profile]


def accepted_offer(protocol: str) -> Offer:
    """How a protocol the profile allows is offered: TLS 1.2 with ECDHE-GCM ciphers only, TLS 1.3
    as is, TLS 1.0/1.1 with any cipher (at OpenSSL security level 0)."""
    if protocol == "TLSv1.2":
        return Offer(protocol, protocol, ECDHE_GCM)
    return Offer(protocol, protocol, None if protocol == "TLSv1.3" else ANY_CIPHER)


def refused_protocols(profile: Profile) -> tuple[str, ...]:
    """TLS 1.0-1.2 versions the profile does not allow."""
    return tuple(p for p in LEGACY if p not in profile.protocols)


def forward_secret_only(profile: Profile) -> bool:
    """Whether every TLS ≤ 1.2 cipher of the profile has an ephemeral key exchange."""
    return all(c.startswith(("ECDHE-", "DHE-")) for c in profile.ciphers)


def check_handshake(ctx: Ctx) -> None:
    """Every protocol of the profile completes a handshake (TLS 1.2 with an ECDHE-GCM cipher);
    the negotiated versions and ciphers are noted."""
    key = key_type(_baseline(ctx).certificate)
    done: list[str] = []
    untried: list[str] = []
    for protocol in _profile(ctx.policy).protocols:
        offer = accepted_offer(protocol)
        reason = untestable(offer, key) if protocol in ("TLSv1", "TLSv1.1") else None
        if reason is None:
            done.append(_expect_allowed(ctx, offer))
        else:
            untried.append(reason)
    ctx.notes.append(f"negotiated ({key} certificate): {'; '.join(done)}")
    if untried:
        raise CheckSkipped(f"{'; '.join(done)} succeeded, but {'; '.join(untried)}")


def _expect_allowed(ctx: Ctx, offer: Offer) -> str:
    """``offer`` completes a handshake (an ECDHE-GCM cipher when that is all it offers)."""
    session = _expect_session(ctx, offer)
    if offer.ciphers == ECDHE_GCM:
        ctx.expect(session.cipher.startswith("ECDHE") and "GCM" in session.cipher,
                   f"{offer.describe()}: negotiated {session.cipher}")
    return session.describe()


def check_refuses_old_protocols(ctx: Ctx) -> None:
    """Protocols below the profile's are refused, each offered with any cipher; a protocol this
    machine's client cannot offer at all makes the check skipped, not passed."""
    key = key_type(_baseline(ctx).certificate)
    untried = []
    for protocol in refused_protocols(_profile(ctx.policy)):
        offer = Offer(protocol, protocol, ANY_CIPHER)
        reason = untestable(offer, key)
        if reason is None:
            _expect_refused(ctx, offer)
        else:
            untried.append(reason)
    if untried:
        raise CheckSkipped("; ".join(untried))


def check_refuses_no_forward_secrecy(ctx: Ctx) -> None:
    """A TLS 1.2 handshake offering only RSA key exchange ciphers is refused. With an ECDSA
    certificate no such cipher can be negotiated whatever the cipher list says: skipped."""
    key = key_type(_baseline(ctx).certificate)
    if key != "RSA":
        raise CheckSkipped(f"the served certificate is {key}: RSA key exchange is impossible with "
                           "it whatever the configured cipher list says, so a refusal would prove "
                           "nothing (needs an RSA certificate)")
    offer = Offer("TLSv1.2", "TLSv1.2", NO_FORWARD_SECRECY)
    reason = untestable(offer, key)
    if reason is not None:
        raise CheckSkipped(reason)
    _expect_refused(ctx, offer)


def _read_exactly(tls: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = tls.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def speaks_h2(tls: ssl.SSLSocket) -> bool:
    """Whether the server answers the HTTP/2 connection preface with a SETTINGS frame."""
    tls.sendall(H2_PREFACE)
    header = _read_exactly(tls, 9)
    return len(header) == 9 and header[3] == H2_SETTINGS


def check_alpn(ctx: Ctx) -> None:
    """Offered h2 and http/1.1, the server picks h2 (and speaks it) exactly when http2 is on."""
    offer = Offer("TLSv1.2", "TLSv1.3", alpn=("h2", "http/1.1"))
    context = offer.context(ctx.stack.ca_file)
    with open_tls(_address(ctx), context, request_host(ctx.policy)) as tls:
        chosen = tls.selected_alpn_protocol()
        ctx.notes.append(f"ALPN: {chosen}")
        if not _https(ctx.policy).http2:
            ctx.expect(chosen in (None, "http/1.1"), f"ALPN chose {chosen!r} with http2 off")
            return
        ctx.expect(chosen == "h2", f"ALPN chose {chosen!r}, expected h2 (http2 is on)")
        ctx.expect(speaks_h2(tls), "ALPN chose h2, but the HTTP/2 preface got no SETTINGS frame")


# --------------------------------------------------------------------------- HTTP over TLS


def _https_port(ctx: Ctx) -> str:
    """The ``:port`` part of an https URL to this engine ("" for 443)."""
    port = _address(ctx)[1]
    return "" if port == 443 else f":{port}"


def check_redirect(ctx: Ctx) -> None:
    """Plain HTTP gets a 301 to the same target over HTTPS; the origin never sees it."""
    path = f"/{ctx.tag()}/redirect"
    target = f"{path}?cw=1&b=two"
    response = ctx.client.get(target, scheme="http")
    expected = f"https://{request_host(ctx.policy)}{_https_port(ctx)}{target}"
    ctx.expect(response.status == 301, f"plain HTTP answered {response.status}, expected 301")
    ctx.expect(response.header("Location") == expected,
               f"Location {response.header('Location')!r}, expected {expected!r}")
    ctx.expect(ctx.count(path) == 0, f"the redirected request reached the origin "
               f"({ctx.count(path)} requests)")


def expected_hsts(https: HttpsListener) -> set[str]:
    """The policy's Strict-Transport-Security directives, lowercased."""
    assert https.hsts is not None
    directives = {f"max-age={https.hsts.max_age}"}
    directives |= {"includesubdomains"} if https.hsts.include_subdomains else set()
    return directives | ({"preload"} if https.hsts.preload else set())


def _sts_values(response: Response) -> list[str]:
    return [v for k, v in response.headers if k.lower() == STS.lower()]


def _expect_hsts(ctx: Ctx, response: Response, expected: set[str]) -> None:
    values = _sts_values(response)
    ctx.expect(len(values) == 1, f"{response.request}: {len(values)} {STS} headers {values}, "
               "expected one")
    got = {d.strip().lower() for d in values[0].split(";") if d.strip()}
    ctx.expect(got == expected, f"{response.request}: {STS}: {values[0]!r}, expected "
               f"{'; '.join(sorted(expected))}")


def check_hsts(ctx: Ctx) -> None:
    """HTTPS responses (proxied and refused alike) carry the policy's Strict-Transport-Security;
    plain HTTP responses carry none (browsers must ignore it there)."""
    expected = expected_hsts(_https(ctx.policy))
    for target in (f"/{ctx.tag()}/hsts", "/cw/../guard"):
        _expect_hsts(ctx, ctx.client.get(target, scheme="https"), expected)
    if ctx.policy.listen.http is None:
        return
    plain = ctx.client.get(f"/{ctx.tag()}/hsts", scheme="http")
    ctx.expect(not _sts_values(plain), f"plain HTTP response carries {STS}: {_sts_values(plain)}")


def check_hit(ctx: Ctx) -> None:
    """A cacheable response misses then hits over HTTPS, with one origin request."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    first = ctx.send_stored(req, scheme="https")
    second = ctx.send(req, scheme="https")
    ctx.expect(first.status == 200, f"status {first.status}, expected 200")
    ctx.expect(first.cache.outcome == "miss", f"first request: {first.cache.outcome}, expected miss")
    ctx.expect(second.cache.outcome == "hit", f"second request: {second.cache.outcome}, expected hit")
    ctx.expect(ctx.count(req.unit) == 1, f"origin saw {ctx.count(req.unit)} requests, expected 1")
    ctx.expect(first.response_id == second.response_id, "the hit is not the stored response")


def check_redirect_not_shared(ctx: Ctx) -> None:
    """A redirect answered over plain HTTP is never served for the same URL over HTTPS."""
    if ctx.policy.listen.http is None:
        raise CheckSkipped("plain HTTP is not served: no http entry or redirect can leak")
    if _https(ctx.policy).redirect_http:
        _own_redirect_not_shared(ctx)
    else:
        _origin_redirect_not_shared(ctx)


def _origin_redirect_not_shared(ctx: Ctx) -> None:
    """The origin's 301 stored for http; then over https the origin's 200, not the 301."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=301, cache_control="max-age=60",
                headers={"Location": f"https://{req.host}{req.target}"})
    ctx.send(req, scheme="http")
    stored = ctx.send(req, scheme="http")
    if stored.status != 301 or ctx.count(req.unit) != 1:
        raise CheckSkipped(f"rule '{rule.name}' did not store the origin's 301 over http "
                           f"({stored.status}, origin count {ctx.count(req.unit)}): no redirect "
                           "to leak")
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    secure = ctx.send(req, scheme="https")
    ctx.expect(secure.status == 200, f"https was answered {secure.status} "
               f"(Location {secure.header('Location')!r}): the http redirect leaked")
    ctx.expect(ctx.count(req.unit) == 2, f"origin saw {ctx.count(req.unit)} requests, expected 2")


def _own_redirect_not_shared(ctx: Ctx) -> None:
    """With redirect_http: after the cache's own 301 over http, https still gets the origin's
    200 (a miss, then a hit)."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    redirect = ctx.send(req, scheme="http")
    ctx.expect(redirect.status == 301, f"plain HTTP answered {redirect.status}, expected 301")
    first, second = ctx.send(req, scheme="https"), ctx.send(req, scheme="https")
    for response in (first, second):
        ctx.expect(response.status == 200, f"https answered {response.status}, expected 200")
    ctx.expect(first.cache.outcome == "miss" and ctx.count(req.unit) == 1,
               f"https after the redirect: {first.cache.outcome}, origin count "
               f"{ctx.count(req.unit)} (expected a miss, one origin request)")


def check_forwarded(ctx: Ctx) -> None:
    """Over HTTPS, spoofed X-Forwarded-Proto/-For are replaced: the origin sees https and the
    real client address (through hitch's PROXY protocol for Varnish)."""
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    spoofed = {"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.9"}
    ctx.send(req, scheme="https", headers=spoofed)
    seen = ctx.control().requests(path=req.unit)[-1]
    proto, client = seen.header("X-Forwarded-Proto"), seen.header("X-Forwarded-For")
    ctx.expect(proto == "https", f"origin saw X-Forwarded-Proto {proto!r}, expected 'https'")
    real = ctx.stack.client_address
    ctx.expect(client == real, f"origin saw X-Forwarded-For {client!r}, expected {real}")


# --------------------------------------------------------------------------- derivation


def tls_checks(policy: Policy) -> Iterator[Check]:
    """The checks of ``policy``'s HTTPS listener (none without listen.https)."""
    https = policy.listen.https
    if https is None:
        return
    yield from _protocol_checks(https)
    if https.redirect_http:
        yield Check("tls.redirect", "plain HTTP gets a 301 to the same target over HTTPS and "
                    "never reaches the origin", check_redirect, ("tls", "security"), "tls")
    if https.hsts is not None:
        value = "; ".join(sorted(expected_hsts(https)))
        yield Check("tls.hsts", f"HTTPS responses carry Strict-Transport-Security ({value}); "
                    "plain HTTP ones none", check_hsts, ("tls", "security"), "tls.hsts",
                    needs_control=False)
    yield Check("tls.hit", "a cacheable response misses then hits over HTTPS (one origin "
                "request)", check_hit, ("tls",), "tls")
    if policy.listen.http is not None and (https.redirect_http or "scheme" in policy.cache.key):
        # without the scheme in its key the policy itself shares the origin's http answers
        # with https (a stored redirect included): nothing for the engines to prove
        yield Check("tls.redirect-not-shared", "a redirect answered over http is never served "
                    "over https", check_redirect_not_shared, ("tls", "security"), "tls")
    yield Check("tls.forwarded", "over HTTPS the origin sees X-Forwarded-Proto: https and the "
                "real client address", check_forwarded, ("tls", "security"), "tls")


def _protocol_checks(https: HttpsListener) -> Iterator[Check]:
    profile = PROFILES[https.profile]
    yield Check("tls.handshake", f"{', '.join(profile.protocols)} handshakes succeed (Mozilla "
                f"{profile.name}; TLS 1.2 with ECDHE-GCM)", check_handshake, ("tls",), "tls",
                needs_control=False)
    refused = refused_protocols(profile)
    if refused:
        yield Check("tls.refuses-old-protocols", f"{', '.join(refused)} handshakes are refused "
                    f"(Mozilla {profile.name})", check_refuses_old_protocols, ("tls", "security"),
                    "tls", needs_control=False)
    if forward_secret_only(profile):
        yield Check("tls.refuses-no-forward-secrecy", "a TLS 1.2 handshake offering only RSA key "
                    "exchange ciphers is refused", check_refuses_no_forward_secrecy,
                    ("tls", "security"), "tls", needs_control=False)
    alpn = "h2" if https.http2 else "not h2 (http2 is off)"
    yield Check("tls.alpn", f"ALPN negotiates {alpn}", check_alpn, ("tls",),
                "tls.http2" if https.http2 else "tls", needs_control=False)


__all__ = ["ANY_CIPHER", "NO_FORWARD_SECRECY", "tls_checks"]
