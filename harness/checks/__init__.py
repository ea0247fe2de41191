"""Checks derived from a policy, and running them on every engine of a stack.

The engines run their checks at the same time, each engine several checks at once (the engines
are separate processes with separate caches, and every check uses fresh paths), so a run takes
about as long as its slowest engine's longest checks.
Checks tagged ``exclusive`` change what other checks see (the origin stops listening, a purge
of everything empties the cache), so they run afterwards, alone, one engine at a time.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Sequence

from cachewright.generator.capabilities import FEATURES
from cachewright.generator.model import Policy

from ..client import Client
from ..origin import OriginClient
from ..report.results import CheckResult
from ..runtime.api import Stack
from ..runtime.prepare import request_host
from .base import SLOW_WAIT, Check, CheckFailed, CheckSkipped, Ctx
from .blackbox import Options, blackbox_checks
from .defaults import default_checks
from .faults import fault_checks
from .fleet import fleet_checks, front_view, purges_one_node
from .fleet_loss import loss_checks
from .fleet_partition import partition_checks
from .purge import purge_checks
from .rfc import rfc_checks
from .rules import rule_checks
from .security import security_checks
from .tls import tls_checks

__all__ = ["SLOW_WAIT", "Check", "Ctx", "Options", "asks_conformance", "context", "derive",
           "derive_for_app", "front_view", "left_out", "run_checks", "select"]

Progress = Callable[[CheckResult], None]
#: checks run at once on one engine (each uses its own paths, so they never share an entry)
PER_ENGINE = 4
#: the rfc family alone: its checks mostly wait for a max-age=1 to run out, twice as many at once
RFC_PER_ENGINE = 8


def derive(policy: Policy, *, conformance: bool = False, runtime: str = "local") -> list[Check]:
    """Every check the policy implies, rules first; with ``conformance``, the RFC 9111 family
    too (``test --checks rfc``: a report on the engines, not the policy's own promises). A
    fleet's: the policy's as its first front node answers it (but the purge family, whose purges
    reach one node: ``fleet.purge`` purges the fleet), and the fleet family (on ``runtime``
    docker, ``fleet.partition`` too: only containers can be cut off a network)."""
    if policy.fleet is not None:
        own = derive(front_view(policy), conformance=conformance)
        return [*(c for c in own if not purges_one_node(c)), *fleet_checks(policy), *loss_checks(policy),
                *(partition_checks(policy) if runtime == "docker" else ())]
    return [*rule_checks(policy), *default_checks(policy), *purge_checks(policy),
            *tls_checks(policy), *security_checks(policy), *fault_checks(policy),
            *(rfc_checks(policy) if conformance else ())]


def asks_conformance(patterns: Sequence[str]) -> bool:
    """Whether ``--checks`` patterns ask for the rfc family."""
    return any(p == "rfc" or p.startswith("rfc.") for p in patterns)


def derive_for_app(policy: Policy, options: Options, *,
                   conformance: bool = False) -> tuple[list[Check], list[Check]]:
    """With the user's own app as the origin: the checks that can run (the black-box checks,
    then the derived checks that need no control port), and those left out (they program or
    count the sample origin)."""
    every = derive(policy, conformance=conformance)
    runnable = [c for c in every if not c.needs_control]
    return [*blackbox_checks(policy, options), *runnable], [c for c in every if c.needs_control]


def left_out(check: Check, engine: str) -> CheckResult:
    """The result of a check that was asked for by name but cannot run with the user's app."""
    return _result(check, engine, "skipped", "needs the sample origin (not with --origin or --origin-image)")


def select(checks: Iterable[Check], patterns: Sequence[str]) -> list[Check]:
    """Checks whose id starts with, or whose tags include, one of ``patterns`` (all if none)."""
    if not patterns:
        return list(checks)
    return [c for c in checks if any(c.id.startswith(p) or p in c.tags for p in patterns)]


