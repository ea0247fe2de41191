"""The builtin load client of ``compare``: an asyncio HTTP/1.1 keep-alive client.

Slower than wrk, but bounded by time and by a request count, verifying HTTPS against a given CA,
and reporting every response to a callback (for a hit-ratio timeline).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .loadspec import CDF_PERCENTILES, NO_HEADERS, LoadResult, OnResponse, Spec, load_result, load_spec, nearest_rank

#: how long a builtin connection waits after a refused connect before it tries again
REFUSED_BACKOFF_S = 0.01

class _ProtocolError(Exception):
    """A response this client cannot read; it counts as a read error."""


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    keep_alive: bool


@dataclass
class _Tally:
    """What every connection of one builtin run records (one event loop: no locks needed)."""

    issued: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Plan:
    """A builtin run: its settings, the request bytes per path, its clock and its callback."""

    spec: Spec
    requests: tuple[bytes, ...]
    tls: ssl.SSLContext | None
    started: float  # time.perf_counter() at the start
    deadline: float
    on_response: OnResponse | None

    def claim(self, tally: _Tally) -> int | None:
        """The index of the next request to send, or None when time or the request budget is up."""
        if time.perf_counter() >= self.deadline or tally.issued == self.spec.max_requests:
            return None
        tally.issued += 1
        return tally.issued - 1


class _Connection:
    """One client connection, opened on first use and again after every close; ``close`` leaves
    nothing open, whatever state the connection was in."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.answered = 0  # responses read on the current stream

    async def exchange(self, request: bytes) -> tuple[_Response, float]:
        """Send ``request`` and read its response: (the response, its latency in seconds).

        A reused stream that the server closed while idle (EOF or reset before any byte of an
        answer) is replaced once and the request resent, as browsers do for idempotent requests."""
        try:
            return await self._send(request)
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            idle_close = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if not (self.answered and idle_close):
                raise
            await self.close()
            return await self._send(request)

    async def _send(self, request: bytes) -> tuple[_Response, float]:
        reader, writer = self.stream or await self._open()
        sent = time.perf_counter()
        writer.write(request)
        response = await _read_response(reader)
        self.answered += 1
        return response, time.perf_counter() - sent

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        spec, tls = self.plan.spec, self.plan.tls
        self.stream = await asyncio.open_connection(spec.address.strip("[]"), spec.port, ssl=tls,
                                                    server_hostname=spec.host_name if tls else None)
        self.answered = 0
        return self.stream

    async def close(self) -> None:
        if self.stream is None:
            return
        writer, self.stream = self.stream[1], None
        writer.close()
        try:  # bounded: a TLS peer that never answers close_notify would hold us for 30 s
            async with asyncio.timeout(self.plan.spec.timeout_s):
                await writer.wait_closed()
        except (OSError, TimeoutError):  # reset by the peer, or TLS that ended badly
            writer.transport.abort()


def run_builtin(urls: Sequence[str], *, host: str | None, concurrency: int, duration_s: float, threads: int = 2,
                max_requests: int | None = None, timeout_s: float = 2.0, headers: Mapping[str, str] = NO_HEADERS,
                ca_file: Path | None = None, on_response: OnResponse | None = None) -> LoadResult:
    """Load ``urls`` (loopback, one origin, paths cycled in order) over ``concurrency`` keep-alive
    connections until ``duration_s`` has passed or ``max_requests`` have been sent (whichever
    comes first; errors count against the budget, so requests + errors == max_requests when the
    time suffices). HTTPS is verified against ``ca_file`` (else the system CAs) for the name in
    ``host``. ``threads`` is accepted for symmetry with wrk and ignored: one event loop does it
    all. Must not be called from a running event loop."""
    spec = load_spec(urls, host, headers, concurrency, duration_s, threads, max_requests, timeout_s)
    tls = ssl.create_default_context(cafile=ca_file) if spec.scheme == "https" else None
    try:
        return asyncio.run(_builtin(spec, tls, on_response))
    except ExceptionGroup as group:  # the task group's wrapping of a failed on_response callback
        raise group.exceptions[0] from None


async def _builtin(spec: Spec, tls: ssl.SSLContext | None, on_response: OnResponse | None) -> LoadResult:
    head = "".join(f"{name}: {value}\r\n" for name, value in spec.headers)
    requests = tuple(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") for path in spec.paths)
    started = time.perf_counter()
    plan = _Plan(spec, requests, tls, started, started + spec.duration_s, on_response)
    tally = _Tally()
    async with asyncio.TaskGroup() as group:
        for _ in range(spec.concurrency):
            group.create_task(_drive(plan, tally))
    ordered = sorted(tally.latencies_ms)
    mean = sum(ordered) / len(ordered) if ordered else 0.0
    cdf = [(p, nearest_rank(ordered, p)) for p in CDF_PERCENTILES]
    status_errors = sum(n for status, n in tally.statuses.items() if status >= 400)
    return load_result("builtin", len(ordered), tally.errors, tally.statuses, status_errors,
                   time.perf_counter() - started, mean, ordered[-1] if ordered else 0.0, cdf)


async def _drive(plan: _Plan, tally: _Tally) -> None:
    """One connection's loop: claim a request, send it, record the answer, until the run ends."""
    connection = _Connection(plan)
    try:
        while (index := plan.claim(tally)) is not None:
            await _request(plan, tally, connection, index)
    finally:
        await connection.close()


async def _request(plan: _Plan, tally: _Tally, connection: _Connection, index: int) -> None:
    """Send request ``index`` and record its answer, or an error (and close the connection)."""
    n = index % len(plan.requests)
    try:
        async with asyncio.timeout(plan.spec.timeout_s):
            response, latency_s = await connection.exchange(plan.requests[n])
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _ProtocolError) as exc:
        tally.errors += 1
        await connection.close()
        if isinstance(exc, ConnectionRefusedError):  # don't spin, stealing the CPU from the engine
            await asyncio.sleep(REFUSED_BACKOFF_S)
        return
    tally.latencies_ms.append(latency_s * 1000)
    tally.statuses[response.status] += 1
    if plan.on_response is not None:
        plan.on_response(time.perf_counter() - plan.started, plan.spec.paths[n], response.status, response.headers)
    if not response.keep_alive:
        await connection.close()


async def _read_response(reader: asyncio.StreamReader) -> _Response:
    """Read one final response (skipping 1xx) and its body, which is discarded."""
    status, version, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
    while 100 <= status < 200:
        status, version, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
    connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    if status in (204, 304):
        return _Response(status, headers, keep_alive)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunked(reader)
    elif "content-length" in headers:
        await reader.readexactly(_int(headers["content-length"], 10))
    else:  # delimited by the end of the connection
        await reader.read()
        keep_alive = False
    return _Response(status, headers, keep_alive)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """(status, HTTP version, headers with lower-case names; repeated ones joined by ", ")."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _ProtocolError(f"not an HTTP/1.x status line: {status_line!r}")
    headers: dict[str, str] = {}
    for line in filter(None, lines):
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return _int(rest[:3], 10), version, headers


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    """Consume a chunked body: sized chunks (extensions ignored), the last chunk, the trailers."""
    while size := _int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].decode("latin-1"), 16):
        await reader.readexactly(size + 2)
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass


def _int(text: str, base: int) -> int:
    try:
        value = int(text.strip(), base)
    except ValueError:
        raise _ProtocolError(f"not a number: {text!r}") from None
    if value < 0:
        raise _ProtocolError(f"negative number: {text!r}")
    return value
