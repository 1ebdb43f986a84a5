"""Node identity and signed node messages: the pure rules (no I/O; the clock is passed in).

**Node id.** A node's id is derived from its Ed25519 public key, so an id cannot be
claimed by another key::

    node_id = "node-" + base32(sha256(b"llm-mesh/node-id/v1\\x00" + raw_public_key))[:26].lower()

(26 base32 characters = 130 bits of the hash; base32 without padding, lower case.)
The public key travels as base64url (no padding) of its 32 raw bytes.

**Signed bytes.** Every message a node sends the registry (registration, heartbeat,
deregistration) is signed over canonical bytes, never over a parsed object::

    b"llm-mesh/v1/" + kind + b"\\n" + signer + b"\\n" + target + b"\\n"
      + decimal(seq) + b"\\n" + decimal(ts_ms) + b"\\n" + hex(sha256(body))

``kind`` separates the message kinds (a heartbeat signature is no deregistration),
``signer`` is who signs, ``target`` the node the message acts on, ``seq`` a number
that must grow with every message (the node uses ``max(last + 1, unix µs)``, so it
also grows across restarts), ``ts_ms`` the node's wall clock (unix ms; the registry
accepts ±:data:`MAX_CLOCK_SKEW_S`), and the body's SHA-256 (the raw HTTP body;
empty for a DELETE). The values travel in the headers :data:`HDR_NODE`,
:data:`HDR_SEQ`, :data:`HDR_TIME`, :data:`HDR_SIGNATURE` (and :data:`HDR_PUBLIC_KEY`
on registration). Ed25519 comes from ``cryptography``; nothing here is hand-made crypto.

Errors are the mesh's (``LLM_Mesh.errors``): 401 for a message that does not prove
who sent it or is stale/replayed, 403 for a proven sender that may not do it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from LLM_Mesh.core.validation import ascii_digits
from LLM_Mesh.errors import BadSignature, NodeIdMismatch, StaleMessage

__all__ = [
    "DOMAIN",
    "HDR_NODE",
    "HDR_OPERATOR_TOKEN",
    "HDR_PUBLIC_KEY",
    "HDR_SEQ",
    "HDR_SIGNATURE",
    "HDR_TIME",
    "MAX_CLOCK_SKEW_S",
    "MAX_NODE_ID_CHARS",
    "MessageKind",
    "NodeSigner",
    "SignedMessage",
    "decode_public_key",
    "encode_public_key",
    "hash_secret",
    "is_node_id",
    "new_secret",
    "node_id_for",
    "parse_signed",
    "public_key_of",
    "secret_matches",
    "sha256_hex",
    "signed_bytes",
    "verify_signed",
]

DOMAIN = b"llm-mesh/v1/"
_ID_DOMAIN = b"llm-mesh/node-id/v1\x00"
_ID_CHARS = 26
_ID_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")  # base32, lower case
MAX_CLOCK_SKEW_S = 120.0
#: the longest node id (a registration's ``node_id``, a signer's header); made ids are 31
MAX_NODE_ID_CHARS = 128

HDR_NODE = "X-Mesh-Node-Id"
HDR_SEQ = "X-Mesh-Seq"
HDR_TIME = "X-Mesh-Timestamp"
HDR_SIGNATURE = "X-Mesh-Signature"
HDR_PUBLIC_KEY = "X-Mesh-Public-Key"
HDR_OPERATOR_TOKEN = "X-Mesh-Operator-Token"
# the registry's beat token (its last answer's ``beat_token``), sent back with the next
# heartbeat or goodbye: registry/beat_tokens.py, node/beat_token.py
HDR_BEAT_TOKEN = "X-Mesh-Beat-Token"

_MAX_SEQ = 2**63 - 1


class MessageKind(str, Enum):
    REGISTER = "register"
    HEARTBEAT = "heartbeat"
    DEREGISTER = "deregister"
    GATEWAY_REQUEST = "gateway-request"  # the gateway to a node: core/gateway_auth.py
    NODE_RECEIPT = "node-receipt"  # a node's receipt of an answer: core/receipt.py
    # a node's prompt count as its stream opens: core/receipt.node_prompt_bytes (money36)
    NODE_PROMPT_COUNT = "node-prompt-count"
    RECEIPT = "receipt"  # the gateway's countersigned receipt, version 1: core/receipt.py
    RECEIPT_V2 = "receipt-v2"  # ... version 2 (signs the client's id, hashed)
    RECEIPT_V3 = "receipt-v3"  # ... version 3 (and what the request was charged, in µNT)
    RECEIPT_V4 = "receipt-v4"  # ... version 4 (version 3's, each part's fee rounded up)
    HEALTH = "health"  # a node's answer to a health challenge: core/health_proof.py
    REGISTRY_IDENTITY = "registry-identity"  # the registry's answer to a client's nonce
    REVOCATION = "revocation"  # the registry's 403 revoked: core/revocation_proof.py
    TOKEN_REFUSAL = "token-refusal"  # its 401 to an unknown operator token: the same module


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.b64decode(text + pad, altchars=b"-_", validate=True)


def public_key_of(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``key``'s public half."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def encode_public_key(raw: bytes) -> str:
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _b64(raw)


def decode_public_key(text: str) -> Ed25519PublicKey:
    """The key from its base64url form; :class:`BadSignature` when it is not one."""
    try:
        raw = _unb64(text.strip())
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise BadSignature(f"{HDR_PUBLIC_KEY} is not an Ed25519 public key ({exc})") from None


def is_node_id(text: str) -> bool:
    """Whether ``text`` has the shape of :func:`node_id_for`'s ids: ``node-`` and 26 base32
    letters (lower case)."""
    body = text[5:]
    return (
        text.startswith("node-") and len(body) == _ID_CHARS and all(c in _ID_ALPHABET for c in body)
    )


def node_id_for(raw_public_key: bytes) -> str:
    """The node id that belongs to this public key (see the module docstring)."""
    if len(raw_public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(_ID_DOMAIN + raw_public_key).digest()
    return "node-" + base64.b32encode(digest).decode("ascii")[:_ID_CHARS].lower()


def signed_bytes(
    kind: MessageKind, signer: str, target: str, seq: int, ts_ms: int, body: bytes
) -> bytes:
    """The canonical bytes a node signs (fixed field order, domain-separated)."""
    for name, value in (("signer", signer), ("target", target)):
        if not value or "\n" in value:
            raise ValueError(f"{name} must be a non-empty single line")
    return b"\n".join(
        (
            DOMAIN + kind.value.encode("ascii"),
            signer.encode("utf-8"),
            target.encode("utf-8"),
            str(int(seq)).encode("ascii"),
            str(int(ts_ms)).encode("ascii"),
            hashlib.sha256(body).hexdigest().encode("ascii"),
        )
    )


class NodeSigner:
    """Signs a node's messages with its key; ``wall_clock`` is unix seconds (injectable)."""

    def __init__(self, key: Ed25519PrivateKey, wall_clock: Callable[[], float]) -> None:
        self._key = key
        self.wall_clock = wall_clock
        self.raw_public_key = public_key_of(key)
        self.public_key = encode_public_key(self.raw_public_key)
        self.node_id = node_id_for(self.raw_public_key)
        self.last_seq = 0

    def headers(self, kind: MessageKind, body: bytes, target: str | None = None) -> dict[str, str]:
        """The headers that carry a fresh signature of ``body`` (seq always grows)."""
        now = self.wall_clock()
        seq = max(self.last_seq + 1, int(now * 1_000_000))
        self.last_seq = seq
        ts_ms = int(now * 1000)
        data = signed_bytes(kind, self.node_id, target or self.node_id, seq, ts_ms, body)
        out = {
            HDR_NODE: self.node_id,
            HDR_SEQ: str(seq),
            HDR_TIME: str(ts_ms),
            HDR_SIGNATURE: _b64(self._key.sign(data)),
        }
        if kind is MessageKind.REGISTER:
            out[HDR_PUBLIC_KEY] = self.public_key
        return out


