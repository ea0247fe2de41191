"""What a check is, what it may use, and how it fails.

A check is a small function over a ``Ctx``: it programs the origin, sends requests through one
engine, and states expectations with ``ctx.expect``. The origin's request counts are the ground
truth for "was it a hit"; Cache-Status is checked second.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Unpack

from cachewright.generator.model import Policy

from ..client import Client, Response, Sending
from ..engines import StoredObject
from ..origin import OriginClient, RuleSpec
from ..runtime.api import Stack
from ..selection import Request


class CheckFailed(Exception):
    """An expectation did not hold."""


class CheckSkipped(Exception):
    """The check cannot run here (e.g. no origin control port, a window too long to wait for)."""


class Probing(Sending, total=False):
    """``Ctx.send``'s keyword options besides the headers, as wrappers pass them on."""

    method: str
    scheme: str


@dataclass(frozen=True)
class Check:
    """One derived check: an id, a one-line description, what it needs, and how it runs."""

    id: str
    description: str
    run: Callable[[Ctx], None]
    tags: tuple[str, ...] = ()
    feature: str | None = None
    needs_control: bool = True
    #: the longest the check must wait, in seconds, for the policy's timers (a timeout, a stale
    #: window) to run out; checks over ``SLOW_WAIT`` run only when asked (``test --slow``)
    wait: float = 0.0


_TAGS = itertools.count(1)
#: how long the engine's record of a stored object is polled for
RECORD_WAIT = 3.0
#: how long a check that must not store an answer gives the engine to write it anyway (engines
#: finish writing after answering: a store that comes late must still be seen)
STORE_WAIT = 1.0
#: waits longer than this make a check slow (left out unless asked for)
SLOW_WAIT = 10.0
#: no check waits longer than this, even when asked: it is skipped with the wait it needs
MAX_WAIT = 120.0


@dataclass
class Ctx:
    """Everything a check may use, for one engine of one running stack."""

    engine: str
    policy: Policy
    stack: Stack
    client: Client
    origin: OriginClient | None
    run_token: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    notes: list[str] = field(default_factory=list)
    #: the origin units (paths, or marked paths) this check programmed or counted: its evidence
    units: list[str] = field(default_factory=list)

    def tag(self) -> str:
        """A fresh token for paths, so no two checks share a cache entry."""
        return f"cw{self.run_token}{next(_TAGS)}"

    def control(self) -> OriginClient:
        if self.origin is None:
            raise CheckSkipped("needs the sample origin's control port (not with --origin)")
        return self.origin

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise CheckFailed(message)

    def send(self, req: Request, *, headers: Mapping[str, str] | None = None,
             method: str | None = None, scheme: str | None = None, **kw: Unpack[Sending]) -> Response:
        """Send a probe request through this engine (``headers`` added to its own, ``method``
        and ``scheme`` in place of its own and the engine's)."""
        sent = {n: v for n, v in req.headers if n.lower() != "cookie"}
        if req.cookie_header:
            sent["Cookie"] = req.cookie_header
        sent.update(headers or {})
        return self.client.request(method or req.method, req.target, sent,
                                   scheme=scheme or self.scheme, host=req.host, **kw)

    @property
    def scheme(self) -> str:
        """https when plain HTTP only redirects (or is not served), else http."""
        listen = self.policy.listen
        if listen.https and (listen.http is None or listen.https.redirect_http):
            return "https"
        return "http"

    def count(self, unit: str) -> int:
        """How many requests the origin saw for ``unit`` (a path, or a request's ``unit``)."""
        self._touch(unit)
        return self.control().count(unit)

    def program(self, unit: str, **rule: Unpack[RuleSpec]) -> None:
        """Program the origin's answer for ``unit`` (status, cache_control, set_cookie, ...)."""
        self._touch(unit)
        self.control().add_rule({"path": unit, **rule})

    def _touch(self, unit: str) -> None:
        if unit not in self.units:
            self.units.append(unit)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def send_stored(self, req: Request, headers: Mapping[str, str] | None = None,
                    **kw: Unpack[Probing]) -> Response:
        """Send ``req``, whose answer the policy stores, and give the engine the time to write
        it (nginx finishes its cache file after answering), so that the next request can hit."""
        response = self.send(req, headers=headers, **kw)
        self.stored(req)
        return response

    def stored(self, req: Request, at_least: int = 1, wait: float = RECORD_WAIT) -> list[StoredObject]:
        """The engine's own record of the entries ``req`` is stored under: by its path, with its
        marker parameters where the key holds the query, on its host. Engines finish writing
        after the response is sent, so the record is polled for ``wait`` seconds until it holds
        ``at_least`` objects."""
        marks = req.unit.partition("?")[2].split("&") if "query" in self.policy.cache.key else []
        deadline = time.monotonic() + wait
        while True:
            found = [s for s in self.stack.stored(self.engine, req.path)
                     if _on_host(s.key, req.host) and _marked(s.key, marks)]
            if len(found) >= at_least or time.monotonic() >= deadline:
                return found
            self.sleep(0.1)


def _marked(key: str, marks: list[str]) -> bool:
    """Whether the query in a stored key's first line holds every marker parameter in ``marks``."""
    query = key.split("\n", 1)[0].partition("?")[2].split("&")
    return all(m in query for m in marks if m)


def _on_host(key: str, host: str) -> bool:
    """Whether a stored key (``scheme://host/target`` or ``host/target``) is for ``host``; a
    key without the host is for every host."""
    rest = key.split("://", 1)[-1]
    return rest.startswith("/") or rest.lower().startswith(host.lower() + "/")
