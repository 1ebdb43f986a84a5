"""Ledger entries: canonical leaf bytes, validation, pseudonyms."""

from __future__ import annotations

import hashlib
import random
import re
import struct
from typing import Any

import pytest

from LLM_Mesh.core.ledger_entry import (
    GENESIS_PREV,
    MINT,
    Pseudonyms,
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


def test_held_accounts_are_node_pseudonyms_of_their_own_kind() -> None:
    from LLM_Mesh.core.ledger_entry import ACCOUNT_RE, Pseudonyms, is_held_account

    keyed = Pseudonyms(bytes(32))
    h = keyed.held("node-a")
    assert h.startswith("held:") and ACCOUNT_RE.match(h)
    assert h.split(":")[1] != keyed.node("node-a").split(":")[1]
    assert is_held_account(h) and not is_held_account(keyed.operator("node-a"))
    assert not is_held_account(None)
    Transfer("hold", "pool", h, 5, "r1")  # a valid entry


def test_the_leaf_holds_the_full_unsigned_and_signed_ranges() -> None:
    """seq and amount are uint64, time_us an int64 (before 1970 too), string lengths uint16."""
    from LLM_Mesh.core.ledger_entry import DOMAIN, entry_leaf

    seq, time_us, amount = 2**64 - 1, -(2**63), 2**63
    long_id = "r" * 40_000
    leaf = entry_leaf(seq, time_us, "settle", "mint", "pool", amount, long_id, None, bytes(32))
    expected = b"".join(
        [
            DOMAIN,
            seq.to_bytes(8, "big"),
            time_us.to_bytes(8, "big", signed=True),
            b"\x00\x06settle",
            b"\x00\x04mint",
            b"\x00\x04pool",
            amount.to_bytes(8, "big"),
            (40_000).to_bytes(2, "big") + long_id.encode(),
            b"\x00\x00",
            bytes(32),
        ]
    )
    assert leaf == expected


def test_a_string_field_is_at_most_65535_bytes() -> None:
    from LLM_Mesh.core.ledger_entry import entry_leaf

    def leaf(rid: str) -> bytes:
        return entry_leaf(0, 0, "settle", "mint", "pool", 1, rid, None, bytes(32))

    assert leaf("é" * 32767 + "x")[-34 - 65535 - 2 : -34 - 65535] == b"\xff\xff"
    with pytest.raises(ValueError, match=r"^a ledger string field is at most 65535 bytes$"):
        leaf("x" * 65536)
    with pytest.raises(ValueError, match=r"^prev_hash is 32 bytes$"):
        entry_leaf(0, 0, "settle", "mint", "pool", 1, None, None, bytes(31))


def test_transfer_limits_are_inclusive() -> None:
    assert Transfer("grant", MINT, "pool", 1).amount == 1
    assert Transfer("grant", MINT, "pool", 2**63 - 1).amount == 2**63 - 1
    assert Transfer("grant", MINT, "pool", 5, request_id="r").request_id == "r"
    assert (
        Transfer("grant", MINT, "pool", 5, request_id="é" * 64).request_id == "é" * 64
    )  # 128 bytes
    with pytest.raises(ValueError, match=r"^a request id is 1 to 128 bytes$"):
        Transfer("grant", MINT, "pool", 5, request_id="é" * 64 + "x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "Grant"}, "bad ledger entry kind 'Grant'"),
        ({"to_account": "bank"}, "bad ledger account 'bank' (see core/ledger_entry.py)"),
        ({"to_account": MINT}, "a transfer moves between two different accounts"),
        ({"amount": 0}, "an amount is a whole number of micro-NetworkTokens >= 1, got 0"),
        ({"receipt_hash": "AB" * 32}, "a receipt hash is 64 lowercase hex digits"),
    ],
)
def test_a_refused_transfer_says_why(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "kind": "grant",
        "from_account": MINT,
        "to_account": "pool",
        "amount": 5,
    }
    args.update(kwargs)
    with pytest.raises(ValueError) as exc:
        Transfer(**args)  # type: ignore[arg-type]
    assert str(exc.value) == message


def test_keyed_accounts_are_an_hmac_no_one_computes_from_the_name_alone() -> None:
    """Found 2026-12-03: an operator's account was an unkeyed hash of its name, so a guessed
    name confirmed it; a keyed account is an HMAC under the ledger's secret key."""
    import hmac

    from LLM_Mesh.core.ledger_entry import Pseudonyms, is_legacy_account

    key = bytes(range(32))
    a = Pseudonyms(key).operator("alice")
    mac = hmac.digest(key, b"llm-mesh/account/v2\x00operator\x00alice", "sha256").hex()
    assert a == "operator:" + mac[:32]
    assert a == Pseudonyms(key).operator("alice")  # one key, one account: every replica's
    assert Pseudonyms(bytes(32)).operator("alice") != a != pseudonym("operator", "alice")
    assert is_legacy_account(pseudonym("operator", "alice")) and not is_legacy_account(a)
    assert not is_legacy_account(pseudonym("user", "alice"))
    with pytest.raises(ValueError):
        Pseudonyms(key).of("user", "alice")  # user accounts stay unkeyed
    with pytest.raises(ValueError):
        Pseudonyms(b"short")


def test_nodes_have_pseudonyms_too_and_anything_else_is_refused() -> None:
    assert pseudonym("node", "n1").startswith("node:") and pseudonym("node", "n1") != pseudonym(
        "operator", "n1"
    )
    for kind, name in (("bank", "x"), ("user", "")):
        with pytest.raises(ValueError) as exc:
            pseudonym(kind, name)
        assert str(exc.value) == "an account pseudonym is for a user, operator or node with a name"


