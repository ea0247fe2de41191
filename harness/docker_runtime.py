"""The ``docker`` runtime: the origin and the engines as containers, one private network per run.

    with DockerRuntime().start(policy, ("nginx", "varnish")) as stack:
        stack.endpoints["varnish"].url()          # http://127.0.0.1:49153 (a published port)
        stack.stored("nginx", "/static/a.css")    # read from the container's cache directory

Per run: a bridge network ``cachewright-<run>``; containers ``cachewright-<run>-origin``,
``-nginx``, ``-varnish`` and (HTTPS) ``-hitch``, which sends PROXY v2 to the varnish container.
Engines listen on fixed ports inside their containers (8080 http, 8443 https, 6086 Varnish's
PROXY listener); those are published on 127.0.0.1 only, on random host ports. Every container and
the network carry ``cachewright=1``, ``cachewright.run=<run>`` and their owner (pid, its start
time, boot id, host name), so ``reap`` can remove what a killed run left behind.

What the engines see as the client address: with the private network, every request from the
host arrives from the network's gateway (Docker's port proxy), whatever loopback address the
client bound. The policy is adapted so that loopback entries of ``purge.allow`` also allow the
gateway (the host running the checks stays a permitted purger), but a refused purge sent from
127.0.0.2 cannot be told apart, and the origin sees ``X-Forwarded-For: <gateway>``. With
``network="host"`` the containers share the host's network and the checks see exactly what they
see with the local runtime.

Images: ``cachewright/<role>:local`` when present (``harness/images/build-local.sh``), else the
official images at pinned tags; each image is probed once (engine version, module directory,
modules, users) and a policy needing a module the image lacks is refused with the module named.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile
from cachewright.generator.verify import PACKAGES

from .runtime.api import ENGINES, Endpoint, HarnessError, OriginEndpoint, Stack, StoredObject
from .runtime.local import nginx_stored, varnish_fetch, varnishd_args
from .runtime.ports import Fixed, engine_ports
from .runtime.prepare import Configs, Placement, generated
from .runtime.procs import accepts, deferred_signals, free_ports, signals_raise
from .runtime.tlsfiles import TlsFiles, write_tls_files

ROLES = ("nginx", "varnish", "hitch", "origin")
LOCAL_IMAGES = {role: f"cachewright/{role}:local" for role in ROLES}
API_VERSION = "1.41"  # Docker Engine 20.10 and later (Docker 28 accepts 1.24 and up)
SOCKET_TIMEOUT = 5.0
OFFICIAL_IMAGES = {"nginx": "nginx:1.27", "varnish": "varnish:7.6", "hitch": "hitch:1.8",
                   "origin": "python:3.11-slim"}
LABEL = "cachewright"
RUN_LABEL = "cachewright.run"
OWNER_LABELS = ("cachewright.pid", "cachewright.pid-start", "cachewright.boot", "cachewright.host")
CONF = "/etc/cachewright"
ORIGIN_DIR = "/opt/cachewright"
PROXY_PORT, ADMIN_PORT = 6086, 6082
ORIGIN_DATA, ORIGIN_CONTROL = 8000, 8001
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5
LOG_LINES = 40
TMP_PREFIX = "cachewright-docker-"  # + run id: the host-side temp dir (TLS files) of a run
POLL = 0.05
NetworkMode = Literal["private", "host"]
# Checks whose outcome differs from the local runtime's with network="private", because every
# request from the host reaches the engines from the network's gateway (see the module's doc).
RELAY_PORTS = (9101, 9102)
RELAY_CODE = """\
import asyncio, sys
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
async def serve(port, host, target):
    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    server = await asyncio.start_server(handle, "0.0.0.0", port)
    await server.serve_forever()
async def main():
    specs = [arg.split(":") for arg in sys.argv[1:]]
    await asyncio.gather(*(serve(int(p), h, int(t)) for p, h, t in specs))
