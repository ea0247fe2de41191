"""Varnish's ``directors.shard()`` with ``.reconfigure()`` and ``.backend(by=HASH)``: which
backend an object goes to, computed as varnish-cache 7.1 computes it (``vmod_directors``'
``shard_cfg.c`` ``shardcfg_hashcircle``, ``shard_dir.c`` ``shard_lookup``, ``vmod_shard.c``
``shard_get_key``; ``cache_vrt.c`` ``VRT_hashdata``, ``VRT_HashStrands32``).

The ring: for each backend, ``replicas`` points (67, ``reconfigure``'s default), point j the last
4 bytes, little-endian, of SHA256(IDENT + str(j)), IDENT the backend's VCL name (no ident is
given to ``add_backend``); sorted. The key, by=HASH on the backend side: the first 4 bytes,
big-endian, of the object's digest, the SHA256 of every ``hash_data`` argument in ``vcl_hash``
order, each call's strands followed by one NUL byte (an unset strand, e.g. a missing header,
adds a NUL byte of its own). The lookup is ``shard_lookup``'s binary search as written (a key
above the last point stays on the last point: it does not wrap). With probes, a sick backend
is skipped for the next backend on the ring; ``explain`` assumes every backend healthy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

#: ``reconfigure(INT replicas=67)``
REPLICAS = 67


@dataclass(frozen=True)
class Ring:
    """The sorted points and, for each, the backend's VCL name."""

    points: tuple[int, ...]
    backends: tuple[str, ...]


def hash_strands32(*strands: str) -> int:
    """``VRT_HashStrands32``: SHA256 of the non-empty strands, the last 4 bytes little-endian."""
    digest = hashlib.sha256("".join(strands).encode()).digest()
    return int.from_bytes(digest[-4:], "little")


def ring(backends: Sequence[str], replicas: int = REPLICAS) -> Ring:
    """The hash circle of ``backends`` (VCL names), as ``shardcfg_hashcircle`` builds it."""
    rmax = (2**32 - 2) // len(backends)
    circle = sorted(((hash_strands32(name, str(j)), host) for host, name in enumerate(backends)
                     for j in range(min(replicas, rmax))), key=lambda point: point[0])
    return Ring(tuple(p for p, _ in circle), tuple(backends[h] for _, h in circle))


def digest(calls: Sequence[Sequence[str | None]]) -> bytes:
    """The object's digest: each ``hash_data`` call's strands (None: unset), then a NUL byte."""
    sha = hashlib.sha256()
    for strands in calls:
        for strand in (*strands, None):
            sha.update(b"\0" if strand is None else strand.encode())
    return sha.digest()


def lookup(points: tuple[int, ...], key: int) -> int:
    """``shard_lookup``: the index of the point ``key`` lands on (its binary search, as is)."""
    n, low, high = len(points), 0, len(points)
    while True:
        i = (high + low) // 2
        if points[i] == key:
            return i
        if i == n - 1:
            return n - 1
        if points[i] < key <= points[i + 1]:
            return i + 1
        if points[i] > key:
            if i == 0:
                return 0
            high = i
        else:
            low = i


def owner(r: Ring, calls: Sequence[Sequence[str | None]]) -> str:
    """The backend (VCL name) an object hashed from ``calls`` goes to while all are healthy."""
    key = int.from_bytes(digest(calls)[:4], "big")
    return r.backends[lookup(r.points, key)]
