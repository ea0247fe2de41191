"""``fleet.partition``: a shard node cut off the network (``docker network disconnect``), the
docker runtime's only (loopback addresses cannot be cut off).

The node keeps running and keeps its cache: only the network between it and the tier in front
is gone, which is what a partition is. K objects are primed (each on its owner, from the shard
nodes' own records), the front tier's copies purged, the first shard node disconnected, and its
objects asked through the front until each is answered again. The proof:

- every object the cut node owned is answered (200) again, fetched from the origin by the next
  node of the ring, within the time the tier in front needs to route around it: Varnish's probes
  mark a backend sick after ``interval × (window − threshold + 1)``; nginx marks it failed after
  ``max_fails`` failed attempts within ``fail_timeout`` and tries the next node at once
  (``proxy_next_upstream``). A partition sends no reset: a new connection fails after the
  connect timeout, but a request sent on a kept-alive connection to the cut node waits the read
  timeout (``origin.read_timeout``) before the next node is tried. The bound is the longer of
  the detection time and the read timeout, plus ``SLACK``; the note says how many objects were
  answered within the detection time alone;
- the other nodes' objects are not fetched again (only the cut node's keys move);
- after the node is reconnected (with its address) and the tier in front has seen it healthy,
  every object is answered by its owner again.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

from cachewright.generator.model import Policy

from ..runtime.fleet import FleetNode
from ..selection import Request
from .base import Check, CheckSkipped, Ctx
from .fleet import fleet_stack, fresh_objects, send_to, shard_nodes
from .fleet_loss import forget_at_front, prime
from .purge import purger_address

#: seconds allowed beyond the tier in front's detection time (connect attempts, the poll)
SLACK = 3.0
POLL = 0.2
#: seconds between rounds of asking after the reconnect
ROUND_PAUSE = 1.0


def partition_checks(policy: Policy) -> Iterator[Check]:
    """``fleet.partition`` where a tier is sharded behind another."""
    fleet = policy.fleet
    if fleet is None:
        return
    shard = next((i for i, t in enumerate(fleet.tiers) if t.routing == "shard" and i > 0), None)
    if shard is None:
        return
    health = fleet.health
    in_front = fleet.tiers[shard - 1].engine
    detect = (health.interval * (health.window - health.threshold + 1) if in_front == "varnish"
              else health.fail_timeout)
    back = max(health.fail_timeout, health.interval * health.threshold + health.timeout) + 1.0
    bound = max(detect, policy.origin.read_timeout) + SLACK
    yield Check("fleet.partition", "a shard node cut off the network: its objects answered again "
                "from the origin within the detection time (or the read timeout), only those, and "
                "back on it once reconnected", lambda ctx: _check(ctx, detect, bound, back),
                ("fleet", "exclusive"), wait=2 * back)


def _check(ctx: Ctx, detect: float, bound: float, back: float) -> None:
    stack = fleet_stack(ctx)
    if not stack.partitions:
        raise CheckSkipped("cutting a node off the network needs the docker runtime")
    if purger_address(ctx.policy) != "127.0.0.1":
        raise CheckSkipped("purge.allow does not hold 127.0.0.1 (the front tier's copies are purged "
                           "so that requests reach the shard tier)")
    shard, front = shard_nodes(stack, stack.run_policy), stack.tier(stack.tiers()[0])
    _, objects = fresh_objects(ctx, max(30, 15 * len(shard)))
    owners = prime(ctx, stack, shard, front, objects)
    cut = shard[0]
    owned = [r for r in objects if owners[r.target] == cut.name]
    counts = {req.unit: ctx.count(req.unit) for req in objects}
    stack.disconnect(cut.name)
    try:
        took, late = _answered_again(ctx, front[0], owned, bound)
        soon = sum(t is not None and t <= detect + SLACK for t in took)
        others = [r for r in objects if owners[r.target] != cut.name]
        for req in others:
            send_to(ctx, front[0], req)
    finally:
        stack.reconnect(cut.name)
    ctx.expect(not late, f"{len(late)} of {len(owned)} objects of {cut.name} not answered within "
               f"{bound:.1f}s of the partition: e.g. {late[0] if late else ''}")
    moved = [r.target for r in owned if ctx.count(r.unit) <= counts[r.unit]]
    ctx.expect(not moved, f"objects of {cut.name} answered without reaching the origin: {moved[:3]}")
    again = [r.target for r in others if ctx.count(r.unit) > counts[r.unit]]
    ctx.expect(not again, f"objects of the other nodes fetched again: {again[:3]}")
    last = max((t for t in took if t is not None), default=0.0)
    ctx.notes.append(f"{cut.name} cut off: its {len(owned)} of {len(objects)} objects answered "
                     f"again, the last after {last:.1f}s (bound {bound:.1f}s; {soon} within the "
                     f"detection time {detect:.0f}s + {SLACK:.0f}s), the others not fetched again")
    time.sleep(back)
    _judge_back(ctx, front[0], shard, objects, owners, time.monotonic() + back)


def _judge_back(ctx: Ctx, node: FleetNode, shard: list[FleetNode], objects: list[Request],
                owners: dict[str, str], deadline: float) -> None:
    """Every object answered by its owner again (its Cache-Status entry), asked in rounds until
    ``deadline`` (the front tier's copies purged before each): the tier in front still holds
    kept-alive connections to the cut node that died while it was away; a request sent on one
    fails, and nginx counts it, so it may mark the node failed once more for ``fail_timeout``."""
    names = {n.name for n in shard}
    left, started, rounds = list(objects), time.monotonic(), 0
    while left and (rounds == 0 or time.monotonic() < deadline):
        if rounds:
            time.sleep(ROUND_PAUSE)
        rounds += 1
        forget_at_front(ctx, [node], left)
        left = [r for r in left if _answered_by(ctx, node, r, names) != owners[r.target]]
    moved = [f"{r.target} (owner {owners[r.target]})" for r in left[:3]]
    ctx.expect(not left, f"after the reconnect, {len(left)} objects still answered by another node: {moved}")
    if rounds > 1:
        ctx.notes.append(f"back on their owners {time.monotonic() - started:.1f}s after the "
                         f"fail_timeout wait ({rounds} rounds: the front tier's kept-alive "
                         "connections to the cut node failed on first use)")


def _answered_by(ctx: Ctx, node: FleetNode, req: Request, names: set[str]) -> str | None:
    """The shard node named in the answer's Cache-Status."""
    response = send_to(ctx, node, req)
    entries = [e.split(";")[0].strip() for e in (response.joined("Cache-Status") or "").split(",")]
    return next((e for e in entries if e in names), None)


def _answered_again(ctx: Ctx, node: FleetNode, owned: list[Request],
                    bound: float) -> tuple[list[float | None], list[str]]:
    """Ask each of ``owned`` through ``node``, all at once as a fleet's clients would (nginx
    waits its connect timeout on the cut node before trying the next), each again until it is
    answered 200 or ``bound`` has passed: the seconds until each was answered (None: never),
    and the targets never answered."""
    started = time.monotonic()

    def until_ok(req: Request) -> float | None:
        while time.monotonic() - started < bound:
            if _ok(ctx, node, req):
                return time.monotonic() - started
            time.sleep(POLL)
        return None

    with concurrent.futures.ThreadPoolExecutor(max(1, len(owned))) as pool:
        took = list(pool.map(until_ok, owned))
    late = [r.target for r, t in zip(owned, took, strict=True) if t is None]
    return took, late


def _ok(ctx: Ctx, node: FleetNode, req: Request) -> bool:
    try:
        return send_to(ctx, node, req).status == 200
    except OSError:
        return False