asyncio.run(main())
"""
PRIVATE_NETWORK_DIFFERENCES: frozenset[str] = frozenset()  # none: purge.refused goes through a relay


# --------------------------------------------------------------------------- image probing


@dataclass(frozen=True)
class ImageInfo:
    """What one image offers: engine versions, nginx's module dir and modules, Varnish's vmods,
    and which of Debian's service users exist (for dropping privileges as the local runtime)."""

    image: str
    nginx_version: tuple[int, int, int] | None = None
    nginx_modules_dir: str | None = None
    nginx_modules: tuple[str, ...] = ()
    varnish_version: tuple[int, int, int] | None = None
    vmods: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


_PROBE = r"""
nginx -v 2>&1; varnishd -V 2>&1 | head -1
for d in /usr/lib/nginx/modules /etc/nginx/modules /usr/share/nginx/modules; do
  [ -d "$d" ] && for f in "$d"/*.so; do [ -e "$f" ] && echo "NGXMOD $f"; done
done
for d in /usr/lib/varnish/vmods /usr/lib/*/varnish/vmods /usr/local/lib/varnish/vmods; do
  [ -d "$d" ] && for f in "$d"/libvmod_*.so; do [ -e "$f" ] && echo "VMOD $f"; done
done
for u in varnish vcache _hitch nobody; do id -u "$u" >/dev/null 2>&1 && echo "USER $u"; done
true
"""
_probed: dict[str, ImageInfo] = {}


def probe_image(client: docker.DockerClient, image: str) -> ImageInfo:
    """Probe ``image`` in a throw-away container (once per image id, also across runs)."""
    image_id = str(client.images.get(image).id)
    cache_file = _cache_dir() / "docker-images.json"
    if image_id not in _probed:
        _probed.update(_read_probe_cache(cache_file))
    if image_id not in _probed:
        out = client.containers.run(image, ["sh", "-c", _PROBE], entrypoint=[], remove=True, user="0",
                                    labels={LABEL: "1", "cachewright.probe": "1"}, network_mode="none")
        _probed[image_id] = _parse_probe(image, out.decode("utf-8", "replace"))
        _write_probe_cache(cache_file, _probed)
    return replace(_probed[image_id], image=image)


def _parse_probe(image: str, text: str) -> ImageInfo:
    nginx = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    varnish = re.search(r"varnish-(\d+)\.(\d+)\.(\d+)", text)
    mods = re.findall(r"^NGXMOD (\S+)$", text, re.M)
    return ImageInfo(
        image,
        (int(nginx[1]), int(nginx[2]), int(nginx[3])) if nginx else None,
        os.path.dirname(mods[0]) if mods else None,
        tuple(os.path.basename(m) for m in mods),
        (int(varnish[1]), int(varnish[2]), int(varnish[3])) if varnish else None,
        tuple(os.path.basename(m) for m in re.findall(r"^VMOD (\S+)$", text, re.M)),
        tuple(re.findall(r"^USER (\S+)$", text, re.M)))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cachewright"


def _read_probe_cache(path: Path) -> dict[str, ImageInfo]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {key: _info_from_json(info) for key, info in raw.items()}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _info_from_json(raw: dict[str, Any]) -> ImageInfo:
    def version(value: Any) -> tuple[int, int, int] | None:
        return (int(value[0]), int(value[1]), int(value[2])) if value else None

    return ImageInfo(str(raw["image"]), version(raw["nginx_version"]), raw["nginx_modules_dir"],
                     tuple(raw["nginx_modules"]), version(raw["varnish_version"]),
                     tuple(raw["vmods"]), tuple(raw["users"]))


def _write_probe_cache(path: Path, probed: Mapping[str, ImageInfo]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: vars(v) for k, v in probed.items()}), encoding="utf-8")
        tmp.replace(path)


def require_modules(engine: str, info: ImageInfo, files: Mapping[str, OutputFile]) -> None:
    """HarnessError naming each module the compiled files load that ``info``'s image lacks."""
    if engine == "nginx":
        wanted = re.findall(r"^load_module\s+\S*?([^/\s]+\.so);", files["nginx.conf"].text, re.M)
        missing = [m for m in wanted if m not in info.nginx_modules]
        have = info.nginx_modules
    else:
        wanted = re.findall(r"^import\s+(\w+)", files["default.vcl"].text, re.M)
        missing = [m for m in wanted if f"libvmod_{m}.so" not in info.vmods]
        have = info.vmods
    if missing:
        hint = ("the Debian packages " + PACKAGES["nginx"] if engine == "nginx" else "varnish-modules")
        raise HarnessError(
            f"image {info.image} ({engine}) lacks {', '.join(missing)}, which this policy needs "
            f"(image has: {', '.join(have) or 'no modules'}); build the stand-in images with "
            f"harness/images/build-local.sh, or pass an image with {hint} installed")


