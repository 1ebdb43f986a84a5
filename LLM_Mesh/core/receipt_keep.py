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

What a clean statement covered (:func:`covered`) is also recorded for ``llm-mesh receipt
prune``, which works offline (found 2026-12-05, ``receipts31``: it removed receipts whose
debits no statement had checked, and the next one named them ``NO RECEIPT``, the user's
evidence gone): a held receipt is covered when every entry of the log naming it lies below
the size judged and, if none names it yet, it was made :data:`PENDING_S` (the statement's
settle grace) before the signed checkpoint, so one settled after the statement ran, or
pending, is not. The record (:func:`coverage_text`, ``receipt_files.COVERED`` in the key's
folder) holds the receipts' hashes, never file names: a file replaced or added by hand is
covered only if it holds the very receipt checked. Written whole by each clean statement of
that folder (so bounded by what it read), removed by a statement with findings, never
written by one of a ``--receipts DIR``; prune removes only the old receipts it names
(:func:`to_prune`), unless told otherwise. A record that does not parse covers nothing.

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
import json
import re
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, TypeVar

from LLM_Mesh.core.ledger_statement import PENDING_S
from LLM_Mesh.core.receipt import Receipt

__all__ = [
    "COVERAGE_FORMAT",
    "KEEP_S",
    "NOTE_AGE_S",
    "NOTE_BYTES",
    "NOTE_EVERY_S",
    "NOTE_FILES",
    "Kept",
    "coverage_text",
    "covered",
    "look_due",
    "note",
    "older_than",
    "parse_coverage",
    "removable",
    "stamp_time",
    "to_prune",
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
COVERAGE_FORMAT = "llm-mesh covered receipts v1"
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Kept:
    """What a key's folder holds: its receipt files, their bytes, and the oldest file's
    time by its name (``None``: none named so)."""

    files: int
    size: int
    oldest_s: float | None = None


def covered(
    held: Sequence[Receipt],
    by_receipt: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    judged_size: int,
    signed_time_ms: int,
    grace_s: int = PENDING_S,
) -> set[str]:
    """The hashes of the ``held`` receipts a clean statement over the first
    ``judged_size`` entries (signed at ``signed_time_ms``) covered: every entry naming one
    lies below that size, and one no entry names yet was made ``grace_s`` before the
    checkpoint (else settlement may write its debits after it)."""
    out = set()
    for r in held:
        seqs = [e.get("seq") for e in by_receipt.get(r.receipt_hash, ())]
        if not seqs and r.time_ms > signed_time_ms - grace_s * 1000:
            continue  # pending: settled after the statement ran, perhaps
        if all(type(s) is int and s < judged_size for s in seqs):
            out.add(r.receipt_hash)
    return out


def removable(
    held: Sequence[Receipt],
    by_receipt: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    judged_size: int,
    now_ms: int,
    keep_s: int = KEEP_S,
) -> set[str]:
    """The hashes of the ``held`` receipts a clean statement over the first
    ``judged_size`` entries covered (:func:`covered`, its checkpoint's time ``now_ms``)
    that are older than ``keep_s`` at ``now_ms`` (``by_receipt``: per hash, every entry of
    the log naming it)."""
    cut = now_ms - keep_s * 1000
    old = [r for r in held if r.time_ms <= cut]
    return covered(old, by_receipt, judged_size=judged_size, signed_time_ms=now_ms)


def coverage_text(hashes: Iterable[str], *, through: int, checkpoint_ms: int) -> str:
    """The record of the receipts (``hashes``) a clean statement covered, judging the
    first ``through`` entries under a checkpoint signed at ``checkpoint_ms``."""
    return json.dumps(
        {"format": COVERAGE_FORMAT, "through": through, "checkpoint_time_ms": checkpoint_ms,
         "receipts": sorted(set(hashes))},
        separators=(",", ":"),
    ) + "\n"  # fmt: skip


def parse_coverage(text: str) -> set[str]:
    """The receipt hashes a record (:func:`coverage_text`) names; ``ValueError`` for
    anything else (a torn or hand-edited file covers nothing)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    hashes = data.get("receipts") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != COVERAGE_FORMAT
        or not isinstance(hashes, list)
        or not all(isinstance(h, str) and _HASH.match(h) for h in hashes)
    ):
        raise ValueError("not what a clean `ledger statement` writes")
    return set(hashes)


def to_prune(
    kept: Mapping[K, tuple[int, str]],
    covering: Set[str] | None,
    now_ms: int,
    days: int,
    *,
    uncovered_too: bool = False,
) -> tuple[set[K], set[K]]:
    """Of the kept receipts (``kept``: each one's signed ``time_ms`` and hash), those
    ``receipt prune --older-than days`` removes (:func:`older_than` and named by the record
    ``covering``, or all old ones with ``uncovered_too``), and the old ones no clean
    statement covered (``covering`` ``None``: no record, none)."""
    old = older_than({k: t for k, (t, _) in kept.items()}, now_ms, days)
    cover = covering or set()
    uncovered = {k for k in old if kept[k][1] not in cover}
    return (old if uncovered_too else old - uncovered), uncovered


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
