"""A user's statement (``core/ledger_statement.py``): every entry of the user's account held
against the receipts the user kept. Each attack is a registry that writes into the account
what no receipt of the user explains (found 2026-12-05: no check listed a user's debits;
a ``fee`` or ``settle`` debit naming no receipt passed ``ledger verify``)."""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.ledger_entry import GENESIS_PREV, MINT, NETWORK, POOL, Transfer, make_entry
from LLM_Mesh.core.ledger_statement import PENDING_S, Line, statement, touches
from LLM_Mesh.core.receipt import Receipt
from LLM_Mesh.core.receipt_verify import Found, verify
from tests.core.receipt_verify_fixtures import KEYS, NODE_A, NODE_B, TEXT, make_receipt

USER = "user:" + "a" * 24
OTHER_USER = "user:" + "b" * 24
OP_A, OP_B = "operator:" + "1" * 32, "operator:" + "2" * 32
T0 = 1_700_000_000_000_000  # the receipts' time (make_receipt's clock), in µs
LATER = T0 + 3600 * 1_000_000  # a checkpoint an hour after them


def _receipt(rid: str = "req-1", amounts: tuple[int, int] = (1000, 2000), payer: str = "user") -> Receipt:  # fmt: skip
    two = [(NODE_A, TEXT[:8], 2, False), (NODE_B, TEXT[8:], 2, False)]
    return verify(
        Found(make_receipt(parts=two, amounts=list(amounts), payer=payer, request_id=rid)), KEYS
    )


def _paid(r: Receipt, payer: str = USER) -> list[Transfer]:
    """What honest settlement writes for ``r`` (5 % fees: 950 + 50, 1900 + 100)."""
    h, rid = r.receipt_hash, r.request_id
    return [
        Transfer("settle", payer, OP_A, 950, rid, h),
        Transfer("settle", payer, OP_B, 1900, rid, h),
        Transfer("fee", payer, NETWORK, 50, rid, h),
        Transfer("fee", payer, NETWORK, 100, rid, h),
    ]


def _log(transfers: list[Transfer]) -> list[dict[str, Any]]:
    out, prev = [], GENESIS_PREV
    for i, t in enumerate(transfers):
        e, prev = make_entry(i, T0 + i, t, prev)
        out.append(e.to_json())
    return out


def _statement(log: list[dict[str, Any]], receipts: list[Receipt], account: str = USER,
               signed_time_us: int | None = LATER) -> Any:  # fmt: skip
    """What the CLI feeds it: the account's entries and, per held receipt, every entry of
    the whole log naming its hash."""
    mine = [e for e in log if touches(e, account)]
    by = {r.receipt_hash: [e for e in log if e["receipt_hash"] == r.receipt_hash] for r in receipts}
    return statement(
        account, mine, receipts, by, signed_size=len(log), signed_time_us=signed_time_us
    )


def _honest() -> tuple[list[Transfer], list[Receipt]]:
    r1, r2 = _receipt("req-1"), _receipt("req-2", (400, 600))
    r2_paid = [
        Transfer("settle", USER, OP_A, 380, "req-2", r2.receipt_hash),
        Transfer("settle", USER, OP_B, 570, "req-2", r2.receipt_hash),
        Transfer("fee", USER, NETWORK, 20, "req-2", r2.receipt_hash),
        Transfer("fee", USER, NETWORK, 30, "req-2", r2.receipt_hash),
    ]
    grant = Transfer("grant", MINT, USER, 10_000, "grant-1")
    other = Transfer("grant", MINT, OTHER_USER, 5_000, "grant-2")
    return [grant, other, *_paid(r1), *r2_paid], [r1, r2]