# --------------------------------------------------------------------------- owners and reaping


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot) from /proc: tells a reused pid apart."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[19]


def owner_labels(run_id: str) -> dict[str, str]:
    """The labels of everything a run creates: who owns it, so a reaper can tell it is dead."""
    pid = os.getpid()
    return {LABEL: "1", RUN_LABEL: run_id, "cachewright.pid": str(pid),
            "cachewright.pid-start": _start_time(pid) or "", "cachewright.boot": _boot_id(),
            "cachewright.host": socket.gethostname()}


def owner_dead(labels: Mapping[str, str]) -> bool:
    """Whether the process that created a labelled object is gone (only judged on this host)."""
    if labels.get("cachewright.host") != socket.gethostname():
        return False
    if labels.get("cachewright.boot") != _boot_id():
        return True
    try:
        pid = int(labels.get("cachewright.pid", ""))
    except ValueError:
        return True
    return _start_time(pid) != labels.get("cachewright.pid-start")


def reap(client: docker.DockerClient) -> list[str]:
    """Remove the containers, networks and temp dirs of earlier runs whose owner died; return
    their run ids."""
    dead: set[str] = set()
    for container in client.containers.list(all=True, filters={"label": [f"{LABEL}=1", RUN_LABEL]}):
        if owner_dead(container.labels):
            dead.add(container.labels[RUN_LABEL])
            _remove_container(container)
    for network in client.networks.list(filters={"label": [f"{LABEL}=1", RUN_LABEL]}):
        labels = network.attrs.get("Labels") or {}
        if owner_dead(labels):
            dead.add(labels[RUN_LABEL])
            _remove_network(network)
    for run_id in dead:
        for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{run_id}-*"):
            _remove_tree(path)
    return sorted(dead)


def _remove_container(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True, v=True)


def _remove_network(network: Network) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        network.remove()


# --------------------------------------------------------------------------- the running stack


@dataclass
class _EngineRun:
    name: str
    containers: list[Container] = field(default_factory=list)


class DockerStack:
    """A ``harness.runtime.api.Stack`` of containers. Also offers ``run_id`` and ``containers``."""

    def __init__(self, run_id: str, origin: OriginEndpoint, ca_file: Path | None) -> None:
        self.run_id = run_id
        self.origin = origin
        self.ca_file = ca_file
        self.endpoints: dict[str, Endpoint] = {}
        self.engines: dict[str, _EngineRun] = {}
        self.origin_container: Container | None = None
        self.client_address = "127.0.0.1"  # the gateway's address once the network exists
        self.distinct_sources = True
        self.outsiders: dict[str, Endpoint] = {}

    def outsider(self, engine: str) -> Endpoint | None:
        """Where requests reach ``engine`` from another address than the harness's own."""
        return self.outsiders.get(engine)

    def _engine(self, engine: str) -> _EngineRun:
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
            text = _container_logs(container, lines)
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
        return all(_status(c) == "running" for c in self._engine(engine).containers)

    def stored(self, engine: str, path: str) -> list[StoredObject]:
        """The engine's own record of objects stored for ``path`` (nginx's cache files copied
        out of the container, Varnish's log read with varnishlog inside it)."""
        container = self._engine(engine).containers[0]
        if engine == "nginx":
            return _nginx_stored(container, path)
        return _varnish_stored(container, path)


def _container_logs(container: Container, lines: int) -> str:
    try:
        raw: bytes = container.logs(tail=lines)
    except docker.errors.APIError:
        return ""
    return raw.decode("utf-8", "replace").rstrip("\n")


def _status(container: Container) -> str:
    try:
        container.reload()
    except docker.errors.NotFound:
        return "removed"
    return str(container.status)


