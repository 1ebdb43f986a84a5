"""Gateway → node session keys: agreed through the signed registration, never sent.

The gateway authenticates every request it forwards (:mod:`LLM_Mesh.core.gateway_auth`).
An Ed25519 signature per request costs the node one verification (the largest single
cost on its request path, docs/benchmarks.md); a per-node HMAC key costs a hash. The
key is agreed by X25519 (Diffie-Hellman), so no secret crosses the network:

registry
    an X25519 key derived from its Ed25519 key (``registry.key``) by HKDF
    (:func:`registry_kx_private`): every replica sharing ``registry.key`` holds it,
    and nothing else needs storing.
node
    a fresh X25519 key per process (:class:`NodeKx`, memory only). Its public half
    travels in the node's *signed* registration and heartbeats
    (``NodeRegistration.gateway_kx_key``), so the registry knows it is that node's.
answer
    ``RegistrationAccepted.gateway_kx_key`` (the registry's X25519 public key) and
    ``gateway_kx_signature``: the registry's Ed25519 signature over
    :func:`kx_binding_bytes` (registry id, node id, both X25519 keys). The node checks it
    with the registry key it pinned, so a rewritten answer cannot plant another key.
key
    both sides compute ``HKDF-SHA256(X25519(own, peer), info = binding bytes)``
    (:func:`session_key`): 32 bytes bound to this registry, this node and these two
    X25519 keys. Another node's key is another key; a node restarted (new X25519 key)
    or a registry with another key agrees a new one, and the old one stops working.

The node keeps accepting the registry's Ed25519 signature too (a registry that has
not heard this node's X25519 key, an older registry): the MAC is an optimisation of
the same check, never a second way around it. Everything is ``cryptography`` (X25519,
HKDF) and the standard library's ``hmac``; nothing is hand-made.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "KX_KEY_CHARS",
    "NodeKx",
    "encode_kx_key",
    "kx_binding_bytes",
    "parse_kx_key",
    "registry_kx_private",
    "session_key",
    "sign_kx",
    "verify_kx",
]

_SEED_INFO = b"llm-mesh/registry-x25519/v1"
_BINDING = b"llm-mesh/v1/gateway-kx"
_KEY_INFO = b"llm-mesh/v1/gateway-session-key\n"
KX_KEY_CHARS = 43  # base64url, no padding, of 32 bytes
_KX_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


def encode_kx_key(key: X25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_kx_key(text: str) -> X25519PublicKey:
    """An X25519 public key from base64url (32 bytes); ``ValueError`` otherwise."""
    if not isinstance(text, str) or not _KX_KEY.fullmatch(text):
        raise ValueError(f"an X25519 key is {KX_KEY_CHARS} base64url characters")
    raw = base64.urlsafe_b64decode(text + "=")
    return X25519PublicKey.from_public_bytes(raw)


def registry_kx_private(key: Ed25519PrivateKey) -> X25519PrivateKey:
    """The registry's X25519 key: HKDF of its Ed25519 seed (same file, same key)."""
    seed = HKDF(SHA256(), 32, salt=None, info=_SEED_INFO).derive(key.private_bytes_raw())
    return X25519PrivateKey.from_private_bytes(seed)


def kx_binding_bytes(registry_id: str, node_id: str, node_kx: str, registry_kx: str) -> bytes:
    """What the registry signs in its answer and both sides bind the key to."""
    fields = (registry_id, node_id, node_kx, registry_kx)
    if any(not f or "\n" in f for f in fields):
        raise ValueError("key agreement fields must be non-empty single lines")
    return b"\n".join((_BINDING, *(f.encode("utf-8") for f in fields)))


def sign_kx(key: Ed25519PrivateKey, binding: bytes) -> str:
    return base64.urlsafe_b64encode(key.sign(binding)).rstrip(b"=").decode("ascii")


def verify_kx(key: Ed25519PublicKey, signature: str, binding: bytes) -> bool:
    """Whether ``signature`` (base64url) is ``key``'s over ``binding``."""
    try:
        raw = base64.b64decode(signature + "=" * (-len(signature) % 4), altchars=b"-_",
                               validate=True)  # fmt: skip
        key.verify(raw, binding)
    except (binascii.Error, ValueError, TypeError, InvalidSignature):
        return False
    return True


def session_key(own: X25519PrivateKey, peer: str, binding: bytes) -> bytes:
    """The 32-byte HMAC key: HKDF-SHA256 of the X25519 shared secret, bound to ``binding``.

    ``ValueError`` for a peer key that is not one (a low-order point gives no secret)."""
    shared = own.exchange(parse_kx_key(peer))
    return HKDF(SHA256(), 32, salt=None, info=_KEY_INFO + binding).derive(shared)


class NodeKx:
    """The node's X25519 key for this process (never stored) and the key it agreed."""

    def __init__(self, private: X25519PrivateKey | None = None) -> None:
        self._private = private or X25519PrivateKey.generate()
        self.public_key = encode_kx_key(self._private.public_key())

    def agree(
        self,
        pinned: Ed25519PublicKey,
        registry_id: str,
        node_id: str,
        registry_kx: object,
        signature: object,
    ) -> bytes | None:
        """The session key from a registration answer, or ``None`` when the answer carries
        no agreement (an older registry) or one the pinned key did not sign."""
        if not isinstance(registry_kx, str) or not isinstance(signature, str):
            return None
        try:
            binding = kx_binding_bytes(registry_id, node_id, self.public_key, registry_kx)
        except ValueError:
            return None
        if not verify_kx(pinned, signature, binding):
            return None
        try:
            return session_key(self._private, registry_kx, binding)
        except ValueError:
            return None