def run_checks(checks: Sequence[Check], stack: Stack, policy: Policy, engines: Sequence[str],
               progress: Progress | None = None) -> list[CheckResult]:
    """Run ``checks`` on each engine (engines in parallel, then the ``exclusive`` checks alone,
    one engine at a time); results in engine, check order."""
    shared = [c for c in checks if "exclusive" not in c.tags]
    workers = RFC_PER_ENGINE if shared and all("rfc" in c.tags for c in shared) else PER_ENGINE
    with concurrent.futures.ThreadPoolExecutor(max(1, len(engines))) as pool:
        futures = [pool.submit(_run_engine, shared, stack, policy, e, progress, workers) for e in engines]
        by_engine = {e: f.result() for e, f in zip(engines, futures, strict=True)}
    alone = [c for c in checks if "exclusive" in c.tags]
    for engine in engines:
        by_engine[engine] += _run_engine(alone, stack, policy, engine, progress, workers=1)
    order = {c.id: i for i, c in enumerate(checks)}
    return [r for e in engines for r in sorted(by_engine[e], key=lambda r: order[r.check_id])]


def _run_engine(checks: Sequence[Check], stack: Stack, policy: Policy, engine: str,
                progress: Progress | None, workers: int = PER_ENGINE) -> list[CheckResult]:
    """One engine's checks, ``workers`` at a time (most of a check's time is spent waiting for
    a TTL to run out or a slowed origin to answer); results in check order."""
    def one(check: Check) -> CheckResult:
        result = run_one(check, stack, policy, engine)
        if progress is not None:
            progress(result)
        return result

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, checks))


def run_one(check: Check, stack: Stack, policy: Policy, engine: str) -> CheckResult:
    """One check on one engine: passed, failed (with what explains it), unsupported or skipped."""
    feature = FEATURES[check.feature] if check.feature else None
    if feature is not None and feature.on(engine, policy).level == "unsupported":
        how = feature.on(engine, policy).how
        return _result(check, engine, "unsupported", f"{engine}: {how}")
    if not stack.alive(engine):
        return _result(check, engine, "failed", f"{engine} is not running (it exited during the run)",
                       tuple(f"{engine} log: {line}" for line in stack.logs(engine, 15).splitlines()))
    origin = OriginClient(stack.origin.control_url) if stack.origin.control_url else None
    if check.needs_control and origin is None:
        return _result(check, engine, "skipped", "needs the sample origin (not with --origin or --origin-image)")
    ctx = context(stack, policy, engine, origin)
    started = time.monotonic()
    try:
        check.run(ctx)
    except CheckSkipped as exc:
        return _result(check, engine, "skipped", str(exc), started=started)
    except CheckFailed as exc:
        return _result(check, engine, "failed", str(exc), _details(ctx), started)
    except Exception as exc:  # any error inside a check is that check's failure
        return _result(check, engine, "failed", f"{type(exc).__name__}: {exc}", _details(ctx), started)
    finally:
        if origin is not None:
            origin.close()
    return _result(check, engine, "passed", "; ".join(ctx.notes), started=started)


def context(stack: Stack, policy: Policy, engine: str, origin: OriginClient | None) -> Ctx:
    """What a check (or a measurement) uses to reach ``engine`` and program ``origin``."""
    client = Client(stack.endpoints[engine], request_host(policy), stack.ca_file,
                    cache_name=policy.headers.cache_status_name)
    return Ctx(engine, policy, stack, client, origin)


def _details(ctx: Ctx) -> tuple[str, ...]:
    lines = [f"request: {line}" for line in ctx.client.log]
    if ctx.origin is not None:
        try:
            counts = ctx.origin.counts()
            lines += [f"origin count {path}: {n}" for path, n in sorted(counts.paths.items())
                      if path in ctx.units or ctx.run_token in path]
        except Exception as exc:  # the origin may be what failed
            lines.append(f"origin counts unavailable: {exc}")
    lines += [f"{ctx.engine} log: {line}" for line in ctx.stack.logs(ctx.engine, 15).splitlines()]
    return tuple(lines)


def _result(check: Check, engine: str, outcome: str, message: str = "",
            details: tuple[str, ...] = (), started: float | None = None) -> CheckResult:
    duration = time.monotonic() - started if started is not None else 0.0
    return CheckResult(check.id, check.description, engine, outcome,  # type: ignore[arg-type]
                       message, details, duration, check.tags)
