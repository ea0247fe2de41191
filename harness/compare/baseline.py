"""The hand-written baseline configs ``compare`` measures the generated ones against.

The templates live in ``templates/baseline/`` and render through the compiler's own Jinja
environment: a minimal ``proxy_cache`` nginx config and a backend-only VCL (the builtin VCL does
the rest). They share the generated config's process model, logging, listeners and TLS
termination (Varnish keeps the generated ``hitch.conf``), so the throughput ratio is the cost of
the policy's logic: guards, maps, key building, Cache-Status, header scrubbing.

    LocalRuntime(configs=baseline_configs).start(policy, ("nginx", "varnish"))
"""

from __future__ import annotations

import re

from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile, environment

from ..runtime.prepare import Placement, generated

#: the files each engine's baseline replaces (the rest, e.g. hitch.conf, are the generated ones)
REPLACED = {"nginx": ("nginx.conf",), "varnish": ("default.vcl", "varnishd.args")}
_SAFE = re.compile(r"[A-Za-z0-9_.:/\-\[\]]*")


def baseline_configs(policy: Policy, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
    """The baseline's files for ``engine`` at ``place`` (a ``harness.runtime.prepare.Configs``)."""
    files = generated(policy, engine, place, options)
    values = {
        "address": place.address,
        "http_port": place.http_port if policy.listen.http else None,
        "https_port": place.https_port if policy.listen.https else None,
        "origin_host": place.origin_host,
        "origin_port": place.origin_port,
        "certificate": place.certificate,
        "key": place.key,
    }
    for name, value in values.items():
        if not _SAFE.fullmatch(str(value)):
            raise ValueError(f"baseline {name} {value!r}: not a plain address, port or path")
    values["proxy_line"] = _proxy_line(files.get("varnishd.args"))
    for name in REPLACED[engine]:
        text = environment().get_template(f"baseline/{name}.j2").render(values)
        files[name] = OutputFile(name, text)
    return files


def _proxy_line(args: OutputFile | None) -> str:
    """The generated PROXY listener line (``-a https=...,PROXY...``), which hitch connects to."""
    lines = (args.text if args else "").splitlines()
    return next((line for line in lines if line.startswith("-a https=")), "")
