"""Throw-away TLS files for one harness run: a private CA and a server certificate it signs.

Clients trust the CA (``TlsFiles.ca``); the engines serve ``cert`` with ``key``. Every file is
world-readable on purpose: they live only in the run's own temp dir for the run's lifetime, and
the engines read them after dropping privileges (nginx's workers as ``nobody``, hitch as
``_hitch``, which re-reads them on reload).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FILE_MODE = 0o644
VALIDITY = datetime.timedelta(days=2)
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
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key)
    # RSA, so the harness can prove that RSA key exchange (no forward secrecy) is refused: with
    # an ECDSA key that refusal would hold whatever the cipher list says.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _server_certificate(key, ca_key, ca_cert, _names(hosts))
    files = TlsFiles(directory / "ca.pem", directory / "server.crt", directory / "server.key")
    _write(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    _write(files.key, key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return files


def _names(hosts: Iterable[str]) -> list[str]:
    """Unique names in order: the policy's hosts, then the defaults."""
    return list(dict.fromkeys([*hosts, *DEFAULT_NAMES]))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachewright throw-away CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _validity(builder).sign(key, hashes.SHA256())


def _server_certificate(key: rsa.RSAPrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                        ca_cert: x509.Certificate, names: list[str]) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False, encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
    )
    return _validity(builder).sign(ca_key, hashes.SHA256())


def _key_usage(cert_sign: bool, encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=encipherment, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(FILE_MODE)
