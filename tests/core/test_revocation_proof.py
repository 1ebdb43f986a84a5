"""The registry's signed 403 ``revoked`` (``core/revocation_proof.py``): its own signature
over the node's own message verifies; a forged one (unsigned, another key), a replay of an
earlier one, another node's, another kind's, altered words or another operator token's
do not."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import (
    DOMAIN,
    HDR_OPERATOR_TOKEN,
    MessageKind,
    NodeSigner,
    hash_secret,
)
from LLM_Mesh.core.registry_identity import IDENTITY_DOMAIN
from LLM_Mesh.core.revocation_proof import (
    REVOCATION_DOMAIN,
    TOKEN_REFUSAL_DOMAIN,
    RevocationSigner,
    RevokedRequest,
    check_revocation,
    revocation_bytes,
    revoked_request,
)

SAID = "node node-x is revoked"


def _answer(signer: RevocationSigner, request: RevokedRequest, said: str = SAID) -> Any:
    error = {"message": said, "type": "permission_error", "param": None, "code": "revoked"}
    return {"error": {**error, "revocation": signer.proof(request, said)}}


@pytest.fixture
def registry() -> RevocationSigner:
    return RevocationSigner(Ed25519PrivateKey.generate())


def _sent(kind: MessageKind = MessageKind.HEARTBEAT, token: str | None = None) -> dict[str, str]:
    node = NodeSigner(Ed25519PrivateKey.generate(), lambda: 1_800_000_000.0)
    headers = node.headers(kind, b"{}")
    if token is not None:
        headers[HDR_OPERATOR_TOKEN] = token
    return headers


def test_the_registrys_signature_over_the_nodes_message_verifies(
    registry: RevocationSigner,
) -> None:
    request = revoked_request(MessageKind.HEARTBEAT, _sent())
    assert request is not None and request.token_sha256 == ""
    assert check_revocation(registry.public_key, request, _answer(registry, request)) is None


def test_unsigned_and_another_keys_are_refused(registry: RevocationSigner) -> None:
    request = revoked_request(MessageKind.HEARTBEAT, _sent())
    assert request is not None
    unsigned = {"error": {"message": SAID, "type": "permission_error", "code": "revoked"}}
    assert check_revocation(registry.public_key, request, unsigned) == "it carries no signature"
    for junk in (None, [], "revoked", {"error": "revoked"}, {"error": {"revocation": {}}}):
        assert check_revocation(registry.public_key, request, junk) == "it carries no signature"
    forger = RevocationSigner(Ed25519PrivateKey.generate())
    forged = _answer(forger, request)
    assert "another key" in str(check_revocation(registry.public_key, request, forged))
    forged["error"]["revocation"]["public_key"] = registry.public_key  # claims the right key
    assert "does not verify" in str(check_revocation(registry.public_key, request, forged))
    bad = _answer(registry, request)
    bad["error"]["revocation"]["signature"] = "not base64!"
    assert "not an Ed25519 signature" in str(check_revocation(registry.public_key, request, bad))
    assert "not an Ed25519 public key" in str(check_revocation("xyz", request, bad))


def test_a_replayed_another_nodes_or_another_kinds_answer_is_refused(
    registry: RevocationSigner,
) -> None:
    sent = _sent()
    earlier = revoked_request(MessageKind.HEARTBEAT, sent)
    assert earlier is not None
    answer = _answer(registry, earlier)
    later = RevokedRequest(earlier.node_id, earlier.kind, earlier.seq + 1, earlier.ts_ms + 10)
    other = revoked_request(MessageKind.HEARTBEAT, _sent())
    assert other is not None and other.node_id != earlier.node_id
    other = RevokedRequest(other.node_id, other.kind, earlier.seq, earlier.ts_ms)  # same seq
    as_goodbye = RevokedRequest(earlier.node_id, MessageKind.DEREGISTER, earlier.seq,
                                earlier.ts_ms)  # fmt: skip
    for request in (later, other, as_goodbye):
        why = check_revocation(registry.public_key, request, answer)
        assert why is not None and "does not verify" in why, request


def test_its_words_are_signed_too(registry: RevocationSigner) -> None:
    request = revoked_request(MessageKind.HEARTBEAT, _sent())
    assert request is not None
    answer = _answer(registry, request)
    altered = copy.deepcopy(answer)
    altered["error"]["message"] = "operator alice is revoked"  # another fix, another advice
    assert check_revocation(registry.public_key, request, altered) is not None
    assert check_revocation(registry.public_key, request, answer) is None


def test_a_registrations_operator_token_is_bound(registry: RevocationSigner) -> None:
    """The node's signature does not cover its operator token: a relay holding a revoked
    operator's token could swap it in and have the real registry sign "operator ... is
    revoked" for this node's registration; the token's hash in the signed bytes refuses it."""
    sent = _sent(MessageKind.REGISTER, token="lmo_mine")
    mine = revoked_request(MessageKind.REGISTER, sent)
    assert mine is not None and mine.token_sha256 == hash_secret("lmo_mine")
    swapped = revoked_request(MessageKind.REGISTER, {**sent, HDR_OPERATOR_TOKEN: "lmo_revoked"})
    assert swapped is not None
    answer = _answer(registry, swapped, "operator mallory is revoked")
    assert check_revocation(registry.public_key, mine, answer) is not None
    assert check_revocation(registry.public_key, swapped, answer) is None
    # a heartbeat carries no token: none is bound, whatever the headers hold
    beat = revoked_request(MessageKind.HEARTBEAT, _sent(token="lmo_mine"))
    assert beat is not None and beat.token_sha256 == ""


