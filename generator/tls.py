"""Mozilla server-side TLS profiles (guidelines v5.7), written out in full on every engine:
older engine defaults still allow TLS 1.0/1.1 and ciphers without forward secrecy.
"""

from __future__ import annotations

from dataclasses import dataclass

_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
)
_OLD_EXTRA = (
    "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA256",
    "DHE-RSA-AES256-SHA256", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA256",
    "AES256-SHA256", "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
)
_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                 "TLS_CHACHA20_POLY1305_SHA256")


@dataclass(frozen=True)
class Profile:
    name: str
    protocols: tuple[str, ...]
    ciphers: tuple[str, ...]
    ciphersuites: tuple[str, ...]
    curves: tuple[str, ...]
    prefer_server_ciphers: bool
    seclevel0: bool = False

    @property
    def cipher_string(self) -> str:
        """OpenSSL cipher list for TLS ≤ 1.2 (OpenSSL 3 needs SECLEVEL=0 for the old profile)."""
        text = ":".join(self.ciphers)
        return f"{text}:@SECLEVEL=0" if self.seclevel0 else text


PROFILES = {
    "modern": Profile("modern", ("TLSv1.3",), (), _TLS13_SUITES,
                      ("X25519", "prime256v1", "secp384r1"), False),
    "intermediate": Profile("intermediate", ("TLSv1.2", "TLSv1.3"), _INTERMEDIATE_CIPHERS,
                            _TLS13_SUITES, ("X25519", "prime256v1", "secp384r1"), False),
    "old": Profile("old", ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
                   _INTERMEDIATE_CIPHERS + _OLD_EXTRA, _TLS13_SUITES,
                   ("X25519", "prime256v1", "secp384r1"), True, seclevel0=True),
}


# RFC 7919 ffdhe2048, the group Mozilla's guidelines use for DHE (a public constant).
FFDHE2048_PEM = """\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""
