"""core/receipt.py: the node's receipt, canonical bytes, the gateway's countersignature."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from LLM_Mesh.core.identity import MessageKind, signed_bytes
from LLM_Mesh.core.receipt import (
    NodeReceiptSigner,
    PartStatus,
    ReceiptSigner,
    node_receipt_bytes,
    unb64url,
)
from tests.core.receipt_fixtures import (
    HASH,
    NODE_KEY,
    REGISTRY_ID,
    REGISTRY_KEY,
    TEXT,
    check,
    node_claim,
    observed,
)


def test_output_hash_is_sha256_of_utf8() -> None:
    assert hashlib.sha256(TEXT.encode("utf-8")).hexdigest() == HASH


def test_node_receipt_carries_its_key_and_a_signature_over_canonical_bytes() -> None:
    signer = NodeReceiptSigner(NODE_KEY)
    claim = node_claim(signer)
    assert claim["node_id"] == signer.node_id and claim["node_key"] == signer.node_key
    data = node_receipt_bytes(REGISTRY_ID, signer.node_id, "req-1", "gemma-3-270m", 10, 5, HASH)
    assert data.startswith(b"llm-mesh/v1/node-receipt\x00")
    NODE_KEY.public_key().verify(unb64url(claim["signature"]), data)


def test_the_domain_separates_a_receipt_from_every_node_message() -> None:
    data = node_receipt_bytes(REGISTRY_ID, "node-a", "req-1", "m", 1, 1, HASH)
    for kind in MessageKind:
        other = signed_bytes(kind, "node-a", "node-a", 1, 1, b"")
        assert not data.startswith(other.split(b"\n")[0] + b"\n")
    assert len({k.value for k in MessageKind}) == len(MessageKind)


def test_countersign_signs_the_canonical_bytes_and_hashes_them() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1_700_000_000.5)
    part = check(observed(node_claim()))
    receipt, receipt_hash = signer.countersign("req-1", "gemma-3-270m", 10, 5, HASH, [part])
    assert receipt.time_ms == 1_700_000_000_500 and receipt.registry_id == REGISTRY_ID
    data = receipt.signed_bytes()
    assert data.startswith(b"llm-mesh/v1/receipt-v4\x00")
    assert receipt_hash == receipt.receipt_hash == hashlib.sha256(data).hexdigest()
    REGISTRY_KEY.public_key().verify(unb64url(receipt.signature), data)
    wire = receipt.to_json(receipt_hash)
    assert wire["receipt_hash"] == receipt_hash and wire["parts"][0]["status"] == "signed"


def test_countersigned_bytes_commit_to_every_part_field() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.0)
    part = check(observed(node_claim()))
    base, _ = signer.countersign("req-1", "m", 10, 5, HASH, [part])
    import dataclasses

    for field, value in [("status", PartStatus.MISSING), ("completion_tokens", 4),
                         ("node_signature", ""), ("reason", "x"), ("node_id", "node-b")]:  # fmt: skip
        other = dataclasses.replace(base, parts=(dataclasses.replace(part, **{field: value}),))
        assert other.signed_bytes() != base.signed_bytes(), field


def test_countersign_refuses_no_parts_and_bad_hashes() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.0)
    with pytest.raises(ValueError):
        signer.countersign("req-1", "m", 1, 1, HASH, [])
    part = check(observed(node_claim()))
    with pytest.raises(ValueError):
        signer.countersign("req-1", "m", 1, 1, HASH.upper(), [part])
    with pytest.raises(ValueError):
        signer.countersign("req-1", "m", -1, 1, HASH, [part])


def _s(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def test_the_node_signs_the_documented_layout() -> None:
    from LLM_Mesh.core.receipt import NODE_DOMAIN

    data = node_receipt_bytes("reg", "node-1", "req-é", "m", 2**63 - 1, 0, HASH)
    assert data == b"".join(
        [NODE_DOMAIN, _s("reg"), _s("node-1"), _s("req-é"), _s("m"),
         (2**63 - 1).to_bytes(8, "big"), bytes(8), bytes.fromhex(HASH)]
    )  # fmt: skip


def test_the_gateway_signs_the_documented_layout_with_every_part() -> None:
    from LLM_Mesh.core.receipt import Part, ReceiptBody
    from LLM_Mesh.core.receipt_old import RECEIPT_DOMAIN
    from LLM_Mesh.core.receipt_old import old_receipt_bytes as receipt_bytes

    a = Part("n1", "k1", PartStatus.INVALID, 1, 2, HASH, "", "usage")
    b = Part("n2", "k2", PartStatus.SIGNED, 3, 4, HASH, "sig")
    data = receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], ""), 1)  # old
    part_a = [_s("n1"), _s("k1"), _s("invalid"), _s("usage"), (1).to_bytes(8, "big"),
              (2).to_bytes(8, "big"), bytes.fromhex(HASH), _s("")]  # fmt: skip
    part_b = [_s("n2"), _s("k2"), _s("signed"), _s(""), (3).to_bytes(8, "big"),
              (4).to_bytes(8, "big"), bytes.fromhex(HASH), _s("sig")]  # fmt: skip
    assert data == b"".join(
        [RECEIPT_DOMAIN, _s("reg"), _s("req"), _s("m"), (5).to_bytes(8, "big"),
         (6).to_bytes(8, "big"), (6).to_bytes(8, "big"), bytes.fromhex(HASH),
         (2).to_bytes(2, "big"), *part_a, *part_b]
    )  # fmt: skip
    most = ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a] * 64, "")
    assert len(receipt_bytes(most, 1)) > len(data)
    # version 2 (what the gateway signed before version 3): its own domain, and the client's id hashed
    # (32 bytes, or none when the gateway made the id) after the request id
    from LLM_Mesh.core.receipt import client_id_hash
    from LLM_Mesh.core.receipt_old import RECEIPT_V2_DOMAIN

    rest = data[len(RECEIPT_DOMAIN) + len(_s("reg") + _s("req")) :]
    mine = client_id_hash("alice-session-42")
    with_client = ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], mine)
    assert receipt_bytes(with_client, 2) == b"".join(
        [RECEIPT_V2_DOMAIN, _s("reg"), _s("req"), (32).to_bytes(2, "big"), bytes.fromhex(mine),
         rest]
    )  # fmt: skip
    assert receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], ""), 2) == b"".join(
        [RECEIPT_V2_DOMAIN, _s("reg"), _s("req"), bytes(2), rest]
    )  # fmt: skip
    assert RECEIPT_V2_DOMAIN == b"llm-mesh/v1/receipt-v2\x00"
    with pytest.raises(ValueError):  # version 1 signs no client id
        receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], mine), 1)
    with pytest.raises(ValueError):
        receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], mine.upper()), 2)


def test_version_3_signs_the_documented_layout_with_the_money() -> None:
    """Version 3: version 2's fields, then ``u8(settled)`` (and when 1: the payer's kind, the
    fee in bps, the cost) before the parts, and each part's amount and fee after it."""
    from LLM_Mesh.core.receipt import RECEIPT_V4_DOMAIN, Money, Part, ReceiptBody
    from LLM_Mesh.core.receipt import receipt_bytes as v4_bytes
    from LLM_Mesh.core.receipt_old import RECEIPT_V2_DOMAIN, RECEIPT_V3_DOMAIN
    from LLM_Mesh.core.receipt_old import old_receipt_bytes as receipt_bytes

    a = Part("n1", "k1", PartStatus.INVALID, 1, 2, HASH, "", "usage")
    b = Part("n2", "k2", PartStatus.SIGNED, 3, 4, HASH, "sig")
    v2 = receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], ""), 2)
    head = v2[len(RECEIPT_V2_DOMAIN) : -len(_part_bytes(a) + _part_bytes(b)) - 2]
    u64 = lambda n: n.to_bytes(8, "big")  # noqa: E731
    assert RECEIPT_V3_DOMAIN == b"llm-mesh/v1/receipt-v3\x00"
    assert receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], ""), 3) == b"".join(
        [RECEIPT_V3_DOMAIN, head, b"\x00", (2).to_bytes(2, "big"), _part_bytes(a), _part_bytes(b)]
    )  # not settled: no amounts
    paid = [replace(a, amount=0, fee=0), replace(b, amount=120, fee=6)]
    money = Money("pool", 500, 120)
    settled = ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "", money)
    assert receipt_bytes(settled, 3) == b"".join(
        [RECEIPT_V3_DOMAIN, head, b"\x01", _s("pool"), u64(500), u64(120),
         (2).to_bytes(2, "big"), _part_bytes(a), u64(0), u64(0), _part_bytes(b), u64(120),
         u64(6)]
    )  # fmt: skip
    # version 4 (2026-12-06, money34: each fee rounded up): version 3's layout, its domain
    assert RECEIPT_V4_DOMAIN == b"llm-mesh/v1/receipt-v4\x00"
    v3 = receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "", money), 3)
    v4 = v4_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "", money))
    assert v4 == RECEIPT_V4_DOMAIN + v3[len(RECEIPT_V3_DOMAIN) :]
    for wrong in [
        lambda: receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "", money), 2),
        lambda: receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, ""), 2),
        lambda: receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, [a, b], "", money), 3),
        lambda: receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, ""), 3),
        lambda: v4_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "")),
        lambda: receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "",
                                          Money("user:0123", 500, 120)), 3),  # the account
        lambda: receipt_bytes(ReceiptBody("reg", "req", "m", 5, 6, 6, HASH, paid, "",
                                          Money("pool", 10_001, 120)), 3),
    ]:  # fmt: skip
        with pytest.raises(ValueError):
            wrong()