@dataclass(frozen=True)
class SignedMessage:
    """The signature headers of one request, parsed (not yet verified)."""

    signer: str
    seq: int
    ts_ms: int
    signature: bytes
    public_key: str | None = None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise BadSignature(f"unsigned node message: the {name} header is missing")
    return value.strip()


def _int_header(headers: Mapping[str, str], name: str) -> int:
    raw = _header(headers, name)
    if not ascii_digits(raw) or len(raw) > 19 or int(raw) > _MAX_SEQ:
        raise BadSignature(f"{name} must be a non-negative whole number, got {raw[:40]!r}")
    return int(raw)


def parse_signed(headers: Mapping[str, str]) -> SignedMessage:
    """The signature headers (``headers`` should be case-insensitive, as HTTP's are)."""
    signer = _header(headers, HDR_NODE)
    if len(signer) > MAX_NODE_ID_CHARS or "\n" in signer:
        raise BadSignature(f"{HDR_NODE} is not a node id")
    try:
        signature = _unb64(_header(headers, HDR_SIGNATURE))
    except (ValueError, TypeError):
        raise BadSignature(f"{HDR_SIGNATURE} is not base64url") from None
    key = headers.get(HDR_PUBLIC_KEY)
    return SignedMessage(
        signer=signer,
        seq=_int_header(headers, HDR_SEQ),
        ts_ms=_int_header(headers, HDR_TIME),
        signature=signature,
        public_key=key.strip() if key else None,
    )


