"""The control port: JSON over HTTP to program the origin and read what it received (stdlib only).

The control port is never shown to the cache: tests and checks use it. Routes::

    GET    /health                  {"status": "ok", "data_up": true, "host": ..., "data_port": N,
                                     "control_port": M, "pid": P, "rules": n, "total": n}
    GET    /rules                   {"rules": [rule, ...]}  exact rules by path, then patterns
                                    in registration order (the last one wins)
    POST   /rules                   body: a rule or a list of rules -> {"rules": [...]} (all rules)
    DELETE /rules[?path=|?pattern=] remove all rules, or one -> {"removed": n}
    GET    /counts                  {"total": n, "paths": {"/a": 2},
                                     "by_method": {"/a": {"GET": 1, "HEAD": 1}},
                                     "body_bytes": {"/a": 1234}}
    GET    /counts?path=/a          {"path": "/a", "count": 2, "by_method": {"GET": 1, "HEAD": 1},
                                     "body_bytes": 1234}
    DELETE /counts                  zero the counters -> {"reset": ["counts"]}
    GET    /requests                ?path= &method= &since=SEQ &limit=N (the last N that match)
                                    -> {"requests": [entry, ...]} oldest first
    DELETE /requests                clear the request log -> {"reset": ["requests"]}
    POST   /reset                   rules, counts and log cleared, data port up again ->
                                    {"reset": ["rules", "counts", "requests"], "data_up": true}
    POST   /down                    stop listening on the data port and drop its open connections
                                    (clients get "connection refused") -> {"data_up": false}
    POST   /up                      listen again on the same port -> {"data_up": true}

Rule fields are in ``rules``, the counters and markers in ``state``. A request-log entry:
``{"seq", "time", "response_id", "method", "target", "path", "query", "http_version",
"headers", "body_length", "client", "rule", "status", "outcome"}`` where ``status`` is null for
a refused request and ``outcome`` is one of ``ok``, ``not_modified``, ``error``, ``refused``,
``closed_mid_body``. Errors are ``{"error": "message"}`` with 400, 404 or 405.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeAlias
from urllib.parse import parse_qs

from .rules import JsonObject, RuleError, parse_rules
from .state import OriginState
from .wire import Reply, Request

Query: TypeAlias = Mapping[str, str]
ControlRoute: TypeAlias = Callable[[Request, Query], Awaitable[JsonObject]]


class ControlError(Exception):
    """A control request that cannot be served; carries its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DataSwitch(Protocol):
    """What the control port can see and do of the listeners: where they are, and the data
    port's on/off switch (``/down``, ``/up``, ``/reset``)."""

    @property
    def host(self) -> str: ...
    @property
    def data_port(self) -> int: ...
    @property
    def control_port(self) -> int: ...
    @property
    def data_up(self) -> bool: ...
    async def up(self) -> None: ...
    async def down(self) -> None: ...


def _int_param(query: Query, name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise ControlError(400, f"{name}: must be a non-negative integer")
    return int(value)


def _json_body(request: Request) -> object:
    try:
        return json.loads(request.body or b"null")
    except ValueError as exc:
        raise ControlError(400, f"body is not JSON: {exc}") from exc


def json_reply(status: int, payload: JsonObject) -> Reply:
    """A JSON response for the control port."""
    body = json.dumps(payload).encode() + b"\n"
    headers = (
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    )
    return Reply(status, headers, body, True, "ok" if status < 400 else "error")


class ControlHandler:
    """Serves the control port's routes over ``state`` and the listeners' ``switch``."""

    def __init__(self, state: OriginState, switch: DataSwitch) -> None:
        self.state = state
        self.switch = switch
        self._routes: dict[tuple[str, str], ControlRoute] = self._route_table()

    async def __call__(self, request: Request) -> Reply:
        """Serve one control-port request."""
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        try:
            return json_reply(200, await self._route(request)(request, query))
        except ControlError as exc:
            return json_reply(exc.status, {"error": str(exc)})
        except RuleError as exc:
            return json_reply(400, {"error": str(exc)})
        except OSError as exc:
            return json_reply(500, {"error": f"cannot listen: {exc}"})

    def _route(self, request: Request) -> ControlRoute:
        route = self._routes.get((request.method, request.path))
        if route is not None:
            return route
        if any(path == request.path for _, path in self._routes):
            raise ControlError(405, f"{request.method} not allowed on {request.path}")
        raise ControlError(404, f"no control route {request.path}")

    def _route_table(self) -> dict[tuple[str, str], ControlRoute]:
        return {
            ("GET", "/health"): self._health,
            ("GET", "/rules"): self._get_rules,
            ("POST", "/rules"): self._post_rules,
            ("DELETE", "/rules"): self._delete_rules,
            ("GET", "/counts"): self._get_counts,
            ("DELETE", "/counts"): self._delete_counts,
            ("GET", "/requests"): self._get_requests,
            ("DELETE", "/requests"): self._delete_requests,
            ("POST", "/reset"): self._reset,
            ("POST", "/down"): self._down,
            ("POST", "/up"): self._up,
        }

    async def _health(self, _: Request, __: Query) -> JsonObject:
        switch = self.switch
        return {
            "status": "ok",
            "data_up": switch.data_up,
            "host": switch.host,
            "data_port": switch.data_port,
            "control_port": switch.control_port,
            "pid": os.getpid(),
            "rules": len(self.state.rules),
            "total": self.state.counters.total,
        }

    async def _get_rules(self, _: Request, __: Query) -> JsonObject:
        return {"rules": [rule.to_json() for rule in self.state.rules.listed()]}

    async def _post_rules(self, request: Request, query: Query) -> JsonObject:
        for rule in parse_rules(_json_body(request)):
            self.state.rules.add(rule)
        return await self._get_rules(request, query)

    async def _delete_rules(self, _: Request, query: Query) -> JsonObject:
        return {"removed": self.state.rules.remove(query.get("path"), query.get("pattern"))}

    async def _get_counts(self, _: Request, query: Query) -> JsonObject:
        return self.state.counters.to_json(query.get("path"))

    async def _delete_counts(self, _: Request, __: Query) -> JsonObject:
        self.state.counters.reset()
        return {"reset": ["counts"]}

    async def _get_requests(self, _: Request, query: Query) -> JsonObject:
        since = _int_param(query, "since", 0)
        entries = self.state.requests(query.get("path"), query.get("method"), since)
        limit = _int_param(query, "limit", len(entries))
        return {"requests": [r.to_json() for r in entries[len(entries) - limit :]]}

    async def _delete_requests(self, _: Request, __: Query) -> JsonObject:
        self.state.log.clear()
        return {"reset": ["requests"]}

    async def _reset(self, _: Request, __: Query) -> JsonObject:
        self.state.reset()
        await self.switch.up()
        return {"reset": ["rules", "counts", "requests"], "data_up": True}

    async def _down(self, _: Request, __: Query) -> JsonObject:
        await self.switch.down()
        return {"data_up": False}

    async def _up(self, _: Request, __: Query) -> JsonObject:
        await self.switch.up()
        return {"data_up": True}
