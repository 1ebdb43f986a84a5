"""The ledger audit, purely: a published ledger (entries, signed checkpoints, keys, proofs)
built in memory, then tampered with in each way the auditor must name.

The database-backed round trip (rows really changed in PostgreSQL) is
``tests/registry/test_ledger.py``; these tests feed :class:`Auditor` directly."""

from __future__ import annotations

import pytest

from LLM_Mesh.core import ledger_audit
from LLM_Mesh.core.ledger_audit import Auditor, Report
from LLM_Mesh.core.ledger_entry import (
    ENTRY_FIELDS,
    GENESIS_PREV,
    MINT,
    entry_leaf,
    pseudonym,
)
from LLM_Mesh.core.merkle import EMPTY_ROOT, leaf_hash, root_of
from tests.core.ledger_audit_fixtures import (
    ALICE,
    BOB,
    ORIGIN,
    Entry,
    Registry,
    audit,
    kinds,
    ledger,
)


def _raw(seq: int, prev: bytes, *, amount: object = 5, frm: str = ALICE, to: str = BOB,
         time_us: int = 1_000, hashed_amount: int | None = None) -> Entry:  # fmt: skip
    """An entry whose leaf hash is computed from its fields (whatever they are)."""
    leaf = entry_leaf(seq, time_us, "settle", frm, to,
                      hashed_amount if hashed_amount is not None else amount,  # type: ignore[arg-type]
                      None, None, prev)  # fmt: skip
    return {
        "seq": seq, "time_us": time_us, "kind": "settle", "from": frm, "to": to,
        "amount": amount, "request_id": None, "receipt_hash": None,
        "prev_hash": prev.hex(), "leaf_hash": leaf_hash(leaf).hex(),
    }  # fmt: skip


# --- an honest ledger -----------------------------------------------------------------


def test_an_honest_ledger_with_checkpoints_at_every_size_audits_clean() -> None:
    entries, leaves = ledger(19)
    reg = Registry()
    cps = [reg.checkpoint(n, root_of(leaves[:n])) for n in range(1, 20)]
    a = audit(entries, cps, reg)
    report = a.finish()
    assert report.ok and report.findings == []
    assert (report.entries, report.checkpoints) == (19, 19)
    assert a.signed_sizes == list(range(1, 20))
    assert a.signed_root(5) == root_of(leaves[:5]) and a.signed_root(20) is None
    settled = sum(10 + i for i in range(18))
    assert report.balances == {MINT: -1_000_000, ALICE: 1_000_000 - settled, BOB: settled}


def test_the_auditors_own_tree_agrees_with_the_reference_root() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(33)]
    tree = ledger_audit._Tree()
    assert tree.root() == EMPTY_ROOT
    for n, h in enumerate(leaves, start=1):
        tree.push(h)
        assert (tree.size, tree.root()) == (n, root_of(leaves[:n]))


def test_no_checkpoints_and_no_entries_is_an_empty_clean_report() -> None:
    report = audit([]).finish()
    assert report.ok and (report.entries, report.checkpoints, report.balances) == (0, 0, {})


# --- each tamper, named ---------------------------------------------------------------


def test_a_changed_amount_is_named_changed_and_breaks_the_signed_root() -> None:
    entries, leaves = ledger(6)
    reg = Registry()
    entries[3]["amount"] = 1
    report = audit(entries, [reg.checkpoint(6, root_of(leaves))], reg).finish()
    # the next entry chains to the published leaf hash, not to what entry 3 now hashes to
    assert kinds(report) == ["changed", "chain", "root"]
    assert (
        report.findings[0].message == "entry 3 was changed: its fields do not hash to its leaf_hash"
    )
    assert report.findings[2].message == "checkpoint at size 6: root is not the entries' root"


