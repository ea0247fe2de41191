"""A fleet in the local runtime: every node of the policy's ``fleet:`` as its own engine
processes on its own loopback address, in front of the sample origin.

    with FleetRuntime().start(policy, ("nginx",)) as stack:
        stack.endpoints["nginx"].url()            # the first front node: http://127.0.0.2:41234
        stack.node_endpoint("shield-1")           # any node, by name
        stack.stored_on("shield-1", "/a.css")     # that node's own record of what it stored

The policy's node addresses are mapped to loopback ones (127.0.0.2, .3, ... in fleet order, the
mapping printed with ``-v`` and kept in ``stack.mapping``); each tier gets free ports, the same
for every node of the tier as in a real fleet; the last tier fetches from the sample origin. The
nodes' policies are then derived as ``compile`` derives them (``generator.fleet.node_policies``),
so the front tier's upstream names the inner tier's loopback addresses and ports. Layout of a
run: ``NODE/nginx/`` or ``NODE/varnish/`` per node under one ``cachewright-run-*`` directory,
Varnish's ``-n`` under the run's Varnish workdir (``NODE``), both covered by the run's marker, so
the watchdog and the reaper stop a fleet's processes as a single node's (``runtime.reaper``).

The stack is a ``harness.runtime.api.Stack`` whose one engine is the front tier's engine,
answering on the first front node: the policy's checks run through it unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from cachewright.generator.fleet import node_policies
from cachewright.generator.model import Fleet, Node, Policy, Tier
from cachewright.generator.pipeline import Options, compile_policy
from cachewright.generator.render import OutputFile

from .. import ui
from ..engines import StoredObject, hitch, nginx, varnish
from ..engines import binaries as engine_binaries
from .api import Endpoint, HarnessError, OriginEndpoint
from .local import (
    HOST,
    LOG_LINES,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    EngineRun,
    compile_options,
    make_run_dir,
    require,
    sample_origin,
    varnish_log,
    varnish_stored,
    varnish_workdir,
    write_file,
)
from .prepare import Placement, for_harness
from .procs import Proc, deferred_signals, free_ports, signals_raise, spawn, stop_all, tail, wait_listening
from .reaper import Marker, reap
from .tlsfiles import TlsFiles, write_tls_files

#: the first loopback address given to a node (127.0.0.1 is the harness's and the origin's)
FIRST_ADDRESS = 2


@dataclass(frozen=True)
class FleetNode:
    """One node as the run placed it: its tier, engine, the policy's address and its loopback
    address here, and its ports (the front tier's listeners, or an inner tier's port)."""

    name: str
    tier: str
    engine: str
    address: str
    loopback: str
    http_port: int | None
    https_port: int | None

    def endpoint(self) -> Endpoint:
        return Endpoint(self.engine, self.loopback, self.http_port, self.https_port)


def loopback_map(fleet: Fleet) -> dict[str, str]:
    """Node name -> loopback address, in fleet order (front tier first)."""
    nodes = [n for tier in fleet.tiers for n in tier.nodes]
    if len(nodes) > 250:
        raise HarnessError(f"{len(nodes)} nodes: the local runtime gives each a 127.0.0.x address (at most 250)")
    return {n.name: f"127.0.0.{FIRST_ADDRESS + i}" for i, n in enumerate(nodes)}


def placed(policy: Policy, place: Placement, mapping: dict[str, str]) -> Policy:
    """``policy`` adapted to the run as a single node's (``prepare.for_harness``: listen ports,
    origin, certificate), its nodes on their loopback addresses and its inner tiers on free
    ports."""
    assert policy.fleet is not None
    ports = iter(free_ports(len(policy.fleet.tiers)))
    tiers = tuple(replace(t, port=next(ports) if i else None,
                          nodes=tuple(Node(n.name, mapping[n.name]) for n in t.nodes))
                  for i, t in enumerate(policy.fleet.tiers))
    return replace(for_harness(policy, place), fleet=replace(policy.fleet, tiers=tiers))


def fleet_nodes(policy: Policy, run_policy: Policy) -> list[FleetNode]:
    """Every node of ``run_policy`` (``placed``), with the policy's own address beside it."""
    assert policy.fleet is not None and run_policy.fleet is not None
    given = {n.name: n.address for t in policy.fleet.tiers for n in t.nodes}
    out = []
    for i, tier in enumerate(run_policy.fleet.tiers):
        http, https = _tier_ports(run_policy, tier, i == 0)
        out += [FleetNode(n.name, tier.name, tier.engine, given[n.name], n.address, http, https)
                for n in tier.nodes]
    return out


