"""``llm-mesh ledger verify --receipt FILE``: receipts held against the whole log.

While ``ledger verify`` reads every entry (and checks each's hash, chain and inclusion in
the signed checkpoints), :class:`ReceiptWatch` keeps those naming a given receipt's hash;
after the audit each receipt is judged by ``core/receipt_ledger.ledger_findings`` against
all of them: so an entry under the receipt's hash anywhere in the log counts, also one a
page of ``GET /v1/ledger?request_id=`` leaves out (``receipt verify --ledger``). Each
disagreement is a ``receipt`` finding (exit 1); a receipt that agrees is said, one line
each (:meth:`ReceiptWatch.agreed`), and one of version 1 or 2 that entries pay under as
*cannot be checked*, naming them (:meth:`ReceiptWatch.unchecked`, said apart from those that
agree: ``core/receipt_ledger.unchecked_debits``, a note).
"""

from __future__ import annotations

from collections.abc import Sequence

from LLM_Mesh.cli.ledger_http import Row
from LLM_Mesh.core.ledger_audit import Report
from LLM_Mesh.core.ledger_entry import ENTRY_FIELDS
from LLM_Mesh.core.receipt import Receipt, ReceiptError
from LLM_Mesh.core.receipt_ledger import (
    NO_AMOUNTS,
    ledger_findings,
    unchecked_debits,
    unsettled_findings,
)
from LLM_Mesh.core.receipt_verify import Found, parse_keys, verify

__all__ = ["ReceiptWatch"]

_RH = ENTRY_FIELDS.index("receipt_hash")


class ReceiptWatch:
    """The entries naming the hashes of ``found`` receipts, checked with the ledger's
    published ``keys`` (base64: the registry's, which countersigns receipts too)."""

    def __init__(self, found: Sequence[Found], keys: Sequence[str]) -> None:
        self.receipts: list[Receipt] = []
        self.refused: list[str] = []
        by_id = parse_keys(keys) if found else {}
        for f in found:
            try:
                self.receipts.append(verify(f, by_id))
            except ReceiptError as exc:
                self.refused.append(f"{exc.reason}: {exc}")
        self.held: dict[str, list[Row]] = {r.receipt_hash: [] for r in self.receipts}

    def rows(self, batch: Sequence[Row]) -> None:
        held = self.held
        if held:
            for row in batch:
                rh = row[_RH] if len(row) == len(ENTRY_FIELDS) else None
                # a hash is a string: a list is no key (found 2026-12-05: a TypeError)
                found = held.get(rh) if isinstance(rh, str) else None
                if found is not None:
                    found.append(row)

    def judge(self, report: Report) -> None:
        for why in self.refused:
            report.add("receipt", f"a --receipt does not verify ({why})")
        for r in self.receipts:
            rows = self.held[r.receipt_hash]
            entries = [dict(zip(ENTRY_FIELDS, row, strict=True)) for row in rows]
            # no amounts: nothing to compare (found 2026-12-07, money41: settlement off was a
            # MISMATCH), but a payment under a receipt signed not settled is (review41c)
            found = unsettled_findings(r, entries) if r.money is None else None
            for f in ledger_findings(r, entries) if found is None else found:
                report.add(
                    "receipt", f"receipt {r.receipt_hash[:16]}… (request {r.request_id}): {f}"
                )

    def agreed(self, signed: int) -> list[str]:
        """A line per receipt, for an audit without findings: how many of the log's
        entries name it and charge what it signs (``signed``: the entries the newest signed
        checkpoint covers). Found 2026-12-05 (a new user's try): ``ledger verify --receipt``
        said nothing of the receipt it was given, only the log's own verdict. One of version
        1 or 2 with payments under it is not here: :meth:`unchecked`."""
        out = []
        for r in self.receipts:
            if r.money is None:  # no amounts: agreed only with no charge under it (money42)
                if self._unchecked(r) is None:
                    out.append(f"receipt {r.receipt_hash[:16]}… (request {r.request_id}): "
                               f"{NO_AMOUNTS}")  # fmt: skip
                continue
            seqs = [row[0] for row in self.held[r.receipt_hash]]
            late = [s for s in seqs if not isinstance(s, int) or s >= signed]
            n = len(seqs)
            out.append(
                f"receipt {r.receipt_hash[:16]}… (request {r.request_id}): the "
                + (
                    f"{n} entries of the log that name it charge"
                    if n != 1
                    else "1 entry of the log that names it charges"
                )
                + " what it signs"
                + (f" ({len(late)} not under a signed checkpoint yet)" if late else "")
            )
        return out

    def unchecked(self) -> list[str]:
        """A line per receipt of version 1 or 2 that the log's payment entries charge under:
        they cannot be checked (``core/receipt_ledger.unchecked_debits``, money42), said
        apart from :meth:`agreed` (found 2026-12-07, review42: ``ledger verify --receipt``
        printed it as ``OK: ... CANNOT BE CHECKED``)."""
        out = []
        for r in self.receipts:
            if (note := self._unchecked(r)) is not None:
                out.append(f"receipt {r.receipt_hash[:16]}… (request {r.request_id}): {note}")
        return out

    def _unchecked(self, r: Receipt) -> str | None:
        if r.money is not None:
            return None
        entries = [dict(zip(ENTRY_FIELDS, row, strict=True)) for row in self.held[r.receipt_hash]]
        return unchecked_debits(r, entries)
