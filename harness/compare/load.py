"""Load generation for ``cachewright compare``: cached-hit throughput and latency at a fixed
concurrency over a Zipf-distributed request mix.

Two clients give one ``LoadResult``:

* ``run_wrk`` drives ``wrk`` (Debian 12 ships 4.1.0) with a generated Lua script that cycles
  through the request paths and prints its summary as one JSON line. It is fast, so it measures
  the engine rather than the client; it runs for whole seconds and cannot stop after a number
  of requests.
* ``run_builtin`` is an asyncio HTTP/1.1 keep-alive client: slower, but bounded by time and by
  a request count, verifying HTTPS against a given CA, and reporting every response to a
  callback (for a hit-ratio timeline).

``run_load`` picks one. Both refuse targets other than loopback IP addresses: this generator is
only ever pointed at engines the harness started on this machine.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import ipaddress
import itertools
import json
import math
import random
import re
import shlex
import shutil
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from ..runtime.api import HarnessError

#: the latency percentiles every result carries: enough points to draw a CDF
CDF_PERCENTILES = (1.0, 5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0,
                   99.0, 99.9)
#: how long past its own duration and timeout a wrk run may take before it is killed
WRK_GRACE_S = 10.0
#: how long a builtin connection waits after a refused connect before it tries again
REFUSED_BACKOFF_S = 0.01
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_RESULT_MARKER = "cachewright-load-result "
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSAFE = re.compile(r"[^\x21-\x7e]")  # a request target is visible ASCII (percent-encode the rest)
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e]")  # header values: no CR, LF or other control bytes

#: called by the builtin client for every response: (seconds since start, path, status, headers
#: with lower-case names). It runs inside the event loop, so it must be cheap.
OnResponse = Callable[[float, str, int, Mapping[str, str]], None]


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured; the same fields whichever client ran it.

    ``statuses`` maps each status code to its count; it is empty when the client did not count
    them (wrk without ``count_statuses``, because a Lua ``response`` hook slows wrk down a lot).
    ``status_errors`` — responses with a status of 400 or more — is always counted.
    ``errors`` are requests without a response: connect, read, write errors and timeouts.
    """

    tool: str
    requests: int
    errors: int
    statuses: dict[int, int]
    duration_s: float
    rps: float
    latency_ms: dict[str, float]
    latency_cdf: list[tuple[float, float]]
    status_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict (status codes as string keys, in order)."""
        return {
            "tool": self.tool,
            "requests": self.requests,
            "errors": self.errors,
            "status_errors": self.status_errors,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "duration_s": self.duration_s,
            "rps": self.rps,
            "latency_ms": dict(self.latency_ms),
            "latency_cdf": [[p, ms] for p, ms in self.latency_cdf],
        }


# --------------------------------------------------------------------------- request mix


def zipf_paths(n_requests: int, n_keys: int, s: float = 1.0, seed: int = 1, prefix: str = "/") -> list[str]:
    """A deterministic request sequence over ``n_keys`` paths (``{prefix}1`` is the most popular)
    where the key of rank k is drawn with probability proportional to 1 / k**s."""
    if n_requests < 0 or n_keys < 1 or s < 0:
        raise ValueError(f"zipf_paths needs n_requests >= 0, n_keys >= 1, s >= 0 "
                         f"(got {n_requests}, {n_keys}, {s})")
    keys = [f"{prefix}{rank}" for rank in range(1, n_keys + 1)]
    cumulative = list(itertools.accumulate(1.0 / rank**s for rank in range(1, n_keys + 1)))
    rng = random.Random(seed)
    total = cumulative[-1]
    # hi clamps the rare draw that rounds up to the total itself
    return [keys[bisect.bisect(cumulative, rng.random() * total, 0, n_keys - 1)] for _ in range(n_requests)]


def ideal_hit_ratio(paths: Sequence[str]) -> float:
    """The hit ratio of an unbounded cache that never expires: every repeat of a path is a hit."""
    return (len(paths) - len(set(paths))) / len(paths) if paths else 0.0


# --------------------------------------------------------------------------- validated run settings


@dataclass(frozen=True)
class _Spec:
    """One run's settings, validated once: one loopback origin, its paths, the request headers."""

    scheme: str
    address: str  # IP literal, as in the URL (IPv6 in brackets)
    port: int
    paths: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]  # Host first
    concurrency: int
    duration_s: float
    threads: int
    max_requests: int | None
    timeout_s: float

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.address}:{self.port}"

    @property
    def host_name(self) -> str:
        """The name TLS verifies: the Host header without its port."""
        host = self.headers[0][1]
        return host[1:host.index("]")] if host.startswith("[") else host.partition(":")[0]


