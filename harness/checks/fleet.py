"""Checks of a fleet (docs/fleets.md): what only several nodes together promise, proven by the
origin's request counts and each node's own record of what it stored.

The policy's own checks run through the first front node (``front_view``: the policy as that
node answers it); these run over every node of a ``harness.runtime.fleet.FleetStack``:

- ``fleet.herd``: concurrent cold requests for one object, spread over every front node, reach
  the origin once, and every front node then holds the object itself;
- ``fleet.shard.once``: each of K objects, asked through every front node (each in its own
  order, so that a tier spread round-robin shows), is stored on exactly one node of the shard
  tier, and every node holds its share;
- ``fleet.purge``: after a fleet purge (``cachewright purge --fleet``'s sending: the tier
  nearest the origin first), no node answers the purged object, asked directly or through the
  front.
"""

from __future__ import annotations

import concurrent.futures
import random
import time
from collections.abc import Iterator
from dataclasses import replace

from cachewright.generator.model import Policy, Rule

from ..client import Client, Response
from ..runtime.fleet import FleetNode, FleetStack
from ..runtime.prepare import request_host
from ..selection import Request, probe_for
from .base import RECORD_WAIT, Check, CheckSkipped, Ctx
from .purge import purge_rules, purger_address
from .rules import origin_answer, own

#: concurrent cold requests per front node in ``fleet.herd``
HERD_PER_NODE = 4
#: objects per shard node in ``fleet.shard.once`` (K = 15 N, at least 30)
OBJECTS_PER_NODE = 15
PURGE_TIMEOUT = 5.0


def front_view(policy: Policy) -> Policy:
    """The policy as the first front node answers it (its own name in Cache-Status); a single
    node's policy as it is."""
    if policy.fleet is None:
        return policy
    front = policy.fleet.tiers[0].nodes[0].name
    return replace(policy, fleet=None, headers=replace(policy.headers, cache_status_name=front))


def purges_one_node(check: Check) -> bool:
    """Whether ``check`` purges through one node and expects the object gone: in a fleet the
    tiers behind it still hold it (``fleet.purge`` purges the fleet instead). ``purge.refused``
    holds through the front node: a refusal is the front node's own."""
    return check.id.startswith("purge.") and check.id != "purge.refused"


def fleet_checks(policy: Policy) -> Iterator[Check]:
    """The fleet family for ``policy``'s tiers (nothing for a single node)."""
    fleet = policy.fleet
    if fleet is None or not purge_rules(front_view(policy)):
        return
    last = fleet.tiers[-1]
    if len(fleet.tiers) > 1 and (last.routing == "shard" or len(last.nodes) == 1):
        yield Check("fleet.herd", "concurrent cold requests over every front node reach the "
                    "origin once; every front node then holds the object", _check_herd, ("fleet",))
    if any(t.routing == "shard" for t in fleet.tiers):
        yield Check("fleet.shard.once", "each object is stored on exactly one node of the shard "
                    "tier, every node holding its share", _check_shard_once, ("fleet",))
    if policy.purge is not None:
        yield Check("fleet.purge", "after a fleet purge, no node answers the purged object",
                    _check_purge, ("fleet", "purge", "exclusive"))


# --------------------------------------------------------------------------- helpers


def fleet_stack(ctx: Ctx) -> FleetStack:
    if not isinstance(ctx.stack, FleetStack):
        raise CheckSkipped("runs on a fleet (cachewright test FLEET.yaml --runtime local)")
    return ctx.stack


def fresh_objects(ctx: Ctx, count: int, **answer: object) -> tuple[Rule, list[Request]]:
    """``count`` fresh requests of the first rule a purge can reach, the origin programmed to
    answer each so that it is stored (plus ``answer``'s fields, e.g. a delay)."""
    rules = purge_rules(ctx.policy)
    if not rules:
        raise CheckSkipped("no cacheable rule whose URLs a fresh GET can reach")
    rule, out = rules[0], []
    for _ in range(count):
        tag = ctx.tag()
        req = probe_for(ctx.policy, rule, tag=tag, host=request_host(ctx.policy))
        if req is None:
            raise CheckSkipped(f"cannot build a request that rule '{rule.name}' matches")
        req = own(ctx, req, tag, rule)
        ctx.program(req.unit, **origin_answer(ctx.policy, rule), **answer)
        out.append(req)
    return rule, out


def _client(ctx: Ctx, node: FleetNode) -> Client:
    return Client(node.endpoint(), request_host(ctx.policy), ctx.stack.ca_file, cache_name=node.name)


def send_to(ctx: Ctx, node: FleetNode, req: Request) -> Response:
    """``req`` sent to ``node`` itself: the front tier on the checks' scheme, inner tiers on
    plain HTTP (what they serve)."""
    scheme = ctx.scheme if node.https_port is not None else "http"
    headers = {n: v for n, v in req.headers if n.lower() != "cookie"}
    if req.cookie_header:
        headers["Cookie"] = req.cookie_header
    response = _client(ctx, node).request(req.method, req.target, headers, host=req.host, scheme=scheme)
    ctx.client.log.append(f"{node.name}: {response.summary()}")
    return response


# --------------------------------------------------------------------------- the checks


