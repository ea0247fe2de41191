"""A fleet's part of ``cachewright explain``: per tier, front first, which nodes may answer the
request and, for a ``shard`` tier, the node that stores its key, computed as the engine in front
of that tier computes it (``nginx_hash`` for ``hash $cw_hash consistent``, ``varnish_shard`` for
``directors.shard()`` by=HASH) from the front node's own compiled configuration. Every node is
assumed healthy: a failed (nginx) or sick (Varnish) owner's keys go to the next node on the ring.
"""

from __future__ import annotations

import itertools
import re

from cachewright.generator import lower_nginx, lower_varnish
from cachewright.generator.fleet import node_policies
from cachewright.generator.model import Policy, Rule, Tier
from cachewright.generator.pipeline import Options

from ..selection.explain import FleetHop, split_query
from ..selection.request import Request, engine_host
from . import nginx_explain, nginx_hash, varnish_explain, varnish_shard

HEALTHY = "every node assumed healthy; a down one's keys move to the next node on the ring"


class NotComputed(Exception):
    """The owner cannot be computed exactly for this request (the message says why)."""


def routes(policy: Policy, rule: Rule, request: Request, scheme: str,
           verdict: str) -> tuple[FleetHop, ...]:
    """Each tier of ``policy``'s fleet as ``request`` (which selects ``rule``) meets it."""
    assert policy.fleet is not None
    tiers = policy.fleet.tiers
    derived = node_policies(policy)
    hops = [FleetHop(tiers[0].name, tiers[0].engine, "front", "an outside balancer",
                     _names(tiers[0]), None, "any front node may answer")]
    for front, tier in itertools.pairwise(tiers):
        node = derived[front.nodes[0].name].policy
        if tier.routing == "replicas":
            hops.append(FleetHop(tier.name, tier.engine, "replicas",
                                 f"the {front.name} tier's {front.engine}, round robin",
                                 _names(tier), None, "any node may answer (each holds everything)"))
        else:
            hops.append(_shard(front, tier, node, rule, request, scheme, verdict))
    return tuple(hops)


def _names(tier: Tier) -> tuple[str, ...]:
    return tuple(n.name for n in tier.nodes)


def _shard(front: Tier, tier: Tier, node: Policy, rule: Rule, request: Request, scheme: str,
           verdict: str) -> FleetHop:
    """A shard tier: the owner as the front tier's engine hashes the request (none when the
    request is not cached: it is stored nowhere)."""
    how = ("hash $cw_hash consistent" if front.engine == "nginx"
           else "directors.shard(), backend(by=HASH)")
    by = f"the {front.name} tier's {front.engine}: {how}"
    if verdict not in ("cached", "purge"):
        return FleetHop(tier.name, tier.engine, "shard", by, _names(tier), None,
                        f"not stored on any node ({verdict}): owner not computed")
    try:
        owner, note = (_nginx_owner if front.engine == "nginx" else _varnish_owner)(
            tier, node, rule, request, scheme)
    except NotComputed as exc:
        return FleetHop(tier.name, tier.engine, "shard", by, _names(tier), None,
                        f"owner not computed for {front.engine}: {exc}")
    return FleetHop(tier.name, tier.engine, "shard", by, (owner,), owner, f"{note}; {HEALTHY}")


def _node_at(tier: Tier, host: str, port: int) -> str:
    """The node of ``tier`` the front node's configuration reaches at ``host:port``."""
    return next(n.name for n in tier.nodes if n.address == host and tier.inner_port == port)


def _nginx_owner(tier: Tier, node: Policy, rule: Rule, request: Request,
                 scheme: str) -> tuple[str, str]:
    """The server ``hash $cw_hash consistent`` picks: $cw_hash is the location's cache key."""
    options = Options()
    model = lower_nginx.lower(node, options.nginx_version, options.nginx_modules_dir)
    location = next(loc for loc in model.locations if loc.ident == rule.ident)
    query, dropped = split_query(node, request.query)
    key = location.key if dropped else location.plain_key
    values = nginx_explain.variables(model, request, scheme, query)
    # an inner node's scheme: the trusted tier in front's X-Forwarded-Proto, the client's scheme
    values.setdefault("$cw_scheme", scheme)
    unknown = [v for v in re.findall(r"\$\{?([a-z0-9_]+)", key)
               if f"${v}" not in values and not v.startswith("http_")]
    if unknown:
        raise NotComputed(f"the key's ${unknown[0]} is not evaluated by explain")
    value = nginx_explain.key_value(values, _unquoted(key), request)
    server = nginx_hash.owner(nginx_hash.ring(model.origin.servers), value)
    host, _, port = server.rpartition(":")
    return _node_at(tier, host, int(port)), f'$cw_hash = "{value}" -> server {server}'


