"""The load generator of ``cachewright compare``, against a real HTTP server on 127.0.0.1.

The server counts requests per path and connections; its counts are the ground truth the
clients' own counts are checked against. wrk tests skip where wrk is missing, except in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cachewright.harness.compare import load, loadspec, wrk
from cachewright.harness.compare.builtin import run_builtin
from cachewright.harness.compare.load import ideal_hit_ratio, run_load, zipf_paths
from cachewright.harness.compare.loadspec import LoadResult
from cachewright.harness.compare.wrk import run_wrk
from cachewright.harness.runtime.api import HarnessError
from cachewright.harness.runtime.tlsfiles import write_tls_files

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None and os.environ.get("CI", "").lower() != "true",
                               reason="wrk is not on PATH (Debian: apt-get install wrk)")


class Handler(BaseHTTPRequestHandler):
    """Answers by path: /chunked/…, /close/… (Content-Length, then close), /eof/… (body ended by
    the close), /missing (404), /slow (after 0.5 s); anything else 200 with Content-Length."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls
    server: Server

    def do_GET(self) -> None:
        self.server.count(self.path)
        if self.path == "/slow":
            time.sleep(0.5)
        self.send_response(404 if self.path == "/missing" else 200)
        if self.path.startswith("/chunked/"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
            return
        if self.path.startswith(("/close/", "/eof/")):
            self.send_header("Connection", "close")
        body = f"body of {self.path}\n".encode()
        if not self.path.startswith("/eof/"):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.connections = 0

    def count(self, path: str) -> None:
        with self.lock:
            self.counts[path] += 1

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):  # a client that gave up
            super().handle_error(request, client_address)

    @property
    def served(self) -> int:
        return sum(self.counts.values())

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server_address[1]}{path}"


@contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as running:
        yield running


def assert_latency_ordered(result: LoadResult) -> None:
    latency = result.latency_ms
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert 0 < latency["mean"] <= latency["max"]
    values = [ms for _, ms in result.latency_cdf]
    assert values == sorted(values)
    assert [p for p, _ in result.latency_cdf] == list(loadspec.CDF_PERCENTILES)


# --------------------------------------------------------------------------- builtin client


def test_builtin_bounded_by_max_requests_matches_the_servers_counts(server: Server) -> None:
    paths = ["/a", "/b", "/c", "/d"]
    result = run_builtin([server.url(p) for p in paths], host=None, concurrency=4, duration_s=10,
                         max_requests=200)
    assert (result.tool, result.requests, result.errors) == ("builtin", 200, 0)
    assert server.counts == {path: 50 for path in paths}
    assert result.statuses == {200: 200}
    assert server.connections == 4  # keep-alive: one connection each
    assert result.duration_s < 5 and result.rps == pytest.approx(200 / result.duration_s)
    assert_latency_ordered(result)


def test_builtin_counts_statuses(server: Server) -> None:
    result = run_builtin([server.url("/ok"), server.url("/missing")], host=None, concurrency=2,
                         duration_s=10, max_requests=10)
    assert result.statuses == {200: 5, 404: 5}
    assert (result.status_errors, result.errors) == (5, 0)


@pytest.mark.parametrize(("prefix", "connections"), [("/chunked/", 2), ("/close/", 20), ("/eof/", 20)])
def test_builtin_reads_chunked_and_closed_bodies(server: Server, prefix: str, connections: int) -> None:
    result = run_builtin([server.url(f"{prefix}{i}") for i in range(5)], host=None, concurrency=2,
                         duration_s=10, max_requests=20)
    assert (result.requests, result.errors) == (20, 0)
    assert server.served == 20
    assert server.connections == connections


