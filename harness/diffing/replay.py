"""``diff --verify-engines``: the predicted changes replayed against the real engines.

OLD and NEW each run in a stack of their own (local processes: both engines in front of the
sample origin), side by side. Every changed request is sent twice through each engine of each
side, its origin answer programmed as the checks program it for the rule that side selects. The
origin's request count is the ground truth: the second request reaching the origin means "not
cached"; the Cache-Status detail names the rule. Each is compared with the prediction (the
outcome ``diff`` computed for that side and engine); purge requests are not replayed (they would
purge).
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass

from cachewright.generator.errors import ToolMissing, UsageError
from cachewright.generator.model import Policy
from cachewright.generator.targets import ENGINES

from ..checks import context
from ..checks.base import Ctx
from ..checks.rules import origin_answer
from ..engines import binaries, packages
from ..origin import OriginClient
from ..runtime.api import Stack
from ..runtime.local import LocalRuntime
from ..selection import select_rule
from .compare import DiffResult, RequestDiff
from .outcome import Outcome

STORE_WAIT = 1.0


@dataclass(frozen=True)
class Verdict:
    """One changed request on one side and engine: what was predicted, what the engine did."""

    request: str
    side: str
    engine: str
    predicted: str
    observed: str

    @property
    def agrees(self) -> bool:
        return self.predicted == self.observed


def replay(result: DiffResult) -> list[Verdict]:
    """Replay every changed request on both sides and engines (nothing to do: no stacks)."""
    if result.old.fleet is not None or result.new.fleet is not None:
        raise UsageError("--verify-engines replays single-node policies; for a fleet, prove each "
                         "version with cachewright test (docs/fleets.md)")
    items = [i for i in result.changed if _replayable(i)]
    engines = runnable(items)
    if not items or not engines:
        return []
    _require_engines(engines)
    with contextlib.ExitStack() as stacks:
        old = stacks.enter_context(LocalRuntime().start(result.old, engines))
        new = stacks.enter_context(LocalRuntime().start(result.new, engines))
        out = []
        for side, policy, stack in (("old", result.old, old), ("new", result.new, new)):
            for engine in engines:
                out += _side(policy, stack, engine, side, items)
    return out


def runnable(items: list[RequestDiff]) -> tuple[str, ...]:
    """The engines both policies compile for (an engine that cannot run one is a predicted
    change of its own, not replayed)."""
    return tuple(e for e in ENGINES if not any(o.get("engine") for i in items
                                               for o in (*i.old, *i.new) if o.engine == e))


def _replayable(item: RequestDiff) -> bool:
    served = all(o.explanation is not None for o in (*item.old, *item.new))
    return served and item.probe.request.method not in ("PURGE", "BAN")


def _require_engines(engines: tuple[str, ...]) -> None:
    for engine in engines:
        missing = [b for b in binaries(engine) if shutil.which(b) is None]
        if missing:
            raise ToolMissing(f"--verify-engines needs {engine}: {', '.join(missing)} is not "
                              f"installed (on Debian: apt-get install {packages(engine)})")


def _side(policy: Policy, stack: Stack, engine: str, side: str,
          items: list[RequestDiff]) -> list[Verdict]:
    """One side's engine: each changed request sent twice, judged by the origin's count."""
    origin = OriginClient(stack.origin.control_url)
    try:
        ctx = context(stack, policy, engine, origin)
        out = []
        for item in items:
            outcome = next(o for o in (item.old if side == "old" else item.new) if o.engine == engine)
            out.append(Verdict(item.shown, side, engine, predicted(outcome), _observe(ctx, item)))
        return out
    finally:
        origin.close()


def predicted(outcome: Outcome) -> str:
    """What the engine should do with the request sent twice, in ``_observe``'s words."""
    e = outcome.explanation
    assert e is not None
    again = "the second reaches the origin" if e.verdict == "bypass" else "the second is not sent on"
    detail = e.cache_status[-1].rpartition("detail=")[2] if e.cache_status else "?"
    return f"{again}; Cache-Status detail={detail}"


def _observe(ctx: Ctx, item: RequestDiff) -> str:
    """Send the request twice; whether the second reached the origin, and the rule named."""
    request = item.probe.request
    rule = select_rule(ctx.policy, request)
    ctx.program(request.unit, **origin_answer(ctx.policy, rule))
    ctx.send(request, scheme=item.scheme)
    if rule.cache:
        ctx.stored(request, wait=STORE_WAIT)  # nginx finishes its cache file after answering
    before = ctx.count(request.unit)
    second = ctx.send(request, scheme=item.scheme)
    again = ("the second reaches the origin" if ctx.count(request.unit) > before
             else "the second is not sent on")
    detail = second.cache.detail if ctx.policy.headers.cache_status else "?"
    return f"{again}; Cache-Status detail={detail}"
