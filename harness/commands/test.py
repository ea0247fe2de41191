"""``cachewright test``: start the engines in front of the sample origin and prove the policy."""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generator.errors import CachewrightError, ToolMissing
from generator.load import load
from generator.model import Policy

from .. import checks, client, report, ui
from ..api import ENGINES, Runtime, Stack
from ..client import Response
from ..local import LocalRuntime
from ..origin_client import Counts
from ..prepare import Configs, generated, request_host
from ..results import CheckResult, RunResult
from ..scenarios import Scenario, StackContext, load_scenarios, run_scenario

BINARIES = {"nginx": ("nginx",), "varnish": ("varnishd",)}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "test", help="run the engines in front of a sample app and prove the policy",
        description="Compile POLICY, start the sample origin and the real engines, and run the "
                    "checks derived from the policy plus its scenarios. Exit 0 only when every "
                    "selected check passed on every selected engine.",
        epilog="examples:\n  cachewright test examples/shop/policy.yaml\n"
               "  cachewright test policy.yaml --engine varnish --junit report.xml\n"
               "  cachewright test policy.yaml --checks rule. --checks security\n"
               "  cachewright test policy.yaml --origin http://127.0.0.1:8000  # your own app",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    add_run_options(p)
    p.add_argument("--checks", action="append", default=[], metavar="ID_OR_TAG",
                   help="run only checks whose id starts with this or that carry this tag "
                        "(repeatable; e.g. rule.static, security, stale)")
    p.add_argument("--scenarios", action="append", type=Path, default=None, metavar="FILE",
                   help="scenario file(s) (default: scenarios.yaml next to the policy)")
    p.add_argument("--no-scenarios", action="store_true", help="derived checks only")
    p.add_argument("--no-derived", action="store_true", help="scenarios only")
    p.add_argument("--trace", action="store_true",
                   help="print one line per request: engine, request, status, cache outcome, and "
                        "whether the origin produced the response")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write the results as JUnit XML")
    p.set_defaults(run=run)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``test`` and ``serve``: engines, runtime, origin."""
    p.add_argument("--engine", choices=(*ENGINES, "all"), default="all",
                   help="engine(s) to run (default: all)")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip an engine whose binaries are not installed instead of failing")
    p.add_argument("--runtime", choices=("local", "docker"), default="local",
                   help="where the engines run: local processes (default) or Docker containers")
    p.add_argument("--image", action="append", default=[], metavar="ROLE=IMAGE",
                   help="docker: image for nginx, varnish or hitch (default: the locally built "
                        "cachewright/ROLE:local stand-ins when present, else the official images)")
    p.add_argument("--origin-image", metavar="IMAGE",
                   help="docker: run your own app from IMAGE as the origin (its own command, "
                        "listening on --origin-port); checks that program the sample origin are "
                        "skipped, as with --origin")
    p.add_argument("--origin-port", type=int, default=8080, metavar="PORT",
                   help="docker: the port the --origin-image app listens on (default: 8080)")
    p.add_argument("--sample-origin-image", metavar="IMAGE",
                   help="docker: an image with python3 to run the sample origin in (default: "
                        "cachewright/origin:local, else python:3.11-slim)")
    p.add_argument("--docker-network", choices=("private", "host"), default="private",
                   help="docker: one private network per run (default), or the host's network")
    p.add_argument("--origin", metavar="URL",
                   help="use your running app at URL instead of the sample origin (checks that "
                        "need the origin's control port are skipped; scenarios still run)")


def runtime(args: argparse.Namespace, configs: Configs = generated) -> Runtime:
    """The runtime the options ask for (running ``configs``: by default the compiled policy)."""
    if args.runtime == "local":
        return LocalRuntime(configs=configs)
    from ..docker_runtime import DockerRuntime  # needs the docker SDK and an engine

    images = {}
    for item in args.image:
        role, sep, image = item.partition("=")
        if not sep or not image:
            raise UsageError(f"--image {item!r}: expected ROLE=IMAGE, e.g. nginx=nginx:1.27")
        images[role] = image
    return DockerRuntime(images, args.sample_origin_image, args.docker_network,
                         app_image=args.origin_image, app_port=args.origin_port, configs=configs)


class UsageError(CachewrightError):
    """A command-line option that cannot be used as given."""


def engines(args: argparse.Namespace) -> tuple[str, ...]:
    """The engines to run; a missing one is an error unless --skip-missing (local runtime)."""
    wanted = ENGINES if args.engine == "all" else (args.engine,)
    if args.runtime != "local":
        return tuple(wanted)
    present = []
    for engine in wanted:
        missing = [b for b in BINARIES[engine] if shutil.which(b) is None]
        if not missing:
            present.append(engine)
        elif args.skip_missing:
            print(f"skipping {engine}: {', '.join(missing)} not installed", file=sys.stderr)
        else:
            raise ToolMissing(f"{engine}: {', '.join(missing)} is not installed (on Debian: "
                              f"apt-get install {_package(engine)}; or --engine / --skip-missing)")
    if not present:
        raise ToolMissing("no engine to run")
    return tuple(present)


def _package(engine: str) -> str:
    return "nginx-light libnginx-mod-http-cache-purge" if engine == "nginx" else \
        "varnish varnish-modules hitch"


def run(args: argparse.Namespace) -> int:
    policy = load(args.policy)
    selected = engines(args)
    scenarios = scenarios_of(args)
    derived = [] if args.no_derived else checks.select(checks.derive(policy), args.checks)
    started, clock = datetime.now(UTC), time.monotonic()
    total = len(selected) * (len(derived) + len(scenarios))
    chosen = runtime(args)
    client.TRACE = Tracer() if args.trace else None
    with report.Progress(sys.stderr, total, enabled=None if ui.level else False) as progress, \
            chosen.start(policy, selected, args.origin) as stack:
        results = checks.run_checks(derived, stack, policy, selected, progress.done)
        results += run_scenarios(scenarios, stack, policy, selected, progress.done)
    outcome = RunResult(policy.name, str(args.policy), chosen.name, selected, tuple(results), started,
                        time.monotonic() - clock)
    color = report.should_color(sys.stdout)
    print(report.failures_only(outcome, color) if ui.level == ui.QUIET else
          report.table(outcome, color), end="")
    ui.detail(report.notes(outcome))
    write_report(args.json, report.to_json(outcome))
    write_report(args.junit, report.to_junit(outcome))
    return outcome.exit_code


class Tracer:
    """``--trace``: one line per request on stderr. The origin gives every response it makes a
    unique id, so a response id not seen before means the origin was hit."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, engine: str, response: Response) -> None:
        with self.lock:
            rid = response.response_id
            fresh = rid is not None and rid not in self.seen
            if rid:
                self.seen.add(rid)
            origin = "origin" if fresh else "cache" if rid else "no origin"
            print(f"trace {engine:7} {response.request} -> {response.status} "
                  f"{response.cache.outcome} ({origin})", file=sys.stderr, flush=True)