def test_an_entry_is_published_with_every_field_named() -> None:
    from LLM_Mesh.core.ledger_entry import entry_leaf

    rh = "ab" * 32
    t = Transfer("settle", MINT, "pool", 7, request_id="req-1", receipt_hash=rh)
    entry, h = make_entry(3, 1_000, t, GENESIS_PREV)
    assert entry.to_json() == {
        "object": "ledger.entry", "seq": 3, "time_us": 1_000, "kind": "settle", "from": MINT,
        "to": "pool", "amount": 7, "request_id": "req-1", "receipt_hash": rh,
        "prev_hash": GENESIS_PREV.hex(), "leaf_hash": h.hex(),
    }  # fmt: skip
    # the leaf commits to the receipt hash
    leaf = entry_leaf(3, 1_000, "settle", MINT, "pool", 7, "req-1", rh, GENESIS_PREV)
    assert h == leaf_hash(leaf)
    assert h != leaf_hash(
        entry_leaf(3, 1_000, "settle", MINT, "pool", 7, "req-1", None, GENESIS_PREV)
    )


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


def test_a_scope_tag_is_keyed_and_unambiguous() -> None:
    """``Pseudonyms.tag`` (an anonymous settlement key's scope): 8 hex digits under the
    ledger's key; another key, or the same text split otherwise, gives another tag."""
    from LLM_Mesh.core.ledger_entry import Pseudonyms

    one, two = Pseudonyms(bytes(32)), Pseudonyms(b"\x01" * 32)
    tag = one.tag("0a1b2c3d", "ip:203.0.113.7", "f" * 64)
    assert len(tag) == 8 and int(tag, 16) >= 0
    assert tag == one.tag("0a1b2c3d", "ip:203.0.113.7", "f" * 64)
    assert tag != two.tag("0a1b2c3d", "ip:203.0.113.7", "f" * 64)
    assert one.tag("a", "bc") != one.tag("ab", "c")


def test_probe_accounts_have_a_users_form_and_are_keyed() -> None:
    """Keyed-class probes are paid from them (registry/canary.py): ``user:`` + 24 hex, as
    ``pseudonym("user", key id)``; distinct, and another key makes others."""
    from LLM_Mesh.core.ledger_entry import PROBE_ACCOUNTS, Pseudonyms

    one, other = Pseudonyms(bytes(32)), Pseudonyms(bytes([1]) * 32)
    made = [one.probe(i) for i in range(1, PROBE_ACCOUNTS + 1)]
    user = pseudonym("user", "key_0123456789ab")
    assert all(re.fullmatch(r"user:[0-9a-f]{24}", a) for a in [*made, user])
    assert len(set(made)) == PROBE_ACCOUNTS
    assert set(made).isdisjoint(other.probe(i) for i in range(1, PROBE_ACCOUNTS + 1))
    for bad in (0, PROBE_ACCOUNTS + 1, True):
        with pytest.raises(ValueError, match="a probe account is 1 to"):
            one.probe(bad)


# written against the module's mutants (mut33, 2026-12-06)

ARGS: tuple[Any, ...] = (
    7,
    1_700_000_000_000_000,
    "settle",
    "user:a",
    "operator:b",
    5,
    "req",
    "ab" * 32,
)


def test_a_held_account_has_its_unkeyed_pseudonym() -> None:
    held = pseudonym("held", "node-1")
    assert re.fullmatch(r"held:[0-9a-f]{24}", held)
    assert held != pseudonym("node", "node-1")


def test_keyed_account_refusals_in_words() -> None:
    with pytest.raises(ValueError) as short:
        Pseudonyms(b"k" * 31)
    assert str(short.value) == "an account key is at least 32 bytes"
    keyed = Pseudonyms(b"k" * 32)
    for kind, name in (("user", "u"), ("operator", "")):
        with pytest.raises(ValueError) as caught:
            keyed.of(kind, name)
        assert str(caught.value) == "a keyed account is for an operator or a node with a name"


@pytest.mark.parametrize("field", [2, 3, 4, 6, 7])
def test_each_string_field_over_65535_bytes_is_refused_in_words(field: int) -> None:
    """``kind``, ``from``, ``to``, ``request_id``, ``receipt_hash``: 65,535 bytes fit
    (the same bytes from both encoders), one more is a ``ValueError``, not a
    ``struct.error``."""
    encode = leaf_encoder()
    fits: list[Any] = [*ARGS[:field], "x" * 0xFFFF, *ARGS[field + 1 :], GENESIS_PREV]
    assert encode(*fits) == entry_leaf(*fits)
    over: list[Any] = [*ARGS[:field], "x" * 0x10000, *ARGS[field + 1 :], GENESIS_PREV]
    for fn in (entry_leaf, leaf_encoder()):
        with pytest.raises(ValueError) as caught:
            fn(*over)
        assert str(caught.value) == "a ledger string field is at most 65535 bytes"


def test_a_prev_hash_not_of_32_bytes_is_refused_in_words_by_both_encoders() -> None:
    short: list[Any] = [*ARGS, GENESIS_PREV[:31]]
    for fn in (entry_leaf, leaf_encoder()):
        with pytest.raises(ValueError) as caught:
            fn(*short)
        assert str(caught.value) == "prev_hash is 32 bytes"
