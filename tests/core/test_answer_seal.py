"""Kept answers are sealed for their row under the registry key (``core/answer_seal.py``)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.answer_seal import AnswerSeal

BODY = b'{"choices":[{"message":{"content":"a private answer"}}]}'


def test_a_sealed_answer_opens_only_with_the_same_key_for_the_same_row() -> None:
    key = Ed25519PrivateKey.generate()
    mine, replica = AnswerSeal.of_registry_key(key), AnswerSeal.of_registry_key(key)
    sealed = mine.seal("row-1", BODY)
    assert b"private" not in sealed and len(sealed) == len(BODY) + 12 + 16
    assert replica.open("row-1", sealed) == BODY  # another replica, the same registry.key
    assert mine.seal("row-1", BODY) != sealed  # a fresh nonce each time
    assert AnswerSeal.of_registry_key(Ed25519PrivateKey.generate()).open("row-1", sealed) is None
    assert AnswerSeal.random().open("row-1", sealed) is None
    assert mine.open("row-2", sealed) is None  # moved to another row
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert mine.open("row-1", flipped) is None
    assert mine.open("row-1", sealed[:27]) is None and mine.open("row-1", b"") is None


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AnswerSeal(b"x" * 31)
