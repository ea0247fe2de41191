"""Each engine's part of ``cachewright explain -v`` (``nginx_explain``, ``varnish_explain``),
handed to the engine-neutral model in ``harness.selection.explain`` as its ``views``, and a
fleet's routing (``fleet_explain``: which node stores the request) as its ``routes``: selection
knows no engine, the engines know selection's ``EngineView`` and ``FleetHop``.
"""

from __future__ import annotations

from cachewright.generator.model import Policy, Rule

from ..selection import explain as model
from ..selection.explain import EngineView, Explanation
from ..selection.request import Request
from . import fleet_explain, nginx_explain, varnish_explain

#: one view per engine, in the order ``-v`` prints them
VIEWS = (nginx_explain.view, varnish_explain.view)


def views(policy: Policy, rule: Rule, request: Request, scheme: str,
          reasons: tuple[str, ...]) -> tuple[EngineView, ...]:
    """Every engine's internals for ``request`` (which selects ``rule``)."""
    return tuple(view(policy, rule, request, scheme, reasons) for view in VIEWS)


def explain(policy: Policy, request: Request, scheme: str = "http") -> Explanation:
    """What the compiled configurations do with ``request`` arriving over ``scheme``, with each
    engine's internals and, for a fleet, each tier's routing."""
    return model.explain(policy, request, scheme, views, fleet_explain.routes)
