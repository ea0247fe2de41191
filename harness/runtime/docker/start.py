"""The engines' containers of a docker run: nginx, varnishd, hitch in front of varnishd's PROXY
listener, and a relay through which requests reach an engine from another container's address.

Engines listen on fixed ports inside their containers in the private network (6086 Varnish's
PROXY listener; http and https on the ports clients use, published as themselves), on free ports
in the host's network.
"""

from __future__ import annotations

import time
from dataclasses import replace
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Protocol

from docker.models.containers import Container

from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile

from ...engines import hitch, nginx, varnish
from ..api import Endpoint
from ..ports import engine_ports
from ..prepare import Placement
from ..procs import free_ports
from .images import ImageInfo, image_for, require_modules
from .launch import ORIGIN_DIR, CreateOptions, Launch, Wait
from .stack import CONF, DockerStack

PROXY_PORT, ADMIN_PORT = 6086, 6082
RELAY_PORTS = (9101, 9102)
RELAY_CODE = Path(__file__).with_name("relay.py")
#: checks whose outcome differs from the local runtime's with network="private" (every request
#: from the host reaches the engines from the network's gateway): none, purge.refused goes
#: through the relay
PRIVATE_NETWORK_DIFFERENCES: frozenset[str] = frozenset()
Tree = dict[str, tuple[bytes | None, int]]


def start_nginx(launch: Launch, stack: DockerStack, info: ImageInfo, origin_host: str, origin_port: int) -> None:
    """nginx in its container with the compiled files, for the modules its image has."""
    http, https, _ = _ports(launch, "nginx")
    options = Options(nginx_version=info.nginx_version or Options().nginx_version,
                      nginx_modules_dir=info.nginx_modules_dir or Options().nginx_modules_dir,
                      varnish_version=Options().varnish_version)
    files = _compile(launch, "nginx", _place(launch, http, https, origin_host, origin_port), options)
    require_modules("nginx", info, files)
    prefix = f"{CONF}/nginx"
    tree: Tree = {f"{prefix}/{name}": (out.text.encode(), out.mode) for name, out in files.items()}
    tree.update({f"{prefix}/{d}": (None, 0o755) for d in nginx.DIRECTORIES})
    tree.update(tls_files(launch))
    command = nginx.argv("nginx", f"{prefix}/", "stderr", "daemon off; error_log stderr warn;")
    container = launch.container("nginx", "nginx", info.image, command, tree,
                                 _listeners(launch.policy, http, https), **_extra(launch))
    stack.engines["nginx"].containers.append(container)
    _endpoint(launch, stack, "nginx", container, container, http, https)


def start_varnish(launch: Launch, stack: DockerStack, infos: dict[str, ImageInfo], origin_host: str,
                  origin_port: int) -> None:
    """varnishd in its container (its workdir on tmpfs), and hitch in front of it for HTTPS."""
    info = infos["varnish"]
    http, https, proxy = _ports(launch, "varnish")
    options = Options(varnish_version=info.varnish_version or Options().varnish_version)
    files = _compile(launch, "varnish", _place(launch, http, https, origin_host, origin_port), options)
    require_modules("varnish", info, files)
    prefix = f"{CONF}/varnish"
    args = varnish.args(files[varnish.ARGS].text, f"0.0.0.0:{proxy}" if not launch.host_mode
                        else f"127.0.0.1:{proxy}")
    jail = varnish.jail(set(varnish.USERS) <= set(info.users))
    admin = ADMIN_PORT if not launch.host_mode else free_ports(1)[0]
    command = varnish.argv("varnishd", f"{prefix}/state", f"{prefix}/{varnish.VCL}", f"127.0.0.1:{admin}",
                           jail, args)
    tree: Tree = {f"{prefix}/{varnish.VCL}": (files[varnish.VCL].text.encode(), 0o644),
                  f"{prefix}/{varnish.ARGS}": ("\n".join(args).encode() + b"\n", 0o644)}
    # The workdir on tmpfs, as Varnish's platform notes ask (see harness.runtime.local.varnish_workdir);
    # "exec": varnishd loads the compiled VCL from it.
    container = launch.container("varnish", "varnish", info.image, command, tree,
                                 _listeners(launch.policy, http, 0),
                                 **_extra(launch) | {"tmpfs": {f"{prefix}/state": "exec,mode=0755"}})
    stack.engines["varnish"].containers.append(container)
    front = container
    if hitch.CONF in files:
        front = _hitch(launch, stack, infos["hitch"], files[hitch.CONF].text, container, proxy, https)
        launch.waits.append(Wait("varnish", container, launch.address(container), proxy))
    _endpoint(launch, stack, "varnish", container, front, http, https)


