"""The one maker of throw-away certificates (with ``cryptography``): a builder for any
certificate, a private CA and the server certificates it signs (``runtime.tlsfiles`` writes a
run's), and a self-signed pair (a syntax check needs readable files; the TLS checks' bad
certificates). Nothing here is meant to outlive a run.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
VALIDITY = datetime.timedelta(days=2)
Extensions = Iterable[tuple[x509.ExtensionType, bool]]


def ec_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def name(common_name: str) -> x509.Name:
    """An X.509 name holding only ``common_name``."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject: str, key: PrivateKey, issuer: x509.Name | None, signer: PrivateKey,
                extensions: Extensions = (), validity: datetime.timedelta = VALIDITY) -> x509.Certificate:
    """A certificate for ``key`` named ``subject``, issued by ``issuer`` (None: by itself) and
    signed with ``signer``, valid from five minutes ago for ``validity``."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(name(subject))
               .issuer_name(issuer or name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + validity))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signer, hashes.SHA256())


def ca_certificate(key: PrivateKey, common_name: str = "cachewright throw-away CA") -> x509.Certificate:
    """A self-signed CA that signs server certificates only (path length 0)."""
    return certificate(common_name, key, None, key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_key_usage(cert_sign=True), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)])


def server_certificate(key: PrivateKey, ca_key: PrivateKey, ca_cert: x509.Certificate,
                       names: list[str]) -> x509.Certificate:
    """A server certificate for ``names`` (host names or IP addresses; the first is its common
    name) signed by the CA ``ca_cert``."""
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return certificate(names[0], key, ca_cert.subject, ca_key, [
        (x509.SubjectAlternativeName([_san(n) for n in names]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(cert_sign=False, encipherment=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False)])


@cache
def throwaway_pair(host: str = "localhost", key_type: str = "ECDSA") -> tuple[bytes, bytes]:
    """A self-signed certificate for ``host`` and its key (ECDSA P-256, or RSA 2048 for
    ``key_type="RSA"``), both PEM; made once per process."""
    key: PrivateKey = rsa_key() if key_type == "RSA" else ec_key()
    cert = certificate(host, key, None, key, [(x509.SubjectAlternativeName([x509.DNSName(host)]), False)])
    return certificate_pem(cert), key_pem(key)


def certificate_pem(cert: x509.Certificate) -> bytes:
    """``cert`` as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS #8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def _key_usage(cert_sign: bool, encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=encipherment, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)
