"""``DockerRuntime``: starts stacks of containers, one private network per run, and always
removes them (success, failure, Ctrl-C, SIGTERM; ``reaper`` removes what a killed run left)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager

from cachewright.generator.model import Policy

from ...engines import ENGINES
from ..api import HarnessError, Stack
from ..ports import Fixed
from ..prepare import Configs, generated
from ..procs import deferred_signals, signals_raise
from ..tlsfiles import write_tls_files
from .images import ROLES, ImageInfo, image_for, probe_image
from .launch import Launch, NetworkMode
from .stack import DockerStack, EngineRun
from .start import start_nginx, start_relay, start_varnish

READY_TIMEOUT = 30.0


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
        self.ports: Fixed = dict(ports or {})  # engine -> fixed (http, https) host ports (runtime.ports)
        self.app_image = app_image
        self.app_port = app_port
        unknown = sorted(set(images or {}) - set(ROLES[:3]))
        if unknown:
            raise HarnessError(f"unknown image role(s) {', '.join(unknown)} "
                               f"(expected nginx, varnish or hitch)")
        self.images = dict(images or {})
        if origin_image:
            self.images["origin"] = origin_image
        self.network: NetworkMode = network
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
                yield launch(Launch(self, policy, cleanup), engines, origin_url)
            finally:
                with deferred_signals():
                    cleanup.close()


def launch(run: Launch, engines: tuple[str, ...], origin_url: str | None) -> DockerStack:
    """Start everything of one run, registering each undo step on the run's cleanup as soon as
    it is needed: images probed, the network, TLS files, the origin, the engines, the relays."""
    engines = tuple(dict.fromkeys(engines))
    for engine in engines:
        if engine not in ENGINES:
            raise HarnessError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
    infos = _images(run, engines)
    run.make_network()
    if run.policy.listen.https:
        run.tls = write_tls_files(run.tmp_dir() / "tls", run.policy.listen.hosts)
    origin, origin_host, origin_port = run.origin(origin_url)
    stack = DockerStack(run.run_id, origin, run.tls.ca if run.tls else None)
    if not run.host_mode and run.gateway:
        stack.client_address, stack.distinct_sources = run.gateway, False
    for engine in engines:
        stack.engines[engine] = EngineRun(engine)
        if engine == "nginx":
            start_nginx(run, stack, infos["nginx"], origin_host, origin_port)
        else:
            start_varnish(run, stack, infos, origin_host, origin_port)
    deadline = time.monotonic() + run.runtime.ready_timeout
    for wait in run.waits:
        run.wait_tcp(wait, deadline, stack)
    if not run.host_mode and not origin_url:
        for engine in engines:
            start_relay(run, stack, engine)
    return stack


def _images(run: Launch, engines: tuple[str, ...]) -> dict[str, ImageInfo]:
    """Each role's image, probed: the engines', and hitch's where Varnish serves HTTPS."""
    roles = [*engines, *(["hitch"] if "varnish" in engines and run.policy.listen.https else [])]
    return {role: probe_image(run.client, image_for(run.client, role, run.runtime.images.get(role)))
            for role in roles}
