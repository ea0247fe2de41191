"""``cachewright purge``: what it sends, where it reads nodes from, that it asks every node at once,
and on the real engines that a purge lands on both nodes while a dead node is named and fails."""

from __future__ import annotations

import argparse
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachewright.generator.errors import UsageError
from cachewright.generator.load import loads
from cachewright.harness.client import Client
from cachewright.harness.commands import purge
from cachewright.harness.commands.serve import describe
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.runtime.procs import free_ports

POLICY = """
version: 1
name: purge-command
origin: {url: http://app:8000}
listen:
  http: {port: 80}
  hosts: [shop.example.com]
cache: {default_ttl: 10m}
purge:
  allow: [127.0.0.1/32]
  kinds: [url, pattern, all]
accept_missing: {nginx: [purge.pattern, purge.all]}
"""
HOST = "shop.example.com"


def _parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` as ``cachewright purge`` parses it (a fresh parser, the module's own options)."""
    top = argparse.ArgumentParser(prog="cachewright")
    purge.add_parser(top.add_subparsers(dest="command", required=True))
    return top.parse_args(["purge", *argv])


def _lines(out: str) -> list[str]:
    """Output lines with runs of spaces collapsed (column widths depend on the port numbers)."""
    return [" ".join(line.split()) for line in out.splitlines()]


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    code: int = args.run(args)
    return code


# --------------------------------------------------------------------------- what it sends


@pytest.mark.parametrize(("argv", "method", "target", "host", "headers"), [
    (["/a?x=1"], "PURGE", "/a?x=1", None, {}),
    (["https://Shop.Example.com:8443/p/1?x=1"], "PURGE", "/p/1?x=1", "shop.example.com", {}),
    (["/products/", "--pattern", "--host", HOST], "BAN", "/products/", HOST, {}),
    (["--tag", "p1", "--tag", "p2"], "PURGE", "/", None, {"Cache-Tags": "p1 p2"}),
    (["--all"], "BAN", "/", None, {"Cache-Purge-Scope": "all"}),
])
def test_what_is_sent(argv: list[str], method: str, target: str, host: str | None,
                      headers: dict[str, str]) -> None:
    sent = purge.build_purge(_parse([*argv, "--node", "http://127.0.0.1:1"]))
    assert (sent.method, sent.target, sent.host, sent.headers) == (method, target, host, headers)


@pytest.mark.parametrize(("argv", "message"), [
    (["--node", "http://127.0.0.1:1"], "give the URL or path to purge"),
    (["/a"], "no node to purge"),
    (["a/b", "--node", "http://127.0.0.1:1"], "expected a path starting with '/'"),
    (["/a", "--node", "ftp://x"], "expected http[s]://HOST[:PORT]"),
    (["/a", "--node", "http://x:99999"], "expected http[s]://HOST[:PORT]"),
    (["--tag", "a b", "--node", "http://127.0.0.1:1"], "--tag takes one non-empty tag"),
    (["/a", "--nodes-from", "/nonexistent/nodes.txt"], "cannot read"),
    (["/a", "--node", "http://127.0.0.1:1", "--timeout", "0"], "--timeout must be positive"),
])
def test_bad_usage_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_two_kinds_at_once_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(["/a", "--pattern", "--all", "--node", "http://127.0.0.1:1"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_nodes_from_serve_json_and_from_a_text_file(tmp_path: Path) -> None:
    served = tmp_path / "serve.json"
    served.write_text(json.dumps({
        "origin": {"data": "http://127.0.0.1:1", "control": "http://127.0.0.1:2"},
        "engines": {"nginx": {"http": "http://127.0.0.1:6080", "https": "https://127.0.0.1:6443"},
                    "varnish": {"http": "http://127.0.0.1:6081"}},
        "ca_file": "/tmp/ca.pem"}) + "\n")
    nodes = purge.read_nodes(served)
    assert [(n.name, n.url) for n in nodes] == [("nginx http://127.0.0.1:6080", "http://127.0.0.1:6080"),
                                                ("varnish http://127.0.0.1:6081", "http://127.0.0.1:6081")]
    assert nodes[0].ca_file == Path("/tmp/ca.pem")
    with pytest.raises(UsageError, match="'varnish' has no https URL"):
        purge.read_nodes(served, "https")
    served.write_text(served.read_text().replace('"http": "http://127.0.0.1:6081"',
                                                 '"https": "https://127.0.0.1:6444"'))
    assert [n.url for n in purge.read_nodes(served)] == ["http://127.0.0.1:6080",
                                                         "https://127.0.0.1:6444"]
    assert [n.url for n in purge.read_nodes(served, "https")] == ["https://127.0.0.1:6443",
                                                                  "https://127.0.0.1:6444"]
    listed = tmp_path / "nodes.txt"
    listed.write_text("# cache fleet\nhttp://10.0.0.5\n\n10.0.0.6:6081  # no scheme: http\n")
    assert [n.url for n in purge.read_nodes(listed)] == ["http://10.0.0.5", "http://10.0.0.6:6081"]


# --------------------------------------------------------------------------- in parallel, bounded


class _SlowPurges(http.server.BaseHTTPRequestHandler):
    """Answers PURGE after ``delay`` seconds with ``200 Purged``."""

    delay = 0.6

    def do_PURGE(self) -> None:
        time.sleep(self.delay)
        body = b"200 Purged\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_nodes() -> Iterator[list[str]]:
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowPurges) for _ in range(4)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_nodes_are_asked_in_parallel(slow_nodes: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = _main(["/a", *[a for url in slow_nodes for a in ("--node", url)]])
    elapsed = time.monotonic() - started
    out = _lines(capsys.readouterr().out)
    assert code == 0
    assert elapsed < 4 * _SlowPurges.delay * 0.75, f"{elapsed:.2f}s: nodes were asked one by one"
    assert [line.split()[1] for line in out[:4]] == slow_nodes
    assert all(line.startswith("OK") and " 200 200 Purged " in line for line in out[:4])
    assert out[4] == "PURGE /a: 4 of 4 nodes purged"


def test_a_node_slower_than_the_timeout_fails(slow_nodes: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["/a", "--node", slow_nodes[0], "--timeout", "0.2"]) == 1
    line = _lines(capsys.readouterr().out)[0]
    assert line.startswith(f"FAIL {slow_nodes[0]} --- error: timed out")


# --------------------------------------------------------------------------- the real engines


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with LocalRuntime().start(loads(POLICY, "purge-command.yaml"), ("nginx", "varnish")) as running:
        yield running


def _client(stack: Stack, engine: str) -> Client:
    return Client(stack.endpoints[engine], HOST, stack.ca_file)


def _prime(stack: Stack, path: str) -> None:
    """Store ``path`` on both engines and prove it with a hit. The engine's own record is awaited
    first: nginx may finish its cache file after the client has the response (a CI run once saw
    the second request miss)."""
    for engine in ("nginx", "varnish"):
        _client(stack, engine).get(path)
        deadline = time.monotonic() + 3.0
        while not stack.stored(engine, path) and time.monotonic() < deadline:
            time.sleep(0.05)
        hit = _client(stack, engine).get(path)
        assert hit.cache.outcome == "hit", hit.summary()


def _outcome(stack: Stack, engine: str, path: str) -> str:
    return _client(stack, engine).get(path).cache.outcome


def _nodes(stack: Stack) -> list[str]:
    return [stack.endpoints[e].url() for e in ("nginx", "varnish")]


@pytest.mark.engine
def test_purge_on_both_engines(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    _prime(stack, "/cmd/one")
    nodes = _nodes(stack)
    code = _main([f"http://{HOST}/cmd/one", "--node", nodes[0], "--node", nodes[1]])
    out = _lines(capsys.readouterr().out)
    assert code == 0, out
    assert out[0].startswith(f"OK {nodes[0]} 200 Successful purge")
    assert out[1].startswith(f"OK {nodes[1]} 200 200 Purged")
    assert out[2] == "PURGE /cmd/one: 2 of 2 nodes purged"
    assert [_outcome(stack, e, "/cmd/one") for e in ("nginx", "varnish")] == ["miss", "miss"]


@pytest.mark.engine
def test_a_dead_node_fails_and_is_named(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    _prime(stack, "/cmd/two")
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    code = _main(["/cmd/two", "--host", HOST, "--node", _nodes(stack)[1], "--node", dead])
    out = _lines(capsys.readouterr().out)
    assert code == 1
    assert out[0].startswith(f"OK {_nodes(stack)[1]}")
    assert out[1].startswith(f"FAIL {dead}") and "error:" in out[1] and "refused" in out[1]
    assert out[2] == f"PURGE /cmd/two: 1 of 2 nodes purged; failed: {dead}"
    assert _outcome(stack, "varnish", "/cmd/two") == "miss"


@pytest.mark.engine
def test_nodes_from_serve_json_and_a_kind_one_engine_lacks(
        stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = tmp_path / "serve.json"
    served.write_text(json.dumps(describe(stack)) + "\n")
    _prime(stack, "/cmd/three/a")
    code = _main(["/cmd/three/", "--pattern", "--host", HOST, "--nodes-from", str(served)])
    out = _lines(capsys.readouterr().out)
    assert code == 1, out
    nginx, varnish = _nodes(stack)
    assert out[0].startswith(f"FAIL nginx {nginx} 501 501 Not Implemented")
    assert out[1].startswith(f"OK varnish {varnish} 200 200 Banned")
    assert out[2] == f"BAN /cmd/three/: 1 of 2 nodes purged; failed: nginx {nginx}"
    assert [_outcome(stack, e, "/cmd/three/a") for e in ("nginx", "varnish")] == ["hit", "miss"]
