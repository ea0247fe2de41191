"""An engine's own record of one stored response, as its module reads it (cache file, log)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredObject:
    """An engine's own record of one stored response (read from its cache or its log)."""

    key: str
    ttl: float
    grace: float | None = None
