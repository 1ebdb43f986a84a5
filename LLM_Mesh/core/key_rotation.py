"""A registry-key rotation statement: the old ``registry.key`` vouches for the new one.

A node that learned its gateway key by trust on first use (``$LLM_MESH_HOME/gateway.pin``,
``node/gateway_guard.py``) refuses a registration answer naming another key. A registry
given its previous key (``$LLM_MESH_HOME/registry.key.previous``) adds to every
registration answer ``key_rotation``: the new public key, the previous one, and the
previous key's Ed25519 signature (base64url) over::

    b"llm-mesh/v1/registry-key-rotation\\x00" + new public key (base64url, ASCII)

The node accepts the answer's new key only when the statement verifies under the key it
pinned and names the answer's key (:func:`vouches_for`); then it pins the new key. A
node several rotations behind follows the chain of these statements the answer carries
as ``key_rotations`` (``core/key_chain.py``); a lost key signs nothing, and its nodes need
their operators (``llm-mesh node keys forget-gateway``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_session import sign_kx, verify_kx
from LLM_Mesh.core.identity import decode_public_key, encode_public_key, public_key_of
from LLM_Mesh.errors import MeshError

__all__ = ["ROTATION_DOMAIN", "rotation_bytes", "rotation_statement", "vouches_for"]

ROTATION_DOMAIN = b"llm-mesh/v1/registry-key-rotation\x00"
_MAX_KEY = 100


def rotation_bytes(new_public_key: str) -> bytes:
    """The bytes the previous key signs: the domain, then the new key as sent."""
    if not new_public_key or len(new_public_key) > _MAX_KEY or not new_public_key.isascii():
        raise ValueError("a public key is a short ASCII string")
    return ROTATION_DOMAIN + new_public_key.encode("ascii")


def rotation_statement(previous: Ed25519PrivateKey, current: Ed25519PrivateKey) -> dict[str, str]:
    """The ``key_rotation`` object of a registration answer: ``previous`` vouches for
    ``current``."""
    new = encode_public_key(public_key_of(current))
    return {
        "public_key": new,
        "previous_public_key": encode_public_key(public_key_of(previous)),
        "signature": sign_kx(previous, rotation_bytes(new)),
    }


def vouches_for(statement: object, pinned: str, new_key: str) -> bool:
    """Whether ``statement`` (an answer's ``key_rotation``) is ``pinned``'s signature
    naming ``new_key``: anything else (missing, another signer, another new key, a
    garbled signature, a malformed object) is False."""
    if not isinstance(statement, Mapping):
        return False
    fields: Mapping[str, Any] = statement
    named, signature = fields.get("public_key"), fields.get("signature")
    if named != new_key or not isinstance(signature, str) or len(signature) > 200:
        return False
    try:
        key = decode_public_key(pinned)
        data = rotation_bytes(new_key)
    except (MeshError, ValueError):
        return False
    return verify_kx(key, signature, data)
