"""``cachewright purge``: send one purge to every cache node at once and report each answer.

The purge interface is the one the generated configurations offer: ``PURGE /path`` (one URL),
``BAN /prefix`` (every URL under a prefix on that host), ``PURGE`` with ``Cache-Tags: T ...``
(every object tagged T) and ``BAN`` with ``Cache-Purge-Scope: all`` (everything). With
``--fleet`` the nodes are a fleet's, read from its policy (``fleet_tiers``), purged tier by tier.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cachewright.generator.errors import UsageError

from ..purging import Node, Outcome, Purge, fleet_tiers, host_header, purge_tiers
from . import HELP

if TYPE_CHECKING:
    from cachewright.generator.model import Policy


DEFAULT_TIMEOUT = 5.0
TAG_HEADER = "Cache-Tags"
SCOPE_HEADER = "Cache-Purge-Scope"








def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "purge", help=HELP["purge"],
        description="Send one purge to every node in parallel and report each node's answer "
                    "(with --fleet: every node of the policy's fleet, the tier nearest the origin "
                    "first). Exit 0 when every node answered 2xx (or nginx's 404: not cached "
                    "there), 1 when any failed, 2 on bad usage.",
        epilog="examples:\n"
               "  cachewright purge https://shop.example.com/products/1 --node http://10.0.0.5 "
               "--node http://10.0.0.6\n"
               "  cachewright purge /products/ --pattern --host shop.example.com --nodes-from "
               "nodes.txt\n"
               "  cachewright purge --tag product-1 --tag product-2 --nodes-from serve.json\n"
               "  cachewright purge --all --node http://127.0.0.1:6081\n"
               "  cachewright purge --fleet fleet.yaml /static/app.css",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="URL_OR_PATH",
                   help="the URL or path to purge (the prefix with --pattern; optional with "
                        "--tag and --all)")
    _add_node_options(p)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--pattern", action="store_true",
                      help="BAN every URL under the path (a literal prefix) on that host")
    kind.add_argument("--tag", action="append", metavar="TAG",
                      help="PURGE every object carrying TAG (repeatable; sent as Cache-Tags)")
    kind.add_argument("--all", action="store_true", help="BAN everything")
    p.set_defaults(run=run)


def _add_node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleet", type=Path, metavar="POLICY",
                   help="purge every node of the policy's fleet: section, the tier nearest the "
                        "origin first (docs/fleets.md); the Host defaults to the policy's first")
    p.add_argument("--map", action="append", default=[], metavar="NODE=ADDR[:PORT]",
                   help="with --fleet: reach NODE at ADDR (and PORT) instead of its address in "
                        "the policy (repeatable)")
    p.add_argument("--node", action="append", default=[], metavar="URL",
                   help="a cache node's base URL, e.g. http://10.0.0.5:6081 (repeatable)")
    p.add_argument("--nodes-from", type=Path, metavar="FILE",
                   help="nodes from the JSON 'cachewright serve --json' prints, or a text file "
                        "of URLs (one a line, # comments)")
    p.add_argument("--host", help="the Host to purge on (default: the URL's host, else each "
                                  "node's own)")
    p.add_argument("--scheme", choices=("http", "https"),
                   help="with --nodes-from JSON: the listener to use (default: the URL's "
                        "scheme, else http where served)")
    p.add_argument("--ca-file", type=Path, metavar="PEM",
                   help="CA certificates to trust for https nodes (default: the system's)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"per-node connect and read timeout (default: {DEFAULT_TIMEOUT:g})")


def run(args: argparse.Namespace) -> int:
    """Purge on every node in parallel; one line per node, then a summary."""
    try:
        purge = build_purge(args)
        purge, tiers = fleet_nodes(args, purge) if args.fleet else (purge, [collect_nodes(args, _scheme(args))])
        if args.timeout <= 0:
            raise UsageError("--timeout must be positive")
    except UsageError as exc:
        print(f"cachewright purge: {exc}", file=sys.stderr)
        return 2
    nodes = [node for tier in tiers for node in tier]
    outcomes = purge_tiers(tiers, purge, args.timeout)
    for outcome in outcomes:
        print(format_outcome(outcome, _width(nodes)))
    print(summary(purge, outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


# --------------------------------------------------------------------------- what to send


def build_purge(args: argparse.Namespace) -> Purge:
    """The request ``args`` ask for (UsageError when the target is missing or malformed)."""
    target, host = _split_target(args.target)
    host = args.host or host
    if args.tag:
        tags = [t for t in args.tag if t.strip()]
        if not tags or any(re.search(r"\s", t) for t in tags):
            raise UsageError("--tag takes one non-empty tag without spaces (repeat it for more)")
        return Purge("PURGE", target or "/", host, {TAG_HEADER: " ".join(tags)})
    if args.all:
        return Purge("BAN", target or "/", host, {SCOPE_HEADER: "all"})
    if target is None:
        raise UsageError("give the URL or path to purge (or --tag / --all)")
    return Purge("BAN" if args.pattern else "PURGE", target, host, {})


def _split_target(raw: str | None) -> tuple[str | None, str | None]:
    """(request target, host) from a URL, or (path, None) from a path."""
    if raw is None:
        return None, None
    if re.match(r"(?i)^https?://", raw):
        parts = urlsplit(raw)
        if not parts.hostname:
            raise UsageError(f"{raw!r}: no host in the URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return target, host_header(parts.hostname)
    if not raw.startswith("/") or re.search(r"[\s\x00-\x1f\x7f]", raw):
        raise UsageError(f"{raw!r}: expected a path starting with '/' or an http(s) URL")
    return raw, None




def _scheme(args: argparse.Namespace) -> str | None:
    if args.scheme:
        return str(args.scheme)
    if args.target and re.match(r"(?i)^https://", args.target):
        return "https"
    return None


# --------------------------------------------------------------------------- where to send it


def fleet_nodes(args: argparse.Namespace, purge: Purge) -> tuple[Purge, list[list[Node]]]:
    """``--fleet``: every node of the policy's fleet, tier by tier (``fleet_tiers``), and the
    purge on the policy's first host unless the URL or ``--host`` names one."""
    from cachewright.generator.load import load

    from ..runtime.prepare import request_host

    if args.node or args.nodes_from:
        raise UsageError("--fleet reads the nodes from the policy: leave out --node and --nodes-from")
    policy = load(args.fleet)
    tiers = fleet_tiers(policy, parse_map(args.map, policy), args.ca_file)
    return replace(purge, host=purge.host or request_host(policy)), tiers


