"""Answers kept in the store for replay are sealed: never an output in clear in a database.

A client's request id runs once across the registry's replicas
(``registry/shared_idempotency.py``); a non-stream answer is kept in the store's
``idempotency_keys`` row for the replay window (10 min) so that another replica can replay
it. The store must never hold an output (docs/security.md, "Privacy"), so the kept body is
sealed with AES-256-GCM under a key derived by HKDF-SHA256 from the registry's Ed25519
seed (``registry.key``, which every replica holds and the database never does), a fresh
96-bit nonce per answer, and the row's key hash as associated data (a sealed body copied
into another row does not open). A replica with another ``registry.key`` cannot open it
(:meth:`AnswerSeal.open` is ``None``): that replica refuses the duplicate instead.

``cryptography``'s AES-GCM and HKDF; nothing is hand-made.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

__all__ = ["AnswerSeal"]

_INFO = b"llm-mesh/idempotency-answer/v1"
_NONCE_BYTES = 12


class AnswerSeal:
    """Seals and opens kept answers with a key derived from ``secret`` (see the module doc)."""

    __slots__ = ("_aead",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the sealing secret must be at least 32 bytes")
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(key)

    @classmethod
    def of_registry_key(cls, key: Ed25519PrivateKey) -> AnswerSeal:
        """The seal every replica holding this ``registry.key`` shares."""
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def random(cls) -> AnswerSeal:
        """A seal no other process shares (until the registry key is known)."""
        return cls(os.urandom(32))

    def seal(self, row: str, body: bytes) -> bytes:
        """``body`` sealed for the row keyed ``row``: nonce, then ciphertext and tag."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, body, row.encode("utf-8"))

    def open(self, row: str, sealed: bytes) -> bytes | None:
        """The body, or ``None`` when it was not sealed with this key for this row."""
        if len(sealed) < _NONCE_BYTES + 16:
            return None
        try:
            return self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], row.encode("utf-8")
            )
        except InvalidTag:
            return None
