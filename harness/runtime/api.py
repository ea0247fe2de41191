"""The harness's shared vocabulary: what a runtime starts (a ``Stack``) and how checks reach it.

A runtime (local processes, Docker) turns a compiled policy into running engines in front of an
origin, and hands back a ``Stack``: where each engine listens, where the origin's data and control
ports are, the engines' logs, and the engines' own record of what they stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cachewright.generator.errors import CachewrightError

if TYPE_CHECKING:
    from cachewright.generator.model import Policy

from ..engines import ENGINES, StoredObject


class HarnessError(CachewrightError):
    """A stack could not be started or used; the message names what and attaches logs."""

    exit_code = 3


@dataclass(frozen=True)
class Endpoint:
    """Where one engine answers: plain HTTP and, when the policy serves HTTPS, TLS."""

    engine: str
    host: str
    http_port: int | None
    https_port: int | None

    def url(self, scheme: str = "http") -> str:
        port = self.http_port if scheme == "http" else self.https_port
        return f"{scheme}://{self.host}:{port}"


@dataclass(frozen=True)
class OriginEndpoint:
    """The sample origin: the data port the engines proxy to, the control port they never see."""

    data_url: str
    control_url: str


class Stack(Protocol):
    """Running engines in front of an origin, as a runtime started them."""

    origin: OriginEndpoint
    endpoints: dict[str, Endpoint]
    ca_file: Path | None
    #: the address the engines see for the harness's requests (its own loopback address locally;
    #: Docker's gateway on a private network)
    client_address: str
    #: whether requests sent from different loopback addresses reach the engines as different
    #: clients (not through Docker's port proxy, where everything comes from the gateway)
    distinct_sources: bool

    def logs(self, engine: str, lines: int = 40) -> str:
        """The last ``lines`` lines of the engine's logs (for failure messages)."""
        ...

    def stored(self, engine: str, path: str) -> list[StoredObject]:
        """Objects the engine stored for request path ``path`` (its own record of their TTL)."""
        ...

    def outsider(self, engine: str) -> Endpoint | None:
        """An endpoint through which requests reach ``engine`` from another client address
        (where sending from another loopback address would not), or None."""
        ...

    def alive(self, engine: str) -> bool:
        """Whether the engine's processes (or containers) are still running."""
        ...


class Runtime(Protocol):
    """Starts stacks. ``start`` is a context manager that always cleans up (success, failure,
    Ctrl-C, SIGTERM): no process, container or temp dir of the run is left behind."""

    name: str

    def start(self, policy: Policy, engines: tuple[str, ...],
              origin_url: str | None = None) -> AbstractContextManager[Stack]:
        """Start the sample origin (or use the user's at ``origin_url``) and ``engines``, each
        running ``policy`` as adapted by ``harness.runtime.prepare.for_harness`` to this runtime's
        addresses, ports and throw-away certificates."""
        ...


def engines_iter(stack: Stack) -> Iterator[Endpoint]:
    """Endpoints in a stable order (nginx, then varnish)."""
    for name in ENGINES:
        if name in stack.endpoints:
            yield stack.endpoints[name]
