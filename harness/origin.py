"""The harness's sample origin app: a programmable HTTP/1.1 server (stdlib only, asyncio).

It listens on two ports. The **data port** is what the cache under test proxies to; it answers
any path and any method. The **control port** is never shown to the cache: tests and checks use
it to program responses and to read what the origin actually received.

Data port
---------
Every response carries a unique response id (``X-Response-Id``, also in the body) and a
``Date``. Unless a rule says otherwise the answer is ``200`` with a JSON echo of the request::

    {"response_id": "1f0c9a2b-000007", "method": "GET", "target": "/a?x=1", "path": "/a",
     "query": "x=1", "query_params": [["x", "1"]], "http_version": "HTTP/1.1",
     "headers": [["Host", "shop"], ["Accept", "*/*"]], "body_length": 0,
     "client": {"host": "127.0.0.1", "port": 50312}, "rule": null}

``target`` is the raw request target; ``path`` and ``query`` are split from it without
percent-decoding; ``headers`` keeps the order, case and duplicates as received; ``rule`` is the
key of the matching rule (its ``path``, or ``pattern:<glob>``). Connections are kept alive per
HTTP/1.1 (HTTP/1.0 only with ``Connection: keep-alive``); request bodies may be
``Content-Length`` or chunked, and ``Expect: 100-continue`` is honoured.

Rules
-----
A rule is matched on the request path (the query is ignored). An exact ``path`` rule beats any
``pattern`` rule; among patterns (``fnmatch.fnmatchcase``: ``*`` also matches ``/``) the one
registered **last** wins. Registering a rule with the same ``path`` (or the same ``pattern``)
replaces the old one; a replaced pattern counts as newly registered. Fields (all optional but
exactly one of ``path``/``pattern``; unknown fields are an error)::

    path, pattern         exact path ("/a") or glob ("/api/*")
    status                200..599; default 200 (500 with failure "error", which needs 5xx)
    cache_control         Cache-Control value
    expires               Expires value sent verbatim; or expires_in: seconds from response time
    set_cookie            list of Set-Cookie values (one header each)
    vary                  Vary value
    etag                  ETag; quoted automatically unless it already is ("abc" or W/"abc")
    last_modified         HTTP-date string, or a number (epoch seconds)
    body                  "echo" (default) or "filler"
    body_size             echo: padded with spaces to at least this many bytes;
                          filler: exactly this many bytes, "<response id>\\n" then "x" * n
    delay                 seconds to wait before sending the headers (or before failing)
    failure               null | "error" (a 5xx, see status) | "refuse" (the connection is closed
                          without any response) | "close_mid_body" (headers with the full
                          Content-Length, half the body, then close)
    headers               extra headers: {"Name": "value"} or [["Name", "value"], ...]; a name
                          given here replaces the app's own header(s) of that name
    surrogate_keys        list of keys, sent space-separated in one header
    surrogate_key_header  that header's name; default from --surrogate-key-header (Surrogate-Key)
    interim               list of 1xx status codes (not 101) sent, each as a bare interim
                          response, before the final one
    connection            list of header names added to the response's Connection header (the
                          rule's own ``headers`` can then carry those hop-by-hop fields)
    sequence              list of answers, each an object of the fields above (no path, pattern
                          or sequence) over the rule's own: the n-th request the rule takes since
                          it was registered gets the n-th answer, the last one repeats

Conditional requests: for GET/HEAD answered with a 2xx, ``If-None-Match`` (weak comparison,
``*`` matches) is checked against ``etag``; only when it is absent, ``If-Modified-Since`` is
checked against ``last_modified``. A match gives ``304`` without a body, with Date, the response
id, the cache headers (Cache-Control, Expires, Vary, ETag, Last-Modified, surrogate keys) and
the rule's extra headers, but no Set-Cookie.

Control port (JSON over HTTP)
-----------------------------
::

    GET    /health                  {"status": "ok", "data_up": true, "host": ..., "data_port": N,
                                     "control_port": M, "pid": P, "rules": n, "total": n}
    GET    /rules                   {"rules": [rule, ...]}  exact rules by path, then patterns
                                    in registration order (the last one wins)
    POST   /rules                   body: a rule or a list of rules -> {"rules": [...]} (all rules)
    DELETE /rules[?path=|?pattern=] remove all rules, or one -> {"removed": n}
    GET    /counts                  {"total": n, "paths": {"/a": 2},
                                     "by_method": {"/a": {"GET": 1, "HEAD": 1}},
                                     "body_bytes": {"/a": 1234}}
    GET    /counts?path=/a          {"path": "/a", "count": 2, "by_method": {"GET": 1, "HEAD": 1},
                                     "body_bytes": 1234}

``body_bytes`` counts the response body bytes the data port sent (none for HEAD and 304, half
for ``close_mid_body``): what a revalidation answered with 304 saves.

Markers: a request whose query holds marker parameters (``cw``, ``cwtag``, ``cw_probe``) is also
known by its *unit*, ``/a?cw=t1`` (the path and its markers, in their order): it is counted under
its path and under its unit, an exact rule registered for ``/a?cw=t1`` answers it before a rule
for ``/a``, and ``/requests?path=/a?cw=t1`` lists it. Checks that probe one path at once each
use their own marker, so each owns its count and its answer.
    DELETE /counts                  zero the counters -> {"reset": ["counts"]}
    GET    /requests                ?path= &method= &since=SEQ &limit=N (the last N that match)
                                    -> {"requests": [entry, ...]} oldest first
    DELETE /requests                clear the request log -> {"reset": ["requests"]}
    POST   /reset                   rules, counts and log cleared, data port up again ->
                                    {"reset": ["rules", "counts", "requests"], "data_up": true}
    POST   /down                    stop listening on the data port and drop its open connections
                                    (clients get "connection refused") -> {"data_up": false}
    POST   /up                      listen again on the same port -> {"data_up": true}

A request-log entry: ``{"seq", "time", "response_id", "method", "target", "path", "query",
"http_version", "headers", "body_length", "client", "rule", "status", "outcome"}`` where
``status`` is null for a refused request and ``outcome`` is one of ``ok``, ``not_modified``,
``error``, ``refused``, ``closed_mid_body``. Every request on the data port is counted and
logged when it arrives (before any delay), so a client that got its answer can read both at
once. Errors are ``{"error": "message"}`` with 400, 404 or 405.

Command line
------------
``python -m cachewright.harness.origin [--host H] [--data-port N] [--control-port M] [--log-json]
[--log-size N] [--surrogate-key-header NAME]``. Port 0 picks a free port. When both listeners
are up it prints one JSON line to stdout: ``{"event": "ready", "host": ..., "data_port": N,
"control_port": M, "pid": P}``. SIGTERM and SIGINT stop it cleanly (exit status 0). With
``--log-json`` each data request is logged to stderr as one JSON line.

In-process use: ``with OriginServer(OriginConfig()) as origin: origin.data_url ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import email.utils
import fnmatch
import http
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Final, Literal, TypeAlias
from urllib.parse import parse_qs, parse_qsl, urlsplit

SERVER_NAME: Final = "cachewright-origin"
DEFAULT_SURROGATE_KEY_HEADER: Final = "Surrogate-Key"
MAX_LINE: Final = 64 * 1024
MAX_HEADERS: Final = 256
MAX_REQUEST_BODY: Final = 64 * 1024 * 1024
MAX_RESPONSE_BODY: Final = 256 * 1024 * 1024
MAX_DELAY: Final = 3600.0
LISTEN_BACKLOG: Final = 1024

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")
_ETAG_RE: Final = re.compile(r'(?:W/)?"[^"]*"')
_FORBIDDEN_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Headers that frame the message or identify the response: a rule must not override them.
_RESERVED_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "x-response-id"}
)

Outcome: TypeAlias = Literal["ok", "not_modified", "error", "refused", "closed_mid_body"]
BodyMode: TypeAlias = Literal["echo", "filler"]
FailureMode: TypeAlias = Literal["error", "refuse", "close_mid_body"]
Headers: TypeAlias = tuple[tuple[str, str], ...]
JsonObject: TypeAlias = dict[str, object]

_BODY_MODES: Final[Mapping[str, BodyMode]] = {"echo": "echo", "filler": "filler"}
_FAILURE_MODES: Final[Mapping[str, FailureMode]] = {
    "error": "error",
    "refuse": "refuse",
    "close_mid_body": "close_mid_body",
}


# --------------------------------------------------------------------------- HTTP/1.1 wire


class HttpError(Exception):
    """A request that cannot be parsed: answered with 400 and the connection closed."""


#: query parameters that mark a probe (harness/selection/probes.py puts one in when a rule leaves no room
#: for a marker in the path); engines keep them in the cache key and forward them
MARKERS = ("cw", "cwtag", "cw_probe")


def unit_of(path: str, query: str) -> str:
    """``path``, then ``?`` and the marker parameters of ``query`` in their order, if any."""
    marks = [p for p in query.split("&") if p.split("=", 1)[0] in MARKERS] if query else []
    return f"{path}?{'&'.join(marks)}" if marks else path


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
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def unit(self) -> str:
        """What counters, rules and the log know this request by: its path, plus ``?`` and its
        marker parameters (``MARKERS``) when it has any, so that two checks probing one path
        with different markers never share a count or a programmed answer."""
        return unit_of(self.path, self.query)

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
    if len(parts) != 3 or not _TOKEN_RE.fullmatch(parts[0]):
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
        if not colon or not _TOKEN_RE.fullmatch(name):
            raise HttpError("malformed header field")
        headers.append((name, value.strip(" \t")))
    return tuple(headers)


def _values(headers: Headers, name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


async def _read_body(reader: asyncio.StreamReader, headers: Headers) -> bytes:
    codings = [
        coding.strip().lower()
        for value in _values(headers, "transfer-encoding")
        for coding in value.split(",")
    ]
    lengths = _values(headers, "content-length")
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
    expect = [v.lower() for v in _values(headers, "expect")]
    if version == "HTTP/1.1" and "100-continue" in expect:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _read_body(reader, headers)
    parts = urlsplit(target)
    path = parts.path or ("*" if target == "*" else "/")
    return Request(method, target, version, headers, body, client, path, parts.query)


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


RequestHandler: TypeAlias = Callable[[Request], Awaitable[Reply]]


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


# --------------------------------------------------------------------------- rules


class RuleError(ValueError):
    """A rule sent to the control port is invalid; ``field`` names the culprit if one does."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclass(frozen=True)
