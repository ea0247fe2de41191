"""One run of the docker runtime being started: its client, labels, network and undo steps, the
containers it creates (files copied in, ports published on loopback, readiness awaited) and
the origin the engines proxy to (the sample origin in a container, the user's app image, or the
user's running app). The engines' own containers are ``start``'s; the sequence is ``runtime``'s.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, Unpack
from urllib.parse import urlsplit

import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig

from cachewright.generator.model import Policy

from ...origin import server_files
from ..api import HarnessError, OriginEndpoint
from ..ports import Fixed
from ..prepare import Configs
from ..procs import accepts, deferred_signals, free_ports
from ..tlsfiles import TlsFiles
from .daemon import connect
from .images import image_for
from .reaper import TMP_PREFIX, owner_labels, reap, remove_container, remove_network, remove_tree
from .stack import LOG_LINES, DockerStack, container_logs, container_status

ORIGIN_DIR = "/opt/cachewright"
ORIGIN_DATA, ORIGIN_CONTROL = 8000, 8001
POLL = 0.05
NetworkMode = Literal["private", "host"]


class Settings(Protocol):
    """What a launch reads of its runtime's settings (``DockerRuntime``'s attributes)."""

    images: dict[str, str]
    app_image: str | None
    app_port: int
    network: NetworkMode
    ready_timeout: float
    configs: Configs
    ports: Fixed


class CreateOptions(TypedDict, total=False):
    """The ``containers.create`` options a role's container adds to the common ones."""

    extra_hosts: dict[str, str]
    tmpfs: dict[str, str]
    working_dir: str
    environment: dict[str, str]

@dataclass
class Wait:
    """A container that must accept TCP connections on ``port`` (at ``host``) to be ready."""

    engine: str
    container: Container
    host: str
    port: int


