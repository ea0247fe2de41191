"""Hitch hands HTTPS to Varnish over a Unix socket only Hitch's user may open (the compile option
--varnish-proxy-listen PATH): proven on the real varnishd and hitch."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.generator.pipeline import Options, compile_policy
from cachewright.harness.client import Client
from cachewright.harness.origin import OriginConfig, OriginServer
from cachewright.harness.runtime.api import Endpoint
from cachewright.harness.runtime.procs import Proc, free_ports, spawn, stop_all
from cachewright.harness.runtime.tlsfiles import write_tls_files

pytestmark = pytest.mark.engine
POLICY = """\
version: 1
name: uds
origin: {{url: http://127.0.0.1:{origin}}}
listen:
  http: {{address: 127.0.0.1, port: {http}}}
  https: {{address: 127.0.0.1, port: {https}, certificate: {cert}, key: {key}}}
rules:
  - {{name: pages, match: {{path_prefix: /}}, ttl: 1m}}
"""


def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} did not open")


@pytest.fixture
def run_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cachewright-uds-") as tmp:
        Path(tmp).chmod(0o755)
        yield Path(tmp)


@pytest.mark.skipif(os.geteuid() != 0, reason="the socket is handed to Hitch's user: needs root")
def test_https_through_hitch_over_a_private_unix_socket(run_dir: Path) -> None:
    http, https, admin = free_ports(3)
    tls = write_tls_files(run_dir / "tls", ["uds.test"])
    sock = run_dir / "varnish-https.sock"
    procs: list[Proc] = []
    with OriginServer(OriginConfig()) as origin:
        text = POLICY.format(origin=origin.data_port, http=http, https=https, cert=tls.cert,
                             key=tls.key)
        files = {f.path: f.text for f in compile_policy(
            loads(text, "uds.yaml"), ("varnish",), Options(varnish_proxy_listen=str(sock))).files}
        assert f"-a https={sock},PROXY,user=_hitch,mode=0600" in files["varnish/varnishd.args"]
        assert f'backend = "{sock}"' in files["hitch/hitch.conf"]
        (run_dir / "default.vcl").write_text(files["varnish/default.vcl"])
        (run_dir / "hitch.conf").write_text(files["hitch/hitch.conf"] + 'user = "_hitch"\n'
                                            f'group = "_hitch"\nocsp-dir = "{run_dir}"\n')
        args = [a for a in files["varnish/varnishd.args"].splitlines() if a.startswith("-")]
        try:
            spawn("varnishd", ["varnishd", "-F", "-n", str(run_dir / "state"), "-f",
                               str(run_dir / "default.vcl"), "-T", f"127.0.0.1:{admin}",
                               "-j", "unix,user=varnish,workuser=vcache",
                               *[part for a in args for part in a.split(" ", 1)]],
                  run_dir / "varnishd.log", run_dir, procs)
            deadline = time.monotonic() + 20
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sock.exists(), (run_dir / "varnishd.log").read_text()
            assert (sock.stat().st_mode & 0o777) == 0o600
            wait_port(http, deadline)  # the child accepts on every listener once this one answers
            spawn("hitch", ["hitch", f"--config={run_dir / 'hitch.conf'}"], run_dir / "hitch.log",
                  run_dir, procs)
            wait_port(https, time.monotonic() + 20)
            client = Client(Endpoint("varnish", "127.0.0.1", http, https), "uds.test", tls.ca)
            try:
                first = client.get("/page", scheme="https")
            except OSError as exc:
                raise AssertionError((run_dir / "hitch.log").read_text()) from exc
            second = client.get("/page", scheme="https")
            assert first.status == 200, (run_dir / "hitch.log").read_text()
            assert second.cache.outcome == "hit" and second.response_id == first.response_id
            seen = first.json()["headers"]
            assert ["X-Forwarded-Proto", "https"] in seen and ["X-Forwarded-For", "127.0.0.1"] in seen
            # another local user (nobody) cannot open the socket: only Hitch's user can
            probe = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "python3", "-c",
                 f"import socket; s=socket.socket(socket.AF_UNIX); s.connect({str(sock)!r})"],
                capture_output=True, text=True, check=False)
            assert probe.returncode != 0 and "Permission denied" in probe.stderr
        finally:
            stop_all(procs)
