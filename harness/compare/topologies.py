"""The topologies ``cachewright compare`` sets side by side for a fleet, and what each would
ideally send to the origin.

A fleet policy fixes the size of the fleet (its front tier's N nodes, its inner tier's M) and its
engines; ``topologies`` rewrites its ``fleet:`` into four variants of the same policy -- the same
rules, key and TTLs, only the nodes change -- so the comparison measures the topology and nothing
else:

- ``one node``: one front-tier node (what the fleet replaces);
- ``replicas``: N front-tier nodes, each with its own cache, the client spreading requests round
  robin (an outside balancer);
- ``shield``: the N front nodes send their misses to one inner node, which alone talks to the
  origin;
- ``shard``: the N front nodes route by the cache key to M inner nodes (M: the policy's inner
  tier's size, at least 2).

The ideal is the origin traffic of caches that never evict nor expire, for the exact request
sequence the client sends: one node misses each distinct key once; replicas miss each key once
per node that sees it (computed from the round-robin assignment); a shield or shard tier misses
each key once for the whole fleet (one node's ideal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from cachewright.generator.model import Engine, Fleet, Node, Policy, Routing, Tier

Name = Literal["one node", "replicas", "shield", "shard"]
NAMES: Final[tuple[Name, ...]] = ("one node", "replicas", "shield", "shard")
#: the inner tiers' port in the variants (the local runtime gives each tier a free port anyway)
INNER_PORT: Final = 8080


@dataclass(frozen=True)
class Topology:
    """One variant: its name, the policy whose ``fleet:`` it is, and how the client spreads its
    requests (round robin over ``front`` nodes)."""

    name: Name
    policy: Policy

    @property
    def fleet(self) -> Fleet:
        assert self.policy.fleet is not None
        return self.policy.fleet

    @property
    def front(self) -> int:
        """How many nodes the client sends to, in turn."""
        return len(self.fleet.tiers[0].nodes)

    @property
    def shape(self) -> str:
        """The tiers as ``2 nginx -> 2 varnish (shard)``."""
        return " -> ".join(f"{len(t.nodes)} {t.engine}" + (f" ({t.routing})" if i else "")
                           for i, t in enumerate(self.fleet.tiers))


def topologies(policy: Policy) -> tuple[Topology, ...]:
    """The four variants of ``policy``'s fleet, in ``NAMES`` order."""
    fleet = policy.fleet
    if fleet is None:
        raise ValueError("topologies needs a policy with a fleet: section")
    front = fleet.tiers[0]
    inner = fleet.tiers[1] if len(fleet.tiers) > 1 else None
    engine: Engine = inner.engine if inner else front.engine
    edges = len(front.nodes)
    shards = max(2, len(inner.nodes) if inner else edges)
    shapes: dict[Name, tuple[Tier, ...]] = {
        "one node": (_tier("node", front.engine, "replicas", 1),),
        "replicas": (_tier("replica", front.engine, "replicas", edges),),
        "shield": (_tier("edge", front.engine, "replicas", edges), _tier("shield", engine, "replicas", 1)),
        "shard": (_tier("edge", front.engine, "replicas", edges), _tier("shard", engine, "shard", shards)),
    }
    return tuple(Topology(name, replace(policy, fleet=replace(fleet, tiers=_numbered(tiers))))
                 for name, tiers in shapes.items())


def _tier(name: str, engine: Engine, routing: Routing, nodes: int) -> Tier:
    return Tier(name, engine, routing, None, tuple(Node(f"{name}-{i}", "") for i in range(1, nodes + 1)))


def _numbered(tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
    """Each node its own documentation address (192.0.2.x: the run maps them to loopback ones),
    inner tiers on ``INNER_PORT``."""
    out, k = [], 1
    for i, tier in enumerate(tiers):
        nodes = tuple(Node(n.name, f"192.0.2.{k + j}") for j, n in enumerate(tier.nodes))
        k += len(nodes)
        out.append(replace(tier, nodes=nodes, port=INNER_PORT if i else None))
    return tuple(out)


def ideal_misses(topology: Topology, paths: Sequence[str]) -> int:
    """The origin requests of never-evicting caches for ``paths`` sent round robin over the
    front nodes: per node for replicas, once for the fleet otherwise."""
    if topology.name == "replicas":
        return round_robin_misses(paths, topology.front)
    return len(set(paths))


def round_robin_misses(paths: Sequence[str], nodes: int) -> int:
    """Distinct keys each of ``nodes`` independent caches sees when request i goes to node
    i mod ``nodes``, summed: the misses of replicas."""
    return sum(len(set(paths[k::nodes])) for k in range(nodes))
