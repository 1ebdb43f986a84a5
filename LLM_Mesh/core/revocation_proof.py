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

**A rotated registry key** (found 2026-12-05): a node pinned the key before the registry's
``registry.key`` was rotated, and the registry's real revocation is signed by the new key;
the node ignored it and heartbeated on forever (it learns a new key only from a registration
answer, which a revoked node never gets). The registry's signed 403 carries the chain of
rotation statements its registration answers carry (:meth:`RevocationSigner.fields`: the
error's ``key_rotations`` and ``key_rotation``, ``core/key_chain.py``), and a node whose pin
follows rotations (``follow_rotations``: a key learned by trust on first use, which
``node/gateway_guard.py`` moves along the same chain) honours a revocation signed by another
key only when :func:`~LLM_Mesh.core.key_chain.rotation_path` leads there from its pin,
each key signing the next. A broken, forged or foreign chain is refused with its reason,
as before. node.toml's ``registry_public_key`` is the operator's pin, never moved by an
answer: only that key's revocation counts (the refusal names the rotation the answer
claims). The node does not move its pin on a revocation: it stops talking to that registry,
and a later registration answer (its re-check) moves it by ``gateway_guard``'s rules.

**A refused operator token** (found 2026-12-05, signed401): a registration's 401
``invalid_credential`` for an operator token the registry does not know (or none) stops
the node for good (exit 78, ``core/revoked_notice.py``), so it is signed the same way, over
the same fields, in its own domain ``b"llm-mesh/v1/token-refusal\\0"`` (``token=True``: the
error's ``token_refusal`` field): a revocation never verifies as a token refusal nor the
other way round, and no other message the registry key signs starts with either domain
(each is ``llm-mesh/v1/`` + a :class:`~LLM_Mesh.core.identity.MessageKind` + NUL; a
checkpoint holds no NUL, ``core/checkpoint.py``). ``token_sha256`` binds the token the
node sent: a relay that swaps in an unknown token gets a refusal the node does not honour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.b64url import encode, length_prefixed
from LLM_Mesh.core.identity import (
    DOMAIN,
    HDR_OPERATOR_TOKEN,
    MessageKind,
    encode_public_key,
    hash_secret,
    parse_signed,
    public_key_of,
)
from LLM_Mesh.core.key_chain import rotation_path
from LLM_Mesh.core.signature_check import Unverified, public_key_from, signature_problem
from LLM_Mesh.errors import MeshError

__all__ = [
    "REVOCATION_DOMAIN",
    "TOKEN_REFUSAL_DOMAIN",
    "RevocationSigner",
    "RevokedRequest",
    "TrustedKey",
    "check_revocation",
    "revocation_bytes",
    "revoked_request",
]

REVOCATION_DOMAIN = DOMAIN + MessageKind.REVOCATION.value.encode("ascii") + b"\x00"
TOKEN_REFUSAL_DOMAIN = DOMAIN + MessageKind.TOKEN_REFUSAL.value.encode("ascii") + b"\x00"
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


@dataclass(frozen=True)
class TrustedKey:
    """The registry key a node checks a revocation with: ``public_key`` (base64url), and
    whether signed rotations from it lead on (``follows_rotations``: a key learned by trust
    on first use, as ``node/gateway_guard.py`` moves it; not node.toml's
    ``registry_public_key``, the operator's pin)."""

    public_key: str
    follows_rotations: bool = False


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


def _field(token: bool) -> str:
    """The error's field that carries the signature: a token refusal's or a revocation's."""
    return "token_refusal" if token else "revocation"


def revocation_bytes(request: RevokedRequest, message: str, *, token: bool = False) -> bytes:
    """The canonical bytes the registry signs for refusing ``request`` as revoked (``token``:
    for its operator token, unknown: :data:`TOKEN_REFUSAL_DOMAIN`)."""
    said = message.encode("utf-8")
    if len(said) > _MAX_MESSAGE_BYTES:
        raise ValueError(f"a revocation's message is at most {_MAX_MESSAGE_BYTES} bytes")
    domain = TOKEN_REFUSAL_DOMAIN if token else REVOCATION_DOMAIN
    return domain + b"".join(
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
    """The registry's side: signs its revocation answers with its registry key;
    ``rotations``: the chain of rotation statements ending at that key, oldest first, that
    its registration answers carry (``registry/key_history.py``), empty without one."""

    def __init__(self, key: Ed25519PrivateKey, rotations: Sequence[Mapping[str, str]] = ()) -> None:
        self._key = key
        self.public_key = encode_public_key(public_key_of(key))
        self.rotations = tuple(dict(link) for link in rotations)

    def proof(
        self, request: RevokedRequest, message: str, *, token: bool = False
    ) -> dict[str, str]:
        """The error's ``revocation`` field for refusing ``request`` with ``message``
        (``token``: its ``token_refusal`` field, for an unknown operator token)."""
        signature = self._key.sign(revocation_bytes(request, message, token=token))
        return {"public_key": self.public_key, "signature": encode(signature)}

    def fields(
        self, request: RevokedRequest, message: str, *, token: bool = False
    ) -> dict[str, Any]:
        """The error's fields for refusing ``request`` with ``message``: ``revocation``
        (``token``: ``token_refusal``) and, after a rotation, ``key_rotations`` and
        ``key_rotation`` (its last link), as a registration answer carries them: a node
        that pinned an earlier key follows."""
        fields: dict[str, Any] = {_field(token): self.proof(request, message, token=token)}
        if self.rotations:
            fields["key_rotations"] = [dict(link) for link in self.rotations]
            fields["key_rotation"] = dict(self.rotations[-1])
        return fields


_ANOTHER_KEY = "it is signed by another key than the registry's this node trusts"


def _unvouched(error: Mapping[str, Any], pinned: str, signer: object, follow: bool) -> str | None:
    """Why ``signer`` (another key than ``pinned``) does not speak for the registry whose
    key the node pinned; ``None`` when ``error``'s signed rotations lead to it from there."""
    if not follow:
        if error.get("key_rotations") is None and error.get("key_rotation") is None:
            return _ANOTHER_KEY
        return (
            f"{_ANOTHER_KEY}; the answer names a rotation to it, but that key is the "
            "operator's pin (registry_public_key in node.toml), never moved by an answer: "
            "set the registry's new key there"
        )
    if not isinstance(signer, str):
        return _ANOTHER_KEY
    path, why = rotation_path(error, pinned, signer)
    if not path:
        return f"{_ANOTHER_KEY}, and no signed rotation leads to it from that key: {why}"
    return None


def check_revocation(
    public_key: str,
    request: RevokedRequest,
    answer: Any,
    *,
    follow_rotations: bool = False,
    token: bool = False,
) -> str | None:
    """Why ``answer`` (a 403's JSON) is not the holder of ``public_key`` (base64url: the
    registry key the node trusts) refusing ``request`` as revoked; ``None`` when it is.
    With ``follow_rotations`` a signature by another key counts when the answer's signed
    rotations lead to that key from ``public_key`` (the module's docstring). ``token``: a
    401's JSON refusing ``request``'s operator token, in its own domain."""
    error = answer.get("error") if isinstance(answer, Mapping) else None
    if not isinstance(error, Mapping):
        return "it carries no signature"
    proof, message = error.get(_field(token)), error.get("message")
    if not isinstance(proof, Mapping) or not isinstance(message, str):
        return "it carries no signature"
    if public_key_from(public_key) is None:
        return "the registry key this node trusts is not an Ed25519 public key"
    signer = proof.get("public_key")
    if signer != public_key:
        why = _unvouched(error, public_key, signer, follow_rotations)
        if why is not None:
            return why
    problem = signature_problem(
        signer, proof.get("signature"), lambda: revocation_bytes(request, message, token=token)
    )
    if problem is Unverified.KEY:  # another key the rotations named
        return "the key it is signed by is not an Ed25519 public key"
    if problem is Unverified.SIGNATURE:
        return "its signature is not an Ed25519 signature"
    if problem is Unverified.MISMATCH:
        return "its signature does not verify for this node's request (replayed, or another's)"
    return None
