"""The client of the fleet comparison: one request at a time, round robin over the front nodes.

One request at a time on purpose: request i goes to node i mod N and the previous one is
answered before it is sent, so what each cache has seen is exactly known and the ideal origin
traffic can be computed from the sequence (``harness.compare.topologies``); concurrency would
turn the ideal into a race. Bounded by a deadline and a rate (a good neighbour on a shared
machine), keep-alive per node (reconnecting when a node closes), HTTPS verified against the
run's CA with the policy's host as the name. Loopback addresses only, as every load of
``compare``.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..runtime.api import Endpoint, HarnessError

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Sent:
    """What a run sent: requests (answered or not), the errors among them (no answer, or a
    status of 400 or more), the statuses and the seconds it took."""

    requests: int
    errors: int
    statuses: Mapping[int, int]
    elapsed_s: float


class _Tls(http.client.HTTPConnection):
    """HTTPS to an address, verified against the name the policy serves (SNI and certificate)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, name: str) -> None:
        super().__init__(host, port, timeout=TIMEOUT_S)
        self._context = context
        self._name = name

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._name)


def connections(nodes: Sequence[Endpoint], scheme: str, host: str,
                ca_file: Path | None) -> list[http.client.HTTPConnection]:
    """A keep-alive connection to each node (``scheme``: the policy's), loopback only."""
    context = ssl.create_default_context(cafile=str(ca_file)) if scheme == "https" else None
    out: list[http.client.HTTPConnection] = []
    for node in nodes:
        if not ipaddress.ip_address(node.host).is_loopback:
            raise HarnessError(f"the fleet comparison sends to loopback addresses only, not {node.host}")
        port = node.https_port if context else node.http_port
        assert port is not None, f"{node.engine} on {node.host} serves no {scheme}"
        out.append(_Tls(node.host, port, context, host) if context
                   else http.client.HTTPConnection(node.host, port, timeout=TIMEOUT_S))
    return out


def send_round_robin(conns: Sequence[http.client.HTTPConnection], targets: Sequence[str],
                     headers: Mapping[str, str], *, rate: float, time_limit_s: float) -> Sent:
    """``targets`` in order, target i to connection i mod len(conns), at most ``rate`` a second,
    stopping at ``time_limit_s``."""
    statuses: Counter[int] = Counter()
    errors = sent = 0
    start = time.monotonic()
    for i, target in enumerate(targets):
        now = time.monotonic()
        if now - start >= time_limit_s:
            break
        ahead = start + i / rate - now
        if ahead > 0:
            time.sleep(ahead)
        status = _get(conns[i % len(conns)], target, headers)
        sent += 1
        statuses[status] += 1
        errors += status == 0 or status >= 400
    for conn in conns:
        conn.close()
    return Sent(sent, errors, dict(statuses), time.monotonic() - start)


def _get(conn: http.client.HTTPConnection, target: str, headers: Mapping[str, str]) -> int:
    """The status of one GET (0: no answer; the connection is opened again next time)."""
    try:
        conn.request("GET", target, headers=dict(headers))
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        conn.close()
        return 0
