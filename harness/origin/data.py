"""The data port's handler: count, log, wait and answer one request (stdlib only).

The data port is what the cache under test proxies to; it answers any path and any method.
The request is counted and logged the moment it arrives, before the rule's delay, so the
counts a check reads never lag behind an answer it already has. With ``--log-json`` each
request is also logged to stderr as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from .behaviours import ReplyContext, decide, render_reply
from .rules import DEFAULT_RULE
from .state import OriginState, Recorded
from .wire import Reply, Request


class DataHandler:
    """Answers data-port requests from ``state``'s rules and records them there."""

    def __init__(self, state: OriginState, surrogate_key_header: str, log_json: bool) -> None:
        self.state = state
        self.surrogate_key_header = surrogate_key_header
        self.log_json = log_json

    async def __call__(self, request: Request) -> Reply:
        """Count, log, wait and answer one data-port request."""
        started = time.monotonic()
        rule = self.state.rules.match(request)
        effective = DEFAULT_RULE if rule is None else self.state.rules.answer(rule)
        seq, response_id = self.state.arrive(request)
        outcome, status = decide(effective, request)
        key = None if rule is None else rule.key
        self.state.log.append(Recorded(seq, time.time(), response_id, request, key, status, outcome))
        if effective.delay:
            await asyncio.sleep(effective.delay)
        ctx = ReplyContext(response_id, outcome, status, rule is not None,
                           self.surrogate_key_header, time.time())
        reply = render_reply(effective, request, ctx)
        self.state.counters.sent(request, reply)
        if self.log_json:
            _log_request(request, reply, response_id, time.monotonic() - started)
        return reply


def _log_request(request: Request, reply: Reply, response_id: str, seconds: float) -> None:
    line = {
        "ts": round(time.time(), 6),
        "response_id": response_id,
        "method": request.method,
        "target": request.target,
        "status": reply.status,
        "outcome": reply.outcome,
        "client": f"{request.client[0]}:{request.client[1]}",
        "duration_ms": round(seconds * 1000, 3),
    }
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()
