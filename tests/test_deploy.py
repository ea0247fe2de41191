"""docs/deploy.md, done: its blocks run verbatim on a Debian 12 container, then curl-like requests
from the host prove the deployed engines cache.

The page's fenced blocks tagged ``deploy:<step>`` are the single source: the policy is compiled
with the page's own compile command, and the ``sh`` blocks run with ``sh -e`` in the container, in
the page's order. systemd does not run in a plain container: ``systemctl`` there is
tests/deploy_systemctl.py, which reads Debian's unit plus the drop-ins the blocks wrote and runs
their command lines, so the drop-ins' own ExecStart lines start the engines.

The container is the stand-in image built from Debian's packages (harness/images/build-local.sh;
the four tags are one image holding nginx, Varnish, Hitch and python3), with the sample origin on
127.0.0.1:8080 inside it and the engines' ports published on 127.0.0.1. Needs a Docker engine and,
for the page's ``--verify``, the engines on this machine: skipped where either is missing, except
with ``CI=true`` (then a failure).
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import io
import json
import os
import re
import secrets
import shlex
import socket
import ssl
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker import DockerClient
from docker.models.containers import Container

from cachewright.harness.cli import main as cachewright
from cachewright.harness.origin import server_files
from cachewright.harness.runtime.docker.daemon import API_VERSION
from cachewright.harness.runtime.docker.reaper import owner_labels

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "deploy.md"
BUILD_IMAGES = REPO / "harness" / "images" / "build-local.sh"
IMAGE = "cachewright/nginx:local"  # one image for all four tags: every engine is in it
HOST = "www.example.com"
PATH = "/static/app.css"  # the policy's "static" rule: cached 7 days whatever the origin says
CERT = "/etc/ssl/certs/www.example.com.crt"
ORIGIN = ["python3", "-m", "cachewright.harness.origin", "--host", "127.0.0.1", "--data-port", "8080",
          "--control-port", "8081"]
READY_TIMEOUT = 30.0
# What a Debian host has and the image lacks: build-local.sh empties /var/log (nginx-common made
# /var/log/nginx), and the minbase image has no procps, whose /bin/kill hitch.service's ExecReload
# calls (the shell's kill takes the same arguments).
HOST_SETUP = """install -d -g adm /var/log/nginx
[ -x /bin/kill ] || printf '#!/bin/sh\\nkill "$@"\\n' >/bin/kill && chmod 755 /bin/kill
"""
BLOCK = re.compile(r"^```(?P<lang>\w+) deploy:(?P<step>[\w-]+)\n(?P<body>.*?)^```$", re.M | re.S)


def doc_blocks() -> dict[str, str]:
    """The page's ``deploy:<step>`` blocks by step, in page order."""
    found = [(m.group("step"), m.group("body")) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]
    steps = [step for step, _ in found]
    assert len(steps) == len(set(steps)), f"a deploy step is tagged twice in {DOC.name}: {steps}"
    return dict(found)


BLOCKS = doc_blocks()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _no_answer(client: DockerClient) -> str | None:
    """Why the engine does not answer, or None. The SDK leaves the socket of a failed connect
    open (docker/transport/unixconn.py); it is collected here with its ResourceWarning ignored,
    which this project's filterwarnings = error would otherwise turn into an error at exit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client.ping()
            return None
        except (docker.errors.DockerException, OSError) as exc:  # requests' ConnectionError is an OSError
            reason = str(exc)
        gc.collect()
    return reason


@pytest.fixture(scope="module")
def docker_client() -> Iterator[DockerClient]:
    """A client of a Docker engine that answers, with the stand-in images built (a no-op when
    they exist). A fixed API version: the client then connects only when asked, so it can be
    closed when the engine does not answer (an unclosed socket is an error under pytest here)."""
    client = docker.from_env(version=API_VERSION)
    trouble = _no_answer(client)
    if trouble:
        client.close()
        _unavailable(f"no Docker engine answers: {trouble}")
    done = subprocess.run([str(BUILD_IMAGES)], capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        client.close()
        _unavailable(f"{BUILD_IMAGES.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's policy, compiled by the page's compile command; returns the cachewright-out/ directory."""
    work = tmp_path_factory.mktemp("deploy")
    (work / "policy.yaml").write_text(BLOCKS["policy"], encoding="utf-8")
    argv = shlex.split(BLOCKS["compile"])
    assert argv[0] == "cachewright", BLOCKS["compile"]
    with contextlib.chdir(work):
        assert cachewright(argv[1:]) == 0
    return work / "cachewright-out"