def _spec(urls: Sequence[str], host: str | None, headers: Mapping[str, str], concurrency: int,
          duration_s: float, threads: int, max_requests: int | None, timeout_s: float) -> _Spec:
    if not urls:
        raise ValueError("no URLs to load")
    origins = {_origin(url) for url in urls}
    if len(origins) > 1:
        raise ValueError(f"all load URLs must share one scheme, host and port; got {sorted(origins)}")
    _check_numbers(concurrency, duration_s, threads, max_requests, timeout_s)
    scheme, address, port = origins.pop()
    return _Spec(scheme, address, port, tuple(_path(url) for url in urls),
                 _headers(host or f"{address}:{port}", headers), concurrency, duration_s, threads,
                 max_requests, timeout_s)


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, address, port) of a URL whose host is a loopback IP literal; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.username is not None:
        raise ValueError(f"load URL must be http:// or https:// without credentials: {url!r}")
    try:
        loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"load target must be a loopback IP address such as 127.0.0.1, "
                         f"not {parts.hostname!r} ({url!r})")
    address = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else str(parts.hostname)
    return parts.scheme, address, parts.port or (443 if parts.scheme == "https" else 80)


def _path(url: str) -> str:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSAFE.search(target):
        raise ValueError(f"load URL path must be percent-encoded ASCII without spaces: {url!r}")
    return target


def _headers(host: str, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    for name, value in [("Host", host), *headers.items()]:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"invalid request header {name!r}: {value!r}")
    if any(name.lower() == "host" for name in headers):
        raise ValueError("set the Host header with host=, not in headers")
    return (("Host", host), *headers.items())


def _check_numbers(concurrency: int, duration_s: float, threads: int, max_requests: int | None,
                   timeout_s: float) -> None:
    if concurrency < 1 or threads < 1 or duration_s <= 0 or timeout_s <= 0:
        raise ValueError("concurrency and threads must be at least 1, duration_s and timeout_s positive")
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1, got {max_requests}")


# --------------------------------------------------------------------------- shared result building


def _result(tool: str, requests: int, errors: int, statuses: Mapping[int, int], status_errors: int,
            duration_s: float, mean_ms: float, max_ms: float, cdf: list[tuple[float, float]]) -> LoadResult:
    by_p = dict(cdf)
    latency = {"mean": mean_ms, "p50": by_p[50.0], "p90": by_p[90.0], "p99": by_p[99.0], "max": max_ms}
    rps = requests / duration_s if duration_s > 0 else 0.0
    return LoadResult(tool, requests, errors, dict(statuses), duration_s, rps, latency, cdf, status_errors)


