"""Does the public ledger charge what a receipt says? (``llm-mesh receipt verify --ledger``)

A settled version-3 receipt signs what its request was charged: the payer's kind, and per
part the amount (fee included) and the fee. Settlement writes, per part, a ``settle`` (or
``hold``, a quarantined node's) entry of ``amount - fee`` from the payer to the node's
operator and a ``fee`` entry of ``fee`` to ``network``, each naming the receipt's hash
(``registry/settle_ledger.transfers``). :func:`ledger_findings` compares the request's
published entries with the receipt: pure, the caller fetches the entries.

What it names (each a line): no entry of the receipt at all (the payment never reached the
log, or was dropped); a payment entry of the request under another receipt's hash or none;
entries from an account that is not of the receipt's payer kind (``pool`` or ``user:...``),
or from two payers; the ``settle``/``hold`` amounts, or the ``fee`` amounts, not those the
receipt signs (more: the registry took more than it signed; fewer: a node's earnings
dropped); an entry whose fields do not hash to its leaf hash. Not decided here: which
operator account a node's share went to (the ledger's accounts are keyed pseudonyms a user
cannot derive from a node id). :func:`inclusion_finding` checks an entry is in a signed
checkpoint's tree (RFC 9162 inclusion proof): the page of a request's entries is the
registry's word, the checkpoint its signature. :func:`seen_finding` checks that signed
checkpoint against the log an earlier ``ledger verify`` checked (its size and root, kept in
``ledger_seen.json``) by an RFC 9162 consistency proof: a checkpoint of another history
(a fork signed for this check alone, a split view) proves nothing about the log.

A receipt that signs no amounts has nothing to compare, but one of a version that signs
money (3, 4) with ``settled`` 0 is the registry's signed word that nobody was charged:
:func:`unsettled_findings` names every payment entry of its request or naming it (found
2026-12-07, review41c: "settlement off" is the registry's choice per answer, so a registry
could debit the user under a receipt that signs no amounts and every check said "nothing to
compare"). A version 1 or 2 receipt signs no money at all: a payment entry under it cannot
be checked, and :func:`unchecked_debits` says so, naming each and what they take in all
(found 2026-12-07, money42: said "nothing to compare", as if there were no charge). A note,
not a finding: those versions are old data an honest registry made (before 2026-12-05,
when version 3 began to sign amounts; and, until money42, for a charge its parts could not
price), and a disagreement cannot be shown where nothing was signed. The gateway signs only
version 4 now (``core/receipt.py``), so a new receipt of version 1 or 2 comes only from a
registry running older code, or one that chose to: the note is what tells its user.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from LLM_Mesh.core.ledger_entry import NETWORK, POOL, entry_leaf
from LLM_Mesh.core.merkle import leaf_hash
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion
from LLM_Mesh.core.receipt import MONEY_VERSIONS, Receipt

__all__ = [
    "NO_AMOUNTS",
    "PAYMENT_KINDS",
    "inclusion_finding",
    "ledger_findings",
    "seen_finding",
    "seen_sizes",
    "unchecked_debits",
    "unsettled_findings",
]

#: the entries that pay for a request from its payer (``forfeit`` moves a held share on)
PAYMENT_KINDS = ("settle", "hold", "fee")


def _payer_ok(account: str, payer: str) -> bool:
    return account == POOL if payer == "pool" else account.startswith("user:")


def _leaf_ok(e: Mapping[str, Any]) -> bool:
    try:
        leaf = entry_leaf(
            e["seq"], e["time_us"], e["kind"], e["from"], e["to"], e["amount"],
            e.get("request_id"), e.get("receipt_hash"), bytes.fromhex(e["prev_hash"]),
        )  # fmt: skip
        return bool(leaf_hash(leaf).hex() == e["leaf_hash"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError, struct.error):
        return False  # struct.error: a number the leaf cannot hold (found 2026-12-05)


def _shown(c: Counter[int]) -> str:
    return "[" + ", ".join(str(a) for a in sorted(c.elements())) + "]"


NO_AMOUNTS = "the receipt signs no amounts (not settled, or version 1 or 2): nothing to compare"


UNCHECKED_SHOWN = 10  # payment entries named one by one in the note (the rest counted)


def unchecked_debits(receipt: Receipt, entries: Iterable[Mapping[str, Any]]) -> str | None:
    """The note for the payment entries (``settle``, ``hold``, ``fee``) of ``entries`` (its
    request's, or those naming its hash) when ``receipt`` is of a version that signs no
    money (1, 2): they cannot be checked, each named with its amount, and their sum;
    ``None`` for a receipt that signs money, or when nothing was paid."""
    if receipt.version in MONEY_VERSIONS:
        return None
    paid = [e for e in entries if e.get("kind") in PAYMENT_KINDS]
    if not paid:
        return None
    said = [f"{e.get('seq')} ({e.get('kind')}, {e.get('amount')!r} µNT)" for e in paid]
    named = ", ".join(said[:UNCHECKED_SHOWN])
    if len(said) > UNCHECKED_SHOWN:
        named += f" and {len(said) - UNCHECKED_SHOWN} more"
    total = sum(a for e in paid if type(a := e.get("amount")) is int)
    noun, verb = ("entry", "takes") if len(paid) == 1 else ("entries", "take")
    return (
        f"CANNOT BE CHECKED: {noun} {named} {verb} {total} µNT for this request under a "
        f"version-{receipt.version} receipt, which signs no amounts (receipts made before "
        "2026-12-05; a registry of today signs version 4): what was charged is the "
        "registry's word alone"
    )


def unsettled_findings(receipt: Receipt, entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """A finding per payment entry (``settle``, ``hold``, ``fee``) of ``entries`` (its
    request's, or those naming its hash) when ``receipt`` signs that its request was not
    settled (a version that signs money, ``settled`` 0: nobody was charged); ``[]`` for a
    settled receipt, or one of version 1 or 2 (it signs no money either way)."""
    if receipt.money is not None or receipt.version not in MONEY_VERSIONS:
        return []
    return [
        f"entry {e.get('seq')} ({e.get('kind')}) takes {e.get('amount')!r} µNT from "
        f"{e.get('from')!r} for this request: the receipt signs that it was not settled "
        "(nobody charged)"
        for e in entries
        if e.get("kind") in PAYMENT_KINDS
    ]


def ledger_findings(receipt: Receipt, entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """What disagrees between ``receipt`` and its request's ledger ``entries`` (the public
    JSON form: ``kind``, ``from``, ``to``, ``amount``, ``receipt_hash``, ...); ``[]`` when
    they agree. A receipt that signs no amounts (not settled, or version 1/2) has nothing
    to compare: one line says so."""
    money = receipt.money
    if money is None:
        return [NO_AMOUNTS]
    mine = receipt.receipt_hash
    out: list[str] = []
    shares: Counter[int] = Counter()
    fees: Counter[int] = Counter()
    payers: set[str] = set()
    for e in entries:
        kind, seq = e.get("kind"), e.get("seq")
        if kind not in PAYMENT_KINDS:
            continue
        if e.get("receipt_hash") != mine:
            out.append(f"entry {seq} ({kind}) of this request names another receipt "
                       f"({e.get('receipt_hash')!r}), not this one ({mine})")  # fmt: skip
            continue
        if not _leaf_ok(e):
            out.append(f"entry {seq} ({kind}): its fields do not hash to its leaf_hash")
            continue
        amount, frm = e.get("amount"), e.get("from")
        if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(frm, str):
            out.append(f"entry {seq} ({kind}): amount or from of another type")
            continue
        payers.add(frm)
        if not _payer_ok(frm, money.payer):
            out.append(
                f"entry {seq} ({kind}) is paid by {frm!r}: the receipt's payer is a {money.payer}"
            )
        if kind == "fee":
            if e.get("to") != NETWORK:
                out.append(f"entry {seq} (fee) goes to {e.get('to')!r}, not {NETWORK!r}")
            fees[amount] += 1
        else:
            shares[amount] += 1
    if len(payers) > 1:
        out.append(f"the request's entries are paid by {len(payers)} accounts: {sorted(payers)}")
    want_shares: Counter[int] = Counter()
    want_fees: Counter[int] = Counter()
    for p in receipt.parts:
        amount, fee = p.amount or 0, p.fee or 0
        if amount - fee > 0:
            want_shares[amount - fee] += 1
        if fee > 0:
            want_fees[fee] += 1
    if not shares and not fees and (want_shares or want_fees):
        out.append(f"no entry of the ledger names this receipt ({mine}): it charged "
                   f"{money.cost} µNT that the log does not show (settlement writes a request "
                   "within seconds of its answer: a receipt just made may be ahead of it)")  # fmt: skip
        return out
    if shares != want_shares:
        out.append(f"the nodes' shares (settle/hold) are {_shown(shares)} µNT: the receipt "
                   f"signs {_shown(want_shares)}")  # fmt: skip
    if fees != want_fees:
        out.append(f"the fees are {_shown(fees)} µNT: the receipt signs {_shown(want_fees)} "
                   f"(fee_bps {money.fee_bps})")  # fmt: skip
    return out


def inclusion_finding(
    entry: Mapping[str, Any], tree_size: int, root: bytes, proof: list[bytes]
) -> str | None:
    """Why ``entry`` is not shown to be in the signed tree of ``tree_size`` and ``root`` by
    ``proof`` (its audit path, RFC 9162 §2.1.3), or ``None``."""
    seq = entry.get("seq")
    try:
        leaf = bytes.fromhex(str(entry.get("leaf_hash")))
    except ValueError:
        leaf = b""
    if type(seq) is not int or not verify_inclusion(seq, tree_size, leaf, proof, root):
        return (
            f"entry {seq} is not in the signed checkpoint of size {tree_size}: its inclusion "
            "proof fails (the registry's page of this request is not its log)"
        )
    return None


def seen_sizes(seen: tuple[int, bytes], tree_size: int) -> tuple[int, int] | None:
    """The consistency proof to ask for between the log an earlier ``ledger verify`` saw
    (``seen``: its size and root) and a signed checkpoint of ``tree_size``: (older, newer),
    or ``None`` when none is needed (the same size: the roots must be equal; nothing seen)."""
    size = seen[0]
    if size <= 0 or size == tree_size:
        return None
    return (size, tree_size) if size < tree_size else (tree_size, size)


def seen_finding(
    seen: tuple[int, bytes], tree_size: int, root: bytes, proof: list[bytes]
) -> str | None:
    """Why the signed checkpoint of ``tree_size`` and ``root`` is not a state of the log an
    earlier ``ledger verify`` checked (``seen``: the size and root of the entries it read),
    by ``proof`` (the registry's consistency proof between the two sizes, the older
    first), or ``None``. Found 2026-12-05 (``attack32``): the checkpoint was taken on its
    signature alone, so a registry could sign a fork for this check (the receipt's entries
    as the receipt says) while its log, the one every ``ledger verify`` reads, held others."""
    size, seen_root = seen
    if size <= 0:
        return None
    if size == tree_size:
        ok = not proof and root == seen_root
    elif size < tree_size:
        ok = verify_consistency(size, tree_size, seen_root, root, proof)
    else:
        ok = verify_consistency(tree_size, size, root, seen_root, proof)
    if ok:
        return None
    return (
        f"the registry's signed checkpoint of size {tree_size} is not the log an earlier "
        f"`llm-mesh ledger verify` checked (size {size}): no consistency proof joins them, "
        "so its proofs are of another history shown to this check (a split view); keep "
        "the receipt and run `llm-mesh ledger verify` to see the log everyone else reads"
    )
