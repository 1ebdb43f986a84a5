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


def _value_error(origin: str, nonce: bytes) -> str:
    with pytest.raises(ValueError) as refused:
        identity_bytes(origin, nonce)
    return str(refused.value)


def test_the_signed_bytes_take_origins_of_1_to_512_bytes_on_one_line() -> None:
    nonce = b"\x09" * 16
    assert identity_bytes("h", nonce) == IDENTITY_DOMAIN + b"\x00\x01h" + b"\x00\x10" + nonce
    assert identity_bytes("é" * 256, nonce).startswith(IDENTITY_DOMAIN + b"\x02\x00")
    origin_error = "an origin is one non-empty line of at most 512 bytes"
    for origin in ["", "a" * 513, "é" * 257, "http://a\nb", "a" * 600 + "\n"]:
        assert _value_error(origin, nonce) == origin_error


def test_the_signed_bytes_take_nonces_of_16_to_64_bytes() -> None:
    assert identity_bytes(ORIGIN, b"n" * 16).endswith(b"\x00\x10" + b"n" * 16)
    assert identity_bytes(ORIGIN, b"n" * 64).endswith(b"\x00\x40" + b"n" * 64)
    for size in (0, 15, 65):
        assert _value_error(ORIGIN, b"n" * size) == "a nonce is 16 to 64 bytes"


def test_the_question_is_the_origin_and_the_nonce_in_base64url() -> None:
    from LLM_Mesh.core.registry_identity import identity_query

    assert identity_query(ORIGIN, b"\xfb\xff" * 8) == {
        "origin": ORIGIN,
        "nonce": "-__7__v_-__7__v_-__7_w",  # url-safe alphabet, no padding
    }


def test_the_answer_is_the_signed_proof_for_the_origin_as_compared() -> None:
    nonce = b"\x0a" * 16
    answer = prover().answer("HTTP://127.0.0.1:8800/", b64(nonce))
    assert isinstance(answer, dict)
    signature = KEY.sign(identity_bytes(ORIGIN, nonce))
    assert answer == {
        "object": "mesh.identity",
        "origin": ORIGIN,
        "public_key": PUBLIC,
        "signature": b64(signature),
    }
    assert isinstance(prover().answer(ORIGIN, b64(b"\x0b" * 64)), dict)


def test_each_refused_question_says_why() -> None:
    nonce = b64(b"\x0c" * 32)
    for bad in ["", b64(b"x" * 15), b64(b"x" * 65), "a+b/"]:
        assert prover().answer(ORIGIN, bad) == "nonce must be 16 to 64 bytes, base64url"
    called_at = "origin must be the http(s) URL this registry was called at"
    assert prover().answer("ftp://127.0.0.1:8800", nonce) == called_at
    assert prover().answer("", nonce) == called_at
    assert prover().answer("http://127.0.0.1:9000", nonce) == (
        "this registry does not serve at http://127.0.0.1:9000: it signs only for its own URLs"
    )


def test_an_origin_of_512_characters_is_judged_and_one_more_is_not() -> None:
    nonce = b64(b"\x0d" * 32)
    path = "/" + "p" * (512 - len(ORIGIN) - 1)
    assert len(ORIGIN + path) == 512
    assert isinstance(prover(ORIGIN + path).answer(ORIGIN + path, nonce), dict)
    longer = ORIGIN + path + "p"
    assert prover(longer).answer(longer, nonce) == (
        "origin must be the http(s) URL this registry was called at"
    )


def test_each_failed_check_says_why() -> None:
    nonce = b"\x0e" * 32
    answer = prover().answer(ORIGIN, b64(nonce))
    assert isinstance(answer, dict)
    no_key = "the recorded registry key is not an Ed25519 public key"
    assert check_answer("!", ORIGIN, nonce, answer) == no_key
    assert check_answer(b64(bytes(31)), ORIGIN, nonce, answer) == no_key
    assert check_answer(b64(bytes(33)), ORIGIN, nonce, answer) == no_key
    assert check_answer(PUBLIC, ORIGIN, nonce, [answer]) == (
        "its answer is not a registry's identity proof"
    )
    assert check_answer(PUBLIC, ORIGIN, nonce, {**answer, "signature": None}) == (
        "its answer carries no Ed25519 signature"
    )
    assert check_answer(PUBLIC, ORIGIN, nonce, {**answer, "public_key": None}) == (
        "it answered with another registry key than this home's registry's"
    )
    does_not_verify = (
        "its signature does not verify for this question with this home's registry key"
    )
    assert check_answer(PUBLIC, ORIGIN, b"\x0f" * 32, answer) == does_not_verify
    # a question that cannot have been signed (an origin over 512 bytes): no exception
    assert check_answer(PUBLIC, "http://" + "a" * 600, nonce, answer) == does_not_verify
