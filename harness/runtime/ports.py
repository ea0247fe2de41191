"""Which loopback ports a run's engines listen on.

By default every engine gets free ports (``harness.runtime.procs.free_ports``). ``cachewright serve``
asks for fixed ones: the policy's own ``listen.http.port`` / ``listen.https.port``, or
``--port`` / ``--https-port``. They go to the first engine served; the runtimes draw every other
port as before (``engine_ports``).

A port the policy names but that cannot be used here (in use, or privileged while not root) is
replaced by a free one, with a note saying so: the policy names its production port (80, 443),
and ``serve`` is a tool for trying the policy out. A port given on the command line that cannot
be used is an error: the user asked for exactly that port.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cachewright.generator.model import Policy

from .api import HarnessError
from .procs import free_ports

HOST = "127.0.0.1"
#: engine -> (http, https) listen ports; 0: any free port
Fixed = Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class PortChoice:
    """The ports asked for (``fixed``, for ``LocalRuntime`` / ``DockerRuntime``) and the notes
    that say what was not honoured and why."""

    fixed: dict[str, tuple[int, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def port_problem(port: int, host: str = HOST) -> str | None:
    """Why ``port`` cannot be listened on at ``host`` right now (None: it can)."""
    if port < 1024 and os.geteuid() != 0:
        return "is privileged (below 1024) and cachewright is not running as root"
    with socket.socket() as sock:
        # as the engines bind: a connection of an earlier run in TIME_WAIT does not block them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"is in use on {host} ({exc.strerror or exc})"
    return None


def choose(policy: Policy, engines: Sequence[str], http: int | None = None,
           https: int | None = None) -> PortChoice:
    """The listen ports for ``engines``: ``http`` / ``https`` (the command line's) where given,
    else the policy's, for the first engine; HarnessError when a port given cannot be used."""
    if not engines:
        return PortChoice()
    first, *others = engines
    wanted = (_one(policy, "http", http, "--port", first), _one(policy, "https", https, "--https-port", first))
    ports = (wanted[0][0], wanted[1][0])
    notes = [note for _, note in wanted if note]
    if ports[0] and ports[0] == ports[1]:
        raise HarnessError(f"--port and --https-port are both {ports[0]}: give two different ports")
    if not any(ports):
        return PortChoice(notes=tuple(notes))
    fixed = " and ".join(str(port) for port in ports if port)
    notes += [f"note: port{'s' if all(ports) else ''} {fixed} go{'' if all(ports) else 'es'} to {first}; "
              f"{other} listens on free ports (serve {other} there with --engine {other})"
              for other in others]
    return PortChoice({first: ports}, tuple(notes))


def _one(policy: Policy, scheme: str, given: int | None, option: str,
         engine: str) -> tuple[int, str | None]:
    """(the port to ask for, 0: any; a note when the policy's port is not usable)."""
    listener = policy.listen.http if scheme == "http" else policy.listen.https
    if listener is None:
        return 0, None
    port = given if given is not None else listener.port
    problem = port_problem(port)
    if problem is None:
        return port, None
    if given is not None:
        raise HarnessError(f"{option} {port}: the port {problem}; choose another {option}")
    return 0, (f"note: listen.{scheme}.port {port} {problem}: {engine} listens for {scheme} on a "
               f"free port instead (choose one with {option})")


def engine_ports(fixed: Fixed, engine: str, extra: int = 0) -> list[int]:
    """``[http, https, *extra]`` ports for ``engine``: its fixed ones where asked for, the others
    free (never one of the fixed ones)."""
    chosen = list(fixed.get(engine, (0, 0)))
    spare = iter([port for port in free_ports(2 + extra) if port not in chosen])
    return [port or next(spare) for port in chosen] + [next(spare) for _ in range(extra)]
