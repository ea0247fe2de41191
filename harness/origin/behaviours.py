"""What a response does: its outcome, status, headers and body for one rule and one request.

Every response carries a unique response id (``X-Response-Id``, also in the body) and a
``Date``. Unless a rule says otherwise the answer is ``200`` with a JSON echo of the request::

    {"response_id": "1f0c9a2b-000007", "method": "GET", "target": "/a?x=1", "path": "/a",
     "query": "x=1", "query_params": [["x", "1"]], "http_version": "HTTP/1.1",
     "headers": [["Host", "shop"], ["Accept", "*/*"]], "body_length": 0,
     "client": {"host": "127.0.0.1", "port": 50312}, "rule": null}

``target`` is the raw request target; ``path`` and ``query`` are split from it without
percent-decoding; ``headers`` keeps the order, case and duplicates as received; ``rule`` is the
key of the matching rule (its ``path``, or ``pattern:<glob>``).

Conditional requests: for GET/HEAD answered with a 2xx, ``If-None-Match`` (weak comparison,
``*`` matches) is checked against ``etag``; only when it is absent, ``If-Modified-Since`` is
checked against ``last_modified``. A match gives ``304`` without a body, with Date, the response
id, the cache headers (Cache-Control, Expires, Vary, ETag, Last-Modified, surrogate keys) and
the rule's extra headers, but no Set-Cookie.

Pure functions (stdlib only): the clock and the response id come in as arguments, so the
outcome decided when a request arrives and the reply rendered after its delay agree.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from .rules import ETAG_RE, JsonObject, Rule, parse_http_date
from .wire import Headers, Outcome, Reply, Request

SERVER_NAME: Final = "cachewright-origin"


def _opaque_tag(tag: str) -> str:
    return tag.removeprefix("W/")


def etag_matches(etag: str, if_none_match: Sequence[str]) -> bool:
    """Weak comparison of ``etag`` with If-None-Match field values (RFC 9110 §13.1.2)."""
    if any(value.strip() == "*" for value in if_none_match):
        return True
    tags = ETAG_RE.findall(",".join(if_none_match))
    return any(_opaque_tag(tag) == _opaque_tag(etag) for tag in tags)


def is_not_modified(rule: Rule, request: Request) -> bool:
    """Whether the request's preconditions turn this response into a 304."""
    if request.method not in ("GET", "HEAD") or rule.failure or not 200 <= rule.status < 300:
        return False
    if_none_match = request.header_values("If-None-Match")
    if if_none_match:
        return rule.etag is not None and etag_matches(rule.etag, if_none_match)
    since = request.header_values("If-Modified-Since")
    if not since or rule.last_modified is None:
        return False
    since_ts, modified_ts = parse_http_date(since[0]), parse_http_date(rule.last_modified)
    return since_ts is not None and modified_ts is not None and modified_ts <= since_ts


def decide(rule: Rule, request: Request) -> tuple[Outcome, int | None]:
    """The outcome and status of a request, fixed when it arrives."""
    if rule.failure == "refuse":
        return "refused", None
    if rule.failure == "close_mid_body":
        return "closed_mid_body", rule.status
    if rule.failure == "error":
        return "error", rule.status
    if is_not_modified(rule, request):
        return "not_modified", 304
    return "ok", rule.status


def echo_document(request: Request, response_id: str, rule: Rule | None) -> JsonObject:
    """The JSON echo of what the origin received."""
    return {
        "response_id": response_id,
        "method": request.method,
        "target": request.target,
        "path": request.path,
        "query": request.query,
        "query_params": [list(p) for p in parse_qsl(request.query, keep_blank_values=True)],
        "http_version": request.version,
        "headers": [list(h) for h in request.headers],
        "body_length": len(request.body),
        "client": {"host": request.client[0], "port": request.client[1]},
        "rule": None if rule is None else rule.key,
    }


def response_body(rule: Rule, request: Request, response_id: str, matched: bool) -> bytes:
    """The representation: the echo (optionally padded) or filler bytes."""
    size = rule.body_size
    if rule.body == "filler" and size is not None:
        prefix = f"{response_id}\n".encode()[:size]
        return prefix + b"x" * (size - len(prefix))
    document = echo_document(request, response_id, rule if matched else None)
    body = json.dumps(document).encode() + b"\n"
    return body + b" " * max(0, (size or 0) - len(body))


def cache_headers(rule: Rule, now: float, surrogate_key_header: str) -> list[tuple[str, str]]:
    """Cache-Control, Expires, Vary, validators and surrogate keys, as the rule asks."""
    expires = rule.expires
    if rule.expires_in is not None:
        expires = email.utils.formatdate(now + rule.expires_in, usegmt=True)
    named = [
        ("Cache-Control", rule.cache_control),
        ("Expires", expires),
        ("Vary", rule.vary),
        ("ETag", rule.etag),
        ("Last-Modified", rule.last_modified),
    ]
    headers = [(name, value) for name, value in named if value is not None]
    if rule.surrogate_keys:
        name = rule.surrogate_key_header or surrogate_key_header
        headers.append((name, " ".join(rule.surrogate_keys)))
    return headers


def _with_extras(headers: list[tuple[str, str]], extras: Headers) -> Headers:
    replaced = {name.lower() for name, _ in extras}
    return tuple(h for h in headers if h[0].lower() not in replaced) + extras


def _entity(rule: Rule, request: Request, ctx: ReplyContext) -> tuple[bytes, list[tuple[str, str]]]:
    if ctx.status == 204:  # RFC 9110 §8.6: no Content-Length (and no content) on a 204
        return b"", []
    body = response_body(rule, request, ctx.response_id, ctx.matched)
    content_type = "application/json" if rule.body == "echo" else "application/octet-stream"
    return body, [("Content-Type", content_type), ("Content-Length", str(len(body)))]


@dataclass(frozen=True)
class ReplyContext:
    """Everything ``render_reply`` needs besides the rule and the request."""

    response_id: str
    outcome: Outcome
    status: int | None
    matched: bool
    surrogate_key_header: str
    now: float


def render_reply(rule: Rule, request: Request, ctx: ReplyContext) -> Reply:
    """Build the response for a decided outcome (at send time, so ``Date`` is accurate)."""
    if ctx.status is None:
        return Reply(None, (), b"", False, ctx.outcome)
    base = [
        ("Date", email.utils.formatdate(ctx.now, usegmt=True)),
        ("Server", SERVER_NAME),
        ("X-Response-Id", ctx.response_id),
    ]
    cache = cache_headers(rule, ctx.now, ctx.surrogate_key_header)
    if ctx.status == 304:
        return Reply(304, _with_extras(base + cache, rule.headers), b"", False, ctx.outcome,
                     rule.interim, rule.connection)
    body, entity = _entity(rule, request, ctx)
    cookies = [("Set-Cookie", cookie) for cookie in rule.set_cookie]
    headers = _with_extras(base + entity + cache + cookies, rule.headers)
    return Reply(ctx.status, headers, body, request.method != "HEAD", ctx.outcome, rule.interim,
                 rule.connection)
