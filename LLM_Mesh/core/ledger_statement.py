"""A user's statement: every ledger entry of one account, each held against the user's receipts.

What ``llm-mesh ledger statement`` decides (pure: the caller reads the log and the
receipts). The caller feeds it every entry of the whole log that moves money from or to
``account`` (the one the registry names for the user's API key), and every entry that
names the hash of a receipt the user holds, all read by one ``ledger verify`` audit
(``core/ledger_audit.Auditor``): that audit recomputed the RFC 9162 tree of every entry
and found it hashes to the registry's signed checkpoint, so

- every listed entry is proven in the signed log (the verifier computed the root over it
  itself: stronger than one inclusion proof per entry), and
- the listing is **complete**: no entry of the account can be left out without the
  root failing (or a sequence number missing), since the verifier saw every leaf of the
  signed tree. There is no per-account listing by the registry to trust.

:func:`statement` then checks (each problem a finding, said in words):

- **a debit without a receipt**: every entry taking money from the account (settlement
  writes only ``settle``, ``hold`` and ``fee`` from a user, ``registry/settle_ledger.py``)
  must name the hash of a receipt the user holds; one naming none, or another receipt,
  is a charge the user cannot tell the reason for;
- **a debit of another kind** (not one settlement writes) naming a held receipt;
- **amounts**: per held receipt, the entries of the whole log naming its hash must charge
  what it countersigns (``core/receipt_ledger.ledger_findings``: the shares, the fees, the
  payer's kind: an extra fee, a dropped share, a share to a friend);
- **another account**: a receipt paid by a user (``payer: user``) must be paid from this
  account: the registry names the key's account (``GET /v1/balance``, a hash of a key id
  it chose, which the key does not carry: ``core/key_account.py``), and the receipts it
  countersigned for the key tie that name to the account it really debits;
- **missing**: a settled receipt no entry names, older than :data:`PENDING_S` before the
  newest signed checkpoint (settlement writes within seconds: a newer one is *pending*,
  said, not a finding).

Credits (grants, anything paid to the account) are listed, not judged: they cost the
user nothing. Debits are judged only against receipts the caller can hold
(``judge_debits``): the caller of another account's statement (``--account`` without
``--receipts``) holds none of its receipts, and no one holds the pool's (it pays for
anonymous requests, each receipt only its asker's): their debits are listed, *not
judged*, which :attr:`Statement.debits_judged` says (found 2026-12-07, money41b: the
pool's statement was always a MISMATCH of "receipts which you do not hold"). A receipt
of version 1 or 2 signs no amounts: it explains a debit naming it, but its amounts
cannot be checked: said as *unchecked*, each such debit named with its amount
(``core/receipt_ledger.unchecked_debits``; a note, not a finding). One that signs it was not settled (settlement
off) explains none: a payment naming it is a finding (found 2026-12-07, review41c: it
was *unchecked*, so a registry could debit under receipts it signed unpaid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.core.receipt import Receipt
from LLM_Mesh.core.receipt_ledger import (
    PAYMENT_KINDS,
    ledger_findings,
    unchecked_debits,
    unsettled_findings,
)

__all__ = ["PENDING_S", "Line", "Statement", "statement", "touches"]

#: a settled receipt this many seconds newer than the newest signed checkpoint, or newer
#: than it, with no entry yet is pending (settlement writes within seconds of the answer
#: and the registry signs a checkpoint about every minute)
NOT_HELD = "which you do not hold"  # a charge naming a receipt the folder lacks
PENDING_S = 600


@dataclass(frozen=True)
class Line:
    """One entry of the account: ``amount`` > 0 paid in, < 0 taken out."""

    seq: int
    time_us: int | None  # None: the log gave no whole number
    kind: str
    amount: int
    other: str  # the account on the other side
    request_id: str | None
    receipt_hash: str | None
    signed: bool  # under the newest signed checkpoint (else published, not signed yet)
    why: str  # what explains it: "receipt ab12… (request r)", "paid in", or "NO RECEIPT"


@dataclass
class Statement:
    account: str
    lines: list[Line] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # receipts not in the log yet
    unchecked: list[str] = field(default_factory=list)  # receipts that sign no amounts
    receipts: int = 0  # distinct receipts held
    debits_judged: bool = True  # False: each debit without a held receipt listed, not judged

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def paid_in(self) -> int:
        return sum(line.amount for line in self.lines if line.amount > 0)

    @property
    def taken_out(self) -> int:
        return -sum(line.amount for line in self.lines if line.amount < 0)

    @property
    def balance(self) -> int:
        return self.paid_in - self.taken_out


def touches(entry: Mapping[str, Any], account: str) -> bool:
    """Whether ``entry`` moves money from or to ``account``."""
    return entry.get("from") == account or entry.get("to") == account


def _short(receipt_hash: str) -> str:
    return f"{receipt_hash[:16]}…"


def statement(
    account: str,
    entries: Sequence[Mapping[str, Any]],
    receipts: Sequence[Receipt],
    by_receipt: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    signed_size: int,
    signed_time_us: int | None,
    checked_before: int = 0,
    judge_debits: bool = True,
) -> Statement:
    """The statement of ``account`` (see the module docstring).

    ``entries``: every entry of the checked log touching the account, in log order (the
    public JSON form); ``receipts``: the user's receipts, verified; ``by_receipt``: per
    receipt hash, every entry of the log naming it; ``signed_size`` / ``signed_time_us``:
    the newest signed checkpoint the log was checked against (0 / None: none);
    ``checked_before``: the entries below this sequence number were judged by an earlier
    clean statement of this account (the caller checked that the history still hashes to
    what it saw then): a debit there without a held receipt is listed, not a finding (its
    receipt may have been removed since, :mod:`LLM_Mesh.core.receipt_keep`);
    ``judge_debits``: False when the caller cannot hold the account's receipts (another
    account's, given none): a debit no held receipt names is listed as *not judged*, no
    finding. The pool's debits are never judged so (see the module docstring)."""
    out = Statement(account, debits_judged=judge_debits and account != POOL)
    held: dict[str, Receipt] = {}
    for r in receipts:
        held.setdefault(r.receipt_hash, r)
    out.receipts = len(held)
    for e in entries:
        seq, kind, amount = e.get("seq"), str(e.get("kind")), e.get("amount")
        rh, rid = e.get("receipt_hash"), e.get("request_id")
        if type(seq) is not int or type(amount) is not int or not touches(e, account):
            out.findings.append(f"entry {seq}: not an entry of {account} (the caller's error)")
            continue
        debit = e.get("from") == account
        other = str(e.get("to") if debit else e.get("from"))
        receipt = held.get(rh) if isinstance(rh, str) else None
        if not debit:
            why = (
                "paid in" if receipt is None else f"paid in, receipt {_short(receipt.receipt_hash)}"
            )
        elif receipt is None and seq < checked_before:
            why = "checked by an earlier statement"
        elif receipt is None and not out.debits_judged:
            why = (
                f"not judged (receipt {_short(rh)})" if rh and isinstance(rh, str) else "not judged"
            )
        elif receipt is None:
            named = "names no receipt" if not rh else f"names receipt {rh!r}, {NOT_HELD}"
            why = "NO RECEIPT"
            out.findings.append(
                f"entry {seq} ({kind}) takes {amount} µNT from {account} to {other} for "
                f"request {rid!r} and {named}: a charge no receipt of yours explains"
            )
        elif kind not in PAYMENT_KINDS:
            why = f"receipt {_short(receipt.receipt_hash)}, but a {kind} debit"
            out.findings.append(
                f"entry {seq} ({kind}) takes {amount} µNT from {account} naming receipt "
                f"{_short(receipt.receipt_hash)}: settlement takes money from a user only "
                f"as {', '.join(PAYMENT_KINDS)}"
            )
        else:
            why = f"receipt {_short(receipt.receipt_hash)} (request {receipt.request_id})"
        out.lines.append(
            Line(
                seq=seq, time_us=t if type(t := e.get("time_us")) is int else None, kind=kind,
                amount=-amount if debit else amount, other=other,
                request_id=rid if isinstance(rid, str) else None,
                receipt_hash=rh if isinstance(rh, str) else None,
                signed=seq < signed_size, why=why,
            )
        )  # fmt: skip
    for h, r in held.items():
        _check_receipt(out, r, list(by_receipt.get(h, ())), signed_time_us)
    return out


