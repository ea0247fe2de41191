"""What the compiled configurations do with one request, as comparable fields, per engine.

``outcomes`` runs ``explain`` (the compiler's own lowering, with each engine's view) and keeps
what a request's behaviour is made of: the rule (by name: a moved rule that still answers a
request is no change for it), cached or not, TTL, stale windows, what is never stored, the
cache key, what the origin receives, the Cache-Status, and purge reach. Purge reach is per
engine (a purge kind the engine lacks does not reach the entry there), and so is a
disagreement of nginx's dispatch map with the selection model.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachewright.generator.capabilities import FEATURES
from cachewright.generator.errors import CachewrightError
from cachewright.generator.model import Policy, Rule
from cachewright.generator.targets import ENGINES

from ..engines.explain import VIEWS
from ..selection import Request, select_rule
from ..selection.explain import EngineView, Explanation, OriginRequest, explain, serves

UNSUPPORTED = "cannot run"

#: a field's name and its value, as lines (most fields have one)
Field = tuple[str, tuple[str, ...]]
#: fields only a forwarded request has: compared when both sides forward it (else "origin
#: request" alone says that one side does not)
FORWARDED = ("origin cookie", "origin headers", "origin servers")


@dataclass(frozen=True)
class Outcome:
    """One engine's handling of one request over one scheme; ``fields`` in display order."""

    engine: str
    fields: tuple[Field, ...]
    #: the full explanation the fields came from (None: the policy does not serve the scheme)
    explanation: Explanation | None

    def get(self, name: str) -> str:
        """Field ``name``'s value as one line (empty when the outcome has no such field)."""
        return "; ".join(dict(self.fields).get(name, ()))


def outcomes(policy: Policy, request: Request, scheme: str) -> tuple[Outcome, ...]:
    """Each engine's outcome for ``request`` arriving over ``scheme``."""
    if not serves(policy, scheme):
        none = (("verdict", (f"not served (the policy has no {scheme} listener)",)),)
        return tuple(Outcome(e, none, None) for e in ENGINES)
    found = explain(policy, request, scheme, _views)
    shared = _shared(found)
    rule = select_rule(policy, request) if found.rule is not None else None
    return tuple(Outcome(e, _cannot(found, e) or (*shared, *_engine_fields(policy, rule, found, e)),
                         found) for e in ENGINES)


def _views(policy: Policy, rule: Rule, request: Request, scheme: str,
           reasons: tuple[str, ...]) -> tuple[EngineView, ...]:
    """Each engine's view; an engine the policy does not compile for says why instead."""
    out = []
    for engine, view in zip(ENGINES, VIEWS, strict=True):
        try:
            out.append(view(policy, rule, request, scheme, reasons))
        except CachewrightError as exc:
            out.append(EngineView(engine, ((UNSUPPORTED, str(exc)),)))
    return tuple(out)


def _cannot(e: Explanation, engine: str) -> tuple[Field, ...]:
    """The one field of an engine the policy does not compile for (empty: it does)."""
    view = next((v for v in e.engines if v.engine == engine), None)
    lines = [value for what, value in (view.lines if view else ()) if what == UNSUPPORTED]
    return (("engine", (f"cannot run this policy: {lines[0]}",)),) if lines else ()


def _shared(e: Explanation) -> tuple[Field, ...]:
    """The fields both engines share, from the engine-neutral model."""
    verdict = e.verdict if e.status is None else f"{e.verdict} ({e.status})"
    out: list[Field] = [("rule", (e.rule or "(none: answered before any rule)",)),
                        ("verdict", (verdict,)), ("ttl", e.ttl), ("stale", e.stale),
                        ("never stored", (e.never_stored,) if e.never_stored else ()),
                        ("key", tuple(f"{part}={value}" for part, value in e.key)),
                        ("cache status", e.cache_status)]
    return (*out, *_origin(e.origin))


def _origin(o: OriginRequest | None) -> tuple[Field, ...]:
    """What the origin receives (nothing for a request it never sees)."""
    if o is None:
        return (("origin request", ("(none: not forwarded)",)),)
    return (("origin request", (f"{o.method} {o.target} (Host {o.host})",)),
            ("origin cookie", (o.cookie or "(none)",)),
            ("origin headers", (f"passed: {', '.join(o.passed_headers) or '(none)'}",
                                f"dropped: {', '.join(o.dropped_headers) or '(none)'}")),
            ("origin servers", o.servers))


def _engine_fields(policy: Policy, rule: Rule | None, e: Explanation, engine: str) -> tuple[Field, ...]:
    """What is this engine's own: purge reach, and a disagreement of its rule selection."""
    out: list[Field] = []
    if e.verdict == "cached" and rule is not None:
        out.append(("purge reach", (purge_reach(policy, rule, engine),)))
    view = next((v for v in e.engines if v.engine == engine), None)
    odd = [value for what, value in (view.lines if view else ()) if what == "DISAGREEMENT"]
    if odd:
        out.append(("engine disagrees", (odd[0],)))
    return tuple(out)


def purge_reach(policy: Policy, rule: Rule, engine: str) -> str:
    """How a stored response of ``rule`` can be purged on ``engine``, and from where."""
    if policy.purge is None:
        return "off (no purge section)"
    kinds = [k for k in policy.purge.kinds
             if FEATURES[f"purge.{k}"].on(engine, policy).level != "unsupported"
             and (k != "tag" or rule.tags_from_header)]
    shown = [f"tag ({rule.tags_from_header})" if k == "tag" else k for k in kinds]
    soft = " (soft)" if policy.purge.soft else ""
    return (f"{', '.join(shown) or 'none'}{soft} from {', '.join(policy.purge.allow) or 'nowhere'}")
