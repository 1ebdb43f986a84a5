"""A receipt against its request's public ledger entries (``core/receipt_ledger.py``):
a registry that charged or paid other amounts than it countersigned is named."""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.ledger_entry import GENESIS_PREV, NETWORK, Transfer, make_entry
from LLM_Mesh.core.receipt import Receipt
from LLM_Mesh.core.receipt_ledger import ledger_findings
from LLM_Mesh.core.receipt_verify import Found, verify
from tests.core.test_receipt_verify import KEYS, NODE_A, NODE_B, TEXT, make_receipt

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