def scenarios_of(args: argparse.Namespace) -> tuple[Scenario, ...]:
    if args.no_scenarios:
        return ()
    files = args.scenarios or [p for p in [args.policy.parent / "scenarios.yaml"] if p.is_file()]
    out: list[Scenario] = []
    for path in files:
        out.extend(load_scenarios(path))
    return tuple(out)


def run_scenarios(scenarios: tuple[Scenario, ...], stack: Stack, policy: Policy,
                  selected: tuple[str, ...], done: Any = None) -> list[CheckResult]:
    """Each engine runs every scenario in its own thread."""
    if not scenarios:
        return []
    ctx = StackContext(stack, request_host(policy))
    if not stack.origin.control_url:
        ctx = _WithoutOrigin(stack, request_host(policy))

    def one_engine(engine: str) -> list[CheckResult]:
        out = []
        for scenario in scenarios:
            result = _scenario_result(scenario, ctx, engine, bool(stack.origin.control_url))
            if done is not None:
                done(result)
            out.append(result)
        return out

    with concurrent.futures.ThreadPoolExecutor(len(selected)) as pool:
        return [r for rs in pool.map(one_engine, selected) for r in rs]


def _scenario_result(scenario: Scenario, ctx: StackContext, engine: str,
                     control: bool) -> CheckResult:
    if not control and _needs_origin(scenario):
        return CheckResult(scenario.check_id, scenario.description or scenario.name, engine,
                           "skipped", "programs or counts the sample origin (not with --origin)")
    return run_scenario(scenario, ctx, engine)


def _needs_origin(scenario: Scenario) -> bool:
    expects = [step.expect for step in scenario.steps]
    return bool(scenario.origin) or any(
        e.origin_delta is not None or e.origin_total_delta is not None for e in expects)


class _NoOrigin:
    """The origin control of a user's own app: nothing to program, nothing counted."""

    def add_rules(self, rules: Any) -> None:
        raise CachewrightError("no origin control port with --origin")

    def delete_rules(self, *, path: str | None = None, pattern: str | None = None) -> int:
        return 0

    def counts(self) -> Counts:
        return Counts(0, {}, {})

    def requests(self, **kw: Any) -> list[Any]:
        return []


class _WithoutOrigin(StackContext):
    @property
    def origin(self) -> Any:
        return _NoOrigin()


def write_report(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
