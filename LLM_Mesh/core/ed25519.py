"""Ed25519 on the receipt path, by libsodium (PyNaCl): one verify rule for every side.

Pure (no I/O). The receipt's signatures — a node's of its answer
(:class:`~LLM_Mesh.core.receipt.NodeReceiptSigner`), the gateway's check of it
(:func:`~LLM_Mesh.core.receipt_check.check_part`), the gateway's countersignature
(:class:`~LLM_Mesh.core.receipt.ReceiptSigner`) and the offline check of both
(``llm-mesh receipt verify``, :mod:`~LLM_Mesh.core.receipt_verify`) — go through this
module only, so the gateway and any verifier accept exactly the same signatures. Nothing
here is hand-made crypto: libsodium signs and verifies, ``cryptography`` keeps loading and
storing keys as elsewhere; a key is converted once, when its object is made (callers cache
the objects: :class:`~LLM_Mesh.core.receipt_check.NodeKeys`, the signers).

**The rule** (docs/security.md, "Receipts"): a signature verifies when

- the public key is the canonical encoding of a point of the prime-order subgroup
  (libsodium's ``crypto_core_ed25519_is_valid_point``: no small-order point, no mixed-order
  point, no ``y ≥ p``) — checked when a :class:`PublicKey` is made, and at registration
  (``registry/node_auth.py``), so no registered node has a key this refuses;
- and libsodium's ``crypto_sign_open`` accepts it: ``S`` canonical (``S < L``), ``R`` not of
  small order, ``[S]B − [k]A`` encodes to ``R``'s bytes (cofactorless, as OpenSSL's).

OpenSSL (``cryptography``) accepts a small-order key or ``R`` where the equation holds (a
small-order key lets anyone "sign" anything as it); this rule refuses both. Signing is
deterministic (RFC 8032): libsodium and ``cryptography`` give the same bytes for one key
and message, so honest signatures made by either verify under the rule.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import BadSignatureError

__all__ = ["SIGNATURE_BYTES", "PublicKey", "Signer", "key_problem"]

SIGNATURE_BYTES = 64
_KEY_BYTES = 32


def key_problem(raw: bytes) -> str | None:
    """Why ``raw`` is no public key the rule takes (``None`` when it is one)."""
    if len(raw) != _KEY_BYTES:
        return f"an Ed25519 public key is {_KEY_BYTES} bytes, not {len(raw)}"
    if not crypto_core_ed25519_is_valid_point(raw):
        return (
            "not the canonical encoding of a point of Ed25519's prime-order subgroup "
            "(a small-order or mixed-order point, or y ≥ p): no key made by Ed25519 key "
            "generation is one"
        )
    return None


class PublicKey:
    """A public key the rule takes (``ValueError`` naming why otherwise); ``raw``: its bytes."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        problem = key_problem(raw)
        if problem is not None:
            raise ValueError(problem)
        self.raw = bytes(raw)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's of ``data`` under the rule."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            crypto_sign_open(signature + data, self.raw)
        except BadSignatureError:
            return False
        return True


class Signer:
    """Signs with ``key`` (a ``cryptography`` key, converted once); ``public_key``: raw bytes."""

    __slots__ = ("_secret", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        public, self._secret = crypto_sign_seed_keypair(key.private_bytes_raw())
        if public != key.public_key().public_bytes_raw():  # the same key, or no signer
            raise ValueError("libsodium derived another public key from this seed")
        self.public_key = public

    def sign(self, data: bytes) -> bytes:
        """The 64-byte signature of ``data`` (the same bytes ``key.sign(data)`` gives)."""
        return crypto_sign(data, self._secret)[:SIGNATURE_BYTES]
