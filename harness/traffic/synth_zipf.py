"""Synthetic traffic for measuring replays: a Zipf key mix per URL family, Poisson arrivals.

Each ``Family`` is a path prefix with ``urls`` distinct URLs (``/static/k17``) and a ``share``
of the requests; inside a family the URL of rank ``k`` is chosen with probability proportional
to ``1 / k ** exponent`` (Zipf: a few hot URLs, a long tail). Requests arrive as a Poisson
process of ``rate`` per second (exponential gaps), so a TTL shorter than the span expires while
the traffic runs, as in a real log. The stream is seeded, hence the same on every run, and
generated as it is read.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .entry import Entry

#: where generated timestamps start (seconds since the epoch; 2025-01-01)
EPOCH = 1_735_689_600.0


@dataclass(frozen=True)
class Family:
    """A set of URLs under ``prefix``, taking ``share`` of the requests (shares are relative)."""

    prefix: str
    urls: int
    share: float
    exponent: float = 1.0


def zipf_weights(urls: int, exponent: float) -> list[float]:
    """Cumulative Zipf weights of ranks 1..``urls``."""
    return list(itertools.accumulate(1.0 / rank ** exponent for rank in range(1, urls + 1)))


def synthesize(families: Sequence[Family], requests: int, rate: float, seed: int = 1,
               host: str | None = None) -> Iterator[Entry]:
    """``requests`` GET entries, lines 1.., timed by a Poisson process of ``rate`` per second."""
    rng = random.Random(seed)
    shares = list(itertools.accumulate(f.share for f in families))
    ranks = [zipf_weights(f.urls, f.exponent) for f in families]
    now = EPOCH
    for line in range(1, requests + 1):
        which = bisect.bisect_left(shares, rng.random() * shares[-1])
        weights = ranks[which]
        rank = bisect.bisect_left(weights, rng.random() * weights[-1])
        now += rng.expovariate(rate)
        yield Entry(line, "GET", f"{families[which].prefix}k{rank + 1}", host, time=now, status=200)
