"""orchestrator.tls: the per-session CA and certificate verify as dask will use them, and the key
never shows in a repr, a str or a log record."""

from __future__ import annotations

import datetime as dt
import logging
import ssl

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from orchestrator.tls import CA_KEY, CERT_KEY, KEY_KEY, TLS_KEYS, make_session_tls

pytestmark = pytest.mark.unit

NAMES = ["r-scheduler", "r-scheduler.ns.svc.cluster.local"]


def test_certificate_verifies_against_its_own_ca_only() -> None:
    tls = make_session_tls("r", NAMES, valid_for=dt.timedelta(hours=1))
    other = make_session_tls("r", NAMES, valid_for=dt.timedelta(hours=1))
    ca = x509.load_pem_x509_certificate(tls.ca_pem.encode())
    cert = x509.load_pem_x509_certificate(tls.cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    with pytest.raises((ValueError, InvalidSignature)):
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other.ca_pem.encode()))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_one_certificate_serves_servers_and_clients_with_the_service_names() -> None:
    tls = make_session_tls("r", NAMES, valid_for=dt.timedelta(hours=1))
    cert = x509.load_pem_x509_certificate(tls.cert_pem.encode())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NAMES


def test_key_matches_the_certificate_and_loads_into_an_ssl_context(tmp_path: object) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    tls = make_session_tls("r", NAMES, valid_for=dt.timedelta(hours=1))
    for name, text in ((CA_KEY, tls.ca_pem), (CERT_KEY, tls.cert_pem), (KEY_KEY, tls.key_pem.get())):
        (base / name).write_text(text)
    # what dask does with the three files: a mutually authenticated context
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(base / CA_KEY))
    ctx.load_cert_chain(str(base / CERT_KEY), str(base / KEY_KEY))
    cert = x509.load_pem_x509_certificate(tls.cert_pem.encode())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_validity_covers_the_session_and_tolerates_clock_skew() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    tls = make_session_tls("r", NAMES, valid_for=dt.timedelta(days=2), now=now)
    cert = x509.load_pem_x509_certificate(tls.cert_pem.encode())
    assert cert.not_valid_before_utc < now
    assert cert.not_valid_after_utc >= now + dt.timedelta(days=2)
    with pytest.raises(ValueError, match="valid_for"):
        make_session_tls("r", NAMES, valid_for=dt.timedelta(0))


def test_private_key_never_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    tls = make_session_tls("r", NAMES, valid_for=dt.timedelta(hours=1))
    key = tls.key_pem.get()
    assert "PRIVATE KEY" in key
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").debug("session tls %s %r %s", tls, tls, tls.secret_data())
    shown = repr(tls) + str(tls) + repr(tls.secret_data()) + caplog.text
    assert "PRIVATE KEY" not in shown
    assert key not in shown
    assert set(tls.secret_data()) == set(TLS_KEYS)
    assert tls.secret_data()[KEY_KEY].get() == key
