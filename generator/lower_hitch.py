"""Lowering a policy's HTTPS listener to Hitch (TLS in front of Varnish, PROXY v2)."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Policy
from .tls import PROFILES, Profile


@dataclass(frozen=True)
class HitchModel:
    frontend: str
    backend: str
    certificate: str
    key: str
    profile: Profile
    protocols: str
    #: the TLS 1.2 cipher list (None: the profile is TLS 1.3 only)
    ciphers: str | None
    prefer_server_ciphers: str
    alpn: str


def lower(policy: Policy, proxy_listen: str) -> HitchModel:
    """The render model for ``templates/hitch/hitch.conf.j2``."""
    https = policy.listen.https
    assert https is not None, "hitch is only generated for HTTPS policies"
    if proxy_listen.startswith("/"):
        backend = proxy_listen
    else:
        host, _, port = proxy_listen.rpartition(":")
        backend = f"[{host}]:{port}"
    profile = PROFILES[https.profile]
    return HitchModel(
        frontend=f"[{https.address.strip('[]')}]:{https.port}",
        backend=backend,
        certificate=https.certificate,
        key=https.key,
        profile=profile,
        protocols=" ".join("TLSv1.0" if p == "TLSv1" else p for p in profile.protocols),
        ciphers=profile.cipher_string if profile.ciphers else None,
        prefer_server_ciphers="on" if profile.prefer_server_ciphers else "off",
        alpn="h2, http/1.1" if https.http2 else "http/1.1",
    )
