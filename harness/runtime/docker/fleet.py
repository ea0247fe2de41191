"""A fleet in the docker runtime: every node of the policy's ``fleet:`` as its own container on
the run's private network, with an address of its own, in front of the sample origin's container.

    with DockerFleetRuntime().start(policy, ("nginx",)) as stack:
        stack.endpoints["nginx"].url()            # the first front node, published: http://127.0.0.1:41234
        stack.node_endpoint("shield-1")           # any node, at its network address: http://10.0.1.21:8080
        stack.disconnect("shield-1")              # cut off the network (``fleet.partition``)

Addresses: where the policy's node addresses are private IPv4 addresses in one /24 ... /16, that
is the network's subnet and each container gets its node's own address (the fleet-shield
example: 10.0.1.0/24, edge-1 on 10.0.1.11); else (public addresses, names, a subnet another
network holds) Docker picks the subnet and the nodes are mapped onto it in fleet order, the
mapping shown as the local fleet run shows its own. The origin takes the first free address.

Every node keeps its tier's ports inside its container (an inner tier the policy's ``port``), as
in a real fleet; the first front node publishes its listeners on 127.0.0.1 as the same port
numbers (what an engine writes into redirects), the other front nodes on random ones. The
harness reaches every node at its network address too (Linux routes the host to a bridge
network), which is how the fleet checks ask nodes directly and how a fleet purge reaches them.

The stack is a ``FleetStack`` (``harness.runtime.fleet``) whose nodes are containers: ``kill``
is ``docker kill``, ``restart`` starts the same container again, and ``disconnect`` /
``reconnect`` take a node off the network and back with its address. Containers and the network
carry the run's owner labels (``reaper``), so a killed run's fleet is removed by the next run.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path

import docker.errors
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool

from cachewright.generator.fleet import node_policies
from cachewright.generator.model import Fleet, Node, Policy
from cachewright.generator.pipeline import Options

from ... import ui
from ...engines import StoredObject, hitch, nginx, varnish
from ..api import Endpoint, HarnessError, OriginEndpoint
from ..fleet import FleetNode, FleetStack, NodeRun, fleet_nodes, node_files
from ..local import EngineRun
from ..prepare import Placement, for_harness
from ..procs import deferred_signals, free_ports, signals_raise
from ..tlsfiles import write_tls_files
from .images import ImageInfo, image_for, probe_image, require_modules
from .launch import CreateOptions, Launch, Wait, tar_archive
from .reaper import remove_container, remove_network
from .runtime import READY_TIMEOUT, DockerRuntime
from .stack import CONF, LOG_LINES, container_logs, container_status, nginx_stored, varnish_log
from .start import ADMIN_PORT, PROXY_PORT, Tree, adapted, start_relay, tls_files

#: the widest subnet a fleet's own addresses may ask for (a /16: 65,534 hosts)
WIDEST = 16
#: RFC 1918's private ranges, where Docker's bridge networks live
PRIVATE = tuple(ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def given_subnet(fleet: Fleet) -> IPv4Network | None:
    """The narrowest /24 ... /16 holding every node's address, where all are private IPv4
    addresses (RFC 1918) and none is the subnet's network, gateway (its first address) or broadcast one."""
    try:
        addresses = [ip_address(n.address) for t in fleet.tiers for n in t.nodes]
    except ValueError:  # a host name
        return None
    if not all(isinstance(a, IPv4Address) and any(a in n for n in PRIVATE) for a in addresses):
        return None
    for prefix in range(24, WIDEST - 1, -1):
        net = ip_network(f"{addresses[0]}/{prefix}", strict=False)
        reserved = {net.network_address, net.network_address + 1, net.broadcast_address}
        if all(a in net and a not in reserved for a in addresses):
            assert isinstance(net, IPv4Network)
            return net
    return None


def mapped(fleet: Fleet, subnet: IPv4Network, keep: bool) -> tuple[dict[str, str], str]:
    """Node name -> its address on ``subnet`` (its own where ``keep``, else the subnet's hosts
    in fleet order after the gateway), and the first address left for the origin."""
    nodes = [n for t in fleet.tiers for n in t.nodes]
    hosts = (str(h) for h in subnet.hosts() if h != subnet.network_address + 1)
    mapping = {n.name: n.address for n in nodes} if keep else {n.name: next(hosts) for n in nodes}
    taken = set(mapping.values())
    return mapping, next(h for h in hosts if h not in taken)


