"""The TLS client the tls checks handshake with: an offer (protocol range, ciphers, ALPN), the
session it negotiates or why it was refused, and the self-test that proves a refusal means
something: the same offer must complete a handshake with a permissive in-process server holding
a certificate of the engine's key type (an OpenSSL build without TLS 1.0, or a certificate type
that rules a cipher out by itself, refuses on the client's side).
"""

from __future__ import annotations

import contextlib
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cachewright.harness.certs import throwaway_pair

TIMEOUT = 5.0
VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
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
def open_tls(address: tuple[str, int], context: ssl.SSLContext,
          server_name: str) -> Iterator[ssl.SSLSocket]:
    """A TLS connection to ``address`` with its handshake completed."""
    with socket.create_connection(address, TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        yield tls


def _session(tls: ssl.SSLSocket) -> Session:
    cipher = tls.cipher()
    return Session(tls.version() or "?", cipher[0] if cipher else "?",
                   tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True) or b"")


def attempt(address: tuple[str, int], offer: Offer, cafile: Path | None,
             server_name: str) -> Session | str:
    """The negotiated session, or why the handshake was refused. Anything that is not a TLS
    refusal (a client that cannot be configured, a certificate it rejects, a timeout, nothing
    listening) propagates."""
    context = offer.context(cafile)
    try:
        with open_tls(address, context, server_name) as tls:
            return _session(tls)
    except ssl.SSLCertVerificationError:
        raise
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- client self-test


def key_type(certificate: bytes) -> str:
    """The key type of a DER certificate: RSA, ECDSA or the key class's name."""
    key = x509.load_der_x509_certificate(certificate).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    return type(key).__name__


def _permissive_server(key: str) -> ssl.SSLContext:
    """A server context accepting TLS 1.0-1.3 and every cipher, with a ``key`` certificate."""
    cert, private = throwaway_pair(key_type=key)
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
            return attempt(("127.0.0.1", listener.getsockname()[1]), offer, None, "localhost")
        finally:
            thread.join(TIMEOUT)


def untestable(offer: Offer, key: str) -> str | None:
    """Why a refusal of ``offer`` would prove nothing here (None when it would)."""
    reason = client_cannot(offer, key)
    if reason is None:
        return None
    return (f"this machine's TLS client cannot offer {offer.describe()} even to a permissive "
            f"local server with a {key} certificate ({reason})")

__all__ = ["TIMEOUT", "Offer", "Session", "attempt", "open_tls", "client_cannot", "key_type", "untestable"]