def test_an_honest_history_passes_and_adds_up() -> None:
    transfers, receipts = _honest()
    s = _statement(_log(transfers), receipts)
    assert s.ok, s.findings
    assert s.receipts == 2 and not s.pending and not s.unchecked
    assert len(s.lines) == 9  # the grant and 8 debits; the other user's grant is not here
    assert s.paid_in == 10_000 and s.taken_out == 3000 + 1000 and s.balance == 6000
    assert all(line.signed for line in s.lines)
    assert [line.why for line in s.lines][:2] == ["paid in", f"receipt {receipts[0].receipt_hash[:16]}… (request req-1)"]  # fmt: skip


def test_a_debit_for_a_request_without_a_receipt_is_named() -> None:
    transfers, receipts = _honest()
    charged = Transfer("settle", USER, OP_A, 700, "req-3")  # no receipt was ever given
    s = _statement(_log([*transfers, charged]), receipts)
    assert not s.ok
    assert any("takes 700 µNT" in f and "names no receipt" in f for f in s.findings), s.findings
    assert s.lines[-1].why == "NO RECEIPT"


def test_a_debit_naming_a_receipt_the_user_does_not_hold_is_named() -> None:
    transfers, receipts = _honest()
    stranger = _receipt("req-9")  # another user's receipt, its hash put on this account
    charged = _paid(stranger)[0]
    s = _statement(_log([*transfers, charged]), receipts)
    assert any("which you do not hold" in f for f in s.findings), s.findings


def test_an_extra_fee_under_a_held_receipt_is_named() -> None:
    transfers, receipts = _honest()
    r1 = receipts[0]
    extra = Transfer("fee", USER, NETWORK, 7, r1.request_id, r1.receipt_hash)
    s = _statement(_log([*transfers, extra]), receipts)
    assert any("the fees are [7, 50, 100]" in f for f in s.findings), s.findings


def test_an_extra_fee_without_a_receipt_is_named() -> None:
    transfers, receipts = _honest()
    s = _statement(_log([*transfers, Transfer("fee", USER, NETWORK, 7, "req-1")]), receipts)
    assert any("(fee) takes 7 µNT" in f and "names no receipt" in f for f in s.findings)


def test_a_debit_of_a_kind_settlement_never_writes_is_named() -> None:
    transfers, receipts = _honest()
    r1 = receipts[0]
    odd = Transfer("forfeit", USER, NETWORK, 5, r1.request_id, r1.receipt_hash)
    s = _statement(_log([*transfers, odd]), receipts)
    assert any("settlement takes money from a user only" in f for f in s.findings)


def test_a_receipt_paid_from_another_account_than_the_one_named_is_named() -> None:
    """The registry names one account for the key (whose books add up) and debits the
    user's requests from another: the receipts tie the key to the account really paying."""
    r1 = _receipt()
    log = _log([Transfer("grant", MINT, OTHER_USER, 10_000, "g"), *_paid(r1, payer=OTHER_USER)])
    s = _statement(log, [r1])
    assert any(f"paid from '{OTHER_USER}', not {USER}" in f for f in s.findings), s.findings


def test_a_receipt_no_entry_names_is_missing_once_old_and_pending_while_new() -> None:
    transfers, receipts = _honest()
    unpaid = _receipt("req-4")
    log = _log(transfers)
    old = _statement(log, [*receipts, unpaid])
    assert any("no entry of the ledger names this receipt" in f for f in old.findings)
    new = _statement(log, [*receipts, unpaid], signed_time_us=T0 + (PENDING_S - 1) * 1_000_000)
    assert new.ok and len(new.pending) == 1 and "req-4" in new.pending[0]


def test_a_version_2_receipt_explains_its_debit_but_is_said_unchecked() -> None:
    old = verify(Found(make_receipt(request_id="req-5", version=2)), KEYS)
    log = _log([Transfer("grant", MINT, USER, 100, "g"),
                Transfer("settle", USER, OP_A, 10, "req-5", old.receipt_hash)])  # fmt: skip
    s = _statement(log, [old, old])
    assert s.ok and s.receipts == 1 and len(s.unchecked) == 1
    # found 2026-12-07 (money42): "signs no amounts (version 2, or not settled)" said
    # nothing of the 10 µNT taken under it; now the debit is named as not checkable
    (u,) = s.unchecked
    assert "CANNOT BE CHECKED: entry 1 (settle, 10 µNT) takes 10 µNT" in u, u
    assert "version-2 receipt" in u, u