def _check_herd(ctx: Ctx) -> None:
    stack = fleet_stack(ctx)
    front = stack.tier(stack.tiers()[0])
    _, (req,) = fresh_objects(ctx, 1, delay=0.5)  # every request arrives while the first is fetched
    senders = [front[i % len(front)] for i in range(HERD_PER_NODE * len(front))]
    with concurrent.futures.ThreadPoolExecutor(len(senders)) as pool:
        answers = list(pool.map(lambda n: send_to(ctx, n, req), senders))
    bad = [a.summary() for a in answers if a.status != 200]
    ctx.expect(not bad, f"herd answers not 200: {bad[:3]}")
    ctx.expect(ctx.count(req.unit) == 1, f"{len(senders)} concurrent requests over {len(front)} "
               f"front nodes reached the origin {ctx.count(req.unit)} times, expected once")
    missing = _not_storing(stack, front, req)
    ctx.expect(not missing, f"front nodes that did not store {req.target}: {', '.join(missing)}")
    ctx.notes.append(f"{len(senders)} requests over {len(front)} front nodes, 1 origin request")


def _not_storing(stack: FleetStack, nodes: list[FleetNode], req: Request) -> list[str]:
    """The nodes that hold no copy of ``req`` within ``RECORD_WAIT`` (engines finish writing
    after answering)."""
    deadline = time.monotonic() + RECORD_WAIT
    while True:
        missing = [n.name for n in nodes if not stack.stored_on(n.name, req.path)]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.1)


def shard_nodes(stack: FleetStack, policy: Policy) -> list[FleetNode]:
    assert policy.fleet is not None
    tier = next(t for t in policy.fleet.tiers if t.routing == "shard")
    return stack.tier(tier.name)


def _check_shard_once(ctx: Ctx) -> None:
    """K = 15 N objects over N nodes; each node must hold at least K / N / 3 = 5 of them. For a
    uniform ring a node's share is Binomial(K, 1/N): P(share < 5) is 3e-5 for N = 2 (K = 30)
    and 2e-4 for N = 3 (K = 45), so a failure is a lopsided ring, not bad luck."""
    stack = fleet_stack(ctx)
    policy = _fleet_policy(ctx)
    shard, front = shard_nodes(stack, policy), stack.tier(stack.tiers()[0])
    _, objects = fresh_objects(ctx, max(30, OBJECTS_PER_NODE * len(shard)))
    for node in front:
        for req in random.sample(objects, len(objects)):
            response = send_to(ctx, node, req)
            ctx.expect(response.status == 200, f"{response.summary()}: expected 200")
    holders = holders_soon(stack, shard, objects)
    wrong = {t: h for t, h in holders.items() if len(h) != 1}
    ctx.expect(not wrong, f"{len(wrong)} of {len(objects)} objects not stored on exactly one "
               f"shard node: " + "; ".join(f"{t} on {h or 'none'}" for t, h in list(wrong.items())[:3]))
    share = {n.name: sum(h == [n.name] for h in holders.values()) for n in shard}
    floor = len(objects) / len(shard) / 3
    ctx.expect(all(v >= floor for v in share.values()),
               f"shares {share}: a node holds fewer than K/N/3 = {floor:.1f} of {len(objects)}")
    ctx.notes.append(f"{len(objects)} objects, one node each: {share}")


def holders_soon(stack: FleetStack, nodes: list[FleetNode], objects: list[Request]) -> dict[str, list[str]]:
    """The nodes holding each object (by target), polled briefly while a record is still being
    written (each node's records read once a round)."""
    deadline = time.monotonic() + RECORD_WAIT
    while True:
        paths = [req.path for req in objects]
        stored = {n.name: stack.stored_each(n.name, paths) for n in nodes}
        found = {req.target: [n.name for n in nodes if stored[n.name][req.path]] for req in objects}
        if all(found.values()) or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def _fleet_policy(ctx: Ctx) -> Policy:
    policy = fleet_stack(ctx).run_policy
    assert policy.fleet is not None
    return policy


def _check_purge(ctx: Ctx) -> None:
    """Primed through every front node (one origin request), purged fleet-wide: every node,
    asked directly (front nodes on the checks' scheme, inner ones on plain HTTP), answers
    something other than the purged response, and no front node answers it from its cache."""
    from ..purging import Purge, fleet_tiers, purge_tiers

    stack = fleet_stack(ctx)
    if purger_address(ctx.policy) != "127.0.0.1":  # the purge command sends from it
        raise CheckSkipped("purge.allow does not hold 127.0.0.1, the address purges come from")
    _, (req,) = fresh_objects(ctx, 1)
    front = stack.tier(stack.tiers()[0])
    primed = {send_to(ctx, n, req).response_id for n in front}
    ctx.expect(len(primed) == 1 and ctx.count(req.unit) == 1,
               f"priming through {len(front)} front nodes: responses {primed}, origin count "
               f"{ctx.count(req.unit)} (expected one response, one origin request)")
    _not_storing(stack, front, req)  # stored (or given up on) before the purge
    outcomes = purge_tiers(fleet_tiers(stack.run_policy, ca_file=stack.ca_file),
                           Purge("PURGE", req.target, req.host, {}), PURGE_TIMEOUT)
    failed = [f"{o.node.name}: {o.status} {o.detail}" for o in outcomes if not o.ok]
    ctx.expect(not failed, f"fleet purge not confirmed by: {'; '.join(failed)}")
    stale = [r.node.name for r in stack.nodes.values() if send_to(ctx, r.node, req).response_id in primed]
    ctx.expect(not stale, f"after the fleet purge, {', '.join(stale)} still answered the purged "
               "response")
    ctx.notes.append(f"{len(outcomes)} nodes purged; none answers the purged response")
