"""``deception``: path tricks never make a personalised page cacheable for anonymous users."""

from __future__ import annotations

import posixpath
import urllib.parse
from dataclasses import dataclass, replace

from cachewright.generator.model import Policy, Rule

from ...runtime.prepare import request_host
from ...selection import Request, probe_for, select_rule
from ..base import CheckSkipped, Ctx
from ..rules import probe
from .shared import expect_not_leaked, secret_for


@dataclass(frozen=True)
class DeceptionPair:
    """A personalised (uncached) rule and a cacheable rule whose shape a trick path borrows."""

    private: Rule
    cacheable: Rule


def deception_pair(policy: Policy) -> DeceptionPair | None:
    """The first uncached GET rule with a path condition, and a later cacheable rule with
    extensions (preferred) or a path prefix. An earlier one is the policy's own order: a trick
    path it takes is the policy's decision, not the engines' (nothing for them to prove)."""
    host = request_host(policy)
    private = next((r for r in policy.rules if not r.cache and (r.match.path_prefix or r.match.path_regex)
                    and not r.match.cookies and not r.match.headers
                    and (p := probe_for(policy, r, tag="cwprobe", host=host)) is not None
                    and p.method == "GET"), None)
    if private is None:
        return None
    shaped = [r for r in (*policy.rules, policy.default_rule)
              if r.cache and (r.match.extensions or r.match.path_prefix) and r.index > private.index]
    shaped.sort(key=lambda r: not r.match.extensions)
    sample = probe_for(policy, private, tag="cwprobe", host=host)
    pair = DeceptionPair(private, shaped[0]) if shaped and sample else None
    return pair if pair and sample and tricks(policy, pair, sample) else None


def tricks(policy: Policy, pair: DeceptionPair, base: Request) -> list[Request]:
    """``base`` (a request of the private rule) moved to each trick path that no rule before
    the private one takes: a path an earlier rule matches is that rule's by the policy's own
    order, whatever the engines do."""
    moved = [replace(base, path=p) for p in trick_paths(pair, base.path)]
    return [r for r in moved if select_rule(policy, r).index >= pair.private.index]


def trick_paths(pair: DeceptionPair, private_path: str) -> list[str]:
    """Paths a normalising origin resolves to ``private_path`` (or treats as it) that a cache
    may take for the cacheable rule's static resources."""
    ext = pair.cacheable.match.extensions[0] if pair.cacheable.match.extensions else "css"
    prefix = pair.cacheable.match.path_prefix or "/static/"
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    base = private_path.rstrip("/")
    return [f"{base}/x.{ext}", f"{base};x.{ext}", f"{base}%2fx.{ext}", f"{base}%3bx.{ext}",
            f"{prefix}..{base}", f"{prefix}..%2f{base.lstrip('/')}", f"{base}/.%2e/",
            f"{prefix}%2e%2e{base}"]


def _resolved(path: str) -> str:
    """The path an origin that decodes and normalises sees (``;`` parameters dropped)."""
    decoded = urllib.parse.unquote(path)
    return posixpath.normpath(decoded.split(";", 1)[0]) or "/"


def check_deception(ctx: Ctx) -> None:
    """Failure mode: ``/account/x.css`` and friends are taken for a static resource and the
    account page they resolve to is stored for everyone. Each trick path is requested with a
    session cookie (the origin answers private, with Set-Cookie), then anonymously."""
    pair = deception_pair(ctx.policy)
    if pair is None:
        raise CheckSkipped("no uncached path rule and cacheable extension/prefix rule to combine")
    base = probe(ctx, pair.private)
    for trick in tricks(ctx.policy, pair, base):
        _expect_trick_safe(ctx, pair, trick, base.path)


def _expect_trick_safe(ctx: Ctx, pair: DeceptionPair, req: Request, private_path: str) -> None:
    secret = secret_for(ctx)
    ctx.program(req.unit, status=200, cache_control="private",
                set_cookie=[f"cw_session={secret}; Path=/"])
    personal = ctx.send(replace(req, cookies=(*req.cookies, ("cw_session", secret))))
    ctx.notes.append(f"{req.unit}: {personal.status} {personal.cache.detail or ''}".strip())
    if personal.status == 400:
        return  # refused by the path guard: safe
    anonymous = ctx.send(req)
    expect_not_leaked(ctx, req.unit, anonymous, secret, f"anonymous {req.unit}")
    resolves_private = select_rule(ctx.policy, replace(req, path=_resolved(req.path))) == pair.private
    detail = personal.cache.detail
    if resolves_private and detail is not None and _resolved(req.path) == _resolved(private_path):
        ctx.expect(detail == pair.private.name, f"{req.path} resolves to {private_path} (rule "
                   f"'{pair.private.name}') but the cache applied rule '{detail}'")