def test_a_debit_under_a_receipt_signed_not_settled_is_named() -> None:
    """Found 2026-12-07 (review41c): a receipt that signs its request was not settled
    (settlement off: nobody charged) "explained" a debit naming it, said *unchecked*: a
    registry could take a user's money and hand out receipts saying it took none."""
    unpaid = verify(Found(make_receipt(request_id="req-5")), KEYS)
    assert unpaid.version == 4 and unpaid.money is None
    log = _log([Transfer("grant", MINT, USER, 100, "g"),
                Transfer("settle", USER, OP_A, 10, "req-5", unpaid.receipt_hash)])  # fmt: skip
    s = _statement(log, [unpaid])
    assert not s.ok and not s.unchecked, s
    (f,) = s.findings
    assert "entry 1 (settle) takes 10 µNT" in f and "signs that it was not settled" in f, f
    assert _statement(log[:1], [unpaid]).ok  # settlement off, nothing taken: unchecked


def test_entries_after_the_newest_checkpoint_are_listed_as_not_signed() -> None:
    transfers, receipts = _honest()
    log = _log(transfers)
    mine = [e for e in log if touches(e, USER)]
    by = {r.receipt_hash: [e for e in log if e["receipt_hash"] == r.receipt_hash] for r in receipts}
    s = statement(USER, mine, receipts, by, signed_size=6, signed_time_us=LATER)
    assert [line.signed for line in s.lines] == [True] * 5 + [False] * 4


def test_a_request_charged_twice_under_its_receipt_is_named() -> None:
    transfers, receipts = _honest()
    s = _statement(_log([*transfers, *_paid(receipts[0])]), receipts)
    assert any(
        "the nodes' shares (settle/hold) are [950, 950, 1900, 1900]" in f for f in s.findings
    )


def test_debits_an_earlier_clean_statement_judged_need_no_receipt_now() -> None:
    """The window that bounds the kept receipts (core/receipt_keep.py): r1's receipt was
    removed after a clean statement over the first 6 entries; a debit after them is still
    judged, a debit below them is not (the CLI holds the history to what it saw then)."""
    transfers, (_r1, r2) = _honest()
    log = _log([*transfers, Transfer("fee", USER, NETWORK, 7, "req-9")])
    mine = [e for e in log if touches(e, USER)]
    by = {r2.receipt_hash: [e for e in log if e["receipt_hash"] == r2.receipt_hash]}
    s = statement(USER, mine, [r2], by, signed_size=len(log), signed_time_us=LATER,
                  checked_before=6)  # fmt: skip
    assert [line.why for line in s.lines[1:5]] == ["checked by an earlier statement"] * 4
    assert (
        len(s.findings) == 1
        and "req-9" in s.findings[0]
        and "NO RECEIPT" in [line.why for line in s.lines]
    )
    s = statement(USER, mine, [r2], by, signed_size=len(log), signed_time_us=LATER)
    assert len(s.findings) == 5  # no window: r1's four debits and the late fee


def test_an_entry_whose_time_is_no_whole_number_is_listed_without_a_time() -> None:
    """Found 2026-12-05: ``int(time_us)`` raised ``ValueError`` (``"soon"``) or
    ``TypeError`` (a list) out of the statement; the CLI's audit names such a row too."""
    transfers, receipts = _honest()
    log = _log(transfers)
    for e, bad in zip(log[2:5], ["soon", [1], 1.5], strict=True):
        e["time_us"] = bad
    s = _statement(log, receipts)
    assert [line.time_us for line in s.lines][1:4] == [None, None, None]
    assert sum("its fields do not hash to its leaf_hash" in f for f in s.findings) == 3


# Each field of a line, each finding and note word for word (mutation testing, mut31b).