def _hitch(launch: Launch, stack: DockerStack, info: ImageInfo, compiled: str, varnishd: Container,
           proxy: int, https: int) -> Container:
    """hitch in its own container, sending PROXY v2 to the varnish container's ``proxy``."""
    backend = "127.0.0.1" if launch.host_mode else str(varnishd.name)
    text = hitch.conf(compiled, backend, proxy, f"{CONF}/hitch/ocsp", "docker", drop=hitch.USER in info.users)
    tree: Tree = {f"{CONF}/hitch/{hitch.CONF}": (text.encode(), 0o644), f"{CONF}/hitch/ocsp": (None, 0o777),
                  **tls_files(launch)}
    command = hitch.argv("hitch", f"{CONF}/hitch/{hitch.CONF}")
    container = launch.container("varnish", "hitch", info.image, command, tree, [https])
    stack.engines["varnish"].containers.append(container)
    return container


def _endpoint(launch: Launch, stack: DockerStack, engine: str, plain: Container, tls: Container,
              http: int, https: int) -> None:
    """The engine's endpoint (published ports), what to await, and where the relay points."""
    listen = launch.policy.listen
    if listen.http:
        launch.waits.append(Wait(engine, plain, launch.address(plain), http))
    if listen.https:
        launch.waits.append(Wait(engine, tls, launch.address(tls), https))
    targets = launch.relay_targets.setdefault(engine, {})
    if listen.http:
        targets["http"] = (str(plain.name), http)
    if listen.https:
        targets["https"] = (str(tls.name), https)
    stack.endpoints[engine] = Endpoint(
        engine, "127.0.0.1", launch.published(plain, http) if listen.http else None,
        launch.published(tls, https) if listen.https else None)


class Outsiders(Protocol):
    """What ``start_relay`` records in a stack (a ``DockerStack``'s or a fleet's)."""

    outsiders: dict[str, Endpoint]


def start_relay(launch: Launch, stack: Outsiders, engine: str) -> None:
    """A TCP relay inside the network, published on loopback: requests sent through it reach
    the engine from another container's address (a client outside purge.allow)."""
    targets = launch.relay_targets.get(engine, {})
    if not targets:
        return
    listen = {"http": RELAY_PORTS[0], "https": RELAY_PORTS[1]}
    args = [f"{listen[scheme]}:{name}:{port}" for scheme, (name, port) in targets.items()]
    image = image_for(launch.client, "origin", launch.runtime.images.get("origin"))
    script = f"{ORIGIN_DIR}/relay.py"
    container = launch.container(engine, f"relay-{engine}", image, ["python3", script, *args],
                                 {script: (RELAY_CODE.read_bytes(), 0o644)},
                                 [listen[s] for s in targets], same_port=False)
    for scheme in targets:
        launch.wait_tcp(Wait(engine, container, launch.address(container), listen[scheme]),
                        time.monotonic() + 20)
    ports = {s: launch.published(container, listen[s]) for s in targets}
    stack.outsiders[engine] = Endpoint(engine, "127.0.0.1", ports.get("http"), ports.get("https"))


def adapted(launch: Launch) -> Policy:
    """In the private network the host's requests come from the gateway: where ``purge.allow``
    allows loopback (the host running the checks), allow the gateway too."""
    policy = launch.policy
    purge = policy.purge
    if launch.host_mode or purge is None or launch.gateway is None:
        return policy
    loopback = ip_address("127.0.0.1")
    if not any(loopback in ip_network(n, strict=False) for n in purge.allow):
        return policy
    return replace(policy, purge=replace(purge, allow=(*purge.allow, f"{launch.gateway}/32")))


def _ports(launch: Launch, engine: str) -> tuple[int, int, int]:
    """http, https and Varnish PROXY ports. http and https are free host ports (or the fixed
    ones asked for), used inside the container too and published as themselves: an engine's
    own port is what it writes into redirects (``Location: https://host:PORT/``), so it must
    be the port clients use."""
    if launch.host_mode:
        http, https, proxy = engine_ports(launch.runtime.ports, engine, 1)
        return http, https, proxy
    http, https = engine_ports(launch.runtime.ports, engine)
    return http, https, PROXY_PORT


def _compile(launch: Launch, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
    return launch.runtime.configs(adapted(launch), engine, place, options)


def _place(launch: Launch, http: int, https: int, origin_host: str, origin_port: int) -> Placement:
    cert, key = (f"{CONF}/tls/server.crt", f"{CONF}/tls/server.key") if launch.tls else ("", "")
    address = "127.0.0.1" if launch.host_mode else "0.0.0.0"
    return Placement(address, http, https, origin_host, origin_port, cert, key)


def tls_files(launch: Launch) -> Tree:
    if launch.tls is None:
        return {}
    return {f"{CONF}/tls/server.crt": (launch.tls.cert.read_bytes(), 0o644),
            f"{CONF}/tls/server.key": (launch.tls.key.read_bytes(), 0o644)}


def _extra(launch: Launch) -> CreateOptions:
    return {} if launch.host_mode else {"extra_hosts": {"host.docker.internal": "host-gateway"}}


def _listeners(policy: Policy, http: int, https: int) -> list[int]:
    return ([http] if policy.listen.http else []) + ([https] if policy.listen.https and https else [])
