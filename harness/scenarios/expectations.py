"""Judging one exchange against its step's expectations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from ..client import SAMPLE_IDENTITY, Identity, Response
from .model import TOKEN, Exchange, Expect, HeaderExpectations


def check_expectations(exchange: Exchange, earlier: Mapping[str, Exchange], token: str,
                       identity: Identity = SAMPLE_IDENTITY) -> list[str]:
    """Every expectation of ``exchange``'s step the exchange does not meet, each phrased to follow
    the word "expected" (``cache hit, got miss (...)``); empty when all are met. ``identity``
    tells responses apart for ``same_response_as`` and ``different_response_from``."""
    expect = exchange.step.expect
    response = exchange.response
    problems = [_status(expect, response), _cache(expect, response), _rule(expect, response),
                *_origin(expect, exchange, token), *_identity(expect, response, earlier, identity),
                *_headers(expect.headers, response, token), *_received(exchange, token)]
    return [problem for problem in problems if problem is not None]


def _status(expect: Expect, response: Response) -> str | None:
    if not expect.status or response.status in expect.status:
        return None
    return f"status {_either(str(s) for s in expect.status)}, got {response.status}"


def _cache(expect: Expect, response: Response) -> str | None:
    outcome = response.cache.outcome
    if not expect.cache or outcome in expect.cache:
        return None
    return f"cache {_either(expect.cache)}, got {outcome} (Cache-Status: {response.header('Cache-Status')})"


def _rule(expect: Expect, response: Response) -> str | None:
    if expect.rule is None or response.cache.detail == expect.rule:
        return None
    return (f"rule {expect.rule}, got {response.cache.detail or 'none'} "
            f"(Cache-Status: {response.header('Cache-Status')})")


def _origin(expect: Expect, exchange: Exchange, token: str) -> Iterator[str]:
    request = exchange.step.request
    path = request.origin_path.replace(TOKEN, token) if request else "/"
    if expect.origin_delta is not None and exchange.delta(path) != expect.origin_delta:
        yield (f"the origin to receive {_requests(expect.origin_delta)} for {path}, "
               f"got {exchange.delta(path)}")
    total = exchange.delta(None)
    if expect.origin_total_delta is not None and total != expect.origin_total_delta:
        yield f"the origin to receive {_requests(expect.origin_total_delta)} in all, got {total}"


def _identity(expect: Expect, response: Response, earlier: Mapping[str, Exchange],
              identity: Identity) -> Iterator[str]:
    mine = identity.of(response)
    if expect.same_response_as is not None:
        theirs = earlier[expect.same_response_as].response
        if mine is None or mine != identity.of(theirs):
            yield (f"the same response as '{expect.same_response_as}' "
                   f"({identity.describe(theirs)}), got {identity.describe(response)}")
    if expect.different_response_from is not None:
        theirs = earlier[expect.different_response_from].response
        if mine is None or mine == identity.of(theirs):
            yield (f"a different response from '{expect.different_response_from}' "
                   f"({identity.describe(theirs)}), got {identity.describe(response)}")


class _Headers(Protocol):
    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        ...


def _headers(expect: HeaderExpectations, response: _Headers, token: str,
             where: str = "header") -> Iterator[str]:
    for name in expect.present:
        if response.header(name) is None:
            yield f"{where} {name} to be present, it is absent"
    for name in expect.absent:
        if response.header(name) is not None:
            yield f"{where} {name} to be absent, got {name}: {response.header(name)}"
    for name, value in expect.equal:
        wanted = value.replace(TOKEN, token)
        if response.header(name) != wanted:
            yield f"{where} {name}: {wanted}, got {_shown(name, response)}"
    for name, texts in expect.contains:
        for wanted in (text.replace(TOKEN, token) for text in texts):
            if wanted not in (response.header(name) or ""):
                yield f"{where} {name} to contain {wanted!r}, got {_shown(name, response)}"


def _shown(name: str, response: _Headers) -> str:
    value = response.header(name)
    return "no such header" if value is None else f"{name}: {value}"


def _received(exchange: Exchange, token: str) -> Iterator[str]:
    """What the origin received for the step, against ``origin_received``."""
    wanted = exchange.step.expect.origin_received
    if wanted is None:
        return
    request = exchange.step.request
    path = request.origin_path.replace(TOKEN, token) if request else "/"
    seen = exchange.received
    if seen is None:
        yield f"the origin to receive a request for {path}, it received none"
        return
    yield from _headers(wanted.headers, seen, token, "the origin to receive header")
    cookies = _cookies(seen.header_values("cookie"))
    shown = "; ".join(f"{k}={v}" for k, v in cookies.items()) or "none"
    for name in wanted.cookies.present:
        if name not in cookies:
            yield f"the origin to receive cookie {name}, it received cookies: {shown}"
    for name in wanted.cookies.absent:
        if name in cookies:
            yield f"the origin not to receive cookie {name}, it received cookies: {shown}"
    for name, value in wanted.cookies.equal:
        if cookies.get(name) != value.replace(TOKEN, token):
            yield (f"the origin to receive cookie {name}={value.replace(TOKEN, token)}, it "
                   f"received cookies: {shown}")


def _cookies(lines: Sequence[str]) -> dict[str, str]:
    """The cookies of Cookie header lines, by name (the first of a repeated name)."""
    out: dict[str, str] = {}
    for line in lines:
        for pair in line.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name not in out:
                out[name] = value
    return out


def _either(values: Iterable[str]) -> str:
    return " or ".join(values)


def _requests(count: int) -> str:
    return f"{count} request" + ("" if count == 1 else "s")
