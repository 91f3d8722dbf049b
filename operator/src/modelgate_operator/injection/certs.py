"""The webhook's certificates: a self-signed CA and a serving certificate, planned as pure steps.

Kept in one Secret (keys below). :func:`plan` takes what the Secret holds and the time, and returns
what it should hold: a CA is created, its successor is generated at half its life and published in
the ``caBundle`` long before it signs anything (at two thirds), and the old CA stays in the bundle
after that, so a replica still serving a certificate of the old CA keeps working until it reloads.
The serving certificate is renewed at two thirds of its life or when its names change.
No I/O; :mod:`.certstore` reads and writes the Secret. EC P-256 keys (small, fast, accepted by
kube-apiserver and Python's ssl).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.crt", "ca.key"
NEXT_CERT, NEXT_KEY = "ca-next.crt", "ca-next.key"
PREVIOUS_CERT = "ca-previous.crt"
TLS_CERT, TLS_KEY = "tls.crt", "tls.key"
# Clock skew between the operator and the API server must not make a fresh certificate invalid.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    ca: datetime.timedelta = datetime.timedelta(days=365)
    serving: datetime.timedelta = datetime.timedelta(days=90)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load(cert_pem: bytes) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None


def new_ca(now: datetime.datetime, lifetime: datetime.timedelta, name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _san(names: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def new_serving(
    ca_cert_pem: bytes, ca_key_pem: bytes, names: Sequence[str], now: datetime.datetime, lifetime: datetime.timedelta
) -> tuple[bytes, bytes]:
    """A serving certificate for ``names`` (DNS names or IP addresses), signed by the CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the webhook CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _past(cert: x509.Certificate, fraction: float, now: datetime.datetime) -> bool:
    """True once ``fraction`` of the certificate's validity has elapsed (or it is not valid yet)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now < start or now >= start + (end - start) * fraction


def _serving_ok(data: Mapping[str, bytes], ca: x509.Certificate, names: Sequence[str], now: datetime.datetime) -> bool:
    leaf = _load(data.get(TLS_CERT, b""))
    if leaf is None or TLS_KEY not in data or _past(leaf, 2 / 3, now) or leaf.issuer != ca.subject:
        return False
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):  # not signed by this CA: renew
        return False
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san) == set(_san(names))


def plan(
    data: Mapping[str, bytes],
    names: Sequence[str],
    now: datetime.datetime,
    lifetimes: Lifetimes,
    ca_name: str = "modelgate-webhook-ca",
) -> dict[str, bytes]:
    """What the Secret should hold now. Equal to ``data`` when nothing is due."""
    result = dict(data)
    ca = _load(result.get(CA_CERT, b""))
    if ca is None or CA_KEY not in result or now >= ca.not_valid_after_utc:
        # No usable CA (first start, or the operator was away past its expiry): start over.
        result = {k: v for k, v in result.items() if k not in {NEXT_CERT, NEXT_KEY, PREVIOUS_CERT}}
        result[CA_CERT], result[CA_KEY] = new_ca(now, lifetimes.ca, ca_name)
    elif _past(ca, 2 / 3, now) and _load(result.get(NEXT_CERT, b"")) is not None and NEXT_KEY in result:
        result[PREVIOUS_CERT] = result[CA_CERT]
        result[CA_CERT], result[CA_KEY] = result.pop(NEXT_CERT), result.pop(NEXT_KEY)
    elif _past(ca, 1 / 2, now) and NEXT_CERT not in result:
        result[NEXT_CERT], result[NEXT_KEY] = new_ca(now, lifetimes.ca, ca_name)
    if not _serving_ok(result, x509.load_pem_x509_certificate(result[CA_CERT]), names, now):
        result[TLS_CERT], result[TLS_KEY] = new_serving(result[CA_CERT], result[CA_KEY], names, now, lifetimes.serving)
    return result


def ca_bundle(data: Mapping[str, bytes]) -> bytes:
    """Every CA a serving certificate in use may chain to: current, next and previous."""
    parts = [data[k].strip() + b"\n" for k in (CA_CERT, NEXT_CERT, PREVIOUS_CERT) if data.get(k)]
    return b"".join(parts)