@pytest.mark.parametrize("field", ["kind", "from", "to", "request_id", "receipt_hash", "time_us"])
def test_any_changed_field_is_named_changed(field: str) -> None:
    entries, _ = ledger(4)
    changed = {"kind": "settlez", "from": MINT, "to": pseudonym("user", "carol"),
               "request_id": "req-x", "receipt_hash": "ab" * 32, "time_us": 1_004}  # fmt: skip
    entries[3][field] = changed[field]
    assert kinds(audit(entries).finish()) == ["changed"]


def test_one_deleted_row_is_named_missing_and_nothing_else() -> None:
    entries, _ = ledger(6)
    del entries[4]
    report = audit(entries).finish()
    assert kinds(report) == ["missing"]
    assert report.findings[0].message == "entry 4 is missing (the next published entry is 5)"
    assert report.entries == 5


def test_several_deleted_rows_are_named_as_one_range() -> None:
    entries, _ = ledger(8)
    del entries[2:5]
    report = audit(entries).finish()
    assert [f.message for f in report.findings] == [
        "entry 2 to 4 is missing (the next published entry is 5)"
    ]


def test_a_row_published_twice_is_named_reordered() -> None:
    entries, _ = ledger(4)
    report = audit([*entries, entries[1]]).finish()
    assert kinds(report) == ["reordered", "time"]  # not "chain": it is not in its place
    assert report.findings[0].message == "entry 1 comes after entry 3"


@pytest.mark.parametrize(("a", "b"), [(0, 1), (5, 6), (3, 19), (2, 18)])
def test_two_swapped_rows_are_named_reordered_with_where_each_was_written(a: int, b: int) -> None:
    entries, _ = ledger(20)
    entries[a]["seq"], entries[b]["seq"] = b, a
    entries[a], entries[b] = entries[b], entries[a]
    msgs = [f.message for f in audit(entries).finish().findings if f.kind == "reordered"]
    assert msgs == [
        f"entry {a} is the entry written as {b} (rows reordered)",
        f"entry {b} is the entry written as {a} (rows reordered)",
    ]


def test_rows_swapped_further_apart_than_the_search_window_are_named_changed() -> None:
    entries, _ = ledger(20)
    a, b = 1, 18  # 17 apart: the auditor looks 16 either way
    entries[a]["seq"], entries[b]["seq"] = b, a
    entries[a], entries[b] = entries[b], entries[a]
    report = audit(entries).finish()
    assert "reordered" not in kinds(report)
    assert [f.message for f in report.findings if f.kind == "changed"] == [
        f"entry {a} was changed: its fields do not hash to its leaf_hash",
        f"entry {b} was changed: its fields do not hash to its leaf_hash",
    ]


def test_a_rewritten_entry_that_does_not_chain_to_its_predecessor_is_named_chain() -> None:
    entries, leaves = ledger(3)
    forged = _raw(3, bytes(range(32)), time_us=2_000)
    report = audit([*entries, forged]).finish()
    assert kinds(report) == ["chain"]
    assert report.findings[0].message == "entry 3: prev_hash is not entry 2's leaf hash"
    honest = _raw(3, leaves[-1], time_us=2_000)
    assert audit([*entries, honest]).finish().ok


def test_the_first_entry_chains_to_the_genesis_hash() -> None:
    assert audit([_raw(0, GENESIS_PREV, frm=MINT)]).finish().ok
    assert kinds(audit([_raw(0, bytes([1]) * 32, frm=MINT)]).finish()) == ["chain"]


def test_an_entry_older_than_its_predecessor_is_named_time() -> None:
    first = _raw(0, GENESIS_PREV, frm=MINT, time_us=500)
    same = _raw(1, bytes.fromhex(str(first["leaf_hash"])), frm=MINT, time_us=500)
    older = _raw(2, bytes.fromhex(str(same["leaf_hash"])), frm=MINT, time_us=499)
    report = audit([first, same, older]).finish()
    assert kinds(report) == ["time"]
    assert report.findings[0].message == "entry 2 is older than the entry before it"


