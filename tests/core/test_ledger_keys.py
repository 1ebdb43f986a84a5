"""``core/ledger_keys.judge_keys``: the published ledger keys a verifier trusts (found
2026-12-05: every key the registry listed, on every run)."""

from __future__ import annotations

import base64
import itertools

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.key_chain import MAX_CHAIN_LINKS
from LLM_Mesh.core.key_rotation import rotation_statement
from LLM_Mesh.core.ledger_keys import judge_keys
from LLM_Mesh.registry.ledger_signer import public_key_text

A, B, C, X = (Ed25519PrivateKey.generate() for _ in range(4))


def pub(key: Ed25519PrivateKey) -> str:
    return public_key_text(key)  # as GET /v1/ledger/keys lists it: standard base64


def test_first_use_trusts_every_published_key_and_says_so() -> None:
    t = judge_keys([pub(A), pub(B)], None, None)
    assert t.trusted == t.first_use == (pub(A), pub(B)) and not t.new


def test_a_remembered_key_is_trusted_in_either_base64() -> None:
    url = base64.urlsafe_b64encode(base64.b64decode(pub(A))).rstrip(b"=").decode()
    t = judge_keys([pub(A)], [url], None)
    assert t.trusted == (pub(A),) and not t.first_use and not t.new


def test_a_new_key_with_no_rotation_is_not_trusted() -> None:
    t = judge_keys([pub(A), pub(X)], [pub(A)], None)
    assert t.trusted == (pub(A),) and t.new == (pub(X),)
    assert "serves no signed rotation statement" in t.why


def test_a_signed_rotation_from_a_remembered_key_is_followed() -> None:
    chain = [rotation_statement(A, B)]
    t = judge_keys([pub(A), pub(B)], [pub(A)], chain)
    assert t.trusted == (pub(A), pub(B)) and not t.new
    assert t.rotated == ((pub(B), pub(A), 1),)


def test_two_rotations_behind_every_key_on_the_way_is_reached() -> None:
    chain = [rotation_statement(A, B), rotation_statement(B, C)]
    t = judge_keys([pub(B), pub(C)], [pub(A)], chain)
    assert t.trusted == (pub(B), pub(C)) and not t.new
    assert t.rotated == ((pub(B), pub(A), 1), (pub(C), pub(A), 2))


def test_a_chain_not_from_a_remembered_key_or_forged_is_refused() -> None:
    # the forger's own chain: its key X vouching for itself's successor, not from A
    t = judge_keys([pub(A), pub(C)], [pub(A)], [rotation_statement(X, C)])
    assert t.new == (pub(C),) and "does not lead there from a remembered key" in t.why
    # a link claiming A vouches for X, signed by X
    by_x = rotation_statement(X, X)  # X's signature naming X
    forged = {**by_x, "previous_public_key": rotation_statement(A, B)["previous_public_key"]}
    t = judge_keys([pub(A), pub(X)], [pub(A)], [forged])
    assert t.new == (pub(X),) and "forged" in t.why


def test_a_chain_to_another_key_vouches_only_for_its_keys() -> None:
    t = judge_keys([pub(A), pub(B), pub(X)], [pub(A)], [rotation_statement(A, B)])
    assert t.trusted == (pub(A), pub(B)) and t.new == (pub(X),)
    assert "no signed rotation statement from a remembered key names it" in t.why


def test_a_chain_over_the_bound_or_garbled_is_refused() -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(MAX_CHAIN_LINKS + 2)]
    chain = [rotation_statement(a, b) for a, b in itertools.pairwise(keys)]
    t = judge_keys([pub(keys[-1])], [pub(keys[0])], chain)
    assert t.new == (pub(keys[-1]),) and "over the bound" in t.why
    assert judge_keys([pub(B)], [pub(A)], ["junk"]).new == (pub(B),)
    assert judge_keys(["not a key"], [pub(A)], None).new == ("not a key",)


def test_no_chain_and_a_malformed_one_said_in_words() -> None:
    for chain in (None, [], {}, "x"):
        t = judge_keys([pub(X)], [pub(A)], chain)
        assert t.new == (pub(X),) and t.first_use == ()
        assert t.why == "the registry serves no signed rotation statement"
    t = judge_keys([pub(X)], [pub(A)], [{"not": "a link"}])
    assert t.why == "the registry's rotation chain is malformed"
    t = judge_keys([pub(A), pub(B), pub(X)], [pub(A)], [rotation_statement(A, B)])
    assert t.why == "no signed rotation statement from a remembered key names it"


def test_every_remembered_key_is_tried_past_one_that_is_no_key_or_leads_nowhere() -> None:
    chain = [rotation_statement(A, B)]
    for remembered in (["not a key", pub(A)], [pub(X), pub(A)]):
        t = judge_keys([pub(B)], remembered, chain)
        assert t.trusted == (pub(B),) and t.rotated == ((pub(B), pub(A), 1),)
        assert t.new == () and t.why == ""  # all trusted: no reason given


def test_a_published_key_that_is_no_text_is_new() -> None:
    t = judge_keys([pub(A), 7], [pub(A)], None)  # type: ignore[list-item]
    assert t.trusted == (pub(A),) and t.new == (7,)


def test_a_stray_key_beside_the_remembered_current_one_is_said_unnamed() -> None:
    # found 2026-12-07 (replica41): a verifier that followed A -> B -> C remembers all
    # three; a replica started once without the shared registry.key lists its own key X.
    # The reason named C, the chain's end and a trusted key, as "the pinned gateway" the
    # chain "does not reach back to" ("this node is more rotations behind ..."), not X.
    chain = [rotation_statement(A, B), rotation_statement(B, C)]
    t = judge_keys([pub(A), pub(B), pub(C), pub(X)], [pub(A), pub(B), pub(C)], chain)
    assert t.trusted == (pub(A), pub(B), pub(C)) and t.new == (pub(X),)
    assert "no signed rotation statement from a remembered key names it" in t.why
    assert "node" not in t.why
    # remembering only the chain's end is no failure to follow it either
    t = judge_keys([pub(C), pub(X)], [pub(C)], chain)
    assert t.new == (pub(X),) and "no signed rotation statement" in t.why