class Launch:
    """One run being started: the client, its labels, its network, its undo steps."""

    def __init__(self, runtime: Settings, policy: Policy, cleanup: contextlib.ExitStack) -> None:
        self.runtime = runtime
        self.policy = policy
        self.cleanup = cleanup
        self.client = connect()
        cleanup.callback(self.client.close)  # registered first, so it runs after every removal
        reap(self.client)
        self.run_id = uuid.uuid4().hex[:12]
        self.labels = owner_labels(self.run_id)
        self.host_mode = runtime.network == "host"
        self.relay_targets: dict[str, dict[str, tuple[str, int]]] = {}
        self.network: Network | None = None
        self.gateway: str | None = None
        self.waits: list[Wait] = []
        self.tls: TlsFiles | None = None
        #: role -> the address its container is given on the run's network (a fleet's nodes)
        self.addresses: dict[str, str] = {}

    def tmp_dir(self) -> Path:
        with deferred_signals():
            path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.run_id}-"))
            self.cleanup.callback(remove_tree, path)
        return path

    def make_network(self, ipam: IPAMConfig | None = None) -> None:
        """The run's bridge network (on ``ipam``'s subnet where given: a fleet's addresses)."""
        if self.host_mode:
            return
        with deferred_signals():
            self.network = self.client.networks.create(f"cachewright-{self.run_id}", driver="bridge",
                                                       labels=self.labels, check_duplicate=True, ipam=ipam)
            self.cleanup.callback(remove_network, self.network)
        self.network.reload()
        config = (self.network.attrs.get("IPAM") or {}).get("Config") or [{}]
        self.gateway = config[0].get("Gateway")

    def container(self, engine: str, role: str, image: str, command: list[str],
                   files: Mapping[str, tuple[bytes | None, int]], ports: list[int],
                   same_port: bool = True, **kw: Unpack[CreateOptions]) -> Container:
        """Create (files copied in), register its removal, start; ``ports`` published on
        127.0.0.1 (as the same port numbers unless ``same_port`` is false: then random ones)."""
        name = f"cachewright-{self.run_id}-{role}"
        net: dict[str, Any] = ({"network_mode": "host"} if self.host_mode else
                               {"network": f"cachewright-{self.run_id}",
                                "ports": {f"{p}/tcp": ("127.0.0.1", p if same_port else None)
                                          for p in ports}})
        if role in self.addresses and not self.host_mode:
            endpoint = self.client.api.create_endpoint_config(ipv4_address=self.addresses[role])
            net["networking_config"] = {f"cachewright-{self.run_id}": endpoint}
        with deferred_signals():
            container = self.client.containers.create(
                image, command, name=name, labels={**self.labels, "cachewright.role": role},
                entrypoint=[], user="0", detach=True, **net, **kw)
            self.cleanup.callback(remove_container, container)
        if files:
            container.put_archive("/", tar_archive(files))
        container.start()
        container.reload()
        return container

    def published(self, container: Container, port: int) -> int:
        """The host port Docker bound for the container's ``port`` (the port itself in host mode)."""
        if self.host_mode:
            return port
        deadline = time.monotonic() + 5
        while True:
            bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
            if bound:
                return int(bound[0]["HostPort"])
            if time.monotonic() > deadline:
                raise HarnessError(f"Docker published no host port for {container.name}:{port}")
            time.sleep(POLL)
            container.reload()

    def address(self, container: Container) -> str:
        """Where the host reaches the container directly (for readiness): its network address."""
        if self.host_mode:
            return "127.0.0.1"
        return str(container.attrs["NetworkSettings"]["Networks"][f"cachewright-{self.run_id}"]["IPAddress"])

    def origin(self, origin_url: str | None) -> tuple[OriginEndpoint, str, int]:
        """The sample origin in its container, the user's app image, or the user's app at
        ``origin_url``: its endpoint, and the host and port the engines proxy to."""
        if origin_url:
            return self._user_origin(origin_url)
        if self.runtime.app_image:
            return self._app_origin(self.runtime.app_image, self.runtime.app_port)
        image = image_for(self.client, "origin", self.runtime.images.get("origin"))
        data, control = (ORIGIN_DATA, ORIGIN_CONTROL) if not self.host_mode else tuple(free_ports(2))
        files = {f"{ORIGIN_DIR}/{name}": (code, 0o644) for name, code in server_files().items()}
        command = ["python3", "-m", "cachewright.harness.origin",
                   "--host", "0.0.0.0" if not self.host_mode else "127.0.0.1",
                   "--data-port", str(data), "--control-port", str(control)]
        container = self.container("origin", "origin", image, command, files, [data, control],
                                   same_port=False, working_dir=ORIGIN_DIR, environment={"PYTHONPATH": ORIGIN_DIR})
        self.wait_tcp(Wait("origin", container, self.address(container), data), time.monotonic() + 30)
        self.wait_tcp(Wait("origin", container, self.address(container), control), time.monotonic() + 30)
        urls = (f"http://127.0.0.1:{self.published(container, p)}" for p in (data, control))
        host = "127.0.0.1" if self.host_mode else str(container.name)
        return OriginEndpoint(next(urls), next(urls)), host, data

    def _app_origin(self, image: str, port: int) -> tuple[OriginEndpoint, str, int]:
        """The user's app image as the origin, run with its own entrypoint and command."""
        name = f"cachewright-{self.run_id}-app"
        net: dict[str, Any] = ({"network_mode": "host"} if self.host_mode else
                               {"network": f"cachewright-{self.run_id}",
                                "ports": {f"{port}/tcp": ("127.0.0.1", None)}})
        with deferred_signals():
            try:
                container = self.client.containers.create(
                    image, name=name, labels={**self.labels, "cachewright.role": "app"},
                    detach=True, **net)
            except docker.errors.ImageNotFound:
                raise HarnessError(f"origin image {image!r} is not present (build or pull it "
                                   "first)") from None
            self.cleanup.callback(remove_container, container)
        container.start()
        container.reload()
        self.wait_tcp(Wait("origin", container, self.address(container), port),
                      time.monotonic() + 60)
        host = "127.0.0.1" if self.host_mode else str(container.name)
        return OriginEndpoint(f"http://127.0.0.1:{self.published(container, port)}", ""), host, port

    def _user_origin(self, origin_url: str) -> tuple[OriginEndpoint, str, int]:
        """The user's app: a loopback host becomes the Docker host (``host.docker.internal``)."""
        parts = urlsplit(origin_url)
        if parts.scheme != "http" or not parts.hostname:
            raise HarnessError(f"origin URL {origin_url!r}: the engines proxy to http://HOST[:PORT]")
        host = parts.hostname
        if not self.host_mode and host in ("localhost", "127.0.0.1", "::1"):
            host = "host.docker.internal"
        return OriginEndpoint(origin_url, ""), host, parts.port or 80

    def wait_tcp(self, wait: Wait, deadline: float, stack: DockerStack | None = None) -> None:
        """Poll the container's own address (Docker's port proxy accepts before the engine does)."""
        image = wait.container.attrs.get("Config", {}).get("Image", "?")
        what = f"{wait.container.name} ({image}) to listen on {wait.host}:{wait.port}"
        while True:
            status = container_status(wait.container)
            if status != "running":
                raise HarnessError(f"gave up waiting for {what}: the container is {status}\n"
                                   f"{self.logs(wait, stack)}")
            if accepts(wait.host, wait.port):
                return
            if time.monotonic() >= deadline:
                raise HarnessError(f"timed out waiting for {what}\n{self.logs(wait, stack)}")
            time.sleep(POLL)

    def logs(self, wait: Wait, stack: DockerStack | None) -> str:
        if stack is not None and wait.engine in stack.engines:
            return stack.logs(wait.engine)
        return f"--- container {wait.container.name}\n{container_logs(wait.container, LOG_LINES)}"


def tar_archive(files: Mapping[str, tuple[bytes | None, int]]) -> bytes:
    """A tar of ``files`` (absolute path → contents, or None for a directory; mode), owned by
    root, parents created as 0755 directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        seen: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                _tar_dir(tar, "/".join(parts[:i]), 0o755, seen)
            data, mode = files[path]
            if data is None:
                _tar_dir(tar, "/".join(parts), mode, seen)
                continue
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _tar_dir(tar: tarfile.TarFile, name: str, mode: int, seen: set[str]) -> None:
    if name in seen:
        return
    seen.add(name)
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
    tar.addfile(info)
