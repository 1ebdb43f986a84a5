"""The money a request's receipt signs: each charge on its own receipt part, or why not.

Pure (no I/O). The account stage prices a request once (``registry/account.charge_parts``:
``(node id, µNT, fee)`` per priced node part, in order) and matches each priced part to its
receipt part (``core/part_match.py``); :func:`price_receipt` puts each charge on that part
(:class:`Signed`), or says why it cannot (:class:`Unsigned`): a charge with no payable
receipt part of its node to go with (a wiring fault: the send stage makes one for every
part that delivered a token), or a payer of a kind a receipt does not name. Such a
request is then not charged: its receipt signs that nobody was (``settled`` false;
``registry/account.make_receipt``, since 2026-12-07, money42), and its nodes' operators are
told why (``registry/unpaid.py``), each in words of its own (:meth:`Unsigned.told`:
never another node's id; found 2026-12-07, money44). Until money44 this was
``account._priced``, which returned the reason as a ``str``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from LLM_Mesh.core.receipt import PAYERS, Money, Part

__all__ = ["Signed", "Unsigned", "price_receipt"]

OWN_FAULT = "a charge of this node had no payable part of the request's receipt"
OTHERS_FAULT = "a charge of another node of the request had no payable part of its receipt"


@dataclass(frozen=True, slots=True)
class Signed:
    """What the receipt signs of the money: ``money`` ``None`` when the request is not
    settled; ``parts``, each with its amount and fee (0 for a part nobody pays)."""

    money: Money | None
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Unsigned:
    """Why a request's charges cannot go in its receipt: ``why`` in the gateway's log (it
    may name a node); ``node``: the node whose charge had no payable part to go with
    (``None``: the request's own fault, its payer's kind). What each node's operator is
    told is :meth:`told`."""

    why: str
    node: str | None = None

    def told(self, node: str) -> str:
        """The reason ``node``'s operator is told: its own, or the request's, never another
        node's id (found 2026-12-07, money44: every node's row named the node at fault)."""
        if self.node is None:
            return self.why
        return OWN_FAULT if node == self.node else OTHERS_FAULT


def price_receipt(
    charged: Sequence[tuple[str, int, int]],
    found: Sequence[int | None],
    parts: tuple[Part, ...],
    payer: str | None,
    fee_bps: int,
) -> Signed | Unsigned:
    """Each charge ``charged[k]`` (node id, µNT, fee) on its receipt part ``parts[found[k]]``
    (``core/part_match.match_parts``: ``None``, none): :class:`Signed` (``payer`` ``None``:
    the request is not settled, no money, the parts as they are; else its
    :class:`~LLM_Mesh.core.receipt.Money` at ``fee_bps``), or :class:`Unsigned` when a charge
    with an amount has no payable part of its node to go with (none found, one of another
    node, one not payable, or one another charge took) or ``payer``'s kind (before its
    ``:``) is not one of :data:`~LLM_Mesh.core.receipt.PAYERS`."""
    if payer is None:
        return Signed(None, parts)
    kind = payer.split(":", 1)[0]
    if kind not in PAYERS:
        return Unsigned(f"its payer's account kind {kind[:40]!r} is not one a receipt can name")
    amounts = [(0, 0)] * len(parts)
    taken = [False] * len(parts)
    for k, (node, amount, fee) in enumerate(charged):
        if amount == 0:
            continue
        j = found[k] if k < len(found) else None
        if j is None or taken[j] or parts[j].node_id != node or not parts[j].payable:
            return Unsigned(f"a charge of node {node[:64]} had no payable part of the receipt",
                            node)  # fmt: skip
        amounts[j], taken[j] = (amount, fee), True
    cost = sum(amount for _, amount, _ in charged)
    priced = tuple(  # each part as it is, with its amount and fee (``dataclasses.replace``'s
        # result, without its per-call field walk)
        Part(p.node_id, p.node_key, p.status, p.prompt_tokens, p.completion_tokens,
             p.output_sha256, p.node_signature, p.reason, a, f)
        for p, (a, f) in zip(parts, amounts, strict=True)
    )  # fmt: skip
    return Signed(Money(kind, fee_bps, cost), priced)
