"""An ``Explanation`` as text: the decision first, the engines' internals last.

``-q`` prints the rule, whether it is cached (or why not) and the TTL; the default adds the cache
key, what the origin receives and the Cache-Status; ``-v`` adds each engine's internals (nginx's
dispatch map and location, the VCL's variables and subroutines).
"""

from __future__ import annotations

import textwrap

from .. import ui
from .explain import Explanation, FleetHop, OriginRequest
from .request import Pair

#: the width of the label column of the text output, and of a whole line (values wrap)
LABEL, WIDTH = 14, 100


def render(e: Explanation, level: int = ui.NORMAL) -> str:
    """The explanation as text: the decision (``-q``: rule, cached or why not, TTL), the key and
    what the origin receives (default), each engine's internals (``-v``)."""
    lines = [e.request, *_warnings(e), *_decision(e)]
    if level >= ui.NORMAL:
        lines += [*_key_lines(e), *_origin_lines(e.origin), *_cache_status(e), *_fleet_lines(e)]
    if level >= ui.VERBOSE:
        for view in e.engines:
            lines += ["", *_section(view.engine, list(view.lines))]
    elif level == ui.NORMAL and e.engines:
        lines += ["", "(add -v for each engine's internals: nginx's map and location, the VCL's "
                      "variables and subroutines)"]
    return "\n".join(lines)


def _line(label: str, value: str, indent: int = 0) -> str:
    """``label`` in the label column (indented by ``indent``), ``value`` wrapped beside it."""
    wrapped = textwrap.wrap(value, WIDTH - LABEL, break_long_words=False,
                            break_on_hyphens=False) or [""]
    head = " " * indent + label.ljust(LABEL - indent - 2) + "  "
    return "\n".join([head + wrapped[0], *(" " * LABEL + rest for rest in wrapped[1:])])


def _lines(label: str, values: tuple[str, ...] | list[str], indent: int = 2) -> list[str]:
    """Several values under one label, each on its own line."""
    return [_line(label if i == 0 else "", v, indent) for i, v in enumerate(values)]


def _warnings(e: Explanation) -> list[str]:
    """An engine's lowering that disagrees with the selection model: shown whatever the level."""
    return [f"warning: {value}" for view in e.engines for what, value in view.lines
            if what == "DISAGREEMENT"]


def _decision(e: Explanation) -> list[str]:
    if e.rule is None:
        lines = [_line("rule", "none: the engines answer before choosing a rule")]
    else:
        lines = [_line("rule", f"{e.rule}  ({e.rule_source})"), *_lines("matched", e.conditions)]
    return [*lines, _line("cached", _verdict(e)), *_lines("because", e.reasons),
            *_lines("ttl", e.ttl), *_lines("stale", e.stale),
            *(_lines("not stored", [e.never_stored]) if e.never_stored else [])]


def _verdict(e: Explanation) -> str:
    return {"cached": "yes: looked up in the cache; a miss is fetched and stored",
            "bypass": "no: not looked up, not stored; every request reaches the origin",
            "purge": "no: a purge request, answered by the purge interface",
            "redirect": f"no: a {e.status} redirect to https://",
            "refused": f"no: refused with {e.status}"}[e.verdict]


def _key_lines(e: Explanation) -> list[str]:
    """The cache key as the URL it is built from, then its extra parts (a cached request only)."""
    if e.verdict != "cached":
        return []
    parts = dict(e.key)
    url = (f"{parts['scheme']}://" if "scheme" in parts else "") + parts.get("host", "") + \
        parts.get("path", "") + (f"?{parts['query']}" if parts.get("query") else "")
    shown = [p for p in ("scheme", "host", "path", "query") if p in parts]
    extras = [(name.partition(" "), value) for name, value in e.key if name not in shown]
    return [_line("key", f"{url}  ({' + '.join(shown)})"),
            *(_line(f"+ {kind}", f"{name}{'=' if kind == 'cookie' else ': '}{value or '(absent)'}", 2)
              for (kind, _, name), value in extras)]


def _origin_lines(o: OriginRequest | None) -> list[str]:
    if o is None:
        return []
    lines = [_line("origin", f"{o.method} {o.target}  (to {', '.join(o.servers)})"),
             _line("Host", o.host, 2)]
    if o.cookie or o.removed_cookies:
        lines.append(_line("Cookie", _cookie_text(o), 2))
    if o.removed_query:
        lines.append(_line("query", f"without {'&'.join(o.removed_query)} (cache.query.ignore)", 2))
    if o.dropped_headers:
        lines.append(_line("removed", ", ".join(o.dropped_headers), 2))
    by_value: dict[str, list[str]] = {}
    for name, value in o.set_headers:
        by_value.setdefault(value, []).append(name)
    lines.append(_line("set", "; ".join(f"{', '.join(n)}: {v}" for v, n in by_value.items()), 2))
    if o.passed_headers:
        lines.append(_line("unchanged", ", ".join(o.passed_headers), 2))
    return lines


def _cookie_text(o: OriginRequest) -> str:
    """The Cookie header the origin gets and the cookies taken out (by the only two ways a rule
    removes cookies: strip_cookies all, key.cookies all but the keyed ones)."""
    removed = ", ".join(o.removed_cookies)
    if o.cookie is None:
        return f"none: {removed} removed (strip_cookies)"
    return f"{o.cookie} ({removed} removed: only key.cookies are passed on)" if removed else o.cookie


def _cache_status(e: Explanation) -> list[str]:
    statuses = list(dict.fromkeys(e.cache_status))
    if not statuses:
        return []
    return _lines("Cache-Status", [statuses[0], *(f"then {s}" for s in statuses[1:])], 0)


def _fleet_lines(e: Explanation) -> list[str]:
    """A fleet's tiers, front first: who may answer, a shard tier's node for this key, then how
    it was computed (or why not)."""
    return _lines("fleet", [line for hop in e.fleet for line in _hop(hop)], 0) if e.fleet else []


def _hop(hop: FleetHop) -> tuple[str, str]:
    kind = hop.engine if hop.routing == "front" else f"{hop.engine}, {hop.routing}"
    nodes = ", ".join(hop.nodes)
    which = f"stored on {hop.owner}" if hop.owner else \
        f"{'one' if hop.routing == 'shard' else 'any'} of {nodes}"
    return f"{hop.tier} ({kind}): {which}, picked by {hop.reached_by}", f"  {hop.note}"


def _section(title: str, pairs: list[Pair]) -> list[str]:
    if not pairs:
        return []
    width = max(len(k) for k, v in pairs if v) if any(v for _, v in pairs) else 0
    return [f"{title}:"] + [f"  {k:{width}}  {v}".rstrip() if v else f"  - {k}" for k, v in pairs]