def test_unsigned_headers_are_no_request_and_the_domain_is_its_own() -> None:
    assert revoked_request(MessageKind.HEARTBEAT, {}) is None
    assert revoked_request(MessageKind.HEARTBEAT, {"X-Mesh-Node-Id": "n"}) is None
    request = RevokedRequest("node-x", MessageKind.HEARTBEAT, 5, 6)
    data = revocation_bytes(request, SAID)
    assert data.startswith(REVOCATION_DOMAIN) and REVOCATION_DOMAIN.startswith(DOMAIN)
    assert REVOCATION_DOMAIN != IDENTITY_DOMAIN
    # the fields are length-prefixed: one cannot be moved into its neighbour
    shifted = RevokedRequest("node-x", MessageKind.HEARTBEAT, 56, 6)
    assert revocation_bytes(shifted, SAID) != revocation_bytes(
        RevokedRequest("node-x", MessageKind.HEARTBEAT, 5, 66), SAID
    )
    with pytest.raises(ValueError):
        revocation_bytes(request, "x" * 5000)


def test_the_signed_bytes_are_the_documented_layout() -> None:
    token = hash_secret("lmo_mine")
    request = RevokedRequest("node-é", MessageKind.REGISTER, 42, 1_800_000_000_123, token)
    fields = [
        "node-é".encode(),
        b"register",
        b"42",
        b"1800000000123",
        token.encode(),
        "operator é is revoked".encode(),
    ]
    layout = b"".join(len(f).to_bytes(2, "big") + f for f in fields)
    assert REVOCATION_DOMAIN == b"llm-mesh/v1/revocation\x00"
    assert revocation_bytes(request, "operator é is revoked") == REVOCATION_DOMAIN + layout


def test_a_registration_without_an_operator_token_binds_none() -> None:
    for token in (None, "", "  "):
        request = revoked_request(MessageKind.REGISTER, _sent(MessageKind.REGISTER, token))
        assert request is not None and request.token_sha256 == "", token


def test_a_message_of_4096_bytes_is_signed_and_one_more_is_refused_in_words() -> None:
    request = RevokedRequest("node-x", MessageKind.HEARTBEAT, 5, 6)
    assert revocation_bytes(request, "é" * 2048).endswith(b"\x10\x00" + "é".encode() * 2048)
    with pytest.raises(ValueError) as refused:
        revocation_bytes(request, "x" * 4097)
    assert str(refused.value) == "a revocation's message is at most 4096 bytes"