def _tier_ports(policy: Policy, tier: Tier, front: bool) -> tuple[int | None, int | None]:
    if not front:
        return tier.inner_port, None
    listen = policy.listen
    return (listen.http.port if listen.http else None, listen.https.port if listen.https else None)


@dataclass
class NodeRun:
    """A running node: where it is, its processes and logs, and how to start it again."""

    node: FleetNode
    run: EngineRun
    workdir: Path | None = None
    #: (name, argv, log) of each process, in start order, to restart a stopped node
    commands: tuple[tuple[str, list[str], Path], ...] = ()


class FleetStack:
    """A ``harness.runtime.api.Stack`` over a fleet: the engine is the front tier's, answering on
    the first front node; every node is reachable by name (``node_endpoint``, ``stored_on``,
    ``kill``, ``restart``)."""

    def __init__(self, run_dir: Path, origin: OriginEndpoint, ca_file: Path | None,
                 marker: Marker | None, run_policy: Policy) -> None:
        self.run_dir = run_dir
        #: the policy as the run placed it (loopback addresses, the run's ports)
        self.run_policy = run_policy
        self.marker = marker
        self.origin = origin
        self.ca_file = ca_file
        self.endpoints: dict[str, Endpoint] = {}
        self.nodes: dict[str, NodeRun] = {}
        self.client_address = HOST
        self.distinct_sources = True

    # ---------------------------------------------------------------- the Stack protocol

    def front(self) -> NodeRun:
        return next(iter(self.nodes.values()))

    def _front_of(self, engine: str) -> NodeRun:
        front = self.front()
        if engine != front.node.engine:
            raise HarnessError(f"engine {engine!r} is not the front tier's ({front.node.engine})")
        return front

    def outsider(self, engine: str) -> Endpoint | None:
        return None

    def logs(self, engine: str, lines: int = LOG_LINES) -> str:
        return self.node_logs(self._front_of(engine).node.name, lines)

    def alive(self, engine: str) -> bool:
        return self.node_alive(self._front_of(engine).node.name)

    def stored(self, engine: str, path: str) -> list[StoredObject]:
        return self.stored_on(self._front_of(engine).node.name, path)

    # ---------------------------------------------------------------- every node

    def tier(self, name: str) -> list[FleetNode]:
        """The nodes of tier ``name``, in policy order."""
        return [r.node for r in self.nodes.values() if r.node.tier == name]

    def tiers(self) -> list[str]:
        """Tier names, front first."""
        return list(dict.fromkeys(r.node.tier for r in self.nodes.values()))

    def node_endpoint(self, name: str) -> Endpoint:
        return self.nodes[name].node.endpoint()

    def mapping(self) -> dict[str, str]:
        """Node name -> the loopback address it runs on."""
        return {name: r.node.loopback for name, r in self.nodes.items()}

    def node_logs(self, name: str, lines: int = LOG_LINES) -> str:
        parts = [f"--- {name}: {p.relative_to(self.run_dir)}\n{tail(p, lines)}"
                 for p in self.nodes[name].run.logs if tail(p, lines)]
        return "\n".join(parts) or f"--- no log output from {name}"

    def node_alive(self, name: str) -> bool:
        procs = self.nodes[name].run.procs
        return bool(procs) and all(p.alive() for p in procs)

    def stored_on(self, name: str, path: str) -> list[StoredObject]:
        """Node ``name``'s own record of the objects it stored for ``path``."""
        run = self.nodes[name]
        if run.node.engine == "nginx":
            return nginx.stored(run.run.directory / "cache", path)
        assert run.workdir is not None
        return varnish_stored(run.workdir, path)

    def stored_each(self, name: str, paths: list[str]) -> dict[str, list[StoredObject]]:
        """``stored_on`` for many paths at once (Varnish's log read once)."""
        run = self.nodes[name]
        if run.node.engine == "nginx":
            return {path: nginx.stored(run.run.directory / "cache", path) for path in paths}
        assert run.workdir is not None
        log = varnish_log(run.workdir)
        return {path: varnish.stored_in(log, path) for path in paths}

    def kill(self, name: str) -> None:
        """SIGKILL every process group of node ``name`` (a node lost without warning)."""
        for proc in self.nodes[name].run.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        stop_all(self.nodes[name].run.procs, 1.0)

    def restart(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Start node ``name`` again with its commands (its cache is empty again: Varnish keeps
        objects in memory; nginx's cache files survive and are loaded again)."""
        run = self.nodes[name]
        stop_all(run.run.procs, STOP_TIMEOUT)  # nothing left of the node it replaces
        run.run.procs.clear()
        for proc_name, argv, log in run.commands:
            spawn(proc_name, argv, log, run.run.directory, run.run.procs, self.record)
        node, procs = run.node, run.run.procs
        deadline = time.monotonic() + timeout
        # plain HTTP from the engine, HTTPS from the last process (hitch, for Varnish)
        for proc, port in ((procs[0], node.http_port), (procs[-1], node.https_port)):
            if port is not None:
                wait_listening(proc, node.loopback, port, deadline, functools.partial(self.node_logs, name))

    #: whether ``disconnect`` can cut a node off its network (the docker runtime's nodes)
    partitions = False

    def disconnect(self, name: str) -> None:
        """Cut node ``name`` off the network: loopback addresses cannot be (``fleet.partition``
        runs on the docker runtime)."""
        raise HarnessError(f"cannot cut {name} off: the local runtime's nodes share loopback")

    def reconnect(self, name: str) -> None:
        """Put node ``name`` back on the network (see ``disconnect``)."""
        raise HarnessError(f"cannot reconnect {name}: the local runtime never disconnects a node")

    def record(self, proc: Proc) -> None:
        if self.marker is not None:
            self.marker.add(self.run_dir, proc.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        stop_all([p for r in self.nodes.values() for p in r.run.procs], timeout)


# --------------------------------------------------------------------------- the runtime


#: what a node runs: its files by base name for its derived policy (node name, engine, policy,
#: options); tests swap it to break one node on purpose
NodeConfigs = Callable[[str, str, Policy, Options], dict[str, OutputFile]]


def node_files(name: str, engine: str, policy: Policy, options: Options) -> dict[str, OutputFile]:
    """The compiler's files for node ``name``'s derived policy (the default ``NodeConfigs``)."""
    return {Path(f.path).name: f for f in compile_policy(policy, (engine,), options).files}


@dataclass(frozen=True)
class _Run:
    """What starting each node needs: binaries, compile options, TLS files, the node configs."""

    binaries: dict[str, str]
    options: Options
    tls: TlsFiles | None
    configs: NodeConfigs


class FleetRuntime:
    """Starts a fleet's nodes as local processes (``harness.runtime.api.Runtime``, ``local``)."""

    name = "local"

    def __init__(self, ready_timeout: float = READY_TIMEOUT, stop_timeout: float = STOP_TIMEOUT,
                 configs: NodeConfigs | None = None) -> None:
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.configs = configs or node_files

    def start(self, policy: Policy, engines: tuple[str, ...] = (),
              origin_url: str | None = None) -> AbstractContextManager[FleetStack]:
        """Start the origin (unless ``origin_url``) and every node; ``engines`` must be empty or
        name the front tier's engine (the stack's one engine)."""
        if policy.fleet is None:
            raise HarnessError("FleetRuntime runs a policy with a fleet: section (LocalRuntime runs one node)")
        front = policy.fleet.tiers[0].engine
        if set(engines) - {front}:
            raise HarnessError(f"a fleet's checks run through its front tier ({front}); "
                               f"not on {', '.join(sorted(set(engines) - {front}))}")
        return self._run(policy, origin_url)

    @contextlib.contextmanager
    def _run(self, policy: Policy, origin_url: str | None) -> Iterator[FleetStack]:
        with signals_raise():
            cleanup = contextlib.ExitStack()
            try:
                yield self._launch(cleanup, policy, origin_url)
            finally:
                with deferred_signals():
                    cleanup.close()

    def _launch(self, cleanup: contextlib.ExitStack, policy: Policy, origin_url: str | None) -> FleetStack:
        assert policy.fleet is not None
        # an inner tier serves plain HTTP only: hitch where the front tier is Varnish with HTTPS
        needed = [b for i, t in enumerate(policy.fleet.tiers)
                  for b in engine_binaries(t.engine, policy if i == 0 else None)]
        binaries = {name: require(name) for name in dict.fromkeys(needed)}
        for left in reap():  # what runs killed earlier left, as LocalRuntime does
            ui.detail(f"reaped {left}: its harness was killed and its watchdog with it")
        run_dir, marker = make_run_dir(cleanup, list(binaries.values()))
        origin, origin_host, origin_port = cleanup.enter_context(sample_origin(origin_url))
        tls = write_tls_files(run_dir / "tls", policy.listen.hosts) if policy.listen.https else None
        http, https = free_ports(2)
        cert, key = (str(tls.cert), str(tls.key)) if tls else ("", "")
        run_policy = placed(policy, Placement(HOST, http, https, origin_host, origin_port, cert, key),
                            loopback_map(policy.fleet))
        stack = FleetStack(run_dir, origin, tls.ca if tls else None, marker, run_policy)
        cleanup.callback(stack.stop, self.stop_timeout)
        derived = {name: _local_trust(node.policy) for name, node in node_policies(run_policy).items()}
        run = _Run(binaries, compile_options(binaries), tls, self.configs)
        nodes = fleet_nodes(policy, run_policy)
        for node in nodes:
            _show(f"fleet: {node.name} ({node.tier}, {node.engine}) {node.address} -> "
                  f"{node.loopback} port {' '.join(map(str, _ports(node)))}")
        _start_tiers(stack, run, nodes, derived, time.monotonic() + self.ready_timeout)
        stack.nodes = dict(reversed(stack.nodes.items()))  # front first
        stack.endpoints[stack.front().node.engine] = stack.front().node.endpoint()
        probe = policy.fleet.health
        _await_probes(stack, time.monotonic() + self.ready_timeout + probe.interval * probe.window)
        return stack


_Wait = tuple[str, Proc, int]


def _start_tiers(stack: FleetStack, run: _Run, nodes: list[FleetNode],
                 derived: dict[str, Policy], deadline: float) -> None:
    """Start the tiers nearest the origin first, each listening before the tier in front of it
    starts, as a fleet comes up on real hosts: a front node's first probes and fetches find the
    next tier up (a refused connection would hold a Varnish backend down for
    ``backend_remote_error_holddown`` and fail the first requests)."""
    tiers = list(dict.fromkeys(n.tier for n in nodes))
    for tier in reversed(tiers):
        waits: list[_Wait] = []
        for node in reversed([n for n in nodes if n.tier == tier]):
            waits += _START[node.engine](stack, run, node, derived[node.name])
        for name, proc, port in waits:
            wait_listening(proc, stack.nodes[name].node.loopback, port, deadline,
                           functools.partial(stack.node_logs, name))


def _await_probes(stack: FleetStack, deadline: float) -> None:
    """Every Varnish node in front of another tier sees that tier's nodes healthy: a probed
    backend starts sick until its first good probe (``.initial`` is ``threshold - 1``), so the
    fleet is not ready before (``varnishadm backend.list``)."""
    last = stack.tiers()[-1]
    for name, run in stack.nodes.items():
        if run.workdir is None or run.node.tier == last:
            continue
        argv = [require("varnishadm"), "-n", str(run.workdir), "backend.list"]
        while True:
            listed = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if listed.returncode == 0 and "healthy" in listed.stdout and "sick" not in listed.stdout:
                break
            if time.monotonic() >= deadline:
                raise HarnessError(f"timed out waiting for {name}'s probes to find the next tier "
                                   f"healthy:\n{listed.stdout}{listed.stderr}\n{stack.node_logs(name)}")
            time.sleep(0.1)


def _show(line: str) -> None:
    """The address mapping, on stderr unless --quiet (stdout holds the report)."""
    if ui.level >= ui.NORMAL:
        print(line, file=sys.stderr)


def _local_trust(policy: Policy) -> Policy:
    """An inner node's policy trusting 127.0.0.1 beside the front tier's loopback addresses:
    a connection between loopback addresses comes from 127.0.0.1 whatever address the node
    listens on (Linux's route for 127.0.0.0/8), and Varnish cannot bind a backend connection's
    source address. The harness's own requests to inner nodes send no forwarding headers."""
    role = policy.role
    if role is None or not role.trusted:
        return policy
    return replace(policy, role=replace(role, trusted=(*role.trusted, HOST)))


def _node_dir(stack: FleetStack, node: FleetNode, *subdirs: str) -> EngineRun:
    directory = stack.run_dir / node.name / node.engine
    directory.parent.mkdir(mode=0o755)
    for sub in ("", *subdirs):
        (directory / sub).mkdir(mode=0o755, exist_ok=True)
    return EngineRun(node.name, directory)


def _ports(node: FleetNode) -> list[int]:
    return [p for p in (node.http_port, node.https_port) if p is not None]


def _start_nginx(stack: FleetStack, run: _Run, node: FleetNode, policy: Policy) -> list[_Wait]:
    engine_run = _node_dir(stack, node, *nginx.DIRECTORIES)
    for name, out in run.configs(node.name, "nginx", policy, run.options).items():
        write_file(engine_run.directory, name, out.text, out.mode)
    logs = engine_run.directory / "logs"
    engine_run.logs += [logs / "error.log", logs / "stderr.log"]
    argv = nginx.argv(run.binaries["nginx"], f"{engine_run.directory}/", str(logs / "error.log"))
    proc = spawn(node.name, argv, logs / "stderr.log", engine_run.directory, engine_run.procs, stack.record)
    stack.nodes[node.name] = NodeRun(node, engine_run, None, ((node.name, argv, logs / "stderr.log"),))
    return [(node.name, proc, port) for port in _ports(node)]


def _start_varnish(stack: FleetStack, run: _Run, node: FleetNode, policy: Policy) -> list[_Wait]:
    """varnishd with its own ``-n`` (the run's Varnish workdir / NODE), and hitch in front of its
    PROXY listener where the node serves HTTPS."""
    engine_run = _node_dir(stack, node)
    workdir = varnish_workdir(stack.run_dir) / node.name
    workdir.mkdir(mode=0o755, parents=True)
    files = run.configs(node.name, "varnish", policy, run.options)
    proxy_port, admin_port = free_ports(2)
    vcl = write_file(engine_run.directory, varnish.VCL, files[varnish.VCL].text)
    args = varnish.args(files[varnish.ARGS].text, f"{node.loopback}:{proxy_port}")
    argv = varnish.argv(run.binaries["varnishd"], str(workdir), str(vcl), f"{HOST}:{admin_port}",
                        varnish.jail(os.geteuid() == 0), args)
    log = engine_run.directory / "varnishd.log"
    engine_run.logs.append(log)
    commands = [(node.name, argv, log)]
    if hitch.CONF in files:
        commands.append(_hitch_command(run, engine_run, node, files[hitch.CONF].text, proxy_port))
    procs = [spawn(n, a, lg, engine_run.directory, engine_run.procs, stack.record) for n, a, lg in commands]
    stack.nodes[node.name] = NodeRun(node, engine_run, workdir, tuple(commands))
    waits = [(node.name, procs[0], port) for port in ([node.http_port] if node.http_port else [])]
    return waits + [(node.name, procs[-1], node.https_port)] if node.https_port else waits


def _hitch_command(run: _Run, engine_run: EngineRun, node: FleetNode, compiled: str,
                   proxy_port: int) -> tuple[str, list[str], Path]:
    ocsp = engine_run.directory / "hitch-ocsp"
    ocsp.mkdir(mode=0o755)
    if os.geteuid() == 0:
        import shutil

        shutil.chown(ocsp, hitch.USER, hitch.USER)
    text = hitch.conf(compiled, node.loopback, proxy_port, str(ocsp), "local", drop=os.geteuid() == 0)
    conf = write_file(engine_run.directory, hitch.CONF, text)
    engine_run.logs.append(engine_run.directory / "hitch.log")
    return f"{node.name}-hitch", hitch.argv(run.binaries["hitch"], str(conf)), engine_run.logs[-1]


_START = {"nginx": _start_nginx, "varnish": _start_varnish}
