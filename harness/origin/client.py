"""A small typed client for the sample origin's control port (the routes are in ``control``).

    with OriginClient("http://127.0.0.1:9002") as origin:
        origin.reset()
        origin.add_rule({"path": "/a", "cache_control": "max-age=60", "etag": "v1"})
        ...  # requests through the cache
        assert origin.count("/a") == 1
        seen = origin.requests(path="/a")[-1]
        assert seen.header("X-Forwarded-Host") is None

``parse_echo`` reads the JSON echo body the data port sends by default, so a check can see
what the origin received for a response that came back through the cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypedDict

import requests

DEFAULT_TIMEOUT = 5.0


class RuleSpec(TypedDict, total=False):
    """A rule as the control port takes it; exactly one of ``path`` and ``pattern``."""

    path: str
    pattern: str
    status: int
    cache_control: str
    expires: str
    expires_in: float
    set_cookie: list[str]
    vary: str
    etag: str
    last_modified: str | int | float
    body: Literal["echo", "filler"]
    body_size: int
    delay: float
    failure: Literal["error", "refuse", "close_mid_body"]
    headers: dict[str, str] | list[tuple[str, str]]
    surrogate_keys: list[str]
    surrogate_key_header: str
    interim: list[int]
    connection: list[str]
    sequence: list[RuleSpec]


class OriginError(Exception):
    """The control port answered with an error, or with something this client cannot read."""


def _obj(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise OriginError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OriginError(f"{what}: expected an integer, got {value!r}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise OriginError(f"{what}: expected a string, got {value!r}")
    return value


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise OriginError(f"{what}: expected a list, got {value!r}")
    return value


def _int_map(value: object, what: str) -> dict[str, int]:
    return {key: _int(v, f"{what}.{key}") for key, v in _obj(value, what).items()}


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    pairs = [_list(pair, "headers[]") for pair in _list(value, "headers")]
    return tuple((_str(p[0], "header name"), _str(p[1], "header value")) for p in pairs)


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


@dataclass(frozen=True)
class Counts:
    """Request counters: the total, per path, and per path and method; and the response body
    bytes sent per path."""

    total: int
    paths: Mapping[str, int]
    by_method: Mapping[str, Mapping[str, int]]
    body_bytes: Mapping[str, int] = field(default_factory=dict)

    def path(self, path: str, method: str | None = None) -> int:
        """Requests for ``path`` (only those with ``method`` when given)."""
        if method is None:
            return self.paths.get(path, 0)
        return self.by_method.get(path, {}).get(method, 0)

    @classmethod
    def from_json(cls, raw: object) -> Counts:
        """Read ``GET /counts``."""
        obj = _obj(raw, "counts")
        by_method = {p: _int_map(m, p) for p, m in _obj(obj["by_method"], "by_method").items()}
        body_bytes = _int_map(obj.get("body_bytes", {}), "body_bytes")
        return cls(_int(obj["total"], "total"), _int_map(obj["paths"], "paths"), by_method, body_bytes)


@dataclass(frozen=True)
class SeenRequest:
    """What the origin received (the fields common to the echo body and the request log)."""

    response_id: str
    method: str
    target: str
    path: str
    query: str
    http_version: str
    headers: tuple[tuple[str, str], ...]
    body_length: int
    client_host: str
    client_port: int
    rule: str | None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = _values(self.headers, name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in the order received."""
        return _values(self.headers, name)


_SeenValues = tuple[
    str, str, str, str, str, str, tuple[tuple[str, str], ...], int, str, int, str | None
]


def _seen_values(obj: dict[str, object]) -> _SeenValues:
    """``SeenRequest``'s fields in declaration order, read from an echo or a log entry."""
    client = _obj(obj["client"], "client")
    return (
        _str(obj["response_id"], "response_id"),
        _str(obj["method"], "method"),
        _str(obj["target"], "target"),
        _str(obj["path"], "path"),
        _str(obj["query"], "query"),
        _str(obj["http_version"], "http_version"),
        _headers(obj["headers"]),
        _int(obj["body_length"], "body_length"),
        _str(client["host"], "client.host"),
        _int(client["port"], "client.port"),
        _opt_str(obj["rule"], "rule"),
    )


@dataclass(frozen=True)
class Echo(SeenRequest):
    """The data port's default JSON body."""

    query_params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, raw: object) -> Echo:
        """Read an already-decoded echo document."""
        obj = _obj(raw, "echo")
        params = tuple(
            (_str(p[0], "param"), _str(p[1], "param"))
            for p in (_list(pair, "query_params[]") for pair in _list(obj["query_params"], "qp"))
        )
        return cls(*_seen_values(obj), query_params=params)


def parse_echo(body: str | bytes) -> Echo:
    """Read the data port's echo body (trailing padding spaces are fine)."""
    try:
        return Echo.from_json(json.loads(body))
    except (ValueError, KeyError, IndexError) as exc:
        raise OriginError(f"not an origin echo body: {exc}") from exc


