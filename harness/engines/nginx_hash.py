"""nginx's ``upstream { hash KEY consistent; }``: which server a key goes to, computed as
``ngx_http_upstream_hash_module.c`` computes it (``init_chash``, ``find_chash_point``,
``get_chash_peer``), so that ``explain`` names the node a shard tier stores a request on.

The ring (ketama, compatible with Cache::Memcached::Fast): for each server, as written in the
``server`` directive, ``HOST`` and ``PORT`` split at its last ``:`` when only digits follow it;
``weight × 160`` points, point j the CRC32 of ``HOST \\0 PORT`` followed by point j-1's value as 4
little-endian bytes (0 for the first); sorted, duplicates dropped. A key goes to the first point
at or after CRC32(key), wrapping to the first; a server that is down or failed is skipped for the
next point (``explain`` assumes every server healthy).
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass

#: points per unit of weight (``npoints = peer->weight * 160``)
POINTS_PER_WEIGHT = 160


@dataclass(frozen=True)
class Ring:
    """The sorted points and, for each, the server (as written) it belongs to."""

    points: tuple[int, ...]
    servers: tuple[str, ...]


def _host_port(server: str) -> tuple[bytes, bytes]:
    """``server`` split as nginx splits it: ``unix:PATH`` has no port; else at the last ``:``
    when only digits follow it."""
    raw = server.encode()
    if raw[:5].lower() == b"unix:":
        return raw[5:], b""
    host, sep, port = raw.rpartition(b":")
    if sep and (not port or port.isdigit()):
        return host, port
    return raw, b""


def ring(servers: tuple[str, ...], weights: tuple[int, ...] | None = None) -> Ring:
    """The consistent-hash ring of ``servers`` (``ADDR:PORT`` as in the ``server`` lines)."""
    points: dict[int, str] = {}
    for i, server in enumerate(servers):
        host, port = _host_port(server)
        base = host + b"\0" + port
        previous = 0
        for _ in range((weights[i] if weights else 1) * POINTS_PER_WEIGHT):
            previous = zlib.crc32(base + previous.to_bytes(4, "little"))
            points.setdefault(previous, server)  # qsort then de-dup: an equal point is dropped
    ordered = sorted(points)
    return Ring(tuple(ordered), tuple(points[p] for p in ordered))


def owner(r: Ring, key: str) -> str:
    """The server (as written) ``key`` goes to while every server is up."""
    index = bisect.bisect_left(r.points, zlib.crc32(key.encode()))
    return r.servers[index % len(r.points)]
