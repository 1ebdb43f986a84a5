"""The written forms of an Ed25519 public key, taken or refused: one table for every
reader of a key (``core/b64url.ed25519_key`` and ``ed25519_key_problem``; its callers
``receipt verify``'s keys, ``ledger verify --key``, ``ledger witness --log-key``, a node's
``registry_public_key``). Each row: an id, the text, the raw key it is (``None``: refused),
and words the refusal says."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

RAW = bytes([0xFB, 0xFF] * 16)  # base64 with '+' and '/', base64url with '-' and '_'
STD = base64.b64encode(RAW).decode()  # 43 characters and one '='
URL = base64.urlsafe_b64encode(RAW).decode()
PEM = (
    Ed25519PublicKey.from_public_bytes(RAW)
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

KEY_FORMS: list[tuple[str, str, bytes | None, str]] = [
    ("base64", STD, RAW, ""),
    ("base64_unpadded", STD.rstrip("="), RAW, ""),
    ("base64url", URL.rstrip("="), RAW, ""),
    ("base64url_padded", URL, RAW, ""),
    ("surrounding_whitespace", f" \t{URL.rstrip('=')}\n", RAW, ""),
    ("empty", "", None, "it is empty"),
    ("blank", "  \n", None, "it is empty"),
    ("short", URL[:41], None, "41 characters, a key is 43"),
    ("33_bytes", base64.urlsafe_b64encode(RAW + b"!").decode(), None, "44 characters"),
    ("64_bytes", base64.b64encode(RAW * 2).decode(), None, "86 characters"),
    ("padded_twice", STD + "=", None, "at most one '='"),
    ("mixed_alphabets", STD.replace("/", "_", 1), None, "mixes the two alphabets"),
    ("inner_space", STD[:20] + " " + STD[20:], None, "neither base64 nor base64url"),
    ("inner_padding", STD[:20] + "=" + STD[21:], None, "neither base64 nor base64url"),
    ("quoted", f'"{STD}"', None, "neither base64 nor base64url"),
    ("bang", "A!" * 40, None, "neither base64 nor base64url"),
    ("non_ascii", "é" * 43, None, "neither base64 nor base64url"),
    ("hex", RAW.hex(), None, "hex is not taken"),
    ("hex_0x", "0x" + RAW.hex(), None, "hex is not taken"),
    ("pem", PEM, None, "a PEM block is not taken"),
]
REFUSED = [(i, text, why) for i, text, raw, why in KEY_FORMS if raw is None]