def test_each_line_carries_the_entrys_fields_and_the_other_side() -> None:
    transfers, receipts = _honest()
    log = _log(transfers)
    s = _statement(log, receipts)
    grant, debit = s.lines[0], s.lines[1]
    r1 = receipts[0]
    assert grant == Line(0, T0, "grant", 10_000, MINT, "grant-1", None, True, "paid in")
    assert debit == Line(2, T0 + 2, "settle", -950, OP_A, "req-1", r1.receipt_hash, True,
                         f"receipt {r1.receipt_hash[:16]}… (request req-1)")  # fmt: skip


def test_a_credit_naming_a_held_receipt_says_so() -> None:
    r1 = _receipt()
    refund = Transfer("grant", MINT, USER, 30, "req-1", r1.receipt_hash)
    s = _statement(_log([*_paid(r1), refund]), [r1])
    assert s.lines[-1].why == f"paid in, receipt {r1.receipt_hash[:16]}…"


def test_a_malformed_or_foreign_entry_is_the_callers_error_and_the_rest_still_judged() -> None:
    transfers, receipts = _honest()
    log = _log(transfers)
    no_seq, no_amount = dict(log[2], seq="2"), dict(log[3], amount=None)
    mine = [e for e in log if touches(e, USER)]
    by = {r.receipt_hash: [e for e in log if e["receipt_hash"] == r.receipt_hash] for r in receipts}
    for bad, said in ((no_seq, "entry 2"), (no_amount, "entry 3"), (log[1], "entry 1")):
        s = statement(USER, [bad, *mine], receipts, by, signed_size=len(log), signed_time_us=LATER)
        assert s.findings == [f"{said}: not an entry of {USER} (the caller's error)"]
        assert len(s.lines) == len(mine)  # the entries after it still listed


def test_a_receipt_hash_that_is_no_text_is_no_receipt() -> None:
    log = _log([Transfer("settle", USER, OP_A, 5, "req-7")])
    log[0]["receipt_hash"] = ["ab"]  # unhashable: not looked up among the held receipts
    log[0]["request_id"] = 7
    s = statement(USER, log, [_receipt()], {}, signed_size=1, signed_time_us=T0)
    assert s.lines[0].why == "NO RECEIPT" and s.lines[0].receipt_hash is None
    assert s.lines[0].request_id is None  # (the finding says it as the log has it: 7)
    assert "names receipt ['ab'], which you do not hold" in s.findings[0]


def test_a_debit_without_a_receipt_is_said_in_full_and_judged_from_entry_0() -> None:
    log = _log([Transfer("settle", USER, OP_A, 700, "req-3")])
    s = statement(USER, log, [], {}, signed_size=1, signed_time_us=LATER)
    assert s.findings == [
        f"entry 0 (settle) takes 700 µNT from {USER} to {OP_A} for request 'req-3' and names "
        "no receipt: a charge no receipt of yours explains"
    ]
    # the window of an earlier statement ends before its own first unjudged entry
    s = statement(USER, log, [], {}, signed_size=1, signed_time_us=LATER, checked_before=0)
    assert s.lines[0].why == "NO RECEIPT"
    s = statement(USER, log, [], {}, signed_size=1, signed_time_us=LATER, checked_before=1)
    assert s.ok and s.lines[0].why == "checked by an earlier statement"


def test_a_debit_of_another_kind_is_said_in_full() -> None:
    r1 = _receipt()
    log = _log([*_paid(r1), Transfer("forfeit", USER, NETWORK, 5, "req-1", r1.receipt_hash)])
    s = _statement(log, [r1])
    short = r1.receipt_hash[:16] + "…"
    assert s.lines[-1].why == f"receipt {short}, but a forfeit debit"
    assert s.findings == [
        f"entry 4 (forfeit) takes 5 µNT from {USER} naming receipt {short}: settlement takes "
        "money from a user only as settle, hold, fee"
    ]


