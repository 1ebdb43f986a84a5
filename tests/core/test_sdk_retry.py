"""``core/sdk_retry``: an OpenAI SDK attempt's retry marker read, its implicit idempotency
key (``registry/parse.py``, ``registry/shared_idempotency.py``)."""

from __future__ import annotations

import hashlib

import pytest

from LLM_Mesh.core.sdk_retry import MARK, body_digest, implicit_key, is_implicit, retry_count


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("0", 0),  # the first attempt
        ("1", 1),
        ("2", 2),
        (" 3 ", 3),  # white space around it, as a header's value may have
        ("1000", 1000),  # the SDK's own cap
        ("0999", 999),
    ],
)
def test_the_markers_count(value: str, count: int) -> None:
    assert retry_count(value) == count


@pytest.mark.parametrize(
    "value",
    [
        None,  # no marker: not the SDK's
        "",
        "  ",
        "1001",  # past the SDK's cap
        "9999",
        "01000",  # five digits
        "-1",
        "+1",
        "1.0",
        "1e2",
        "one",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit, not ASCII
        "\u00b2",  # SUPERSCRIPT TWO
    ],
)
def test_what_is_not_a_count(value: str | None) -> None:
    assert retry_count(value) is None


def test_the_body_digest_is_sha256_of_the_bytes_as_sent() -> None:
    raw = b'{"model":"m","messages":[]}'
    assert body_digest(raw) == hashlib.sha256(raw).hexdigest()
    assert body_digest(raw + b" ") != body_digest(raw)  # one byte more: another attempt


def test_an_implicit_key_and_only_it_is_implicit() -> None:
    key = implicit_key("/v1/chat/completions", "scope-1", body_digest(b"{}"))
    assert key == f"/v1/chat/completions scope-1 {MARK} {body_digest(b'{}')}"
    assert is_implicit(key)
    # a client's own id is printable ASCII: never the mark
    assert not is_implicit("/v1/chat/completions scope-1 my-id-1 " + body_digest(b"{}"))
    assert not is_implicit(f"{MARK}x")  # the mark not as a whole field
