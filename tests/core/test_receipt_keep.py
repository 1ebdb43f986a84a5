"""Which kept receipts may go (``core/receipt_keep.py``): only those a clean statement
covered (every entry naming them below the size it judged) and older than the bound."""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.receipt_keep import KEEP_S, removable
from tests.core.test_ledger_statement import T0, _receipt

NOW_MS = T0 // 1000 + KEEP_S * 1000 + 1  # a month and a millisecond after the receipts


def _rows(*seqs: int) -> list[dict[str, Any]]:
    return [{"seq": s} for s in seqs]


def test_only_covered_and_old_receipts_go() -> None:
    covered, straddles, after, unnamed = (_receipt(f"req-{i}") for i in range(4))
    by = {covered.receipt_hash: _rows(1, 2), straddles.receipt_hash: _rows(9, 10),
          after.receipt_hash: _rows(12)}  # fmt: skip
    held = [covered, straddles, after, unnamed]
    gone = removable(held, by, judged_size=10, now_ms=NOW_MS)
    assert gone == {covered.receipt_hash, unnamed.receipt_hash}
    assert removable(held, by, judged_size=10, now_ms=NOW_MS - 2) == set()  # not old enough
    assert removable(held, by, judged_size=0, now_ms=NOW_MS) == {unnamed.receipt_hash}


def test_a_malformed_sequence_number_keeps_the_receipt() -> None:
    r = _receipt()
    assert removable([r], {r.receipt_hash: [{"seq": "1"}]}, judged_size=10, now_ms=NOW_MS) == set()
