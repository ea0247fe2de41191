"""User-space instructions per cached hit on nginx: generated config vs the hand-written baseline.

    python benchmarks/compare/instructions.py [examples/shop/policy.yaml ...] [--hits 1000]

Throughput on a shared 2-core machine moves by 10 % from one run to the next; the number of
instructions nginx executes for a hit does not. Each config runs as one nginx process (no master,
no daemon) under valgrind's callgrind, in front of a small in-process origin; after the first
request has stored the entry, callgrind's counters are reset, ``--hits`` hits are sent over
keep-alive connections, and the instructions counted in between are divided by the hits. Every hit
is checked at the origin (it sees only the first request). Policies are measured on plain HTTP
(an HTTPS listener is replaced by an HTTP one: TLS costs both configs the same).

Needs valgrind (``apt-get install valgrind``) and nginx on PATH. What the figures mean:
docs/compare.md, "Instructions per hit".
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from generator.load import load  # noqa: E402
from generator.model import HttpListener, Listen, Policy  # noqa: E402
from generator.pipeline import Options  # noqa: E402
from harness.compare.baseline import baseline_configs  # noqa: E402
from harness.prepare import Configs, Placement, generated, request_host  # noqa: E402
from harness.probe import Request, probe_for  # noqa: E402
from harness.procs import free_ports  # noqa: E402

EXAMPLES = ("static-site", "wordpress", "api", "shop")
BODY = b"x" * 1024


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _Origin.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Cache-Control", "max-age=600")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def plain_http(policy: Policy) -> Policy:
    """``policy`` with one plain HTTP listener (its hosts kept)."""
    return replace(policy, listen=Listen(HttpListener("127.0.0.1", 80), None, policy.listen.hosts))


def hit_request(policy: Policy) -> Request:
    """The request ``compare`` measures: the first cacheable rule a plain GET reaches."""
    for rule in (*policy.rules, policy.default_rule):
        req = probe_for(policy, rule, tag="cwbench", host=request_host(policy)) if rule.cache else None
        if req is not None and req.method == "GET" and not req.cookie_header \
                and not any(name.lower() == "authorization" for name, _ in req.headers):
            return req
    raise SystemExit(f"{policy.name}: no cacheable rule a plain GET reaches")


def _send(sock: socket.socket, reader: object, raw: bytes) -> int:
    sock.sendall(raw)
    length, status = 0, 0
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        if not status:
            status = int(line.split()[1])
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    reader.read(length)  # type: ignore[attr-defined]
    return status


def instructions_per_hit(configs: Configs, policy: Policy, request: Request, origin_port: int,
                         hits: int) -> float:
    port = free_ports(1)[0]
    place = Placement("127.0.0.1", port, 0, "127.0.0.1", origin_port)
    files = configs(policy, "nginx", place, Options())
    with tempfile.TemporaryDirectory(prefix="cw-instr-") as tmp:
        prefix = Path(tmp)
        for sub in ("logs", "cache", "tmp"):
            (prefix / sub).mkdir()
        for name, out in files.items():
            (prefix / name).write_text(out.text)
        conf = (prefix / "nginx.conf").read_text().replace(
            "worker_processes auto;", "worker_processes 1;\nmaster_process off;\ndaemon off;")
        (prefix / "nginx.conf").write_text(conf)
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}/cg.out",
                                 "nginx", "-p", str(prefix), "-c", "nginx.conf"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            raw = (f"GET {request.target} HTTP/1.1\r\nHost: {request.host}\r\n"
                   + "".join(f"{n}: {v}\r\n" for n, v in request.headers) + "\r\n").encode()
            sock = _connect(port, proc)
            reader = sock.makefile("rb")
            before = _Origin.requests
            for _ in range(3):
                _send(sock, reader, raw)
            _dump(proc)
            for i in range(hits):
                if i and i % 500 == 0:  # below nginx's keepalive_requests (1000)
                    sock.close()
                    sock = _connect(port, proc)
                    reader = sock.makefile("rb")
                if _send(sock, reader, raw) != 200:
                    raise SystemExit(f"{policy.name}: a hit was not answered 200")
            _dump(proc)
            sock.close()
            if _Origin.requests - before != 1:
                raise SystemExit(f"{policy.name}: the origin saw {_Origin.requests - before} requests, not 1")
        finally:
            proc.kill()
            proc.wait()
        dumps = sorted(prefix.glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        totals = re.search(r"^(?:summary|totals): (\d+)", dumps[-1].read_text(), re.M)
        assert totals, dumps[-1]
        return int(totals.group(1)) / hits


def _connect(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("nginx exited under valgrind")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nginx did not start under valgrind")


def _dump(proc: subprocess.Popen[bytes]) -> None:
    """Write callgrind's counters so far to a new file and reset them."""
    subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="*", default=[f"examples/{e}/policy.yaml" for e in EXAMPLES])
    parser.add_argument("--hits", type=int, default=1000)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (valgrind: apt-get install valgrind)", file=sys.stderr)
            return 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin_port = server.server_address[1]
    print("| policy | rule | instructions/hit generated | baseline | ratio |")
    print("|---|---|---|---|---|")
    try:
        for path in args.policies:
            policy = plain_http(load(path))
            request = hit_request(policy)
            gen = instructions_per_hit(generated, policy, request, origin_port, args.hits)
            base = instructions_per_hit(baseline_configs, policy, request, origin_port, args.hits)
            rule = next((r.name for r in (*policy.rules, policy.default_rule)
                         if probe_for(policy, r, tag="cwbench", host=request.host) == request), "?")
            print(f"| {policy.name} | {rule} | {gen:,.0f} | {base:,.0f} | {gen / base:.2f} |", flush=True)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
