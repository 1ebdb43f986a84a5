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


def test_a_secret_of_exactly_32_bytes_is_enough_and_the_refusal_says_so() -> None:
    assert AnswerSeal(b"s" * 32).open("r", AnswerSeal(b"s" * 32).seal("r", BODY)) == BODY
    with pytest.raises(ValueError) as refused:
        AnswerSeal(b"")
    assert str(refused.value) == "the sealing secret must be at least 32 bytes"


def test_the_sealed_form_is_aes_256_gcm_under_hkdf_sha256_of_the_secret() -> None:
    """The stored form other replicas (other versions too) open: a 12-byte nonce, then
    AES-256-GCM of the body with the row as associated data, under HKDF-SHA256 (no salt,
    info ``llm-mesh/idempotency-answer/v1``) of the registry key's seed."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    seed = bytes(range(32))
    sealed = AnswerSeal.of_registry_key(Ed25519PrivateKey.from_private_bytes(seed)).seal(
        "row-é", BODY
    )
    key = HKDF(SHA256(), 32, salt=None, info=b"llm-mesh/idempotency-answer/v1").derive(seed)
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], "row-é".encode()) == BODY


def test_an_empty_answer_seals_and_opens() -> None:
    seal = AnswerSeal.random()
    sealed = seal.seal("row", b"")
    assert len(sealed) == 12 + 16
    assert seal.open("row", sealed) == b""
