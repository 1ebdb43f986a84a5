"""A receipt against its request's public ledger entries (``core/receipt_ledger.py``):
a registry that charged or paid other amounts than it countersigned is named."""

from __future__ import annotations

import dataclasses
from typing import Any

from LLM_Mesh.core.ledger_entry import GENESIS_PREV, MINT, NETWORK, Transfer, make_entry
from LLM_Mesh.core.merkle import leaf_hash, root_of
from LLM_Mesh.core.receipt import Receipt
from LLM_Mesh.core.receipt_ledger import (
    inclusion_finding,
    ledger_findings,
    seen_finding,
    seen_sizes,
    unchecked_debits,
    unsettled_findings,
)
from LLM_Mesh.core.receipt_verify import Found, verify
from tests.core.ledger_audit_fixtures import subproof
from tests.core.receipt_verify_fixtures import KEYS, NODE_A, NODE_B, TEXT, make_receipt

USER = "user:" + "a" * 32
FRIEND = "user:" + "f" * 32
OP_A, OP_B = "operator:" + "1" * 32, "operator:" + "2" * 32


def _receipt(amounts: list[int] | None = None, payer: str = "user") -> Receipt:
    two = [(NODE_A, TEXT[:8], 2, False), (NODE_B, TEXT[8:], 2, False)]
    return verify(
        Found(make_receipt(parts=two, amounts=amounts or [1000, 2000], payer=payer)), KEYS
    )


def _entries(transfers: list[Transfer]) -> list[dict[str, Any]]:
    out, prev = [], GENESIS_PREV
    for i, t in enumerate(transfers):
        e, prev = make_entry(10 + i, 1_700_000_000_000_000 + i, t, prev)
        out.append(e.to_json())
    return out


