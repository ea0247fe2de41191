"""A requests file: one request per line, ``METHOD URL [Name: value]...``, the simplest way to
write down traffic by hand (``test --replay`` fixtures, ``diff --requests``).

    GET /static/app.js
    GET http://shop.example.com/api/items?page=2 Accept-Language: de
    GET /account/orders Cookie: session=abc Accept: text/html

The URL is a request target (``/path?query``) or an absolute URL, whose host becomes the
request's host (else the policy's first host is used). Each header starts at a ``Name:``
token; its value runs up to the next one (so a value cannot itself hold ``Word: ``). Blank
lines and lines starting with ``#`` are skipped; a line that cannot be read is a ``Malformed``
(its number and why), never fatal. The file is read line by line, never held whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .entry import Entry, Malformed

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_METHOD = re.compile(_TOKEN)
_HEADER_START = re.compile(rf"(?:^|\s)({_TOKEN}):(?:\s|$)")


def read_requests(path: Path) -> Iterator[Entry | Malformed]:
    """Every request of the requests file at ``path``, in order (``OSError`` if unreadable)."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, raw in enumerate(lines, 1):
            text = raw.strip()
            if text and not text.startswith("#"):
                yield parse_line(text, number)


def parse_line(text: str, number: int) -> Entry | Malformed:
    """One line, ``METHOD URL [Name: value]...``, as an ``Entry`` or a ``Malformed``."""
    method, _, rest = text.partition(" ")
    url, _, tail = rest.strip().partition(" ")
    if not _METHOD.fullmatch(method):
        return Malformed(number, f"expected METHOD URL [Name: value]..., got {text[:60]!r}")
    if not url:
        return Malformed(number, f"{method}: no URL (expected METHOD URL [Name: value]...)")
    target, host = _target(url)
    if target is None:
        return Malformed(number, f"{url[:60]!r}: expected /path?query or http(s)://host/path?query")
    headers = _headers(tail.strip())
    if headers is None:
        return Malformed(number, f"{tail[:60]!r}: expected headers as Name: value")
    return Entry(number, method, target, host, headers)


def _target(url: str) -> tuple[str | None, str | None]:
    """The request target and host (None: none given) of a line's URL."""
    if url.startswith("/"):
        return url, None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None, None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return target, parts.hostname


def _headers(tail: str) -> tuple[tuple[str, str], ...] | None:
    """``Name: value`` pairs, each value running up to the next ``Name:``; None if the text does
    not start with a header."""
    starts = list(_HEADER_START.finditer(tail))
    if not tail:
        return ()
    if not starts or starts[0].start() != 0:
        return None
    ends = [m.start() for m in starts[1:]] + [len(tail)]
    return tuple((m.group(1), tail[m.end():end].strip()) for m, end in zip(starts, ends, strict=True))