class Rule:
    """How the data port answers paths matching ``path`` (exact) or ``pattern`` (fnmatch)."""

    path: str | None = None
    pattern: str | None = None
    status: int = 200
    cache_control: str | None = None
    expires: str | None = None
    expires_in: float | None = None
    set_cookie: tuple[str, ...] = ()
    vary: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body: BodyMode = "echo"
    body_size: int | None = None
    delay: float = 0.0
    failure: FailureMode | None = None
    headers: Headers = ()
    surrogate_keys: tuple[str, ...] = ()
    surrogate_key_header: str | None = None
    interim: tuple[int, ...] = ()
    connection: tuple[str, ...] = ()
    sequence: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        """The rule's identity: its path, or ``pattern:<glob>``."""
        return self.path if self.path is not None else f"pattern:{self.pattern}"

    def to_json(self) -> JsonObject:
        """The rule as the control API shows it: status, plus every field not at its default."""
        default = _DEFAULT_RULE
        return {
            spec.name: _plain(getattr(self, spec.name))
            for spec in dataclasses.fields(self)
            if spec.name == "status" or getattr(self, spec.name) != getattr(default, spec.name)
        }


def _plain(value: object) -> object:
    """Tuples become lists and rules objects, recursively, for JSON."""
    if isinstance(value, Rule):
        return value.to_json()
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


