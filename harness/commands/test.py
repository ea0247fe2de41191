"""``cachewright test``: start the engines in front of the sample origin and prove the policy.

The parser is built on every start of the CLI, so this module imports only what building it
needs; the checks, the scenarios, the HTTP clients and the runtimes are imported when a run
starts (``compare`` and ``serve`` share its options and steps).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cachewright.generator.errors import CachewrightError, ToolMissing, UsageError
from cachewright.generator.targets import ENGINES

from .. import ui
from . import HELP, common

if TYPE_CHECKING:
    from cachewright.generator.model import Policy

    from .. import checks
    from ..client import Identity, Response
    from ..origin import Counts, RecordedRequest, RuleSpec
    from ..report.results import CheckResult, RunResult
    from ..runtime.api import Runtime, Stack
    from ..runtime.prepare import Configs
    from ..scenarios import EngineClient, OriginControl, Scenario, ScenarioContext, StackContext

    Selection = tuple[list[checks.Check], list[checks.Check], tuple[str, ...]]
    Replay = Callable[[Runtime, Policy, tuple[str, ...]], list[CheckResult]]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "test", help=HELP["test"],
        description="Compile POLICY, start the sample origin and the real engines, and run the "
                    "checks derived from the policy plus its scenarios. Exit 0 only when every "
                    "selected check passed on every selected engine.",
        epilog="examples:\n  cachewright test examples/shop/policy.yaml\n"
               "  cachewright test policy.yaml --engine varnish --junit report.xml\n"
               "  cachewright test policy.yaml --checks rule. --checks security\n"
               "  cachewright test policy.yaml --origin http://127.0.0.1:8000  # your own app\n"
               "  cachewright test policy.yaml --format github  # + failed checks as annotations\n"
               "  cachewright test policy.yaml --replay access.log  # outcomes vs a baseline run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    add_run_options(p)
    _add_selection(p)
    p.add_argument("--trace", action="store_true",
                   help="print one line per request: engine, request, status, cache outcome, and "
                        "whether the origin produced the response")
    p.add_argument("--allow-skips", action="store_true",
                   help="exit 0 when checks were skipped but none failed (the verdict still says "
                        "INCOMPLETE and why; without this option such a run exits 4)")
    p.add_argument("--response-id-header", metavar="NAME",
                   help="a header your app sets uniquely on every response: what proves a hit "
                        "with --origin/--origin-image and what same_response_as compares "
                        "(default: X-Response-Id with the sample origin; else ETag, else a "
                        "digest of the body)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write the results as JUnit XML")
    common.add_format(p)
    p.add_argument("--replay", type=Path, metavar="FILE",
                   help="also replay this traffic (an access log as replay reads it: nginx combined, "
                        "varnishncsa, JSON lines, gzip; or a requests file, METHOD URL [Name: "
                        "value]... a line) and check that no request changes outcome relative to "
                        "a baseline run")
    p.add_argument("--replay-baseline", type=Path, metavar="FILE",
                   help="the baseline --replay compares with, recorded when absent (default: "
                        "FILE.baseline.json beside the --replay file)")
    p.set_defaults(run=run)


def _add_selection(p: argparse.ArgumentParser) -> None:
    """What runs: which checks and scenarios, the slow ones, your app's pages."""
    p.add_argument("--checks", action="append", default=[], metavar="ID_OR_TAG",
                   help="run only checks whose id starts with this or that carry this tag "
                        "(repeatable; e.g. rule.static, security, stale)")
    p.add_argument("--scenarios", action="append", type=Path, default=None, metavar="FILE",
                   help="scenario file(s) (default: scenarios.yaml next to the policy)")
    p.add_argument("--no-scenarios", action="store_true", help="derived checks only")
    p.add_argument("--no-derived", action="store_true", help="scenarios only")
    p.add_argument("--slow", action="store_true",
                   help="also run the checks that wait long for the policy's timers "
                        "(origin.read_timeout, long stale windows); without this option they are "
                        "left out, and a note says which and how long each waits")
    p.add_argument("--path", action="append", default=[], metavar="RULE=/PATH",
                   help="with --origin/--origin-image: a real page of your app that RULE "
                        "matches, for that rule's checks (repeatable; 'default' for the "
                        "implicit rule)")


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
                        "listening on --origin-port); the black-box checks run, as with --origin")
    p.add_argument("--origin-port", type=int, default=8080, metavar="PORT",
                   help="docker: the port the --origin-image app listens on (default: 8080)")
    p.add_argument("--sample-origin-image", metavar="IMAGE",
                   help="docker: an image with python3 to run the sample origin in (default: "
                        "cachewright/origin:local, else python:3.11-slim)")
    p.add_argument("--docker-network", choices=("private", "host"), default="private",
                   help="docker: one private network per run (default), or the host's network")
    p.add_argument("--origin", metavar="URL",
                   help="use your running app at URL instead of the sample origin (test: "
                        "black-box checks in place of those that need the sample origin's "
                        "control port, and the scenarios that neither program nor count it)")