@pytest.mark.parametrize("amount", [0, -5, True, "7", 2.0, None])
def test_an_amount_that_is_not_a_whole_number_of_at_least_one_is_named(amount: object) -> None:
    e = _raw(0, GENESIS_PREV, frm=MINT, amount=amount, hashed_amount=0)
    report = audit([e]).finish()
    assert kinds(report) == ["amount"]
    assert report.findings[0].message == f"entry 0: amount {amount!r} is not a whole number >= 1"
    assert report.balances == {MINT: 0, BOB: 0}  # a bad amount moves nothing


def test_an_amount_of_one_is_accepted() -> None:
    report = audit([_raw(0, GENESIS_PREV, frm=MINT, amount=1)]).finish()
    assert report.ok and report.balances == {MINT: -1, BOB: 1}


def test_a_transfer_from_an_account_to_itself_is_named_amount() -> None:
    report = audit([_raw(0, GENESIS_PREV, frm=MINT, to=MINT, amount=3)]).finish()
    assert [(f.kind, f.message) for f in report.findings] == [
        ("amount", "entry 0 moves 3 from mint to itself")
    ]
    # a zero amount to itself is one finding (the amount), not two
    zero = _raw(0, GENESIS_PREV, frm=BOB, to=BOB, amount=0)
    assert kinds(audit([zero]).finish()) == ["amount"]


def test_an_account_other_than_mint_going_below_zero_is_named_balance() -> None:
    grant = _raw(0, GENESIS_PREV, frm=MINT, to=ALICE, amount=10)
    all_of_it = _raw(1, bytes.fromhex(str(grant["leaf_hash"])), frm=ALICE, to=BOB, amount=10)
    assert audit([grant, all_of_it]).finish().ok  # down to exactly zero is fine
    one_more = _raw(1, bytes.fromhex(str(grant["leaf_hash"])), frm=ALICE, to=BOB, amount=11)
    report = audit([grant, one_more]).finish()
    assert [(f.kind, f.message) for f in report.findings] == [
        ("balance", f"entry 1: account {ALICE} goes below zero (-1)")
    ]
    assert report.balances == {MINT: -10, ALICE: -1, BOB: 11}


@pytest.mark.parametrize(
    "broken",
    [
        {"seq": None},
        {"seq": "x"},
        {"time_us": None},
        {"prev_hash": "ab" * 31},
        {"prev_hash": None},
        {"leaf_hash": 5},
        {"leaf_hash": "zz" * 32},
    ],
)
def test_a_malformed_entry_is_named_changed_and_the_next_one_is_checked_in_its_place(
    broken: dict[str, object],
) -> None:
    entries, _ = ledger(3)
    entries[1].update(broken)
    report = audit(entries).finish()
    # and the next entry does not chain to the last entry the auditor could check
    assert kinds(report) == ["changed", "chain"]
    assert report.findings[0].message.startswith("entry #1: malformed (")
    assert report.entries == 2  # the malformed one is not counted as checked


@pytest.mark.parametrize("field", ["prev_hash", "leaf_hash"])
def test_a_malformed_hash_is_named_by_its_field(field: str) -> None:
    entries, _ = ledger(1)
    entries[0][field] = "ab"
    report = audit(entries).finish()
    assert [f.message for f in report.findings] == [
        f"entry #0: malformed ({field} is not 64 hex digits)"
    ]


def test_a_malformed_entry_missing_a_field_is_named() -> None:
    entries, _ = ledger(1)
    del entries[0]["from"]
    report = audit(entries).finish()
    assert kinds(report) == ["changed"]
    assert report.findings[0].message == "entry #0: malformed ('from')"


def test_a_hash_field_must_be_64_hex_digits() -> None:
    with pytest.raises(ValueError, match="prev_hash is not 64 hex digits"):
        ledger_audit._hex("ab" * 33, "prev_hash")
    with pytest.raises(ValueError, match="x is not 64 hex digits"):
        ledger_audit._hex(b"a" * 64, "x")
    assert ledger_audit._hex("0f" * 32, "x") == b"\x0f" * 32


