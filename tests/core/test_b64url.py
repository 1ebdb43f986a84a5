"""base64url without padding and length prefixes (``core/b64url.py``)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.b64url import decode, ed25519_key, ed25519_key_problem, encode, length_prefixed
from tests.core.key_forms import KEY_FORMS


@pytest.mark.parametrize("data", [b"\x00", b"\xfb\xff", bytes(range(32)), bytes(64)])
def test_encode_is_unpadded_url_safe_and_decodes_back(data: bytes) -> None:
    text = encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert decode(text) == data


@pytest.mark.parametrize(
    "text", ["", "a+b/", "YQ==", "a b", "Y", "x" * 201, None, 42, b"YQ"], ids=repr
)
def test_decode_refuses_what_is_not_short_unpadded_base64url(text: object) -> None:
    assert decode(text) is None


def test_length_prefixed_is_two_bytes_big_endian_then_the_data() -> None:
    assert length_prefixed(b"") == b"\x00\x00"
    assert length_prefixed(b"ab") == b"\x00\x02ab"
    assert length_prefixed(bytes(300))[:2] == b"\x01\x2c"


def test_length_prefixed_takes_up_to_65535_bytes() -> None:
    assert length_prefixed(bytes(40000))[:2] == b"\x9c\x40"
    assert length_prefixed(bytes(65535))[:2] == b"\xff\xff"


@pytest.mark.parametrize(
    ("text", "raw", "why"), [f[1:] for f in KEY_FORMS], ids=[f[0] for f in KEY_FORMS]
)
def test_a_written_key_is_taken_or_refused_with_its_reason(
    text: str, raw: bytes | None, why: str
) -> None:
    """One rule for a written Ed25519 key (``tests/core/key_forms.py``), one message."""
    assert ed25519_key(text) == raw
    problem = ed25519_key_problem(text)
    if raw is not None:
        assert problem is None
        return
    assert problem is not None and why in problem, problem
    assert "is not an Ed25519 public key (32 bytes in base64 or base64url)" in problem
    assert problem.startswith(repr(text.strip()[:60])) and "\n" not in problem


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is empty"),
        (
            "-----BEGIN PUBLIC KEY-----",
            "a PEM block is not taken: give the key's 32 raw bytes in base64 or base64url",
        ),
        ("ab" * 32, "hex is not taken: give the same 32 bytes in base64 or base64url"),
        (
            "A!" * 40,
            "it has characters that are neither base64 nor base64url (a space, a quote?)",
        ),
        ("A-" * 21 + "+", "it mixes the two alphabets ('+' or '/' with '-' or '_')"),
        ("A" * 43 + "==", "at most one '=' follows the 43 characters"),
        ("abcX", "4 characters, a key is 43 (and at most one '=')"),  # X is no padding
        ("abcX=", "4 characters, a key is 43 (and at most one '=')"),
    ],
    ids=["empty", "pem", "hex", "stray", "mixed", "padded_twice", "short_x", "short_x_pad"],
)
def test_a_refused_key_is_told_word_for_word(text: str, why: str) -> None:
    assert ed25519_key_problem(text) == (
        f"{text[:60]!r} is not an Ed25519 public key (32 bytes in base64 or base64url): {why}"
    )


@pytest.mark.parametrize(
    ("secret", "what"),
    [
        ("lmk_jz9NwOphBLFz1IvZFyIhUkJmNIBgvxwsKRbZk_u1yuyd", "an API key"),
        ("lmk_" + "A" * 43, "an API key"),
        ("lmo_cvfzInaBDvipZujbZQolZqQNLFiOK8J7YwZP_BPRbCM", "an operator token"),
        ("lma_" + "b" * 43, "the registry's admin key"),
    ],
    ids=["api_key", "older_api_key", "operator_token", "admin_key"],
)
def test_a_credential_given_as_a_key_is_named_and_never_quoted(secret: str, what: str) -> None:
    """Found 2026-12-06 (newuser34): ``ledger statement --key lmk_...`` (``--api-key`` is
    not one of its options; typer offered ``--key``) printed the whole API key back on the
    terminal as "not an Ed25519 public key", and not where the key goes."""
    problem = ed25519_key_problem(f"  {secret}\n")
    assert problem is not None
    assert secret not in problem and secret[4:20] not in problem, problem
    assert what in problem and "not shown" in problem, problem
    assert "registry's public key" in problem, problem
    if what == "an API key":
        assert "LLM_MESH_API_KEY" in problem, problem
