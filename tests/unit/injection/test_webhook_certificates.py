"""The webhook CA and serving certificate as pure steps: creation, renewal, CA rotation overlap."""

from __future__ import annotations

import datetime

from cryptography import x509

from modelgate_operator.injection.certs import (
    CA_CERT,
    NEXT_CERT,
    PREVIOUS_CERT,
    TLS_CERT,
    Lifetimes,
    ca_bundle,
    plan,
)

NAMES = ("modelgate-webhook.modelgate.svc", "modelgate-webhook.modelgate.svc.cluster.local", "127.0.0.1")
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
LIFE = Lifetimes(ca=datetime.timedelta(days=300), serving=datetime.timedelta(days=30))


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _chains(data: dict[str, bytes], now: datetime.datetime) -> bool:
    """The serving certificate verifies against the bundle, for NAMES, at ``now``."""
    store = x509.verification.Store(x509.load_pem_x509_certificates(ca_bundle(data)))
    verifier = x509.verification.PolicyBuilder().store(store).time(now).build_server_verifier(x509.DNSName(NAMES[0]))
    verifier.verify(_cert(data[TLS_CERT]), [])
    return True


def test_an_empty_secret_gets_a_ca_and_a_serving_certificate_for_every_name() -> None:
    data = plan({}, NAMES, T0, LIFE)
    assert set(data) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    ca = _cert(data[CA_CERT])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = _cert(data[TLS_CERT]).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == list(NAMES[:2])
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert _chains(data, T0)


def test_nothing_changes_while_nothing_is_due() -> None:
    data = plan({}, NAMES, T0, LIFE)
    assert plan(data, NAMES, T0 + datetime.timedelta(days=19), LIFE) == data


def test_the_serving_certificate_is_renewed_at_two_thirds_of_its_life_by_the_same_ca() -> None:
    data = plan({}, NAMES, T0, LIFE)
    later = T0 + datetime.timedelta(days=21)
    renewed = plan(data, NAMES, later, LIFE)
    assert renewed[TLS_CERT] != data[TLS_CERT] and renewed[CA_CERT] == data[CA_CERT]
    assert _chains(renewed, later)


def test_new_names_get_a_new_serving_certificate() -> None:
    data = plan({}, NAMES, T0, LIFE)
    renamed = plan(data, ("other.modelgate.svc",), T0, LIFE)
    assert renamed[TLS_CERT] != data[TLS_CERT]


def test_a_ca_rotation_publishes_the_next_ca_long_before_it_signs_and_keeps_the_old_one() -> None:
    data = plan({}, NAMES, T0, LIFE)
    old_ca = data[CA_CERT]
    half = T0 + datetime.timedelta(days=151)
    data = plan(data, NAMES, half, LIFE)
    assert NEXT_CERT in data and data[CA_CERT] == old_ca  # announced, not used yet
    assert data[NEXT_CERT].strip() in ca_bundle(data)
    assert _cert(data[TLS_CERT]).issuer == _cert(old_ca).subject
    two_thirds = T0 + datetime.timedelta(days=201)
    rotated = plan(data, NAMES, two_thirds, LIFE)
    assert rotated[CA_CERT] == data[NEXT_CERT] and rotated[PREVIOUS_CERT] == old_ca
    assert NEXT_CERT not in rotated
    # A replica still serving the old CA's certificate keeps verifying against the new bundle.
    assert old_ca.strip() in ca_bundle(rotated)
    assert _chains(rotated, two_thirds)
    assert _chains({**rotated, TLS_CERT: data[TLS_CERT]}, half + datetime.timedelta(days=1))


def test_an_expired_ca_is_replaced_outright() -> None:
    data = plan({}, NAMES, T0, LIFE)
    late = T0 + datetime.timedelta(days=400)
    fresh = plan(data, NAMES, late, LIFE)
    assert fresh[CA_CERT] != data[CA_CERT] and PREVIOUS_CERT not in fresh
    assert _chains(fresh, late)


def test_a_serving_certificate_of_a_foreign_ca_is_replaced() -> None:
    ours = plan({}, NAMES, T0, LIFE)
    foreign = plan({}, NAMES, T0, LIFE)
    mixed = {**ours, TLS_CERT: foreign[TLS_CERT], "tls.key": foreign["tls.key"]}
    fixed = plan(mixed, NAMES, T0, LIFE)
    assert fixed[TLS_CERT] != foreign[TLS_CERT]
    assert _chains(fixed, T0)