def test_countersigned_bytes_commit_to_every_amount() -> None:
    from LLM_Mesh.core.receipt import Money

    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.0)
    part = replace(check(observed(node_claim())), amount=100, fee=5)
    base, _ = signer.countersign("req-1", "m", 10, 5, HASH, [part], "", Money("user", 500, 100))
    assert base.version == 4 and base.to_json()["cost"] == 100
    for other in [
        replace(base, parts=(replace(part, amount=101),)),
        replace(base, parts=(replace(part, fee=4),)),
        replace(base, money=Money("user", 500, 99)),
        replace(base, money=Money("pool", 500, 100)),
        replace(base, money=Money("user", 400, 100)),
    ]:
        assert other.signed_bytes() != base.signed_bytes(), other


def _part_bytes(p: Any) -> bytes:
    return b"".join(
        [_s(p.node_id), _s(p.node_key), _s(p.status.value), _s(p.reason),
         p.prompt_tokens.to_bytes(8, "big"), p.completion_tokens.to_bytes(8, "big"),
         bytes.fromhex(p.output_sha256), _s(p.node_signature)]
    )  # fmt: skip


def test_the_client_id_hash_is_the_ledgers_domain_separated_sha256() -> None:
    """The receipt signs the same hash whose first 24 hex digits are the ledger's ``c-`` id:
    it tells no more about the client's id than the ledger entry it is linked to."""
    from LLM_Mesh.core.receipt import client_id_hash
    from LLM_Mesh.registry.parse import client_ledger_id

    mine = "alice-session-42"
    digest = hashlib.sha256(b"llm-mesh/ledger-request/v1\x00" + mine.encode()).hexdigest()
    assert client_id_hash(mine) == digest != hashlib.sha256(mine.encode()).hexdigest()
    assert client_ledger_id(mine) == "c-" + digest[:24]
    assert mine not in digest and client_id_hash("alice-session-43") != digest