# --- the report -----------------------------------------------------------------------


def test_findings_past_the_cap_are_counted_not_kept() -> None:
    report = Report()
    assert report.ok
    for i in range(ledger_audit.MAX_FINDINGS):
        report.add("k", str(i))
    assert len(report.findings) == ledger_audit.MAX_FINDINGS and report.more_findings == 0
    report.add("k", "one more")
    report.add("k", "and another")
    assert len(report.findings) == ledger_audit.MAX_FINDINGS and report.more_findings == 2
    assert report.findings[-1].message == str(ledger_audit.MAX_FINDINGS - 1)
    assert not report.ok


def test_stored_balances_are_held_against_the_entries() -> None:
    """``stored_findings``: equal balances (the mint below zero, a zero row) are clean; a
    balance off, an account only one side has, a negative ``reserved`` or one above its
    balance (not the mint's) are named, in account order."""
    computed = {"mint": -30, "pool": 20, "user:a": 10}
    clean = {"mint": (-30, 0), "pool": (20, 20), "user:a": (10, 3), "user:z": (0, 0)}
    assert ledger_audit.stored_findings(computed, clean, 3) == []
    off = {**clean, "pool": (25, 0), "user:b": (1, 0), "user:a": (10, -1), "user:z": (0, 1)}
    found = ledger_audit.stored_findings(computed, off, 3)
    assert [(f.kind, f.message.split(" ")[1]) for f in found] == [
        ("stored", "pool:"), ("reserved", "user:a:"), ("stored", "user:b:"),
        ("reserved", "user:z:"),
    ]  # fmt: skip
    assert found[0].message == (
        "account pool: the store's balance is 25, the first 3 entries add up to 20 "
        "(+5 without an entry)"
    )
    assert found[1].message == "account user:a: -1 reserved of a balance of 10"


# written against the module's mutants (mut33, 2026-12-06): entries the inline check of
# `rows` hands to the full one (`_entry`) must be counted, balanced and named as inline


def _row(e: Entry) -> tuple[object, ...]:
    return tuple(e.get(f) for f in ENTRY_FIELDS)


def test_an_entry_checked_in_full_still_moves_its_balance() -> None:
    """Entry 1 is older than entry 0 (checked in full, not inline) and takes alice below
    zero: both named, and the balances moved as inline."""
    grant = _raw(0, GENESIS_PREV, frm=MINT, to=ALICE, amount=10, time_us=2_000)
    older = _raw(1, bytes.fromhex(str(grant["leaf_hash"])), amount=11, time_us=1_000)
    report = audit([grant, older]).finish()
    assert [(f.kind, f.message) for f in report.findings] == [
        ("time", "entry 1 is older than the entry before it"),
        ("balance", f"entry 1: account {ALICE} goes below zero (-1)"),
    ]
    assert report.balances == {MINT: -10, ALICE: -1, BOB: 11}
    paid = _raw(1, bytes.fromhex(str(grant["leaf_hash"])), amount=3, time_us=2_000)
    again = _raw(2, bytes.fromhex(str(paid["leaf_hash"])), amount=4, time_us=1_000)
    report = audit([grant, paid, again]).finish()  # bob paid inline, then in full
    assert kinds(report) == ["time"] and report.balances == {MINT: -10, ALICE: 3, BOB: 7}


def test_an_entry_checked_in_full_may_carry_its_predecessors_time() -> None:
    e0 = _raw(0, GENESIS_PREV, frm=MINT, to=ALICE, amount=10, time_us=1_000)
    e1 = _raw(1, bytes.fromhex(str(e0["leaf_hash"])), time_us=1_000)
    e2 = _raw(2, bytes.fromhex(str(e1["leaf_hash"])), time_us=1_000)
    report = audit([e0, e2]).finish()  # entry 1 deleted: entry 2 is checked in full
    assert [(f.kind, f.message) for f in report.findings] == [
        ("missing", "entry 1 is missing (the next published entry is 2)")
    ]


