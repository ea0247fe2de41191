"""The fleet comparison's report as frozen records: ``FleetReport`` and one ``TopologyResult``
per topology (``harness.compare.topologies``).

``harness.compare.fleetrun`` builds one; ``to_json()`` is what ``compare --json`` writes for a
fleet (format ``cachewright-compare-fleet``, ``version`` 1); ``harness.compare.fleettext``
renders it for the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .records import Machine
from .settings import FleetSettings

FORMAT: Final = "cachewright-compare-fleet"
FORMAT_VERSION: Final = 1
#: the figures are given per this many client requests
PER: Final = 10_000


@dataclass(frozen=True)
class TopologyResult:
    """One topology measured: what reached the origin for the requests sent, and the ideal
    (caches that never evict nor expire, ``topologies.ideal_misses``) for the same requests."""

    name: str
    shape: str
    nodes: int
    requests: int
    errors: int
    statuses: Mapping[int, int]
    distinct_keys: int
    origin_requests: int
    origin_bytes: int
    ideal_origin_requests: int
    elapsed_s: float

    def per(self, count: float) -> float | None:
        """``count`` per ``PER`` client requests."""
        return count * PER / self.requests if self.requests else None

    @property
    def hit_ratio(self) -> float | None:
        """The share of client requests the fleet answered without the origin."""
        return 1 - self.origin_requests / self.requests if self.requests else None

    @property
    def ideal_hit_ratio(self) -> float | None:
        return 1 - self.ideal_origin_requests / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "nodes": self.nodes, "requests": self.requests,
                "errors": self.errors, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "distinct_keys": self.distinct_keys, "origin_requests": self.origin_requests,
                "origin_bytes": self.origin_bytes, "ideal_origin_requests": self.ideal_origin_requests,
                "origin_requests_per_10k": self.per(self.origin_requests),
                "origin_bytes_per_10k": self.per(self.origin_bytes),
                "ideal_origin_requests_per_10k": self.per(self.ideal_origin_requests),
                "hit_ratio": self.hit_ratio, "ideal_hit_ratio": self.ideal_hit_ratio,
                "elapsed_s": round(self.elapsed_s, 3)}


@dataclass(frozen=True)
class FleetReport:
    """The fleet comparison: the policy, the mix, the machine and each topology's figures."""

    policy_name: str
    policy_file: str
    path_example: str
    settings: FleetSettings
    machine: Machine
    topologies: tuple[TopologyResult, ...]

    @property
    def failed(self) -> bool:
        """A topology lost requests: its figures do not describe the whole mix."""
        return any(t.errors for t in self.topologies)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION,
                "policy": {"name": self.policy_name, "file": self.policy_file},
                "path_example": self.path_example, "settings": self.settings.to_json(),
                "machine": self.machine.to_json(), "topologies": [t.to_json() for t in self.topologies]}
