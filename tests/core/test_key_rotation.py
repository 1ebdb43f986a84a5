"""A registry-key rotation statement (``core/key_rotation.py``): the old key's signature
naming the new one, and what a node accepts as one."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.b64url import decode
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.key_rotation import (
    ROTATION_DOMAIN,
    rotation_bytes,
    rotation_statement,
    vouches_for,
)

OLD = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEW = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def _pub(key: Ed25519PrivateKey) -> str:
    return encode_public_key(public_key_of(key))


def test_the_statement_is_the_old_keys_signature_over_the_domain_and_the_new_key() -> None:
    statement = rotation_statement(OLD, NEW)
    assert set(statement) == {"public_key", "previous_public_key", "signature"}
    assert statement["public_key"] == _pub(NEW)
    assert statement["previous_public_key"] == _pub(OLD)
    signature = decode(statement["signature"])
    assert signature is not None and len(signature) == 64
    message = b"llm-mesh/v1/registry-key-rotation\x00" + _pub(NEW).encode("ascii")
    OLD.public_key().verify(signature, message)  # raises if it is not that signature
    assert rotation_bytes(_pub(NEW)) == ROTATION_DOMAIN + _pub(NEW).encode("ascii") == message


def test_a_node_accepts_the_statement_of_its_pinned_key_naming_the_answers_key() -> None:
    assert vouches_for(rotation_statement(OLD, NEW), _pub(OLD), _pub(NEW))


def test_another_signer_another_new_key_or_a_reversed_statement_is_refused() -> None:
    statement = rotation_statement(OLD, NEW)
    other = Ed25519PrivateKey.generate()
    assert not vouches_for(statement, _pub(other), _pub(NEW))  # not the pinned key's
    assert not vouches_for(statement, _pub(OLD), _pub(other))  # names another key
    assert not vouches_for(rotation_statement(NEW, OLD), _pub(OLD), _pub(NEW))
    # the right fields but the signature over another new key
    forged = {**statement, "signature": rotation_statement(OLD, other)["signature"]}
    assert not vouches_for(forged, _pub(OLD), _pub(NEW))


@pytest.mark.parametrize(
    "statement",
    [None, "x", [], {}, {"public_key": "k"}, {"signature": "s"}],
    ids=repr,
)
def test_what_is_no_statement_vouches_for_nothing(statement: Any) -> None:
    assert not vouches_for(statement, _pub(OLD), _pub(NEW))


def test_a_signature_that_is_no_string_or_too_long_is_refused() -> None:
    good = rotation_statement(OLD, NEW)
    assert not vouches_for({**good, "signature": None}, _pub(OLD), _pub(NEW))
    assert not vouches_for({**good, "signature": 5}, _pub(OLD), _pub(NEW))
    assert not vouches_for({**good, "signature": good["signature"] + "A" * 200}, _pub(OLD),
                           _pub(NEW))  # fmt: skip
    assert not vouches_for({**good, "signature": "!" * 86}, _pub(OLD), _pub(NEW))


@pytest.mark.parametrize("pinned", ["", "not a key", "A" * 43, "x" * 300])
def test_a_pin_that_is_no_key_vouches_for_nothing_and_does_not_raise(pinned: str) -> None:
    assert not vouches_for(rotation_statement(OLD, NEW), pinned, _pub(NEW))


@pytest.mark.parametrize("new_key", ["", "k" * 101, "clé"])
def test_a_new_key_that_is_no_short_ascii_string_is_refused(new_key: str) -> None:
    with pytest.raises(ValueError, match=r"^a public key is a short ASCII string$"):
        rotation_bytes(new_key)
    # named by the statement too: still no vouching, and no exception
    statement = {**rotation_statement(OLD, NEW), "public_key": new_key}
    assert not vouches_for(statement, _pub(OLD), new_key)


def test_a_new_key_of_one_and_of_100_ascii_characters_is_signable() -> None:
    assert rotation_bytes("k") == ROTATION_DOMAIN + b"k"
    assert rotation_bytes("k" * 100) == ROTATION_DOMAIN + b"k" * 100


def test_a_statement_must_name_the_answers_key_even_if_its_signature_is_over_it() -> None:
    other = Ed25519PrivateKey.generate()
    statement = {**rotation_statement(OLD, NEW), "public_key": _pub(other)}
    assert not vouches_for(statement, _pub(OLD), _pub(NEW))
