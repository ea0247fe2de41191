"""A progress line on a terminal (lines read so far), and nothing when the stream is not one:
tests, CI logs and pipes see no progress output."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")
EVERY = 1 << 16  # items between two looks at the clock
INTERVAL = 0.5  # seconds between two updates


def counted(items: Iterable[T], stream: IO[str], what: str = "lines") -> Iterator[T]:
    """``items`` unchanged; on a terminal ``stream``, a ``\\r``-updated count of them, erased at
    the end."""
    if not stream.isatty():
        yield from items
        return
    shown = time.monotonic()
    count = 0
    try:
        for count, item in enumerate(items, 1):
            if not count % EVERY and time.monotonic() - shown >= INTERVAL:
                shown = time.monotonic()
                stream.write(f"\r{count:,} {what} read")
                stream.flush()
            yield item
    finally:
        stream.write("\r\x1b[K")
        stream.flush()
