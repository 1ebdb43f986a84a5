"""Signed health challenges: a node proves, by its node key, that it answered a health check.

Pure rules (no I/O; the clock and the randomness are passed in). The registry's active
health check (``registry/health.py``) sends, with ``GET {node}/mesh/health``, a fresh
challenge in four headers: :data:`HDR_REGISTRY` (the registry's id, as the gateway signs
with it: :func:`~LLM_Mesh.core.gateway_auth.registry_id_for`), :data:`HDR_NODE` (the node
id it checks), :data:`HDR_TIME` (the registry's wall clock, unix ms) and :data:`HDR_NONCE`
(base64url of :data:`NONCE_BYTES` random bytes). The node signs, with its node key::

    b"llm-mesh/v1/health\\0" registry_id node_id u64(ts_ms) nonce

(strings and the nonce are ``u16 length + bytes``, the integer big-endian, as receipts'
are; the domain separates it from every other message a node key signs:
:class:`~LLM_Mesh.core.identity.MessageKind`), and answers with :data:`HDR_KEY` (its
public key, base64url) and :data:`HDR_SIGNATURE` (base64url). The registry accepts the
answer only when the key is the checked node's (a node id is derived from its key:
:func:`~LLM_Mesh.core.identity.node_id_for`, so the key of the id is the key on record)
and the signature verifies over the challenge *it* sent: an earlier answer (another
nonce), another node's (another id, another key) or one made for another registry
(another registry id) does not verify.

The node signs only a well-formed challenge for its own id, its registry id a short
single-line token, the time within ±:data:`MAX_SKEW_S` of its clock, the nonce 16 to 64
bytes: one fixed-format, domain-separated message, so ``/mesh/health`` (public, as the
checks need) is no signing oracle for anything else, and its cost is bounded (one
Ed25519 signature, headers of at most a few hundred bytes).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from LLM_Mesh.core.b64url import decode, encode, length_prefixed
from LLM_Mesh.core.identity import DOMAIN, MessageKind, encode_public_key, node_id_for
from LLM_Mesh.core.identity import public_key_of as _public_key_of
from LLM_Mesh.core.validation import ascii_digits

__all__ = [
    "HDR_KEY",
    "HDR_NODE",
    "HDR_NONCE",
    "HDR_REGISTRY",
    "HDR_SIGNATURE",
    "HDR_TIME",
    "HEALTH_DOMAIN",
    "MAX_NONCE_BYTES",
    "MAX_SKEW_S",
    "MIN_NONCE_BYTES",
    "NONCE_BYTES",
    "Challenge",
    "HealthProver",
    "check_proof",
    "health_bytes",
    "new_challenge",
    "parse_challenge",
]

HDR_REGISTRY = "X-Mesh-Health-Registry"
HDR_NODE = "X-Mesh-Health-Node"
HDR_TIME = "X-Mesh-Health-Time"
HDR_NONCE = "X-Mesh-Health-Nonce"
HDR_KEY = "X-Mesh-Health-Key"
HDR_SIGNATURE = "X-Mesh-Health-Signature"

HEALTH_DOMAIN = DOMAIN + MessageKind.HEALTH.value.encode("ascii") + b"\x00"
NONCE_BYTES = 32
MIN_NONCE_BYTES = 16
MAX_NONCE_BYTES = 64
MAX_SKEW_S = 120.0
MAX_ID_CHARS = 128
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # registry and node ids: one short token
_MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Challenge:
    """One health challenge: who asks, whom, when (unix ms) and the random nonce."""

    registry_id: str
    node_id: str
    ts_ms: int
    nonce: bytes

    def headers(self) -> dict[str, str]:
        """The request headers that carry it."""
        return {
            HDR_REGISTRY: self.registry_id,
            HDR_NODE: self.node_id,
            HDR_TIME: str(self.ts_ms),
            HDR_NONCE: encode(self.nonce),
        }


def health_bytes(ch: Challenge) -> bytes:
    """The canonical bytes a node signs for ``ch`` (see the module docstring)."""
    for value in (ch.registry_id, ch.node_id):
        if not _TOKEN.fullmatch(value):
            raise ValueError("a health challenge's ids are short single tokens")
    if not 0 <= ch.ts_ms <= _MAX_INT:
        raise ValueError("a health challenge's time is a whole number in [0, 2^63)")
    if not MIN_NONCE_BYTES <= len(ch.nonce) <= MAX_NONCE_BYTES:
        raise ValueError(f"a nonce is {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} bytes")
    return b"".join((
        HEALTH_DOMAIN, length_prefixed(ch.registry_id.encode("ascii")),
        length_prefixed(ch.node_id.encode("ascii")), struct.pack(">Q", ch.ts_ms),
        length_prefixed(ch.nonce),
    ))  # fmt: skip


def new_challenge(
    registry_id: str, node_id: str, now_s: float, random_bytes: Callable[[int], bytes]
) -> Challenge:
    """A fresh challenge of ``node_id`` (``random_bytes``: ``secrets.token_bytes``)."""
    return Challenge(registry_id, node_id, int(now_s * 1000), random_bytes(NONCE_BYTES))


def parse_challenge(headers: Mapping[str, str]) -> Challenge | None:
    """The challenge in a health request's headers, or ``None`` when there is none or it
    is not well-formed (ids, time, nonce within their bounds)."""
    reg, node = headers.get(HDR_REGISTRY), headers.get(HDR_NODE)
    ts, nonce_text = headers.get(HDR_TIME), headers.get(HDR_NONCE)
    if reg is None or node is None or ts is None or nonce_text is None:
        return None
    if not (_TOKEN.fullmatch(reg) and _TOKEN.fullmatch(node)):
        return None
    if not ascii_digits(ts) or len(ts) > 19 or int(ts) > _MAX_INT:
        return None
    nonce = decode(nonce_text)
    if nonce is None or not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
        return None
    return Challenge(reg, node, int(ts), nonce)


class HealthProver:
    """The node's side: the proof headers for a challenge of its own id, made within
    ±``max_skew_s`` of its clock; nothing for any other (the answer then proves nothing,
    and the registry fails the check)."""

    def __init__(self, key: Ed25519PrivateKey, max_skew_s: float = MAX_SKEW_S) -> None:
        self._key = key
        raw = _public_key_of(key)
        self.node_id = node_id_for(raw)
        self.public_key = encode_public_key(raw)
        self.max_skew_s = max_skew_s

    def answer(self, headers: Mapping[str, str], now_s: float) -> dict[str, str]:
        ch = parse_challenge(headers)
        if ch is None or ch.node_id != self.node_id:
            return {}
        if abs(ch.ts_ms / 1000.0 - now_s) > self.max_skew_s:
            return {}
        signature = self._key.sign(health_bytes(ch))
        return {HDR_KEY: self.public_key, HDR_SIGNATURE: encode(signature)}


def check_proof(ch: Challenge, headers: Mapping[str, str]) -> str | None:
    """Why a health answer (its ``headers``, case-insensitive) does not prove that ``ch``'s
    node answered ``ch``; ``None`` when it does."""
    key_text, sig_text = headers.get(HDR_KEY), headers.get(HDR_SIGNATURE)
    if not key_text or not sig_text:
        return (
            "no signed health proof (node software older than the signed health check: "
            "upgrade the node; or a server that does not hold the node's key)"
        )
    raw = decode(key_text.strip())
    if raw is None or len(raw) != 32:
        return "its health proof's key is not an Ed25519 public key"
    if node_id_for(raw) != ch.node_id:
        return "its health proof is signed by another node's key"
    signature = decode(sig_text.strip())
    if signature is None or len(signature) != 64:
        return "its health proof's signature is not an Ed25519 signature"
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, health_bytes(ch))
    except (InvalidSignature, ValueError):
        return "its health proof does not verify for this challenge"
    return None