@dataclass(frozen=True)
class RecordedRequest(SeenRequest):
    """One entry of the origin's request log."""

    seq: int = 0
    time: float = 0.0
    status: int | None = None
    outcome: str = "ok"

    @classmethod
    def from_json(cls, raw: object) -> RecordedRequest:
        """Read one entry of ``GET /requests``."""
        obj = _obj(raw, "request")
        status = obj["status"]
        stamp = obj["time"]
        if not isinstance(stamp, int | float):
            raise OriginError(f"time: expected a number, got {stamp!r}")
        return cls(
            *_seen_values(obj),
            seq=_int(obj["seq"], "seq"),
            time=float(stamp),
            status=None if status is None else _int(status, "status"),
            outcome=_str(obj["outcome"], "outcome"),
        )


class OriginClient:
    """Talks to the origin's control port; every method raises ``OriginError`` on failure."""

    def __init__(self, control_url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def __enter__(self) -> OriginClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._session.close()

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None = None,
        payload: object = None,
    ) -> dict[str, object]:
        try:
            response = self._session.request(
                method,
                self.control_url + path,
                params=params,
                data=None if payload is None else json.dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise OriginError(f"{method} {path}: {exc}") from exc
        return self._decode(method, path, response)

    @staticmethod
    def _decode(method: str, path: str, response: requests.Response) -> dict[str, object]:
        try:
            body = _obj(response.json(), f"{method} {path}")
        except ValueError as exc:
            raise OriginError(f"{method} {path}: answer is not JSON: {response.text!r}") from exc
        if response.status_code >= 400:
            raise OriginError(f"{method} {path}: {response.status_code} {body.get('error')}")
        return body

    def health(self) -> dict[str, object]:
        """``GET /health``: ports, data_up, pid, rule count and total requests."""
        return self._call("GET", "/health")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll ``/health`` until the origin answers or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except OriginError as exc:
                if time.monotonic() > deadline:
                    raise OriginError(f"origin at {self.control_url} not ready: {exc}") from exc
                time.sleep(0.05)

    def add_rule(self, rule: RuleSpec) -> None:
        """Add or replace one rule."""
        self.add_rules([rule])

    def add_rules(self, rules: Sequence[RuleSpec]) -> None:
        """Add or replace several rules at once (none is added if one is invalid)."""
        self._call("POST", "/rules", payload=list(rules))

    def rules(self) -> list[dict[str, object]]:
        """The rules in effect: exact paths, then patterns (the last one wins)."""
        rules = _list(self._call("GET", "/rules")["rules"], "rules")
        return [_obj(rule, "rule") for rule in rules]

    def delete_rules(self, *, path: str | None = None, pattern: str | None = None) -> int:
        """Delete the rule for ``path`` or ``pattern``, or every rule; returns how many."""
        params = {k: v for k, v in (("path", path), ("pattern", pattern)) if v is not None}
        return _int(self._call("DELETE", "/rules", params=params)["removed"], "removed")

    def counts(self) -> Counts:
        """All request counters."""
        return Counts.from_json(self._call("GET", "/counts"))

    def count(self, path: str, method: str | None = None) -> int:
        """Requests the origin received for ``path`` (and ``method``, when given)."""
        body = self._call("GET", "/counts", params={"path": path})
        if method is None:
            return _int(body["count"], "count")
        return _int_map(body["by_method"], "by_method").get(method, 0)

    def body_bytes(self, path: str) -> int:
        """Response body bytes the origin sent for ``path`` (a path or a unit)."""
        return _int(self._call("GET", "/counts", params={"path": path})["body_bytes"], "body_bytes")

    def reset_counts(self) -> None:
        """Zero every counter."""
        self._call("DELETE", "/counts")

    def requests(
        self,
        *,
        path: str | None = None,
        method: str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedRequest]:
        """The request log, oldest first, filtered; ``since`` is a ``seq`` (exclusive)."""
        pairs = (("path", path), ("method", method), ("since", since), ("limit", limit))
        params = {k: v for k, v in pairs if v is not None}
        entries = _list(self._call("GET", "/requests", params=params)["requests"], "requests")
        return [RecordedRequest.from_json(entry) for entry in entries]

    def last_request(self, path: str) -> RecordedRequest | None:
        """The latest request the origin received for ``path``, if any."""
        entries = self.requests(path=path, limit=1)
        return entries[0] if entries else None

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "/requests")

    def reset(self) -> None:
        """Forget rules, counts and the log, and bring the data port up."""
        self._call("POST", "/reset")

    def down(self) -> None:
        """Stop listening on the data port (connections are refused) and drop its connections."""
        self._call("POST", "/down")

    def up(self) -> None:
        """Listen on the data port again (same port)."""
        self._call("POST", "/up")
