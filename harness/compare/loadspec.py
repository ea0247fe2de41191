"""A load run for ``cachewright compare``, validated once, and what it measured.

``load_spec`` checks a run's settings (one loopback origin, its paths, its headers) before any
client starts; ``LoadResult`` is what either client (``harness.compare.wrk``,
``harness.compare.builtin``) reports, built by ``load_result``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

#: the latency percentiles every result carries: enough points to draw a CDF
CDF_PERCENTILES = (1.0, 5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0,
                   99.0, 99.9)
NO_HEADERS: Mapping[str, str] = MappingProxyType({})
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


# --------------------------------------------------------------------------- validated run settings


@dataclass(frozen=True)
class Spec:
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


def load_spec(urls: Sequence[str], host: str | None, headers: Mapping[str, str], concurrency: int,
          duration_s: float, threads: int, max_requests: int | None, timeout_s: float) -> Spec:
    if not urls:
        raise ValueError("no URLs to load")
    origins = {_origin(url) for url in urls}
    if len(origins) > 1:
        raise ValueError(f"all load URLs must share one scheme, host and port; got {sorted(origins)}")
    _check_numbers(concurrency, duration_s, threads, max_requests, timeout_s)
    scheme, address, port = origins.pop()
    return Spec(scheme, address, port, tuple(_path(url) for url in urls),
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


def load_result(tool: str, requests: int, errors: int, statuses: Mapping[int, int], status_errors: int,
            duration_s: float, mean_ms: float, max_ms: float, cdf: list[tuple[float, float]]) -> LoadResult:
    by_p = dict(cdf)
    latency = {"mean": mean_ms, "p50": by_p[50.0], "p90": by_p[90.0], "p99": by_p[99.0], "max": max_ms}
    rps = requests / duration_s if duration_s > 0 else 0.0
    return LoadResult(tool, requests, errors, dict(statuses), duration_s, rps, latency, cdf, status_errors)


def nearest_rank(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted samples by the nearest-rank method (0.0 without samples)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]
