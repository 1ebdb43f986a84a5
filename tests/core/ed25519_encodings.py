"""Ed25519 encodings the receipt rule refuses (core/ed25519.py), made for the tests.

Built from libsodium's point operations and RFC 8032's equations on Python integers: test
inputs only (the package itself does no curve arithmetic). Each is something OpenSSL's
verify (``cryptography``) lets through where this rule does not, or a control both refuse.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_core_ed25519_add, crypto_scalarmult_ed25519_base_noclamp

__all__ = [
    "IDENTITY",
    "SMALL_ORDER_KEYS",
    "L",
    "anything_signature",
    "mixed_order_key",
    "non_canonical_s",
    "small_order_r_signature",
]

L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
P = 2**255 - 19


def _le(n: int) -> bytes:
    return n.to_bytes(32, "little")


IDENTITY = _le(1)  # (0, 1): the neutral point, order 1
SMALL_ORDER_KEYS: dict[str, bytes] = {
    "identity": IDENTITY,
    "order_2": _le(P - 1),  # (0, -1)
    "order_4": _le(0),  # (±sqrt(-1), 0)
    "identity_y_plus_p": _le(P + 1),  # the neutral point, encoded with y ≥ p
}


def anything_signature(r: int = 12345) -> bytes:
    """A "signature" of every message under the :data:`IDENTITY` key: ``R = [r]B, S = r``
    (``[S]B = R + [k]·0`` holds for any ``k``)."""
    return crypto_scalarmult_ed25519_base_noclamp(_le(r)) + _le(r)


def small_order_r_signature(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """``key``'s signature of ``data`` with ``R`` the neutral point: ``S = k·a mod L``, which
    satisfies the cofactorless equation ``[S]B = R + [k]A``."""
    h = bytearray(hashlib.sha512(key.private_bytes_raw()).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    a = int.from_bytes(h, "little")
    public = key.public_key().public_bytes_raw()
    k = int.from_bytes(hashlib.sha512(IDENTITY + public + data).digest(), "little") % L
    return IDENTITY + _le(k * a % L)


def non_canonical_s(signature: bytes) -> bytes:
    """The same signature with ``S + L`` for ``S`` (the same value mod ``L``)."""
    return signature[:32] + _le(int.from_bytes(signature[32:], "little") + L)


def mixed_order_key(key: Ed25519PrivateKey) -> bytes:
    """``key``'s public point plus a point of order 2: on the curve, not in the subgroup."""
    return crypto_core_ed25519_add(key.public_key().public_bytes_raw(), SMALL_ORDER_KEYS["order_2"])
