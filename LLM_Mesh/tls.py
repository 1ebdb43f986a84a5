"""TLS for the mesh's clients: whom an outbound HTTPS connection trusts.

The node's calls to its registry, the CLI and the seed API verify an ``https``
server normally: the system's CA bundle, host name checked. A registry with a
private CA or a self-signed certificate (a LAN, the e2e tests) is trusted by
naming that CA file (``--registry-ca FILE`` / ``$LLM_MESH_REGISTRY_CA``,
``Settings.registry_ca``): trusted besides the system's bundle, host name still
checked. Verification is never turned off.

Nodes are reached by the gateway, which pins their certificates instead
(``registry/node_client.py``; fingerprints in ``core/tls.py``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from LLM_Mesh.text_files import NOT_REGULAR, NotRegularFile, why_unreadable

__all__ = [
    "NODE_PAIR_HINT",
    "REGISTRY_PAIR_HINT",
    "certificate_fingerprint",
    "check_server_pair",
    "client_ssl_context",
    "trust_certificate_context",
]


def client_ssl_context(*ca_files: str | Path | None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, and those in ``ca_files`` too.

    ``ValueError`` naming the file when one cannot be read as PEM certificates.
    """
    ctx = ssl.create_default_context()
    for ca_file in ca_files:
        if ca_file is None:
            continue
        path = Path(ca_file).expanduser()
        try:
            if path.exists() and not (path.is_file() or path.is_dir()):
                # a FIFO or a device: never opened, it could wait for ever (cli36)
                raise NotRegularFile(NOT_REGULAR)
            ctx.load_verify_locations(cafile=str(path))
        except ssl.SSLError as exc:  # read, but not PEM certificates
            why = f"no PEM certificate in it ({exc.reason or exc})"
            raise ValueError(f"cannot use {path} as a CA file: {why}") from None
        except OSError as exc:  # missing, a folder, ... (found 2026-12-06: [Errno 2])
            raise ValueError(f"cannot use {path} as a CA file: {why_unreadable(exc)}") from None
    return ctx


def trust_certificate_context(pem: str) -> ssl.SSLContext:
    """A verifying client context whose only trust anchor is one certificate (PEM).

    What the gateway's httpx client uses once a node's certificate matched its
    pinned fingerprint: the handshake is then verified (signature, dates, host
    name) against exactly that certificate.
    """
    return ssl.create_default_context(cadata=pem)


def certificate_fingerprint(cert_file: str | Path) -> str:
    """The SHA-256 fingerprint of the first certificate in a PEM file (64 hex digits)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from LLM_Mesh.core.tls import fingerprint_of_der

    path = Path(cert_file).expanduser()
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM certificate ({exc})") from None
    return fingerprint_of_der(cert.public_bytes(Encoding.DER))


# how the server that checks a pair gets one, said after the reason (found 2026-12-04: a
# registry operator was told how to make a pair for a node)
NODE_PAIR_HINT = "a node: llm-mesh node tls init makes a matching pair"
REGISTRY_PAIR_HINT = (
    "a registry: the certificate a CA signed for its names and that certificate's key, "
    'PEM, the key unencrypted; docs/deploy.md, "TLS"'
)


def check_server_pair(
    cert_file: str | Path, key_file: str | Path, *, hint: str | None = None
) -> None:
    """``ValueError`` naming both files unless a server can serve https with them: both
    readable PEM, the key the certificate's, not encrypted (uvicorn would ask for its
    password on the terminal); ``hint`` (the caller's: :data:`NODE_PAIR_HINT`,
    :data:`REGISTRY_PAIR_HINT`) in brackets after the reason. Called before a registry or
    node starts (found 2026-12-04: a key that was not the certificate's, or a missing file,
    ended ``registry serve`` and ``node start`` with uvicorn's traceback,
    ``KEY_VALUES_MISMATCH``)."""
    cert, key = Path(cert_file).expanduser(), Path(key_file).expanduser()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    def no_password() -> bytes:
        raise ValueError("the key is encrypted (a key with a password cannot be used)")

    try:
        ctx.load_cert_chain(str(cert), str(key), password=no_password)
    except ValueError as exc:
        why = str(exc)
    except OSError as exc:  # ssl.SSLError is an OSError too
        if isinstance(exc, ssl.SSLError):
            if "KEY_VALUES_MISMATCH" in str(exc):
                why = "the key is not the certificate's (they do not match)"
            else:
                why = _which_is_not_pem(cert, key)
        else:
            missing = exc.filename or (cert if not cert.is_file() else key)
            why = f"cannot read {missing}: {exc.strerror or exc}"
    else:
        return
    raise ValueError(
        f"cannot serve https with --tls-cert {cert} and --tls-key {key}: {why}"
        + (f" ({hint})" if hint else "")
    )


def _which_is_not_pem(cert: Path, key: Path) -> str:
    """Which of the two files OpenSSL could not read ("PEM lib" names neither)."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError:
        return f"{cert} is not a PEM certificate"
    return f"{key} is not a PEM private key"
