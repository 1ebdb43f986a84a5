"""The names rate-limit buckets are kept under outside the process: never a client's address.

A client's limits are kept per scope (``ip:<address>`` for an anonymous client,
``key:<id>`` for a keyed one: ``core/ratelimit.py``). Replicas that share a Redis keep
each scope's buckets in one hash there (``registry/redis_limits.py``); its name must be the
same in every replica, and must not be the address: Redis (its memory, its RDB/AOF files,
its ``MONITOR``) is no place for anonymous clients' addresses (docs/security.md,
"Privacy"). So a scope's name is HMAC-SHA256 of it under a key derived by HKDF-SHA256 from
the registry's Ed25519 seed (``registry.key``, which every replica holds and Redis never
does). Without that key an IPv4 address cannot be found from its name by trying all 2^32;
with it (the registry's disk) it can.

The same keyed hash, under a key of its own (another HKDF ``info``: :data:`IDEMPOTENCY_KEYS`),
names the rows of client request ids replicas share in the store (``idempotency_keys.key_hash``,
``registry/shared_idempotency.py``): an anonymous client's row is named from its address, its
id and its prompt's digest, which an unkeyed SHA-256 let whoever reads the table confirm for a
guess (found 2026-12-05).

``cryptography``'s HKDF and the standard library's HMAC; nothing is hand-made.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

__all__ = ["IDEMPOTENCY_KEYS", "RATE_LIMIT_SCOPES", "ScopeNames"]

RATE_LIMIT_SCOPES = b"llm-mesh/rate-limit-scope/v1"
IDEMPOTENCY_KEYS = b"llm-mesh/idempotency-key/v1"


class ScopeNames:
    """Names scopes by a keyed hash of them (see the module docstring)."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes, info: bytes = RATE_LIMIT_SCOPES) -> None:
        if len(secret) < 32:
            raise ValueError("the naming secret must be at least 32 bytes")
        self._key = HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(secret)

    @classmethod
    def of_registry_key(cls, key: Ed25519PrivateKey, info: bytes = RATE_LIMIT_SCOPES) -> ScopeNames:
        """The names every replica holding this ``registry.key`` shares (for ``info``'s use)."""
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()), info)

    @classmethod
    def random(cls, info: bytes = RATE_LIMIT_SCOPES) -> ScopeNames:
        """Names no other process shares (until the registry key is known)."""
        return cls(os.urandom(32), info)

    def name(self, scope: str) -> str:
        """``scope``'s name: 32 hex digits (128 bits) of its HMAC."""
        return self.digest(scope)[:32]

    def digest(self, text: str) -> str:
        """``text``'s whole HMAC-SHA256: 64 hex digits."""
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()
