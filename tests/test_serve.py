"""``cachewright serve``'s listen ports: --port, the policy's own ports when free, a free port
(with a note) when the policy's is taken, an error when --port's is; curled on the real engines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.harness.runtime import ports
from cachewright.harness.runtime.api import HarnessError
from cachewright.harness.runtime.procs import free_ports

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "examples" / "static-site" / "policy.yaml"
CLI = [sys.executable, "-m", "cachewright.harness"]


def policy_on(tmp_path: Path, http: int, https: int | None = None) -> Path:
    """A small policy listening on ``http`` (and ``https``) with one cached rule."""
    tls = f"\n  https: {{port: {https}, certificate: c.pem, key: k.pem}}" if https else ""
    path = tmp_path / "app.yaml"
    path.write_text(f"version: 1\nname: app\norigin: {{url: 'http://app:8000'}}\n"
                    f"listen:\n  http: {{port: {http}}}{tls}\n"
                    "rules:\n  - name: pages\n    match: {path_prefix: /}\n    ttl: 1m\n", encoding="utf-8")
    return path


def _policy(tmp_path: Path, http: int, https: int | None = None) -> Policy:
    path = policy_on(tmp_path, http, https)
    return loads(path.read_text(encoding="utf-8"), str(path))


@contextmanager
def serving(*argv: str) -> Iterator[tuple[dict[str, object], subprocess.Popen[str], list[str]]]:
    """``cachewright serve ... --json`` running: its URLs, the process and (once stopped) its
    stderr; stopped by its PID (SIGINT, as Ctrl-C)."""
    proc = subprocess.Popen([*CLI, "serve", *argv, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line, f"serve printed no URLs: {proc.communicate(timeout=30)[1]}"
        yield json.loads(line), proc, stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        stderr.append(proc.stderr.read())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def curl(url: str, host: str) -> tuple[int, str]:
    """(status, Cache-Status) of ``curl -si`` against ``url``."""
    done = subprocess.run(["curl", "-si", "--max-time", "10", "-H", f"Host: {host}", url],
                          capture_output=True, text=True, timeout=20, check=True)
    head = done.stdout.split("\r\n\r\n", 1)[0].splitlines()
    status = int(head[0].split()[1])
    cache = next((line.split(":", 1)[1].strip() for line in head if line.lower().startswith("cache-status:")), "")
    return status, cache


@pytest.mark.engine
def test_serve_listens_on_the_port_given_and_is_curled_there() -> None:
    port = free_ports(1)[0]
    with serving(str(STATIC), "--engine", "nginx", "--port", str(port)) as (info, _, _):
        assert info["engines"] == {"nginx": {"http": f"http://127.0.0.1:{port}"}}
        first = curl(f"http://127.0.0.1:{port}/guide/serve-port", "docs.example.com")
        second = curl(f"http://127.0.0.1:{port}/guide/serve-port", "docs.example.com")
    assert first[0] == 200 and "fwd=miss" in first[1]
    assert second[0] == 200 and "; hit" in second[1]


@pytest.mark.engine
def test_serve_honours_the_policys_port_for_the_first_engine(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    with serving(str(policy_on(tmp_path, port)), "--engine", "varnish") as (info, _, stderr):
        assert info["engines"] == {"varnish": {"http": f"http://127.0.0.1:{port}"}}
        assert curl(f"http://127.0.0.1:{port}/a", "cachewright.test")[0] == 200
    assert stderr == ["stopping\n"]


@pytest.mark.engine
def test_a_taken_policy_port_falls_back_to_a_free_one_and_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serving(str(policy_on(tmp_path, port)), "--engine", "nginx") as (info, proc, _):
            url = info["engines"]["nginx"]["http"]  # type: ignore[index]
            assert url != f"http://127.0.0.1:{port}"
            assert curl(f"{url}/a", "cachewright.test")[0] == 200
            assert proc.stderr is not None
            assert proc.stderr.readline() == (
                f"note: listen.http.port {port} is in use on 127.0.0.1 (Address already in use): nginx "
                "listens for http on a free port instead (choose one with --port)\n")


@pytest.mark.engine
def test_a_taken_port_given_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*CLI, "serve", str(STATIC), "--engine", "nginx", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert done.stderr == (f"--port {port}: the port is in use on 127.0.0.1 (Address already in use); "
                           "choose another --port\n")


@pytest.mark.docker
def test_serve_on_docker_publishes_the_port_given() -> None:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: no Docker engine answers: {exc}", pytrace=False)
        pytest.skip(f"no Docker engine answers: {exc}")
    port = free_ports(1)[0]
    argv = (str(STATIC), "--runtime", "docker", "--engine", "varnish", "--port", str(port))
    with serving(*argv) as (info, _, _):
        assert info["engines"] == {"varnish": {"http": f"http://127.0.0.1:{port}"}}
        first = curl(f"http://127.0.0.1:{port}/guide/serve-docker", "docs.example.com")
        second = curl(f"http://127.0.0.1:{port}/guide/serve-docker", "docs.example.com")
    assert first[0] == 200 and "fwd=miss" in first[1] and "; hit" in second[1]


def test_https_port_for_a_policy_without_https_is_a_usage_error() -> None:
    done = subprocess.run([*CLI, "serve", str(STATIC), "--engine", "nginx", "--https-port", "8443"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (2, 3)  # 3: no engine installed here, found first
    if done.returncode == 2:
        assert done.stderr == "--https-port 8443: the policy serves no HTTPS (listen.https)\n"


# --------------------------------------------------------------------------- the choice itself


def test_the_first_engine_gets_the_policys_ports_the_others_free_ones(tmp_path: Path) -> None:
    http, https = free_ports(2)
    choice = ports.choose(_policy(tmp_path, http, https), ("nginx", "varnish"))
    assert choice.fixed == {"nginx": (http, https)}
    assert choice.notes == (f"note: ports {http} and {https} go to nginx; varnish listens on free ports "
                            "(serve varnish there with --engine varnish)",)


def test_options_win_over_the_policy_and_a_missing_listener_asks_for_nothing(tmp_path: Path) -> None:
    policy, wanted = _policy(tmp_path, 80), free_ports(1)[0]
    assert ports.choose(policy, ("varnish",), wanted).fixed == {"varnish": (wanted, 0)}


def test_a_privileged_port_is_refused_when_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    choice = ports.choose(_policy(tmp_path, 80), ("nginx",))
    assert choice.fixed == {}
    assert choice.notes == ("note: listen.http.port 80 is privileged (below 1024) and cachewright is not "
                            "running as root: nginx listens for http on a free port instead (choose one "
                            "with --port)",)
    with pytest.raises(HarnessError, match=r"^--port 80: the port is privileged"):
        ports.choose(_policy(tmp_path, 80), ("nginx",), 80)


def test_the_same_port_for_both_is_refused(tmp_path: Path) -> None:
    http, https = free_ports(2)
    with pytest.raises(HarnessError, match="both"):
        ports.choose(_policy(tmp_path, http, https), ("nginx",), http, http)


def test_engine_ports_keep_the_fixed_ones_and_draw_the_rest() -> None:
    fixed = free_ports(2)
    drawn = ports.engine_ports({"varnish": (fixed[0], 0)}, "varnish", 2)
    assert drawn[0] == fixed[0] and len(set(drawn)) == 4
    assert len(set(ports.engine_ports({}, "nginx"))) == 2
