"""An Ed25519 signature given as base64url texts, checked step by step: one code for the
answers a client checks with a key it trusts (``core/registry_identity.py``: a registry's
identity proof; ``core/revocation_proof.py``: a registry's 403 ``revoked``).

:func:`signature_problem` says which step fails: the key is not an Ed25519 public key (32
bytes, base64url), the signature is not an Ed25519 signature (64 bytes, base64url), or it
does not verify over the bytes (``data`` is called inside the check: bytes that cannot be
made, a ``ValueError``, do not verify either). Each caller words its own refusal and
checks, in its own order, what else its answer must say (the key it names). Ed25519 by
``cryptography``, as everywhere but the receipt path (``core/ed25519.py``). Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from LLM_Mesh.core.b64url import decode

__all__ = ["Unverified", "public_key_from", "signature_problem"]


class Unverified(enum.Enum):
    """The step a signature fails."""

    KEY = "key"  # the key is not an Ed25519 public key
    SIGNATURE = "signature"  # the signature is not an Ed25519 signature
    MISMATCH = "mismatch"  # it does not verify over the bytes


def public_key_from(text: object) -> Ed25519PublicKey | None:
    """The Ed25519 public key ``text`` (base64url, 32 bytes) encodes, or ``None``."""
    raw = decode(text)
    if raw is None or len(raw) != 32:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def signature_problem(
    public_key: object, signature: object, data: Callable[[], bytes]
) -> Unverified | None:
    """Why ``signature`` (base64url) is not ``public_key``'s (base64url) over ``data()``;
    ``None`` when it is."""
    key = public_key_from(public_key)
    if key is None:
        return Unverified.KEY
    raw = decode(signature)
    if raw is None or len(raw) != 64:
        return Unverified.SIGNATURE
    try:
        key.verify(raw, data())
    except (InvalidSignature, ValueError):
        return Unverified.MISMATCH
    return None