def runtime(args: argparse.Namespace, configs: Configs | None = None) -> Runtime:
    """The runtime the options ask for (running ``configs``: by default the compiled policy)."""
    from ..runtime.prepare import generated

    configs = configs or generated
    if args.runtime == "local":
        from ..runtime.local import LocalRuntime

        return LocalRuntime(configs=configs)
    from ..runtime.docker import DockerRuntime  # needs the docker SDK and an engine

    images = {}
    for item in args.image:
        role, sep, image = item.partition("=")
        if not sep or not image:
            raise UsageError(f"--image {item!r}: expected ROLE=IMAGE, e.g. nginx=nginx:1.27")
        images[role] = image
    return DockerRuntime(images, args.sample_origin_image, args.docker_network,
                         app_image=args.origin_image, app_port=args.origin_port, configs=configs)


def engines(args: argparse.Namespace) -> tuple[str, ...]:
    """The engines to run; a missing one is an error unless --skip-missing (local runtime)."""
    import shutil

    from ..engines import binaries, packages

    wanted = ENGINES if args.engine == "all" else (args.engine,)
    if args.runtime != "local":
        return tuple(wanted)
    present = []
    for engine in wanted:
        missing = [b for b in binaries(engine) if shutil.which(b) is None]
        if not missing:
            present.append(engine)
        elif args.skip_missing:
            print(f"skipping {engine}: {', '.join(missing)} not installed", file=sys.stderr)
        else:
            raise ToolMissing(f"{engine}: {', '.join(missing)} is not installed (on Debian: "
                              f"apt-get install {packages(engine)}; or --engine / --skip-missing)")
    if not present:
        raise ToolMissing("no engine to run")
    return tuple(present)


