"""The requests ``diff`` compares, one function per source, merged by ``request_set``.

``derived`` builds, for every rule of a policy (the implicit default rule too), the requests the
checks build for it: a request it selects (``probe_for``), the same with its key cookies, key
headers and ``vary`` headers set, a request just outside it (``other_probe``), and one per later
rule that overlaps it (``overlap_probe``). ``from_entries`` turns traffic (a requests file; an
access log) into the same records. Adding a source is one more function returning ``Sourced``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from cachewright.generator.errors import UsageError
from cachewright.generator.model import Policy, Rule

from ..runtime.prepare import request_host
from ..selection import Request, distinct_values, other_probe, overlap_probe, probe_for
from ..traffic.entry import Entry, Malformed


@dataclass(frozen=True)
class Sourced:
    """One request and where it comes from (``rule 'static' (old): matches``, ``reqs.txt:4``)."""

    request: Request
    source: str


@dataclass(frozen=True)
class Probe:
    """A request of the set, with every source that produced it (first seen first)."""

    request: Request
    sources: tuple[str, ...]


def request_set(*sources: Iterable[Sourced]) -> tuple[Probe, ...]:
    """Every distinct request of ``sources``, in first-seen order."""
    seen: dict[Request, list[str]] = {}
    for source in sources:
        for item in source:
            names = seen.setdefault(item.request, [])
            if item.source not in names:
                names.append(item.source)
    return tuple(Probe(r, tuple(s)) for r, s in seen.items())


def derived(policy: Policy, side: str) -> Iterator[Sourced]:
    """Each rule's matching and boundary requests in ``policy`` (``side``: old or new)."""
    host = request_host(policy)
    for rule in (*policy.rules, policy.default_rule):
        tag = _tag(rule)
        label = f"rule '{rule.name}' ({side})"
        match = probe_for(policy, rule, tag=tag, host=host)
        if match is not None:
            yield Sourced(match, f"{label}: matches")
            keyed = _keyed(rule, match)
            if keyed is not None:
                yield Sourced(keyed, f"{label}: matches, with its key and vary values")
        outside = other_probe(policy, rule, tag=tag, host=host)
        if outside is not None:
            yield Sourced(outside, f"{label}: just outside it")
        for later in policy.rules[rule.index + 1:]:
            both = overlap_probe(policy, rule, later, tag=tag, host=host)
            if both is not None:
                yield Sourced(both, f"{label}: also matches '{later.name}'")


def _tag(rule: Rule) -> str:
    """A path marker per rule name: stable across runs and policy versions, so a rule's
    requests in OLD and NEW are the same requests when its conditions are."""
    return "cwd" + hashlib.blake2s(rule.name.encode(), digest_size=3).hexdigest()


def _keyed(rule: Rule, request: Request) -> Request | None:
    """``request`` with the rule's key cookies, key headers and vary headers given values its
    conditions accept, and one more cookie (None: the rule keys on nothing extra)."""
    headers = [*rule.key.headers, *(h for h in rule.vary if h not in rule.key.headers)]
    if not headers and not rule.key.cookies:
        return None
    sent = dict(request.headers)
    for name in headers:
        sent[name] = _value(rule, name, cookie=False)
    cookies = dict(request.cookies)
    for name in rule.key.cookies:
        cookies[name] = _value(rule, name, cookie=True)
    cookies.setdefault("cw_other", "1")
    return replace(request, headers=tuple(sent.items()), cookies=tuple(cookies.items()))


def _value(rule: Rule, name: str, *, cookie: bool) -> str:
    tests = rule.match.cookies if cookie else rule.match.headers
    regexes = [c.regex or "." for c in tests
               if (c.name == name if cookie else c.name.lower() == name.lower())]
    values = distinct_values(regexes, cookie=cookie, count=1)
    return values[0] if values else "cw-a"


def from_entries(entries: Iterable[Entry], policy: Policy, name: str) -> Iterator[Sourced]:
    """Requests read from traffic (``name``: the file), on the policy's host when they name none."""
    host = request_host(policy)
    for entry in entries:
        yield Sourced(entry.request(host), f"{name}:{entry.line}")


@dataclass
class LogRead:
    """What reading an access log for ``diff`` passed over: malformed lines (the first few line
    numbers kept) and, past the cap, distinct requests not compared."""

    malformed: int = 0
    first_malformed: list[int] = field(default_factory=list)
    beyond_cap: int = 0


def from_log(path: Path, policies: tuple[Policy, Policy], cap: int, read: LogRead) -> Iterator[Sourced]:
    """The distinct requests of an access log (any format ``replay`` reads), each named by the
    line it first appears on, at most ``cap`` of them; counts what it passes over in ``read``.
    A request keeps only the headers either policy reads (a logged User-Agent that no rule
    looks at makes no request of its own). Streams: memory holds the distinct requests."""
    from ..traffic.logs import read as read_log
    from ..traffic.predict import watched_headers

    host, seen = request_host(policies[1]), set[Request]()
    watched = watched_headers(policies[0]) | watched_headers(policies[1])
    try:
        for item in read_log(path):
            if isinstance(item, Malformed):
                read.malformed += 1
                if len(read.first_malformed) < 5:
                    read.first_malformed.append(item.line)
                continue
            kept = tuple(h for h in item.headers if h[0].lower() in watched)
            request = replace(item, headers=kept).request(host)
            if request in seen:
                continue
            if len(seen) >= cap:
                read.beyond_cap += 1
                continue
            seen.add(request)
            yield Sourced(request, f"{path}:{item.line}")
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"--access-log {path}: cannot read it ({exc})") from None


def read_requests(path: Path) -> list[Entry]:
    """A requests file (``harness/traffic/requests_file.py``: one ``METHOD URL [Name: value]...``
    per line); a line that cannot be read is a usage error naming it: the file is written by
    hand, and a request it meant to check must not be passed over."""
    from ..traffic.requests_file import read_requests as read

    entries = []
    try:
        for item in read(path):
            if isinstance(item, Malformed):
                raise UsageError(f"{path}:{item.line}: {item.reason}")
            entries.append(item)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--requests {path}: cannot read it ({exc})") from None
    return entries
