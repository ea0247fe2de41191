"""Load generation for ``cachewright compare``: cached-hit throughput and latency at a fixed
concurrency over a Zipf-distributed request mix.

Two clients give one ``LoadResult`` (``harness.compare.loadspec``, which validates every run):

* ``run_wrk`` (``harness.compare.wrk``) drives ``wrk`` with a generated Lua script. It is fast,
  so it measures the engine rather than the client; it runs for whole seconds and cannot stop
  after a number of requests.
* ``run_builtin`` (``harness.compare.builtin``) is an asyncio HTTP/1.1 keep-alive client:
  slower, but bounded by time and by a request count, verifying HTTPS against a given CA, and
  reporting every response to a callback (for a hit-ratio timeline).

``run_load`` picks one. Both refuse targets other than loopback IP addresses: this generator is
only ever pointed at engines the harness started on this machine.
"""

from __future__ import annotations

import bisect
import itertools
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from .builtin import run_builtin
from .loadspec import NO_HEADERS, LoadResult, OnResponse
from .wrk import run_wrk

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


# --------------------------------------------------------------------------- choosing a client


def run_load(urls: Sequence[str], *, host: str | None, concurrency: int, duration_s: float, threads: int = 2,
             max_requests: int | None = None, timeout_s: float = 2.0, headers: Mapping[str, str] = NO_HEADERS,
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
