"""Tests for the harness's sample origin app and its control client."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import requests

from cachewright.harness.origin import (
    OriginClient,
    OriginConfig,
    OriginError,
    OriginServer,
    RuleSpec,
    parse_echo,
    server_files,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 5.0


# --------------------------------------------------------------------------- fixtures & helpers


@pytest.fixture
def server() -> Iterator[OriginServer]:
    with OriginServer(OriginConfig(log_size=50)) as srv:
        yield srv


@pytest.fixture
def control(server: OriginServer) -> Iterator[OriginClient]:
    with OriginClient(server.control_url) as client:
        yield client


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@dataclass
class Raw:
    """A response read straight off the socket."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def read_response(stream: IO[bytes], head: bool = False) -> Raw:
    """Read one response; the body is Content-Length bytes (fewer if the peer closes)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = []
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name, value.strip()))
    raw = Raw(int(status_line.split()[1]), headers, b"")
    length = int(raw.header("Content-Length") or 0)
    if not head and raw.status != 304:
        raw.body = stream.read(length)
    return raw


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def exchange(port: int, payload: bytes, head: bool = False) -> Raw:
    """Send raw bytes on a fresh connection and read one response."""
    with connect(port) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        return read_response(stream, head)


def get(path: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: origin.test", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_count(control: OriginClient, path: str, expected: int) -> None:
    """Poll the counters until ``path`` reached ``expected`` (requests in flight count)."""
    deadline = time.monotonic() + TIMEOUT
    while control.count(path) < expected:
        assert time.monotonic() < deadline, f"{path} never reached {expected} requests"
        time.sleep(0.02)
    assert control.count(path) == expected


def echo_of(response: requests.Response | Raw) -> dict[str, object]:
    body = response.content if isinstance(response, requests.Response) else response.body
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


# --------------------------------------------------------------------------- data port: echo


def test_echo_reports_what_the_origin_received(server: OriginServer) -> None:
    payload = get(
        "/a%20b/c?x=1&y=&x=2",
        "X-Dup: one",
        "x-dup: two",
        "ACCEPT: text/html",
        "Content-Length: 5",
        method="PUT",
    )
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload + b"hello")
        local_port = sock.getsockname()[1]
        raw = read_response(stream)
    echo = echo_of(raw)
    assert raw.status == 200
    assert raw.header("Content-Type") == "application/json"
    assert raw.header("X-Response-Id") == echo["response_id"]
    assert raw.header("Date") is not None
    assert echo["method"] == "PUT"
    assert echo["target"] == "/a%20b/c?x=1&y=&x=2"
    assert echo["path"] == "/a%20b/c"
    assert echo["query"] == "x=1&y=&x=2"
    assert echo["query_params"] == [["x", "1"], ["y", ""], ["x", "2"]]
    assert echo["http_version"] == "HTTP/1.1"
    assert echo["headers"] == [
        ["Host", "origin.test"],
        ["X-Dup", "one"],
        ["x-dup", "two"],
        ["ACCEPT", "text/html"],
        ["Content-Length", "5"],
    ]
    assert echo["body_length"] == 5
    assert echo["client"] == {"host": "127.0.0.1", "port": local_port}
    assert echo["rule"] is None


def test_absolute_form_target_is_split_into_path_and_query(server: OriginServer) -> None:
    echo = echo_of(exchange(server.data_port, get("http://shop.test/p/q?z=9")))
    assert (echo["target"], echo["path"], echo["query"]) == (
        "http://shop.test/p/q?z=9",
        "/p/q",
        "z=9",
    )


@pytest.mark.parametrize(
    "method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "BAN"]
)
def test_any_method_is_answered_and_echoed(
    server: OriginServer, http: requests.Session, method: str
) -> None:
    response = http.request(method, f"{server.data_url}/m", data=b"abc", timeout=TIMEOUT)
    assert response.status_code == 200
    echo = parse_echo(response.content)
    assert (echo.method, echo.body_length, echo.path) == (method, 3, "/m")


def test_every_response_id_is_unique(server: OriginServer, http: requests.Session) -> None:
    ids = []
    for _ in range(20):
        response = http.get(f"{server.data_url}/same", timeout=TIMEOUT)
        assert response.headers["X-Response-Id"] == parse_echo(response.content).response_id
        ids.append(response.headers["X-Response-Id"])
    assert len(set(ids)) == 20


def test_head_sends_headers_only(server: OriginServer) -> None:
    raw = exchange(server.data_port, get("/h", method="HEAD"), head=True)
    assert raw.status == 200
    assert int(raw.header("Content-Length") or 0) > 100  # the length a GET would get
    assert raw.body == b""


def test_chunked_request_body_is_counted(server: OriginServer) -> None:
    payload = get("/chunked", "Transfer-Encoding: chunked", method="POST")
    body = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    assert echo_of(exchange(server.data_port, payload + body))["body_length"] == 8


def test_expect_100_continue_gets_an_interim_response(server: OriginServer) -> None:
    payload = get("/upload", "Content-Length: 4", "Expect: 100-continue", method="POST")
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert stream.readline() == b"\r\n"
        sock.sendall(b"data")
        assert echo_of(read_response(stream))["body_length"] == 4


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"NOT-HTTP\r\n\r\n", "malformed request line"),
        (b"GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version or empty target"),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", "malformed header field"),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "unsupported Transfer-Encoding / Content-Length combination",
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    ],
)
def test_malformed_requests_get_400_and_close(
    server: OriginServer, control: OriginClient, payload: bytes, message: str
) -> None:
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(payload)
        raw = read_response(stream)
        assert stream.read() == b""  # the connection is closed
    assert raw.status == 400
    assert raw.header("Connection") == "close"
    assert echo_of(raw) == {"error": message}
    assert control.counts().total == 0


# --------------------------------------------------------------------------- connections


def test_http11_keeps_the_connection_alive_and_pipelines(server: OriginServer) -> None:
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(get("/one") + get("/two"))
        first, second = read_response(stream), read_response(stream)
        sock.sendall(get("/three", "Connection: close"))
        third = read_response(stream)
        assert stream.read() == b""
    assert [echo_of(r)["path"] for r in (first, second, third)] == ["/one", "/two", "/three"]
    assert first.header("Connection") is None
    assert third.header("Connection") == "close"
    assert len({r.header("X-Response-Id") for r in (first, second, third)}) == 3


def test_http10_closes_unless_keep_alive_is_asked(server: OriginServer) -> None:
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(get("/k", "Connection: keep-alive", version="1.0"))
        kept = read_response(stream)
        sock.sendall(get("/c", version="1.0"))
        closed = read_response(stream)
        assert stream.read() == b""
    assert kept.header("Connection") == "keep-alive"
    assert closed.header("Connection") == "close"
    assert echo_of(closed)["http_version"] == "HTTP/1.0"


def test_200_concurrent_keep_alive_connections(server: OriginServer, control: OriginClient) -> None:
    control.add_rule({"path": "/slow", "delay": 0.3})

    async def one_connection(index: int) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.data_port)
        try:
            ids = []
            for path in ("/slow", f"/fast/{index}"):
                writer.write(get(path))
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                fields = dict(line.split(": ", 1) for line in lines[1:] if line)
                body = await reader.readexactly(int(fields["Content-Length"]))
                assert lines[0] == "HTTP/1.1 200 OK"
                assert json.loads(body)["response_id"] == fields["X-Response-Id"]
                ids.append(fields["X-Response-Id"])
            return ids
        finally:
            writer.close()
            await writer.wait_closed()

    async def run_all() -> list[list[str]]:
        return await asyncio.gather(*(one_connection(i) for i in range(200)))

    started = time.monotonic()
    results = asyncio.run(run_all())
    elapsed = time.monotonic() - started
    assert len({rid for ids in results for rid in ids}) == 400
    counts = control.counts()
    assert (counts.total, counts.path("/slow")) == (400, 200)
    assert elapsed < 5  # 200 delayed requests answered in parallel, not one after another


# --------------------------------------------------------------------------- rules: headers


def test_rule_sets_status_and_cache_headers(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule(
        {
            "path": "/r",
            "status": 404,
            "cache_control": "public, max-age=60",
            "expires": "Thu, 01 Dec 2033 16:00:00 GMT",
            "vary": "Accept-Language",
            "set_cookie": ["a=1; Path=/", "b=2"],
        }
    )
    response = http.get(f"{server.data_url}/r", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert response.headers["Expires"] == "Thu, 01 Dec 2033 16:00:00 GMT"
    assert response.headers["Vary"] == "Accept-Language"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert parse_echo(response.content).rule == "/r"
    assert (
        http.get(f"{server.data_url}/other", timeout=TIMEOUT).headers.get("Cache-Control") is None
    )


def test_expires_in_is_relative_to_the_response_date(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule({"path": "/exp", "expires_in": 120})
    response = http.get(f"{server.data_url}/exp", timeout=TIMEOUT)
    date = email.utils.parsedate_to_datetime(response.headers["Date"])
    expires = email.utils.parsedate_to_datetime(response.headers["Expires"])
    assert (expires - date).total_seconds() == pytest.approx(120, abs=1)


def test_extra_headers_add_and_replace(server: OriginServer, control: OriginClient) -> None:
    control.add_rule(
        {
            "path": "/x",
            "headers": [("Content-Type", "text/html"), ("X-A", "1"), ("X-A", "2")],
        }
    )
    raw = exchange(server.data_port, get("/x"))
    assert raw.values("Content-Type") == ["text/html"]
    assert raw.values("X-A") == ["1", "2"]
    control.add_rule({"path": "/y", "headers": {"Server": "other", "Cache-Control": "no-cache"}})
    raw = exchange(server.data_port, get("/y"))
    assert (raw.values("Server"), raw.values("Cache-Control")) == (["other"], ["no-cache"])


def test_surrogate_keys_default_and_per_rule_header(
    server: OriginServer, control: OriginClient
) -> None:
    control.add_rules(
        [
            {"path": "/k1", "surrogate_keys": ["product-1", "list"]},
            {"path": "/k2", "surrogate_keys": ["a"], "surrogate_key_header": "xkey"},
        ]
    )
    assert exchange(server.data_port, get("/k1")).header("Surrogate-Key") == "product-1 list"
    raw = exchange(server.data_port, get("/k2"))
    assert (raw.header("xkey"), raw.header("Surrogate-Key")) == ("a", None)


def test_surrogate_key_header_name_is_configurable_per_server() -> None:
    with (
        OriginServer(OriginConfig(surrogate_key_header="Cache-Tag")) as srv,
        OriginClient(srv.control_url) as client,
    ):
        client.add_rule({"pattern": "*", "surrogate_keys": ["t1"]})
        raw = exchange(srv.data_port, get("/anything"))
    assert (raw.header("Cache-Tag"), raw.header("Surrogate-Key")) == ("t1", None)


def test_status_204_has_no_body_and_no_length(server: OriginServer, control: OriginClient) -> None:
    control.add_rule({"path": "/empty", "status": 204, "cache_control": "max-age=5"})
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(get("/empty") + get("/after"))
        empty, after = read_response(stream), read_response(stream)
    assert (empty.status, empty.header("Content-Length"), empty.body) == (204, None, b"")
    assert empty.header("X-Response-Id") and empty.header("Cache-Control") == "max-age=5"
    assert echo_of(after)["path"] == "/after"  # framing stayed intact


# --------------------------------------------------------------------------- rules: matching


def test_exact_beats_pattern_and_the_last_pattern_wins(
    server: OriginServer, control: OriginClient
) -> None:
    control.add_rules(
        [
            {"pattern": "/p/*", "status": 201},
            {"pattern": "/p/x*", "status": 202},
            {"path": "/p/xyz", "status": 203},
        ]
    )

    def status(path: str) -> int:
        return exchange(server.data_port, get(path)).status

    assert [status(p) for p in ("/p/xyz", "/p/xa", "/p/a", "/q")] == [203, 202, 201, 200]
    control.add_rule({"pattern": "/p/*", "status": 207})  # replaced => registered last
    assert status("/p/xa") == 207
    assert [r.get("pattern", r.get("path")) for r in control.rules()] == ["/p/xyz", "/p/x*", "/p/*"]
    assert control.delete_rules(pattern="/p/*") == 1
    assert control.delete_rules(path="/p/xyz") == 1
    assert control.delete_rules(path="/never") == 0
    assert [status(p) for p in ("/p/xyz", "/p/a")] == [202, 200]
    assert control.delete_rules() == 1
    assert control.rules() == []


def test_rules_match_the_path_not_the_query(server: OriginServer, control: OriginClient) -> None:
    control.add_rule({"path": "/q", "status": 201})
    assert exchange(server.data_port, get("/q?a=1")).status == 201


def test_get_rules_shows_normalised_rules(control: OriginClient) -> None:
    control.add_rule({"path": "/n", "etag": "v1", "last_modified": 0, "headers": {"X-A": "1"}})
    assert control.rules() == [
        {
            "path": "/n",
            "status": 200,
            "etag": '"v1"',
            "last_modified": "Thu, 01 Jan 1970 00:00:00 GMT",
            "headers": [["X-A", "1"]],
        }
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"path": "/x", "statu": 1}, "rules[0]: unknown field(s) statu"),
        ({"path": "/x", "status": 99}, "rules[0].status: must be an integer from 200 to 599"),
        ({"path": "/x", "status": True}, "rules[0].status: must be an integer from 200 to 599"),
        ({"path": "/x", "pattern": "/y"}, "rules[0]: exactly one of path and pattern is required"),
        ({"status": 200}, "rules[0]: exactly one of path and pattern is required"),
        ({"path": "x"}, "rules[0].path: must start with /"),
        (
            {"path": "/x", "cache_control": "max-age=1\r\nX-Evil: 1"},
            "rules[0].cache_control: control characters (CR, LF, NUL, ...) are not allowed",
        ),
        (
            {"path": "/x", "headers": {"X-A": "a\nb"}},
            "rules[0].headers.X-A: control characters (CR, LF, NUL, ...) are not allowed",
        ),
        (
            {"path": "/x", "headers": {"Bad Name": "v"}},
            "rules[0].headers: 'Bad Name' is not a valid header name",
        ),
        (
            {"path": "/x", "headers": {"content-length": "1"}},
            "rules[0].headers: content-length is set by the origin and cannot be overridden",
        ),
        ({"path": "/x", "body": "filler"}, 'rules[0].body_size: required with body "filler"'),
        ({"path": "/x", "body": "lorem"}, "rules[0].body: must be one of echo, filler"),
        (
            {"path": "/x", "failure": "error", "status": 404},
            'rules[0].status: failure "error" needs a 5xx status',
        ),
        (
            {"path": "/x", "failure": "explode"},
            "rules[0].failure: must be one of close_mid_body, error, refuse",
        ),
        (
            {"path": "/x", "expires": "0", "expires_in": 5},
            "rules[0]: expires and expires_in are mutually exclusive",
        ),
        (
            {"path": "/x", "last_modified": "yesterday"},
            "rules[0].last_modified: must be an HTTP-date or a number of epoch seconds",
        ),
        (
            {"path": "/x", "etag": 'a"b'},
            'rules[0].etag: \'a"b\' is not an entity tag (abc, "abc" or W/"abc")',
        ),
        (
            {"path": "/x", "surrogate_keys": ["a b"]},
            "rules[0].surrogate_keys: keys cannot contain whitespace",
        ),
        (
            {"path": "/x", "set_cookie": "a=1"},
            "rules[0].set_cookie: must be a list of non-empty strings",
        ),
        (
            [{"path": "/ok"}, {"path": "/x", "delay": -1}],
            "rules[1].delay: must be between 0 and 3600",
        ),
        ("just a string", "rules[0]: a rule must be a JSON object"),
        (
            {"path": "/x", "interim": [101]},
            "rules[0].interim: must be a list of 1xx status codes (100..199, not 101)",
        ),
        (
            {"path": "/x", "sequence": [{"path": "/y"}]},
            "rules[0].sequence[0]: must be an object without path, pattern or sequence",
        ),
        (
            {"path": "/x", "sequence": [{"status": 42}]},
            "rules[0].sequence[0]: status: must be an integer from 200 to 599",
        ),
        (
            {"path": "/x", "connection": ["bad name"]},
            "rules[0].connection: 'bad name' is not a valid header name",
        ),
    ],
)
def test_invalid_rules_are_rejected_with_a_precise_message(
    server: OriginServer, control: OriginClient, rules: object, message: str
) -> None:
    response = requests.post(f"{server.control_url}/rules", json=rules, timeout=TIMEOUT)
    assert (response.status_code, response.json()) == (400, {"error": message})
    assert control.rules() == []  # nothing was added, not even the valid ones


def test_non_json_control_body_is_rejected(server: OriginServer) -> None:
    response = requests.post(f"{server.control_url}/rules", data=b"{nope", timeout=TIMEOUT)
    assert response.status_code == 400
    assert str(response.json()["error"]).startswith("body is not JSON:")


def test_client_raises_with_the_server_message(control: OriginClient) -> None:
    with pytest.raises(OriginError, match=r"400 rules\[0\]\.status: must be an integer"):
        control.add_rule({"path": "/x", "status": 42})


# --------------------------------------------------------------------------- conditional requests


@pytest.fixture
def validated(control: OriginClient) -> OriginClient:
    control.add_rule(
        {
            "path": "/v",
            "etag": "v1",
            "last_modified": "Wed, 01 Jan 2025 00:00:00 GMT",
            "cache_control": "max-age=30",
            "vary": "Accept",
            "set_cookie": ["s=1"],
            "surrogate_keys": ["k"],
            "headers": {"X-Extra": "e"},
        }
    )
    return control


@pytest.mark.parametrize(
    "condition",
    [
        'If-None-Match: "v1"',
        'If-None-Match: W/"v1"',
        'If-None-Match: "zz", "v1"',
        "If-None-Match: *",
        "If-Modified-Since: Wed, 01 Jan 2025 00:00:00 GMT",
        "If-Modified-Since: Thu, 02 Jan 2025 00:00:00 GMT",
    ],
)
def test_matching_precondition_gives_304_without_body(
    server: OriginServer, validated: OriginClient, condition: str
) -> None:
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(get("/v", condition) + get("/after"))
        raw, after = read_response(stream), read_response(stream)
    assert raw.status == 304
    assert raw.header("Content-Length") is None and raw.body == b""
    assert raw.header("ETag") == '"v1"'
    assert raw.header("Last-Modified") == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert (raw.header("Cache-Control"), raw.header("Vary")) == ("max-age=30", "Accept")
    assert (raw.header("Surrogate-Key"), raw.header("X-Extra")) == ("k", "e")
    assert raw.header("Set-Cookie") is None
    assert raw.header("X-Response-Id") and raw.header("Date")
    assert echo_of(after)["path"] == "/after"  # no stray body bytes on the connection
    entry = validated.requests(path="/v")[-1]
    assert (entry.status, entry.outcome, entry.header("If-None-Match")) == (
        304,
        "not_modified",
        condition.split(": ", 1)[1] if condition.startswith("If-None-Match") else None,
    )


@pytest.mark.parametrize(
    "condition",
    [
        'If-None-Match: "v2"',
        # If-None-Match takes precedence: the matching date is not looked at.
        'If-None-Match: "v2"\r\nIf-Modified-Since: Thu, 02 Jan 2025 00:00:00 GMT',
        "If-Modified-Since: Tue, 31 Dec 2024 23:59:59 GMT",
        "If-Modified-Since: not a date",
    ],
)
def test_failed_precondition_gives_the_full_response(
    server: OriginServer, validated: OriginClient, condition: str
) -> None:
    raw = exchange(server.data_port, get("/v", condition))
    assert raw.status == 200
    assert raw.header("ETag") == '"v1"' and raw.header("Set-Cookie") == "s=1"
    assert echo_of(raw)["path"] == "/v"


def test_preconditions_only_apply_to_get_and_head(
    server: OriginServer, validated: OriginClient
) -> None:
    assert exchange(server.data_port, get("/v", 'If-None-Match: "v1"', method="POST")).status == 200
    head = exchange(server.data_port, get("/v", 'If-None-Match: "v1"', method="HEAD"), head=True)
    assert head.status == 304


# --------------------------------------------------------------------------- bodies and delays


def test_filler_body_has_the_exact_size_and_starts_with_the_id(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rules(
        [
            {"path": "/big", "body": "filler", "body_size": 100_000},
            {"path": "/tiny", "body": "filler", "body_size": 4},
        ]
    )
    response = http.get(f"{server.data_url}/big", timeout=TIMEOUT)
    rid = response.headers["X-Response-Id"]
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert len(response.content) == 100_000
    assert response.content == (rid + "\n").encode() + b"x" * (100_000 - len(rid) - 1)
    tiny = http.get(f"{server.data_url}/tiny", timeout=TIMEOUT)
    assert tiny.content == tiny.headers["X-Response-Id"][:4].encode()


def test_echo_is_padded_to_body_size(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule({"path": "/pad", "body_size": 5000})
    response = http.get(f"{server.data_url}/pad", timeout=TIMEOUT)
    assert len(response.content) == 5000
    assert parse_echo(response.content).path == "/pad"
    head = exchange(server.data_port, get("/pad", method="HEAD"), head=True)
    assert head.header("Content-Length") == "5000"


def test_delay_holds_the_headers_back(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule({"path": "/late", "delay": 0.4})
    started = time.monotonic()
    response = http.get(f"{server.data_url}/late", timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.4
    assert response.status_code == 200
    assert http.get(f"{server.data_url}/quick", timeout=TIMEOUT).elapsed.total_seconds() < 0.4


def test_counts_and_log_see_a_request_before_its_delay_ends(
    server: OriginServer, control: OriginClient
) -> None:
    control.add_rule({"path": "/wait", "delay": 1.0})
    with connect(server.data_port) as sock:
        sock.sendall(get("/wait"))
        wait_for_count(control, "/wait", 1)
        assert control.last_request("/wait") is not None
        with sock.makefile("rb") as stream:
            assert read_response(stream).status == 200


# --------------------------------------------------------------------------- failure modes


def test_error_failure_sends_a_5xx(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rules(
        [
            {"path": "/e500", "failure": "error"},
            {"path": "/e503", "failure": "error", "status": 503},
        ]
    )
    assert http.get(f"{server.data_url}/e500", timeout=TIMEOUT).status_code == 500
    response = http.get(f"{server.data_url}/e503", timeout=TIMEOUT)
    assert response.status_code == 503
    assert parse_echo(response.content).response_id == response.headers["X-Response-Id"]
    assert [r.outcome for r in control.requests()] == ["error", "error"]


def test_refuse_closes_without_a_response_but_counts(
    server: OriginServer, control: OriginClient
) -> None:
    control.add_rule({"pattern": "/refused/*", "failure": "refuse"})
    with connect(server.data_port) as sock:
        sock.sendall(get("/refused/a"))
        assert read_to_eof(sock) == b""
    assert exchange(server.data_port, get("/fine")).status == 200  # other paths still served
    assert control.count("/refused/a") == 1
    entry = control.last_request("/refused/a")
    assert entry is not None and (entry.status, entry.outcome) == (None, "refused")


def test_close_mid_body_sends_half_the_promised_body(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule(
        {"path": "/cut", "body": "filler", "body_size": 1000, "failure": "close_mid_body"}
    )
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(get("/cut"))
        raw = read_response(stream)
        assert stream.read() == b""
    assert (raw.status, raw.header("Content-Length"), len(raw.body)) == (200, "1000", 500)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{server.data_url}/cut", timeout=TIMEOUT)
    assert control.count("/cut") == 2


def test_down_refuses_connections_and_drops_open_ones_until_up(
    server: OriginServer, control: OriginClient
) -> None:
    port = server.data_port
    with connect(port) as kept, kept.makefile("rb") as stream:
        kept.sendall(get("/before"))
        assert read_response(stream).status == 200
        control.down()
        assert control.health()["data_up"] is False
        assert stream.read() == b""  # the pooled connection was closed by the origin
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()
    control.up()
    assert server.data_port == port
    assert exchange(port, get("/after")).status == 200
    assert control.counts().paths == {"/before": 1, "/after": 1}


def test_down_interrupts_a_delayed_request_quietly(
    server: OriginServer, control: OriginClient, caplog: pytest.LogCaptureFixture
) -> None:
    control.add_rule({"path": "/slow", "delay": 30})
    with connect(server.data_port) as sock:
        sock.sendall(get("/slow"))
        wait_for_count(control, "/slow", 1)
        control.down()
        assert read_to_eof(sock) == b""
    control.up()
    # Python 3.11's asyncio logs "Exception in callback" for a cancelled connection task.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --------------------------------------------------------------------------- counters and log


def test_counts_per_path_and_method_and_reset(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    for method, path in [("GET", "/a"), ("GET", "/a"), ("HEAD", "/a"), ("POST", "/b?x=1")]:
        http.request(method, f"{server.data_url}{path}", timeout=TIMEOUT)
    counts = control.counts()
    assert counts.total == 4
    assert counts.paths == {"/a": 3, "/b": 1}
    assert counts.by_method == {"/a": {"GET": 2, "HEAD": 1}, "/b": {"POST": 1}}
    assert (counts.path("/a", "HEAD"), counts.path("/nothing")) == (1, 0)
    assert (control.count("/a"), control.count("/a", "GET"), control.count("/zzz")) == (3, 2, 0)
    raw = requests.get(f"{server.control_url}/counts", params={"path": "/a"}, timeout=TIMEOUT)
    body_bytes = raw.json().pop("body_bytes")
    assert raw.json() == {"path": "/a", "count": 3, "by_method": {"GET": 2, "HEAD": 1},
                          "body_bytes": body_bytes}
    assert body_bytes > 0 and counts.body_bytes["/a"] == body_bytes
    control.reset_counts()
    assert control.counts().total == 0 and control.count("/a") == 0
    assert len(control.requests()) == 4  # the log is kept


def test_marked_requests_have_units_of_their_own(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    """Two checks probing one path, told apart by a marker parameter, each own a count, an
    answer and a log; the path's own count still sees both."""
    control.add_rule({"path": "/", "status": 200, "cache_control": "max-age=1"})
    control.add_rule({"path": "/?cw=t1", "status": 203})
    answers = [http.get(f"{server.data_url}{target}", timeout=TIMEOUT).status_code
               for target in ("/?cw=t1", "/?x=1&cw=t1", "/?cw=t2", "/")]
    assert answers == [203, 203, 200, 200]
    assert (control.count("/?cw=t1"), control.count("/?cw=t2"), control.count("/")) == (2, 1, 4)
    assert [r.target for r in control.requests(path="/?cw=t1")] == ["/?cw=t1", "/?x=1&cw=t1"]
    assert len(control.requests(path="/")) == 4


