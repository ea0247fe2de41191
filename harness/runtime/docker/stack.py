"""The running stack of the docker runtime: the engines' containers, their logs, and what the
engines stored (nginx's cache files copied out of its container, Varnish's log read inside it)."""

from __future__ import annotations

import io
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from ...engines import StoredObject, nginx, varnish
from ..api import Endpoint, HarnessError, OriginEndpoint

#: where a container's files go (``nginx/``, ``varnish/``, ``hitch/``, ``tls/``)
CONF = "/etc/cachewright"
LOG_LINES = 40


@dataclass
class EngineRun:
    """One engine's containers, in start order."""

    name: str
    containers: list[Container] = field(default_factory=list)


class DockerStack:
    """A ``harness.runtime.api.Stack`` of containers. Also offers ``run_id`` and ``containers``."""

    def __init__(self, run_id: str, origin: OriginEndpoint, ca_file: Path | None) -> None:
        self.run_id = run_id
        self.origin = origin
        self.ca_file = ca_file
        self.endpoints: dict[str, Endpoint] = {}
        self.engines: dict[str, EngineRun] = {}
        self.origin_container: Container | None = None
        self.client_address = "127.0.0.1"  # the gateway's address once the network exists
        self.distinct_sources = True
        self.outsiders: dict[str, Endpoint] = {}

    def outsider(self, engine: str) -> Endpoint | None:
        """Where requests reach ``engine`` from another address than the harness's own."""
        return self.outsiders.get(engine)

    def _engine(self, engine: str) -> EngineRun:
        if engine not in self.engines:
            raise HarnessError(f"engine {engine!r} is not running in this stack "
                               f"(running: {', '.join(self.engines) or 'none'})")
        return self.engines[engine]

    def containers(self, engine: str) -> list[Container]:
        """The engine's containers, in start order (varnish, then hitch)."""
        return list(self._engine(engine).containers)

    def logs(self, engine: str, lines: int = LOG_LINES) -> str:
        """The last ``lines`` lines of each of the engine's container logs, under its name."""
        parts = []
        for container in self._engine(engine).containers:
            text = container_logs(container, lines)
            if text:
                parts.append(f"--- container {container.name} (last {lines} lines)\n{text}")
        return "\n".join(parts) or f"--- no log output from {engine}"

    def pids(self, engine: str) -> list[int]:
        """Every process of the engine's containers, as host pids (``docker top``), for the
        memory and CPU figures of ``compare``; empty where the daemon does not say."""
        pids = []
        for container in self._engine(engine).containers:
            try:
                top = container.top(ps_args="-o pid")
            except docker.errors.DockerException:
                continue
            pids += [int(row[0]) for row in top.get("Processes") or [] if row and str(row[0]).isdigit()]
        return sorted(pids)

    def alive(self, engine: str) -> bool:
        """Whether every container of the engine is still running."""
        return all(container_status(c) == "running" for c in self._engine(engine).containers)

    def stored(self, engine: str, path: str) -> list[StoredObject]:
        """The engine's own record of objects stored for ``path`` (nginx's cache files copied
        out of the container, Varnish's log read with varnishlog inside it)."""
        container = self._engine(engine).containers[0]
        if engine == "nginx":
            return nginx_stored(container, path)
        return varnish.stored_in(varnish_log(container), path)


def container_logs(container: Container, lines: int) -> str:
    """The last ``lines`` lines of a container's output (empty where the daemon refuses)."""
    try:
        raw: bytes = container.logs(tail=lines)
    except docker.errors.APIError:
        return ""
    return raw.decode("utf-8", "replace").rstrip("\n")


def container_status(container: Container) -> str:
    """The container's status now (``removed`` once it is gone)."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return "removed"
    return str(container.status)


def nginx_stored(container: Container, path: str) -> list[StoredObject]:
    try:
        chunks, _stat = container.get_archive(f"{CONF}/nginx/cache")
    except docker.errors.NotFound:
        return []
    with tempfile.TemporaryDirectory(prefix="cachewright-cache-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            tar.extractall(tmp, filter="data")
        return nginx.stored(Path(tmp), path)


def varnish_log(container: Container) -> str:
    """The container's Varnish log of backend transactions (what ``varnish.stored_in`` reads)."""
    argv = varnish.varnishlog_argv("varnishlog", f"{CONF}/varnish/state")
    result = container.exec_run(argv, user="0")
    output = result.output if isinstance(result.output, bytes) else b""
    text = output.decode("utf-8", "replace")
    if result.exit_code != 0:
        raise HarnessError(f"varnishlog in {container.name} failed (status {result.exit_code}): "
                           f"{text.strip()[-2000:]}")
    return text
