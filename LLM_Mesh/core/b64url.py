"""base64url without padding (RFC 4648 §5) and 2-byte length prefixes: the encodings the
signed messages of ``core/health_proof.py`` and ``core/registry_identity.py`` share."""

from __future__ import annotations

import base64
import binascii
import re
import struct

__all__ = ["decode", "ed25519_key", "ed25519_key_problem", "encode", "length_prefixed"]

_B64 = re.compile(r"[A-Za-z0-9_-]{1,200}")  # a key, a nonce or a signature: short
# 32 bytes: 43 characters and one "=" of padding (optional here), in one alphabet or the other
_KEY = re.compile(r"[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?")
_EITHER = re.compile(r"[A-Za-z0-9+/_-]*")
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
# the mesh's credentials by their prefix (core/identity.py makes them): what each is, where
# the commands take it
_CREDENTIALS = {
    "lmk_": ("an API key", "the commands take yours as LLM_MESH_API_KEY (ask, balance: --api-key)"),
    "lmo_": ("an operator token", "the commands take it as LLM_MESH_OPERATOR_TOKEN"),
    "lma_": ("the registry's admin key", "the commands take it as LLM_MESH_ADMIN_KEY"),
}


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


def ed25519_key_problem(text: str) -> str | None:
    """Why ``text`` is not a key :func:`ed25519_key` takes, in one line (``None`` when it
    is one): the one message every key option prints (``ledger verify --key``, ``ledger
    witness --log-key``, a node's ``registry_public_key``, ``receipt verify``'s keys),
    quoting at most 60 characters of it."""
    t = text.strip()
    if ed25519_key(t) is not None:
        return None
    for prefix, (what, where) in _CREDENTIALS.items():
        if t.startswith(prefix):  # a secret: named, never quoted (found 2026-12-06, newuser34:
            return (  # `ledger statement --key lmk_...` printed the user's API key back)
                f"(not shown: a secret) is {what}, not the registry's public key (32 bytes "
                f"in base64 or base64url); {where}"
            )
    body = t.rstrip("=")
    if not t:
        why = "it is empty"
    elif t.startswith("-----BEGIN"):
        why = "a PEM block is not taken: give the key's 32 raw bytes in base64 or base64url"
    elif _HEX_KEY.fullmatch(t):
        why = "hex is not taken: give the same 32 bytes in base64 or base64url"
    elif not _EITHER.fullmatch(body) or "=" in body:
        why = "it has characters that are neither base64 nor base64url (a space, a quote?)"
    elif len(body) != 43:
        why = f"{len(body)} characters, a key is 43 (and at most one '=')"
    elif not _KEY.fullmatch(body):
        why = "it mixes the two alphabets ('+' or '/' with '-' or '_')"
    else:
        why = "at most one '=' follows the 43 characters"
    return f"{t[:60]!r} is not an Ed25519 public key (32 bytes in base64 or base64url): {why}"


def length_prefixed(data: bytes) -> bytes:
    """``data`` after its length as 2 bytes, big-endian (at most 65,535 bytes)."""
    return struct.pack(">H", len(data)) + data
