"""The newest checkpoint a registry signed or saw, held against the store it starts on.

A checkpoint, once signed, is public: verifiers and witnesses keep it, and any later
checkpoint must extend it (a consistency proof). A database restored from an older
backup (or a wrong ``--database-url``, a deleted SQLite file) holds a **shorter** ledger
than the checkpoints already out: a registry that served on it would sign new entries on
the short tree, a second history at sizes already signed (a split view that witnesses
refuse and verifiers report as the registry lying), and the paid requests and earnings
written after the backup would be gone from the balances.

So the registry keeps the newest checkpoint it signed or read from its store in a small
file beside ``registry.key`` (the **mark**, ``registry/ledger_mark.py``), written before a
checkpoint it signs is stored, and at start :func:`mark_problem` holds it against the
store's tree: a tree shorter than the mark, or one whose root at the mark's size is not
the mark's root, is refused. Pure: the caller reads the file and the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["Mark", "mark_problem", "parse_mark", "replaces"]


@dataclass(frozen=True)
class Mark:
    """What a kept checkpoint says: its log (origin), size and root."""

    origin: str
    tree_size: int
    root_hash: bytes
    time_us: int


def parse_mark(text: str) -> Mark:
    """The mark in ``text`` (``core/gossip.export``'s JSON, as ``llm-mesh ledger checkpoint
    --out`` writes it); :class:`ValueError` for anything else."""
    try:
        data = json.loads(text)
        origin, size = data["origin"], data["tree_size"]
        root = bytes.fromhex(data["root_hash"])
        time_us = data.get("time_us", 0)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a kept checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(origin, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ValueError("not a kept checkpoint: origin and tree_size of the wrong type")
    if size < 0 or len(root) != 32 or not isinstance(time_us, int):
        raise ValueError("not a kept checkpoint: a bad size, root or time")
    return Mark(origin, size, root, time_us)


def replaces(old: Mark | None, new: Mark) -> bool:
    """Whether ``new`` is kept instead of ``old``: only a larger tree of the same log (the
    mark never goes back), or any checkpoint of another log (a new ``ledger_origin``)."""
    return old is None or old.origin != new.origin or new.tree_size > old.tree_size


def mark_problem(mark: Mark, origin: str, size: int, root_at_mark: bytes | None) -> str | None:
    """Why the store's ledger (``size`` entries; ``root_at_mark``: its root at the mark's
    size, ``None`` when shorter) must not be served under ``origin``, or ``None``.

    Another origin is another log (the operator started a new one on purpose): no problem.
    """
    if mark.origin != origin:
        return None
    if size < mark.tree_size:
        lost = mark.tree_size - size  # found 2026-12-05: "the 1 entries after it"
        which = f"{size}" if lost == 1 else f"{size} to {mark.tree_size - 1}"
        return (
            f"the store's ledger has {size} entries, but this registry already published a "
            f"checkpoint at size {mark.tree_size} (root {mark.root_hash.hex()[:16]}...): the "
            "database was restored from an older backup (or is not this network's, or was "
            f"deleted), and it lacks {lost} published {'entry' if lost == 1 else 'entries'} "
            f"({which}: paid requests and earnings); serving would fork the public ledger"
        )
    if root_at_mark != mark.root_hash:
        got = root_at_mark.hex()[:16] if root_at_mark is not None else "none"
        return (
            f"the store's ledger at size {mark.tree_size} has root {got}..., but this registry "
            f"published a checkpoint at that size with root {mark.root_hash.hex()[:16]}...: "
            "the database holds another history (a restored backup that has since grown, or "
            "another network's database); serving would fork the public ledger"
        )
    return None
