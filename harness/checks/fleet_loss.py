"""``fleet.node-loss``: a shard node killed (SIGKILL) during a steady load through the front.

What consistent hashing promises, measured: K objects are primed (each on its owner, read from
the shard nodes' own records), the front tier's copies purged so that the next request of each
reaches the shard tier, then a paced load passes over the objects through every front node and
the first shard node is killed a few requests in. The proof:

- every request is answered; errors (not 200) are counted and bounded by the requests sent while
  the front tier cannot yet know (Varnish: the probes' detection time; nginx retries the next
  node at once, ``proxy_next_upstream``);
- the objects fetched from the origin again are the lost node's and only those: its share of
  the K objects is reported beside the ideal 1/N;
- after the node is started again (and the front tier's health has seen it), every object is
  answered by its owner again: the shard node's Cache-Status entry names it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from cachewright.generator.model import Policy

from ..client import Response
from ..purging import Purge, purge_tiers
from ..runtime.fleet import FleetNode, FleetStack
from ..selection import Request
from .base import Check, CheckSkipped, Ctx
from .fleet import PURGE_TIMEOUT, fleet_stack, fresh_objects, holders_soon, send_to, shard_nodes
from .purge import purger_address

#: the load's pace (one request every 20 ms): slow enough that the loss falls inside a pass
LOAD_INTERVAL = 0.02
#: requests sent before the node is killed
KILL_AFTER = 5
#: passes of the load over the objects (at least: it lasts the front tier's detection time)
PASSES = 2
#: seconds after the detection time by which no request may fail any more (a request in flight)
SETTLED = 0.5


def loss_checks(policy: Policy) -> Iterator[Check]:
    """``fleet.node-loss`` where a tier is sharded."""
    fleet = policy.fleet
    if fleet is None or not any(t.routing == "shard" for t in fleet.tiers):
        return
    health = fleet.health
    yield node_loss_check(health.fail_timeout, health.interval * health.threshold + health.timeout)


def node_loss_check(fail_timeout: float, probe_time: float) -> Check:
    """The check, waiting for the front tier to see the node back: nginx after
    ``fail_timeout``, Varnish after ``probe_time`` (both in the check's ``wait``)."""
    wait = max(fail_timeout, probe_time) + 1.0
    return Check("fleet.node-loss", "a shard node killed under load: requests answered, only its "
                 "objects fetched again, its objects back on it after its return",
                 lambda ctx: _check(ctx, wait, probe_time), ("fleet", "exclusive"), wait=wait)


@dataclass
class _Load:
    """A paced load over ``objects`` through ``front`` (one thread): each response with the
    time its request was sent."""

    ctx: Ctx
    front: list[FleetNode]
    objects: list[Request]
    sent: list[tuple[float, Request, Response | None]] = field(default_factory=list)

    #: how long the load lasts at least (the front tier's detection time, and then some)
    lasting: float = 0.0

    def run(self) -> None:
        total = max(PASSES * len(self.objects), int(self.lasting / LOAD_INTERVAL))
        for i in range(total):
            req, started = self.objects[i % len(self.objects)], time.monotonic()
            try:
                answer: Response | None = send_to(self.ctx, self.front[i % len(self.front)], req)
            except OSError:
                answer = None
            self.sent.append((started, req, answer))
            time.sleep(max(0.0, started + LOAD_INTERVAL - time.monotonic()))


def _check(ctx: Ctx, wait: float, probe_time: float) -> None:
    stack = fleet_stack(ctx)
    if purger_address(ctx.policy) != "127.0.0.1":
        raise CheckSkipped("purge.allow does not hold 127.0.0.1 (the front tier's copies are purged "
                           "so that requests reach the shard tier)")
    shard, front = shard_nodes(stack, stack.run_policy), stack.tier(stack.tiers()[0])
    _, objects = fresh_objects(ctx, max(30, 15 * len(shard)))
    owners = prime(ctx, stack, shard, front, objects)
    lost = shard[0]
    owned = {t for t, o in owners.items() if o == lost.name}
    counts = {req.unit: ctx.count(req.unit) for req in objects}
    detect = 0.0 if front[0].engine == "nginx" else probe_time  # nginx retries at once
    load = _Load(ctx, front, objects, lasting=detect + SETTLED + 1.0)
    killed_at = _run_with_loss(stack, load, lost)
    _judge_loss(ctx, load, owned, counts, killed_at, detect)
    refetched = {r.target for r in objects if ctx.count(r.unit) > counts[r.unit]}
    ctx.notes.append(f"{lost.name} lost: {len(refetched)} of {len(objects)} objects fetched again "
                     f"({len(refetched) / len(objects):.0%}), all its own (it held {len(owned)}: "
                     f"{len(owned) / len(objects):.0%}, ideal 1/{len(shard)} = {1 / len(shard):.0%}; "
                     "those the front held before the kill were not asked again)")
    stack.restart(lost.name)
    time.sleep(wait)
    judge_return(ctx, stack, shard, front, objects, owners)


def prime(ctx: Ctx, stack: FleetStack, shard: list[FleetNode], front: list[FleetNode],
           objects: list[Request]) -> dict[str, str]:
    """Each object fetched once, its owner read from the shard nodes' records, and the front
    tier's copies purged."""
    for req in objects:
        ctx.expect(send_to(ctx, front[0], req).status == 200, f"priming {req.target} failed")
    owners = holders_soon(stack, shard, objects)
    wrong = {t: h for t, h in owners.items() if len(h) != 1}
    ctx.expect(not wrong, f"objects not on exactly one shard node before the loss: {wrong}")
    forget_at_front(ctx, front, objects)
    return {t: h[0] for t, h in owners.items()}


def forget_at_front(ctx: Ctx, front: list[FleetNode], objects: list[Request]) -> None:
    from ..purging import fleet_tiers

    tier = fleet_tiers(fleet_stack(ctx).run_policy, ca_file=ctx.stack.ca_file)[-1]
    for req in objects:
        outcomes = purge_tiers([tier], Purge("PURGE", req.target, req.host, {}), PURGE_TIMEOUT)
        ctx.expect(all(o.ok for o in outcomes), f"purging {req.target} on the front tier failed")


def _run_with_loss(stack: FleetStack, load: _Load, lost: FleetNode) -> float:
    """Run ``load``, SIGKILL ``lost`` after ``KILL_AFTER`` requests; the time of the kill."""
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    while len(load.sent) < KILL_AFTER and thread.is_alive():
        time.sleep(LOAD_INTERVAL / 4)
    killed_at = time.monotonic()
    stack.kill(lost.name)
    thread.join(timeout=60)
    return killed_at


def _judge_loss(ctx: Ctx, load: _Load, owned: set[str], counts: dict[str, int], killed_at: float,
                detect: float) -> None:
    """Errors within the bound (the requests in flight at the kill, plus those sent in the
    ``detect`` seconds the front tier needs to see the loss); fetched again: the lost node's
    objects first asked after the kill, and no other."""
    errors = [(t, r) for t, r, a in load.sent if a is None or a.status != 200]
    bound = int(detect / LOAD_INTERVAL) + 2
    example = errors[0][1].target if errors else ""
    ctx.expect(len(errors) <= bound, f"{len(errors)} of {len(load.sent)} requests failed after the "
               f"loss (bound {bound}): e.g. {example}")
    late = [r.target for t, r in errors if t > killed_at + detect + SETTLED]
    ctx.expect(not late, f"{len(late)} requests failed after the loss once the front tier should "
               f"have routed around it ({detect + SETTLED:.1f} s after the kill): e.g. {late[:1]}")
    ctx.notes.append(f"{len(errors)} of {len(load.sent)} requests failed (bound {bound})")
    first: dict[str, float] = {}
    for started, req, _ in load.sent:
        first.setdefault(req.target, started)
    units = {r.target: r.unit for _, r, _ in load.sent}
    again = {t for t, u in units.items() if ctx.count(u) > counts[u]}
    ctx.expect(again <= owned, f"objects of surviving nodes fetched again: {sorted(again - owned)[:3]}")
    answered = {r.target for started, r, a in load.sent
                if started > killed_at and a is not None and a.status == 200}
    expected = {t for t in owned if first[t] > killed_at and t in answered}
    ctx.expect(expected <= again, f"objects of the lost node not fetched again: "
               f"{sorted(expected - again)[:3]} (answered by whom?)")


def judge_return(ctx: Ctx, stack: FleetStack, shard: list[FleetNode], front: list[FleetNode],
                  objects: list[Request], owners: dict[str, str]) -> None:
    """Every object answered by its owner again (its Cache-Status entry)."""
    forget_at_front(ctx, front, objects)
    names = {n.name for n in shard}
    moved = {}
    for req in objects:
        response = send_to(ctx, front[0], req)
        entries = [e.split(";")[0].strip() for e in (response.joined("Cache-Status") or "").split(",")]
        by = next((e for e in entries if e in names), None)
        if by != owners[req.target]:
            moved[req.target] = f"{by} (owner {owners[req.target]})"
    ctx.expect(not moved, f"after {shard[0].name}'s return, {len(moved)} objects answered by another "
               f"node: {list(moved.items())[:3]}")
