"""Adapting a user's policy to a harness run: same rules, the harness's addresses and ports.

Everything that decides caching behaviour is kept; only where things listen, where the origin is
and which certificate is served change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cachewright.generator import capabilities
from cachewright.generator.model import HttpListener, Listen, Origin, OriginTls, Policy, Server
from cachewright.generator.pipeline import Options, compile_policy
from cachewright.generator.render import OutputFile


@dataclass(frozen=True)
class Placement:
    """Where a runtime puts one engine: its listen address and ports, the origin, the certificate."""

    address: str
    http_port: int
    https_port: int
    origin_host: str
    origin_port: int
    certificate: str = ""
    key: str = ""
    #: TLS the placed origin serves; None: plain HTTP (the sample origin), so an https policy's
    #: engine fetches from it over http (``generated`` still refuses what an engine lacks)
    origin_tls: OriginTls | None = None


def for_harness(policy: Policy, place: Placement) -> Policy:
    """``policy`` listening on ``place``'s ports and proxying to ``place``'s origin."""
    listen = policy.listen
    http = HttpListener(place.address, place.http_port) if listen.http else None
    https = None
    if listen.https:
        https = replace(listen.https, address=place.address, port=place.https_port,
                        certificate=place.certificate, key=place.key)
    scheme = "https" if place.origin_tls else "http"
    origin: Origin = replace(policy.origin, servers=(Server(place.origin_host, place.origin_port, scheme),),
                             tls=place.origin_tls)
    return replace(policy, listen=Listen(http, https, listen.hosts), origin=origin)


#: what a runtime writes for one engine: its files by base name (``nginx.conf``, ``default.vcl``,
#: ``varnishd.args``, ``hitch.conf``, ...) for the adapted policy at ``place``
Configs = Callable[[Policy, str, Placement, Options], dict[str, OutputFile]]


def generated(policy: Policy, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
    """The compiler's files for ``policy`` adapted to ``place`` (every runtime's default)."""
    capabilities.check(policy, engine)  # as written: adapting must not hide an https origin
    files = compile_policy(for_harness(policy, place), (engine,), options).files
    return {Path(f.path).name: f for f in files}


def request_host(policy: Policy) -> str:
    """The Host header checks send: the first listed host (a wildcard made concrete)."""
    for host in policy.listen.hosts:
        return "www." + host[2:] if host.startswith("*.") else host
    return "cachewright.test"
