"""The money a receipt signs (``core/receipt_money.py``; until 2026-12-07, money44,
``account._priced``, which answered a ``str`` for why not): each charge on its own receipt
part, or :class:`Unsigned` with why, and what each node's operator is told of it."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.core.receipt import Money, Part, PartStatus
from LLM_Mesh.core.receipt_money import (
    OTHERS_FAULT,
    OWN_FAULT,
    Signed,
    Unsigned,
    price_receipt,
)

DIGEST = "00" * 32
PARTS = (
    Part("a", "", PartStatus.BROKEN, 0, 2, DIGEST),
    Part("b", "", PartStatus.INVALID, 7, 2, DIGEST, reason="usage"),
    Part("a", "", PartStatus.MISSING, 7, 2, DIGEST),
)
IN_ORDER = [0, 1, 2]  # each priced part's receipt part (core/part_match.py)


def test_each_charge_goes_to_its_own_receipt_part() -> None:
    # a's first part, b not paid, a again: each charge to its own part
    got = price_receipt([("a", 45, 2), ("b", 0, 0), ("a", 20, 1)], IN_ORDER, PARTS, POOL, 500)
    assert isinstance(got, Signed)
    assert got.money == Money("pool", 500, 65)
    assert [(p.amount, p.fee) for p in got.parts] == [(45, 2), (0, 0), (20, 1)]
    # the same charges with a's first part unmatched (a part with no receipt part): a's
    # second charge goes to its own part, never to the first of its node
    got = price_receipt([("a", 0, 0), ("b", 0, 0), ("a", 20, 1)], [None, 1, 2], PARTS, POOL, 0)
    assert isinstance(got, Signed)
    assert [(p.amount, p.fee) for p in got.parts] == [(0, 0), (0, 0), (20, 1)]
    # not settled: the parts as they are, no money
    assert price_receipt([("a", 45, 2)], IN_ORDER, PARTS, None, 500) == Signed(None, PARTS)


def test_a_charge_without_a_payable_part_of_its_own_is_not_signed() -> None:
    def why(node: str) -> Unsigned:
        return Unsigned(f"a charge of node {node} had no payable part of the receipt", node)

    assert price_receipt([("c", 5, 0)], IN_ORDER, PARTS, POOL, 0) == why("c")  # another node's part
    assert price_receipt([("b", 0, 0), ("b", 5, 0)], IN_ORDER, PARTS, POOL, 0) == why("b")
    assert price_receipt([("x", 0, 0), ("b", 5, 0)], IN_ORDER, PARTS, POOL, 0) == why(
        "b"
    )  # not payable
    assert price_receipt([("a", 1, 0)] * 4, IN_ORDER, PARTS, POOL, 0) == why("a")  # past the parts
    assert price_receipt([("a", 1, 0)], [None], PARTS, POOL, 0) == why("a")  # no part found
    # two charges on one part
    assert price_receipt([("a", 1, 0), ("a", 1, 0)], [0, 0], PARTS, POOL, 0) == why("a")
    other = "operator:" + "0" * 32
    assert price_receipt([("a", 45, 2)], IN_ORDER, PARTS, other, 500) == Unsigned(
        "its payer's account kind 'operator' is not one a receipt can name"
    )


def test_each_node_is_told_its_own_reason_never_another_nodes_id() -> None:
    fault = Unsigned("a charge of node node-alpha had no payable part of the receipt",
                     "node-alpha")  # fmt: skip
    assert fault.told("node-alpha") == OWN_FAULT
    assert fault.told("node-beta") == OTHERS_FAULT  # (before: the log's words, alpha's id)
    assert "node-" not in OWN_FAULT + OTHERS_FAULT
    payer = Unsigned("its payer's account kind 'held' is not one a receipt can name")
    assert payer.told("node-alpha") == payer.told("node-beta") == payer.why  # the request's


def test_a_priced_part_is_its_part_with_only_the_amount_and_fee_set() -> None:
    """Each priced part is built field by field: every other field of the part (each set
    here, whatever fields ``Part`` has) is kept as ``dataclasses.replace`` keeps it."""
    values: dict[str, Any] = {}
    for i, f in enumerate(fields(Part)):
        values[f.name] = (
            PartStatus.SIGNED if f.name == "status" else i + 1 if f.type in ("int", "int | None")
            else f"{f.name}-{i}"
        )  # fmt: skip
    part = Part(**values)
    got = price_receipt([(part.node_id, 45, 2)], [0], (part,), POOL, 500)
    assert isinstance(got, Signed)
    assert got.parts == (replace(part, amount=45, fee=2),)