def verify_signed(
    msg: SignedMessage,
    public_key: Ed25519PublicKey,
    kind: MessageKind,
    target: str,
    body: bytes,
    now_s: float,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> None:
    """Raise unless ``msg`` is ``public_key``'s signature of ``body`` for ``kind``/``target``,
    made within ``max_skew_s`` of ``now_s``, by ``target`` itself.

    The signature is checked first (401 ``invalid_signature``), then the time (401
    ``stale_message``), then that the signer acts on itself (403 ``node_id_mismatch``).
    The sequence number is the caller's (it needs the last one seen, in the store).
    """
    data = signed_bytes(kind, msg.signer, target, msg.seq, msg.ts_ms, body)
    try:
        public_key.verify(msg.signature, data)
    except InvalidSignature:
        raise BadSignature(
            f"the signature of this {kind.value} does not verify with the key of {msg.signer}"
        ) from None
    skew = msg.ts_ms / 1000.0 - now_s
    if abs(skew) > max_skew_s:
        raise StaleMessage(
            f"the {kind.value}'s timestamp is {skew:+.0f} s from the registry's clock "
            f"(at most ±{max_skew_s:.0f} s): check the node's clock"
        )
    if msg.signer != target:
        raise NodeIdMismatch(f"node {msg.signer} may not act on node {target}")


# --- secrets (operator tokens, the admin key) --------------------------------------------


def new_secret(prefix: str) -> str:
    """A fresh random secret (256 bits), e.g. ``new_secret("lmo")`` → ``"lmo_..."``."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


# an empty SHA-256 state, copied for each hash: ``hashlib.sha256(data)`` looks the digest
# up in OpenSSL's provider store on every call (OpenSSL 3 with Python 3.11), code run cold
# on the gateway's request path (an API key's hash, a forwarded body's); a copy does not
# (the same digest). Never updated itself, so it is safe to copy from any thread
_SHA256 = hashlib.sha256()


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, from a copy of one empty state."""
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


def hash_secret(secret: str) -> str:
    """What the store keeps of a secret: SHA-256, hex (secrets are random, so no salt)."""
    return sha256_hex(secret.encode("utf-8"))


def secret_matches(secret: str | None, stored_hash: str | None) -> bool:
    """Constant-time comparison of ``secret``'s hash with ``stored_hash``."""
    if not secret or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)
