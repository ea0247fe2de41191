"""How hard and how long ``cachewright compare`` measures: the settings of its measurements and
of its origin offload run.

Plain frozen records with nothing heavy behind them: the command builds its options' defaults
from them when the CLI builds its parser (``harness.commands.compare``), before anything runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """How hard and how long each measurement pushes (the defaults take about 50 s per engine)."""

    concurrency: int = 32
    duration_s: float = 3.0
    threads: int = 2
    rounds: int = 5
    cold_samples: int = 50
    herd_size: int = 50
    origin_delay_s: float = 1.0
    stale_duration_s: float = 2.0
    zipf_requests: int = 20_000
    zipf_keys: int = 2_000
    zipf_concurrency: int = 8
    body_size: int = 1024

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OffloadSettings:
    """The offload run's size: about ``3 * (duration_s + 0.4)`` seconds per engine. An nginx entry
    with ``max-age=1`` is refreshed every 2 s (nginx stores its expiry in whole seconds), a Varnish
    one every second: 2.5 s refresh each URL at least once on both."""

    urls: int = 8
    concurrency: int = 4
    duration_s: float = 2.5
    body_size: int = 16 * 1024
    max_age_s: int = 1

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @property
    def cache_control(self) -> str:
        return f"max-age={self.max_age_s}"


@dataclass(frozen=True)
class FleetSettings:
    """The Zipf mix every topology gets, and its bounds: at most ``rate`` requests a second, at
    most ``time_limit_s`` per topology."""

    requests: int = 10_000
    keys: int = 2_000
    body_size: int = 1024
    rate: float = 2_000.0
    time_limit_s: float = 120.0

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)
