"""A registry's 403 ``revoked``, signed with its registry key: the node honours only that.

Why (found 2026-12-05): a node that heard 403 ``revoked`` stopped heartbeating to that
registry and asked again only after 1, 2, 4, 8, 15 ... min (``core/revoked_notice.py``),
on the status and error code alone. Anything that answers at the registry's URL (a man in
the middle on plain http, a load balancer's error page, a hijacked DNS name) could forge
that answer once and silence the node for minutes after it stopped. Now the registry
signs each revocation answer to a node's message, with the key the node pins
(``registry_public_key``, or learned at registration: ``node/gateway_guard.py``), over::

    b"llm-mesh/v1/revocation\\0" node_id kind seq ts_ms token_sha256 message

(each ``u16 length + bytes``; the domain separates it from everything else the registry
key signs: :class:`~LLM_Mesh.core.identity.MessageKind`). ``node_id``, ``kind`` (the
node's message: ``register``, ``heartbeat``, ``deregister``), ``seq`` and ``ts_ms`` are
those of the node's own signed request (``core/identity.py``: its sequence number grows
with every message, so it is the request's nonce); ``token_sha256`` is the SHA-256 (hex)
of the operator token a registration carried (empty for other messages: the node's
signature does not cover that header, so a relay holding a revoked operator's token could
otherwise swap it in and have the registry sign "operator ... is revoked" for this node's
request); ``message`` is the error's own words (``operator NAME is revoked`` or ``node ID
is revoked``: the node's advice depends on it). The answer carries it as the error's
``revocation`` field: ``{"public_key", "signature"}`` (:meth:`RevocationSigner.proof`).

A node honours the 403 when :func:`check_revocation` finds the signature good with the key
it trusts: a forged answer (no signature, another key), the registry's earlier answer
replayed (another sequence number), or another node's (another node id) does not verify,
and is an ordinary refusal (``node/agent.py``). The registry signs only its own refusal of
a message whose signature it verified first: no signing oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from LLM_Mesh.core.b64url import decode, encode, length_prefixed
from LLM_Mesh.core.identity import (
    DOMAIN,
    HDR_OPERATOR_TOKEN,
    MessageKind,
    encode_public_key,
    hash_secret,
    parse_signed,
    public_key_of,
)
from LLM_Mesh.errors import MeshError

__all__ = [
    "REVOCATION_DOMAIN",
    "RevocationSigner",
    "RevokedRequest",
    "check_revocation",
    "revocation_bytes",
    "revoked_request",
]

REVOCATION_DOMAIN = DOMAIN + MessageKind.REVOCATION.value.encode("ascii") + b"\x00"
_MAX_MESSAGE_BYTES = 4096  # the registry's words, a line: well under a u16 length


@dataclass(frozen=True)
class RevokedRequest:
    """The node's message the registry refused: who, which kind, its sequence number and
    time (its signed headers), and the SHA-256 of a registration's operator token."""

    node_id: str
    kind: MessageKind
    seq: int
    ts_ms: int
    token_sha256: str = ""


def revoked_request(kind: MessageKind, headers: Mapping[str, str]) -> RevokedRequest | None:
    """The request of ``kind`` sent (or received) with ``headers`` (a node's signed headers,
    a registration's operator token among them); ``None`` when they carry no node's
    signature."""
    try:
        signed = parse_signed(headers)
    except MeshError:
        return None
    token = (headers.get(HDR_OPERATOR_TOKEN) or "").strip()
    digest = hash_secret(token) if kind is MessageKind.REGISTER and token else ""
    return RevokedRequest(signed.signer, kind, signed.seq, signed.ts_ms, digest)


def revocation_bytes(request: RevokedRequest, message: str) -> bytes:
    """The canonical bytes the registry signs for refusing ``request`` as revoked."""
    said = message.encode("utf-8")
    if len(said) > _MAX_MESSAGE_BYTES:
        raise ValueError(f"a revocation's message is at most {_MAX_MESSAGE_BYTES} bytes")
    return REVOCATION_DOMAIN + b"".join(
        length_prefixed(part)
        for part in (
            request.node_id.encode("utf-8"),
            request.kind.value.encode("ascii"),
            str(int(request.seq)).encode("ascii"),
            str(int(request.ts_ms)).encode("ascii"),
            request.token_sha256.encode("ascii"),
            said,
        )
    )


class RevocationSigner:
    """The registry's side: signs its revocation answers with its registry key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = encode_public_key(public_key_of(key))

    def proof(self, request: RevokedRequest, message: str) -> dict[str, str]:
        """The error's ``revocation`` field for refusing ``request`` with ``message``."""
        signature = self._key.sign(revocation_bytes(request, message))
        return {"public_key": self.public_key, "signature": encode(signature)}


def check_revocation(public_key: str, request: RevokedRequest, answer: Any) -> str | None:
    """Why ``answer`` (a 403's JSON) is not the holder of ``public_key`` (base64url: the
    registry key the node trusts) refusing ``request`` as revoked; ``None`` when it is."""
    error = answer.get("error") if isinstance(answer, Mapping) else None
    proof = error.get("revocation") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    if not isinstance(proof, Mapping) or not isinstance(message, str):
        return "it carries no signature"
    expected = decode(public_key)
    if expected is None or len(expected) != 32:
        return "the registry key this node trusts is not an Ed25519 public key"
    if proof.get("public_key") != public_key:
        return "it is signed by another key than the registry's this node trusts"
    signature = decode(proof.get("signature"))
    if signature is None or len(signature) != 64:
        return "its signature is not an Ed25519 signature"
    try:
        Ed25519PublicKey.from_public_bytes(expected).verify(
            signature, revocation_bytes(request, message)
        )
    except (InvalidSignature, ValueError):
        return "its signature does not verify for this node's request (replayed, or another's)"
    return None
