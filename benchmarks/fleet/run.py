"""Issue 20's fleet targets, measured on the local fleet runtime (docs/fleets.md, "Measured").

    python benchmarks/fleet/run.py                       # the full run (10,000 keys)
    python benchmarks/fleet/run.py --keys 1000 --herd 12 --purges 3 --fronts nginx
    python benchmarks/fleet/run.py --write-docs          # and rewrite docs/fleets.md's table

Every node is a local process on its own loopback address (``FleetRuntime``, 127.0.0.2, ...) in
front of the sample origin on 127.0.0.1; nothing leaves loopback. Three fleets are started in
turn, each stopped before the next (the first two once per ``--fronts`` engine of the edges,
nginx and Varnish by default):

- **shield**: 3 edges -> 1 Varnish shield. ``--herd`` concurrent cold requests for one
  object (the origin slowed by 0.5 s), spread over the 3 edges: origin requests (target 1).
- **shard**: 3 edges -> 3 Varnish nodes, ``routing: shard``. The same herd; then ``--keys``
  objects, each asked once through edge ``i % 3``: the nodes' own records say where each is
  stored (varnishlog's fetches, and ``varnishstat`` ``MAIN.n_object``; target: every key on
  exactly one node). Then every key is asked again through another edge (``(i + 1) % 3``, which
  does not hold it, so the request reaches the shard tier) while the first shard node is
  SIGKILLed a few requests in: the share of the keys asked after the kill and answered that the
  origin saw again, against 1/3 (target within 5 points), and the requests that failed against those in
  flight at the kill (target: no more).
- **purge**: ``examples/fleet-shard`` (2 nginx edges -> 3 sharded Varnish nodes, 5 nodes): one
  URL primed through both edges, then purged as ``cachewright purge --fleet`` purges it (the
  tier nearest the origin first, a tier's nodes in parallel), ``--purges`` times: every node
  confirms, wall time (target < 1 s), and nothing stale after (the next request through each
  edge reaches the origin once).

Requests go out over a bounded pool (``--workers``) of keep-alive connections; no new request
starts after ``--time-limit`` seconds of a pass (the pass is then reported as cut short).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.harness import ui
from cachewright.harness.engines import varnish
from cachewright.harness.origin import OriginClient
from cachewright.harness.purging import Purge, fleet_tiers, purge_tiers
from cachewright.harness.runtime.fleet import FleetNode, FleetRuntime, FleetStack
from cachewright.harness.runtime.local import require, varnish_log

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/fleet-shard/policy.yaml"
DOCS = ROOT / "docs/fleets.md"
HOST = "media.example.com"
START, END = "<!-- fleet-bench:start -->", "<!-- fleet-bench:end -->"
#: the policy of the shield and shard fleets (3 edges of engine {front}); {inner} is the inner tier
FLEET = """\
version: 1
name: fleet-bench
origin: {{url: "http://10.0.2.10:8000"}}
listen: {{http: {{port: 80}}, hosts: [{host}]}}
rules:
  - name: media
    match: {{path_prefix: /media/}}
    ttl: 1h
    origin_headers: override
purge:
  allow: [127.0.0.1/32]
fleet:
  tiers:
    - name: edge
      engine: {front}
      nodes:
        - {{name: edge-1, address: 10.0.1.11}}
        - {{name: edge-2, address: 10.0.1.12}}
        - {{name: edge-3, address: 10.0.1.13}}
{inner}
  health: {{interval: 1s, timeout: 1s, window: 2, threshold: 1, fail_timeout: 2s}}
