"""Ledger entries: canonical leaf bytes, validation, pseudonyms."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest

from LLM_Mesh.core.ledger_entry import (
    GENESIS_PREV,
    MINT,
    Transfer,
    entry_leaf,
    leaf_encoder,
    make_entry,
    pseudonym,
)
from LLM_Mesh.core.merkle import leaf_hash


def test_leaf_layout_is_the_documented_one() -> None:
    leaf = entry_leaf(
        7, 1_764_590_000_000_000, "grant", "mint", "pool", 5, None, None, GENESIS_PREV
    )
    expected = (
        b"llm-mesh/ledger-entry/v1\x00"
        + struct.pack(">Qq", 7, 1_764_590_000_000_000)
        + b"\x00\x05grant" + b"\x00\x04mint" + b"\x00\x04pool"
        + struct.pack(">Q", 5) + b"\x00\x00" + b"\x00\x00" + bytes(32)
    )  # fmt: skip
    assert leaf == expected


def test_every_field_changes_the_leaf() -> None:
    base = (3, 10, "settle", "user:aa", "operator:bb", 9, "req-1", "ab" * 32, bytes(32))
    seen = {entry_leaf(*base)}
    variants = [
        (4, *base[1:]), (3, 11, *base[2:]), (*base[:2], "fee", *base[3:]),
        (*base[:3], "user:ab", *base[4:]), (*base[:4], "operator:bc", *base[5:]),
        (*base[:5], 8, *base[6:]), (*base[:6], "req-2", *base[7:]), (*base[:6], None, *base[7:]),
        (*base[:7], "cd" * 32, base[8]), (*base[:8], b"\x01" * 32),
    ]  # fmt: skip
    for v in variants:
        seen.add(entry_leaf(*v))  # type: ignore[arg-type]
    assert len(seen) == len(variants) + 1


def test_make_entry_chains_and_hashes() -> None:
    t = Transfer("grant", MINT, "pool", 1_000_000)
    e0, h0 = make_entry(0, 5, t, GENESIS_PREV)
    e1, h1 = make_entry(1, 6, t, h0)
    assert e0.leaf_hash == h0.hex() and e1.prev_hash == h0.hex()
    assert h1 == leaf_hash(entry_leaf(1, 6, "grant", MINT, "pool", 1_000_000, None, None, h0))
    assert e1.to_json()["from"] == MINT and e1.to_json()["amount"] == 1_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": 0}, {"amount": -1}, {"amount": 1.5}, {"amount": True}, {"amount": 1 << 63},
        {"kind": "Bad Kind"}, {"from_account": "alice"}, {"to_account": "mint"},
        {"receipt_hash": "XYZ"}, {"request_id": ""},
    ],
)  # fmt: skip
def test_bad_transfers_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "kind": "grant",
        "from_account": MINT,
        "to_account": "pool",
        "amount": 1,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        Transfer(**args)  # type: ignore[arg-type]


def test_pseudonyms_are_stable_and_hide_names() -> None:
    p = pseudonym("operator", "alice")
    digest = hashlib.sha256(b"llm-mesh/account/v1\x00operator\x00alice").hexdigest()
    assert p == "operator:" + digest[:24] and "alice" not in p
    assert pseudonym("user", "alice") != p
    with pytest.raises(ValueError):
        pseudonym("admin", "x")


def test_the_verifiers_leaf_encoder_makes_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("LLM_Mesh.core.ledger_entry.MAX_CACHED_TRIPLES", 3)  # it clears too
    rng = random.Random(7)
    encode = leaf_encoder()
    words = ["settle", "fee", "", "ü" * 300, "user:x", "operator:y", "network"]
    for _ in range(500):
        args = (
            rng.randrange(1 << 64), rng.randrange(-(1 << 63), 1 << 63), rng.choice(words),
            rng.choice(words), rng.choice(words), rng.randrange(1 << 64),
            rng.choice([None, "", "req-1", "q\"\n"]), rng.choice([None, "", "ab" * 32]),
            rng.randbytes(32),
        )  # fmt: skip
        assert encode(*args) == entry_leaf(*args)
    good = (1, 2, "settle", "a", "b", 3, None, None, bytes(32))
    for bad, exc in (
        ((1, 2, "x" * 65_536, "a", "b", 3, None, None, bytes(32)), ValueError),
        ((1, 2, "settle", "a", "b", 3, "r" * 65_536, None, bytes(32)), ValueError),
        ((1, 2, "settle", "a", "b", 3, None, None, bytes(31)), ValueError),
        ((1, 2, 5, "a", "b", 3, None, None, bytes(32)), AttributeError),
        ((1, 2, "settle", "a", "b", 1 << 64, None, None, bytes(32)), struct.error),
    ):
        with pytest.raises(exc):
            encode(*bad)  # type: ignore[arg-type]
        with pytest.raises(exc):
            entry_leaf(*bad)  # type: ignore[arg-type]
    assert encode(*good) == entry_leaf(*good)
