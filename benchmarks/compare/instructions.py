"""User-space instructions per cached hit on nginx and Varnish: generated config vs the
hand-written baseline.

    python benchmarks/compare/instructions.py [examples/shop/policy.yaml ...] [--hits 1000]
        [--engine nginx|varnish|all] [--profiles DIR]

Throughput on a shared 2-core machine moves by 10 % from one run to the next; the number of
instructions an engine executes for a hit does not. Each config runs as one nginx process (no
master, no daemon), or as varnishd's child with one small thread pool, under valgrind's
callgrind, in front of a small in-process origin; after the first request has stored the entry,
callgrind's counters are reset, ``--hits`` hits are sent over keep-alive connections, and the
instructions counted in between are divided by the hits. Every hit is checked at the origin (it
sees only the first request for the path). ``--profiles`` keeps the dumps for
``callgrind_annotate``. Policies are measured on plain HTTP
(an HTTPS listener is replaced by an HTTP one: TLS costs both configs the same).

Needs valgrind (``apt-get install valgrind``) and the engines on PATH. What the figures mean:
docs/compare.md, "Instructions per hit".
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cachewright.generator.load import load
from cachewright.generator.model import HttpListener, Listen, Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile
from cachewright.harness.compare.baseline import baseline_configs
from cachewright.harness.compare.measure import hit_cache_control, plain_get
from cachewright.harness.runtime.prepare import Configs, Placement, generated
from cachewright.harness.runtime.procs import free_ports
from cachewright.harness.selection import Request

ROOT = Path(__file__).resolve().parents[2]
from cachewright.harness.engines import varnish  # noqa: E402

EXAMPLES = ("static-site", "wordpress", "api", "shop")
ENGINE_BINARIES = {"nginx": "nginx", "varnish": "varnishd"}
BODY = b"x" * 1024


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: requests per path (the api example's health probe has its own path)
    requests: collections.Counter[str] = collections.Counter()
    #: the hit path's lifetime, as compare programs it (set per policy)
    cache_control = "max-age=600"

    def do_GET(self) -> None:  # http.server's naming
        _Origin.requests[self.path.split("?")[0]] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Cache-Control", _Origin.cache_control)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def plain_http(policy: Policy) -> Policy:
    """``policy`` with one plain HTTP listener (its hosts kept)."""
    return replace(policy, listen=Listen(HttpListener("127.0.0.1", 80), None, policy.listen.hosts))


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


def instructions_per_hit(engine: str, configs: Configs, policy: Policy, request: Request,
                         origin_port: int, hits: int, keep: Path | None = None) -> float:
    """Instructions per hit; ``keep``: where to copy callgrind's dump of the hits (for
    ``callgrind_annotate``)."""
    port, admin = free_ports(2)
    place = Placement("127.0.0.1", port, 0, "127.0.0.1", origin_port)
    files = configs(policy, engine, place, Options())
    with tempfile.TemporaryDirectory(prefix="cw-instr-") as tmp:
        prefix = Path(tmp)
        proc, counted = _START[engine](prefix, files, admin)
        try:
            raw = (f"GET {request.target} HTTP/1.1\r\nHost: {request.host}\r\n"
                   + "".join(f"{n}: {v}\r\n" for n, v in request.headers) + "\r\n").encode()
            sock = _connect(port, proc)
            reader = sock.makefile("rb")
            path = request.target.split("?")[0]
            before = _Origin.requests[path]
            for _ in range(3):
                _send(sock, reader, raw)
            _dump(counted())
            for i in range(hits):
                if i and i % 500 == 0:  # below nginx's keepalive_requests (1000)
                    sock.close()
                    sock = _connect(port, proc)
                    reader = sock.makefile("rb")
                if _send(sock, reader, raw) != 200:
                    raise SystemExit(f"{policy.name}: a hit was not answered 200")
            _dump(counted())
            sock.close()
            seen = _Origin.requests[path] - before
            if seen != 1:
                raise SystemExit(f"{policy.name}: the origin saw {seen} requests for {path}, not 1")
            pid = counted()
        finally:
            _stop(proc, counted)
        dumps = sorted(prefix.glob(f"cg.out.{pid}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        totals = re.search(r"^(?:summary|totals): (\d+)", dumps[-1].read_text(), re.M)
        assert totals, dumps[-1]
        if keep is not None:
            shutil.copyfile(dumps[-1], keep)
        return int(totals.group(1)) / hits


Started = tuple[subprocess.Popen[bytes], Callable[[], int]]


def _callgrind(prefix: Path, argv: list[str]) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}/cg.out.%p",
            "--trace-children=yes", "--trace-children-skip=*cc,*gcc,*sh,*ld,*as", *argv]


def _start_nginx(prefix: Path, files: dict[str, OutputFile], admin: int) -> Started:
    """One nginx process (no master, no daemon): it serves and is counted."""
    for sub in ("logs", "cache", "tmp"):
        (prefix / sub).mkdir()
    conf = files["nginx.conf"].text.replace(
        "worker_processes auto;", "worker_processes 1;\nmaster_process off;\ndaemon off;")
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(_callgrind(prefix, ["nginx", "-p", str(prefix), "-c", "nginx.conf"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, lambda: proc.pid


def _start_varnish(prefix: Path, files: dict[str, OutputFile], admin: int) -> Started:
    """varnishd in the foreground without a jail (valgrind follows the manager's fork into the
    child, which serves and is counted; the VCL compiler runs uncounted); one small thread pool."""
    (prefix / "default.vcl").write_text(files["default.vcl"].text)
    args = varnish.args(files["varnishd.args"].text, "127.0.0.1:0")
    argv = ["varnishd", "-F", "-j", "none", "-n", str(prefix / "state"), "-f", str(prefix / "default.vcl"),
            "-T", f"127.0.0.1:{admin}", "-p", "thread_pools=1", "-p", "thread_pool_min=5",
            *(a for line in args if not line.startswith("-a https=") for a in line.split(" ", 1))]
    log = prefix / "varnishd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_callgrind(prefix, argv), stdout=out, stderr=subprocess.STDOUT)

    def child() -> int:
        found = re.search(r"Child \((\d+)\) Started", log.read_text(errors="replace"))
        if found is None:
            raise SystemExit(f"varnishd did not start its child under valgrind:\n{log.read_text()[-2000:]}")
        return int(found.group(1))
    return proc, child


_START = {"nginx": _start_nginx, "varnish": _start_varnish}


def _stop(proc: subprocess.Popen[bytes], counted: Callable[[], int]) -> None:
    """Stop what started: the counted process (varnishd's child) by its PID, then valgrind."""
    try:
        pid = counted()
    except SystemExit:
        pid = proc.pid
    if pid != proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def _connect(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit("the engine exited under valgrind")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=60)
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the engine did not start under valgrind")


def _dump(pid: int) -> None:
    """Write callgrind's counters of ``pid`` so far to a new file and reset them."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="*", default=[f"examples/{e}/policy.yaml" for e in EXAMPLES])
    parser.add_argument("--engine", choices=("nginx", "varnish", "all"), default="all")
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--profiles", type=Path, metavar="DIR",
                        help="keep callgrind's dump of the hits as DIR/POLICY-ENGINE-{generated,baseline}.cg "
                             "(read with callgrind_annotate)")
    args = parser.parse_args()
    engines = ("nginx", "varnish") if args.engine == "all" else (args.engine,)
    if args.profiles:
        args.profiles.mkdir(parents=True, exist_ok=True)
    for tool in ("valgrind", "callgrind_control", *(ENGINE_BINARIES[e] for e in engines)):
        if shutil.which(tool) is None:
            print(f"{tool} not found (valgrind: apt-get install valgrind)", file=sys.stderr)
            return 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin_port = server.server_address[1]
    print("| policy | engine | rule | instructions/hit generated | baseline | ratio |")
    print("|---|---|---|---|---|---|")
    try:
        for path in args.policies:
            policy = plain_http(load(path))
            rule, request = plain_get(policy, "cwbench")
            _Origin.cache_control = hit_cache_control(policy, rule)
            for engine in engines:
                keep = {kind: args.profiles / f"{policy.name}-{engine}-{kind}.cg" if args.profiles else None
                        for kind in ("generated", "baseline")}
                gen = instructions_per_hit(engine, generated, policy, request, origin_port, args.hits,
                                           keep["generated"])
                base = instructions_per_hit(engine, baseline_configs, policy, request, origin_port, args.hits,
                                            keep["baseline"])
                print(f"| {policy.name} | {engine} | {rule.name} | {gen:,.0f} | {base:,.0f} | {gen / base:.2f} |",
                      flush=True)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
