"""``cachewright compare`` on a fleet policy: the same Zipf mix through one node, replicas, a
shield and a shard tier (``harness.compare.topologies``), each started on the local fleet runtime
in turn, counting what reached the sample origin -- requests and body bytes -- against the ideal
for that topology.

The paths are the first cacheable rule's that a plain GET reaches (``measure.plain_get``), one
per Zipf rank; the origin answers each with ``body_size`` bytes, stored for ten minutes, so
nothing expires during a run and the only misses are the topology's own.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from cachewright.generator.model import Policy

from ..origin.client import OriginClient
from ..runtime.api import Endpoint
from ..runtime.fleet import FleetRuntime, FleetStack
from ..selection import select_rule
from .fleetrecords import FleetReport, TopologyResult
from .load import zipf_paths
from .measure import STORED, MeasureError, Probe, plain_get
from .roundrobin import connections, send_round_robin
from .run import machine
from .settings import FleetSettings
from .topologies import Topology, ideal_misses, topologies

#: starts a topology's fleet (tests pass a runtime with shorter timeouts)
Start = Callable[[Policy], AbstractContextManager[FleetStack]]
TAG = "cwfleet"


@dataclass(frozen=True)
class Mix:
    """The Zipf mix: the probe its requests vary, its ranks in order and the request headers."""

    probe: Probe
    ranks: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]

    def targets(self) -> list[str]:
        return [self.probe.variant(rank).target for rank in self.ranks]

    def paths(self) -> set[str]:
        return {self.probe.variant(rank).path for rank in set(self.ranks)}


def compare_fleet(policy: Policy, policy_file: str, settings: FleetSettings,
                  progress: Callable[[str], None] = lambda _: None,
                  start: Start | None = None) -> FleetReport:
    """Every topology of ``policy``'s fleet measured on the same mix."""
    begin = start or (lambda pol: FleetRuntime().start(pol))
    mix = zipf_mix(policy, settings)
    results = []
    for topology in topologies(policy):
        progress(f"{topology.name}: {topology.shape}, {len(mix.ranks)} requests")
        results.append(measure_topology(topology, mix, settings, begin))
    engines = sorted({t.engine for t in policy.fleet.tiers}) if policy.fleet else []
    return FleetReport(policy_name=policy.name, policy_file=policy_file,
                       path_example=mix.probe.variant("z1").target,
                       settings=settings, machine=machine(engines), topologies=tuple(results))


def zipf_mix(policy: Policy, settings: FleetSettings) -> Mix:
    """The mix over the first cacheable rule a plain GET reaches (MeasureError: none, or its
    variants leave the rule)."""
    rule, req = plain_get(policy, TAG)
    probe = Probe(rule, req, TAG)
    if select_rule(policy, probe.variant("z1")) != rule:
        raise MeasureError(f"variants of {req.target} leave rule '{rule.name}': no Zipf mix to send")
    headers = tuple((n, v) for n, v in req.http_headers())
    return Mix(probe, tuple(zipf_paths(settings.requests, settings.keys, prefix="z")), headers)


def measure_topology(topology: Topology, mix: Mix, settings: FleetSettings, start: Start) -> TopologyResult:
    """Start ``topology``'s fleet, program the origin, send the mix round robin over its front
    nodes, and count what reached the origin."""
    policy = topology.policy
    paths = mix.paths()
    with start(policy) as stack, OriginClient(stack.origin.control_url) as origin:
        origin.add_rule({**mix.probe.origin_pattern(), "status": 200, "cache_control": STORED,  # type: ignore[typeddict-item]
                         "body": "filler", "body_size": settings.body_size})
        before = origin.counts()
        conns = connections(front_endpoints(stack, topology), scheme(policy), mix.probe.request.host,
                            stack.ca_file)
        sent = send_round_robin(conns, mix.targets(), dict(mix.headers), rate=settings.rate,
                                time_limit_s=settings.time_limit_s)
        after = origin.counts()
    count = sum(after.paths.get(p, 0) - before.paths.get(p, 0) for p in paths)
    body = sum(after.body_bytes.get(p, 0) - before.body_bytes.get(p, 0) for p in paths)
    ranks = mix.ranks[:sent.requests]
    return TopologyResult(name=topology.name, shape=topology.shape,
                          nodes=sum(len(t.nodes) for t in topology.fleet.tiers), requests=sent.requests,
                          errors=sent.errors, statuses=sent.statuses, distinct_keys=len(set(ranks)),
                          origin_requests=count, origin_bytes=body,
                          ideal_origin_requests=ideal_misses(topology, ranks), elapsed_s=sent.elapsed_s)


def scheme(policy: Policy) -> str:
    """https when plain HTTP only redirects (or is not served), else http (as the checks)."""
    listen = policy.listen
    return "https" if listen.https and (listen.http is None or listen.https.redirect_http) else "http"


def front_endpoints(stack: FleetStack, topology: Topology) -> list[Endpoint]:
    """The nodes the client sends to, in turn."""
    return [stack.node_endpoint(n.name) for n in topology.fleet.tiers[0].nodes]
