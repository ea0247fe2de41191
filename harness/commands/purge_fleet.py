"""``cachewright purge --fleet FLEET.yaml``: the nodes a purge must reach, read from the policy's
``fleet:`` section, and the order that makes exit 0 mean "nothing stale anywhere".

Every node of every tier may hold an object (replicas hold everything; a shard tier's owner
changes while a node is down, so its fallback may hold the key too), so every node is purged.
The tiers go one after another, the tier nearest the origin first, the nodes of a tier in
parallel: a front node purged before the tier behind it could fetch the old object again from
that tier before it is purged there.

A node is reached at its address in the policy, on its tier's port (the front tier: the
policy's listener, HTTPS where plain HTTP only redirects); ``--map NODE=ADDR[:PORT]`` puts a
node elsewhere (a test fleet on loopback addresses, a node behind a NAT).
"""

from __future__ import annotations

from pathlib import Path

from cachewright.generator.errors import UsageError
from cachewright.generator.model import Policy, Tier

from .purge import Node

__all__ = ["fleet_tiers", "parse_map"]


def parse_map(items: list[str], policy: Policy) -> dict[str, str]:
    """``--map NODE=ADDR[:PORT]`` values by node name (UsageError for an unknown node)."""
    assert policy.fleet is not None
    names = {n.name for t in policy.fleet.tiers for n in t.nodes}
    out = {}
    for item in items:
        name, sep, where = item.partition("=")
        if not sep or not where:
            raise UsageError(f"--map {item!r}: expected NODE=ADDRESS[:PORT], e.g. edge-1=127.0.0.2:8080")
        if name not in names:
            raise UsageError(f"--map {item!r}: no node {name!r} in the fleet (its nodes: "
                             f"{', '.join(sorted(names))})")
        out[name] = where
    return out


def fleet_tiers(policy: Policy, mapping: dict[str, str] | None = None,
                ca_file: Path | None = None) -> list[list[Node]]:
    """The nodes to purge, tier by tier, the tier nearest the origin first."""
    if policy.fleet is None:
        raise UsageError(f"{policy.source}: no fleet: section (purge one node with --node URL)")
    tiers = policy.fleet.tiers
    return [_tier_nodes(policy, tier, i == 0, mapping or {}, ca_file)
            for i, tier in reversed(list(enumerate(tiers)))]


def _tier_nodes(policy: Policy, tier: Tier, front: bool, mapping: dict[str, str],
                ca_file: Path | None) -> list[Node]:
    scheme, port = _front_listener(policy) if front else ("http", tier.inner_port)
    nodes = []
    for node in tier.nodes:
        where = mapping.get(node.name, node.address)
        netloc = where if ":" in where.rsplit("]", 1)[-1] else f"{where}:{port}"
        url = f"{scheme}://{netloc}"
        nodes.append(Node(f"{node.name} {url}", url, ca_file))
    return nodes


def _front_listener(policy: Policy) -> tuple[str, int]:
    """The front tier's purge listener: plain HTTP where it serves more than a redirect."""
    listen = policy.listen
    if listen.http is not None and (listen.https is None or not listen.https.redirect_http):
        return "http", listen.http.port
    assert listen.https is not None
    return "https", listen.https.port
