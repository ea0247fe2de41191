"""Checks of a policy's HTTPS listener: protocols and ciphers of its Mozilla profile, ALPN, the
HTTP→HTTPS redirect, HSTS, caching over HTTPS, scheme in the key and forwarding headers.

A refused handshake proves nothing when the client could not have offered what it was refused
(OpenSSL builds without TLS 1.0, or a certificate type that rules a cipher out by itself). So
every refusal is preceded by a self-test: the same client offer must complete a handshake with a
permissive in-process TLS server holding a certificate of the engine's key type. When it cannot,
the check is skipped with that reason, never passed.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cachewright.generator.model import HttpsListener, Policy
from cachewright.generator.tls import PROFILES, Profile

from ..certs import throwaway_pair
from ..client import Response
from ..runtime.prepare import request_host
from .base import Check, CheckFailed, CheckSkipped, Ctx
from .defaults import _rule_or_skip
from .rules import origin_answer, probe

TIMEOUT = 5.0
VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
LEGACY = ("TLSv1", "TLSv1.1", "TLSv1.2")
ANY_CIPHER = "DEFAULT:@SECLEVEL=0"  # OpenSSL 3 offers TLS < 1.2 only at security level 0
ECDHE_GCM = "ECDHE+AESGCM"
NO_FORWARD_SECRECY = "kRSA:@SECLEVEL=0"  # RSA key exchange: AES128-GCM-SHA256 and the like
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes((0, 0, 0, 4, 0, 0, 0, 0, 0))
H2_SETTINGS = 4
STS = "Strict-Transport-Security"
# Setting TLS 1.0/1.1 warns (DeprecationWarning); the filter is process-wide, so one at a time.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Offer:
    """What a client offers in one handshake: a protocol range, TLS ≤ 1.2 ciphers, ALPN."""

    low: str
    high: str
    ciphers: str | None = None
    alpn: tuple[str, ...] = ()

    def describe(self) -> str:
        versions = self.low if self.low == self.high else f"{self.low}-{self.high}"
        return f"{versions} offering {self.ciphers}" if self.ciphers else versions

    def context(self, cafile: Path | None) -> ssl.SSLContext:
        """A client context offering exactly this; it verifies the chain when ``cafile``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        if cafile is None:
            context.verify_mode = ssl.CERT_NONE
        else:
            context.load_verify_locations(cafile=str(cafile))
        _set_versions(context, self.low, self.high)
        if self.ciphers:
            context.set_ciphers(self.ciphers)
        if self.alpn:
            context.set_alpn_protocols(list(self.alpn))
        return context


@dataclass(frozen=True)
class Session:
    """What one completed handshake negotiated."""

    version: str
    cipher: str
    alpn: str | None
    certificate: bytes

    def describe(self) -> str:
        return f"{self.version} {self.cipher}"


def _set_versions(context: ssl.SSLContext, low: str, high: str) -> None:
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = VERSIONS[low]
        context.maximum_version = VERSIONS[high]


# --------------------------------------------------------------------------- handshakes


@contextlib.contextmanager
def _open(address: tuple[str, int], context: ssl.SSLContext,
          server_name: str) -> Iterator[ssl.SSLSocket]:
    """A TLS connection to ``address`` with its handshake completed."""
    with socket.create_connection(address, TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        yield tls


def _session(tls: ssl.SSLSocket) -> Session:
    cipher = tls.cipher()
    return Session(tls.version() or "?", cipher[0] if cipher else "?",
                   tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True) or b"")


def _attempt(address: tuple[str, int], offer: Offer, cafile: Path | None,
             server_name: str) -> Session | str:
    """The negotiated session, or why the handshake was refused. Anything that is not a TLS
    refusal (a client that cannot be configured, a certificate it rejects, a timeout, nothing
    listening) propagates."""
    context = offer.context(cafile)
    try:
        with _open(address, context, server_name) as tls:
            return _session(tls)
    except ssl.SSLCertVerificationError:
        raise
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _address(ctx: Ctx) -> tuple[str, int]:
    endpoint = ctx.stack.endpoints[ctx.engine]
    if endpoint.https_port is None:
        raise CheckFailed(f"{ctx.engine} has no HTTPS endpoint")
    return endpoint.host, endpoint.https_port


def _try(ctx: Ctx, offer: Offer) -> Session | str:
    """``offer`` against this engine's HTTPS listener."""
    return _attempt(_address(ctx), offer, ctx.stack.ca_file, request_host(ctx.policy))


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


# --------------------------------------------------------------------------- client self-test


def key_type(certificate: bytes) -> str:
    """The key type of a DER certificate: RSA, ECDSA or the key class's name."""
    key = x509.load_der_x509_certificate(certificate).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    return type(key).__name__


@functools.cache
def _rsa_pair() -> tuple[bytes, bytes]:
    """A self-signed RSA 2048 certificate and its key (PEM) for the self-test server."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachewright self-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _permissive_server(key: str) -> ssl.SSLContext:
    """A server context accepting TLS 1.0-1.3 and every cipher, with a ``key`` certificate."""
    cert, private = _rsa_pair() if key == "RSA" else throwaway_pair()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_versions(context, "TLSv1", "TLSv1.3")
    context.set_ciphers("ALL:@SECLEVEL=0")
    with tempfile.TemporaryDirectory(prefix="cachewright-tls-") as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert)
        key_file.write_bytes(private)
        context.load_cert_chain(cert_file, key_file)
    return context


def _serve_once(listener: socket.socket, context: ssl.SSLContext) -> None:
    """Accept one connection, complete its handshake, wait for the client to close."""
    with contextlib.suppress(OSError):
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)


@functools.cache
def client_cannot(offer: Offer, key: str) -> str | None:
    """Why this machine's TLS client cannot complete ``offer`` even with a permissive
    in-process server holding a ``key`` certificate; None when it can."""
    if key not in ("RSA", "ECDSA"):
        return f"no self-test server for {key} certificates"
    try:
        offer.context(None)
    except ssl.SSLError as exc:
        return f"the client cannot be configured: {exc}"
    outcome = _with_permissive_server(offer, key)
    if isinstance(outcome, str):
        return outcome
    if offer.low == offer.high and outcome.version != offer.high:
        return f"negotiated {outcome.version}"
    return None


def _with_permissive_server(offer: Offer, key: str) -> Session | str:
    """``offer`` against a one-connection in-process server that accepts anything."""
    server = _permissive_server(key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        thread = threading.Thread(target=_serve_once, args=(listener, server), daemon=True)
        thread.start()
        try:
            return _attempt(("127.0.0.1", listener.getsockname()[1]), offer, None, "localhost")
        finally:
            thread.join(TIMEOUT)


def _untestable(offer: Offer, key: str) -> str | None:
    """Why a refusal of ``offer`` would prove nothing here (None when it would)."""
    reason = client_cannot(offer, key)
    if reason is None:
        return None
    return (f"this machine's TLS client cannot offer {offer.describe()} even to a permissive "
            f"local server with a {key} certificate ({reason})")


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
        reason = _untestable(offer, key) if protocol in ("TLSv1", "TLSv1.1") else None
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
        reason = _untestable(offer, key)
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
    reason = _untestable(offer, key)
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
    with _open(_address(ctx), context, request_host(ctx.policy)) as tls:
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
    rule = _rule_or_skip(ctx.policy)
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
    rule = _rule_or_skip(ctx.policy)
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
    rule = _rule_or_skip(ctx.policy)
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
    rule = _rule_or_skip(ctx.policy)
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


__all__ = ["Offer", "Session", "client_cannot", "key_type", "tls_checks"]