def test_builtin_reports_every_response_to_the_callback(server: Server) -> None:
    seen: list[tuple[float, str, int, Mapping[str, str]]] = []
    result = run_builtin([server.url("/x"), server.url("/missing")], host="shop.example", concurrency=3,
                         duration_s=10, max_requests=30, on_response=lambda *args: seen.append(args))
    assert len(seen) == result.requests == 30
    times = [t for t, _, _, _ in seen]
    assert times == sorted(times) and 0 < times[-1] <= result.duration_s
    assert Counter((path, status) for _, path, status, _ in seen) == {("/x", 200): 15, ("/missing", 404): 15}
    assert all(headers["content-length"] for _, _, _, headers in seen)


def test_builtin_stops_at_the_deadline(server: Server) -> None:
    result = run_builtin([server.url("/t")], host=None, concurrency=2, duration_s=0.3)
    assert 0.3 <= result.duration_s < 1.5
    assert result.requests == server.served > 0


def test_builtin_counts_timeouts_as_errors(server: Server) -> None:
    result = run_builtin([server.url("/slow")], host=None, concurrency=1, duration_s=10, max_requests=2,
                         timeout_s=0.2)
    assert (result.requests, result.errors, result.statuses) == (0, 2, {})
    assert result.latency_ms == dict.fromkeys(("mean", "p50", "p90", "p99", "max"), 0.0)


def test_builtin_verifies_https_against_the_given_ca(tmp_path: Path) -> None:
    files = write_tls_files(tmp_path / "tls", ["shop.example"])
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(files.cert, files.key)
    with serving(tls) as running:
        url = running.url("/s", "https")
        trusted = run_builtin([url], host="shop.example", concurrency=1, duration_s=10, max_requests=3,
                              ca_file=files.ca)
        untrusted = run_builtin([url], host="shop.example", concurrency=1, duration_s=10, max_requests=3)
    assert (trusted.requests, trusted.errors) == (3, 0)
    assert (untrusted.requests, untrusted.errors) == (0, 3)


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://example.com/a", "http://localhost:8080/"])
def test_rejects_targets_off_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="load target must be a loopback IP address such as 127.0.0.1"):
        run_builtin([url], host=None, concurrency=1, duration_s=1)
    with pytest.raises(ValueError, match="loopback"):
        run_wrk([url], host=None, concurrency=1, duration_s=1)


def test_a_refused_connection_is_an_error_or_a_clear_message() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/a"
    result = run_builtin([url], host=None, concurrency=2, duration_s=0.2)
    assert result.requests == 0 and result.errors > 0
    if shutil.which("wrk"):
        with pytest.raises(HarnessError, match="unable to connect to 127.0.0.1"):
            run_wrk([url], host=None, concurrency=1, duration_s=1)


def test_a_failing_callback_is_raised_as_itself(server: Server) -> None:
    def fail(*_: object) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        run_builtin([server.url("/a")], host=None, concurrency=2, duration_s=5, max_requests=4, on_response=fail)


def test_rejects_mixed_origins_and_header_injection() -> None:
    with pytest.raises(ValueError, match="must share one scheme, host and port"):
        run_builtin(["http://127.0.0.1:1/a", "http://127.0.0.1:2/a"], host=None, concurrency=1, duration_s=1)
    with pytest.raises(ValueError, match="invalid request header 'Host'"):
        run_builtin(["http://127.0.0.1:1/a"], host="a\r\nX-Evil: 1", concurrency=1, duration_s=1)
    with pytest.raises(ValueError, match="wrk runs for a time"):
        run_wrk(["http://127.0.0.1:1/a"], host=None, concurrency=1, duration_s=1, max_requests=5)


# --------------------------------------------------------------------------- wrk


def require_wrk() -> None:
    assert shutil.which("wrk"), "CI=true: wrk must be installed (apt-get install wrk)"


@needs_wrk
def test_wrk_counts_agree_with_the_server(server: Server) -> None:
    require_wrk()
    paths = [f"/k{i}" for i in range(1000)]
    result = run_wrk([server.url(p) for p in paths], host="shop.example", concurrency=4, duration_s=1)
    assert result.tool.startswith("wrk 4.")
    assert result.errors == 0 and result.statuses == {}
    assert 0 < result.requests <= server.served <= result.requests + 4  # at most one in flight per connection
    assert set(server.counts) <= set(paths)
    assert 0.9 < result.duration_s < 2 and result.rps == pytest.approx(result.requests / result.duration_s)
    assert_latency_ordered(result)


