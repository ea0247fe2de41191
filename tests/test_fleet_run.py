"""A compiled fleet behaves: an nginx or Varnish edge in front of a sharded Varnish shield, each node a
plain process on its own loopback address (127.0.0.2, .3, .4), the sample origin on 127.0.0.1.

This test starts the nodes itself, from the files ``compile`` writes as they are (the harness's
fleet runtime adapts them: tests/test_fleet_harness.py), and reads the sample origin's request
count.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests

from cachewright.generator.load import loads
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.origin import OriginClient, OriginConfig, OriginServer

pytestmark = pytest.mark.engine

EDGE, SHIELDS = "127.0.0.2", ("127.0.0.3", "127.0.0.4")
Run = tuple[str, OriginClient, int]
PATHS = ("/static/a.css", "/static/b.css", "/static/c.css", "/static/d.css")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _policy(edge_engine: str, origin_port: int, edge_port: int, shield_port: int) -> str:
    return f"""
version: 1
name: fleet-run
origin: {{url: "http://127.0.0.1:{origin_port}"}}
listen: {{http: {{port: {edge_port}}}}}
rules:
  - name: static
    match: {{path_prefix: /static/}}
    ttl: 1h
    origin_headers: override
fleet:
  tiers:
    - name: edge
      engine: {edge_engine}
      nodes: [{{name: edge-1, address: {EDGE}}}]
    - name: shield
      engine: varnish
      routing: shard
      port: {shield_port}
      nodes:
        - {{name: shield-1, address: {SHIELDS[0]}}}
        - {{name: shield-2, address: {SHIELDS[1]}}}
  health: {{interval: 1s, timeout: 1s, window: 2, threshold: 1}}
"""


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {address}:{port} after 20 s: {log.read_text(errors='replace')[-2000:]}")


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _start_nginx(stack: ExitStack, node: Path, port: int) -> None:
    for sub in ("logs", "cache", "tmp"):
        (node / "nginx" / sub).mkdir(mode=0o777)
        (node / "nginx" / sub).chmod(0o777)  # workers run as nobody when the test runs as root
    argv = ["nginx", "-p", f"{node / 'nginx'}/", "-c", str(node / "nginx" / "nginx.conf"),
            "-e", str(node / "nginx" / "logs" / "error.log"), "-g", "daemon off;"]
    log = node / "nginx" / "logs" / "stderr.log"
    _wait_listening(EDGE, port, stack.enter_context(_process(argv, log)), log)


def _start_varnish(stack: ExitStack, node: Path, address: str, port: int) -> None:
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # varnishd's log is a mapped file
    workdir = Path(tempfile.mkdtemp(prefix="cw-fleet-varnish-", dir=shm))
    workdir.chmod(0o755)
    stack.callback(shutil.rmtree, workdir, True)
    args = [line for line in (node / "varnish" / "varnishd.args").read_text().splitlines()
            if line and not line.startswith("#")]
    jail = "unix,user=varnish,workuser=vcache" if os.geteuid() == 0 else "none"
    argv = ["varnishd", "-F", "-n", str(workdir / "n"), "-f", str(node / "varnish" / "default.vcl"),
            "-T", f"127.0.0.1:{_free_port()}", "-j", jail,
            *(part for line in args for part in line.split(" ", 1))]
    log = node / "varnishd.log"
    _wait_listening(address, port, stack.enter_context(_process(argv, log)), log)


@pytest.fixture(params=["nginx", "varnish"], ids=["nginx-edge", "varnish-edge"])
def fleet_run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """The fleet running: the edge's URL, the origin's control client and the shields' port."""
    for binary in ("nginx", "varnishd"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    root = Path(tempfile.mkdtemp(prefix="cw-fleet-"))
    root.chmod(0o755)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        origin = stack.enter_context(OriginServer(OriginConfig()))
        edge_port, shield_port = _free_port(), _free_port()
        policy = loads(_policy(request.param, origin.data_port, edge_port, shield_port), "fleet-run.yaml")
        for f in compile_policy(policy).files:
            (root / f.path).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            (root / f.path).write_text(f.text, encoding="utf-8")
        for i, address in enumerate(SHIELDS, 1):
            _start_varnish(stack, root / f"shield-{i}", address, shield_port)
        if request.param == "nginx":
            _start_nginx(stack, root / "edge-1", edge_port)
        else:
            _start_varnish(stack, root / "edge-1", EDGE, edge_port)
        client = stack.enter_context(OriginClient(f"http://127.0.0.1:{origin.control_port}"))
        yield f"http://{EDGE}:{edge_port}", client, shield_port


def _get(url: str) -> requests.Response:
    return requests.get(url, headers={"Host": "shop.example.com"}, timeout=10)


def test_a_miss_reaches_the_origin_once_and_the_next_request_is_an_edge_hit(
        fleet_run: Run) -> None:
    edge, origin, _ = fleet_run
    for path in PATHS:
        first = _get(edge + path)
        assert first.status_code == 200, first.text
        status = first.headers["Cache-Status"]
        # RFC 9211 2: the shield's entry first (nearest the origin), then the edge's
        assert status.endswith("edge-1; fwd=miss; detail=static"), status
        assert "; fwd=miss; detail=static, edge-1" in status and status.startswith("shield-"), status
        second = _get(edge + path)
        assert second.headers["Cache-Status"].endswith("edge-1; hit; detail=static"), second.headers
        assert origin.count(path) == 1, (path, origin.count(path))


def test_the_shard_tier_stores_each_object_on_one_node(fleet_run: Run) -> None:
    edge, origin, shield_port = fleet_run
    owners = {path: _get(edge + path).headers["Cache-Status"].split(";")[0] for path in PATHS}
    assert set(owners.values()) <= {"shield-1", "shield-2"}, owners
    # a shield asked directly answers the objects it owns from its cache, and only those
    for path, owner in owners.items():
        for i, address in enumerate(SHIELDS, 1):
            status = _get(f"http://{address}:{shield_port}{path}").headers["Cache-Status"]
            expected = "hit" if f"shield-{i}" == owner else "fwd=miss"
            assert status == f"shield-{i}; {expected}; detail=static", (path, owner, status)
        assert origin.count(path) == 2  # the edge's miss, and the other shield's



def test_the_shield_believes_forwarding_headers_from_the_edge_only(fleet_run: Run) -> None:
    edge, origin, shield_port = fleet_run
    spoofed = {"Host": "shop.example.com", "X-Forwarded-For": "203.0.113.9",
               "X-Forwarded-Proto": "https"}
    through = requests.get(edge + "/static/through.css", headers=spoofed, timeout=10)
    direct = requests.get(f"http://{SHIELDS[0]}:{shield_port}/static/direct.css", headers=spoofed,
                          timeout=10)
    assert through.status_code == direct.status_code == 200
    for path in ("/static/through.css", "/static/direct.css"):
        seen = origin.last_request(path)
        assert seen is not None
        # the client's own address (127.0.0.1): not the edge's 127.0.0.2, never the spoofed one
        assert seen.header("X-Forwarded-For") == "127.0.0.1", (path, seen)
        assert seen.header("X-Forwarded-Proto") == "http", (path, seen)