def test_request_log_filters(server: OriginServer, control: OriginClient) -> None:
    for method, path in [("GET", "/a"), ("POST", "/a"), ("GET", "/b"), ("GET", "/a")]:
        exchange(server.data_port, get(path, f"X-Seq: {method}{path}", method=method))
    everything = control.requests()
    seen = [f"{r.method} {r.path}" for r in everything]
    assert seen == ["GET /a", "POST /a", "GET /b", "GET /a"]
    assert [r.method for r in control.requests(path="/a")] == ["GET", "POST", "GET"]
    assert [r.path for r in control.requests(method="GET", limit=2)] == ["/b", "/a"]
    assert [r.path for r in control.requests(since=everything[1].seq)] == ["/b", "/a"]
    entry = everything[1]
    assert entry.header("x-seq") == "POST/a" and entry.header_values("Host") == ["origin.test"]
    summary = (entry.client_host, entry.status, entry.outcome, entry.rule)
    assert summary == ("127.0.0.1", 200, "ok", None)
    control.clear_requests()
    assert control.requests() == [] and control.counts().total == 4


def test_request_log_keeps_the_last_n() -> None:
    with (
        OriginServer(OriginConfig(log_size=3)) as srv,
        OriginClient(srv.control_url) as client,
    ):
        for i in range(5):
            exchange(srv.data_port, get(f"/{i}"))
        assert [r.path for r in client.requests()] == ["/2", "/3", "/4"]
        assert client.counts().total == 5