def collect_nodes(args: argparse.Namespace, scheme: str | None) -> list[Node]:
    """Nodes from --node and --nodes-from, in the order given, without duplicates."""
    if args.map:
        raise UsageError("--map applies to --fleet")
    nodes = [_node(url, args.ca_file) for url in args.node]
    if args.nodes_from is not None:
        nodes += read_nodes(args.nodes_from, scheme, args.ca_file)
    unique = list({n.url: n for n in reversed(nodes)}.values())[::-1]
    if not unique:
        raise UsageError("no node to purge: give --node URL or --nodes-from FILE")
    return unique


def read_nodes(path: Path, scheme: str | None = None, ca_file: Path | None = None) -> list[Node]:
    """Nodes from ``cachewright serve --json`` output, or from a text file of URLs."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    data = _json_object(text)
    if data is None:
        return [_node(line, ca_file) for line in _lines(text)]
    return _serve_nodes(path, data, scheme, ca_file)


def _json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object line in ``text`` (serve may print more), or None."""
    import json

    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _lines(text: str) -> list[str]:
    stripped = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in stripped if line]


def _serve_nodes(path: Path, data: dict[str, Any], scheme: str | None,
                 ca_file: Path | None) -> list[Node]:
    engines = data.get("engines")
    if not isinstance(engines, dict) or not engines:
        raise UsageError(f"{path}: expected 'engines' as 'cachewright serve --json' prints them")
    ca = ca_file or (Path(data["ca_file"]) if isinstance(data.get("ca_file"), str) else None)
    nodes = []
    for name, urls in engines.items():
        url = _pick_url(urls, scheme) if isinstance(urls, dict) else None
        if url is None:
            raise UsageError(f"{path}: engine {name!r} has no {scheme or 'http or https'} URL")
        nodes.append(_named(_node(url, ca), str(name)))
    return nodes


def _pick_url(urls: dict[str, Any], scheme: str | None) -> str | None:
    order = [scheme] if scheme else ["http", "https"]
    return next((str(urls[s]) for s in order if isinstance(urls.get(s), str)), None)


def _named(node: Node, name: str) -> Node:
    return Node(f"{name} {node.url}", node.url, node.ca_file)


def _node(raw: str, ca_file: Path | None) -> Node:
    url = raw if "://" in raw else f"http://{raw}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise UsageError(f"node {raw!r}: expected http[s]://HOST[:PORT]")
    base = f"{parts.scheme}://{parts.netloc}"
    return Node(base, base, ca_file)


# --------------------------------------------------------------------------- a fleet's nodes
#
# Every node of every tier may hold an object (replicas hold everything; a shard tier's owner
# changes while a node is down, so its fallback may hold the key too), so every node is purged.
# The tiers go one after another, the tier nearest the origin first, the nodes of a tier in
# parallel: a front node purged before the tier behind it could fetch the old object again from
# that tier before it is purged there. A node is reached at its address in the policy, on its
# tier's port (the front tier: the policy's listener, HTTPS where plain HTTP only redirects);
# ``--map NODE=ADDR[:PORT]`` puts a node elsewhere (a test fleet on loopback addresses, a node
# behind a NAT).


def parse_map(items: list[str], policy: Policy) -> dict[str, str]:
    """``--map NODE=ADDR[:PORT]`` values by node name (UsageError for an unknown node)."""
    assert policy.fleet is not None
    names = {n.name for t in policy.fleet.tiers for n in t.nodes}
    out = {}
    for item in items:
        name, sep, where = item.partition("=")
        if not sep or not where:
            raise UsageError(f"--map {item!r}: expected NODE=ADDRESS[:PORT], e.g. edge-1=127.0.0.2:8080")
        if name not in names:
            raise UsageError(f"--map {item!r}: no node {name!r} in the fleet (its nodes: "
                             f"{', '.join(sorted(names))})")
        out[name] = where
    return out








# --------------------------------------------------------------------------- sending














# --------------------------------------------------------------------------- reporting


def _width(nodes: list[Node]) -> int:
    return max(len(n.name) for n in nodes)


def format_outcome(outcome: Outcome, width: int) -> str:
    """``OK   NODE  200 Purged  3 ms`` or ``FAIL NODE  error: ...  5000 ms``."""
    mark = "OK  " if outcome.ok else "FAIL"
    status = str(outcome.status) if outcome.status is not None else "---"
    return (f"{mark} {outcome.node.name:<{width}}  {status}  {outcome.detail or '-'}  "
            f"{outcome.elapsed * 1000:.0f} ms")


def summary(purge: Purge, outcomes: list[Outcome]) -> str:
    """One line: what was sent and how many nodes took it; the failed ones named."""
    failed = [o.node.name for o in outcomes if not o.ok]
    done = f"{purge.describe()}: {len(outcomes) - len(failed)} of {len(outcomes)} nodes purged"
    return done + (f"; failed: {', '.join(failed)}" if failed else "")