def test_receipt_field_limits_in_words() -> None:
    from LLM_Mesh.core.receipt import Part, ReceiptBody, receipt_bytes

    p = Part("n1", "k1", PartStatus.MISSING, 1, 2, HASH)
    node_receipt_bytes("r" * 512, "n", "q", "m", 0, 0, HASH)  # 512 bytes is allowed
    cases = [
        (lambda: node_receipt_bytes("r" * 513, "n", "q", "m", 0, 0, HASH),
         "a receipt field is at most 512 bytes"),
        (lambda: node_receipt_bytes("r", "n", "q", "m", 2**63, 0, HASH),
         "a receipt count is a whole number in [0, 2^63)"),
        (lambda: node_receipt_bytes("r", "n", "q", "m", -1, 0, HASH),
         "a receipt count is a whole number in [0, 2^63)"),
        (lambda: node_receipt_bytes("r", "n", "q", "m", 0, 0, HASH.upper()),
         "an output hash is 64 lowercase hex digits"),
        (lambda: receipt_bytes(ReceiptBody("r", "q", "m", 0, 0, 0, HASH, [p] * 65)),
         "a receipt has 1 to 64 parts"),
        (lambda: unb64url("a!b"), "not base64url (Only base64 data is allowed)"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == message


def test_base64url_has_no_padding_and_reads_with_or_without_it() -> None:
    from LLM_Mesh.core.receipt import b64url

    assert b64url(b"\xfb\xff") == "-_8"
    assert unb64url("-_8") == unb64url("-_8=") == b"\xfb\xff"


@pytest.mark.parametrize(
    "text",
    ["", "-_8", "-_8=", "AAAA", "+/8", "a", "ab", "abc=", "ab==", "a===", "ab=c", "a b",
     "ab\n", "é", "ab*c", "=", "AA==AA", "Zm9v" * 30],
)  # fmt: skip
def test_base64url_reads_what_the_standard_library_reads_and_refuses_the_same(
    text: str,
) -> None:
    """``unb64url`` (its translation table made once, not a call): the bytes, or the
    ``ValueError`` with the message, of ``base64.b64decode(padded, altchars=b"-_",
    validate=True)``, which it was (a node's key and signature are read with it)."""
    import base64
    import binascii

    padded = text + "=" * (-len(text) % 4)
    try:
        expected: bytes | str = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        expected = f"not base64url ({exc})"
    try:
        got: bytes | str = unb64url(text)
    except ValueError as exc:
        got = str(exc)
    assert got == expected


def test_the_header_is_compact_ascii_json_in_unpadded_base64url() -> None:
    import base64
    import json

    from LLM_Mesh.core.receipt import encode_header

    value = encode_header({"model": "é", "n": [1, 2]})
    assert "=" not in value
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert raw == b'{"model":"\\u00e9","n":[1,2]}'
    assert json.loads(raw) == {"model": "é", "n": [1, 2]}


def test_a_part_says_why_it_is_invalid_and_a_receipt_its_hash() -> None:
    from LLM_Mesh.core.receipt import Part

    invalid = Part("n1", "k1", PartStatus.INVALID, 1, 2, HASH, "", "usage")
    assert invalid.to_json()["reason"] == "usage"
    assert "reason" not in Part("n1", "k1", PartStatus.MISSING, 1, 2, HASH).to_json()
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.5)
    receipt, h = signer.countersign("req", "m", 1, 2, HASH, [invalid])
    assert receipt.to_json()["receipt_hash"] == h == receipt.receipt_hash
    assert receipt.to_json("given")["receipt_hash"] == "given"
    assert NodeReceiptSigner(NODE_KEY).sign(
        registry_id="r", request_id="q", model="m", prompt_tokens=1, completion_tokens=2,
        output_sha256=HASH,
    )["v"] == 1  # fmt: skip


def test_money_half_stated_is_refused_in_words_and_the_fee_cap_is_allowed() -> None:
    """A part with only its amount or only its fee, settled or not, signs nothing; a fee of
    exactly MAX_FEE_BPS is allowed. Each refusal (a programmer's mistake) in its words."""
    from LLM_Mesh.core.pricing import MAX_FEE_BPS
    from LLM_Mesh.core.receipt import Money, Part, ReceiptBody
    from LLM_Mesh.core.receipt_old import old_receipt_bytes as receipt_bytes  # (3: the same
    # checks as version 4's, and 1 and 2)

    a = Part("n1", "k1", PartStatus.SIGNED, 1, 2, HASH, "sig")
    money = Money("user", MAX_FEE_BPS, 10)
    assert receipt_bytes(ReceiptBody("reg", "req", "m", 5, 1, 2, HASH,
                                     [replace(a, amount=10, fee=10)], "", money), 3)  # fmt: skip

    def refusal(parts: list[Part], version: int, money: Money | None) -> str:
        with pytest.raises(ValueError) as refused:
            receipt_bytes(ReceiptBody("reg", "req", "m", 5, 1, 2, HASH, parts, "", money), version)
        return str(refused.value)

    for half in (replace(a, amount=10), replace(a, fee=1)):
        assert refusal([half], 3, None) == "a receipt not settled signs no part's amount"
        assert refusal([half], 3, money) == "a settled receipt signs every part's amount and fee"
        assert refusal([half], 2, None) == "a version-2 receipt signs no amount"
    assert refusal([a], 3, Money("user", MAX_FEE_BPS + 1, 0)) == (
        f"a receipt's fee_bps is 0 to {MAX_FEE_BPS}"
    )
    assert refusal([a], 3, Money("user:1", 0, 0)) == (
        "a receipt's payer is one of ('user', 'pool'), not 'user:1'"
    )
    with pytest.raises(ValueError) as refused:
        receipt_bytes(ReceiptBody("reg", "req", "m", 5, 1, 2, HASH, [a], "ab" * 32), 1)
    assert str(refused.value) == f"receipt version 1 with client_id_hash {'ab' * 32!r}"


def test_an_encoding_ending_in_x_keeps_its_x_and_a_client_hash_with_x_is_refused() -> None:
    from LLM_Mesh.core.receipt import Part, ReceiptBody, b64url, receipt_bytes

    assert b64url(b"\x00\x00\x17") == "AAAX"  # 23: "X", no padding to strip
    assert b64url(b"\x00") == "AA"
    a = Part("n1", "k1", PartStatus.SIGNED, 1, 2, HASH, "sig")
    for bad in ("X" * 64, "ab" * 31 + "XX", "AB" * 32):
        with pytest.raises(ValueError) as refused:
            receipt_bytes(ReceiptBody("reg", "req", "m", 5, 1, 2, HASH, [a], bad))
        assert str(refused.value) == "client_id_hash is empty or 64 lowercase hex digits", bad


@pytest.mark.parametrize("bad", [-1, 2**63])
def test_every_single_count_the_receipt_signs_is_refused_out_of_range_in_words(bad: int) -> None:
    """The time, the money's fee rate and cost, and a part's amount and fee are each packed
    as one unsigned 64-bit count (``_u64``, not the token pairs' ``_counts``): each refused
    alone, outside [0, 2^63), with the same message (mut34: only the pairs' was read)."""
    from LLM_Mesh.core.receipt import Money, Part, ReceiptBody, receipt_bytes

    def part(amount: int = 5, fee: int = 1) -> Part:
        return Part("n1", "k1", PartStatus.MISSING, 1, 2, HASH, amount=amount, fee=fee)

    money = Money("user", 100, 5)
    receipt_bytes(
        ReceiptBody("r", "q", "m", 2**63 - 1, 0, 0, HASH, [part(2**63 - 1, 0)], money=money)
    )
    cases = [
        lambda: receipt_bytes(ReceiptBody("r", "q", "m", bad, 0, 0, HASH, [part()], money=money)),
        lambda: receipt_bytes(
            ReceiptBody("r", "q", "m", 0, 0, 0, HASH, [part()], money=Money("user", 0, bad))
        ),
        lambda: receipt_bytes(
            ReceiptBody("r", "q", "m", 0, 0, 0, HASH, [part(amount=bad)], money=money)
        ),
        lambda: receipt_bytes(
            ReceiptBody("r", "q", "m", 0, 0, 0, HASH, [part(fee=bad)], money=money)
        ),
    ]
    for call in cases:
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == "a receipt count is a whole number in [0, 2^63)"
