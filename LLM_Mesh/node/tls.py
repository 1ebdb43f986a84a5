"""The node's TLS certificate: ``llm-mesh node tls init`` makes a self-signed one.

Files (default ``$LLM_MESH_HOME/node-tls.crt`` and ``node-tls.key``; node.toml
``tls_cert`` / ``tls_key``): an ECDSA P-256 key (PEM, PKCS#8, mode 0600, made
with ``O_EXCL``) and an X.509 certificate for the node's host names and IP
addresses (subjectAltName; mode 0600 too), valid for :data:`DEFAULT_DAYS`. Neither is ever
overwritten unless asked (``force``). The certificate's SHA-256 fingerprint goes
into the node's signed registration, so the gateway pins it: a self-signed node
is still authenticated, and nobody else's certificate passes for it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from LLM_Mesh.config import Settings
from LLM_Mesh.core.tls import fingerprint_of_der
from LLM_Mesh.secret_files import create_secret_file, replace_file

__all__ = ["CERT_FILE", "DEFAULT_DAYS", "KEY_FILE", "NodeCertificate", "make_self_signed"]

CERT_FILE = "node-tls.crt"
KEY_FILE = "node-tls.key"
DEFAULT_DAYS = 825


@dataclass(frozen=True)
class NodeCertificate:
    cert_path: Path
    key_path: Path
    fingerprint: str  # 64 hex digits
    created: bool  # False: both files existed and were kept


def default_paths(settings: Settings) -> tuple[Path, Path]:
    return settings.home / CERT_FILE, settings.home / KEY_FILE


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(n.strip().strip("[]") for n in names if n.strip()):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name.lower()))
    if not out:
        raise ValueError("a node certificate needs at least one host name or IP address")
    return x509.SubjectAlternativeName(out)


def make_self_signed(
    cert_path: Path,
    key_path: Path,
    hosts: list[str],
    *,
    force: bool = False,
    days: int = DEFAULT_DAYS,
    now: dt.datetime | None = None,
) -> NodeCertificate:
    """Make a key and a self-signed certificate for ``hosts`` unless both exist.

    With both files present and no ``force``, nothing is written and the existing
    certificate's fingerprint is returned. One present without the other is an
    error (``FileExistsError``), as is any existing file without ``force``
    when a new pair is needed.
    """
    from LLM_Mesh.tls import certificate_fingerprint

    if cert_path.exists() and key_path.exists() and not force:
        return NodeCertificate(cert_path, key_path, certificate_fingerprint(cert_path), False)
    if not force:
        for p in (cert_path, key_path):
            if p.exists():
                raise FileExistsError(f"{p} exists (never overwritten; --force makes new ones)")
    if days < 1:
        raise ValueError("days must be at least 1")
    san = _san(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    now = now or dt.datetime.now(dt.timezone.utc)
    first = san.get_values_for_type(x509.DNSName) or [
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    ]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first[0][:64])])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    if force:
        key_path.unlink(missing_ok=True)
    if not create_secret_file(key_path, pem_key):  # 0600, O_EXCL
        raise FileExistsError(f"{key_path} appeared while making it; nothing overwritten")
    # whole, 0600 as the home's other files (public, but 0644 had every command that opens
    # the home warn of it: secret_files.open_files_warning; found 2026-12-07, review40)
    replace_file(cert_path, cert.public_bytes(Encoding.PEM))
    return NodeCertificate(
        cert_path, key_path, fingerprint_of_der(cert.public_bytes(Encoding.DER)), True
    )
