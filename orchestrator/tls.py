"""Per-session TLS credentials for the dask comm: one CA and one session certificate per job.

Why: the dask scheduler runs whatever a connected client sends, on workers that mount the user's
job directory. NetworkPolicies are only as good as the cluster's network plug-in, so every session
also requires TLS with a certificate signed by its own CA (as dask-gateway does per cluster): a
client of another session, or anyone without this job's Secret, is refused by the scheduler.

One certificate serves the scheduler, the workers and the clients (server and client auth): the
session is one tenant, and dask checks the peer's chain, not its host name. The CA's private key
is used once to sign and then dropped, so nothing can mint further certificates for the session.
The private key is a :class:`SecretStr` (never printed); the PEM files go only into the per-job
Secret (keys below), never into values, logs or the release record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.job import SecretStr

__all__ = [
    "CA_KEY",
    "CERT_KEY",
    "CLOCK_SKEW",
    "KEY_KEY",
    "TLS_KEYS",
    "SessionTLS",
    "make_session_tls",
]

CA_KEY: Final = "tls-ca.pem"
"""Key of the session CA's certificate in the per-job Secret."""
CERT_KEY: Final = "tls-cert.pem"
"""Key of the session certificate (scheduler, workers, clients) in the per-job Secret."""
KEY_KEY: Final = "tls-key.pem"
"""Key of the session certificate's private key in the per-job Secret."""
TLS_KEYS: Final = (CA_KEY, CERT_KEY, KEY_KEY)
CLOCK_SKEW: Final = dt.timedelta(minutes=10)
"""Certificates start this long before now, so a node whose clock lags still accepts them."""


@dataclass(frozen=True)
class SessionTLS:
    """The three PEM files of one session; the private key never shows in repr or str."""

    ca_pem: str
    cert_pem: str
    key_pem: SecretStr

    def secret_data(self) -> dict[str, SecretStr]:
        """The per-job Secret's TLS entries (all three as SecretStr: one type for the Secret)."""
        return {
            CA_KEY: SecretStr(self.ca_pem),
            CERT_KEY: SecretStr(self.cert_pem),
            KEY_KEY: self.key_pem,
        }


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dask-panda-session"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def make_session_tls(
    session: str,
    dns_names: Sequence[str],
    *,
    valid_for: dt.timedelta,
    now: dt.datetime | None = None,
) -> SessionTLS:
    """A new CA and a session certificate signed by it, valid from now (less the clock skew).

    ``session`` names both subjects (the release name); ``dns_names`` go into the certificate's
    subject alternative names (the scheduler's Service names) for clients that check host names.
    ``valid_for`` should cover the session's lifetime: an expired certificate ends the comm.
    """
    if valid_for <= dt.timedelta(0):
        raise ValueError("valid_for must be positive")
    start = (now or dt.datetime.now(dt.UTC)) - CLOCK_SKEW
    end = start + CLOCK_SKEW + valid_for

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{session} session CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(session))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    names = [x509.DNSName(n) for n in dict.fromkeys(dns_names) if n]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    del ca_key  # never stored: nothing can sign further certificates for this session

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return SessionTLS(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key_pem=SecretStr(key_pem),
    )