def _paid(r: Receipt, payer: str = USER, shares: tuple[int, ...] = (950, 1900),
          fees: tuple[int, ...] = (50, 100), rh: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    h = r.receipt_hash if rh is None else rh
    ts = [
        Transfer("settle", payer, op, s, "req-1", h)
        for op, s in zip((OP_A, OP_B), shares, strict=False)
    ]
    ts += [Transfer("fee", payer, NETWORK, f, "req-1", h) for f in fees]
    return _entries(ts)


def test_the_entries_settlement_writes_agree_with_the_receipt() -> None:
    r = _receipt()
    assert ledger_findings(r, _paid(r)) == []
    pool = _receipt(payer="pool")
    assert ledger_findings(pool, _paid(pool, payer="pool")) == []


def test_a_fee_above_the_signed_one_is_named() -> None:
    r = _receipt()
    found = ledger_findings(r, _paid(r, fees=(50, 150)))
    assert any("the fees are [50, 150]" in f and "[50, 100]" in f for f in found)


def test_a_nodes_share_dropped_or_cut_is_named() -> None:
    r = _receipt()
    assert any("shares" in f for f in ledger_findings(r, _paid(r, shares=(950,))))
    assert any("shares" in f for f in ledger_findings(r, _paid(r, shares=(950, 1000))))


def test_an_extra_share_to_a_friend_is_named() -> None:
    r = _receipt()
    extra = _entries([Transfer("settle", USER, FRIEND, 500, "req-1", r.receipt_hash)])
    assert any("shares" in f for f in ledger_findings(r, _paid(r) + extra))


def test_another_payer_than_the_receipts_is_named() -> None:
    r = _receipt()  # a user paid: the pool charged instead (or two users)
    assert any("paid by 'pool'" in f for f in ledger_findings(r, _paid(r, payer="pool")))
    mixed = _paid(r)[:3] + _paid(r, payer=FRIEND)[3:]
    assert any("2 accounts" in f for f in ledger_findings(r, mixed))


def test_no_entry_of_the_receipt_is_named() -> None:
    r = _receipt()
    assert any("no entry" in f for f in ledger_findings(r, []))
    other = "0" * 64
    found = ledger_findings(r, _paid(r, rh=other))
    assert any("another receipt" in f for f in found)
    assert any("no entry" in f for f in found)


def test_an_entry_whose_fields_were_edited_is_named() -> None:
    r = _receipt()
    edited = _paid(r, fees=(50, 150))
    edited[3]["amount"] = 100  # the shown amount agrees; its leaf hash does not
    assert any("leaf_hash" in f for f in ledger_findings(r, edited))


def test_a_receipt_without_amounts_has_nothing_to_compare() -> None:
    r = verify(Found(make_receipt()), KEYS)
    assert ledger_findings(r, []) == [
        "the receipt signs no amounts (not settled, or version 1 or 2): nothing to compare"
    ]


def test_a_payment_under_a_receipt_signed_not_settled_is_named() -> None:
    """Found 2026-12-07 (review41c): "not settled" is the registry's signed word per answer;
    a payment of its request is a charge it signed it did not make. A version 2 receipt
    signs no money either way: nothing to name."""
    unpaid = verify(Found(make_receipt()), KEYS)
    log = _entries([Transfer("settle", USER, OP_A, 7, "req-1", unpaid.receipt_hash),
                    Transfer("grant", MINT, USER, 7, "req-1")])  # fmt: skip
    (f,) = unsettled_findings(unpaid, log)
    assert f.startswith(f"entry 10 (settle) takes 7 µNT from {USER!r}"), f
    assert f.endswith("the receipt signs that it was not settled (nobody charged)"), f
    assert unsettled_findings(unpaid, log[1:]) == []
    old = verify(Found(make_receipt(version=2)), KEYS)
    assert unsettled_findings(old, log) == []
    paid = verify(Found(make_receipt(amounts=[100])), KEYS)
    assert unsettled_findings(paid, log) == []


def test_a_payment_under_a_version_1_or_2_receipt_is_said_unchecked() -> None:
    """Found 2026-12-07 (money42): a receipt of a version that signs no money had "nothing
    to compare" whatever its request paid; each payment is now named, with the sum, as
    not checkable (a note: old data an honest registry made, nothing signed to disagree
    with). A receipt that signs money, or one nothing was paid under: no note."""
    old = verify(Found(make_receipt(version=2)), KEYS)
    older = verify(Found(make_receipt(version=1)), KEYS)
    log = _entries([Transfer("settle", USER, OP_A, 7, "req-1", old.receipt_hash),
                    Transfer("fee", USER, NETWORK, 1, "req-1", old.receipt_hash),
                    Transfer("grant", MINT, USER, 7, "req-1")])  # fmt: skip
    note = unchecked_debits(old, log)
    assert note is not None and note.startswith(
        "CANNOT BE CHECKED: entries 10 (settle, 7 µNT), 11 (fee, 1 µNT) take 8 µNT for this "
        "request under a version-2 receipt, which signs no amounts"
    ), note
    assert "version-1 receipt" in (unchecked_debits(older, log) or "")
    assert unchecked_debits(old, log[2:]) is None  # a grant pays nothing for it
    for signs_money in (make_receipt(), make_receipt(amounts=[100])):
        assert unchecked_debits(verify(Found(signs_money), KEYS), log) is None
    many = _entries([Transfer("settle", USER, OP_A, 1, "req-1")] * 25)
    said = unchecked_debits(old, many) or ""
    assert "and 15 more take 25 µNT" in said and said.count("(settle") == 10, said


def test_an_entry_with_a_number_its_leaf_cannot_hold_is_named_not_raised() -> None:
    """Found 2026-12-05: a registry's page of the request with a ``time_us`` (or ``seq``,
    ``amount``) of 1.5, -1 or 2^64 raised ``struct.error`` out of ``_leaf_ok``: a
    traceback from ``receipt verify --ledger`` (and ``ledger statement``) instead of a
    finding."""
    r = _receipt()
    for field, bad in [("time_us", 1.5), ("time_us", -1), ("time_us", 2**64), ("amount", 2**64)]:
        edited = _paid(r)
        edited[0][field] = bad
        assert any("leaf_hash" in f for f in ledger_findings(r, edited)), (field, bad)


def test_a_page_listing_an_entry_twice_or_out_of_order_is_judged_as_listed() -> None:
    """Held 2026-12-05 (hostile29): the registry's page of a request lists one honest
    entry twice (a charge shown twice: named), or its entries out of order (the same
    charges: agree)."""
    r = _receipt()
    honest = _paid(r)
    assert any("the nodes' shares" in f for f in ledger_findings(r, [*honest, honest[0]]))
    assert any("the fees are" in f for f in ledger_findings(r, [*honest, honest[2]]))
    assert ledger_findings(r, honest[::-1]) == []


# inclusion_finding had no core test (mutation testing, mut31b): a two-entry tree.


def test_an_entry_is_in_the_signed_tree_only_with_its_audit_path() -> None:
    e0, prev = make_entry(
        0, 1, Transfer("settle", "user:u", "operator:o", 5, "r", None), GENESIS_PREV
    )
    e1, _ = make_entry(1, 2, Transfer("fee", "user:u", NETWORK, 1, "r", None), prev)
    j0, j1 = e0.to_json(), e1.to_json()
    h0, h1 = bytes.fromhex(j0["leaf_hash"]), bytes.fromhex(j1["leaf_hash"])
    root = root_of([h0, h1])
    assert inclusion_finding(j0, 2, root, [h1]) is None
    assert inclusion_finding(j1, 2, root, [h0]) is None
    said = (
        "entry {} is not in the signed checkpoint of size 2: its inclusion proof fails (the "
        "registry's page of this request is not its log)"
    )
    assert inclusion_finding(j0, 2, root, [h0]) == said.format(0)  # another path
    assert inclusion_finding(j1, 2, root, [h1]) == said.format(1)
    assert inclusion_finding(dict(j0, seq="0"), 2, root, [h1]) == said.format("0")
    assert inclusion_finding(dict(j0, leaf_hash="zz"), 2, root, [h1]) == said.format(0)
    assert inclusion_finding(dict(j0, leaf_hash=None), 2, root, [h1]) == said.format(0)


def _honest(r: Receipt) -> list[dict[str, Any]]:
    """What settlement writes for ``r``: each part's share less its fee, and its fee."""
    ts = [
        Transfer("settle", USER, OP_A, p.amount - p.fee, "req-1", r.receipt_hash)
        for p in r.parts
        if p.amount is not None and p.fee is not None and p.amount > p.fee
    ]
    ts += [Transfer("fee", USER, NETWORK, p.fee, "req-1", r.receipt_hash)
           for p in r.parts if p.fee]  # fmt: skip
    return _entries(ts)


def test_shares_and_fees_of_1_or_0_and_equal_parts_are_counted_as_signed() -> None:
    """A part of 20 µNT (a fee of 1), one of 1 (all of it the fee: rounded up since
    2026-12-06, ``money34``), one of 0 (nothing), two equal parts (each counted), a receipt
    whose shares are all 0: settlement's entries agree."""
    for amounts, parts in (([20, 1], [(20, 1), (1, 1)]), ([1000, 0], [(1000, 50), (0, 0)]),
                           ([1000, 1000], [(1000, 50)] * 2), ([1, 1], [(1, 1)] * 2)):  # fmt: skip
        r = _receipt(amounts)
        assert [(p.amount, p.fee) for p in r.parts] == parts
        assert ledger_findings(r, _honest(r)) == [], amounts
        assert ledger_findings(r, _honest(r)[1:]) != [], amounts  # one entry short


def test_no_entry_for_a_receipt_of_shares_only_is_said_in_full() -> None:
    r = _receipt([1, 1])
    assert ledger_findings(r, []) == [
        f"no entry of the ledger names this receipt ({r.receipt_hash}): it charged 2 µNT that "
        "the log does not show (settlement writes a request within seconds of its answer: a "
        "receipt just made may be ahead of it)"
    ]


def test_each_entry_finding_in_full_and_the_entries_after_it_still_judged() -> None:
    r = _receipt()
    other = "ab" * 32
    stray = _entries([Transfer("settle", USER, OP_A, 950, "req-1", other)])
    astray = _entries([Transfer("fee", USER, OP_B, 50, "req-1", r.receipt_hash)])
    assert ledger_findings(r, [*stray, *_paid(r)]) == [
        f"entry 10 (settle) of this request names another receipt ('{other}'), not this one "
        f"({r.receipt_hash})"
    ]
    found = ledger_findings(r, [*astray, *_paid(r, fees=(100,))])
    assert found == [f"entry 10 (fee) goes to '{OP_B}', not '{NETWORK}'"]
    odd = _entries([Transfer("settle", USER, OP_A, 1, "req-1", r.receipt_hash)])
    odd[0]["amount"] = True  # hashes as 1: only its type is wrong
    assert ledger_findings(r, [*odd, *_paid(r)]) == [
        "entry 10 (settle): amount or from of another type"
    ]


def test_an_entry_of_another_kind_among_them_is_passed_over() -> None:
    r = _receipt()
    grant = _entries([Transfer("grant", "mint", USER, 10, "req-1", r.receipt_hash)])
    assert ledger_findings(r, [*grant, *_paid(r)]) == []


# written against the module's mutants (mut33, 2026-12-06): seen_sizes and seen_finding had
# no core test (tests/cli's fork test drives them through a registry)


def test_an_edited_entry_is_named_and_the_entries_after_it_still_judged() -> None:
    r = _receipt()
    edited = _paid(r)
    edited[0]["amount"] = 951  # its leaf hash does not agree: not counted as a share
    assert ledger_findings(r, edited) == [
        "entry 10 (settle): its fields do not hash to its leaf_hash",
        "the nodes' shares (settle/hold) are [1900] µNT: the receipt signs [950, 1900]",
    ]


def test_a_part_whose_fee_is_all_of_it_wants_no_share() -> None:
    """At a fee of 100 % (``fee_bps`` 10000 is allowed) a part's share is 0: settlement
    writes its fee alone, and no share of 0 is wanted."""
    r = _receipt([1000, 2000])
    whole = dataclasses.replace(
        r, parts=tuple(dataclasses.replace(p, fee=p.amount) for p in r.parts)
    )
    fees = _entries([Transfer("fee", USER, NETWORK, a, "req-1", whole.receipt_hash)
                     for a in (1000, 2000)])  # fmt: skip
    assert ledger_findings(whole, fees) == []


LEAVES = [leaf_hash(b"entry %d" % i) for i in range(8)]
ROOTS = [root_of(LEAVES[:n]) for n in range(9)]
SPLIT = (
    "the registry's signed checkpoint of size {} is not the log an earlier `llm-mesh ledger "
    "verify` checked (size {}): no consistency proof joins them, so its proofs are of another "
    "history shown to this check (a split view); keep the receipt and run `llm-mesh ledger "
    "verify` to see the log everyone else reads"
)


def test_the_proof_asked_for_is_older_size_first() -> None:
    assert seen_sizes((0, ROOTS[0]), 5) is None  # nothing seen
    assert seen_sizes((-1, ROOTS[0]), 5) is None
    assert seen_sizes((5, ROOTS[5]), 5) is None  # the same size: roots compared
    assert seen_sizes((1, ROOTS[1]), 5) == (1, 5)
    assert seen_sizes((3, ROOTS[3]), 5) == (3, 5)
    assert seen_sizes((7, ROOTS[7]), 5) == (5, 7)  # the checkpoint older than the log seen


def test_nothing_seen_is_no_finding() -> None:
    assert seen_finding((0, b""), 5, ROOTS[5], []) is None
    assert seen_finding((-3, b""), 5, ROOTS[5], [b"x" * 32]) is None


def test_a_checkpoint_of_the_size_seen_must_be_its_root_with_no_proof() -> None:
    assert seen_finding((5, ROOTS[5]), 5, ROOTS[5], []) is None
    assert seen_finding((5, ROOTS[5]), 5, ROOTS[4], []) == SPLIT.format(5, 5)
    assert seen_finding((5, ROOTS[5]), 5, ROOTS[5], [ROOTS[1]]) == SPLIT.format(5, 5)


def test_a_newer_checkpoint_is_joined_to_the_log_seen_by_its_proof() -> None:
    for size in range(1, 8):
        proof = subproof(size, LEAVES[:8], True)
        assert seen_finding((size, ROOTS[size]), 8, ROOTS[8], proof) is None, size
        other = root_of([*LEAVES[:7], leaf_hash(b"forked")])
        assert seen_finding((size, ROOTS[size]), 8, other, proof) == SPLIT.format(8, size)
    assert seen_finding((1, ROOTS[1]), 8, ROOTS[8], []) == SPLIT.format(8, 1)


def test_an_older_checkpoint_is_joined_to_the_log_seen_by_its_proof() -> None:
    """The checkpoint behind the log an earlier check read (seen 8, signed 3): the proof
    from the checkpoint's size to the size seen, the checkpoint's root the older."""
    proof = subproof(3, LEAVES[:8], True)
    assert seen_finding((8, ROOTS[8]), 3, ROOTS[3], proof) is None
    assert seen_finding((8, ROOTS[8]), 3, ROOTS[2], proof) == SPLIT.format(3, 8)
    assert seen_finding((8, ROOTS[7]), 3, ROOTS[3], proof) == SPLIT.format(3, 8)


# mutation testing, mut42 (2026-12-07)


def test_a_share_of_1_left_after_the_fee_is_wanted_as_signed() -> None:
    """Parts of 2 µNT (a fee of 1, rounded up): each node's share is 1 µNT, which the
    receipt signs; settlement's entries agree, a missing one is named."""
    r = _receipt([2, 2])
    assert [(p.amount, p.fee) for p in r.parts] == [(2, 1), (2, 1)]
    assert ledger_findings(r, _honest(r)) == []
    assert ledger_findings(r, _honest(r)[1:]) == [
        "the nodes' shares (settle/hold) are [1] µNT: the receipt signs [1, 1]"
    ]


def test_the_unchecked_note_in_full_and_exactly_10_entries_named_with_none_counted() -> None:
    old = verify(Found(make_receipt(version=2)), KEYS)
    one = _entries([Transfer("hold", USER, OP_A, 7, "req-1", old.receipt_hash)])
    assert unchecked_debits(old, one) == (
        "CANNOT BE CHECKED: entry 10 (hold, 7 µNT) takes 7 µNT for this request under a "
        "version-2 receipt, which signs no amounts (receipts made before 2026-12-05; a "
        "registry of today signs version 4): what was charged is the registry's word alone"
    )
    ten = unchecked_debits(old, _entries([Transfer("settle", USER, OP_A, 2, "req-1")] * 10))
    assert ten is not None and "more" not in ten and ten.count("(settle, 2 µNT)") == 10
    assert "entries 10 (settle, 2 µNT), " in ten and "19 (settle, 2 µNT) take 20 µNT" in ten
