"""HTTP/1.1 on the wire: read a request off a connection, write a reply back (stdlib only).

Connections are kept alive per HTTP/1.1 (HTTP/1.0 only with ``Connection: keep-alive``);
request bodies may be ``Content-Length`` or chunked, and ``Expect: 100-continue`` is honoured.
A request that cannot be parsed is answered with 400 and the connection closed. Both ports of
the origin speak through ``serve_connection``; what they answer is the caller's ``handler``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias
from urllib.parse import urlsplit

MAX_LINE: Final = 64 * 1024
MAX_HEADERS: Final = 256
MAX_REQUEST_BODY: Final = 64 * 1024 * 1024

TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")

Outcome: TypeAlias = Literal["ok", "not_modified", "error", "refused", "closed_mid_body"]
Headers: TypeAlias = tuple[tuple[str, str], ...]


class HttpError(Exception):
    """A request that cannot be parsed: answered with 400 and the connection closed."""


def header_values(headers: Headers, name: str) -> list[str]:
    """All values of header ``name`` (case-insensitive), in wire order."""
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


@dataclass(frozen=True)
class Request:
    """One parsed request; ``headers`` keeps wire order, case and duplicates."""

    method: str
    target: str
    version: str
    headers: Headers
    body: bytes
    client: tuple[str, int]
    path: str
    query: str

    def header_values(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive), in wire order."""
        return header_values(self.headers, name)

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection stay open after this request."""
        tokens = {
            token.strip().lower()
            for value in self.header_values("Connection")
            for token in value.split(",")
        }
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass(frozen=True)
class Reply:
    """What to send back. ``status`` is None when the connection is to be closed unanswered."""

    status: int | None
    headers: Headers
    body: bytes
    send_body: bool
    outcome: Outcome
    #: 1xx interim responses sent before this one (status codes)
    interim: tuple[int, ...] = ()
    #: header names added to this response's Connection header (hop-by-hop fields)
    connection: tuple[str, ...] = ()

    @property
    def sent_body(self) -> bytes:
        """The body bytes that go on the wire (none for HEAD and 304, half when cut short)."""
        body = self.body if self.send_body else b""
        return body[: len(body) // 2] if self.outcome == "closed_mid_body" else body


RequestHandler: TypeAlias = Callable[[Request], Awaitable[Reply]]


# --------------------------------------------------------------------------- reading


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError("line too long") from exc
    line = line[:-1]
    return line[:-1] if line.endswith(b"\r") else line


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, str, Headers]:
    line = await _read_line(reader)
    while not line:  # RFC 9112 §2.2: ignore empty lines before a request line
        line = await _read_line(reader)
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not TOKEN_RE.fullmatch(parts[0]):
        raise HttpError("malformed request line")
    if parts[2] not in ("HTTP/1.0", "HTTP/1.1") or not parts[1]:
        raise HttpError("unsupported HTTP version or empty target")
    return parts[0], parts[1], parts[2], await _read_headers(reader)


async def _read_headers(reader: asyncio.StreamReader) -> Headers:
    headers: list[tuple[str, str]] = []
    while line := await _read_line(reader):
        if len(headers) >= MAX_HEADERS:
            raise HttpError("too many header fields")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not TOKEN_RE.fullmatch(name):
            raise HttpError("malformed header field")
        headers.append((name, value.strip(" \t")))
    return tuple(headers)


async def _read_body(reader: asyncio.StreamReader, headers: Headers) -> bytes:
    codings = [
        coding.strip().lower()
        for value in header_values(headers, "transfer-encoding")
        for coding in value.split(",")
    ]
    lengths = header_values(headers, "content-length")
    if codings:
        if lengths or codings[-1] != "chunked":
            raise HttpError("unsupported Transfer-Encoding / Content-Length combination")
        return await _read_chunked(reader)
    if not lengths:
        return b""
    if len(set(lengths)) != 1 or not lengths[0].isdigit() or int(lengths[0]) > MAX_REQUEST_BODY:
        raise HttpError("bad Content-Length")
    return await reader.readexactly(int(lengths[0]))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_text = (await _read_line(reader)).split(b";", 1)[0].strip()
        if not _HEX_RE.fullmatch(size_text.decode("latin-1")):
            raise HttpError("bad chunk size")
        size = int(size_text, 16)
        total += size
        if size == 0:
            break
        if total > MAX_REQUEST_BODY:
            raise HttpError("request body too large")
        chunks.append(await reader.readexactly(size))
        if await _read_line(reader):
            raise HttpError("chunk data not followed by CRLF")
    while await _read_line(reader):  # trailer fields are read and dropped
        pass
    return b"".join(chunks)


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: tuple[str, int]
) -> Request:
    """Read one request; raises ``HttpError`` or ``asyncio.IncompleteReadError``."""
    method, target, version, headers = await _read_head(reader)
    expect = [v.lower() for v in header_values(headers, "expect")]
    if version == "HTTP/1.1" and "100-continue" in expect:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _read_body(reader, headers)
    parts = urlsplit(target)
    path = parts.path or ("*" if target == "*" else "/")
    return Request(method, target, version, headers, body, client, path, parts.query)


# --------------------------------------------------------------------------- writing


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_head(status: int, headers: Iterable[tuple[str, str]], connection: str | None) -> bytes:
    """The status line and header block; ``connection`` adds a ``Connection`` header."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if connection is not None:
        lines.append(f"Connection: {connection}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _connection_header(request: Request, keep: bool) -> str | None:
    if not keep:
        return "close"
    return "keep-alive" if request.version == "HTTP/1.0" else None


async def _send(writer: asyncio.StreamWriter, request: Request, reply: Reply) -> bool:
    """Send ``reply``; returns whether the connection may serve another request."""
    if reply.status is None:
        return False
    keep = request.keep_alive and reply.outcome != "closed_mid_body"
    interim = b"".join(encode_head(code, (), None) for code in reply.interim)
    tokens = [t for t in (_connection_header(request, keep), *reply.connection) if t]
    head = encode_head(reply.status, reply.headers, ", ".join(tokens) or None)
    writer.write(interim + head + reply.sent_body)
    await writer.drain()
    return keep


def _peer(writer: asyncio.StreamWriter) -> tuple[str, int]:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return "", 0


async def _reject(writer: asyncio.StreamWriter, message: str) -> None:
    body = json.dumps({"error": message}).encode() + b"\n"
    headers = (("Content-Type", "application/json"), ("Content-Length", str(len(body))))
    writer.write(encode_head(400, headers, "close") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: RequestHandler,
    idle_timeout: float,
) -> None:
    """Serve requests on one connection until either side closes it."""
    client = _peer(writer)
    try:
        while True:
            async with asyncio.timeout(idle_timeout):
                request = await read_request(reader, writer, client)
            if not await _send(writer, request, await handler(request)):
                break
    except HttpError as exc:
        await _reject(writer, str(exc))
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        pass  # the client went away or stayed idle too long
    except asyncio.CancelledError:
        writer.transport.abort()  # "down" or shutdown: drop the connection at once
        raise
    finally:
        writer.close()