def _unquoted(text: str) -> str:
    """A quoted nginx string as nginx's configuration parser reads it (``ngx_conf_read_token``):
    backslash-t, -r, -n become tab, CR, LF; a backslash before a quote or a backslash keeps that
    character; any other backslash stays. (The key's parts are joined with backslash-n.)"""
    plain = {"t": "\t", "r": "\r", "n": "\n", '"': '"', "'": "'", "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: plain.get(m[1], m[0]), text)


def _varnish_owner(tier: Tier, node: Policy, rule: Rule, request: Request,
                   scheme: str) -> tuple[str, str]:
    """The backend the shard director picks for the object's digest (``vcl_hash``'s inputs)."""
    options = Options()
    model = lower_varnish.lower(node, options.varnish_proxy_listen, options.hitch_user)
    vcl_rule = next((r for chunk in model.chunks for r in chunk if r.name == rule.name),
                    model.default)
    profile = next(p for p in model.profiles if p.ident == vcl_rule.profile)
    parts = varnish_explain.hash_parts(model, profile.behaviour)
    calls = [_strands(part, model, request, scheme) for part in parts]
    backend = varnish_shard.owner(varnish_shard.ring([b.ident for b in model.origin.director], model.origin.replicas),
                                  calls)
    chosen = next(b for b in model.origin.director if b.ident == backend)
    shown = ", ".join(" + ".join(repr(s) for s in call) for call in calls)
    return _node_at(tier, chosen.host, chosen.port), f"hash_data({shown}) -> backend {backend}"


def _strands(part: str, model: lower_varnish.VarnishModel, request: Request,
             scheme: str) -> tuple[str | None, ...]:
    """One ``hash_data`` argument's strands for this request (None: an unset header, a cookie
    ``cookie.get`` returns NULL for)."""
    if part.startswith('"h:'):
        label, _, header = part.partition(" + req.http.")
        sent = any(n.lower() == header.lower() for n, _ in request.headers)
        return (label.strip('"'), request.header(header) if sent else None)
    if part.startswith('"c:'):
        label, _, call = part.partition(" + cookie.get(")
        name = call.rstrip(")").strip('"')
        return (label.strip('"'), cookie_get(request.cookie_header, name))
    return (_value(part, model, request, scheme),)


def cookie_get(header: str, name: str) -> str | None:
    """vmod_cookie's ``parse`` then ``get``: pieces split at ``;``, leading white space skipped,
    the name up to the first ``=``; an empty name or value is ignored, a repeated name takes the
    later value; a cookie not parsed is NULL (None)."""
    jar: dict[str, str] = {}
    at = 0
    while at < len(header):
        while at < len(header) and header[at] in " \t\n\v\f\r":
            at += 1
        equals = header.find("=", at)
        if equals < 0:
            break
        end = header.find(";", equals + 1)
        end = len(header) if end < 0 else end
        key, value = header[at:equals], header[equals + 1:end]
        if key and value:
            jar[key] = value
        at = end + 1
    return jar.get(name)


def _value(part: str, model: lower_varnish.VarnishModel, request: Request, scheme: str) -> str:
    """``"http"``, the scheme, the Host, the URL or the path, as ``vcl_recv`` leaves them."""
    if part == '"http"' or part == 'var.get("scheme")':
        return "http" if part == '"http"' else scheme
    if part == "req.http.host":
        return engine_host(request.host)
    if part == 'var.get("path")':
        return request.raw_path
    if part != "req.url":
        raise NotComputed(f"hash_data({part}) is not evaluated by explain")
    return _url(model.recv, request)


def _url(recv: lower_varnish.Recv, request: Request) -> str:
    """``req.url`` at ``vcl_hash``: ``vcl_recv`` takes the ignored parameters out of the query
    with its regex (``regsuball``, then trailing ``&`` removed; an empty query goes with its
    ``?``); ``std.querysort`` of several parameters is not computed (its order between a
    parameter and one it prefixes is qsort's, unspecified)."""
    if not request.query:
        return request.raw_path
    query = request.query
    if recv.query_ignore:
        query = re.sub(r"&+$", "", re.sub(recv.query_ignore, "", query))
    if recv.query_sort and "&" in query:
        raise NotComputed("vcl_recv sorts the query's parameters (std.querysort) before hashing")
    return request.raw_path + (f"?{query}" if query else "")