@needs_wrk
def test_wrk_counts_statuses_when_asked(server: Server) -> None:
    require_wrk()
    result = run_wrk([server.url("/ok"), server.url("/missing")], host=None, concurrency=2, threads=2,
                     duration_s=1, count_statuses=True)
    assert set(result.statuses) == {200, 404}
    assert sum(result.statuses.values()) == result.requests
    assert result.status_errors == result.statuses[404]
    assert abs(result.statuses[200] - result.statuses[404]) <= 4  # the paths alternate


def test_an_overrunning_load_tool_is_killed() -> None:
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"did not finish within 0.3s and was killed"):
        wrk._run_bounded([sys.executable, "-c", "import time; time.sleep(30)"], 0.3)
    assert time.monotonic() - started < 5


def test_run_load_picks_the_client_that_can_do_what_is_asked(server: Server,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    wrk_runs: list[Mapping[str, object]] = []

    def fake_wrk(urls: list[str], **options: object) -> LoadResult:
        wrk_runs.append(options)
        return LoadResult("wrk 4.1.0", 0, 0, {}, 1.0, 0.0, {}, [])

    monkeypatch.setattr(load, "run_wrk", fake_wrk)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    url = [server.url("/p")]
    assert run_load(url, host=None, concurrency=1, duration_s=1, count_statuses=True).tool == "wrk 4.1.0"
    assert wrk_runs[0]["count_statuses"] is True
    for options in ({"max_requests": 2}, {"max_requests": 2, "prefer": "builtin"},
                    {"max_requests": 2, "on_response": lambda *_: None}):
        assert run_load(url, host=None, concurrency=1, duration_s=5, **options).tool == "builtin"
    assert len(wrk_runs) == 1
    assert server.served == 6


# --------------------------------------------------------------------------- request mix and results


def test_zipf_paths_are_deterministic_and_skewed() -> None:
    paths = zipf_paths(2000, 50, s=1.0, seed=7, prefix="/z/")
    assert paths == zipf_paths(2000, 50, s=1.0, seed=7, prefix="/z/")
    assert paths != zipf_paths(2000, 50, s=1.0, seed=8, prefix="/z/")
    assert len(set(paths)) <= 50 and all(p.startswith("/z/") for p in paths)
    ranked = Counter(paths).most_common()
    assert ranked[0][0] == "/z/1" and ranked[0][1] > 4 * Counter(paths)["/z/10"]
    assert zipf_paths(5, 1) == ["/1"] * 5 and zipf_paths(0, 3) == []


def test_ideal_hit_ratio() -> None:
    assert ideal_hit_ratio(["/a", "/b", "/a", "/a"]) == 0.5
    assert ideal_hit_ratio(["/a", "/b"]) == 0.0
    assert ideal_hit_ratio([]) == 0.0
    assert ideal_hit_ratio(zipf_paths(10, 1)) == 0.9


def test_result_to_json_is_plain() -> None:
    result = LoadResult("builtin", 3, 1, {404: 1, 200: 2}, 1.5, 2.0,
                        {"mean": 1.0, "p50": 1.0, "p90": 2.0, "p99": 2.0, "max": 2.0}, [(50.0, 1.0), (99.9, 2.0)], 1)
    data = json.loads(json.dumps(result.to_json()))
    assert data["statuses"] == {"200": 2, "404": 1} and list(data["statuses"]) == ["200", "404"]
    assert data["latency_cdf"] == [[50.0, 1.0], [99.9, 2.0]]
    assert (data["tool"], data["requests"], data["errors"], data["status_errors"]) == ("builtin", 3, 1, 1)
