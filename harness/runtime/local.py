"""The ``local`` runtime: ``nginx``, ``varnishd`` and ``hitch`` from PATH as child processes on
free loopback ports, in one temp dir per run, in front of the sample origin.

    with LocalRuntime().start(policy, ("nginx", "varnish")) as stack:
        stack.endpoints["varnish"].url()          # http://127.0.0.1:41234
        stack.stored("nginx", "/static/a.css")    # the engine's own record of what it stored

Layout of a run (``cachewright-run-XXXX``, mode 0755 because the engines drop privileges)::

    tls/            ca.pem, server.crt, server.key (when the policy serves HTTPS)
    nginx/          nginx.conf, ffdhe2048.pem, logs/ (error.log, stderr.log), cache/, tmp/
    varnish/        default.vcl, varnishd.args (as run), varnishd.log, state/ (-n, unless on
                    tmpfs: see ``varnish_workdir``), hitch.conf (as run), hitch.log, hitch-ocsp/
    cachewright-run.json   the marker: the owner (pid, start time, boot, host), the workdir, the
                    binaries, the process groups started and the watchdog (``harness.runtime.reaper``)

Every engine process leads its own process group; stopping signals those groups only (SIGTERM,
then SIGKILL), on success, on failure, on Ctrl-C and on SIGTERM. When the harness dies without
cleaning up (SIGKILL), the run's watchdog kills the groups and removes the directories, and the
next run reaps any run whose owner is gone (``harness.runtime.reaper``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile

from .. import ui
from ..engines import ENGINES, PACKAGES, Engine, StoredObject, hitch, nginx, varnish
from ..engines import binaries as engine_binaries
from ..origin import OriginConfig, OriginServer
from .api import Endpoint, HarnessError, OriginEndpoint, Stack
from .ports import Fixed, engine_ports
from .prepare import Configs, Placement, generated
from .procs import Proc, deferred_signals, signals_raise, spawn, stop_all, tail, wait_listening
from .reaper import RUN_PREFIX, Marker, Owner, Watchdog, reap, remove_run
from .tlsfiles import TlsFiles, write_tls_files

HOST = "127.0.0.1"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
LOG_LINES = 40


def require(binary: str) -> str:
    """The path of ``binary`` on PATH, or HarnessError naming the Debian package to install."""
    found = shutil.which(binary)
    if found is None:
        raise HarnessError(f"{binary} is not on PATH: the local runtime runs the real engine "
                           f"(on Debian: apt-get install {PACKAGES[binary]})")
    return found


def _binaries(policy: Policy, engines: tuple[str, ...]) -> list[str]:
    """The binaries ``engines`` need for ``policy``, in start order."""
    needed: list[str] = []
    for engine in engines:
        if engine not in ENGINES:
            raise HarnessError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
        needed += engine_binaries(engine, policy)
    return needed


# --------------------------------------------------------------------------- the running stack


@dataclass
class EngineRun:
    """One engine of a run: its directory, its processes, its log files (in start order) and
    fallback logs shown only when those are empty (nginx prints its errors to both)."""

    name: str
    directory: Path
    procs: list[Proc] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    fallback_logs: list[Path] = field(default_factory=list)


class LocalStack:
    """A ``harness.runtime.api.Stack`` of local processes. Also offers ``run_dir`` and ``pids``."""

    def __init__(self, run_dir: Path, origin: OriginEndpoint, ca_file: Path | None,
                 marker: Marker | None = None) -> None:
        self.run_dir = run_dir
        self.marker = marker
        self.origin = origin
        self.ca_file = ca_file
        self.endpoints: dict[str, Endpoint] = {}
        self.engines: dict[str, EngineRun] = {}
        self.client_address = HOST
        self.distinct_sources = True

    def outsider(self, engine: str) -> Endpoint | None:
        """None: locally, another loopback source address is another client."""
        return None

    def _engine(self, engine: str) -> EngineRun:
        if engine not in self.engines:
            raise HarnessError(f"engine {engine!r} is not running in this stack "
                               f"(running: {', '.join(self.engines) or 'none'})")
        return self.engines[engine]

    def logs(self, engine: str, lines: int = LOG_LINES) -> str:
        """The last ``lines`` lines of each of the engine's logs, each under its file name."""
        run = self._engine(engine)
        shown = self._tails(run.logs, lines) or self._tails(run.fallback_logs, lines)
        return shown or f"--- no log output from {engine}"

    def _tails(self, paths: list[Path], lines: int) -> str:
        parts = []
        for path in paths:
            text = tail(path, lines)
            if text:
                parts.append(f"--- {path.relative_to(self.run_dir)} (last {lines} lines)\n{text}")
        return "\n".join(parts)

    def alive(self, engine: str) -> bool:
        """Whether every process the harness started for ``engine`` is still running."""
        return all(proc.alive() for proc in self._engine(engine).procs)

    def pids(self, engine: str) -> list[int]:
        """Every live process of the engine (the leaders the harness started and their children)."""
        return sorted(pid for proc in self._engine(engine).procs for pid in proc.members())

    def stored(self, engine: str, path: str) -> list[StoredObject]:
        """The engine's own record of objects stored for request path ``path``: nginx's cache
        files (TTL = valid_sec - date), Varnish's shared-memory log (a fetch's last ``TTL`` record)."""
        run = self._engine(engine)
        if engine == "nginx":
            return nginx.stored(run.directory / "cache", path)
        return varnish_stored(varnish_workdir(self.run_dir), path)

    def record(self, proc: Proc) -> None:
        """Record the process group ``proc`` leads in the run's marker (for the watchdog and the
        reaper), as soon as it is started."""
        if self.marker is not None:
            self.marker.add(self.run_dir, proc.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every process of every engine (all at once: SIGTERM, wait, SIGKILL)."""
        stop_all([proc for run in self.engines.values() for proc in run.procs], timeout)


# --------------------------------------------------------------------------- the runtime


class LocalRuntime:
    """Starts stacks of local engine processes (``harness.runtime.api.Runtime``, name ``local``)."""

    name = "local"

    def __init__(self, ready_timeout: float = READY_TIMEOUT, stop_timeout: float = STOP_TIMEOUT,
                 configs: Configs = generated, ports: Fixed | None = None) -> None:
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.configs = configs
        self.ports = dict(ports or {})  # engine -> fixed (http, https) listen ports (runtime.ports)

    def start(self, policy: Policy, engines: tuple[str, ...],
              origin_url: str | None = None) -> AbstractContextManager[Stack]:
        """Start the origin (unless ``origin_url``) and ``engines``; see ``harness.runtime.api.Runtime``."""
        return self._run(policy, engines, origin_url)

    @contextlib.contextmanager
    def _run(self, policy: Policy, engines: tuple[str, ...], origin_url: str | None) -> Iterator[LocalStack]:
        with signals_raise():
            cleanup = contextlib.ExitStack()
            try:
                yield self._launch_once_more(cleanup, policy, engines, origin_url)
            finally:
                with deferred_signals():
                    cleanup.close()

    def _launch_once_more(self, cleanup: contextlib.ExitStack, policy: Policy, engines: tuple[str, ...],
                          origin_url: str | None) -> LocalStack:
        """``_launch``, and once more from scratch when an engine could not listen on a port
        ``free_ports`` chose: another process may take it before the engine binds it (seen in CI:
        varnishd's ``-T`` port). Fixed ports (``serve --port``) are never retried."""
        try:
            return self._launch_into(cleanup, policy, engines, origin_url)
        except HarnessError as exc:
            if self.ports or not port_taken(str(exc)):
                raise
            ui.detail(f"a listener port was taken before the engine bound it; starting again: {exc}")
        return self._launch_into(cleanup, policy, engines, origin_url)

    def _launch_into(self, cleanup: contextlib.ExitStack, policy: Policy, engines: tuple[str, ...],
                     origin_url: str | None) -> LocalStack:
        """``_launch`` with its own undo steps: undone at once when it fails, else handed to
        ``cleanup``."""
        attempt = contextlib.ExitStack()
        try:
            stack = self._launch(attempt, policy, engines, origin_url)
        except BaseException:
            with deferred_signals():
                attempt.close()
            raise
        cleanup.enter_context(attempt)
        return stack

    def _launch(self, cleanup: contextlib.ExitStack, policy: Policy, engines: tuple[str, ...],
                origin_url: str | None) -> LocalStack:
        """Start everything, registering each undo step on ``cleanup`` as soon as it is needed."""
        engines = tuple(dict.fromkeys(engines))
        binaries = {name: require(name) for name in _binaries(policy, engines)}
        for left in reap():  # what runs killed earlier left (their watchdogs died with them)
            ui.detail(f"reaped {left}: its harness was killed and its watchdog with it")
        run_dir, marker = make_run_dir(cleanup, list(binaries.values()))
        origin, origin_host, origin_port = cleanup.enter_context(sample_origin(origin_url))
        tls = write_tls_files(run_dir / "tls", policy.listen.hosts) if policy.listen.https else None
        stack = LocalStack(run_dir, origin, tls.ca if tls else None, marker)
        cleanup.callback(stack.stop, self.stop_timeout)
        ctx = _Context(policy, binaries, tls, origin_host, origin_port, compile_options(binaries), self.configs,
                       self.ports)
        waits = [wait for engine in engines for wait in _START[engine](stack, ctx)]
        _await_listeners(stack, waits, time.monotonic() + self.ready_timeout)
        return stack


#: what nginx, varnishd and hitch say when a listening port is taken
PORT_TAKEN = ("Address already in use", "could not be listened on")


def port_taken(message: str) -> bool:
    """Whether an engine's start failure (its log tail included) says a port was taken."""
    return any(sign in message for sign in PORT_TAKEN)


def make_run_dir(cleanup: contextlib.ExitStack, binaries: list[str]) -> tuple[Path, Marker]:
    """A fresh ``cachewright-run-*`` temp dir, mode 0755 (the engines drop privileges), with its
    marker naming this process as the owner, Varnish's workdir where it is not inside it, and
    the run's watchdog. The marker is written first, so a run killed at any moment after leaves
    a directory the next run can tell is cachewright's and dead."""
    with deferred_signals():  # no Ctrl-C between making them and registering their removal
        run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
        workdir = varnish_workdir(run_dir)
        marker = Marker(Owner.current(), str(workdir), [os.path.realpath(b) for b in binaries])
        marker.save(run_dir)
        watchdog = Watchdog(run_dir)
        cleanup.callback(_close_run, run_dir, workdir, watchdog)
        if not workdir.is_relative_to(run_dir):
            workdir.mkdir(mode=0o755)  # fails if it exists: the name is the fresh run dir's
    marker.watchdog = watchdog.pid
    marker.save(run_dir)
    run_dir.chmod(0o755)
    return run_dir, marker


def _close_run(run_dir: Path, workdir: Path, watchdog: Watchdog) -> None:
    """Remove the run's directories (marker last), then release the watchdog: it finds nothing
    left to do, unless this removal was cut short."""
    try:
        remove_run(run_dir, workdir)
    finally:
        watchdog.close()


#: a tmpfs for Varnish's workdir, where the machine has one that allows executables
TMPFS = Path("/dev/shm")


def varnish_workdir(run_dir: Path) -> Path:
    """varnishd's ``-n`` for the run in ``run_dir``: ``/dev/shm/<run dir's name>-varnish`` where
    /dev/shm is a writable tmpfs mounted without noexec (varnishd loads the compiled VCL from
    it), else ``run_dir/varnish/state``. Varnish's platform notes ask for a tmpfs workdir on
    Linux: its log is a mapped file, and a disk file system's write throttling stalls the
    workers that write it (here, an instance with its workdir on ext4 took 6-10 % more CPU per
    hit than an identical one beside it)."""
    return TMPFS / f"{run_dir.name}-varnish" if _tmpfs_usable() else run_dir / "varnish" / "state"


@functools.cache
def _tmpfs_usable() -> bool:
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == str(TMPFS) and fields[2] == "tmpfs":
            return "noexec" not in fields[3].split(",") and os.access(TMPFS, os.W_OK | os.X_OK)
    return False


def _await_listeners(stack: LocalStack, waits: list[_Wait], deadline: float) -> None:
    """Every awaited listener accepts connections before ``deadline`` (or HarnessError + logs)."""
    for engine, proc, port in waits:
        wait_listening(proc, HOST, port, deadline, functools.partial(stack.logs, engine))


@contextlib.contextmanager
def sample_origin(origin_url: str | None) -> Iterator[tuple[OriginEndpoint, str, int]]:
    """The sample origin in-process, or the user's at ``origin_url`` (no control port then)."""
    if origin_url:
        parts = urlsplit(origin_url)
        if parts.scheme != "http" or not parts.hostname:
            raise HarnessError(f"origin URL {origin_url!r}: the engines proxy to http://HOST[:PORT]")
        yield OriginEndpoint(origin_url, ""), parts.hostname, parts.port or 80
        return
    with OriginServer(OriginConfig(host=HOST)) as server:
        yield OriginEndpoint(server.data_url, server.control_url), HOST, server.data_port


def _version(binary: str, engine: Engine) -> tuple[int, int, int] | None:
    """The version of an engine's binary, from its version output (either stream)."""
    argv = [binary, engine.VERSION_FLAG]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return engine.version(result.stdout + result.stderr)


def compile_options(binaries: dict[str, str]) -> Options:
    """Compile options for the engine versions installed here (defaults where unknown)."""
    options = Options()
    nginx_version = _version(binaries["nginx"], nginx) if "nginx" in binaries else None
    varnish_version = _version(binaries["varnishd"], varnish) if "varnishd" in binaries else None
    return Options(nginx_version=nginx_version or options.nginx_version,
                   nginx_modules_dir=options.nginx_modules_dir,
                   varnish_version=varnish_version or options.varnish_version)


# --------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class _Context:
    """What every engine launcher needs to know about the run."""

    policy: Policy
    binaries: dict[str, str]
    tls: TlsFiles | None
    origin_host: str
    origin_port: int
    options: Options
    configs: Configs
    ports: Fixed

    def place(self, http_port: int, https_port: int) -> Placement:
        cert, key = (str(self.tls.cert), str(self.tls.key)) if self.tls else ("", "")
        return Placement(HOST, http_port, https_port, self.origin_host, self.origin_port, cert, key)

    def compile(self, engine: str, place: Placement) -> dict[str, OutputFile]:
        """The engine's files for the adapted policy, by base name."""
        return self.configs(self.policy, engine, place, self.options)


# (engine, leader process, port) that must accept connections before the stack is ready
_Wait = tuple[str, Proc, int]


def _engine_dir(stack: LocalStack, engine: str, *subdirs: str) -> EngineRun:
    directory = stack.run_dir / engine
    for sub in ("", *subdirs):
        (directory / sub).mkdir(mode=0o755, exist_ok=True)
    run = EngineRun(engine, directory)
    stack.engines[engine] = run
    return run


def write_file(directory: Path, name: str, text: str, mode: int = 0o644) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _endpoint(engine: str, policy: Policy, http_port: int, https_port: int) -> Endpoint:
    return Endpoint(engine, HOST, http_port if policy.listen.http else None,
                    https_port if policy.listen.https else None)


def _listeners(policy: Policy, http_port: int, https_port: int) -> list[int]:
    return ([http_port] if policy.listen.http else []) + ([https_port] if policy.listen.https else [])


def _start_nginx(stack: LocalStack, ctx: _Context) -> list[_Wait]:
    """nginx in the foreground with the run's prefix; its workers drop to ``nobody`` as root."""
    run = _engine_dir(stack, "nginx", *nginx.DIRECTORIES)
    http_port, https_port = engine_ports(ctx.ports, "nginx")
    for name, out in ctx.compile("nginx", ctx.place(http_port, https_port)).items():
        write_file(run.directory, name, out.text, out.mode)
    logs = run.directory / "logs"
    run.logs.append(logs / "error.log")
    run.fallback_logs.append(logs / "stderr.log")
    argv = nginx.argv(ctx.binaries["nginx"], f"{run.directory}/", str(logs / "error.log"))
    proc = spawn("nginx", argv, logs / "stderr.log", run.directory, run.procs, stack.record)
    stack.endpoints["nginx"] = _endpoint("nginx", ctx.policy, http_port, https_port)
    return [("nginx", proc, port) for port in _listeners(ctx.policy, http_port, https_port)]


def _start_varnish(stack: LocalStack, ctx: _Context) -> list[_Wait]:
    """varnishd in the foreground (``-F``), and hitch in front of its PROXY listener for HTTPS."""
    run = _engine_dir(stack, "varnish")
    http_port, https_port, proxy_port, admin_port = engine_ports(ctx.ports, "varnish", 2)
    files = ctx.compile("varnish", ctx.place(http_port, https_port))
    vcl = write_file(run.directory, varnish.VCL, files[varnish.VCL].text)
    args = varnish.args(files[varnish.ARGS].text, f"{HOST}:{proxy_port}")
    write_file(run.directory, varnish.ARGS, "\n".join(args) + "\n")
    argv = varnish.argv(ctx.binaries["varnishd"], str(varnish_workdir(stack.run_dir)), str(vcl),
                        f"{HOST}:{admin_port}", varnish.jail(os.geteuid() == 0), args)
    run.logs.append(run.directory / "varnishd.log")
    varnishd = spawn("varnishd", argv, run.logs[-1], run.directory, run.procs, stack.record)
    waits = [("varnish", varnishd, port) for port in _listeners(ctx.policy, http_port, proxy_port)]
    stack.endpoints["varnish"] = _endpoint("varnish", ctx.policy, http_port, https_port)
    if hitch.CONF in files:
        waits.append(("varnish", _start_hitch(stack, run, ctx, files[hitch.CONF].text, proxy_port), https_port))
    return waits


def _start_hitch(stack: LocalStack, run: EngineRun, ctx: _Context, compiled: str, proxy_port: int) -> Proc:
    ocsp = run.directory / "hitch-ocsp"
    ocsp.mkdir(mode=0o755)
    if os.geteuid() == 0:
        shutil.chown(ocsp, hitch.USER, hitch.USER)
    text = hitch.conf(compiled, HOST, proxy_port, str(ocsp), "local", drop=os.geteuid() == 0)
    conf = write_file(run.directory, hitch.CONF, text)
    run.logs.append(run.directory / "hitch.log")
    return spawn("hitch", hitch.argv(ctx.binaries["hitch"], str(conf)), run.logs[-1], run.directory,
                 run.procs, stack.record)


_START = {"nginx": _start_nginx, "varnish": _start_varnish}


def varnish_stored(workdir: Path, path: str) -> list[StoredObject]:
    """Objects Varnish stored for ``path``, read with varnishlog from its shared-memory log."""
    return varnish.stored_in(varnish_log(workdir), path)


def varnish_log(workdir: Path) -> str:
    """The backend transactions in Varnish's shared-memory log (what ``stored_in`` reads)."""
    result = subprocess.run(varnish.varnishlog_argv(require("varnishlog"), str(workdir)),
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise HarnessError(f"varnishlog failed (status {result.returncode}): {result.stderr.strip()}")
    return result.stdout