def test_reset_forgets_everything_and_brings_the_data_port_up(
    server: OriginServer, control: OriginClient
) -> None:
    control.add_rule({"path": "/a", "status": 201})
    exchange(server.data_port, get("/a"))
    control.down()
    control.reset()
    assert (control.rules(), control.counts().total, control.requests()) == ([], 0, [])
    assert exchange(server.data_port, get("/a")).status == 200


# --------------------------------------------------------------------------- control port


def test_health_reports_ports(server: OriginServer, control: OriginClient) -> None:
    health = control.health()
    assert health["status"] == "ok" and health["data_up"] is True
    assert (health["data_port"], health["control_port"]) == (server.data_port, server.control_port)
    assert health["pid"] == os.getpid()


def test_unknown_route_and_wrong_method(server: OriginServer) -> None:
    missing = requests.get(f"{server.control_url}/nope", timeout=TIMEOUT)
    wrong = requests.put(f"{server.control_url}/rules", timeout=TIMEOUT)
    assert (missing.status_code, missing.json()) == (404, {"error": "no control route /nope"})
    assert (wrong.status_code, wrong.json()) == (405, {"error": "PUT not allowed on /rules"})


def test_control_requests_are_not_counted(server: OriginServer, control: OriginClient) -> None:
    control.health()
    control.rules()
    assert control.counts().total == 0


