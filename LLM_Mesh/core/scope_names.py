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

__all__ = ["ScopeNames"]

_INFO = b"llm-mesh/rate-limit-scope/v1"


class ScopeNames:
    """Names scopes by a keyed hash of them (see the module docstring)."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the naming secret must be at least 32 bytes")
        self._key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(secret)

    @classmethod
    def of_registry_key(cls, key: Ed25519PrivateKey) -> ScopeNames:
        """The names every replica holding this ``registry.key`` shares."""
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def random(cls) -> ScopeNames:
        """Names no other process shares (until the registry key is known)."""
        return cls(os.urandom(32))

    def name(self, scope: str) -> str:
        """``scope``'s name: 32 hex digits (128 bits) of its HMAC."""
        return hmac.new(self._key, scope.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
