"""base64url without padding (RFC 4648 §5) and 2-byte length prefixes: the encodings the
signed messages of ``core/health_proof.py`` and ``core/registry_identity.py`` share."""

from __future__ import annotations

import base64
import binascii
import re
import struct

__all__ = ["decode", "ed25519_key", "encode", "length_prefixed"]

_B64 = re.compile(r"[A-Za-z0-9_-]{1,200}")  # a key, a nonce or a signature: short
# 32 bytes: 43 characters and one "=" of padding (optional here), in one alphabet or the other
_KEY = re.compile(r"[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?")


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: object) -> bytes | None:
    """The bytes of a base64url text (no padding, at most 200 characters), or ``None``
    when it is not one."""
    if not isinstance(text, str) or not _B64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def ed25519_key(text: str) -> bytes | None:
    """The 32 raw bytes of an Ed25519 public key written in base64url (what ``/mesh/...``
    endpoints, the logs and the docs print) or in standard base64 (``GET /v1/ledger/keys``),
    padded or not, surrounding whitespace ignored; ``None`` when it is neither."""
    t = text.strip()
    if not _KEY.fullmatch(t):
        return None
    std = t.rstrip("=").replace("-", "+").replace("_", "/") + "="
    try:
        return base64.b64decode(std, validate=True)  # 43 characters + "=": 32 bytes
    except (binascii.Error, ValueError):
        return None


def length_prefixed(data: bytes) -> bytes:
    """``data`` after its length as 2 bytes, big-endian (at most 65,535 bytes)."""
    return struct.pack(">H", len(data)) + data
