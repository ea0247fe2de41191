"""Cache-lock latency: does a request wait behind another request's fetch longer than the origin
took to answer? (issue 19, "No request waits on the cache lock longer than the origin took".)

    python benchmarks/lock/run.py                                  # both engines, generated configs
    python benchmarks/lock/run.py --engines nginx --nginx-lock-timeout 100ms --json build/lock.json
    python benchmarks/lock/run.py --nginx-lock off                 # an edited copy: no lock at all

A small ``origin_headers: respect`` policy runs on each engine (local processes) in front of the
sample origin. ``--clients`` threads (25) each keep one keep-alive connection for the whole run.
Each round gives every URL a fresh query, and ``--per-url`` clients (5) send their request for
the same URL at the same moment (a barrier), so several are in flight per URL: the worst case for
a cache lock. URL classes mix cacheable answers (fast and slow) with answers no engine stores:
``private``, ``no-store``, ``Set-Cookie``, ``max-age=0`` (nginx: ``proxy_no_cache``), 5xx (slow
and fast) and a refused connection. Bounded by ``--rounds`` and ``--time-limit`` (no new round
starts after it; a request gives up after ``--request-timeout``).

Per request: its latency ``L`` and its **lock wait** ``W``: ``L`` minus the part of it during
which the origin was working on the answer it got (the origin's request log gives when that
fetch arrived; the class's delay is how long the origin took). A hit waits 0 behind nothing; a
request collapsed onto another's fetch waits at most that fetch; a request that queued behind an
uncacheable answer waits for that answer and then fetches its own. The target: ``W <= D + 100
ms`` for every request, D the origin's answer time for the URL ("no request waits on the lock
longer than the origin took to answer"). The stricter reading ``L <= D + 100 ms`` is counted
too (no collapsing cache meets it behind an uncacheable answer: it must wait for that answer's
headers before it knows).

``--nginx-lock-timeout``, ``--nginx-lock-age`` and ``--nginx-lock off`` edit a copy of the
generated nginx.conf, ``--varnish-param`` adds a varnishd parameter (the templates are not
touched), to measure a fix before it is applied.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile
from cachewright.harness.origin import OriginClient, RecordedRequest, RuleSpec
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.runtime.prepare import Placement, generated

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


POLICY = """
version: 1
name: lock-bench
origin: {url: http://app:8000}
listen:
  http: {port: 80}
cache:
  origin_headers: respect
  default_ttl: 1m
  collapse_requests: true
"""

#: the target's slack over the origin's own time
SLACK = 0.1


@dataclass(frozen=True)
class UrlClass:
    """One kind of origin answer: its path, how long the origin takes, what it answers."""

    name: str
    delay: float
    spec: RuleSpec
    stored: bool

    @property
    def path(self) -> str:
        return f"/lock/{self.name}"


CLASSES = (
    UrlClass("cacheable-fast", 0.02, {"cache_control": "max-age=60"}, True),
    UrlClass("cacheable-slow", 0.2, {"cache_control": "max-age=60"}, True),
    UrlClass("private", 0.2, {"cache_control": "private, max-age=60"}, False),
    UrlClass("no-store", 0.2, {"cache_control": "no-store"}, False),
    UrlClass("set-cookie", 0.2, {"cache_control": "max-age=60", "set_cookie": ["s=1; Path=/"]}, False),
    UrlClass("max-age-0", 0.2, {"cache_control": "max-age=0"}, False),
    UrlClass("5xx-slow", 0.2, {"status": 503, "failure": "error"}, False),
    UrlClass("5xx-fast", 0.0, {"status": 503, "failure": "error"}, False),
    UrlClass("refused", 0.0, {"failure": "refuse"}, False),
)


@dataclass
class Sample:
    """One client request as the client saw it (wall clock, comparable with the origin's log)."""

    cls: str
    target: str
    sent: float
    done: float
    status: int
    cache_status: str
    response_id: str
    wait: float = 0.0

    @property
    def latency(self) -> float:
        return self.done - self.sent


@dataclass
class Settings:
    """What one run does; printed and written with the results."""

    clients: int = 25
    per_url: int = 5
    rounds: int = 9
    time_limit: float = 120.0
    request_timeout: float = 60.0
    nginx_lock: str = "on"
    nginx_lock_timeout: str = ""
    nginx_lock_age: str = ""
    varnish_params: tuple[str, ...] = ()

    def nginx_edits(self) -> dict[str, str]:
        """The directives whose value the run changes in the generated nginx.conf."""
        edits = {"proxy_cache_lock_timeout": self.nginx_lock_timeout, "proxy_cache_lock_age": self.nginx_lock_age}
        edits = {k: v for k, v in edits.items() if v}
        return edits | ({"proxy_cache_lock": "off"} if self.nginx_lock == "off" else {})


# --------------------------------------------------------------------------- configs


def edited(edits: dict[str, str], params: tuple[str, ...] = ()) -> Callable[
        [Policy, str, Placement, Options], dict[str, OutputFile]]:
    """The runtime's config source: the generated files, with nginx.conf's ``edits`` applied and
    ``-p NAME=VALUE`` lines added to varnishd.args for ``params``."""
    def configs(policy: Policy, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
        files = generated(policy, engine, place, options)
        if engine == "nginx" and edits:
            conf = files["nginx.conf"]
            files["nginx.conf"] = dataclasses.replace(conf, text=edit_nginx(conf.text, edits))
        if engine == "varnish" and params:
            args = files["varnishd.args"]
            files["varnishd.args"] = dataclasses.replace(args, text=args.text + "".join(f"-p {p}\n" for p in params))
        return files
    return configs


def edit_nginx(text: str, edits: dict[str, str]) -> str:
    """Set each directive of ``edits`` where the generated config sets it (it must)."""
    for name, value in edits.items():
        text, n = re.subn(rf"(?m)^(\s*){re.escape(name)} [^;]*;", rf"\g<1>{name} {value};", text)
        if n == 0:
            raise SystemExit(f"nginx.conf has no {name} directive to edit")
    return text


def config_label(engine: str, settings: Settings) -> str:
    if engine == "varnish":
        edits = [f"-p {p}" for p in settings.varnish_params]
    else:
        edits = [f"{k} {v}" for k, v in settings.nginx_edits().items()]
    return "edited: " + "; ".join(edits) if edits else "generated"


# --------------------------------------------------------------------------- load


def plan(settings: Settings) -> list[list[UrlClass]]:
    """Per round, the class each client requests: ``per_url`` clients per URL, classes rotating."""
    urls = max(1, settings.clients // settings.per_url)
    rounds = []
    for r in range(settings.rounds):
        picked = [CLASSES[(r * urls + j) % len(CLASSES)] for j in range(urls)]
        rounds.append([picked[min(i // settings.per_url, urls - 1)] for i in range(settings.clients)])
    return rounds


class Client:
    """One keep-alive connection to the engine, reopened only when the engine closes it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: HTTPConnection | None = None

    def get(self, cls: UrlClass, target: str) -> Sample:
        sent = time.time()
        try:
            status, cache_status, rid = self._get(target)
        except (OSError, HTTPException) as exc:
            self.close()
            status, cache_status, rid = 0, f"client error: {exc}", ""
        return Sample(cls.name, target, sent, time.time(), status, cache_status, rid)

    def _get(self, target: str) -> tuple[int, str, str]:
        if self.conn is None:
            self.conn = HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.request("GET", target)
        response = self.conn.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return response.status, response.getheader("Cache-Status", ""), response.getheader("X-Response-Id", "")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Run:
    """The rounds of one engine: the clients wait at a barrier with the main thread twice a round
    (all start together; all are done before the origin's log is read)."""

    engine: str
    host: str
    port: int
    settings: Settings
    samples: list[Sample] = field(default_factory=list)
    log: list[RecordedRequest] = field(default_factory=list)
    stop: bool = False

    def go(self, origin: OriginClient) -> None:
        rounds = plan(self.settings)
        barrier = threading.Barrier(self.settings.clients + 1)
        threads = [threading.Thread(target=self._client, args=(i, rounds, barrier))
                   for i in range(self.settings.clients)]
        for t in threads:
            t.start()
        try:
            self._drive(origin, len(rounds), barrier)
        except BaseException:
            barrier.abort()  # the clients stop at their next wait
            raise
        finally:
            for t in threads:
                t.join(self.settings.request_timeout + 5)

    def _drive(self, origin: OriginClient, rounds: int, barrier: threading.Barrier) -> None:
        deadline, seq = time.monotonic() + self.settings.time_limit, 0
        for r in range(rounds):
            self.stop = r > 0 and time.monotonic() > deadline
            barrier.wait()  # start (or stop) the round
            if self.stop:
                return
            barrier.wait(self.settings.request_timeout + 5)  # every client is done
            fresh = origin.requests(since=seq)
            self.log.extend(fresh)
            seq = fresh[-1].seq if fresh else seq
        self.stop = True
        barrier.wait()

    def _client(self, index: int, rounds: list[list[UrlClass]], barrier: threading.Barrier) -> None:
        client = Client(self.host, self.port, self.settings.request_timeout)
        try:
            for r, classes in enumerate(rounds):
                barrier.wait()
                if self.stop:
                    return
                cls = classes[index]
                self.samples.append(client.get(cls, f"{cls.path}?r={self.engine}-{r}"))
                barrier.wait()
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        finally:
            client.close()


# --------------------------------------------------------------------------- judging


def lock_waits(samples: list[Sample], log: list[RecordedRequest]) -> None:
    """Set each sample's ``wait``: its latency minus the time the origin spent on its answer
    within it (the fetch its response id names; without one, every fetch of its target)."""
    delays = {c.name: c.delay for c in CLASSES}
    by_id = {e.response_id: e for e in log if e.response_id}
    by_target: dict[str, list[RecordedRequest]] = {}
    for e in log:
        by_target.setdefault(e.target, []).append(e)
    for s in samples:
        fetches = [by_id[s.response_id]] if s.response_id in by_id else by_target.get(s.target, [])
        spans = [(e.time, e.time + delays[s.cls]) for e in fetches]
        s.wait = max(0.0, s.latency - _covered(spans, s.sent, s.done))


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """How much of [start, end] the union of ``spans`` covers."""
    total, reach = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, end)
        if b > a:
            total, reach = total + b - a, b
    return total


def summary(samples: list[Sample], log: list[RecordedRequest]) -> dict[str, dict[str, Any]]:
    """Per URL class: requests, statuses, origin fetches, latency and lock wait, over-target count."""
    out = {}
    for cls in CLASSES:
        mine = [s for s in samples if s.cls == cls.name]
        if not mine:
            continue
        over = [s for s in mine if s.wait > cls.delay + SLACK]
        out[cls.name] = {
            "origin_s": cls.delay, "stored": cls.stored, "requests": len(mine),
            "urls": len({s.target for s in mine}),
            "origin_fetches": sum(1 for e in log if e.path == cls.path),
            "statuses": sorted({s.status for s in mine}),
            "latency_p50_ms": _ms(statistics.median(s.latency for s in mine)),
            "latency_max_ms": _ms(max(s.latency for s in mine)),
            "wait_max_ms": _ms(max(s.wait for s in mine)),
            "over_target": len(over),
            "over_strict": sum(1 for s in mine if s.latency > cls.delay + SLACK),
        }
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --------------------------------------------------------------------------- output


def table(engine: str, label: str, rows: dict[str, dict[str, Any]], wall: float) -> str:
    lines = [f"{engine} ({label}), {wall:.1f} s",
             "| class | origin ms | stored | requests | URLs | origin fetches | statuses | p50 ms | max ms "
             "| max lock wait ms | over target (W > D+100ms) | over strict (L > D+100ms) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['origin_s'] * 1000:.0f} | {'yes' if r['stored'] else 'no'} | {r['requests']} "
                     f"| {r['urls']} | {r['origin_fetches']} | {' '.join(map(str, r['statuses']))} "
                     f"| {r['latency_p50_ms']:.0f} | {r['latency_max_ms']:.0f} | {r['wait_max_ms']:.0f} "
                     f"| {r['over_target']} | {r['over_strict']} |")
    return "\n".join(lines)


def run_engine(engine: str, settings: Settings) -> dict[str, Any]:
    """Start the stack for one engine, program the origin, run the rounds, judge them."""
    policy = loads(POLICY, "lock-bench.yaml")
    runtime = LocalRuntime(configs=edited(settings.nginx_edits(), settings.varnish_params))
    with runtime.start(policy, (engine,)) as stack, OriginClient(stack.origin.control_url) as origin:
        origin.add_rules([{"path": c.path, "delay": c.delay, **c.spec} for c in CLASSES])
        origin.clear_requests()
        endpoint = stack.endpoints[engine]
        run = Run(engine, endpoint.host, _port(stack, engine), settings)
        started = time.monotonic()
        run.go(origin)
        wall = time.monotonic() - started
    lock_waits(run.samples, run.log)
    rows = summary(run.samples, run.log)
    label = config_label(engine, settings)
    print(table(engine, label, rows, wall), end="\n\n", flush=True)
    return {"config": label, "wall_s": round(wall, 1), "classes": rows,
            "met": all(r["over_target"] == 0 for r in rows.values()),
            "requests": [dataclasses.asdict(s) | {"latency": s.latency} for s in run.samples]}


def _port(stack: Stack, engine: str) -> int:
    port = stack.endpoints[engine].http_port
    assert port is not None, "the policy listens on HTTP"
    return port


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Settings()
    parser.add_argument("--engines", nargs="+", choices=("nginx", "varnish"), default=["nginx", "varnish"])
    parser.add_argument("--clients", type=int, default=d.clients, help="concurrent keep-alive clients (25)")
    parser.add_argument("--per-url", type=int, default=d.per_url, help="clients sending the same URL at once (5)")
    parser.add_argument("--rounds", type=int, default=d.rounds, help="rounds; each gives every URL a fresh query (9)")
    parser.add_argument("--time-limit", type=float, default=d.time_limit, help="no round starts after it (s)")
    parser.add_argument("--request-timeout", type=float, default=d.request_timeout, help="per request (s)")
    parser.add_argument("--nginx-lock", choices=("on", "off"), default="on", help="off: edit proxy_cache_lock off")
    parser.add_argument("--nginx-lock-timeout", default="", help="edit proxy_cache_lock_timeout (e.g. 100ms)")
    parser.add_argument("--nginx-lock-age", default="", help="edit proxy_cache_lock_age (e.g. 1s)")
    parser.add_argument("--varnish-param", action="append", default=[], metavar="NAME=VALUE",
                        help="add -p NAME=VALUE to varnishd.args (e.g. rush_exponent=32); repeatable")
    parser.add_argument("--json", type=Path, help="write the results (settings, per class, per request)")
    args = parser.parse_args(argv)
    settings = Settings(args.clients, max(1, min(args.per_url, args.clients)), args.rounds, args.time_limit,
                        args.request_timeout, args.nginx_lock, args.nginx_lock_timeout, args.nginx_lock_age,
                        tuple(args.varnish_param))
    return args, settings


def main(argv: list[str] | None = None) -> int:
    args, settings = parse(argv)
    print(f"settings: {json.dumps(dataclasses.asdict(settings))}\n")
    engines = {engine: run_engine(engine, settings) for engine in args.engines}
    for engine, result in engines.items():
        print(f"{engine}: target {'met' if result['met'] else 'MISSED'} ({result['config']})")
    if args.json:
        report = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                  "settings": dataclasses.asdict(settings), "slack_s": SLACK, "engines": engines}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
