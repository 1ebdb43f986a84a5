"""A registry's 403 ``revoked`` signed by a key rotated since the node pinned its key
(``core/revocation_proof.py``, "A rotated registry key"). Found 2026-12-05: the registry's
real revocation, signed by its new key, was ignored by every node that pinned the old one,
and those nodes heartbeated on forever. Now the answer carries the chain of rotation
statements (``RevocationSigner.fields``) and a node whose pin follows rotations honours it
when the chain leads from its pin to the signing key; a forged link, a fork, a chain that
does not reach the pin or names another key, and another key's signature are refused with
the reason; a pin that does not follow (node.toml's) honours its own key only."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_session import sign_kx
from LLM_Mesh.core.identity import MessageKind, NodeSigner, encode_public_key, public_key_of
from LLM_Mesh.core.key_rotation import rotation_bytes, rotation_statement
from LLM_Mesh.core.revocation_proof import (
    RevocationSigner,
    RevokedRequest,
    check_revocation,
    revoked_request,
)

SAID = "node node-x is revoked"


def _chain(keys: list[Ed25519PrivateKey]) -> list[dict[str, str]]:
    return [rotation_statement(old, new) for old, new in itertools.pairwise(keys)]


def _public(key: Ed25519PrivateKey) -> str:
    return encode_public_key(public_key_of(key))


def _request() -> RevokedRequest:
    node = NodeSigner(Ed25519PrivateKey.generate(), lambda: 1_800_000_000.0)
    request = revoked_request(MessageKind.HEARTBEAT, node.headers(MessageKind.HEARTBEAT, b"{}"))
    assert request is not None
    return request


def _answer(signer: RevocationSigner, request: RevokedRequest) -> dict[str, Any]:
    error = {"message": SAID, "type": "permission_error", "param": None, "code": "revoked"}
    return {"error": {**error, **signer.fields(request, SAID)}}


@pytest.fixture
def keys() -> list[Ed25519PrivateKey]:
    """The registry's keys, oldest first: the node pinned the first."""
    return [Ed25519PrivateKey.generate() for _ in range(3)]


def test_the_signer_sends_its_chain_and_none_without_one(keys: list[Ed25519PrivateKey]) -> None:
    request = _request()
    plain = RevocationSigner(keys[0]).fields(request, SAID)
    assert set(plain) == {"revocation"}
    chain = _chain(keys)
    fields = RevocationSigner(keys[-1], chain).fields(request, SAID)
    assert fields["key_rotations"] == chain and fields["key_rotation"] == chain[-1]
    assert fields["revocation"]["public_key"] == _public(keys[-1])


@pytest.mark.parametrize("behind", [1, 2])
def test_a_chain_from_the_pin_to_the_signer_is_honoured(
    keys: list[Ed25519PrivateKey], behind: int
) -> None:
    pinned = _public(keys[-1 - behind])
    request = _request()
    answer = _answer(RevocationSigner(keys[-1], _chain(keys)), request)
    assert check_revocation(pinned, request, answer, follow_rotations=True) is None
    # not for another request (the chain vouches for the key, not for a replay)
    other = RevokedRequest(request.node_id, request.kind, request.seq + 1, request.ts_ms)
    why = check_revocation(pinned, other, answer, follow_rotations=True)
    assert why is not None and "does not verify" in why
    # a pin that does not follow rotations (node.toml's): its own key's only, in words
    why = check_revocation(pinned, request, answer)
    assert why is not None and why.startswith("it is signed by another key")
    assert "registry_public_key in node.toml" in why


def test_only_the_last_link_an_older_registry_sends_is_one_step(
    keys: list[Ed25519PrivateKey],
) -> None:
    request = _request()
    answer = _answer(RevocationSigner(keys[-1], _chain(keys)), request)
    del answer["error"]["key_rotations"]
    assert check_revocation(_public(keys[1]), request, answer, follow_rotations=True) is None
    why = check_revocation(_public(keys[0]), request, answer, follow_rotations=True)
    assert why is not None and "rotation statement is not the pinned key's" in why


def _forged_link(keys: list[Ed25519PrivateKey]) -> list[dict[str, str]]:
    chain = _chain(keys)
    forged = rotation_statement(Ed25519PrivateKey.generate(), keys[2])
    chain[1] = {**forged, "previous_public_key": chain[1]["previous_public_key"]}
    return chain


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda keys: [], "carries no rotation chain"),
        (_forged_link, "is not that key's signature (forged)"),
        (lambda keys: _chain(keys[1:]), "does not reach back to the pinned gateway"),
        (lambda keys: _chain([Ed25519PrivateKey.generate(), keys[2]]), "does not reach back"),
        (lambda keys: _chain(keys[:2]), "does not end at the answer's key"),
        (lambda keys: [*_chain(keys), *_chain(keys)[:1]], "forks"),
        (lambda keys: [{"public_key": 1}], "malformed"),
    ],
    ids=["empty", "forged-link", "from-another-key", "foreign", "short", "fork", "malformed"],
)
def test_a_chain_that_does_not_lead_from_the_pin_is_refused(
    keys: list[Ed25519PrivateKey], make: Any, reason: str
) -> None:
    request = _request()
    answer = _answer(RevocationSigner(keys[-1]), request)
    answer["error"]["key_rotations"] = make(keys)
    why = check_revocation(_public(keys[0]), request, answer, follow_rotations=True)
    assert why is not None and why.startswith("it is signed by another key"), why
    assert reason in why, why


def test_another_keys_signature_is_refused_even_with_a_good_chain(
    keys: list[Ed25519PrivateKey],
) -> None:
    """A forger copies the registry's real chain (it is public) and signs with its own key,
    or names the registry's key beside its own signature: neither verifies."""
    request = _request()
    chain = _chain(keys)
    forger = _answer(RevocationSigner(Ed25519PrivateKey.generate(), chain), request)
    why = check_revocation(_public(keys[0]), request, forger, follow_rotations=True)
    assert why is not None and "does not end at the answer's key" in why
    forger["error"]["revocation"]["public_key"] = _public(keys[-1])
    why = check_revocation(_public(keys[0]), request, forger, follow_rotations=True)
    assert why is not None and "does not verify" in why
    # a chain the forger made from a key of its own to its signer, beside the real pin
    own = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    forged = _answer(RevocationSigner(own[1], _chain(own)), request)
    why = check_revocation(_public(keys[0]), request, forged, follow_rotations=True)
    assert why is not None and "does not reach back" in why


def test_a_signer_that_is_not_a_key_is_refused(keys: list[Ed25519PrivateKey]) -> None:
    request = _request()
    answer = _answer(RevocationSigner(keys[-1], _chain(keys)), request)
    answer["error"]["revocation"]["public_key"] = ["not", "a", "key"]
    why = check_revocation(_public(keys[0]), request, answer, follow_rotations=True)
    assert why == "it is signed by another key than the registry's this node trusts"
    # the pinned key's real signature naming something that is no key (never made by
    # the registry): the chain leads there, the revocation still does not verify
    junk = "A" * 10
    link = {"public_key": junk, "previous_public_key": _public(keys[0]),
            "signature": sign_kx(keys[0], rotation_bytes(junk))}  # fmt: skip
    answer["error"]["key_rotations"] = [link]
    answer["error"]["revocation"]["public_key"] = junk
    why = check_revocation(_public(keys[0]), request, answer, follow_rotations=True)
    assert why == "the key it is signed by is not an Ed25519 public key"
