"""``llm-mesh node tls init``'s certificate: self-signed for the node's names, key 0600,
never overwritten without ``force``, fingerprint = SHA-256 of the DER certificate."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.node.tls import make_self_signed
from LLM_Mesh.tls import certificate_fingerprint, client_ssl_context
from tests.node.conftest import node_config, sim_engine


def _paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "node-tls.crt", tmp_path / "node-tls.key"


def test_makes_a_self_signed_certificate_for_the_names(tmp_path: Path) -> None:
    crt, key = _paths(tmp_path)
    nc = make_self_signed(crt, key, ["node.example", "127.0.0.1", "::1"])
    assert nc.created
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node.example"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert nc.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    assert certificate_fingerprint(crt) == nc.fingerprint
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_never_overwritten_without_force(tmp_path: Path) -> None:
    crt, key = _paths(tmp_path)
    first = make_self_signed(crt, key, ["127.0.0.1"])
    pem = crt.read_bytes(), key.read_bytes()
    again = make_self_signed(crt, key, ["other.example"])
    assert not again.created and again.fingerprint == first.fingerprint
    assert (crt.read_bytes(), key.read_bytes()) == pem
    forced = make_self_signed(crt, key, ["127.0.0.1"], force=True)
    assert forced.created and forced.fingerprint != first.fingerprint
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_half_a_pair_is_not_overwritten(tmp_path: Path) -> None:
    crt, key = _paths(tmp_path)
    key.write_bytes(b"someone's key")
    with pytest.raises(FileExistsError, match="never overwritten"):
        make_self_signed(crt, key, ["127.0.0.1"])
    assert key.read_bytes() == b"someone's key"
    assert not crt.exists()


def test_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host name"):
        make_self_signed(*_paths(tmp_path), [" "])


def test_trusted_as_a_ca_file(tmp_path: Path) -> None:
    """The same certificate serves as ``--registry-ca`` for a self-signed registry."""
    crt, key = _paths(tmp_path)
    make_self_signed(crt, key, ["127.0.0.1"])
    ctx = client_ssl_context(crt)
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname
    with pytest.raises(ValueError, match="CA file"):
        client_ssl_context(tmp_path / "missing.pem")


# --- the node serving https: config and registration --------------------------------------


def test_config_tls_pair_and_https_url(tmp_path: Path) -> None:
    crt, key = _paths(tmp_path)
    cfg = NodeConfig(engine="sim", port=9443, tls_cert=str(crt), tls_key=str(key))
    assert cfg.effective_public_url == "https://127.0.0.1:9443"
    assert NodeConfig(engine="sim", port=9443).effective_public_url == "http://127.0.0.1:9443"
    with pytest.raises(ValueError, match="go together"):
        NodeConfig(engine="sim", tls_cert=str(crt))
    with pytest.raises(ValueError, match="https"):
        NodeConfig(engine="sim", tls_cert=str(crt), tls_key=str(key), public_url="http://n:1")


async def test_registration_carries_the_fingerprint(tmp_path: Path, settings: Settings) -> None:
    crt, key = _paths(tmp_path)
    nc = make_self_signed(crt, key, ["127.0.0.1"])
    cfg = node_config(tls_cert=str(crt), tls_key=str(key))
    svc = NodeService(cfg, settings, engine=sim_engine(), hardware=Hardware())
    await svc.start()
    try:
        reg = svc.registration()
        assert reg.url.startswith("https://")
        assert reg.tls_fingerprint == nc.fingerprint
        plain = NodeService(node_config(), settings, engine=sim_engine(), hardware=Hardware())
        assert plain.tls_fingerprint is None
    finally:
        await svc.stop()