def test_client_reports_an_unreachable_origin() -> None:
    with OriginClient(f"http://127.0.0.1:{free_port()}", timeout=1) as client:
        with pytest.raises(OriginError, match="GET /health"):
            client.health()
        with pytest.raises(OriginError, match="not ready"):
            client.wait_ready(timeout=0.2)


def test_server_start_fails_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            OriginServer(OriginConfig(data_port=port)).start()


def test_given_ports_are_used() -> None:
    data, ctl = free_port(), free_port()
    with OriginServer(OriginConfig(data_port=data, control_port=ctl)) as srv:
        assert (srv.data_port, srv.control_port) == (data, ctl)
        assert exchange(data, get("/")).status == 200


# --------------------------------------------------------------------------- command line


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        assert selector.select(timeout), "origin printed nothing in time"
    return stream.readline()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_announces_ports_logs_json_and_stops_on_signal(stop_signal: signal.Signals) -> None:
    command = [sys.executable, "-m", "cachewright.harness.origin", "--data-port", "0", "--log-json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            ready = json.loads(_read_line(proc.stdout, 10))
            assert ready["event"] == "ready" and ready["pid"] == proc.pid
            assert ready["host"] == "127.0.0.1"
            with requests.Session() as session:  # keeps a connection open across the signal
                url = f"http://127.0.0.1:{ready['data_port']}/cli?q=1"
                rid = session.get(url, timeout=TIMEOUT).headers["X-Response-Id"]
                with OriginClient(f"http://127.0.0.1:{ready['control_port']}") as client:
                    assert client.count("/cli") == 1
                proc.send_signal(stop_signal)
                assert proc.wait(TIMEOUT) == 0
            log = json.loads(proc.stderr.readline())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert log["response_id"] == rid
    summary = (log["method"], log["target"], log["status"], log["outcome"])
    assert summary == ("GET", "/cli?q=1", 200, "ok")


def test_cli_exits_1_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cachewright.harness.origin", "--data-port", str(port)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("origin: cannot listen on 127.0.0.1:")


def test_the_shipped_server_files_run_on_the_standard_library_alone(tmp_path: Path) -> None:
    """What the docker runtime copies into a python3-only container: ``-S`` leaves out
    site-packages (requests, the editable install), so only the shipped files can be imported."""
    for name, code in server_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(code)
    assert "cachewright/harness/origin/client.py" not in server_files()
    command = [sys.executable, "-S", "-m", "cachewright.harness.origin", "--data-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            ready = json.loads(_read_line(proc.stdout, 10))
            answer = requests.get(f"http://127.0.0.1:{ready['data_port']}/shipped", timeout=TIMEOUT)
            assert answer.status_code == 200 and parse_echo(answer.content).path == "/shipped"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_rule_spec_type_matches_the_server(control: OriginClient) -> None:
    spec: RuleSpec = {"path": "/typed", "status": 202, "delay": 0, "body": "echo"}
    control.add_rule(spec)
    assert control.rules() == [{"path": "/typed", "status": 202}]


# --------------------------------------------------------------------------- answers for the rfc checks


def test_sequence_answers_in_turn_and_repeats_the_last(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule({"path": "/s", "cache_control": "max-age=9", "etag": "a",
                      "sequence": [{}, {"status": 304}, {"etag": "b", "status": 201}]})
    answers = [http.get(f"{server.data_url}/s", timeout=TIMEOUT) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 304, 201, 201]
    assert [r.headers["ETag"] for r in answers] == ['"a"', '"a"', '"b"', '"b"']
    assert all(r.headers["Cache-Control"] == "max-age=9" for r in answers)
    control.add_rule({"path": "/s", "sequence": [{"status": 202}, {}]})  # registering restarts it
    assert http.get(f"{server.data_url}/s", timeout=TIMEOUT).status_code == 202
    assert control.rules()[0]["sequence"] == [{"path": "/s", "status": 202}, {"path": "/s", "status": 200}]


def test_interim_responses_come_before_the_final_one(server: OriginServer, control: OriginClient) -> None:
    control.add_rule({"path": "/i", "interim": [103, 100], "cache_control": "max-age=5"})
    with connect(server.data_port) as sock, sock.makefile("rb") as stream:
        sock.sendall(get("/i"))
        first, second, final = read_response(stream), read_response(stream), read_response(stream)
    assert (first.status, second.status, final.status) == (103, 100, 200)
    assert first.headers == [] and final.header("Cache-Control") == "max-age=5"


def test_connection_names_hop_by_hop_fields(server: OriginServer, control: OriginClient) -> None:
    control.add_rule({"path": "/c", "connection": ["X-Hop"], "headers": {"X-Hop": "secret"}})
    raw = exchange(server.data_port, get("/c", "Connection: close"))
    assert raw.header("Connection") == "close, X-Hop"
    assert raw.header("X-Hop") == "secret"
    kept = exchange(server.data_port, get("/c"))
    assert kept.header("Connection") == "X-Hop"


def test_body_bytes_count_what_was_sent_not_304s_or_heads(
    server: OriginServer, control: OriginClient, http: requests.Session
) -> None:
    control.add_rule({"path": "/b", "etag": "v", "body": "filler", "body_size": 1000})
    http.get(f"{server.data_url}/b?cw=t1", timeout=TIMEOUT)
    http.get(f"{server.data_url}/b?cw=t1", headers={"If-None-Match": '"v"'}, timeout=TIMEOUT)
    http.head(f"{server.data_url}/b?cw=t1", timeout=TIMEOUT)
    assert control.body_bytes("/b?cw=t1") == 1000
    assert control.body_bytes("/b") == 1000
    control.reset_counts()
    assert control.body_bytes("/b") == 0
