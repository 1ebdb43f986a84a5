"""A registry proves it holds its key: its signature of a client's fresh nonce. Pure rules.

Why (found 2026-12-03): ``$LLM_MESH_HOME/admin.key`` went to any program listening on a
URL its registry had recorded (``admin.key.registry``), so while the mesh was down any
local program could bind ``127.0.0.1:8800`` and receive the key from the next admin call.
Now the registry records its public key there too (``key=<base64url>``:
:func:`~LLM_Mesh.core.admin_key_scope.recorded_key`), and before a client sends the file's
key to a URL it asks that URL (``GET /mesh/identity?origin=&nonce=``, public) to sign::

    b"llm-mesh/v1/registry-identity\\0" origin nonce

(each ``u16 length + bytes``; the domain separates it from everything else the registry
key signs: :class:`~LLM_Mesh.core.identity.MessageKind`). ``origin`` is the URL the client
called (:func:`~LLM_Mesh.core.admin_key_scope.registry_origin`), ``nonce``
:data:`NONCE_BYTES` random bytes made for this one question. The client sends the key
only when the answer verifies with the recorded public key over *its* origin and *its*
nonce (:func:`check_answer`): an old answer (another nonce), another registry's (another
key) or an answer the real registry gave for another of its URLs (relayed by a program
on a recorded URL the registry does not listen on) does not verify. The registry signs
only for the origins it serves at (:class:`IdentityProver`, ``origins``), so a relay
cannot ask it to sign for the URL the relay listens on.

The registry signs one fixed-format, domain-separated message (one Ed25519 signature, a
query of at most a few hundred bytes): the endpoint is no signing oracle for anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.admin_key_scope import registry_origin
from LLM_Mesh.core.b64url import decode, encode, length_prefixed
from LLM_Mesh.core.identity import DOMAIN, MessageKind, encode_public_key, public_key_of
from LLM_Mesh.core.signature_check import Unverified, signature_problem

__all__ = [
    "IDENTITY_DOMAIN",
    "MAX_NONCE_BYTES",
    "MIN_NONCE_BYTES",
    "NONCE_BYTES",
    "IdentityProver",
    "check_answer",
    "identity_bytes",
    "identity_query",
]

IDENTITY_DOMAIN = DOMAIN + MessageKind.REGISTRY_IDENTITY.value.encode("ascii") + b"\x00"
NONCE_BYTES = 32
MIN_NONCE_BYTES = 16
MAX_NONCE_BYTES = 64
MAX_ORIGIN_CHARS = 512


def identity_bytes(origin: str, nonce: bytes) -> bytes:
    """The canonical bytes the registry signs for a client that called ``origin``."""
    raw = origin.encode("utf-8")
    if not raw or len(raw) > MAX_ORIGIN_CHARS or "\n" in origin:
        raise ValueError("an origin is one non-empty line of at most 512 bytes")
    if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
        raise ValueError(f"a nonce is {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} bytes")
    return IDENTITY_DOMAIN + length_prefixed(raw) + length_prefixed(nonce)


def identity_query(origin: str, nonce: bytes) -> dict[str, str]:
    """The query of ``GET /mesh/identity`` that asks for it."""
    return {"origin": origin, "nonce": encode(nonce)}


class IdentityProver:
    """The registry's side: signs a client's nonce for an origin it serves at (``origins``:
    its URLs, compared as :func:`registry_origin` gives them)."""

    def __init__(self, key: Ed25519PrivateKey, origins: Iterable[str]) -> None:
        self._key = key
        self.public_key = encode_public_key(public_key_of(key))
        self.origins = frozenset(o for o in map(registry_origin, origins) if o is not None)

    def answer(self, origin: str, nonce_text: str) -> dict[str, str] | str:
        """The signed answer, or why there is none (a malformed question, or an origin
        this registry does not serve at)."""
        nonce = decode(nonce_text)
        if nonce is None or not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
            return f"nonce must be {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} bytes, base64url"
        wanted = registry_origin(origin) if len(origin) <= MAX_ORIGIN_CHARS else None
        if wanted is None:
            return "origin must be the http(s) URL this registry was called at"
        if wanted not in self.origins:
            return f"this registry does not serve at {wanted}: it signs only for its own URLs"
        signature = self._key.sign(identity_bytes(wanted, nonce))
        return {
            "object": "mesh.identity",
            "origin": wanted,
            "public_key": self.public_key,
            "signature": encode(signature),
        }


def check_answer(public_key: str, origin: str, nonce: bytes, answer: Any) -> str | None:
    """Why ``answer`` (the JSON of ``GET /mesh/identity``) does not prove that the holder of
    ``public_key`` (base64url) answered at ``origin`` to ``nonce``; ``None`` when it does."""
    fields: Mapping[str, Any] = answer if isinstance(answer, Mapping) else {}
    problem = signature_problem(
        public_key, fields.get("signature"), lambda: identity_bytes(origin, nonce)
    )
    if problem is Unverified.KEY:
        return "the recorded registry key is not an Ed25519 public key"
    if not isinstance(answer, Mapping):
        return "its answer is not a registry's identity proof"
    if problem is Unverified.SIGNATURE:
        return "its answer carries no Ed25519 signature"
    if answer.get("public_key") != public_key:
        return "it answered with another registry key than this home's registry's"
    if problem is Unverified.MISMATCH:
        return "its signature does not verify for this question with this home's registry key"
    return None
