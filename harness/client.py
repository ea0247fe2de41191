"""A small HTTP client for checks: raw request targets (no normalisation), chosen source address,
HTTP or HTTPS to one engine, and the Cache-Status header parsed into one vocabulary.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from .runtime.api import Endpoint

TIMEOUT = 15.0
#: called with (engine, response) after every request when set (``cachewright test --trace``)
TRACE: Callable[[str, Response], None] | None = None


@dataclass(frozen=True)
class CacheStatus:
    """RFC 9211 Cache-Status as both engines write it: ``cachewright; hit; detail=static``."""

    raw: str
    hit: bool
    fwd: str | None
    stale: bool
    detail: str | None

    @property
    def outcome(self) -> str:
        """One word: hit, stale, miss, bypass (or the raw fwd value, or "none")."""
        if self.hit:
            return "stale" if self.stale else "hit"
        return {"miss": "miss", "bypass": "bypass", "stale": "miss"}.get(self.fwd or "", self.fwd or "none")


def parse_cache_status(value: str | None, cache_name: str = "cachewright") -> CacheStatus:
    """The entry for ``cache_name`` in a Cache-Status header (an absent one parses as "none")."""
    for entry in reversed((value or "").split(",")):
        parts = [p.strip() for p in entry.split(";")]
        if parts and parts[0] == cache_name:
            params = dict(p.partition("=")[::2] for p in parts[1:])
            return CacheStatus(entry.strip(), "hit" in params, params.get("fwd") or None,
                               "stale" in params, params.get("detail") or None)
    return CacheStatus(value or "", False, None, False, None)


@dataclass(frozen=True)
class Identity:
    """What tells one origin response from another, so that "the hit is the stored response" can
    be judged without counting at the origin.

    ``header`` names a header the app sets on every response (the sample origin's
    ``X-Response-Id``; a user's app: ``--response-id-header``). Without one, a response is known
    by its ``ETag``, else by a digest of its body: those are per *content*, so two equal values
    show a consistent answer, and prove a hit only where the app's content changes per response.
    """

    header: str | None = None

    def of(self, response: Response) -> str | None:
        """``response``'s identity, with what it was taken from (``ETag "abc"``,
        ``body sha256:…``); None when the chosen header is absent (matches nothing)."""
        if self.header is not None:
            value = response.header(self.header)
            return None if value is None else f"{self.header} {value}"
        etag = response.header("ETag")
        if etag is not None:
            return f"ETag {etag}"
        return f"body sha256:{hashlib.sha256(response.body).hexdigest()[:16]}"

    def describe(self, response: Response) -> str:
        """``of`` for messages: the identity, or which header is missing."""
        return self.of(response) or f"no {self.header}"

    @property
    def name(self) -> str:
        """What identities are taken from, for messages: a header name or "ETag, else a body
        digest"."""
        return self.header or "ETag, else a body digest"


#: the sample origin gives every response a unique X-Response-Id
SAMPLE_IDENTITY = Identity("X-Response-Id")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float
    request: str = ""
    #: the policy's Cache-Status cache name (``headers.cache_status_name``)
    cache_name: str = "cachewright"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def joined(self, name: str) -> str | None:
        """Every field line of ``name`` as one list value (RFC 9110 5.3): in a fleet, nginx
        adds its Cache-Status entry as a line of its own after the inner tier's."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def cache(self) -> CacheStatus:
        return parse_cache_status(self.joined("Cache-Status"), self.cache_name)

    @property
    def response_id(self) -> str | None:
        return self.header("X-Response-Id")

    def json(self) -> Any:
        return json.loads(self.body)

    def summary(self) -> str:
        return (f"{self.request} -> {self.status} Cache-Status: {self.joined('Cache-Status')!s} "
                f"X-Response-Id: {self.response_id!s} ({self.elapsed * 1000:.0f} ms)")


class Sending(TypedDict, total=False):
    """``Client.request``'s keyword options that wrappers pass on as they are."""

    body: bytes | None
    source: str | None
    timeout: float


class Requesting(Sending, total=False):
    """All of ``Client.request``'s keyword options (a subclass may default the scheme itself)."""

    scheme: str
    host: str | None


@dataclass
class Client:
    """Sends requests to one engine endpoint; remembers every exchange for failure messages."""

    endpoint: Endpoint
    host: str
    ca_file: Path | None = None
    source: str | None = None
    log: list[str] = field(default_factory=list)
    #: the name the engines give themselves in Cache-Status (``headers.cache_status_name``)
    cache_name: str = "cachewright"

    def request(self, method: str, target: str, headers: dict[str, str] | None = None, *,
                scheme: str = "http", body: bytes | None = None, source: str | None = None,
                host: str | None = None, timeout: float = TIMEOUT) -> Response:
        """Send one request with the raw ``target``; a new connection each time."""
        conn = self._connection(scheme, source or self.source, timeout, host or self.host)
        sent = {"Host": host or self.host, **(headers or {})}
        started = time.monotonic()
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            raw = conn.getresponse()
            data = raw.read()
            response = Response(raw.status, raw.getheaders(), data, time.monotonic() - started,
                                f"{method} {scheme}://{sent['Host']}{target}", self.cache_name)
        finally:
            conn.close()
        self.log.append(response.summary())
        if TRACE is not None:
            TRACE(self.endpoint.engine, response)
        return response

    def get(self, target: str, headers: dict[str, str] | None = None, **kw: Unpack[Requesting]) -> Response:
        return self.request("GET", target, headers, **kw)

    def _connection(self, scheme: str, source: str | None, timeout: float,
                    server_name: str) -> http.client.HTTPConnection:
        address = (source, 0) if source else None
        if scheme == "https":
            port = self.endpoint.https_port
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            context.check_hostname = False
            return _TlsConnection(self.endpoint.host, port, server_name, timeout, address, context)
        return http.client.HTTPConnection(self.endpoint.host, self.endpoint.http_port,
                                          timeout=timeout, source_address=address)


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS to an IP address with the SNI name of the Host being requested."""

    def __init__(self, host: str, port: int | None, server_name: str, timeout: float,
                 source_address: tuple[str, int] | None, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, source_address=source_address, context=context)
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout,
                                        self.source_address)  # type: ignore[attr-defined]
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]