def _check_receipt(
    out: Statement, r: Receipt, rows: list[Mapping[str, Any]], signed_time_us: int | None
) -> None:
    name = f"receipt {_short(r.receipt_hash)} (request {r.request_id})"
    if r.money is None:  # found 2026-12-07 (review41c): a debit under "not settled" passed
        charged = unsettled_findings(r, rows)
        out.findings += [f"{name}: {f}" for f in charged]
        if not charged:  # version 1 or 2: its debits named, as not checkable (money42)
            note = unchecked_debits(r, rows)
            said = note or f"signs no amounts (version {r.version}, or not settled)"
            out.unchecked.append(f"{name}: {said}")
        return
    payments = [e for e in rows if e.get("kind") in PAYMENT_KINDS]
    if not payments and not any(p.amount for p in r.parts):
        return  # nothing charged, nothing written
    if not payments and (
        signed_time_us is None or r.time_ms * 1000 > signed_time_us - PENDING_S * 1_000_000
    ):
        out.pending.append(
            f"{name}: no entry names it yet (made {_ago(r, signed_time_us)} the newest signed "
            "checkpoint: settlement may not have written it; run again later)"
        )
        return
    for f in ledger_findings(r, rows):
        out.findings.append(f"{name}: {f}")
    if r.money.payer == "user":
        for e in payments:
            if e.get("from") != out.account:
                out.findings.append(
                    f"{name}: entry {e.get('seq')} ({e.get('kind')}) is paid from "
                    f"{e.get('from')!r}, not {out.account} (the account the registry names "
                    "for your key): one of them is not your key's"
                )


def _ago(r: Receipt, signed_time_us: int | None) -> str:
    if signed_time_us is None:
        return "with no signed checkpoint after"
    delta = signed_time_us // 1000 - r.time_ms
    return f"{delta / 1000:.0f} s before" if delta >= 0 else f"{-delta / 1000:.0f} s after"
