"""One request read from traffic (an access-log line, a line of a requests file): the record
the log readers produce and ``replay``, ``diff`` and ``test --replay`` consume."""

from __future__ import annotations

from dataclasses import dataclass

from ..selection.request import Pair, Request


@dataclass(frozen=True)
class Entry:
    """A request as traffic shows it. ``target`` is the request target as sent (path and
    ``?query``, undecoded); ``host`` is None when the source does not say (the policy's first
    host is used then); ``time`` is seconds since the epoch when the source has a timestamp."""

    line: int
    method: str
    target: str
    host: str | None = None
    headers: tuple[Pair, ...] = ()
    time: float | None = None
    status: int | None = None

    def request(self, default_host: str) -> Request:
        """The harness's ``Request`` for this entry (cookies taken from the Cookie headers)."""
        path, _, query = self.target.partition("?")
        cookies: list[Pair] = []
        headers: list[Pair] = []
        for name, value in self.headers:
            if name.lower() == "cookie":
                for part in value.split(";"):
                    key, eq, val = part.strip().partition("=")
                    if key and eq:
                        cookies.append((key, val))
            elif name.lower() != "host":
                headers.append((name, value))
        return Request(self.method, path or "/", (self.host or default_host).lower(), query,
                       tuple(headers), tuple(cookies))


@dataclass(frozen=True)
class Malformed:
    """A line that could not be read as a request: its number and why (counted, never fatal)."""

    line: int
    reason: str
