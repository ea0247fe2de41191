"""Throw-away TLS files for one harness run: a private CA and a server certificate it signs.

Clients trust the CA (``TlsFiles.ca``); the engines serve ``cert`` with ``key``. Every file is
world-readable on purpose: they live only in the run's own temp dir for the run's lifetime, and
the engines read them after dropping privileges (nginx's workers as ``nobody``, hitch as
``_hitch``, which re-reads them on reload).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import certs

FILE_MODE = 0o644
DEFAULT_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the CA certificate, the server certificate and the server's private key."""

    ca: Path
    cert: Path
    key: Path


def write_tls_files(directory: Path, hosts: Iterable[str]) -> TlsFiles:
    """Make a CA and a certificate for ``hosts`` (plus localhost and 127.0.0.1) in
    ``directory``, which is created mode 0755 when missing."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    ca_key = certs.ec_key()
    ca_cert = certs.ca_certificate(ca_key)
    # RSA, so the harness can prove that RSA key exchange (no forward secrecy) is refused: with
    # an ECDSA key that refusal would hold whatever the cipher list says.
    key = certs.rsa_key()
    cert = certs.server_certificate(key, ca_key, ca_cert, _names(hosts))
    files = TlsFiles(directory / "ca.pem", directory / "server.crt", directory / "server.key")
    _write(files.ca, certs.certificate_pem(ca_cert))
    _write(files.cert, certs.certificate_pem(cert))
    _write(files.key, certs.key_pem(key))
    return files


def _names(hosts: Iterable[str]) -> list[str]:
    """Unique names in order: the policy's hosts, then the defaults."""
    return list(dict.fromkeys([*hosts, *DEFAULT_NAMES]))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(FILE_MODE)