def _nearest_rank(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted samples by the nearest-rank method (0.0 without samples)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# --------------------------------------------------------------------------- wrk

_WRK_SCRIPT = """\
-- Cycle through the paths in PATHS_FILE (one per line), each thread starting at its own
-- offset; optionally count statuses; print the summary as one JSON line in done().
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   requests = {}
   for path in io.lines(PATHS_FILE) do
      requests[#requests + 1] = wrk.format(nil, path)
   end
   index = math.floor(#requests * id / THREADS)
   statuses = {}
end

function request()
   index = index % #requests + 1
   return requests[index]
end

if COUNT_STATUSES then
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   local codes = {}
   for status, n in pairs(counts) do
      codes[#codes + 1] = string.format('"%d":%d', status, n)
   end
   local cdf = {}
   for i, p in ipairs(CDF_PERCENTILES) do
      cdf[i] = string.format("%d", latency:percentile(p))
   end
   local e = summary.errors
   io.write(RESULT_MARKER, string.format(
      '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"mean_us":%.3f,"max_us":%d,"cdf_us":[%s],"statuses":{%s}}\\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max, table.concat(cdf, ","), table.concat(codes, ",")))
end
"""


def run_wrk(urls: Sequence[str], *, host: str | None, concurrency: int, duration_s: float, threads: int = 2,
            max_requests: int | None = None, timeout_s: float = 2.0, headers: Mapping[str, str] = _NO_HEADERS,
            ca_file: Path | None = None, count_statuses: bool = False) -> LoadResult:
    """Load ``urls`` (loopback, one origin, any number of paths, cycled) with ``wrk``.

    wrk runs for whole seconds (``duration_s`` and ``timeout_s`` are rounded up) and cannot stop
    after a number of requests, so ``max_requests`` must be None. It does not verify TLS, so
    ``ca_file`` is ignored. ``count_statuses`` fills ``statuses`` through a Lua ``response``
    hook, which costs wrk much of its speed: leave it off for throughput runs. wrk refuses to
    start when the target does not accept connections (a ``HarnessError`` with its message)."""
    if max_requests is not None:
        raise ValueError("wrk runs for a time, not a number of requests: leave max_requests unset "
                         "or use the builtin client")
    spec = _spec(urls, host, headers, concurrency, duration_s, threads, max_requests, timeout_s)
    binary = shutil.which("wrk")
    if binary is None:
        raise HarnessError("wrk is not on PATH (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="cachewright-wrk-") as tmp:
        script = _write_wrk_files(Path(tmp), spec, count_statuses)
        argv = _wrk_argv(binary, script, spec)
        stdout = _run_bounded(argv, math.ceil(duration_s) + math.ceil(timeout_s) + WRK_GRACE_S)
    return _parse_wrk(stdout, _wrk_version(binary))


def _write_wrk_files(directory: Path, spec: _Spec, count_statuses: bool) -> Path:
    """Write the paths (one a line: they were checked to hold no control bytes) and the script."""
    paths = directory / "paths.txt"
    paths.write_text("".join(f"{path}\n" for path in spec.paths), encoding="utf-8")
    prelude = [
        f"local PATHS_FILE = {_lua_string(str(paths))}",
        f"local THREADS = {_wrk_threads(spec)}",
        f"local COUNT_STATUSES = {'true' if count_statuses else 'false'}",
        f"local CDF_PERCENTILES = {{{', '.join(str(p) for p in CDF_PERCENTILES)}}}",
        f"local RESULT_MARKER = {_lua_string(_RESULT_MARKER)}",
    ]
    script = directory / "load.lua"
    script.write_text("\n".join(prelude) + "\n" + _WRK_SCRIPT, encoding="utf-8")
    return script


def _lua_string(value: str) -> str:
    """``value`` as a Lua long-bracket string literal, which has no escapes to get wrong."""
    level = next(n for n in itertools.count() if f"]{'=' * n}]" not in value + "]")
    return f"[{'=' * level}[{value}]{'=' * level}]"


def _wrk_threads(spec: _Spec) -> int:
    return min(spec.threads, spec.concurrency)  # wrk refuses fewer connections than threads


def _wrk_argv(binary: str, script: Path, spec: _Spec) -> list[str]:
    argv = [binary, f"--threads={_wrk_threads(spec)}", f"--connections={spec.concurrency}",
            f"--duration={max(1, math.ceil(spec.duration_s))}s",
            f"--timeout={max(1, math.ceil(spec.timeout_s))}s", f"--script={script}"]
    for name, value in spec.headers:
        argv.append(f"--header={name}: {value}")
    return [*argv, f"{spec.base_url}/"]


def _run_bounded(argv: list[str], limit_s: float) -> str:
    """Run wrk and return its stdout; kill it (by its own PID) when it overruns ``limit_s`` or the
    harness is interrupted, so no load keeps running behind the caller's back."""
    try:
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=limit_s)
            except BaseException:
                proc.kill()
                raise
    except subprocess.TimeoutExpired:
        raise HarnessError(f"wrk did not finish within {limit_s:g}s and was killed: {shlex.join(argv)}") from None
    if proc.returncode != 0:
        raise HarnessError(f"wrk failed (exit status {proc.returncode}): {shlex.join(argv)}\n{stderr}{stdout}")
    return stdout


def _parse_wrk(stdout: str, tool: str) -> LoadResult:
    line = next((line for line in stdout.splitlines() if line.startswith(_RESULT_MARKER)), None)
    if line is None:
        raise HarnessError(f"wrk printed no result line; its output:\n{stdout}")
    raw: dict[str, Any] = json.loads(line[len(_RESULT_MARKER):])
    cdf = [(p, us / 1000) for p, us in zip(CDF_PERCENTILES, raw["cdf_us"], strict=True)]
    errors = sum(int(raw[kind]) for kind in ("connect", "read", "write", "timeout"))
    statuses = {int(status): int(n) for status, n in raw["statuses"].items()}
    return _result(tool, int(raw["requests"]), errors, statuses, int(raw["status"]), raw["duration_us"] / 1e6,
                   raw["mean_us"] / 1000, raw["max_us"] / 1000, cdf)


@functools.cache
def _wrk_version(binary: str) -> str:
    """The tool and its version, e.g. ``wrk 4.1.0``, from ``wrk -v`` (which prints its banner and
    exits with status 1)."""
    try:
        banner = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=5, check=False)
    except subprocess.TimeoutExpired:
        return "wrk"
    found = re.search(r"^wrk (?:\S*/)?(\d+(?:\.\d+)+)", banner.stdout + banner.stderr, re.MULTILINE)
    return f"wrk {found.group(1)}" if found else "wrk"