"""
SHIELD = """\
    - name: shield
      engine: varnish
      port: 8080
      nodes:
        - {name: shield-1, address: 10.0.1.21}"""
SHARD = """\
    - name: shard
      engine: varnish
      routing: shard
      port: 8080
      nodes:
        - {name: shard-1, address: 10.0.1.21}
        - {name: shard-2, address: 10.0.1.22}
        - {name: shard-3, address: 10.0.1.23}"""
HERD_DELAY = 0.5
#: requests of the second pass sent before the shard node is killed
KILL_AFTER = 50
#: why requests fail (or not) when a shard node is lost, by the edges' engine
LOSS_NOTE = {
    "nginx": "nginx edges retry the next node on the ring at once (proxy_next_upstream)",
    "varnish": "Varnish edges retry a failed GET on the ring's next node at once (vcl_backend_error's "
               "retry, the shard director's alt=bereq.retries)",
}


@dataclass(frozen=True)
class Figure:
    """One measured figure against its target."""

    name: str
    value: str
    target: str
    met: bool
    note: str = ""


# --------------------------------------------------------------------------- requests


class Sender:
    """GETs over keep-alive connections, one per thread and node (a bounded pool's threads)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.local = threading.local()

    def get(self, node: FleetNode, path: str) -> int | None:
        """The status of ``GET path`` sent to ``node``, None when no answer came."""
        conns: dict[str, http.client.HTTPConnection] = self.local.__dict__.setdefault("conns", {})
        for attempt in (0, 1):  # a kept-alive connection the node closed: one fresh retry
            conn = conns.get(node.name)
            if conn is None:
                conn = conns[node.name] = http.client.HTTPConnection(node.loopback, node.http_port,
                                                                     timeout=self.timeout)
            try:
                conn.request("GET", path, headers={"Host": HOST})
                response = conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                del conns[node.name]
                if attempt:
                    return None
        return None


@dataclass(frozen=True)
class Sent:
    """One request of a pass: its key, when it started and ended, and its status."""

    key: int
    started: float
    ended: float
    status: int | None


def run_pass(sender: Sender, jobs: Sequence[tuple[int, FleetNode, str]], workers: int,
             time_limit: float, on_sent: Callable[[int], None] | None = None) -> list[Sent]:
    """Every job (key, node, path) over ``workers`` threads; none starts after ``time_limit`` s.
    ``on_sent`` is told the count of finished requests after each one."""
    deadline = time.monotonic() + time_limit
    done: list[Sent] = []
    lock = threading.Lock()

    def one(job: tuple[int, FleetNode, str]) -> None:
        if time.monotonic() > deadline:
            return
        started = time.monotonic()
        status = sender.get(job[1], job[2])
        with lock:
            done.append(Sent(job[0], started, time.monotonic(), status))
            count = len(done)
        if on_sent is not None:
            on_sent(count)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, jobs))
    return done


# --------------------------------------------------------------------------- records


def stored_paths(stack: FleetStack, name: str) -> set[str]:
    """The URLs node ``name`` (Varnish) stored, from its own log read once (``varnishlog``)."""
    workdir = stack.nodes[name].workdir
    assert workdir is not None
    out = set()
    for block in varnish_log(workdir).split("\n\n"):
        url = re.search(r"^-+\s+BereqURL\s+(\S+)", block, re.M)
        if url is not None and varnish.fetch(block, url[1]) is not None:
            out.add(url[1])
    return out


