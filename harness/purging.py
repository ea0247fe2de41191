"""Purging cache nodes: what to send (``Purge``), to whom (``Node``; a fleet's nodes tier by
tier, ``fleet_tiers``), and each node's answer (``Outcome``). The ``purge`` command and the fleet
checks both send through here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cachewright.generator.errors import UsageError

if TYPE_CHECKING:
    from cachewright.generator.model import Policy, Tier

    from .client import Response
    from .runtime.api import Endpoint

MAX_WORKERS = 16


@dataclass(frozen=True)
class Node:
    """One cache node: a name for the report, its base URL, and the CA to trust for HTTPS."""

    name: str
    url: str
    ca_file: Path | None = None

    def endpoint(self) -> Endpoint:
        from .runtime.api import Endpoint

        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        http, https = (None, port) if parts.scheme == "https" else (port, None)
        return Endpoint(self.name, parts.hostname or "", http, https)


@dataclass(frozen=True)
class Purge:
    """What to send: method, request target, Host and extra headers."""

    method: str
    target: str
    host: str | None
    headers: dict[str, str]

    def describe(self) -> str:
        extra = "".join(f" {n}: {v}" for n, v in self.headers.items())
        return f"{self.method} {self.target}{extra}"


@dataclass(frozen=True)
class Outcome:
    """One node's answer (``status`` None: no answer; ``detail`` says why)."""

    node: Node
    status: int | None
    detail: str
    elapsed: float

    #: a 404 the purge interface gave (nginx: the object was not cached there, nothing to drop)
    not_held: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and (200 <= self.status < 300 or self.not_held)


def host_header(hostname: str) -> str:
    """A Host value for ``hostname`` (IPv6 literals bracketed); the port is left out, as the
    engines drop it from the cache key."""
    return f"[{hostname}]" if ":" in hostname else hostname


def fleet_tiers(policy: Policy, mapping: dict[str, str] | None = None,
                ca_file: Path | None = None) -> list[list[Node]]:
    """The nodes to purge, tier by tier, the tier nearest the origin first."""
    if policy.fleet is None:
        raise UsageError(f"{policy.source}: no fleet: section (purge one node with --node URL)")
    tiers = policy.fleet.tiers
    return [_tier_nodes(policy, tier, i == 0, mapping or {}, ca_file)
            for i, tier in reversed(list(enumerate(tiers)))]


def _tier_nodes(policy: Policy, tier: Tier, front: bool, mapping: dict[str, str],
                ca_file: Path | None) -> list[Node]:
    scheme, port = _front_listener(policy) if front else ("http", tier.inner_port)
    nodes = []
    for node in tier.nodes:
        where = mapping.get(node.name, node.address)
        netloc = where if ":" in where.rsplit("]", 1)[-1] else f"{where}:{port}"
        url = f"{scheme}://{netloc}"
        nodes.append(Node(f"{node.name} {url}", url, ca_file))
    return nodes


def _front_listener(policy: Policy) -> tuple[str, int]:
    """The front tier's purge listener: plain HTTP where it serves more than a redirect."""
    listen = policy.listen
    if listen.http is not None and (listen.https is None or not listen.https.redirect_http):
        return "http", listen.http.port
    assert listen.https is not None
    return "https", listen.https.port


def purge_tiers(tiers: list[list[Node]], purge: Purge, timeout: float) -> list[Outcome]:
    """``purge`` on every node: tier after tier (a fleet's nearest the origin first:
    ``fleet_tiers``), the nodes of a tier in parallel; outcomes in that order. A
    tier that fails does not stop the rest: every node that can drop the object does, and the
    failures are reported (exit 1)."""
    return [outcome for tier in tiers for outcome in purge_all(tier, purge, timeout)]


def purge_all(nodes: list[Node], purge: Purge, timeout: float) -> list[Outcome]:
    """Send ``purge`` to every node in parallel (a small pool); outcomes in node order."""
    import concurrent.futures

    workers = min(MAX_WORKERS, len(nodes))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda n: purge_one(n, purge, timeout), nodes))


def purge_one(node: Node, purge: Purge, timeout: float) -> Outcome:
    """Send ``purge`` to ``node``; a connection or protocol error is that node's failure."""
    import http.client

    from .client import Client

    endpoint = node.endpoint()
    host = purge.host or host_header(urlsplit(node.url).hostname or "")
    client = Client(endpoint, host, node.ca_file)
    scheme = "https" if endpoint.https_port else "http"
    started = time.monotonic()
    try:
        response = client.request(purge.method, purge.target, dict(purge.headers),
                                  scheme=scheme, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Outcome(node, None, _error(exc), time.monotonic() - started)
    if _not_held(purge, response):
        return Outcome(node, 404, f"not cached ({_reason(response)})", response.elapsed, True)
    return Outcome(node, response.status, _reason(response), response.elapsed)


def _not_held(purge: Purge, response: Response) -> bool:
    """Whether ``response`` is nginx's answer to a PURGE of an object it did not hold: 404 from
    the purge interface (labelled ``detail=purge``). In a fleet most nodes hold no copy."""
    status = response.joined("Cache-Status") or ""
    return purge.method == "PURGE" and response.status == 404 and "detail=purge" in status


def _error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "error: timed out"
    text = str(exc) or type(exc).__name__
    return f"error: {text}"


def _reason(response: Response) -> str:
    """The body's first line of text (HTML tags dropped), else nothing."""
    text = re.sub(r"<[^>]*>", "\n", response.body.decode("utf-8", "replace"))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    first = next((line for line in lines if line), "")
    return first[:100]