def test_a_field_too_long_for_its_leaf_is_named_and_the_next_entry_checked_in_its_place() -> None:
    entries, _ = ledger(3)
    entries[1]["kind"] = "x" * 70_000
    report = audit(entries).finish()
    assert [(f.kind, f.message) for f in report.findings] == [
        ("changed", "entry 1: malformed (a ledger string field is at most 65535 bytes)"),
        ("chain", "entry 2: prev_hash is not entry 1's leaf hash"),
    ]


def test_a_row_of_another_length_is_named_with_its_count() -> None:
    entries, _ = ledger(1)
    a = Auditor([], [], ORIGIN)
    a.rows([_row(entries[0])[:9]])
    assert [f.message for f in a.finish().findings] == ["entry #0: malformed (9 fields, not 10)"]


def test_entries_checked_inline_before_one_checked_in_full_are_all_counted() -> None:
    """One batch of rows: four inline, the fifth changed (checked in full), three more."""
    entries, _ = ledger(8)
    entries[4]["amount"] = 999
    a = Auditor([], [], ORIGIN)
    a.rows([_row(e) for e in entries])
    report = a.finish()
    assert kinds(report) == ["changed", "chain"] and report.entries == 8


def test_an_entry_without_its_optional_fields_is_read_as_none() -> None:
    entries, _ = ledger(2)
    del entries[0]["request_id"], entries[0]["receipt_hash"]  # the grant has neither
    assert audit(entries).finish().ok


def test_the_report_names_the_root_and_the_checkpoints_covered_newest_first() -> None:
    entries, leaves = ledger(6)
    reg = Registry()
    cps = [reg.checkpoint(n, root_of(leaves[:n])) for n in (2, 6, 4)]
    report = audit(entries, [*cps, reg.checkpoint(9, root_of(leaves))], reg).finish()
    assert report.root == root_of(leaves)
    assert [c.tree_size for c in report.signed] == [6, 4, 2]  # 6: exactly the entries'
    assert report.checkpoint is not None and report.checkpoint.tree_size == 6
    assert report.checkpoint_key == reg.keys[0]
    assert kinds(report) == ["truncated"]


def test_refusals_of_signed_history_in_words() -> None:
    reg = Registry()
    _, leaves = ledger(4)
    a = Auditor([reg.checkpoint(4, root_of(leaves))], reg.keys, ORIGIN,
                remembered=(4, root_of(leaves[:3])))  # fmt: skip
    assert [(f.kind, f.message) for f in a.report.findings] == [
        ("rewritten", "checkpoint at size 4 now signs another root than the one an earlier "
                      "audit saw: the history was rewritten"),
    ]  # fmt: skip
    zero = audit([], [reg.checkpoint(0, b"\x42" * 32)], reg).finish()
    assert [f.message for f in zero.findings] == [
        "checkpoint at size 0: root is not the empty tree's"
    ]


def test_every_account_on_either_side_is_checked_unless_told_otherwise() -> None:
    """An account only the entries have is named (as stored 0, nothing reserved); with
    ``every=False`` (a registry's one ``GET /v1/balance`` row) only the stored ones."""
    found = ledger_audit.stored_findings({"user:c": 4}, {}, 2)
    assert [(f.kind, f.message) for f in found] == [
        ("stored", "account user:c: the store's balance is 0, the first 2 entries add up to "
                   "4 (-4 without an entry)"),
    ]  # fmt: skip
    assert ledger_audit.stored_findings({"user:c": 4}, {}, 2, every=False) == []
    assert ledger_audit.stored_findings({"user:c": 4}, {"user:c": (4, 0)}, 2, every=False) == []
