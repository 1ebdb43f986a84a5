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

That bound needs the user to run a statement. One who never does (found 2026-12-05,
``money30``: the folder grew without end, unsaid) is told, never pruned behind their back
(a receipt is the user's only evidence of a charge): once a day at most
(:func:`look_due`) ``ask`` looks at the folder and, past :func:`note`'s bound (a count,
bytes, or a receipt older than two windows: none that a monthly statement would have left),
prints one line saying so and what to run: ``ledger statement`` (which prunes as above), or
``llm-mesh receipt prune --older-than DAYS``, which removes the receipts the user chose by
their signed time (:func:`older_than`), and says how many.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from LLM_Mesh.core.receipt import Receipt

__all__ = [
    "KEEP_S",
    "NOTE_AGE_S",
    "NOTE_BYTES",
    "NOTE_EVERY_S",
    "NOTE_FILES",
    "Kept",
    "look_due",
    "note",
    "older_than",
    "removable",
    "stamp_time",
]

K = TypeVar("K", bound=Hashable)

KEEP_S = 30 * 86_400  # a receipt a clean statement covered is kept this long after it
NOTE_EVERY_S = 86_400  # ask looks at the folder (and may say so) once a day at most
# a receipt kept is 1-3 KiB: 10,000 of them are months of steady use, a tenth of what
# `ledger statement` reads at most (100,000 files), 64 MiB far above what they take
NOTE_FILES = 10_000
NOTE_BYTES = 64 << 20
NOTE_AGE_S = 2 * KEEP_S  # older than this: no clean statement covered it for a month
_STAMP = re.compile(r"^receipt-(\d{8}T\d{6}Z)-[0-9a-f]+\.json$")  # receipt_files.save_receipt
_AHEAD_S = 300  # a look dated further ahead of the clock: the clock was set back


@dataclass(frozen=True)
class Kept:
    """What a key's folder holds: its receipt files, their bytes, and the oldest file's
    time by its name (``None``: none named so)."""

    files: int
    size: int
    oldest_s: float | None = None


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


def look_due(last_s: float | None, now_s: float, every_s: float = NOTE_EVERY_S) -> bool:
    """Whether ``ask`` looks at the folder now: never looked (``None``), ``every_s`` since
    the last look, or a last look dated ahead of the clock (it was set back)."""
    return last_s is None or now_s - last_s >= every_s or last_s > now_s + _AHEAD_S


def note(
    kept: Kept, now_s: float, *, files: int = NOTE_FILES, size: int = NOTE_BYTES,
    age_s: int = NOTE_AGE_S,
) -> str | None:  # fmt: skip
    """What is past the bound in ``kept`` (``"12,000 receipts, the oldest 75 days old"``),
    or ``None`` when nothing is."""
    past = []
    if kept.files >= files or kept.size >= size:
        what = "receipt" if kept.files == 1 else "receipts"
        past.append(f"{kept.files:,} {what} ({kept.size / (1 << 20):.1f} MiB)")
    if kept.oldest_s is not None and now_s - kept.oldest_s >= age_s:
        days = int((now_s - kept.oldest_s) // 86_400)
        past.append(f"the oldest {days} days old")
    return ", ".join(past) or None


def stamp_time(name: str) -> float | None:
    """The UTC time a kept receipt's file name carries (``receipt-20261205T101500Z-<hex>
    .json``, ``receipt_files.save_receipt``), or ``None`` for any other name."""
    m = _STAMP.match(name)
    if m is None:
        return None
    try:
        return float(calendar.timegm(time.strptime(m.group(1), "%Y%m%dT%H%M%SZ")))
    except (ValueError, OverflowError):
        return None


def older_than(times_ms: Mapping[K, int], now_ms: int, days: int) -> set[K]:
    """Of the receipts (``times_ms``: each one's signed ``time_ms``), those more than
    ``days`` days older than ``now_ms``: what ``receipt prune --older-than DAYS`` removes.
    A time that is no whole number is never old enough."""
    cut = now_ms - days * 86_400_000
    return {k for k, t in times_ms.items() if type(t) is int and t < cut}
