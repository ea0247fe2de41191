"""Fleets: one policy, several cache nodes in tiers (docs/fleets.md).

``build`` turns the validated ``fleet:`` section into frozen records, ``check`` refuses what
cannot work (each problem with its position and the alternative), and ``node_policies`` derives
each node's own policy: the same rules, key, TTLs and safe defaults, its own listener, its own
origin (the next tier's nodes, or the real origin for the last tier) and a ``FleetRole`` the
lowerings read for what only a fleet member does (routing to the next tier, trusting the tier in
front, appending to Cache-Status). The pipeline compiles each derived policy as a single node.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .errors import CapabilityError, UsageError
from .model import (
    Fleet,
    FleetHealth,
    FleetRole,
    HttpListener,
    HttpsListener,
    Listen,
    Node,
    Origin,
    Policy,
    Probe,
    Server,
    Tier,
)

#: what a check reports per engine (``harness.engines.tools.Verified``: the compiler knows no harness)
Checked = TypeVar("Checked")

if TYPE_CHECKING:  # render imports Jinja: not for load, which imports this module
    from .render import OutputFile

#: what an inner node answers itself, to the tier in front only: the probes of a Varnish tier
#: in front ask it (a request through the rules could be a miss, a bypass or a 421)
HEALTH_PATH = "/.well-known/cachewright/health"

Report = Callable[[str, str], None]


@dataclass(frozen=True)
class NodePolicy:
    """One node of a fleet: its name (its output directory), its engine and its own policy."""

    name: str
    engine: str
    policy: Policy


def not_yet(policy: Policy, command: str, runtime: str | None = None) -> None:
    """Refuse a fleet where ``command`` (on ``runtime``) can run one node only: the harness runs
    fleets with ``test`` (on the local or the docker runtime) and ``compare`` (local) alone so far
    (docs/fleets.md)."""
    runs = {"test": ("local", "docker"), "compare": ("local",)}
    if policy.fleet is None or runtime in runs.get(command, ()):
        return
    what = f"{command} --runtime {runtime}" if runtime else command
    raise UsageError(f"{policy.where('fleet')}: fleet: `cachewright {what}` cannot run a fleet "
                     f"yet (prove it on local processes: cachewright test {policy.source} "
                     "--runtime local; or compile it, one directory per node: cachewright "
                     f"compile {policy.source} -o cachewright-out/; docs/fleets.md)")


def build(raw: dict[str, Any] | None) -> Fleet | None:
    """The ``fleet:`` section as records (None: a single node)."""
    if raw is None:
        return None
    tiers = tuple(Tier(t["name"], t["engine"], t["routing"], t["port"],
                       tuple(Node(n["name"], n["address"]) for n in t["nodes"]))
                  for t in raw["tiers"])
    return Fleet(tiers, FleetHealth(**raw["health"]))


def check(policy: Policy, problem: Report) -> None:
    """Every way a fleet cannot work, as a problem at its path."""
    fleet = policy.fleet
    if fleet is None:
        return
    _check_front(policy, fleet, problem)
    _check_names(fleet, problem)
    _check_addresses(fleet, problem)
    _check_inner_private(fleet, problem)
    for i, tier in enumerate(fleet.tiers):
        at = f"fleet.tiers[{i}]"
        if tier.routing == "shard" and i == 0:
            problem(f"{at}.routing", "shard on the front tier: the balancer in front of it would "
                    "have to hash by cachewright's cache key (put a tier with routing: replicas "
                    "in front of the shard tier)")
        elif tier.routing == "shard" and len(tier.nodes) < 2:
            problem(f"{at}.routing", "shard needs at least two nodes (one node holds every key: "
                    "add nodes, or write routing: replicas)")


def _check_front(policy: Policy, fleet: Fleet, problem: Report) -> None:
    """The front tier serves ``listen`` on each node's own address: a port of its own or a
    listener address would be ignored, never silently."""
    if fleet.tiers[0].port is not None:
        problem("fleet.tiers[0].port", "applies to inner tiers: the front tier serves listen "
                "(its ports; remove port, or set listen.http.port / listen.https.port)")
    for name, listener in (("http", policy.listen.http), ("https", policy.listen.https)):
        if listener is not None and listener.address != "0.0.0.0":
            problem(f"listen.{name}.address", f"warning: {listener.address} is not used in a "
                    "fleet: each front-tier node listens on its own address (fleet.tiers[0]."
                    "nodes[].address)")


def _check_names(fleet: Fleet, problem: Report) -> None:
    tiers: dict[str, int] = {}
    nodes: dict[str, str] = {}
    for i, tier in enumerate(fleet.tiers):
        if tier.name in tiers:
            problem(f"fleet.tiers[{i}].name", f"'{tier.name}' is already the name of "
                    f"fleet.tiers[{tiers[tier.name]}] (expected unique tier names)")
        tiers.setdefault(tier.name, i)
        for j, node in enumerate(tier.nodes):
            at = f"fleet.tiers[{i}].nodes[{j}]"
            if node.name in nodes:
                problem(f"{at}.name", f"'{node.name}' is already the name of {nodes[node.name]} "
                        "(expected unique node names: each is an output directory and a "
                        "Cache-Status name)")
            nodes.setdefault(node.name, at)


def _check_inner_private(fleet: Fleet, problem: Report) -> None:
    """An inner tier is for the tier in front alone: on a public address, clients could reach it
    and skip the front tier (its TLS, its guards; a shard tier's key routing). Its hops are plain
    HTTP, and it trusts forwarding headers from the front tier's addresses: a private network."""
    import ipaddress

    for i, tier in enumerate(fleet.tiers[1:], 1):
        for j, node in enumerate(tier.nodes):
            if ipaddress.ip_address(node.address).is_global:
                problem(f"fleet.tiers[{i}].nodes[{j}].address", f"{node.address} is a public address: "
                        f"clients could reach inner tier {tier.name} and skip the tier in front "
                        "(expected a private address, e.g. 10.0.1.21, on the network the tier in "
                        "front shares with it)")


def _check_addresses(fleet: Fleet, problem: Report) -> None:
    """A node per address and tier: one address in two tiers would make a tier route to itself
    (a loop) and trust itself; twice in a tier, two nodes would listen on one address and port."""
    seen: dict[str, tuple[int, str]] = {}
    for i, tier in enumerate(fleet.tiers):
        for j, node in enumerate(tier.nodes):
            at = f"fleet.tiers[{i}].nodes[{j}]"
            if node.address not in seen:
                seen[node.address] = (i, at)
                continue
            other_tier, other = seen[node.address]
            if other_tier == i:
                port = "the ports of listen" if i == 0 else f"port {tier.inner_port}"
                problem(f"{at}.address", f"{node.address} is already the address of {other} "
                        f"(two nodes of tier {tier.name} on one address and {port}: expected "
                        "one node per address)")
            else:
                problem(f"{at}.address", f"{node.address} is already the address of {other} in "
                        f"tier {fleet.tiers[other_tier].name}: a tier would route to itself (a "
                        "loop; expected a different address per tier, e.g. one host per node)")


def node_policies(policy: Policy) -> dict[str, NodePolicy]:
    """Each node's own policy, by node name, front tier first."""
    fleet = policy.fleet
    if fleet is None:
        return {}
    out = {}
    for i, tier in enumerate(fleet.tiers):
        front = fleet.tiers[i - 1] if i > 0 else None
        after = fleet.tiers[i + 1] if i + 1 < len(fleet.tiers) else None
        for node in tier.nodes:
            role = FleetRole(node, tier, after.routing if after else None,
                             tuple(n.address for n in front.nodes) if front else (), fleet.health)
            derived = replace(policy, fleet=None, role=role,
                              listen=_listen(policy.listen, node, tier, front is None),
                              origin=_origin(policy.origin, after, fleet.health, tier.engine),
                              headers=replace(policy.headers, cache_status_name=node.name))
            out[node.name] = NodePolicy(node.name, tier.engine, derived)
    return out


def _listen(listen: Listen, node: Node, tier: Tier, front: bool) -> Listen:
    """The front tier serves the policy's listeners on its own address; an inner tier plain
    HTTP on address:port (the hosts stay: it applies the same rules to the client's Host)."""
    if not front:
        return Listen(HttpListener(node.address, tier.inner_port), None, listen.hosts)
    http = HttpListener(node.address, listen.http.port) if listen.http else None
    https: HttpsListener | None = replace(listen.https, address=node.address) if listen.https else None
    return Listen(http, https, listen.hosts)


def _origin(origin: Origin, after: Tier | None, health: FleetHealth, engine: str) -> Origin:
    """The last tier keeps the real origin; the others fetch from the next tier's nodes over
    plain HTTP with the client's Host, probed where the engine probes (Varnish)."""
    if after is None:
        return origin
    probe = Probe(HEALTH_PATH, health.interval, health.timeout, health.window, health.threshold,
                  200) if engine == "varnish" else None
    return Origin(tuple(Server(n.address, after.inner_port) for n in after.nodes), None, probe,
                  origin.connect_timeout, origin.read_timeout)


class Compiled(Protocol):
    """What the pipeline gives for one node (generator/pipeline.py's ``Compiled``)."""

    @property
    def files(self) -> tuple[OutputFile, ...]: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...


def compile_nodes(policy: Policy, targets: tuple[str, ...],
                  compile_one: Callable[[Policy, tuple[str, ...]], Compiled],
                  ) -> tuple[tuple[OutputFile, ...], tuple[str, ...]]:
    """Every node's files under ``NODE/`` (nodes of the engines in ``targets``) and the
    warnings; what an engine refuses is raised once per tier, naming the tier."""
    files: list[OutputFile] = []
    warnings: dict[str, None] = {}
    errors: dict[str, None] = {}
    for node in node_policies(policy).values():
        if node.engine not in targets:
            continue
        try:
            compiled = compile_one(node.policy, (node.engine,))
        except CapabilityError as exc:
            tier = node.policy.role.tier.name if node.policy.role else node.name
            errors[f"tier {tier} ({node.engine}): {exc}"] = None
            continue
        warnings.update(dict.fromkeys(compiled.warnings))
        files += [replace(f, path=f"{node.name}/{f.path}") for f in compiled.files]
    if errors:
        raise CapabilityError("\n".join(errors))
    return tuple(files), tuple(warnings)


def verify_nodes(files: tuple[OutputFile, ...], fleet: Fleet | None,
                 check: Callable[[list[OutputFile]], list[Checked]]) -> list[Checked]:
    """``check`` (``harness.engines.verify.verify``, passed in) on each node's files, as a single node's;
    without a fleet, on all of them at once. ``nginx -t`` binds its listeners: a node's address
    is not this machine's, so its listeners are checked on 127.0.0.1."""
    if fleet is None:
        return check(list(files))
    done: list[Checked] = []
    for tier in fleet.tiers:
        for node in tier.nodes:
            prefix = f"{node.name}/"
            own = [replace(f, path=f.path[len(prefix):], text=_local(f.text, node.address))
                   for f in files if f.path.startswith(prefix)]
            done += check(own) if own else []
    return done


def _local(text: str, address: str) -> str:
    return re.sub(rf"^(\s*listen ){re.escape(address)}:", r"\g<1>127.0.0.1:", text, flags=re.M)