def run(args: argparse.Namespace) -> int:
    with common.annotating_errors(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from cachewright.generator.fleet import not_yet
    from cachewright.generator.load import load

    from .. import checks, client, report
    from ..report.results import RunResult

    policy = load(args.policy)
    not_yet(policy, "test", args.runtime)
    common.warn(policy.warnings, args, policy.source)
    selected = engines(args) if policy.fleet is None else fleet_engines(args, policy)
    scenarios = scenarios_of(args)
    derived, asked_out, notes = derived_checks(args, policy)
    from datetime import UTC, datetime

    started, clock = datetime.now(UTC), time.monotonic()
    total = len(selected) * len(derived) + sum(len(set(s.engines) & set(selected)) for s in scenarios)
    chosen = runtime(args) if policy.fleet is None else fleet_runtime(args)
    client.TRACE = Tracer() if args.trace else None
    identity = response_identity(args)
    seen = checks.front_view(policy)  # a fleet's checks run through its first front node
    replay = replay_check(args, policy)
    results: list[CheckResult] = []
    if derived or asked_out or scenarios or replay is None:  # --replay alone: its own stack only
        with report.Progress(sys.stderr, total, enabled=None if ui.level else False) as progress, \
                chosen.start(policy, selected, args.origin) as stack:
            results = checks.run_checks(derived, stack, seen, selected, progress.done)
            results += [checks.left_out(c, e) for e in selected for c in asked_out]
            results += run_scenarios(scenarios, stack, seen, selected, progress.done, identity)
    results += replay(chosen, policy, selected) if replay else []
    outcome = RunResult(policy.name, str(args.policy), chosen.name, selected, tuple(results), started,
                        time.monotonic() - clock, args.allow_skips, notes)
    color = report.should_color(sys.stdout)
    print(report.failures_only(outcome, color) if ui.level == ui.QUIET else
          report.table(outcome, color, verbose=ui.level == ui.VERBOSE), end="")
    ui.detail(report.notes(outcome))
    annotate_failures(args, policy, scenarios, outcome)
    write_report(args.json, report.to_json(outcome))
    write_report(args.junit, report.to_junit(outcome))
    return outcome.exit_code


def annotate_failures(args: argparse.Namespace, policy: Policy, scenarios: tuple[Scenario, ...],
                      outcome: RunResult) -> None:
    """With ``--format github``, each failed check as an error at its rule's (or scenario's)
    line, else on the policy file."""
    if common.github(args):
        from ..report.annotate import check_annotations, check_places

        places = check_places(policy, {s.check_id: s.source for s in scenarios})
        common.emit(check_annotations(outcome, places))
def replay_check(args: argparse.Namespace, policy: Policy) -> Replay | None:
    """``--replay``: the check, run on a stack of its own after the others (None without the
    option): no check's cache entries or origin rules change its outcomes. The traffic file and
    the baseline are checked before any engine starts."""
    from ..traffic import baseline
    from ..traffic.logs import read  # access logs of every format, or a requests file

    if args.replay is None:
        if args.replay_baseline is not None:
            raise UsageError("--replay-baseline needs --replay")
        return None
    if policy.fleet is not None or user_app(args):
        raise UsageError("--replay runs in front of the sample origin, without a fleet: section "
                         "(its origin counts are the ground truth)")
    if not args.replay.is_file():
        raise UsageError(f"--replay {args.replay}: no such file")
    saved = baseline.baseline_path(args.replay, args.replay_baseline)
    baseline.load(saved)  # a bad baseline is an error before any engine starts

    def run_replay(chosen: Runtime, run_policy: Policy, engines: tuple[str, ...]) -> list[CheckResult]:
        with chosen.start(run_policy, engines) as stack:
            return baseline.check(stack, run_policy, engines, args.replay, saved, read)

    return run_replay


def fleet_engines(args: argparse.Namespace, policy: Policy) -> tuple[str, ...]:
    """A fleet's one engine column: its front tier's engine, through which every check runs."""
    assert policy.fleet is not None
    front = policy.fleet.tiers[0].engine
    if user_app(args):
        raise UsageError("a fleet runs in front of the sample origin: --origin and --origin-image "
                         "are not supported with a fleet: section yet")
    if args.engine not in ("all", front):
        raise UsageError(f"--engine {args.engine}: a fleet's checks run through its front tier, "
                         f"whose engine is {front} (leave --engine out)")
    return (front,)


def fleet_runtime(args: argparse.Namespace) -> Runtime:
    """The fleet launcher of ``--runtime`` (``harness.runtime.fleet``, ``runtime.docker.fleet``)."""
    if args.runtime == "docker":
        from ..runtime.docker.fleet import DockerFleetRuntime

        return DockerFleetRuntime()
    from ..runtime.fleet import FleetRuntime

    return FleetRuntime()


def user_app(args: argparse.Namespace) -> bool:
    """Whether the origin is the user's own app (``--origin`` or ``--origin-image``)."""
    return bool(args.origin or getattr(args, "origin_image", None))


def response_identity(args: argparse.Namespace) -> Identity:
    """What tells responses apart: ``--response-id-header``, else the sample origin's
    X-Response-Id, else (the user's app) ETag or a body digest."""
    from ..client import SAMPLE_IDENTITY, Identity

    if args.response_id_header:
        return Identity(args.response_id_header)
    return Identity() if user_app(args) else SAMPLE_IDENTITY


def _split_slow(found: list[checks.Check], args: argparse.Namespace) -> tuple[list[checks.Check], list[checks.Check]]:
    """The checks to run, and the slow ones left out: those waiting longer than ``SLOW_WAIT``
    for the policy's timers, unless ``--slow`` or ``--checks`` asked for them."""
    from ..checks import SLOW_WAIT

    if args.slow or args.checks:
        return found, []
    return [c for c in found if c.wait <= SLOW_WAIT], [c for c in found if c.wait > SLOW_WAIT]


def _slow_note(slow: list[checks.Check]) -> tuple[str, ...]:
    from ..checks import SLOW_WAIT

    if not slow:
        return ()
    waits = ", ".join(f"{c.id} {c.wait:.0f}s" for c in slow)
    return (f"{len(slow)} derived checks wait longer than {SLOW_WAIT:.0f}s for the policy's "
            f"timers and were left out ({waits}); run with --slow for them",)


def derived_checks(args: argparse.Namespace, policy: Policy) -> Selection:
    """The derived checks to run; those asked for by ``--checks`` that cannot run against the
    user's app (reported as skipped); and a note on what the selection left out."""
    from .. import checks
    from ..checks.blackbox import parse_paths

    if args.no_derived:
        return [], [], ()
    if not user_app(args):
        if args.path:
            raise UsageError("--path applies to your own app (--origin or --origin-image)")
        every = checks.derive(policy, conformance=checks.asks_conformance(args.checks), runtime=args.runtime)
        _require_matches(args.checks, every)
        runnable, slow = _split_slow(checks.select(every, args.checks), args)
        return runnable, [], _slow_note(slow)
    options = checks.Options(response_identity(args), parse_paths(args.path))
    runnable, out = checks.derive_for_app(policy, options,
                                          conformance=checks.asks_conformance(args.checks))
    _require_matches(args.checks, [*runnable, *out])
    asked_out = checks.select(out, args.checks) if args.checks else []
    note = (f"{len(out)} derived checks need the sample origin (they program or count it: TTLs, "
            "stale serving, origin faults, the security suite, ...) and were left out; run "
            "without --origin/--origin-image for them") if out and not args.checks else ""
    return checks.select(runnable, args.checks), asked_out, (note,) if note else ()


def _require_matches(patterns: list[str], derived: list[checks.Check]) -> None:
    """Every ``--checks`` pattern selects a check derived for this policy: a run of nothing (a
    typo, a family the policy does not derive) is never reported as passed."""
    from .. import checks

    unmatched = [p for p in patterns if not checks.select(derived, [p])]
    if unmatched:
        families = sorted({c.id.split(".")[0] for c in derived})
        why = (" The rfc family needs a cached rule that respects origin headers and whose "
               "requests get cache entries of their own." if checks.asks_conformance(unmatched)
               and not any(c.id.startswith("rfc.") for c in derived) else "")
        raise UsageError(f"--checks {', '.join(unmatched)}: no check derived for this policy has "
                         "that id prefix or tag (its checks' families: " + ", ".join(families) +
                         ")." + why)


class Tracer:
    """``--trace``: one line per request on stderr. The origin gives every response it makes a
    unique id, so a response id not seen before means the origin was hit."""

    def __init__(self) -> None:
        import threading

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
    from ..scenarios import load_scenarios

    if args.no_scenarios:
        return ()
    files = args.scenarios or [p for p in [args.policy.parent / "scenarios.yaml"] if p.is_file()]
    out: list[Scenario] = []
    for path in files:
        out.extend(load_scenarios(path))
    return tuple(out)


def run_scenarios(scenarios: tuple[Scenario, ...], stack: Stack, policy: Policy,
                  selected: tuple[str, ...], done: Callable[[CheckResult], None] | None = None,
                  identity: Identity | None = None) -> list[CheckResult]:
    """Each engine runs the scenarios meant for it (``engines:``), in its own thread;
    ``identity`` tells responses apart (default: the sample origin's X-Response-Id)."""
    import concurrent.futures

    from ..client import SAMPLE_IDENTITY
    from ..runtime.prepare import request_host
    from ..scenarios import StackContext

    if not scenarios:
        return []
    ctx: ScenarioContext = StackContext(stack, request_host(policy), policy.headers.cache_status_name)
    if not stack.origin.control_url:
        ctx = _WithoutOrigin(StackContext(stack, request_host(policy)))

    def one_engine(engine: str) -> list[CheckResult]:
        out = []
        for scenario in (s for s in scenarios if engine in s.engines):
            result = _scenario_result(scenario, ctx, engine, bool(stack.origin.control_url),
                                      identity or SAMPLE_IDENTITY)
            if done is not None:
                done(result)
            out.append(result)
        return out

    with concurrent.futures.ThreadPoolExecutor(len(selected)) as pool:
        return [r for rs in pool.map(one_engine, selected) for r in rs]


def _scenario_result(scenario: Scenario, ctx: ScenarioContext, engine: str, control: bool,
                     identity: Identity) -> CheckResult:
    from ..report.results import CheckResult
    from ..scenarios import run_scenario

    if not control and scenario.needs_origin:
        return CheckResult(scenario.check_id, scenario.description or scenario.name, engine,
                           "skipped", "programs or counts the sample origin, or reads what it "
                           "received (not with --origin or --origin-image)",
                           tags=("scenario", *scenario.tags))
    return run_scenario(scenario, ctx, engine, identity=identity)


class _NoOrigin:
    """The origin control of a user's own app: nothing to program, nothing counted."""

    def add_rules(self, rules: Sequence[RuleSpec]) -> None:
        raise CachewrightError("no origin control port with --origin")

    def delete_rules(self, *, path: str | None = None, pattern: str | None = None) -> int:
        return 0

    def counts(self) -> Counts:
        from ..origin import Counts

        return Counts(0, {}, {})

    def requests(self, *, path: str | None = None, method: str | None = None,
                 since: int | None = None, limit: int | None = None) -> list[RecordedRequest]:
        return []


class _WithoutOrigin:
    """The scenarios' context with the user's own app as the origin: the stack's clients and
    logs, and an origin with nothing to program and nothing counted."""

    def __init__(self, stack: StackContext) -> None:
        self.stack = stack

    @property
    def origin(self) -> OriginControl:
        return _NoOrigin()

    def client(self, engine: str) -> EngineClient:
        return self.stack.client(engine)

    def logs(self, engine: str, lines: int = 40) -> str:
        return self.stack.logs(engine, lines)

    def stored_count(self, engine: str, path: str) -> int:
        return self.stack.stored_count(engine, path)


def write_report(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