_DEFAULT_RULE: Final = Rule()
RULE_FIELDS: Final = tuple(spec.name for spec in dataclasses.fields(Rule))


class _Fields:
    """Typed, validating access to one rule's JSON object."""

    def __init__(self, raw: object) -> None:
        if not isinstance(raw, dict):
            raise RuleError(None, "a rule must be a JSON object")
        unknown = sorted(set(raw) - set(RULE_FIELDS))
        if unknown:
            raise RuleError(None, f"unknown field(s) {', '.join(map(str, unknown))}")
        self.raw: dict[str, object] = raw

    def text(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise RuleError(name, "must be a non-empty string")
        return value

    def header_value(self, name: str) -> str | None:
        value = self.text(name)
        return None if value is None else check_header_value(name, value)

    def number(self, name: str, maximum: float) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RuleError(name, "must be a number")
        if not 0 <= value <= maximum:
            raise RuleError(name, f"must be between 0 and {maximum:g}")
        return float(value)

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RuleError(name, f"must be an integer from {low} to {high}")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise RuleError(name, "must be a list of non-empty strings")
        return tuple(check_header_value(name, v) for v in value)

    def choice(self, name: str, options: Mapping[str, str]) -> str | None:
        value = self.raw.get(name)
        if value is not None and value not in options:
            raise RuleError(name, f"must be one of {', '.join(sorted(options))}")
        return None if value is None else str(value)


def check_header_value(name: str, value: str) -> str:
    """Reject values that would break the header block (CR, LF, NUL, controls, non-Latin-1)."""
    if _FORBIDDEN_CONTROL.search(value):
        raise RuleError(name, "control characters (CR, LF, NUL, ...) are not allowed")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise RuleError(name, "only Latin-1 characters are allowed") from exc
    return value


def _check_header_name(where: str, name: object) -> str:
    if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
        raise RuleError(where, f"{name!r} is not a valid header name")
    return name


def _extra_headers(raw: object) -> Headers:
    pairs: list[object]
    if isinstance(raw, dict):
        pairs = [[k, v] for k, v in raw.items()]
    elif isinstance(raw, list):
        pairs = raw
    else:
        raise RuleError("headers", "must be an object or a list of [name, value] pairs")
    return tuple(_extra_header(pair) for pair in pairs)


def _extra_header(pair: object) -> tuple[str, str]:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or not isinstance(pair[1], str):
        raise RuleError("headers", "each entry must be [name, value] with a string value")
    name = _check_header_name("headers", pair[0])
    if name.lower() in _RESERVED_HEADERS:
        raise RuleError("headers", f"{name} is set by the origin and cannot be overridden")
    return name, check_header_value(f"headers.{name}", pair[1])


def _normalise_etag(value: str | None) -> str | None:
    if value is None:
        return None
    quoted = value if value.startswith(('"', 'W/"')) else f'"{value}"'
    if not _ETAG_RE.fullmatch(quoted):
        raise RuleError("etag", f'{value!r} is not an entity tag (abc, "abc" or W/"abc")')
    return quoted


def _last_modified(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return email.utils.formatdate(float(raw), usegmt=True)
    if isinstance(raw, str) and parse_http_date(raw) is not None:
        return check_header_value("last_modified", raw)
    raise RuleError("last_modified", "must be an HTTP-date or a number of epoch seconds")


def _surrogate_keys(fields: _Fields) -> tuple[str, ...]:
    keys = fields.strings("surrogate_keys")
    if any(any(ch.isspace() for ch in key) for key in keys):
        raise RuleError("surrogate_keys", "keys cannot contain whitespace")
    return keys


def parse_rule(raw: object) -> Rule:
    """Validate one rule's JSON object and build the ``Rule``; raises ``RuleError``."""
    fields = _Fields(raw)
    failure = fields.choice("failure", _FAILURE_MODES)
    rule = Rule(
        path=fields.text("path"),
        pattern=fields.text("pattern"),
        status=fields.integer("status", 200, 599) or (500 if failure == "error" else 200),
        cache_control=fields.header_value("cache_control"),
        expires=fields.header_value("expires"),
        expires_in=fields.number("expires_in", 10 * 365 * 86400.0),
        set_cookie=fields.strings("set_cookie"),
        vary=fields.header_value("vary"),
        etag=_normalise_etag(fields.header_value("etag")),
        last_modified=_last_modified(fields.raw.get("last_modified")),
        body=_BODY_MODES[fields.choice("body", _BODY_MODES) or "echo"],
        body_size=fields.integer("body_size", 0, MAX_RESPONSE_BODY),
        delay=fields.number("delay", MAX_DELAY) or 0.0,
        failure=None if failure is None else _FAILURE_MODES[failure],
        headers=_extra_headers(fields.raw.get("headers", [])),
        surrogate_keys=_surrogate_keys(fields),
        surrogate_key_header=_optional_header_name(fields.raw.get("surrogate_key_header")),
        interim=_interim(fields.raw.get("interim", [])),
        connection=tuple(_check_header_name("connection", n) for n in fields.strings("connection")),
    )
    _check_consistency(rule)
    return dataclasses.replace(rule, sequence=_sequence(fields.raw))


def _interim(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 199 and c != 101 for c in raw
    ):
        raise RuleError("interim", "must be a list of 1xx status codes (100..199, not 101)")
    return tuple(raw)


def _sequence(raw: dict[str, object]) -> tuple[Rule, ...]:
    """Each answer of ``sequence`` is the rule's own fields with the answer's over them."""
    items = raw.get("sequence", [])
    if not isinstance(items, list):
        raise RuleError("sequence", "must be a list of answers (objects of rule fields)")
    base = {k: v for k, v in raw.items() if k != "sequence"}
    answers = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or {"path", "pattern", "sequence"} & set(item):
            raise RuleError(f"sequence[{index}]", "must be an object without path, pattern or sequence")
        try:
            answers.append(parse_rule({**base, **item}))
        except RuleError as exc:
            raise RuleError(f"sequence[{index}]", str(exc)) from exc
    return tuple(answers)


def _optional_header_name(raw: object) -> str | None:
    return None if raw is None else _check_header_name("surrogate_key_header", raw)


def _check_consistency(rule: Rule) -> None:
    if (rule.path is None) == (rule.pattern is None):
        raise RuleError(None, "exactly one of path and pattern is required")
    if rule.path is not None and not rule.path.startswith("/") and rule.path != "*":
        raise RuleError("path", "must start with /")
    if rule.failure == "error" and rule.status < 500:
        raise RuleError("status", 'failure "error" needs a 5xx status')
    if rule.expires is not None and rule.expires_in is not None:
        raise RuleError(None, "expires and expires_in are mutually exclusive")
    if rule.body == "filler" and rule.body_size is None:
        raise RuleError("body_size", 'required with body "filler"')


def parse_rules(raw: object) -> list[Rule]:
    """A rule or a list of rules; error messages are prefixed with ``rules[i].``."""
    items = raw if isinstance(raw, list) else [raw]
    rules = []
    for index, item in enumerate(items):
        try:
            rules.append(parse_rule(item))
        except RuleError as exc:
            where = f"rules[{index}]" + ("." if exc.field else ": ")
            raise RuleError(None, where + str(exc)) from exc
    return rules


# --------------------------------------------------------------------------- responses


def parse_http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP-date, or None when it does not parse."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" and obsolete zones: RFC 9110 dates are always GMT
        return parsed.replace(tzinfo=UTC).timestamp()
    return parsed.timestamp()


def _opaque_tag(tag: str) -> str:
    return tag.removeprefix("W/")


def etag_matches(etag: str, if_none_match: Sequence[str]) -> bool:
    """Weak comparison of ``etag`` with If-None-Match field values (RFC 9110 §13.1.2)."""
    if any(value.strip() == "*" for value in if_none_match):
        return True
    tags = _ETAG_RE.findall(",".join(if_none_match))
    return any(_opaque_tag(tag) == _opaque_tag(etag) for tag in tags)


def is_not_modified(rule: Rule, request: Request) -> bool:
    """Whether the request's preconditions turn this response into a 304."""
    if request.method not in ("GET", "HEAD") or rule.failure or not 200 <= rule.status < 300:
        return False
    if_none_match = request.header_values("If-None-Match")
    if if_none_match:
        return rule.etag is not None and etag_matches(rule.etag, if_none_match)
    since = request.header_values("If-Modified-Since")
    if not since or rule.last_modified is None:
        return False
    since_ts, modified_ts = parse_http_date(since[0]), parse_http_date(rule.last_modified)
    return since_ts is not None and modified_ts is not None and modified_ts <= since_ts


def decide(rule: Rule, request: Request) -> tuple[Outcome, int | None]:
    """The outcome and status of a request, fixed when it arrives."""
    if rule.failure == "refuse":
        return "refused", None
    if rule.failure == "close_mid_body":
        return "closed_mid_body", rule.status
    if rule.failure == "error":
        return "error", rule.status
    if is_not_modified(rule, request):
        return "not_modified", 304
    return "ok", rule.status


def echo_document(request: Request, response_id: str, rule: Rule | None) -> JsonObject:
    """The JSON echo of what the origin received."""
    return {
        "response_id": response_id,
        "method": request.method,
        "target": request.target,
        "path": request.path,
        "query": request.query,
        "query_params": [list(p) for p in parse_qsl(request.query, keep_blank_values=True)],
        "http_version": request.version,
        "headers": [list(h) for h in request.headers],
        "body_length": len(request.body),
        "client": {"host": request.client[0], "port": request.client[1]},
        "rule": None if rule is None else rule.key,
    }


def response_body(rule: Rule, request: Request, response_id: str, matched: bool) -> bytes:
    """The representation: the echo (optionally padded) or filler bytes."""
    size = rule.body_size
    if rule.body == "filler" and size is not None:
        prefix = f"{response_id}\n".encode()[:size]
        return prefix + b"x" * (size - len(prefix))
    document = echo_document(request, response_id, rule if matched else None)
    body = json.dumps(document).encode() + b"\n"
    return body + b" " * max(0, (size or 0) - len(body))


def cache_headers(rule: Rule, now: float, surrogate_key_header: str) -> list[tuple[str, str]]:
    """Cache-Control, Expires, Vary, validators and surrogate keys, as the rule asks."""
    expires = rule.expires
    if rule.expires_in is not None:
        expires = email.utils.formatdate(now + rule.expires_in, usegmt=True)
    named = [
        ("Cache-Control", rule.cache_control),
        ("Expires", expires),
        ("Vary", rule.vary),
        ("ETag", rule.etag),
        ("Last-Modified", rule.last_modified),
    ]
    headers = [(name, value) for name, value in named if value is not None]
    if rule.surrogate_keys:
        name = rule.surrogate_key_header or surrogate_key_header
        headers.append((name, " ".join(rule.surrogate_keys)))
    return headers


def _with_extras(headers: list[tuple[str, str]], extras: Headers) -> Headers:
    replaced = {name.lower() for name, _ in extras}
    return tuple(h for h in headers if h[0].lower() not in replaced) + extras


def _entity(rule: Rule, request: Request, ctx: ReplyContext) -> tuple[bytes, list[tuple[str, str]]]:
    if ctx.status == 204:  # RFC 9110 §8.6: no Content-Length (and no content) on a 204
        return b"", []
    body = response_body(rule, request, ctx.response_id, ctx.matched)
    content_type = "application/json" if rule.body == "echo" else "application/octet-stream"
    return body, [("Content-Type", content_type), ("Content-Length", str(len(body)))]


@dataclass(frozen=True)
class ReplyContext:
    """Everything ``render_reply`` needs besides the rule and the request."""

    response_id: str
    outcome: Outcome
    status: int | None
    matched: bool
    surrogate_key_header: str
    now: float


def render_reply(rule: Rule, request: Request, ctx: ReplyContext) -> Reply:
    """Build the response for a decided outcome (at send time, so ``Date`` is accurate)."""
    if ctx.status is None:
        return Reply(None, (), b"", False, ctx.outcome)
    base = [
        ("Date", email.utils.formatdate(ctx.now, usegmt=True)),
        ("Server", SERVER_NAME),
        ("X-Response-Id", ctx.response_id),
    ]
    cache = cache_headers(rule, ctx.now, ctx.surrogate_key_header)
    if ctx.status == 304:
        return Reply(304, _with_extras(base + cache, rule.headers), b"", False, ctx.outcome,
                     rule.interim, rule.connection)
    body, entity = _entity(rule, request, ctx)
    cookies = [("Set-Cookie", cookie) for cookie in rule.set_cookie]
    headers = _with_extras(base + entity + cache + cookies, rule.headers)
    return Reply(ctx.status, headers, body, request.method != "HEAD", ctx.outcome, rule.interim,
                 rule.connection)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Recorded:
    """One request as the origin saw it, for the control port's request log."""

    seq: int
    time: float
    response_id: str
    request: Request
    rule: str | None
    status: int | None
    outcome: Outcome

    def to_json(self) -> JsonObject:
        """The log entry's JSON form."""
        req = self.request
        return {
            "seq": self.seq,
            "time": self.time,
            "response_id": self.response_id,
            "method": req.method,
            "target": req.target,
            "path": req.path,
            "query": req.query,
            "http_version": req.version,
            "headers": [list(h) for h in req.headers],
            "body_length": len(req.body),
            "client": {"host": req.client[0], "port": req.client[1]},
            "rule": self.rule,
            "status": self.status,
            "outcome": self.outcome,
        }


class OriginState:
    """Rules, counters and the request log; only ever touched from the event loop."""

    def __init__(self, log_size: int) -> None:
        self.exact: dict[str, Rule] = {}
        self.patterns: list[Rule] = []
        self.total = 0
        self.paths: Counter[str] = Counter()
        self.by_method: dict[str, Counter[str]] = {}
        self.body_bytes: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.log: deque[Recorded] = deque(maxlen=log_size)
        self._boot = uuid.uuid4().hex[:8]
        self._seq = itertools.count(1)

    def add_rule(self, rule: Rule) -> None:
        """Add or replace a rule; a replaced pattern moves to the end (it now wins ties). Its
        ``sequence`` starts again from the first answer."""
        self.served[rule.key] = 0
        if rule.path is not None:
            self.exact[rule.path] = rule
        else:
            self.patterns = [p for p in self.patterns if p.pattern != rule.pattern]
            self.patterns.append(rule)

    def remove_rules(self, path: str | None, pattern: str | None) -> int:
        """Remove the rule for ``path`` or ``pattern``, or all rules when both are None."""
        before = len(self.exact) + len(self.patterns)
        if path is None and pattern is None:
            self.exact.clear()
            self.patterns.clear()
        if path is not None:
            self.exact.pop(path, None)
        if pattern is not None:
            self.patterns = [p for p in self.patterns if p.pattern != pattern]
        return before - len(self.exact) - len(self.patterns)

    def rules(self) -> list[Rule]:
        """Exact rules sorted by path, then patterns in registration order."""
        return [self.exact[p] for p in sorted(self.exact)] + list(self.patterns)

    def match(self, path: str, unit: str | None = None) -> Rule | None:
        """The rule for a request: exact by its unit (a marked path), exact by ``path``, then
        the last-registered matching pattern."""
        for exact in (unit, path):
            if exact is not None and exact in self.exact:
                return self.exact[exact]
        for rule in reversed(self.patterns):
            if rule.pattern is not None and fnmatch.fnmatchcase(path, rule.pattern):
                return rule
        return None

    def answer(self, rule: Rule) -> Rule:
        """The answer for the next request ``rule`` takes: the rule itself, or the next answer
        of its ``sequence`` (the last one repeats)."""
        served = self.served[rule.key]
        self.served[rule.key] += 1
        return rule.sequence[min(served, len(rule.sequence) - 1)] if rule.sequence else rule

    def sent(self, request: Request, reply: Reply) -> None:
        """Count the body bytes of ``reply`` under the request's path and unit."""
        for key in dict.fromkeys((request.path, request.unit)):
            self.body_bytes[key] += len(reply.sent_body)

    def arrive(self, request: Request) -> tuple[int, str]:
        """Count a request; returns its sequence number and response id."""
        self.total += 1
        for key in dict.fromkeys((request.path, request.unit)):
            self.paths[key] += 1
            self.by_method.setdefault(key, Counter())[request.method] += 1
        seq = next(self._seq)
        return seq, f"{self._boot}-{seq:06d}"

    def reset_counts(self) -> None:
        """Zero every counter (sequence numbers and response ids keep increasing)."""
        self.total = 0
        self.paths.clear()
        self.by_method.clear()
        self.body_bytes.clear()

    def counts_json(self, path: str | None) -> JsonObject:
        """The counters, all of them or for one path."""
        if path is not None:
            methods = dict(self.by_method.get(path, {}))
            return {"path": path, "count": self.paths.get(path, 0), "by_method": methods,
                    "body_bytes": self.body_bytes.get(path, 0)}
        paths = dict(sorted(self.paths.items()))
        by_method = {p: dict(c) for p, c in sorted(self.by_method.items())}
        body_bytes = dict(sorted(self.body_bytes.items()))
        return {"total": self.total, "paths": paths, "by_method": by_method,
                "body_bytes": body_bytes}

    def requests_json(self, query: Mapping[str, str]) -> JsonObject:
        """The request log filtered by path, method and ``since`` (a seq), last ``limit``."""
        since = _int_param(query, "since", 0)
        entries = [
            r
            for r in self.log
            if r.seq > since
            and query.get("path", r.request.path) in (r.request.path, r.request.unit)
            and query.get("method", r.request.method) == r.request.method
        ]
        limit = _int_param(query, "limit", len(entries))
        return {"requests": [r.to_json() for r in entries[len(entries) - limit :]]}


# --------------------------------------------------------------------------- control API


class ControlError(Exception):
    """A control request that cannot be served; carries its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise ControlError(400, f"{name}: must be a non-negative integer")
    return int(value)


def _json_body(request: Request) -> object:
    try:
        return json.loads(request.body or b"null")
    except ValueError as exc:
        raise ControlError(400, f"body is not JSON: {exc}") from exc


def json_reply(status: int, payload: JsonObject) -> Reply:
    """A JSON response for the control port."""
    body = json.dumps(payload).encode() + b"\n"
    headers = (
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    )
    return Reply(status, headers, body, True, "ok" if status < 400 else "error")


ControlRoute: TypeAlias = Callable[[Request, Mapping[str, str]], Awaitable[JsonObject]]


# --------------------------------------------------------------------------- the app


@dataclass(frozen=True)
class OriginConfig:
    """Where the origin listens and how it logs."""

    host: str = "127.0.0.1"
    data_port: int = 0
    control_port: int = 0
    log_json: bool = False
    log_size: int = 1000
    surrogate_key_header: str = DEFAULT_SURROGATE_KEY_HEADER
    idle_timeout: float = 300.0


class Origin:
    """The running app: data and control listeners on the current event loop."""

    def __init__(self, config: OriginConfig) -> None:
        self.config = config
        self.state = OriginState(config.log_size)
        self.data_port = config.data_port
        self.control_port = config.control_port
        self._data_server: asyncio.Server | None = None
        self._control_server: asyncio.Server | None = None
        self._data_tasks: set[asyncio.Task[object]] = set()
        self._control_tasks: set[asyncio.Task[object]] = set()
        self._routes: dict[tuple[str, str], ControlRoute] = self._route_table()

    @property
    def data_up(self) -> bool:
        """Whether the data port is listening."""
        return self._data_server is not None

    async def start(self) -> None:
        """Bind both listeners; raises ``OSError`` when a port is taken."""
        self._control_server = await self._listen(
            self.control_port, self._control_tasks, self.handle_control
        )
        self.control_port = _bound_port(self._control_server)
        try:
            await self.up()
        except OSError:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        await self.down()
        if self._control_server is not None:
            self._control_server.close()
            self._control_server = None
        await _cancel_all(self._control_tasks)

    async def up(self) -> None:
        """Listen on the data port (the same port again after ``down``)."""
        if self._data_server is None:
            server = await self._listen(self.data_port, self._data_tasks, self.handle_data)
            self._data_server = server
            self.data_port = _bound_port(server)

    async def down(self) -> None:
        """Stop listening on the data port and drop its open connections."""
        if self._data_server is not None:
            self._data_server.close()
            self._data_server = None
        await _cancel_all(self._data_tasks)

    async def _listen(
        self, port: int, tasks: set[asyncio.Task[object]], handler: RequestHandler
    ) -> asyncio.Server:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await serve_connection(reader, writer, handler, self.config.idle_timeout)
            except asyncio.CancelledError:
                # Dropped by down()/close(). Ending normally matters: Python 3.11's
                # StreamReaderProtocol calls task.exception() on this task and would log.
                pass
            finally:
                tasks.discard(task)

        return await asyncio.start_server(
            on_connect,
            self.config.host,
            port,
            backlog=LISTEN_BACKLOG,
            limit=MAX_LINE,
            reuse_address=True,
        )

    async def handle_data(self, request: Request) -> Reply:
        """Count, log, wait and answer one data-port request."""
        started = time.monotonic()
        rule = self.state.match(request.path, request.unit)
        effective = _DEFAULT_RULE if rule is None else self.state.answer(rule)
        seq, response_id = self.state.arrive(request)
        outcome, status = decide(effective, request)
        key = None if rule is None else rule.key
        self.state.log.append(
            Recorded(seq, time.time(), response_id, request, key, status, outcome)
        )
        if effective.delay:
            await asyncio.sleep(effective.delay)
        matched = rule is not None
        header = self.config.surrogate_key_header
        ctx = ReplyContext(response_id, outcome, status, matched, header, time.time())
        reply = render_reply(effective, request, ctx)
        self.state.sent(request, reply)
        if self.config.log_json:
            _log_request(request, reply, response_id, time.monotonic() - started)
        return reply

    async def handle_control(self, request: Request) -> Reply:
        """Serve one control-port request."""
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        try:
            return json_reply(200, await self._route(request)(request, query))
        except ControlError as exc:
            return json_reply(exc.status, {"error": str(exc)})
        except RuleError as exc:
            return json_reply(400, {"error": str(exc)})
        except OSError as exc:
            return json_reply(500, {"error": f"cannot listen: {exc}"})

    def _route(self, request: Request) -> ControlRoute:
        route = self._routes.get((request.method, request.path))
        if route is not None:
            return route
        if any(path == request.path for _, path in self._routes):
            raise ControlError(405, f"{request.method} not allowed on {request.path}")
        raise ControlError(404, f"no control route {request.path}")

    def _route_table(self) -> dict[tuple[str, str], ControlRoute]:
        return {
            ("GET", "/health"): self._health,
            ("GET", "/rules"): self._get_rules,
            ("POST", "/rules"): self._post_rules,
            ("DELETE", "/rules"): self._delete_rules,
            ("GET", "/counts"): self._get_counts,
            ("DELETE", "/counts"): self._delete_counts,
            ("GET", "/requests"): self._get_requests,
            ("DELETE", "/requests"): self._delete_requests,
            ("POST", "/reset"): self._reset,
            ("POST", "/down"): self._down,
            ("POST", "/up"): self._up,
        }

    async def _health(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        return {
            "status": "ok",
            "data_up": self.data_up,
            "host": self.config.host,
            "data_port": self.data_port,
            "control_port": self.control_port,
            "pid": os.getpid(),
            "rules": len(self.state.rules()),
            "total": self.state.total,
        }

    async def _get_rules(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        return {"rules": [rule.to_json() for rule in self.state.rules()]}

    async def _post_rules(self, request: Request, query: Mapping[str, str]) -> JsonObject:
        for rule in parse_rules(_json_body(request)):
            self.state.add_rule(rule)
        return await self._get_rules(request, query)

    async def _delete_rules(self, _: Request, query: Mapping[str, str]) -> JsonObject:
        return {"removed": self.state.remove_rules(query.get("path"), query.get("pattern"))}

    async def _get_counts(self, _: Request, query: Mapping[str, str]) -> JsonObject:
        return self.state.counts_json(query.get("path"))

    async def _delete_counts(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        self.state.reset_counts()
        return {"reset": ["counts"]}

    async def _get_requests(self, _: Request, query: Mapping[str, str]) -> JsonObject:
        return self.state.requests_json(query)

    async def _delete_requests(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        self.state.log.clear()
        return {"reset": ["requests"]}

    async def _reset(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        self.state.remove_rules(None, None)
        self.state.reset_counts()
        self.state.log.clear()
        await self.up()
        return {"reset": ["rules", "counts", "requests"], "data_up": True}

    async def _down(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        await self.down()
        return {"data_up": False}

    async def _up(self, _: Request, __: Mapping[str, str]) -> JsonObject:
        await self.up()
        return {"data_up": True}


def _bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def _cancel_all(tasks: set[asyncio.Task[object]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _log_request(request: Request, reply: Reply, response_id: str, seconds: float) -> None:
    line = {
        "ts": round(time.time(), 6),
        "response_id": response_id,
        "method": request.method,
        "target": request.target,
        "status": reply.status,
        "outcome": reply.outcome,
        "client": f"{request.client[0]}:{request.client[1]}",
        "duration_ms": round(seconds * 1000, 3),
    }
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- in-process runner


class OriginServer:
    """Runs an ``Origin`` on a private event loop in a background thread.

    ``with OriginServer() as origin:`` starts it (raising if a port cannot be bound) and
    always stops it. Meant for tests and tools that want the origin in-process.
    """

    def __init__(self, config: OriginConfig | None = None, start_timeout: float = 10.0) -> None:
        self.config = config or OriginConfig()
        self.start_timeout = start_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._origin: Origin | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OriginServer:
        """Start the listeners; returns once both are bound."""
        self._thread = threading.Thread(target=self._run, name="cachewright-origin", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise TimeoutError(f"origin did not start within {self.start_timeout}s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the listeners and the thread; safe to call more than once."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just finished
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self.start_timeout)
            self._thread = None

    def __enter__(self) -> OriginServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def origin(self) -> Origin:
        """The running app (its state lives on the server's thread: read, don't mutate)."""
        if self._origin is None:
            raise RuntimeError("origin is not running")
        return self._origin

    @property
    def data_port(self) -> int:
        """The bound data port."""
        return self.origin.data_port

    @property
    def control_port(self) -> int:
        """The bound control port."""
        return self.origin.control_port

    @property
    def data_url(self) -> str:
        """``http://host:port`` of the data port."""
        return f"http://{_url_host(self.config.host)}:{self.data_port}"

    @property
    def control_url(self) -> str:
        """``http://host:port`` of the control port."""
        return f"http://{_url_host(self.config.host)}:{self.control_port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to start(); the thread itself must not die loudly
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        origin = Origin(self.config)
        await origin.start()
        self._origin = origin
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await origin.close()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cachewright.harness.origin", description="cachewright's programmable sample origin"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--data-port", type=int, default=0, help="data port (0: pick a free one)")
    parser.add_argument("--control-port", type=int, default=0, help="control port (0: free)")
    parser.add_argument("--log-json", action="store_true", help="log each request to stderr")
    parser.add_argument("--log-size", type=int, default=1000, help="requests kept in the log")
    parser.add_argument(
        "--surrogate-key-header",
        default=DEFAULT_SURROGATE_KEY_HEADER,
        help="header carrying a rule's surrogate keys (default Surrogate-Key)",
    )
    return parser.parse_args(argv)


async def serve(config: OriginConfig, ready: Callable[[Origin], None]) -> None:
    """Run until SIGTERM or SIGINT; ``ready`` is called once both ports listen."""
    origin = Origin(config)
    await origin.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        ready(origin)
        await stop.wait()
    finally:
        await origin.close()


def _announce(origin: Origin) -> None:
    line = {
        "event": "ready",
        "host": origin.config.host,
        "data_port": origin.data_port,
        "control_port": origin.control_port,
        "pid": os.getpid(),
    }
    print(json.dumps(line), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cachewright.harness.origin``; returns the exit status."""
    args = _parse_args(argv)
    config = OriginConfig(
        host=args.host,
        data_port=args.data_port,
        control_port=args.control_port,
        log_json=args.log_json,
        log_size=args.log_size,
        surrogate_key_header=args.surrogate_key_header,
    )
    try:
        asyncio.run(serve(config, _announce))
    except OSError as exc:
        print(f"origin: cannot listen on {config.host}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
