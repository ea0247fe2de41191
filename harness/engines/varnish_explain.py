"""Varnish's part of ``cachewright explain -v``: the VCL condition that selects the request's rule,
the profile and TTL a fetch derives from it, and what ``vcl_recv`` and ``vcl_hash`` do.

Read from the render model the template receives (``lower_varnish.lower``), never from the
rendered VCL.
"""

from __future__ import annotations

from cachewright.generator import lower_varnish
from cachewright.generator.model import Policy, Rule
from cachewright.generator.pipeline import Options
from cachewright.generator.varnish_rules import Behaviour

from ..selection.explain import EngineView
from ..selection.request import Request


def view(policy: Policy, rule: Rule, request: Request, scheme: str,
         reasons: tuple[str, ...]) -> EngineView:
    """The Varnish side: selection condition, the rule's task variable, the profile and TTL a fetch
    derives from it, recv and hash (``vcl_recv`` passes when there are bypass ``reasons``)."""
    options = Options()
    model = lower_varnish.lower(policy, options.varnish_proxy_listen, options.hitch_user)
    vcl_rule = next((r for chunk in model.chunks for r in chunk if r.name == rule.name),
                    model.default)
    profile = next(p for p in model.profiles if p.ident == vcl_rule.profile)
    lines = [("condition", vcl_rule.condition), ('var "rule"', rule.name),
             ("X-Cw-Profile", f"{profile.ident} (on a fetch; behaviour shared by rules: {profile.rules})"),
             ("X-Cw-Ttl", f"{vcl_rule.ttl} (on a fetch)"),
             ("vcl_recv", "return (pass)" if reasons else "return (hash)"),
             ("vcl_hash", " + ".join(hash_parts(model, profile.behaviour)))]
    lines += [("cookies", _cookie_mode(profile.behaviour))]
    if profile.behaviour.vary_headers:
        lines.append(("beresp.http.Vary", "+ " + ", ".join(profile.behaviour.vary_headers)))
    return EngineView("varnish", tuple(lines))


def hash_parts(model: lower_varnish.VarnishModel, b: Behaviour) -> list[str]:
    """The ``hash_data`` arguments of ``vcl_hash`` for this behaviour."""
    parts = [model.scheme] if model.hash_scheme else []
    parts += ["req.http.host"] if model.key_host else []
    parts += ["req.url" if model.key_query else "var.get(\"path\")"]
    return [*parts, *b.hash_parts]


def _cookie_mode(b: Behaviour) -> str:
    if b.cookie_mode == "strip":
        return "unset req.http.Cookie"
    if b.cookie_mode == "keep":
        return f'cookie.keep("{b.keep_cookies}")'
    return "a Cookie header makes the request pass (var \"pass\")"
