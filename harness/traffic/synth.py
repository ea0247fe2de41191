"""Realistic access logs for a policy, for tests and benchmarks: ``zipf_log`` writes nginx
``combined`` (or ``varnishncsa``) lines whose URLs select the policy's rules (found by
``selection.probes``), requested with a Zipf popularity (a few URLs take most of the traffic, as
on real sites), arriving as a Poisson process over a time span long enough for TTLs to expire
inside the log. The same arguments (the seed included) give the same bytes.

A rule needs a request a log line can carry (a method, a target, a host): rules that only a
cookie or a header selects get no lines of their own.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import IO

from cachewright.generator.model import Policy, Rule

from ..runtime.prepare import request_host
from ..selection.probes import probe_for, tag_forms
from ..selection.request import Request, select_rule
from .entry import Entry

TAG = "cwlogtag"
START = 1796083200.0  # 2026-12-01T00:00:00Z: a fixed clock, for the same bytes on every run
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
          "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
          "curl/8.5.0")
CHUNK = 8192


@dataclass(frozen=True)
class Url:
    """One URL of the mix: how a log line names it, and the rule it selects."""

    method: str
    host: str
    target: str
    rule: str
    status: int


def zipf_log(policy: Policy, lines: int, seed: int, out: IO[str], *, urls: int = 2000,
             span: float = 6 * 3600.0, exponent: float = 1.0, format: str = "combined") -> None:
    """Write ``lines`` log lines to ``out``: ``urls`` distinct URLs over the policy's rules with
    Zipf weights (``exponent``), Poisson arrivals over ``span`` seconds from ``START``."""
    rng = random.Random(seed)
    mix = url_mix(policy, urls, rng)
    weights = list(accumulate(1.0 / (rank ** exponent) for rank in range(1, len(mix) + 1)))
    stamp = Stamps()
    host = request_host(policy)
    now = START
    rate = lines / span
    for done in range(0, lines, CHUNK):
        picks = rng.choices(mix, cum_weights=weights, k=min(CHUNK, lines - done))
        block = []
        for url in picks:
            now += rng.expovariate(rate)
            status = 304 if url.status == 200 and rng.random() < 0.05 else url.status
            block.append(line(url, stamp(now), status, rng, format, host))
        out.write("".join(block))


def line(url: Url, when: str, status: int, rng: random.Random, format: str, default_host: str) -> str:
    """One log line for ``url``."""
    absolute = format == "varnishncsa" or url.host != default_host
    target = f"http://{url.host}{url.target}" if absolute else url.target
    size = "-" if status == 304 else str(rng.randrange(200, 90000))
    client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    referer = "-" if rng.random() < 0.3 else f"https://{default_host}/"
    agent = AGENTS[rng.randrange(len(AGENTS))]
    return (f'{client} - - [{when}] "{url.method} {target} HTTP/1.1" {status} {size} '
            f'"{referer}" "{agent}"\n')


class Stamps:
    """``01/Dec/2026:00:00:07 +0000`` for a time (formatted once per second)."""

    def __init__(self) -> None:
        self.last = (-1, "")

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self.last[0]:
            self.last = (second, time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second)))
        return self.last[1]


def url_mix(policy: Policy, count: int, rng: random.Random) -> list[Url]:
    """``count`` URLs spread over the rules a log line can select, shuffled (their order is
    their popularity rank)."""
    per_rule = [list(rule_urls(policy, rule, count)) for rule in (*policy.rules, policy.default_rule)]
    per_rule = [urls for urls in per_rule if urls]
    mix = [urls[i] for i in range(count) for urls in per_rule if i < len(urls)][:count]
    rng.shuffle(mix)
    return mix


def rule_urls(policy: Policy, rule: Rule, count: int) -> Iterator[Url]:
    """Up to ``count`` distinct URLs that select ``rule`` (none when its probe needs a header or
    cookie a log line cannot carry)."""
    host = request_host(policy)
    probe = probe_for(policy, rule, tag=TAG, host=host)
    if probe is None or probe.cookies or probe.headers:
        return
    seen = set()
    for n in range(count * 2):
        request = variant(probe, n)
        if request.target in seen or not selects(policy, rule, request):
            continue
        seen.add(request.target)
        status = 404 if n % 37 == 36 else 200
        yield Url(request.method, request.host, request.target, rule.name, status)
        if len(seen) == count:
            return


def variant(probe: Request, n: int) -> Request:
    """The probe with its tag spelled for URL ``n`` (the same length and characters)."""
    raw, hexed, digits = tag_forms(TAG)
    target = probe.target
    for form, spelled in ((hexed, f"{n:012x}"), (digits, f"{n:015d}"), (raw, f"cw{n:06d}")):
        if form in target:
            return _with_target(probe, target.replace(form, spelled))
    sep = "&" if "?" in target else "?"
    return _with_target(probe, f"{target}{sep}id={n}")


def _with_target(probe: Request, target: str) -> Request:
    path, _, query = target.partition("?")
    return Request(probe.method, path, probe.host, query, probe.headers, probe.cookies)


def selects(policy: Policy, rule: Rule, request: Request) -> bool:
    """Whether the log line for ``request`` (as the readers give it back) selects ``rule``."""
    entry = Entry(0, request.method, request.target, request.host, request.headers)
    return select_rule(policy, entry.request(request_host(policy))) == rule and bool(
        re.fullmatch(r"[!-~]+", request.target))