class DockerFleetStack(FleetStack):
    """A ``FleetStack`` whose nodes are containers (one per node; its address is the node's
    ``loopback`` field, the name of the local runtime's address)."""

    def __init__(self, launch: Launch, run_policy: Policy, run_dir: Path, origin: OriginEndpoint) -> None:
        super().__init__(run_dir, origin, launch.tls.ca if launch.tls else None, None, run_policy)
        self.launch = launch
        self.run_id = launch.run_id
        self.containers: dict[str, Container] = {}
        #: hitch beside a Varnish front node serving HTTPS, in the node's network namespace
        self.sidecars: dict[str, Container] = {}
        self.outsiders: dict[str, Endpoint] = {}

    def outsider(self, engine: str) -> Endpoint | None:
        """Where requests reach the first front node from another container's address."""
        return self.outsiders.get(engine)

    def of(self, name: str) -> list[Container]:
        """Node ``name``'s containers: the engine's, then hitch's where it has one."""
        return [self.containers[name], *([self.sidecars[name]] if name in self.sidecars else [])]

    def node_logs(self, name: str, lines: int = LOG_LINES) -> str:
        return "\n".join(f"--- container {c.name} (last {lines} lines)\n{container_logs(c, lines)}"
                         for c in self.of(name))

    def node_alive(self, name: str) -> bool:
        return all(container_status(c) == "running" for c in self.of(name))

    def stored_on(self, name: str, path: str) -> list[StoredObject]:
        return self.stored_each(name, [path])[path]

    def stored_each(self, name: str, paths: list[str]) -> dict[str, list[StoredObject]]:
        container = self.containers[name]
        if self.nodes[name].node.engine == "nginx":
            return {path: nginx_stored(container, path) for path in paths}
        log = varnish_log(container)
        return {path: varnish.stored_in(log, path) for path in paths}

    def kill(self, name: str) -> None:
        """``docker kill`` (SIGKILL) node ``name``'s container: a node lost without warning."""
        for container in reversed(self.of(name)):
            with contextlib.suppress(docker.errors.APIError):
                container.kill()

    def restart(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Start node ``name``'s container again (Varnish's cache empty, nginx's files kept)."""
        for container in self.of(name)[1:]:  # hitch joins the engine's new namespace
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
        for container in self.of(name):
            container.start()
            container.reload()
        _await_node(self.launch, self, self.nodes[name].node, time.monotonic() + timeout)

    partitions = True

    def disconnect(self, name: str) -> None:
        """Take node ``name`` off the run's network (``docker network disconnect``)."""
        assert self.launch.network is not None
        self.launch.network.disconnect(self.containers[name], force=True)

    def reconnect(self, name: str) -> None:
        """Put node ``name`` back on the run's network with its own address."""
        assert self.launch.network is not None
        self.launch.network.connect(self.containers[name], ipv4_address=self.nodes[name].node.loopback)

    def stop(self, timeout: float = 0.0) -> None:
        """Nothing: the run's cleanup removes every container and the network."""


class DockerFleetRuntime:
    """Starts a fleet's nodes as containers (``harness.runtime.api.Runtime``, ``docker``)."""

    name = "docker"

    def __init__(self, ready_timeout: float = READY_TIMEOUT, images: dict[str, str] | None = None) -> None:
        self.settings = DockerRuntime(images=images, ready_timeout=ready_timeout)

    def start(self, policy: Policy, engines: tuple[str, ...] = (),
              origin_url: str | None = None) -> AbstractContextManager[DockerFleetStack]:
        """Start the sample origin and every node; ``engines`` empty or the front tier's engine."""
        if policy.fleet is None:
            raise HarnessError("DockerFleetRuntime runs a policy with a fleet: section (DockerRuntime runs one node)")
        front = policy.fleet.tiers[0]
        if set(engines) - {front.engine}:
            raise HarnessError(f"a fleet's checks run through its front tier ({front.engine})")
        if origin_url:
            raise HarnessError("a fleet runs in front of the sample origin (no --origin yet)")
        return self._run(policy)

    @contextlib.contextmanager
    def _run(self, policy: Policy) -> Iterator[DockerFleetStack]:
        with signals_raise():
            cleanup = contextlib.ExitStack()
            try:
                yield _launch(Launch(self.settings, policy, cleanup))
            finally:
                with deferred_signals():
                    cleanup.close()


def _launch(launch: Launch) -> DockerFleetStack:
    policy = launch.policy
    assert policy.fleet is not None
    client, images = launch.client, launch.runtime.images
    roles = [*dict.fromkeys(t.engine for t in policy.fleet.tiers),
             *(["hitch"] if policy.fleet.tiers[0].engine == "varnish" and policy.listen.https else [])]
    infos: dict[str, ImageInfo] = {r: probe_image(client, image_for(client, r, images.get(r))) for r in roles}
    mapping = _network(launch, policy.fleet)
    run_dir = launch.tmp_dir()
    if policy.listen.https:
        launch.tls = write_tls_files(run_dir / "tls", policy.listen.hosts)
    origin, origin_host, origin_port = launch.origin(None)
    http, https = free_ports(2)
    cert, key = (f"{CONF}/tls/server.crt", f"{CONF}/tls/server.key") if launch.tls else ("", "")
    run_policy = _placed(adapted(launch), Placement("0.0.0.0", http, https, origin_host, origin_port, cert, key),
                         mapping)
    stack = DockerFleetStack(launch, run_policy, run_dir, origin)
    stack.client_address, stack.distinct_sources = launch.gateway or "127.0.0.1", False
    nodes = fleet_nodes(policy, run_policy)
    for node in nodes:
        _show(f"fleet: {node.name} ({node.tier}, {node.engine}) {node.address} -> {node.loopback} "
              f"port {' '.join(str(p) for p in (node.http_port, node.https_port) if p)}")
    derived = node_policies(run_policy)
    for node in reversed(nodes):  # the tier nearest the origin first
        publish = "same" if node is nodes[0] else "random" if node.tier == nodes[0].tier else ""
        _start_node(launch, stack, infos, node, derived[node.name].policy, publish)
    stack.nodes = dict(reversed(stack.nodes.items()))  # front first
    deadline = time.monotonic() + launch.runtime.ready_timeout
    for node in nodes:
        _await_node(launch, stack, node, deadline)
    _front_endpoint(launch, stack, nodes[0])
    _relay(launch, stack, nodes[0])
    health = policy.fleet.health
    _await_probes(stack, time.monotonic() + launch.runtime.ready_timeout + health.interval * health.window)
    return stack


def _network(launch: Launch, fleet: Fleet) -> dict[str, str]:
    """The run's network on the fleet's own subnet where it has one (and it is free), else on
    Docker's choice; node name -> its address there. The origin's address is reserved too."""
    subnet = given_subnet(fleet)
    if subnet is not None:
        pool = IPAMPool(subnet=str(subnet), gateway=str(subnet.network_address + 1))
        try:
            launch.make_network(IPAMConfig(pool_configs=[pool]))
        except docker.errors.APIError as exc:
            _show(f"fleet: subnet {subnet} not available ({exc.explanation}): the nodes are mapped")
            subnet = None
    if subnet is None:  # Docker's choice, made again as a configured subnet (for fixed addresses)
        launch.make_network()
        chosen = _subnet(launch)
        assert launch.network is not None
        remove_network(launch.network)
        pool = IPAMPool(subnet=str(chosen), gateway=str(chosen.network_address + 1))
        launch.make_network(IPAMConfig(pool_configs=[pool]))
    mapping, origin = mapped(fleet, _subnet(launch), keep=subnet is not None)
    launch.addresses = {**mapping, "origin": origin}
    return mapping


def _subnet(launch: Launch) -> IPv4Network:
    """The run's network's subnet, as Docker reports it."""
    assert launch.network is not None
    config = (launch.network.attrs.get("IPAM") or {}).get("Config") or [{}]
    subnet = ip_network(config[0]["Subnet"])
    assert isinstance(subnet, IPv4Network)
    return subnet


def _placed(policy: Policy, place: Placement, mapping: dict[str, str]) -> Policy:
    """``policy`` placed as a single node's (listen ports, origin, certificate), its nodes on
    their network addresses; an inner tier keeps its own port (each node has its own address)."""
    assert policy.fleet is not None
    tiers = tuple(replace(t, nodes=tuple(Node(n.name, mapping[n.name]) for n in t.nodes))
                  for t in policy.fleet.tiers)
    return replace(for_harness(policy, place), fleet=replace(policy.fleet, tiers=tiers))


def _options(info: ImageInfo) -> Options:
    return Options(nginx_version=info.nginx_version or Options().nginx_version,
                   nginx_modules_dir=info.nginx_modules_dir or Options().nginx_modules_dir,
                   varnish_version=info.varnish_version or Options().varnish_version)


def _start_node(launch: Launch, stack: DockerFleetStack, infos: dict[str, ImageInfo], node: FleetNode,
                policy: Policy, publish: str) -> None:
    """Node ``node``'s container with its compiled files; ``publish``: its listeners on
    loopback as the ``same`` port numbers, on ``random`` ones, or not at all (inner tiers)."""
    info = infos[node.engine]
    files = node_files(node.name, node.engine, policy, _options(info))
    require_modules(node.engine, info, files)
    prefix = f"{CONF}/{node.engine}"
    tree: Tree = {f"{prefix}/{name}": (out.text.encode(), out.mode) for name, out in files.items()}
    extra: CreateOptions = {}
    if node.engine == "nginx":
        tree.update({f"{prefix}/{d}": (None, 0o755) for d in nginx.DIRECTORIES})
        command = nginx.argv("nginx", f"{prefix}/", "stderr", "daemon off; error_log stderr warn;")
    else:
        args = varnish.args(files[varnish.ARGS].text, f"127.0.0.1:{PROXY_PORT}")  # hitch's only
        jail = varnish.jail(set(varnish.USERS) <= set(info.users))
        command = varnish.argv("varnishd", f"{prefix}/state", f"{prefix}/{varnish.VCL}",
                               f"127.0.0.1:{ADMIN_PORT}", jail, args)
        extra["tmpfs"] = {f"{prefix}/state": "exec,mode=0755"}
    tree.update(tls_files(launch))
    ports = [p for p in (node.http_port, node.https_port) if p and publish]
    container = launch.container(node.engine, node.name, info.image, command, tree, ports,
                                 same_port=publish == "same", **extra)
    stack.containers[node.name] = container
    if hitch.CONF in files:
        stack.sidecars[node.name] = _hitch(launch, infos["hitch"], node, files[hitch.CONF].text, container)
    stack.nodes[node.name] = NodeRun(node, EngineRun(node.name, stack.run_dir / node.name))


def _hitch(launch: Launch, info: ImageInfo, node: FleetNode, compiled: str, varnishd: Container) -> Container:
    """hitch in the varnish container's network namespace (the node's address, its published
    ports), sending PROXY v2 to varnishd's listener on 127.0.0.1."""
    conf = f"{CONF}/hitch/{hitch.CONF}"
    text = hitch.conf(compiled, "127.0.0.1", PROXY_PORT, f"{CONF}/hitch/ocsp", "docker", drop=hitch.USER in info.users)
    tree: Tree = {conf: (text.encode(), 0o644), f"{CONF}/hitch/ocsp": (None, 0o777), **tls_files(launch)}
    role = f"{node.name}-hitch"
    with deferred_signals():
        container = launch.client.containers.create(
            info.image, hitch.argv("hitch", conf), name=f"cachewright-{launch.run_id}-{role}",
            labels={**launch.labels, "cachewright.role": role}, entrypoint=[], user="0", detach=True,
            network_mode=f"container:{varnishd.id}")
        launch.cleanup.callback(remove_container, container)
    container.put_archive("/", tar_archive(tree))
    container.start()
    container.reload()
    return container


def _await_node(launch: Launch, stack: DockerFleetStack, node: FleetNode, deadline: float) -> None:
    for port in (node.http_port, node.https_port):
        if port:
            container = stack.of(node.name)[-1 if port == node.https_port else 0]
            launch.wait_tcp(Wait(node.engine, container, node.loopback, port), deadline)


def _front_endpoint(launch: Launch, stack: DockerFleetStack, first: FleetNode) -> None:
    """The stack's one endpoint: the first front node's listeners, published on loopback."""
    container = stack.containers[first.name]
    stack.endpoints[first.engine] = Endpoint(
        first.engine, "127.0.0.1",
        launch.published(container, first.http_port) if first.http_port else None,
        launch.published(container, first.https_port) if first.https_port else None)


def _relay(launch: Launch, stack: DockerFleetStack, first: FleetNode) -> None:
    """A relay to the first front node (``start.start_relay``): a client outside purge.allow,
    where the run's network is outside it (the fleet-shield example allows its own 10.0.0.0/8,
    so every container is a permitted purger there: ``purge.refused`` is then skipped)."""
    subnet, purge = _subnet(launch), launch.policy.purge
    allowed = [ip_network(n, strict=False) for n in (purge.allow if purge else ())]
    if any(n.version == 4 and n.overlaps(subnet) for n in allowed):
        _show(f"fleet: the network {subnet} is inside purge.allow: no client outside it here")
        return
    name = str(stack.containers[first.name].name)
    targets = launch.relay_targets.setdefault(first.engine, {})
    if first.http_port:
        targets["http"] = (name, first.http_port)
    if first.https_port:
        targets["https"] = (name, first.https_port)
    start_relay(launch, stack, first.engine)


def _await_probes(stack: DockerFleetStack, deadline: float) -> None:
    """Every Varnish node in front of another tier sees that tier healthy (``varnishadm
    backend.list`` in its container), as the local fleet run awaits it."""
    last = stack.tiers()[-1]
    for name, run in stack.nodes.items():
        if run.node.engine != "varnish" or run.node.tier == last:
            continue
        argv = ["varnishadm", "-n", f"{CONF}/varnish/state", "backend.list"]
        while True:
            result = stack.containers[name].exec_run(argv, user="0")
            text = result.output.decode("utf-8", "replace") if isinstance(result.output, bytes) else ""
            if result.exit_code == 0 and "healthy" in text and "sick" not in text:
                break
            if time.monotonic() >= deadline:
                raise HarnessError(f"timed out waiting for {name}'s probes to find the next tier "
                                   f"healthy:\n{text}\n{stack.node_logs(name)}")
            time.sleep(0.1)


def _show(line: str) -> None:
    """The address mapping, on stderr unless --quiet (stdout holds the report)."""
    if ui.level >= ui.NORMAL:
        print(line, file=sys.stderr)