# --------------------------------------------------------------------------- builtin client


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

    spec: _Spec
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
                max_requests: int | None = None, timeout_s: float = 2.0, headers: Mapping[str, str] = _NO_HEADERS,
                ca_file: Path | None = None, on_response: OnResponse | None = None) -> LoadResult:
    """Load ``urls`` (loopback, one origin, paths cycled in order) over ``concurrency`` keep-alive
    connections until ``duration_s`` has passed or ``max_requests`` have been sent (whichever
    comes first; errors count against the budget, so requests + errors == max_requests when the
    time suffices). HTTPS is verified against ``ca_file`` (else the system CAs) for the name in
    ``host``. ``threads`` is accepted for symmetry with wrk and ignored: one event loop does it
    all. Must not be called from a running event loop."""
    spec = _spec(urls, host, headers, concurrency, duration_s, threads, max_requests, timeout_s)
    tls = ssl.create_default_context(cafile=ca_file) if spec.scheme == "https" else None
    try:
        return asyncio.run(_builtin(spec, tls, on_response))
    except ExceptionGroup as group:  # the task group's wrapping of a failed on_response callback
        raise group.exceptions[0] from None


async def _builtin(spec: _Spec, tls: ssl.SSLContext | None, on_response: OnResponse | None) -> LoadResult:
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
    cdf = [(p, _nearest_rank(ordered, p)) for p in CDF_PERCENTILES]
    status_errors = sum(n for status, n in tally.statuses.items() if status >= 400)
    return _result("builtin", len(ordered), tally.errors, tally.statuses, status_errors,
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


# --------------------------------------------------------------------------- choosing a client


def run_load(urls: Sequence[str], *, host: str | None, concurrency: int, duration_s: float, threads: int = 2,
             max_requests: int | None = None, timeout_s: float = 2.0, headers: Mapping[str, str] = _NO_HEADERS,
             ca_file: Path | None = None, on_response: OnResponse | None = None, count_statuses: bool = False,
             prefer: Literal["wrk", "builtin"] = "wrk") -> LoadResult:
    """Run wrk when it is preferred, on PATH and can do what is asked (no per-response callback,
    no request budget); the builtin client otherwise. ``LoadResult.tool`` says which ran."""
    if prefer == "wrk" and shutil.which("wrk") and on_response is None and max_requests is None:
        return run_wrk(urls, host=host, concurrency=concurrency, duration_s=duration_s, threads=threads,
                       timeout_s=timeout_s, headers=headers, ca_file=ca_file, count_statuses=count_statuses)
    return run_builtin(urls, host=host, concurrency=concurrency, duration_s=duration_s, threads=threads,
                       max_requests=max_requests, timeout_s=timeout_s, headers=headers, ca_file=ca_file,
                       on_response=on_response)
