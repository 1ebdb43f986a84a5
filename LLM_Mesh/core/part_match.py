"""Which receipt part is which priced part of a request: the two matched part by part.

Pure (no I/O). The account stage prices a request per node part, in order
(``registry/account.price_parts``: the earlier nodes of a continued stream, then the last),
and checks one receipt part per part the gateway relayed text of (``Tally.node_receipts``):
a part that delivered nothing has no receipt part, so the two lists can differ in length,
and a node can have more than one part (a stream continued A → B → A). Each receipt part
carries the index of the priced part it is, written by the send stage as it relays
(``Observed.part``: the count of earlier parts then). :func:`match_parts` pairs each priced
part with its receipt part, or with none, and a part without one is not paid (nor
charged): the rule that fails toward not paying, for that part alone.

Until 2026-12-07 (money44) the account stage paired them by node id whenever the counts
differed: one unpayable receipt part of a node zeroed *every* part of that node, its
payable ones too.

The rules, in order:

- every receipt part says its index: a priced part is matched to the one receipt part
  that says its index, when that part is of the same node; none (two say it, or one of
  another node) is no match;
- else, the counts equal: by position, when the node is the same;
- else (an index not said: the mapping is known only from the order): a receipt part is
  matched where every way of reading the receipt parts as a subsequence of the priced
  parts, by node id, puts it at the same priced part (its leftmost and its rightmost
  placing agree); where the placing is ambiguous, or none exists, no match.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NOT_SAID", "match_parts"]

# a receipt part whose priced part's index was not written (``Observed.part``'s default)
NOT_SAID = -1


def match_parts(nodes: Sequence[str], receipts: Sequence[tuple[str, int]]) -> list[int | None]:
    """For each priced part (``nodes``: its node id, in order), the index in ``receipts``
    (``(node id, priced part's index or NOT_SAID)`` of each receipt part, in order) of its
    receipt part, or ``None`` (see the module docstring). Each receipt part is matched at
    most once."""
    if len(nodes) == 1 == len(receipts) and receipts[0][1] in (0, NOT_SAID):  # the usual
        return [0 if receipts[0][0] == nodes[0] else None]  # (what each rule below gives)
    if receipts and all(index >= 0 for _, index in receipts):
        return _by_index(nodes, receipts)
    if len(receipts) == len(nodes):
        return [j if receipts[j][0] == node else None for j, node in enumerate(nodes)]
    return _by_order(nodes, [node for node, _ in receipts])


def _by_index(nodes: Sequence[str], receipts: Sequence[tuple[str, int]]) -> list[int | None]:
    saying: dict[int, list[int]] = {}
    for j, (_, index) in enumerate(receipts):
        saying.setdefault(index, []).append(j)
    out: list[int | None] = []
    for i, node in enumerate(nodes):
        them = saying.get(i, ())
        out.append(them[0] if len(them) == 1 and receipts[them[0]][0] == node else None)
    return out


def _placing(nodes: Sequence[str], receipts: Sequence[str]) -> list[int] | None:
    """The leftmost placing of ``receipts`` as a subsequence of ``nodes`` (the priced part
    of each receipt part), or ``None`` when there is none."""
    out, i = [], 0
    for node in receipts:
        while i < len(nodes) and nodes[i] != node:
            i += 1
        if i == len(nodes):
            return None
        out.append(i)
        i += 1
    return out


def _by_order(nodes: Sequence[str], receipts: Sequence[str]) -> list[int | None]:
    out: list[int | None] = [None] * len(nodes)
    left = _placing(nodes, receipts)
    right = _placing(nodes[::-1], receipts[::-1])  # the rightmost, read backwards
    if left is None or right is None:
        return out
    last = len(nodes) - 1
    rightmost = [last - i for i in reversed(right)]
    for j, (i, k) in enumerate(zip(left, rightmost, strict=True)):
        if i == k:  # every placing puts receipt part j here
            out[i] = j
    return out