def n_object(stack: FleetStack, name: str) -> int:
    """Varnish's own count of the objects node ``name`` holds (``MAIN.n_object``)."""
    workdir = stack.nodes[name].workdir
    assert workdir is not None
    argv = [require("varnishstat"), "-n", str(workdir), "-1", "-f", "MAIN.n_object"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.search(r"MAIN\.n_object\s+(\d+)", out)
    return int(match[1]) if match else -1


# --------------------------------------------------------------------------- the measures


@contextlib.contextmanager
def fleet(text: str, source: str) -> Iterator[tuple[FleetStack, OriginClient]]:
    """The fleet of policy ``text`` started (every node on loopback), with its origin's client."""
    policy: Policy = loads(text, source)
    assert policy.fleet is not None
    front = policy.fleet.tiers[0].engine
    with FleetRuntime().start(policy, (front,)) as stack, OriginClient(stack.origin.control_url) as origin:
        yield stack, origin


def herd(stack: FleetStack, origin: OriginClient, label: str, count: int) -> Figure:
    """``count`` concurrent cold requests for one object over every edge: origin requests."""
    path = f"/media/herd-{label}/{time.time_ns()}.bin"
    origin.add_rule({"path": path, "delay": HERD_DELAY})
    edges = stack.tier("edge")
    jobs = [(i, edges[i % len(edges)], path) for i in range(count)]
    sent = run_pass(Sender(), jobs, count, 60.0)
    bad = sum(s.status != 200 for s in sent)
    fetched = origin.count(path)
    return Figure(f"herd, {label} fleet ({len(edges)} {edges[0].engine} edges)", f"{fetched} origin request(s)",
                  "1", fetched == 1 and bad == 0,
                  f"{count} concurrent cold requests over {len(edges)} edges, {bad} not 200")


def keys_stored(stack: FleetStack, keys: int, args: argparse.Namespace) -> tuple[list[Figure], dict[str, set[str]]]:
    """Each key asked once through edge ``i % 3``; where the shard nodes say it is stored."""
    edges, shard = stack.tier("edge"), [n.name for n in stack.tier("shard")]
    before = {n: n_object(stack, n) for n in shard}
    jobs = [(i, edges[i % len(edges)], key_path(i)) for i in range(keys)]
    started = time.monotonic()
    sent = run_pass(Sender(), jobs, args.workers, args.time_limit)
    took = time.monotonic() - started
    asked = {key_path(s.key) for s in sent if s.status == 200}
    held = {n: stored_paths(stack, n) & asked for n in shard}
    counts = {n: n_object(stack, n) - before[n] for n in shard}
    once = sum(sum(p in held[n] for n in shard) == 1 for p in asked)
    spread = ", ".join(f"{n} {len(held[n])} ({len(held[n]) / max(1, len(asked)):.1%})" for n in shard)
    note = (f"{len(asked)} of {keys} keys answered 200 in {took:.1f} s ({len(asked) / took:.0f}/s)"
            f"{' (cut short by --time-limit)' if len(sent) < keys else ''}; per node (varnishlog): "
            f"{spread}; MAIN.n_object added: {', '.join(f'{n} {c}' for n, c in counts.items())} "
            f"= {sum(counts.values())}")
    figure = Figure(f"shard, 3 nodes, {keys} keys: stored once ({edges[0].engine} edges)",
                    f"{once} of {len(asked)} keys on exactly one node", "every key once",
                    once == len(asked) == keys and sum(counts.values()) == keys, note)
    return [figure], held


def key_path(i: int) -> str:
    return f"/media/bench/{i:06d}.bin"


def node_loss(stack: FleetStack, origin: OriginClient, held: dict[str, set[str]],
              args: argparse.Namespace) -> list[Figure]:
    """Every key again, through an edge that does not hold it, shard-1 SIGKILLed a few requests
    in: share fetched again vs 1/3, failures vs in flight at the kill."""
    edges, lost = stack.tier("edge"), stack.tier("shard")[0].name
    keys = args.keys
    counts_before = origin.counts()
    killed: list[float] = []

    def kill_at(count: int) -> None:
        if count == min(KILL_AFTER, keys // 10 or 1) and not killed:
            killed.append(time.monotonic())
            stack.kill(lost)

    jobs = [(i, edges[(i + 1) % len(edges)], key_path(i)) for i in range(keys)]
    sent = run_pass(Sender(), jobs, args.workers, args.time_limit, kill_at)
    killed_at = killed[0] if killed else float("inf")
    after = origin.counts()
    later = [s for s in sent if s.started > killed_at and s.status == 200]
    again = {s.key for s in later if after.path(key_path(s.key)) > counts_before.path(key_path(s.key))}
    owned = {s.key for s in later if key_path(s.key) in held[lost]}
    share = len(again) / max(1, len(later))
    failed = [s for s in sent if s.status != 200]
    in_flight = sum(s.started <= killed_at < s.ended for s in sent)
    front = edges[0].engine
    return [
        Figure(f"shard, node loss: share fetched again ({front} edges)", f"{share:.1%}",
               "1/3 +- 5 points (28.3 - 38.3 %)", abs(share - 1 / 3) <= 0.05,
               f"{len(again)} of the {len(later)} keys asked after {lost}'s SIGKILL and answered "
               f"reached the origin again; {lost} held {len(owned)} of them "
               f"({len(owned) / max(1, len(later)):.1%}); fetched again but not {lost}'s: "
               f"{len(again - owned)}"),
        Figure(f"shard, node loss: requests failed ({front} edges)", f"{len(failed)} of {len(sent)}",
               f"<= in flight at the kill ({in_flight})", len(failed) <= in_flight, LOSS_NOTE[front]),
    ]


def purge(stack: FleetStack, origin: OriginClient, rounds: int) -> list[Figure]:
    """One URL primed through both edges and purged fleet-wide, ``rounds`` times."""
    edges, sender = stack.tier("edge"), Sender()
    walls: list[float] = []
    bad: list[str] = []
    stale = 0
    tiers = fleet_tiers(stack.run_policy, ca_file=stack.ca_file)
    nodes = sum(len(t) for t in tiers)
    for r in range(rounds):
        path = f"/media/purge/{time.time_ns()}-{r}.bin"
        for edge in edges:
            sender.get(edge, path)
        time.sleep(0.2)  # the engines finish writing the object after answering
        started = time.monotonic()
        outcomes = purge_tiers(tiers, Purge("PURGE", path, HOST, {}), 5.0)
        walls.append(time.monotonic() - started)
        bad += [f"{o.node.name}: {o.status} {o.detail}" for o in outcomes if not o.ok]
        before = origin.count(path)
        for edge in edges:
            sender.get(edge, path)
        stale += origin.count(path) - before != 1
    return [Figure(f"fleet purge of one URL, {nodes} nodes", f"max {max(walls) * 1000:.0f} ms "
                   f"(median {statistics.median(walls) * 1000:.0f} ms, {rounds} purges)",
                   "every node confirms, < 1 s", not bad and max(walls) < 1.0 and not stale,
                   f"{rounds * nodes - len(bad)} of {rounds * nodes} node confirmations; "
                   f"purges after which a node answered stale: {stale}"
                   + (f"; not confirmed: {bad[:3]}" if bad else ""))]


# --------------------------------------------------------------------------- the run


def measure(args: argparse.Namespace) -> list[Figure]:
    """The three fleets in turn, each stopped before the next starts."""
    figures = []
    for front in args.fronts:
        with fleet(FLEET.format(host=HOST, front=front, inner=SHIELD), "shield.yaml") as (stack, origin):
            figures.append(herd(stack, origin, "shield", args.herd))
        with fleet(FLEET.format(host=HOST, front=front, inner=SHARD), "shard.yaml") as (stack, origin):
            figures.append(herd(stack, origin, "shard", args.herd))
            stored, held = keys_stored(stack, args.keys, args)
            figures += stored + node_loss(stack, origin, held, args)
    with fleet(EXAMPLE.read_text(), str(EXAMPLE.relative_to(ROOT))) as (stack, origin):
        figures += purge(stack, origin, args.purges)
    return figures


def table(figures: list[Figure]) -> str:
    rows = ["| figure | measured | target | met | note |", "|---|---|---|---|---|"]
    rows += [f"| {f.name} | {f.value} | {f.target} | {'met' if f.met else '**missed**'} | {f.note} |"
             for f in figures]
    return "\n".join(rows)


def section(figures: list[Figure], argv: Sequence[str], took: float) -> str:
    """The docs' "Measured" block: date, machine, command, the table."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
               f"Python {platform.python_version()}")
    command = " ".join(["python benchmarks/fleet/run.py", *argv])
    return (f"{START}\nMeasured {now} on {machine} (shared with other work), every node a local "
            f"process on loopback; the run took {took:.0f} s:\n\n```\n{command}\n```\n\n"
            f"{table(figures)}\n{END}")


def write_docs(text: str, docs: Path = DOCS) -> None:
    """Replace the block between the markers in ``docs`` (it must be there)."""
    old = docs.read_text()
    start, end = old.index(START), old.index(END) + len(END)
    docs.write_text(old[:start] + text + old[end:])


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=10_000, help="shard keys (default 10000)")
    parser.add_argument("--herd", type=int, default=30, help="concurrent cold requests (default 30)")
    parser.add_argument("--purges", type=int, default=5, help="fleet purges timed (default 5)")
    parser.add_argument("--workers", type=int, default=8, help="request threads (default 8)")
    parser.add_argument("--time-limit", type=float, default=90.0,
                        help="seconds after which a pass starts no new request (default 90)")
    parser.add_argument("--fronts", type=lambda v: v.split(","), default=["nginx", "varnish"],
                        help="the edges' engines, in turn (default nginx,varnish)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the Measured table in docs/fleets.md")
    args = parser.parse_args(argv)
    if not (10 <= args.keys <= 100_000 and 3 <= args.herd <= 200 and 1 <= args.purges <= 50
            and 1 <= args.workers <= 32 and args.fronts and set(args.fronts) <= {"nginx", "varnish"}):
        parser.error("bounds: --keys 10..100000, --herd 3..200, --purges 1..50, --workers 1..32, "
                     "--fronts nginx,varnish")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table; 0 when every target is met, 1 otherwise."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse(given)
    ui.level = ui.QUIET
    started = time.monotonic()
    figures = measure(args)
    text = section(figures, [a for a in given if a != "--write-docs"], time.monotonic() - started)
    print(text)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")
    if args.write_docs:
        write_docs(text)
    return 0 if all(f.met for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
