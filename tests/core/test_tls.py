"""Certificate fingerprints: spellings accepted, the one canonical form, and the registry's
transport rule (``--require-tls``; a fingerprint only for an https URL)."""

from __future__ import annotations

import hashlib

import pytest

from LLM_Mesh.core.tls import (
    fingerprint_of_der,
    node_tls_refusal,
    parse_fingerprint,
    show_fingerprint,
)

HEX = hashlib.sha256(b"cert").hexdigest()


@pytest.mark.parametrize(
    "text",
    [HEX, HEX.upper(), "sha256:" + HEX, show_fingerprint(HEX), "  " + HEX + "\n"],
)
def test_spellings_parse_to_lower_hex(text: str) -> None:
    assert parse_fingerprint(text) == HEX


@pytest.mark.parametrize("text", ["", "abc", HEX[:-2], HEX + "00", "zz" * 32, "sha1:" + HEX])
def test_not_a_sha256_digest(text: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        parse_fingerprint(text)


def test_show_is_openssl_style() -> None:
    shown = show_fingerprint(HEX)
    assert len(shown) == 95 and shown.count(":") == 31 and shown == shown.upper()


def test_fingerprint_of_der() -> None:
    assert fingerprint_of_der(b"cert") == HEX


@pytest.mark.parametrize(
    ("url", "fp", "require", "reason"),
    [
        ("http://n:1", None, False, None),
        ("http://n:1", None, True, "plain_http"),
        ("HTTP://n:1", None, True, "plain_http"),
        ("https://n:1", None, True, None),
        ("https://n:1", HEX, True, None),
        ("http://n:1", HEX, False, "fingerprint_without_tls"),
    ],
)
def test_node_tls_refusal(url: str, fp: str | None, require: bool, reason: str | None) -> None:
    assert node_tls_refusal(url, fp, require_tls=require) == reason