def _nginx_stored(container: Container, path: str) -> list[StoredObject]:
    try:
        chunks, _stat = container.get_archive(f"{CONF}/nginx/cache")
    except docker.errors.NotFound:
        return []
    with tempfile.TemporaryDirectory(prefix="cachewright-cache-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            tar.extractall(tmp, filter="data")
        return nginx_stored(Path(tmp), path)


def _varnish_stored(container: Container, path: str) -> list[StoredObject]:
    argv = ["varnishlog", "-d", "-n", f"{CONF}/varnish/state", "-b", "-g", "vxid",
            "-i", "BereqURL,BereqHeader,TTL,VCL_return"]
    result = container.exec_run(argv, user="0")
    output = result.output if isinstance(result.output, bytes) else b""
    text = output.decode("utf-8", "replace")
    if result.exit_code != 0:
        raise HarnessError(f"varnishlog in {container.name} failed (status {result.exit_code}): "
                           f"{text.strip()[-2000:]}")
    found = [varnish_fetch(block, path) for block in text.split("\n\n")]
    return [stored for stored in found if stored is not None]


# --------------------------------------------------------------------------- the runtime


class DockerRuntime:
    """Starts stacks of containers (``harness.runtime.api.Runtime``, name ``docker``).

    ``images`` overrides the image per role (``nginx``, ``varnish``, ``hitch``); ``origin_image``
    is an image with ``python3`` in which the sample origin runs (its code is copied in at start).
    ``app_image`` runs the user's own app instead of the sample origin (its own entrypoint and
    command, listening on ``app_port``); checks that program the sample origin are then skipped.
    ``network="host"`` runs every container in the host's network (the local runtime's addresses).
    """

    name = "docker"

    def __init__(self, images: dict[str, str] | None = None, origin_image: str | None = None,
                 network: NetworkMode = "private", ready_timeout: float = READY_TIMEOUT,
                 app_image: str | None = None, app_port: int = 8080, configs: Configs = generated,
                 ports: Fixed | None = None) -> None:
        self.configs = configs
        self.ports = dict(ports or {})  # engine -> fixed (http, https) host ports (harness.ports)
        self.app_image = app_image
        self.app_port = app_port
        unknown = sorted(set(images or {}) - set(ROLES[:3]))
        if unknown:
            raise HarnessError(f"unknown image role(s) {', '.join(unknown)} "
                               f"(expected nginx, varnish or hitch)")
        self.images = dict(images or {})
        if origin_image:
            self.images["origin"] = origin_image
        self.network = network
        self.ready_timeout = ready_timeout

    def start(self, policy: Policy, engines: tuple[str, ...],
              origin_url: str | None = None) -> AbstractContextManager[Stack]:
        """Start the origin (unless ``origin_url``) and ``engines``; see ``harness.runtime.api.Runtime``."""
        return self._run(policy, engines, origin_url)

    @contextlib.contextmanager
    def _run(self, policy: Policy, engines: tuple[str, ...],
             origin_url: str | None) -> Iterator[DockerStack]:
        with signals_raise():
            cleanup = contextlib.ExitStack()
            try:
                yield _Launch(self, policy, cleanup).launch(engines, origin_url)
            finally:
                with deferred_signals():
                    cleanup.close()


def connect() -> docker.DockerClient:
    """A client for the Docker engine of the environment, or HarnessError saying why not."""
    try:
        # A fixed API version: with "auto", docker-py asks the daemon for its version while
        # constructing the client, and that request's socket leaks when it fails.
        client = docker.from_env(version=API_VERSION, timeout=120)
    except docker.errors.DockerException as exc:
        raise _unreachable(str(exc)) from exc
    problem = _socket_problem(client)
    if problem is None:
        try:
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
            problem = str(exc)
    if problem is not None:
        client.close()
        raise _unreachable(problem)
    return client


def _socket_problem(client: docker.DockerClient) -> str | None:
    """Why the daemon's Unix socket (if it is one) refuses a connection. Tried with a socket of
    our own: docker-py leaks the socket of a connection that fails (docker/docker-py#3356)."""
    path = getattr(client.api.get_adapter(client.api.base_url), "socket_path", None)
    if path is None:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SOCKET_TIMEOUT)
        try:
            sock.connect(path)
        except OSError as exc:
            return f"cannot connect to {path} ({exc.strerror or exc})"
    return None


