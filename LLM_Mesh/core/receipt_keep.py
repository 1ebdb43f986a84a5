"""Which kept receipts may go: the bound on ``$LLM_MESH_HOME/receipts/`` (pure).

``llm-mesh ask`` keeps a keyed answer's receipt in the key's folder by default, one file
a request, for ``ledger statement`` (``LLM_Mesh/receipt_files.py``). Without a bound the
folder grows forever, and every statement reads all of it. But a receipt cannot simply
go by age: the statement judges every debit of the account in the whole log, and a debit
whose receipt was removed would be ``NO RECEIPT``.

So the bound is the statement's own window. A clean statement (exit 0) remembers, for the
key, the size of the signed log it judged (``checked_through``, in ``ledger_seen.json``
beside the root it checked). The next statement checks the history still hashes to that
root (any rewrite or cut is a finding, as for ``ledger verify``), so a debit below it was
already explained by a receipt then: it is listed as *checked by an earlier statement*,
not judged again. Then a receipt may go when :func:`removable` says so: every entry of
the log naming it lies below the size just judged clean, and it is older than
:data:`KEEP_S` (a month: the user can still ``receipt verify`` a recent answer). A receipt
no entry names (nothing charged) goes by age alone; a pending one is never that old.
Only the folder ``ask`` fills is pruned, never a ``--receipts DIR`` of the user's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from LLM_Mesh.core.receipt import Receipt

__all__ = ["KEEP_S", "removable"]

KEEP_S = 30 * 86_400  # a receipt a clean statement covered is kept this long after it


def removable(
    held: Sequence[Receipt],
    by_receipt: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    judged_size: int,
    now_ms: int,
    keep_s: int = KEEP_S,
) -> set[str]:
    """The hashes of the ``held`` receipts a clean statement over the first
    ``judged_size`` entries covered that are older than ``keep_s`` at ``now_ms``
    (``by_receipt``: per hash, every entry of the log naming it)."""
    out = set()
    for r in held:
        if r.time_ms > now_ms - keep_s * 1000:
            continue
        seqs = [e.get("seq") for e in by_receipt.get(r.receipt_hash, ())]
        if all(type(s) is int and s < judged_size for s in seqs):
            out.add(r.receipt_hash)
    return out