def test_a_held_receipt_the_caller_found_no_entry_for_is_missing_or_pending() -> None:
    r1 = _receipt()
    s = statement(USER, [], [r1], {}, signed_size=0, signed_time_us=LATER)
    assert any("no entry of the ledger names this receipt" in f for f in s.findings)


def test_a_receipt_charging_nothing_needs_no_entry_and_one_charging_it_is_named() -> None:
    free = _receipt("req-0", (0, 0))
    assert _statement([], [free], signed_time_us=T0).pending == []  # nothing to wait for
    charged = _statement(_log([Transfer("settle", USER, OP_A, 9, "req-0", free.receipt_hash)]),
                         [free])  # fmt: skip
    assert not charged.ok


def test_a_receipt_exactly_pending_s_old_is_missing_not_pending() -> None:
    unpaid = _receipt("req-4")
    s = _statement([], [unpaid], signed_time_us=T0 + PENDING_S * 1_000_000)
    assert not s.pending and len(s.findings) == 1


def test_pending_and_unchecked_are_said_in_full() -> None:
    unpaid = _receipt("req-4")
    name = f"receipt {unpaid.receipt_hash[:16]}… (request req-4)"
    then = "the newest signed checkpoint: settlement may not have written it; run again later)"
    for signed, made in ((T0 + 599_700_000, "600 s before"), (T0, "0 s before"),
                         (T0 - 1_000_000_000, "1000 s after"), (None, "with no signed checkpoint after")):  # fmt: skip
        s = _statement([], [unpaid], signed_time_us=signed)
        assert s.pending == [f"{name}: no entry names it yet (made {made} {then}"], signed
    plain = verify(Found(make_receipt(request_id="req-5")), KEYS)
    s = _statement([], [plain])
    assert s.unchecked == [
        f"receipt {plain.receipt_hash[:16]}… (request req-5): signs no amounts (version "
        f"{plain.version}, or not settled)"
    ]


def test_a_receipt_paid_from_another_account_is_said_in_full() -> None:
    r1 = _receipt()
    log = _log(_paid(r1, payer=OTHER_USER))
    s = _statement(log, [r1])
    assert s.findings[0] == (
        f"receipt {r1.receipt_hash[:16]}… (request req-1): entry 0 (settle) is paid from "
        f"'{OTHER_USER}', not {USER} (the account the registry names for your key): one of "
        "them is not your key's"
    )


def test_the_pools_debits_are_listed_not_judged_against_receipts() -> None:
    """The pool pays for anonymous requests, whose receipts only their askers hold: its
    statement was always a MISMATCH of debits "which you do not hold" (found 2026-12-07,
    money41b). Listed, said not judged; a held pool-paid receipt is still checked."""
    r = _receipt("req-anon", payer="pool")
    stranger = _receipt("req-other", payer="pool")
    log = _log(
        [Transfer("grant", MINT, POOL, 10_000, "g"), *_paid(r, POOL), *_paid(stranger, POOL)]
    )
    s = _statement(log, [r], account=POOL)
    assert s.ok, s.findings
    assert not s.debits_judged and s.taken_out == 2 * 3000
    assert s.lines[-1].why == f"not judged (receipt {stranger.receipt_hash[:16]}…)"
    extra = Transfer("fee", POOL, NETWORK, 7, "req-anon", r.receipt_hash)
    assert not _statement(_log([*_paid(r, POOL), extra]), [r], account=POOL).ok


def test_another_accounts_debits_without_receipts_given_are_not_judged() -> None:
    transfers, _receipts = _honest()
    charged = Transfer("settle", USER, OP_A, 700, "req-3")
    mine = [e for e in _log([*transfers, charged]) if touches(e, USER)]
    s = statement(USER, mine, [], {}, signed_size=99, signed_time_us=LATER, judge_debits=False)
    assert s.ok and not s.debits_judged, s.findings
    assert s.lines[-1].why == "not judged" and s.taken_out == 4700
    judged = statement(USER, mine, [], {}, signed_size=99, signed_time_us=LATER)
    assert not judged.ok and judged.debits_judged