# --------------------------------------------------------------------------- the container


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    """An archive of ``{path: (content, mode)}`` for put_archive (paths relative to /)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _payload(build: Path) -> dict[str, tuple[bytes, int]]:
    """cachewright-out/ into /root (where the page's commands run), the systemctl stand-in, today's origin."""
    files = {f"root/cachewright-out/{p.relative_to(build)}": (p.read_bytes(), 0o644)
             for p in sorted(build.rglob("*")) if p.is_file()}
    files["usr/local/sbin/systemctl"] = ((REPO / "tests" / "deploy_systemctl.py").read_bytes(), 0o755)
    files.update({f"opt/cachewright/{name}": (code, 0o644) for name, code in server_files().items()})
    return files


@dataclass
class Host:
    """A running Debian container: a stand-in for the server of the page."""

    container: Container

    def sh(self, script: str, what: str) -> str:
        """Run ``script`` with ``sh -e`` in /root; fail with its output unless it succeeds."""
        code, out = self.container.exec_run(["sh", "-e", "-c", script], workdir="/root")
        assert isinstance(out, bytes)  # exec_run without stream=True
        text = out.decode(errors="replace")
        assert code == 0, f"{what} failed ({code}) in the container:\n{script}\n--- output:\n{text}"
        return text

    def step(self, name: str) -> str:
        """Run the page's block ``deploy:<name>``."""
        return self.sh(BLOCKS[name], f"docs/deploy.md block deploy:{name}")

    def port(self, inside: int) -> int:
        """The 127.0.0.1 port published for the container's ``inside`` port."""
        self.container.reload()
        bound = self.container.ports.get(f"{inside}/tcp")
        assert bound, f"port {inside} is not published: {self.container.ports}"
        return int(bound[0]["HostPort"])

    def origin_count(self, path: str) -> int:
        """How many requests for ``path`` the sample origin received (its control port)."""
        read = ("import sys, urllib.request; "
                "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        out = self.sh(f"python3 -c {shlex.quote(read)} 'http://127.0.0.1:8081/counts?path={path}'", "origin count")
        return int(json.loads(out)["count"])


@contextlib.contextmanager
def debian_host(client: DockerClient, build: Path, ports: tuple[int, ...]) -> Iterator[Host]:
    """A container of the stand-in image, the sample origin its main process; removed (by id)
    whatever happens. Its labels let the docker runtime's reaper remove it after a SIGKILL."""
    run_id = f"deploy-{secrets.token_hex(4)}"
    published: dict[str, Any] = {f"{p}/tcp": ("127.0.0.1", None) for p in ports}  # None: any free port
    container = client.containers.create(IMAGE, ORIGIN, init=True, hostname="www1",
                                         labels=owner_labels(run_id), ports=published)
    try:
        container.put_archive("/", _tar(_payload(build)))
        container.start()
        host = Host(container)
        host.sh(HOST_SETUP, "making the image look like an installed host")
        wait_for(lambda: host.origin_count("/") >= 0, "the sample origin's control port")
        yield host
    finally:
        container.remove(force=True)


def wait_for(probe: Callable[[], object], what: str) -> None:
    """Poll ``probe`` until it returns without raising, or fail naming ``what`` and the error."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            probe()
            return
        except (OSError, AssertionError, http.client.HTTPException) as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not ready within {READY_TIMEOUT:.0f} s: {exc}")
            time.sleep(0.2)


# --------------------------------------------------------------------------- requests from the host


@dataclass(frozen=True)
class Answer:
    """A response as the test needs it."""

    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def cache_status(self) -> list[str]:
        """The Cache-Status parameters, e.g. ['cachewright', 'hit', 'detail=static']."""
        return [p.strip() for p in self.headers.get("cache-status", "").split(";")]


def get(port: int, path: str, cafile: Path | None = None, host: str = HOST) -> Answer:
    """GET over 127.0.0.1:``port``, over TLS (SNI and verification for ``host``) with ``cafile``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if cafile is not None:
        context = ssl.create_default_context(cafile=str(cafile))
        conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                        server_hostname=host)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def cafile(host: Host, tmp_path: Path) -> Path:
    """The trial certificate the page's cert block made, copied out to trust it here."""
    path = tmp_path / "ca.crt"
    path.write_text(host.sh(f"cat {CERT}", "reading the certificate"), encoding="utf-8")
    return path


def assert_miss_then_hit(host: Host, https: int, ca: Path) -> str:
    """The page's check: a miss, then a hit of the same response, one request at the origin;
    returns the response id."""
    first, second = get(https, PATH, ca), get(https, PATH, ca)
    assert first.status == second.status == 200, (first, second)
    assert "fwd=miss" in first.cache_status(), first.headers
    assert "hit" in second.cache_status(), second.headers
    assert first.headers["x-response-id"] == second.headers["x-response-id"], (first.headers, second.headers)
    assert host.origin_count(PATH) == 1
    return first.headers["x-response-id"]


def assert_still_hit(host: Host, https: int, ca: Path, response_id: str, after: str) -> None:
    """After a reload the stored object still answers, and the origin saw nothing new."""
    answer = get(https, PATH, ca)
    assert "hit" in answer.cache_status(), f"after {after}: {answer.headers}"
    assert answer.headers["x-response-id"] == response_id, f"after {after}: {answer.headers}"
    assert host.origin_count(PATH) == 1, f"after {after}"


def assert_redirects(http_port: int) -> None:
    """Plain HTTP answers 301 to the same URL on HTTPS (listen.https.redirect_http)."""
    answer = get(http_port, PATH)
    assert answer.status == 301, answer
    assert answer.headers["location"] == f"https://{HOST}{PATH}", answer.headers


def check_packages(host: Host, step: str) -> None:
    """The page's apt-get line names packages the image (built from Debian's) has installed."""
    words = shlex.split(BLOCKS[step])
    assert words[:2] == ["apt-get", "install"], BLOCKS[step]
    host.sh(f"dpkg -s {' '.join(words[2:])} >/dev/null", f"dpkg -s of {step}")


# --------------------------------------------------------------------------- the tests

NGINX_INSTALL = ("cert", "nginx", "nginx-start")
NGINX_RELOADS = ("nginx-reload",)
VARNISH_INSTALL = ("cert", "varnish", "varnish-start")
VARNISH_RELOADS = ("varnish-reload", "varnish-reload-by-hand", "hitch-reload")
CHECKED = ("policy", "compile", "packages-nginx", "packages-varnish", "varnish-dropin")
SH_FENCE = re.compile(r"^```sh\b(?P<info>.*)$", re.M)


def test_every_block_of_the_page_is_run() -> None:
    """A block added to the page is added to a test here; the only sh blocks left untagged are the
    reader's curl checks, which the tests below make themselves."""
    used = {*CHECKED, *NGINX_INSTALL, *NGINX_RELOADS, *VARNISH_INSTALL, *VARNISH_RELOADS,
            "nginx-undo", "varnish-undo"}
    assert set(BLOCKS) == used
    text = DOC.read_text(encoding="utf-8")
    untagged = [m.start() for m in SH_FENCE.finditer(text) if "deploy:" not in m.group("info")]
    assert all(text[i:text.index("```", i + 3)].count("curl") for i in untagged)


@pytest.mark.docker
@pytest.mark.engine
def test_nginx_as_the_main_configuration(docker_client: DockerClient, build: Path, tmp_path: Path) -> None:
    with debian_host(docker_client, build, (80, 443)) as host:
        check_packages(host, "packages-nginx")
        for step in NGINX_INSTALL:
            host.step(step)
        https, plain, ca = host.port(443), host.port(80), cafile(host, tmp_path)
        wait_for(lambda: get(plain, "/"), "nginx on port 80")
        response_id = assert_miss_then_hit(host, https, ca)
        assert_redirects(plain)
        owners = "stat -c %U:%G /var/lib/cachewright/nginx/cache /var/lib/cachewright/nginx/tmp/proxy"
        assert host.sh(owners, "cache owners").split() == ["www-data:www-data", "www-data:root"]
        for step in NGINX_RELOADS:
            host.step(step)
            assert_still_hit(host, https, ca, response_id, f"deploy:{step}")
        rotate = re.search(r"postrotate\n\s*(.+)\n", BLOCKS["nginx"])
        assert rotate, "no postrotate command in the logrotate file of deploy:nginx"
        host.sh(rotate.group(1), "logrotate's postrotate command")
        assert_still_hit(host, https, ca, response_id, "logrotate's postrotate command")
        host.step("nginx-undo")
        stock = get(plain, "/", host="localhost")
        assert stock.status == 200 and b"Welcome to nginx" in stock.body, stock
        assert "cache-status" not in stock.headers


@pytest.mark.docker
@pytest.mark.engine
def test_varnish_and_hitch_with_the_drop_in(docker_client: DockerClient, build: Path, tmp_path: Path) -> None:
    with debian_host(docker_client, build, (80, 443, 6081)) as host:
        check_packages(host, "packages-varnish")
        for step in VARNISH_INSTALL:
            host.step(step)
        dropin = host.sh("cat /etc/systemd/system/varnish.service.d/cachewright.conf", "reading the drop-in")
        assert dropin == BLOCKS["varnish-dropin"], "the drop-in shown in docs/deploy.md differs from the one written"
        https, plain, ca = host.port(443), host.port(80), cafile(host, tmp_path)
        wait_for(lambda: get(https, "/", ca), "hitch on port 443 in front of varnishd")
        response_id = assert_miss_then_hit(host, https, ca)
        assert_redirects(plain)
        for step in VARNISH_RELOADS:
            host.step(step)
            assert_still_hit(host, https, ca, response_id, f"deploy:{step}")
        host.step("varnish-undo")
        stock = host.port(6081)
        wait_for(lambda: get(stock, "/"), "Debian's varnishd on port 6081")
        assert "cache-status" not in get(stock, "/").headers
