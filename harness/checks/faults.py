"""Origin faults: what each engine does when the origin fails.

Four faults, each on every engine: the origin answers 5xx (``error``), answers too slowly
(``timeout``: a delay longer than ``origin.read_timeout``), is not listening at all (``down``:
connection refused) and closes the connection in the middle of the body (``close-mid-body``).

For each fault, with expectations taken from the policy's stale windows and ``status_ttl``:

- ``faults.KIND.fresh`` -- a URL with nothing cached gets a clean 5xx (the origin's own for
  ``error``, 502/503/504 for the others) within a bounded time: no hang and no broken 200. Once the
  origin recovers, the next request reaches it and gets its 200: no error response was stored.
- ``faults.KIND.stale`` (when ``stale.if_error`` > 0) -- a URL with a stored, expired copy inside
  the ``if_error`` window gets the stale copy; after recovery a fresh copy replaces it, and no
  error is ever returned.
- ``faults.error.status-ttl`` (when ``status_ttl`` lists a 5xx) -- that error is stored for no
  longer than ``status_ttl`` allows.

``down`` stops the origin's data port for everyone, including checks running on the other engine
at the same moment, so its checks are tagged ``exclusive``: a runner must run them alone, one
engine at a time, after the others (``harness.checks.run_checks`` does). ``down`` always
brings the origin back (``up()``) on the way out, whatever happened.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Literal

from cachewright.generator.model import Policy, Rule

from ..client import Response
from ..origin import RuleSpec
from ..selection import Request
from .base import MAX_WAIT, Check, CheckSkipped, Ctx
from .defaults import cacheable_rule, rule_or_skip, status_rule
from .rules import origin_answer, probe

Fault = Literal["error", "timeout", "down", "close-mid-body"]
FAULTS: tuple[Fault, ...] = ("error", "timeout", "down", "close-mid-body")
GATEWAY_ERRORS = (502, 503, 504)
#: the stale checks store a copy for 1 s and ask for it this long after storing it; the engine
#: serves it only while it is inside the stale windows when the origin's failure is known (after
#: origin.read_timeout for a timeout), so they are derived only where that leaves STALE_SLACK
STALE_AT = 2.2
STALE_SLACK = 1.5
#: slack on top of the read timeout (and on plain errors) before a response counts as a hang
HANG_MARGIN = 4.0
#: how long recovery may take after the origin is back (Varnish's health probe, if any, adds more)
RECOVERY_GRACE = 2.0
#: candidate statuses for the ``error`` fault, the first not listed in status_ttl is used
ERROR_STATUSES = (500, 503, 502, 504)

DESCRIPTIONS: dict[Fault, str] = {
    "error": "the origin answers 5xx",
    "timeout": "the origin answers after origin.read_timeout",
    "down": "the origin refuses connections",
    "close-mid-body": "the origin closes the connection mid-body",
}


def _status_ttls(policy: Policy) -> dict[int, int]:
    return dict(policy.cache.status_ttl)


def error_status(policy: Policy) -> int:
    """The 5xx the ``error`` fault uses: one the policy never stores, else 500."""
    ttls = _status_ttls(policy)
    return next((code for code in ERROR_STATUSES if not ttls.get(code)), 500)


def _fault_rule(policy: Policy, fault: Fault) -> RuleSpec:
    """The origin programming for ``fault`` (``down`` programs nothing: the port closes)."""
    if fault == "error":
        return {"status": error_status(policy), "failure": "error"}
    if fault == "timeout":
        return {"status": 200, "cache_control": "max-age=60",
                "delay": policy.origin.read_timeout + 1.5}
    if fault == "close-mid-body":
        return {"status": 200, "cache_control": "max-age=60", "failure": "close_mid_body",
                "body": "filler", "body_size": 65536}
    return {}


def _hang_limit(policy: Policy, fault: Fault) -> float:
    """How long a faulty answer may take before it counts as a hang."""
    if fault == "timeout":
        return policy.origin.read_timeout + HANG_MARGIN
    return HANG_MARGIN + (policy.origin.connect_timeout if fault == "down" else 0)


def _stale_in_time(policy: Policy, fault: Fault) -> bool:
    """Whether the stale copy (stored for 1 s, asked for at ``STALE_AT``) is still inside the
    stale windows when the engine learns of the fault (after origin.read_timeout for a
    timeout, at once otherwise), with ``STALE_SLACK`` to spare."""
    stale = policy.cache.stale
    learns = policy.origin.read_timeout if fault == "timeout" else 0
    return stale.while_revalidate + stale.if_error > STALE_AT - 1 + learns + STALE_SLACK


def _wait(policy: Policy, fault: Fault) -> float:
    """How long a check of ``fault`` waits for the engine to give up on the origin."""
    return _hang_limit(policy, fault) if fault == "timeout" else 0.0


def _needs_bounded_wait(policy: Policy, fault: Fault) -> None:
    if _wait(policy, fault) > MAX_WAIT:
        raise CheckSkipped(f"origin.read_timeout is {policy.origin.read_timeout}s: too long to "
                           f"wait out (at most {MAX_WAIT:.0f}s)")


def _recovery_wait(policy: Policy) -> float:
    """Varnish's health probe may mark the origin sick while it is down; it is healthy again
    after ``threshold`` good probes."""
    probe_ = policy.origin.probe
    extra = probe_.interval * probe_.threshold if probe_ else 0
    # a background refresh started during a timeout runs out only after read_timeout
    return RECOVERY_GRACE + min(policy.origin.read_timeout, MAX_WAIT) + extra


class _Faulted:
    """Put the origin into ``fault`` for ``path``; always restore it on exit."""

    def __init__(self, ctx: Ctx, path: str, fault: Fault) -> None:
        self.ctx, self.path, self.fault = ctx, path, fault

    def __enter__(self) -> None:
        if self.fault == "down":
            self.ctx.control().down()
        else:
            self.ctx.program(self.path, **_fault_rule(self.ctx.policy, self.fault))

    def __exit__(self, *exc: object) -> None:
        """Restore the origin (the ``with`` block is this check's ``finally``)."""
        if self.fault == "down":
            self.ctx.control().up()


def _send_faulted(ctx: Ctx, req: Request, fault: Fault) -> Response | Exception:
    """The response while the origin fails, or the exception the client met (a hang shows as a
    client timeout: the limit is well above what a clean error takes)."""
    limit = _hang_limit(ctx.policy, fault) + 5.0
    try:
        return ctx.send(req, timeout=limit)
    except Exception as exc:  # reported by the caller as the engine's failure
        return exc


def _describe(answer: Response | Exception) -> str:
    if isinstance(answer, Exception):
        return f"{type(answer).__name__}: {answer}"
    return f"{answer.status} {answer.cache.outcome} ({answer.elapsed:.2f}s)"


def truncated(answer: Response | Exception) -> bool:
    """Whether the client could tell the answer was cut short (fewer bytes than Content-Length,
    or a chunked body without its last chunk): what a streaming proxy sends when the origin
    closes mid-body after the status line and headers were already on their way."""
    return isinstance(answer, (http.client.IncompleteRead, ConnectionError))


def _expect_clean_error(ctx: Ctx, fault: Fault, answer: Response | Exception) -> None:
    what = DESCRIPTIONS[fault]
    if fault == "close-mid-body" and truncated(answer):
        ctx.notes.append(f"{ctx.engine} streamed the headers, then cut the body short "
                         f"({_describe(answer)}): the client can tell")
        return
    ctx.expect(isinstance(answer, Response),
               f"{what}: no HTTP answer from {ctx.engine} ({_describe(answer)}), "
               "expected a clean 5xx")
    assert isinstance(answer, Response)
    wanted = (error_status(ctx.policy),) if fault == "error" else GATEWAY_ERRORS
    ctx.expect(answer.status in wanted,
               f"{what}: {_describe(answer)}, expected {' or '.join(map(str, wanted))}")
    limit = _hang_limit(ctx.policy, fault)
    ctx.expect(answer.elapsed <= limit,
               f"{what}: the error took {answer.elapsed:.2f}s (limit {limit:.1f}s)")


def _expect_recovery(ctx: Ctx, req: Request, rule: Rule, *, stale_id: str | None) -> None:
    """With the origin answering 200 again, a fresh 200 from the origin arrives within
    ``RECOVERY_GRACE`` (Varnish holds a backend down for ``backend_remote_error_holddown``,
    0.25 s, after a refused connection); meanwhile a stale copy or a gateway error may be served.
    An answer that is still an error after the grace means the error was stored (or the engine
    did not recover)."""
    ctx.program(req.unit, **origin_answer(ctx.policy, rule))
    before = ctx.count(req.unit)
    started = time.monotonic()
    grace = _recovery_wait(ctx.policy)
    seen: list[str] = []
    while True:
        answer = _send_faulted(ctx, req, "error")
        seen.append(_describe(answer))
        if isinstance(answer, Response) and answer.status == 200 \
                and answer.response_id not in (None, stale_id):
            break
        ok_meanwhile = isinstance(answer, Response) and (
            answer.status in GATEWAY_ERRORS or (answer.status == 200 and stale_id is not None))
        ctx.expect(ok_meanwhile and time.monotonic() - started < grace,
                   f"after the origin recovered {ctx.engine} answered {', '.join(seen[-4:])} "
                   f"({len(seen)} requests over {time.monotonic() - started:.1f}s); expected the "
                   "origin's 200 (was an error or a truncated response stored?)")
        ctx.sleep(0.3)
    if len(seen) > 1:
        ctx.notes.append(f"recovered after {len(seen) - 1} more requests "
                         f"({time.monotonic() - started:.1f}s): {', '.join(seen[:-1])}")
    ctx.expect(ctx.count(req.unit) > before,
               f"after the origin recovered the origin saw no request for {req.unit}")


def check_fresh(fault: Fault, ctx: Ctx) -> None:
    """Nothing cached: a clean 5xx, then, once the origin recovers, the origin's 200."""
    _needs_bounded_wait(ctx.policy, fault)
    rule = rule_or_skip(ctx.policy)
    req = probe(ctx, rule)
    with _Faulted(ctx, req.unit, fault):
        answer = _send_faulted(ctx, req, fault)
    _expect_clean_error(ctx, fault, answer)
    _expect_recovery(ctx, req, rule, stale_id=None)


def check_stale(fault: Fault, ctx: Ctx) -> None:
    """A stored copy past its max-age, inside stale.if_error: the stale copy is served while the
    origin fails; once it recovers a fresh copy replaces it."""
    _needs_bounded_wait(ctx.policy, fault)
    rule = rule_or_skip(ctx.policy, respect=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=200, cache_control="max-age=1")
    first = ctx.send(req)
    ctx.expect(first.status == 200, f"storing the copy: {_describe(first)}")
    ctx.sleep(STALE_AT)
    with _Faulted(ctx, req.unit, fault):
        answer = _send_faulted(ctx, req, fault)
        ctx.sleep(0.3)  # a background refresh (stale-while-revalidate) meets the fault too
    what = DESCRIPTIONS[fault]
    if fault == "close-mid-body" and truncated(answer):
        # the origin's status line and headers were fine, so the engine was already streaming
        ctx.notes.append(f"{ctx.engine} streamed the fresh answer and cut it short "
                         f"({_describe(answer)}) instead of serving the stale copy")
    else:
        ctx.expect(isinstance(answer, Response) and answer.status == 200
                   and answer.response_id == first.response_id,
                   f"{what}, copy stored and expired: {_describe(answer)}, expected the stale copy")
        assert isinstance(answer, Response)
        limit = _hang_limit(ctx.policy, fault)
        ctx.expect(answer.elapsed <= limit,
                   f"{what}: the stale copy took {answer.elapsed:.2f}s (limit {limit:.1f}s)")
    _expect_recovery(ctx, req, rule, stale_id=first.response_id)


def check_error_status_ttl(code: int, ttl: int, ctx: Ctx) -> None:
    """An origin error listed in status_ttl is stored no longer than its status_ttl."""
    rule = status_rule(ctx.policy) or rule_or_skip(ctx.policy, respect=True)
    req = probe(ctx, rule)
    ctx.program(req.unit, status=code, failure="error")
    ctx.send(req)
    stored = ctx.stored(req, wait=2.0)
    too_long = [round(s.ttl) for s in stored if s.ttl > ttl + 1]
    ctx.expect(not too_long, f"{ctx.engine} stored the {code} for {too_long}s, status_ttl "
               f"allows {ttl}s")


def fault_checks(policy: Policy) -> Iterator[Check]:
    """Origin-fault checks for ``policy`` (tag ``faults``; ``down`` also ``exclusive``)."""
    stale = policy.cache.stale
    if cacheable_rule(policy) is None:
        return  # nothing is stored: no error to store, no copy to serve stale
    respects = cacheable_rule(policy, respect=True) is not None
    for fault in FAULTS:
        tags: tuple[str, ...] = ("faults", "exclusive") if fault == "down" else ("faults",)
        what = DESCRIPTIONS[fault]
        run: Callable[[Ctx], None] = partial(check_fresh, fault)
        wait = _wait(policy, fault)
        yield Check(f"faults.{fault}.fresh", f"{what}, nothing cached: a clean 5xx, and the "
                    "error is not stored", run, tags, wait=wait)
        if stale.if_error and respects and _stale_in_time(policy, fault):
            yield Check(f"faults.{fault}.stale", f"{what}, an expired copy inside "
                        "stale.if_error: the stale copy is served", partial(check_stale, fault),
                        tags, "stale.if_error", wait=wait)
    for code, ttl in policy.cache.status_ttl:
        if code >= 500 and ttl and status_rule(policy) is not None:
            yield Check(f"faults.error.status-ttl.{code}", f"an origin {code} is stored no "
                        f"longer than status_ttl ({ttl}s)",
                        partial(check_error_status_ttl, code, ttl), ("faults",))


__all__ = ["FAULTS", "error_status", "fault_checks"]