def test_each_refusal_in_its_words(registry: RevocationSigner) -> None:
    request = revoked_request(MessageKind.HEARTBEAT, _sent())
    assert request is not None
    forged = _answer(RevocationSigner(Ed25519PrivateKey.generate()), request)
    why = check_revocation(registry.public_key, request, forged)
    assert why == "it is signed by another key than the registry's this node trusts"
    forged["error"]["revocation"]["public_key"] = registry.public_key
    why = check_revocation(registry.public_key, request, forged)
    assert why == "its signature does not verify for this node's request (replayed, or another's)"
    bad = _answer(registry, request)
    bad["error"]["revocation"]["signature"] = "c2hvcnQ"  # base64url of 5 bytes
    why = check_revocation(registry.public_key, request, bad)
    assert why == "its signature is not an Ed25519 signature"
    why = check_revocation("c2hvcnQ", request, bad)
    assert why == "the registry key this node trusts is not an Ed25519 public key"


def test_a_token_refusal_and_a_revocation_never_pass_as_each_other() -> None:
    """signed401: the 401 for an unknown operator token is signed in its own domain."""
    key = Ed25519PrivateKey.generate()
    signer = RevocationSigner(key)
    request = RevokedRequest("node-a", MessageKind.REGISTER, 7, 1_800_000_000_000, "ab" * 32)
    said = "unknown operator token"
    token = {"error": {"message": said, **signer.fields(request, said, token=True)}}
    revoked = {"error": {"message": said, **signer.fields(request, said)}}
    assert check_revocation(signer.public_key, request, token, token=True) is None
    assert check_revocation(signer.public_key, request, revoked) is None
    assert check_revocation(signer.public_key, request, token) is not None  # no revocation
    assert check_revocation(signer.public_key, request, revoked, token=True) is not None
    moved = {"error": {"message": said, "token_refusal": revoked["error"]["revocation"]}}
    assert check_revocation(signer.public_key, request, moved, token=True) is not None
    domains = [REVOCATION_DOMAIN, TOKEN_REFUSAL_DOMAIN, IDENTITY_DOMAIN]
    for a in domains:  # none a prefix of another: one message's bytes are never another's
        assert a.endswith(b"\x00") and a.count(b"\x00") == 1
        assert not [b for b in domains if b != a and b.startswith(a)]


# written against the module's mutants (mut33, 2026-12-06)


def test_a_token_refusal_is_carried_in_its_own_field() -> None:
    signer = RevocationSigner(Ed25519PrivateKey.generate())
    request = RevokedRequest("node-a", MessageKind.REGISTER, 7, 1_800_000_000_000, "ab" * 32)
    said = "unknown operator token"
    assert set(signer.fields(request, said, token=True)) == {"token_refusal"}
    assert set(signer.fields(request, said)) == {"revocation"}
    carried = {"error": {"message": said, "token_refusal": signer.proof(request, said, token=True)}}
    assert check_revocation(signer.public_key, request, carried, token=True) is None


@pytest.mark.parametrize(
    "named", [("key_rotations",), ("key_rotation",), ("key_rotations", "key_rotation")]
)
def test_a_rotation_named_to_a_node_that_follows_none_says_where_to_set_the_key(
    registry: RevocationSigner, named: tuple[str, ...]
) -> None:
    """A node whose key is the operator's pin never follows a rotation an answer names:
    one named (either field, or both) is said to be set in node.toml."""
    request = revoked_request(MessageKind.HEARTBEAT, _sent())
    assert request is not None
    answer = _answer(RevocationSigner(Ed25519PrivateKey.generate()), request)
    for field in named:
        answer["error"][field] = [] if field == "key_rotations" else {}
    assert check_revocation(registry.public_key, request, answer) == (
        "it is signed by another key than the registry's this node trusts; the answer names a "
        "rotation to it, but that key is the operator's pin (registry_public_key in node.toml), "
        "never moved by an answer: set the registry's new key there"
    )
