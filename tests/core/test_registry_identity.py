"""The registry's identity proof (``core/registry_identity.py``): a signature of the client's
fresh nonce for the URL it called, checked with the registry key recorded in the home."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.b64url import encode as b64
from LLM_Mesh.core.health_proof import HEALTH_DOMAIN
from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.registry_identity import (
    IDENTITY_DOMAIN,
    IdentityProver,
    check_answer,
    identity_bytes,
)

ORIGIN = "http://127.0.0.1:8800"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = encode_public_key(public_key_of(KEY))


def prover(*origins: str) -> IdentityProver:
    return IdentityProver(KEY, origins or (ORIGIN,))


def test_a_fresh_answer_for_the_url_called_verifies() -> None:
    nonce = b"\x01" * 32
    answer = prover().answer("http://127.0.0.1:8800/", b64(nonce))
    assert isinstance(answer, dict)
    assert answer["public_key"] == PUBLIC
    assert check_answer(PUBLIC, ORIGIN, nonce, answer) is None


def test_a_replayed_answer_to_an_old_nonce_fails() -> None:
    old = prover().answer(ORIGIN, b64(b"\x02" * 32))  # what an impostor kept
    why = check_answer(PUBLIC, ORIGIN, b"\x03" * 32, old)
    assert why is not None and "does not verify" in why


def test_another_registrys_answer_fails() -> None:
    other = IdentityProver(Ed25519PrivateKey.generate(), (ORIGIN,))
    nonce = b"\x04" * 32
    answer = other.answer(ORIGIN, b64(nonce))
    why = check_answer(PUBLIC, ORIGIN, nonce, answer)
    assert why is not None and "another registry key" in why
    assert isinstance(answer, dict)  # its key swapped for the recorded one: still refused
    assert check_answer(PUBLIC, ORIGIN, nonce, {**answer, "public_key": PUBLIC}) is not None


def test_an_answer_for_another_of_its_urls_fails() -> None:
    """A program on a recorded URL the registry does not listen on relays the question."""
    nonce = b"\x05" * 32
    relayed = prover(ORIGIN, "http://127.0.0.1:9000").answer("http://127.0.0.1:9000", b64(nonce))
    assert check_answer(PUBLIC, ORIGIN, nonce, relayed) is not None


def test_the_registry_signs_only_for_its_own_urls() -> None:
    why = prover().answer("http://127.0.0.1:9000", b64(b"\x06" * 32))
    assert isinstance(why, str) and "does not serve at http://127.0.0.1:9000" in why


@pytest.mark.parametrize(
    ("origin", "nonce"),
    [(ORIGIN, ""), (ORIGIN, b64(b"x" * 15)), (ORIGIN, b64(b"x" * 65)), (ORIGIN, "a+b/"),
     ("", b64(b"x" * 32)), ("ftp://127.0.0.1:8800", b64(b"x" * 32)),
     ("http://" + "a" * 600, b64(b"x" * 32))],
)  # fmt: skip
def test_malformed_questions_get_no_signature(origin: str, nonce: str) -> None:
    assert isinstance(prover().answer(origin, nonce), str)


@pytest.mark.parametrize(
    "answer", [None, [], "x", {}, {"signature": "!!", "public_key": PUBLIC},
               {"signature": b64(b"x" * 63), "public_key": PUBLIC}],
)  # fmt: skip
def test_malformed_answers_prove_nothing(answer: object) -> None:
    assert check_answer(PUBLIC, ORIGIN, b"\x07" * 32, answer) is not None


def test_the_signed_bytes_are_domain_separated() -> None:
    data = identity_bytes(ORIGIN, b"\x08" * 32)
    assert data.startswith(IDENTITY_DOMAIN) and not data.startswith(HEALTH_DOMAIN)
    assert IDENTITY_DOMAIN == b"llm-mesh/v1/registry-identity\x00"
