"""A fleet comparison (``FleetReport``) as terminal text: what each topology sent to the origin
per 10,000 requests of the mix, and its hit ratio against the ideal for that topology."""

from __future__ import annotations

from cachewright.generator import __version__

from .fleetrecords import PER, FleetReport, TopologyResult

HEADER = ("topology", "nodes", "requests", "errors", f"origin req/{PER:,}", "ideal",
          f"origin KiB/{PER:,}", "hit ratio", "ideal", "gap")


def fleet_text(report: FleetReport) -> str:
    """The header facts, then one row per topology and what the columns mean."""
    s = report.settings
    facts = [("policy", f"{report.policy_name} ({report.policy_file})"),
             ("mix", f"{s.requests:,} requests, Zipf over {s.keys:,} keys, e.g. {report.path_example}; "
                     f"{s.body_size:,}-byte bodies, at most {s.rate:g}/s, one at a time"),
             ("machine", f"{report.machine.cpus} CPUs, {report.machine.platform}")]
    width = max(len(label) for label, _ in facts)
    head = [f"cachewright compare {__version__}: fleet topologies"]
    head += [f"{label.ljust(width)}  {value}" for label, value in facts]
    rows = [HEADER, *(_row(t) for t in report.topologies)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    notes = ["ideal: caches that never evict nor expire, for the requests sent (round robin over the "
             "front nodes): replicas miss each key once per node that sees it, a shield or shard "
             "tier once for the fleet",
             "hit ratio: the share of requests answered without the origin; gap: ideal minus "
             "measured, in points"]
    lost = [f"{t.name}: {t.errors} of {t.requests} requests failed" for t in report.topologies if t.errors]
    return "\n\n".join(["\n".join(head), "Origin traffic by topology\n" + "-" * 26 + "\n" + "\n".join(table),
                        "\n".join(notes + lost)]) + "\n"


def _row(t: TopologyResult) -> tuple[str, ...]:
    per, ideal_per, body = t.per(t.origin_requests), t.per(t.ideal_origin_requests), t.per(t.origin_bytes)
    gap = (t.ideal_hit_ratio - t.hit_ratio) * 100 if t.hit_ratio is not None and t.ideal_hit_ratio is not None else None
    return (f"{t.name} ({t.shape})", str(t.nodes), f"{t.requests:,}", str(t.errors), _number(per),
            _number(ideal_per), _number(body / 1024 if body is not None else None), _ratio(t.hit_ratio),
            _ratio(t.ideal_hit_ratio), f"{gap:+.1f}" if gap is not None else "-")


def _number(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "-"


def _ratio(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"