def _unreachable(why: str) -> HarnessError:
    return HarnessError(f"no Docker engine answers (DOCKER_HOST="
                        f"{os.environ.get('DOCKER_HOST', 'default socket')}): {why}")


def image_for(client: docker.DockerClient, role: str, override: str | None) -> str:
    """The override, else ``cachewright/<role>:local`` when present, else the official image
    (pulled when missing: ``HarnessError`` with what to do when that fails)."""
    if override is None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(LOCAL_IMAGES[role])
            return LOCAL_IMAGES[role]
    image = override or OFFICIAL_IMAGES[role]
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise HarnessError(f"image {image} ({role}) is not present and could not be pulled "
                               f"({exc.explanation or exc}); build local stand-ins with "
                               f"harness/images/build-local.sh") from exc
    return image


@dataclass
class _Wait:
    """A container that must accept TCP connections on ``port`` (at ``host``) to be ready."""

    engine: str
    container: Container
    host: str
    port: int


class _Launch:
    """One run being started: the client, its labels, its network, its undo steps."""

    def __init__(self, runtime: DockerRuntime, policy: Policy, cleanup: contextlib.ExitStack) -> None:
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
        self.waits: list[_Wait] = []
        self.tls: TlsFiles | None = None

    def launch(self, engines: tuple[str, ...], origin_url: str | None) -> DockerStack:
        engines = tuple(dict.fromkeys(engines))
        for engine in engines:
            if engine not in ENGINES:
                raise HarnessError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
        infos = self._images(engines)
        self._make_network()
        if self.policy.listen.https:
            self.tls = write_tls_files(self._tmp_dir() / "tls", self.policy.listen.hosts)
        origin, origin_host, origin_port = self._origin(origin_url)
        stack = DockerStack(self.run_id, origin, self.tls.ca if self.tls else None)
        if not self.host_mode and self.gateway:
            stack.client_address, stack.distinct_sources = self.gateway, False
        for engine in engines:
            stack.engines[engine] = _EngineRun(engine)
            if engine == "nginx":
                self._nginx(stack, infos["nginx"], origin_host, origin_port)
            else:
                self._varnish(stack, infos, origin_host, origin_port)
        self._await(stack, time.monotonic() + self.runtime.ready_timeout)
        if not self.host_mode and not origin_url:
            for engine in engines:
                self._relay(stack, engine)
        return stack

    def _relay(self, stack: DockerStack, engine: str) -> None:
        """A TCP relay inside the network, published on loopback: requests sent through it reach
        the engine from another container's address (a client outside purge.allow)."""
        targets = self.relay_targets.get(engine, {})
        if not targets:
            return
        listen = {"http": RELAY_PORTS[0], "https": RELAY_PORTS[1]}
        args = [f"{listen[scheme]}:{name}:{port}" for scheme, (name, port) in targets.items()]
        image = image_for(self.client, "origin", self.runtime.images.get("origin"))
        container = self._container(engine, f"relay-{engine}", image,
                                    ["python3", "-c", RELAY_CODE, *args], {},
                                    [listen[s] for s in targets], same_port=False)
        for scheme in targets:
            self._wait_tcp(_Wait(engine, container, self._address(container), listen[scheme]),
                           time.monotonic() + 20)
        ports = {s: self._published(container, listen[s]) for s in targets}
        stack.outsiders[engine] = Endpoint(engine, "127.0.0.1", ports.get("http"), ports.get("https"))

    # ----- set-up

    def _images(self, engines: tuple[str, ...]) -> dict[str, ImageInfo]:
        roles = [*engines, *(["hitch"] if "varnish" in engines and self.policy.listen.https else [])]
        return {role: probe_image(self.client, image_for(self.client, role, self.runtime.images.get(role)))
                for role in roles}

    def _tmp_dir(self) -> Path:
        with deferred_signals():
            path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.run_id}-"))
            self.cleanup.callback(_remove_tree, path)
        return path

    def _make_network(self) -> None:
        if self.host_mode:
            return
        with deferred_signals():
            self.network = self.client.networks.create(f"cachewright-{self.run_id}", driver="bridge",
                                                       labels=self.labels, check_duplicate=True)
            self.cleanup.callback(_remove_network, self.network)
        self.network.reload()
        config = (self.network.attrs.get("IPAM") or {}).get("Config") or [{}]
        self.gateway = config[0].get("Gateway")

    def _container(self, engine: str, role: str, image: str, command: list[str],
                   files: Mapping[str, tuple[bytes | None, int]], ports: list[int],
                   same_port: bool = True, **kw: Any) -> Container:
        """Create (files copied in), register its removal, start; ``ports`` published on
        127.0.0.1 (as the same port numbers unless ``same_port`` is false: then random ones)."""
        name = f"cachewright-{self.run_id}-{role}"
        net: dict[str, Any] = ({"network_mode": "host"} if self.host_mode else
                               {"network": f"cachewright-{self.run_id}",
                                "ports": {f"{p}/tcp": ("127.0.0.1", p if same_port else None)
                                          for p in ports}})
        with deferred_signals():
            container = self.client.containers.create(
                image, command, name=name, labels={**self.labels, "cachewright.role": role},
                entrypoint=[], user="0", detach=True, **net, **kw)
            self.cleanup.callback(_remove_container, container)
        if files:
            container.put_archive("/", _tar(files))
        container.start()
        container.reload()
        return container

    def _published(self, container: Container, port: int) -> int:
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

    def _address(self, container: Container) -> str:
        """Where the host reaches the container directly (for readiness): its network address."""
        if self.host_mode:
            return "127.0.0.1"
        return str(container.attrs["NetworkSettings"]["Networks"][f"cachewright-{self.run_id}"]["IPAddress"])

    # ----- the origin

    def _origin(self, origin_url: str | None) -> tuple[OriginEndpoint, str, int]:
        if origin_url:
            return self._user_origin(origin_url)
        if self.runtime.app_image:
            return self._app_origin(self.runtime.app_image, self.runtime.app_port)
        image = image_for(self.client, "origin", self.runtime.images.get("origin"))
        data, control = (ORIGIN_DATA, ORIGIN_CONTROL) if not self.host_mode else tuple(free_ports(2))
        code = (Path(__file__).parent / "origin.py").read_bytes()
        files = {f"{ORIGIN_DIR}/cachewright/harness/__init__.py": (b"", 0o644),
                 f"{ORIGIN_DIR}/cachewright/harness/origin.py": (code, 0o644)}
        command = ["python3", "-m", "cachewright.harness.origin",
                   "--host", "0.0.0.0" if not self.host_mode else "127.0.0.1",
                   "--data-port", str(data), "--control-port", str(control)]
        container = self._container("origin", "origin", image, command, files, [data, control],
                                    same_port=False, working_dir=ORIGIN_DIR, environment={"PYTHONPATH": ORIGIN_DIR})
        self._wait_tcp(_Wait("origin", container, self._address(container), data), time.monotonic() + 30)
        self._wait_tcp(_Wait("origin", container, self._address(container), control), time.monotonic() + 30)
        urls = (f"http://127.0.0.1:{self._published(container, p)}" for p in (data, control))
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
            self.cleanup.callback(_remove_container, container)
        container.start()
        container.reload()
        self._wait_tcp(_Wait("origin", container, self._address(container), port),
                       time.monotonic() + 60)
        host = "127.0.0.1" if self.host_mode else str(container.name)
        return OriginEndpoint(f"http://127.0.0.1:{self._published(container, port)}", ""), host, port

    def _user_origin(self, origin_url: str) -> tuple[OriginEndpoint, str, int]:
        """The user's app: a loopback host becomes the Docker host (``host.docker.internal``)."""
        parts = urlsplit(origin_url)
        if parts.scheme != "http" or not parts.hostname:
            raise HarnessError(f"origin URL {origin_url!r}: the engines proxy to http://HOST[:PORT]")
        host = parts.hostname
        if not self.host_mode and host in ("localhost", "127.0.0.1", "::1"):
            host = "host.docker.internal"
        return OriginEndpoint(origin_url, ""), host, parts.port or 80

    # ----- engines

    def _adapted(self) -> Policy:
        """In the private network the host's requests come from the gateway: where ``purge.allow``
        allows loopback (the host running the checks), allow the gateway too."""
        purge = self.policy.purge
        if self.host_mode or purge is None or self.gateway is None:
            return self.policy
        loopback = ip_address("127.0.0.1")
        if not any(loopback in ip_network(n, strict=False) for n in purge.allow):
            return self.policy
        return replace(self.policy, purge=replace(purge, allow=(*purge.allow, f"{self.gateway}/32")))

    def _ports(self, engine: str) -> tuple[int, int, int]:
        """http, https and Varnish PROXY ports. http and https are free host ports (or the fixed
        ones asked for), used inside the container too and published as themselves: an engine's
        own port is what it writes into redirects (``Location: https://host:PORT/``), so it must
        be the port clients use."""
        if self.host_mode:
            http, https, proxy = engine_ports(self.runtime.ports, engine, 1)
            return http, https, proxy
        http, https = engine_ports(self.runtime.ports, engine)
        return http, https, PROXY_PORT

    def _compile(self, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
        return self.runtime.configs(self._adapted(), engine, place, options)

    def _place(self, http: int, https: int, origin_host: str, origin_port: int) -> Placement:
        cert, key = (f"{CONF}/tls/server.crt", f"{CONF}/tls/server.key") if self.tls else ("", "")
        address = "127.0.0.1" if self.host_mode else "0.0.0.0"
        return Placement(address, http, https, origin_host, origin_port, cert, key)

    def _tls_files(self) -> dict[str, tuple[bytes | None, int]]:
        if self.tls is None:
            return {}
        return {f"{CONF}/tls/server.crt": (self.tls.cert.read_bytes(), 0o644),
                f"{CONF}/tls/server.key": (self.tls.key.read_bytes(), 0o644)}

    def _extra(self) -> dict[str, Any]:
        return {} if self.host_mode else {"extra_hosts": {"host.docker.internal": "host-gateway"}}

    def _nginx(self, stack: DockerStack, info: ImageInfo, origin_host: str, origin_port: int) -> None:
        http, https, _ = self._ports("nginx")
        options = Options(nginx_version=info.nginx_version or Options().nginx_version,
                          nginx_modules_dir=info.nginx_modules_dir or Options().nginx_modules_dir,
                          varnish_version=Options().varnish_version)
        files = self._compile("nginx", self._place(http, https, origin_host, origin_port), options)
        require_modules("nginx", info, files)
        prefix = f"{CONF}/nginx"
        tree: dict[str, tuple[bytes | None, int]] = {
            f"{prefix}/{name}": (out.text.encode(), out.mode) for name, out in files.items()}
        tree.update({f"{prefix}/{d}": (None, 0o755) for d in ("logs", "cache", "tmp")})
        tree.update(self._tls_files())
        command = ["nginx", "-p", f"{prefix}/", "-c", f"{prefix}/nginx.conf", "-e", "stderr",
                   "-g", "daemon off; error_log stderr warn;"]
        container = self._container("nginx", "nginx", info.image, command, tree,
                                    _listeners(self.policy, http, https), **self._extra())
        stack.engines["nginx"].containers.append(container)
        self._endpoint(stack, "nginx", container, container, http, https)

    def _varnish(self, stack: DockerStack, infos: Mapping[str, ImageInfo], origin_host: str,
                 origin_port: int) -> None:
        info = infos["varnish"]
        http, https, proxy = self._ports("varnish")
        options = Options(varnish_version=info.varnish_version or Options().varnish_version)
        files = self._compile("varnish", self._place(http, https, origin_host, origin_port), options)
        require_modules("varnish", info, files)
        prefix = f"{CONF}/varnish"
        args = varnishd_args(files["varnishd.args"].text, f"0.0.0.0:{proxy}" if not self.host_mode
                             else f"127.0.0.1:{proxy}")
        jail = "unix,user=varnish,workuser=vcache" if {"varnish", "vcache"} <= set(info.users) else "none"
        admin = ADMIN_PORT if not self.host_mode else free_ports(1)[0]
        command = ["varnishd", "-F", "-n", f"{prefix}/state", "-f", f"{prefix}/default.vcl",
                   "-T", f"127.0.0.1:{admin}", "-j", jail, *(a for line in args for a in line.split(" ", 1))]
        tree = {f"{prefix}/default.vcl": (files["default.vcl"].text.encode(), 0o644),
                f"{prefix}/varnishd.args": ("\n".join(args).encode() + b"\n", 0o644)}
        # The workdir on tmpfs, as Varnish's platform notes ask (see harness.local.varnish_workdir);
        # "exec": varnishd loads the compiled VCL from it.
        container = self._container("varnish", "varnish", info.image, command, tree,
                                    _listeners(self.policy, http, 0), **self._extra(),
                                    tmpfs={f"{prefix}/state": "exec,mode=0755"})
        stack.engines["varnish"].containers.append(container)
        front = container
        if "hitch.conf" in files:
            front = self._hitch(stack, infos["hitch"], files["hitch.conf"].text, container, proxy, https)
            self.waits.append(_Wait("varnish", container, self._address(container), proxy))
        self._endpoint(stack, "varnish", container, front, http, https)

    def _hitch(self, stack: DockerStack, info: ImageInfo, compiled: str, varnish: Container,
               proxy: int, https: int) -> Container:
        """hitch in its own container, sending PROXY v2 to the varnish container's ``proxy``."""
        backend = "127.0.0.1" if self.host_mode else str(varnish.name)
        text = re.sub(r'(?m)^backend = ".*"$', f'backend = "[{backend}]:{proxy}"', compiled)
        text += f'# added by the cachewright docker runtime\nocsp-dir = "{CONF}/hitch/ocsp"\n'
        if "_hitch" in info.users:
            text += 'user = "_hitch"\ngroup = "_hitch"\n'
        tree = {f"{CONF}/hitch/hitch.conf": (text.encode(), 0o644), f"{CONF}/hitch/ocsp": (None, 0o777),
                **self._tls_files()}
        command = ["hitch", f"--config={CONF}/hitch/hitch.conf"]
        container = self._container("varnish", "hitch", info.image, command, tree, [https])
        stack.engines["varnish"].containers.append(container)
        return container

    def _endpoint(self, stack: DockerStack, engine: str, plain: Container, tls: Container,
                  http: int, https: int) -> None:
        listen = self.policy.listen
        if listen.http:
            self.waits.append(_Wait(engine, plain, self._address(plain), http))
        if listen.https:
            self.waits.append(_Wait(engine, tls, self._address(tls), https))
        targets = self.relay_targets.setdefault(engine, {})
        if listen.http:
            targets["http"] = (str(plain.name), http)
        if listen.https:
            targets["https"] = (str(tls.name), https)
        stack.endpoints[engine] = Endpoint(
            engine, "127.0.0.1", self._published(plain, http) if listen.http else None,
            self._published(tls, https) if listen.https else None)

    # ----- readiness

    def _await(self, stack: DockerStack, deadline: float) -> None:
        for wait in self.waits:
            self._wait_tcp(wait, deadline, stack)

    def _wait_tcp(self, wait: _Wait, deadline: float, stack: DockerStack | None = None) -> None:
        """Poll the container's own address (Docker's port proxy accepts before the engine does)."""
        image = wait.container.attrs.get("Config", {}).get("Image", "?")
        what = f"{wait.container.name} ({image}) to listen on {wait.host}:{wait.port}"
        while True:
            status = _status(wait.container)
            if status != "running":
                raise HarnessError(f"gave up waiting for {what}: the container is {status}\n"
                                   f"{self._logs(wait, stack)}")
            if accepts(wait.host, wait.port):
                return
            if time.monotonic() >= deadline:
                raise HarnessError(f"timed out waiting for {what}\n{self._logs(wait, stack)}")
            time.sleep(POLL)

    def _logs(self, wait: _Wait, stack: DockerStack | None) -> str:
        if stack is not None and wait.engine in stack.engines:
            return stack.logs(wait.engine)
        return f"--- container {wait.container.name}\n{_container_logs(wait.container, LOG_LINES)}"


def _listeners(policy: Policy, http: int, https: int) -> list[int]:
    return ([http] if policy.listen.http else []) + ([https] if policy.listen.https and https else [])


def _tar(files: Mapping[str, tuple[bytes | None, int]]) -> bytes:
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


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
