"""The local runtime runs the real nginx, varnishd and hitch in front of the sample origin: misses
then hits (the origin's counts are the ground truth), bypasses, TTLs read from the engines' own
records, readiness failures with logs, missing binaries, and no leftovers after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from processes import gone

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.harness.client import Client
from cachewright.harness.engines import StoredObject
from cachewright.harness.engines import varnish as varnish_engine
from cachewright.harness.origin import OriginClient, OriginConfig, OriginServer
from cachewright.harness.runtime import procs
from cachewright.harness.runtime.api import HarnessError, Runtime, Stack
from cachewright.harness.runtime.local import TMPFS, LocalRuntime, LocalStack, varnish_workdir

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[1]
HOST = "shop.test"
POLICY = """\
version: 1
name: harness
origin:
  url: http://origin.test:8000
listen:
  hosts: [shop.test]
  http: {port: 80}
  https:
    port: 443
    certificate: unused.crt
    key: unused.key
    http2: true
cache:
  size: 64m
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 7m
  - name: account
    match: {path_prefix: /account}
    cache: false
"""
STATIC_TTL = 7 * 60
T = TypeVar("T")


def policy() -> Policy:
    return loads(POLICY, "harness-test.yaml")


def eventually(probe: Callable[[], T], timeout: float = 3.0) -> T:
    """``probe()`` once it is truthy (engines record a stored object just after answering)."""
    deadline = time.monotonic() + timeout
    while not (value := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def run_dirs() -> set[Path]:
    """Run directories, and Varnish workdirs kept apart from them (harness.runtime.local.varnish_workdir)."""
    return {*Path(tempfile.gettempdir()).glob("cachewright-run-*"), *TMPFS.glob("cachewright-run-*")}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalRuntime().start(policy(), ("nginx", "varnish")) as running:
        assert isinstance(running, LocalStack)
        yield running


@pytest.fixture
def origin(stack: LocalStack) -> Iterator[OriginClient]:
    with OriginClient(stack.origin.control_url) as client:
        client.reset()
        yield client


def client(stack: Stack, engine: str) -> Client:
    return Client(stack.endpoints[engine], HOST, stack.ca_file)


# --------------------------------------------------------------------------- a running stack


def test_local_runtime_is_a_runtime() -> None:
    runtime: Runtime = LocalRuntime()  # mypy checks the protocol
    assert runtime.name == "local"


def test_each_engine_has_its_own_ports_and_directory(stack: LocalStack) -> None:
    ports = [p for e in stack.endpoints.values() for p in (e.http_port, e.https_port)]
    assert len(set(ports)) == 4 and None not in ports
    assert {e.host for e in stack.endpoints.values()} == {"127.0.0.1"}
    assert (stack.run_dir / "nginx" / "nginx.conf").is_file()
    assert (stack.run_dir / "varnish" / "default.vcl").is_file()
    assert stack.run_dir.stat().st_mode & 0o777 == 0o755
    # varnishd's -n on tmpfs where the machine has one (Varnish's platform notes)
    workdir = varnish_workdir(stack.run_dir)
    assert (workdir / "_.vsm_mgt").is_dir(), workdir
    assert workdir.parent == TMPFS or not any(
        line.split()[1:3] == [str(TMPFS), "tmpfs"] for line in Path("/proc/self/mounts").read_text().splitlines())
    assert stack.alive("nginx") and stack.alive("varnish")


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_miss_then_hit_with_one_origin_request(stack: LocalStack, origin: OriginClient,
                                               engine: str, scheme: str) -> None:
    path = f"/static/{engine}-{scheme}.css"
    cache = client(stack, engine)
    first, second = cache.get(path, scheme=scheme), cache.get(path, scheme=scheme)
    assert (first.status, second.status) == (200, 200), cache.log
    assert (first.cache.outcome, second.cache.outcome) == ("miss", "hit"), cache.log
    assert first.response_id == second.response_id
    assert origin.count(path) == 1


@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_uncached_rule_reaches_the_origin_every_time(stack: LocalStack, origin: OriginClient,
                                                     engine: str) -> None:
    path = f"/account/{engine}"
    cache = client(stack, engine)
    outcomes = [cache.get(path).cache.outcome for _ in range(2)]
    assert outcomes == ["bypass", "bypass"], cache.log
    assert origin.count(path) == 2
    assert stack.stored(engine, path) == []


@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_https_offers_http2(stack: LocalStack, engine: str) -> None:
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    context.set_alpn_protocols(["h2", "http/1.1"])
    port = stack.endpoints[engine].https_port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=HOST) as tls:
        assert tls.selected_alpn_protocol() == "h2"


@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_stored_reports_the_rule_ttl(stack: LocalStack, origin: OriginClient, engine: str) -> None:
    path = f"/static/ttl-{engine}.js"
    assert client(stack, engine).get(path).cache.outcome == "miss"
    stored = eventually(lambda: stack.stored(engine, path))
    assert [s.ttl for s in stored] == [STATIC_TTL], stored
    assert stored[0].key.startswith(f"http://{HOST}/static/ttl-{engine}.js")


@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_stored_reports_the_origin_max_age(stack: LocalStack, origin: OriginClient,
                                           engine: str) -> None:
    path = f"/static/max-age-{engine}.js"
    origin.add_rule({"path": path, "cache_control": "max-age=33"})
    for scheme in ("http", "https"):
        client(stack, engine).get(path, scheme=scheme)
    stored: list[StoredObject] = eventually(lambda: _two(stack.stored(engine, path)))
    assert sorted(s.key.partition(":")[0] for s in stored) == ["http", "https"]
    assert [s.ttl for s in stored] == [33, 33], stored


def _two(stored: list[StoredObject]) -> list[StoredObject]:
    return stored if len(stored) == 2 else []


FETCH = """*   << BeReq    >> 32771
-   BereqURL       /a/x?q=1
-   BereqHeader    host: example.com
-   VCL_return     fetch
-   TTL            RFC 600 10 0 1795765099 1795765099 1795765098 0 600 cacheable
{vcl}-   VCL_return     deliver
"""


@pytest.mark.parametrize(("vcl", "expected"), [
    ("", (600.0, 10.0)),  # the builtin VCL sets nothing: the origin's headers decide
    ("-   TTL            VCL 120 30 0 1795765099 cacheable\n", (120.0, 30.0)),
    ("-   TTL            VCL 120 0 0 1795765099 uncacheable\n", None),  # hit-for-miss: not stored
])
def test_the_last_ttl_record_of_a_fetch_is_what_varnish_stored(vcl: str, expected: tuple[float, float] | None) -> None:
    stored = varnish_engine.fetch(FETCH.format(vcl=vcl), "/a/x")
    assert (stored and (stored.ttl, stored.grace)) == expected
    assert varnish_engine.fetch(FETCH.format(vcl=vcl), "/a/y") is None


def test_logs_hold_the_engines_output(stack: LocalStack) -> None:
    nginx = stack.logs("nginx")  # a healthy nginx logs nothing at "warn"; failures show its log
    assert nginx == "--- no log output from nginx" or "--- nginx/logs/" in nginx
    varnish = stack.logs("varnish", lines=200)
    assert "varnishd.log" in varnish and "hitch.log" in varnish
    with pytest.raises(HarnessError, match="'docker' is not running in this stack"):
        stack.logs("docker")


# --------------------------------------------------------------------------- failures


def test_user_origin_is_used_and_has_no_control_port() -> None:
    with OriginServer(OriginConfig()) as mine, \
            LocalRuntime().start(policy(), ("nginx",), origin_url=mine.data_url) as running:
        assert running.origin.control_url == ""
        assert client(running, "nginx").get("/static/mine.css").status == 200
        with OriginClient(mine.control_url) as control:
            assert control.count("/static/mine.css") == 1


@pytest.mark.parametrize(("engine", "timeout", "expected"), [
    ("nginx", 0.5, "timed out waiting for nginx"),        # nginx retries bind() for 2.5 s
    ("varnish", 15.0, "gave up waiting for varnishd"),   # varnishd exits at once
])
def test_port_taken_fails_with_what_was_awaited_and_logs(engine: str, timeout: float, expected: str) -> None:
    before = run_dirs()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(HarnessError) as failure, \
                LocalRuntime(ready_timeout=timeout, ports={engine: (taken, 0)}).start(policy(), (engine,)):
            pass
    message = str(failure.value)
    assert f"{expected} (pid " in message and f"to listen on 127.0.0.1:{taken}" in message
    assert "Address already in use" in message or "Could not get socket" in message, message
    assert run_dirs() == before


def test_free_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    """The kernel hands ephemeral ports to outgoing connections: one of those could take a port
    found free there before the engine binds it (varnishd: "-T ... could not be listened on")."""
    low = int(procs.EPHEMERAL_RANGE.read_text().split()[0])
    ports = procs.free_ports(30)
    assert len(set(ports)) == 30 and all(procs.LISTEN_PORTS_FROM <= port < low for port in ports), ports
    with contextlib.ExitStack() as stack:
        for port in ports:
            stack.enter_context(socket.socket()).bind(("127.0.0.1", port))


def test_free_ports_leave_the_choice_to_the_kernel_without_room_below_the_range(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "range").write_text("1024\t65535\n")
    monkeypatch.setattr(procs, "EPHEMERAL_RANGE", tmp_path / "range")
    assert len(set(procs.free_ports(3))) == 3


def test_missing_engine_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match=r"^nginx is not on PATH: .* apt-get install nginx-light"), \
            LocalRuntime().start(policy(), ("nginx", "varnish")):
        pass


def test_missing_hitch_for_https(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "varnishd").symlink_to("/usr/sbin/varnishd")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match=r"^hitch is not on PATH: .* apt-get install hitch\)$"), \
            LocalRuntime().start(policy(), ("varnish",)):
        pass


# --------------------------------------------------------------------------- no leftovers

# The child acts as a harness run from a terminal: Ctrl-C raises KeyboardInterrupt. (Started
# from a background job of a non-interactive shell, as CI may be, it would inherit SIGINT ignored.)
CHILD = """
import json, signal, sys, time
from cachewright.generator.load import loads
from cachewright.harness.runtime.local import LocalRuntime
signal.signal(signal.SIGINT, signal.default_int_handler)
with LocalRuntime().start(loads(sys.argv[1], "child.yaml"), ("nginx", "varnish")) as stack:
    pids = stack.pids("nginx") + stack.pids("varnish")
    print(json.dumps({"run_dir": str(stack.run_dir), "pids": pids}), flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_harness_leaves_nothing_behind(signum: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, POLICY], cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids: list[int] = []
    run_dir = None
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline() or "{}")
        assert started, child.communicate(timeout=30)[1]
        pids, run_dir = started["pids"], Path(started["run_dir"])
        assert len(pids) >= 6 and run_dir.is_dir() and not any(gone(p) for p in pids)
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            # The harness did not clean up: kill it, then what it started (by the PIDs it
            # reported), so a failing run leaves no engines behind either.
            child.kill()
            child.communicate()
            for pid in pids:
                if not gone(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
                shutil.rmtree(varnish_workdir(run_dir), ignore_errors=True)
    assert "KeyboardInterrupt" in err or "Terminated" in err, err
    assert [p for p in pids if not gone(p)] == []
    assert not run_dir.exists()
    assert not varnish_workdir(run_dir).exists()


@pytest.mark.engine
@pytest.mark.parametrize("engine", ["nginx", "varnish"])
def test_a_listener_port_taken_before_the_engine_binds_it_is_chosen_again(
        engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """free_ports releases the ports it chose for the engine to bind; another process may take
    one first (CI: varnishd's -T port). The runtime starts once more with fresh ports."""
    import cachewright.harness.runtime.ports

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real, calls = cachewright.harness.runtime.ports.free_ports, []

    def first_taken(count: int) -> list[int]:
        ports = real(count)
        calls.append(count)
        return [taken.getsockname()[1], *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(cachewright.harness.runtime.ports, "free_ports", first_taken)
    try:
        with LocalRuntime().start(loads(POLICY, "p.yaml"), (engine,)) as stack:
            assert stack.endpoints[engine].http_port != taken.getsockname()[1]
            assert len(calls) == 2
    finally:
        taken.close()
