"""What one more ``settlements`` index costs the hot path's write, in process, same run.

Method: two store-migrated SQLite files (WAL, as a registry's), "with" given one more
index on ``settlements`` (``--index COLUMN``, default ``payer``: the index migration 0021
dropped), "without" as the head leaves it (``--aa``: both with it, to see the method's own
bias). On each, settlement's own ``SqliteSettleDb`` writes what a request does with
reservation leases (the default): a ``Take`` when the payer's lease must grow, and the
answer as a ``Spend`` (the ``answered`` row, the total moved out of the lease), each at once
on this thread (``try_inline``), timed on the thread CPU clock; ``--payers`` payers in turn
(one per API key in a gateway). Blocks of ``--block`` requests alternate between the two
files (the order flipped every round; the first round is a warm-up), ``--trash-kib`` of
memory walked before each request (the gateway's own work evicts SQLite's pages between two
requests; 0: warm figures). Printed: µs of CPU a request, the median of the blocks per
file, and per pair of blocks the difference (without − with).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_index.py [--rounds 21]
        [--block 400] [--payers 20] [--trash-kib 0] [--index payer] [--aa]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import machine_line
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.lease_book import LeaseBook
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, Op, PaidPart, SqliteSettleDb
from LLM_Mesh.registry.settle_lease import Spend, Take, lease_wrote
from LLM_Mesh.registry.store import SqlStore

OPERATOR = pseudonym("operator", "o")
Target = tuple[SqlStore, SqliteSettleDb, LeaseBook]


async def _open(d: str, index: str | None, payers: list[str]) -> Target:
    path = Path(d) / "registry.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()

    async def engine() -> AsyncEngine:
        return store.engine

    await SqlLedger(engine).append([Transfer("grant", MINT, p, 10**15) for p in payers])
    if index is not None:
        conn = sqlite3.connect(path)
        conn.execute(f"CREATE INDEX ix_probe_{index} ON settlements ({index})")
        conn.commit()
        conn.close()
    db = SqliteSettleDb(str(path), checkpoint_every=300)
    await db.open()
    return store, db, LeaseBook(4, 1.0)


def _trash(buf: bytearray) -> None:
    for i in range(0, len(buf), 64):
        buf[i] = (buf[i] + 1) & 0xFF


async def _write(db: SqliteSettleDb, book: LeaseBook, op: Op) -> None:
    done = db.try_inline([op], "h1")
    if done is None:  # the connection's thread had it (a checkpoint): write there
        done = await db.apply([op], "h1", datetime.now(timezone.utc))
    lease_wrote(book, op, done[0], time.monotonic(), failed=False)


async def _block(t: Target, start: int, n: int, payers: list[str], buf: bytearray) -> float:
    _, db, book = t
    cpu = 0.0
    for i in range(start, start + n):
        key, payer = f"r{i}", payers[i % len(payers)]
        if len(buf) > 1:
            _trash(buf)
        c0 = time.thread_time()
        if not book.admit(key, payer, 5000, time.monotonic()):
            held, grow, margin = book.plan(payer, 5000)
            await _write(db, book, Take(key, payer, "m", 5000, held, grow, margin))
        a = Answer(key, payer, "m", 5000, (PaidPart("n1", OPERATOR, 1200, 60),), "ab" * 32)
        spent = book.spend(key)
        await _write(db, book, a if spent is None else Spend(a, spent.lease_id))
        cpu += time.thread_time() - c0
        await asyncio.sleep(0)  # a due checkpoint starts in its thread
    return cpu / n * 1e6


async def main(args: argparse.Namespace) -> None:
    payers = [pseudonym("user", f"key-{i}") for i in range(args.payers)]
    buf = bytearray(max(1, args.trash_kib * 1024))
    with tempfile.TemporaryDirectory() as da, tempfile.TemporaryDirectory() as db_:
        with_ = await _open(da, args.index, payers)
        without = await _open(db_, args.index if args.aa else None, payers)
        a: list[float] = []
        b: list[float] = []
        for r in range(args.rounds):
            pairs = [(with_, a), (without, b)]
            for t, out in pairs if r % 2 == 0 else pairs[::-1]:
                out.append(await _block(t, r * args.block, args.block, payers, buf))
        for store, db, _ in (with_, without):
            await db.close()
            await store.close()
    a, b = a[1:], b[1:]  # the first round: a warm-up
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    print(machine_line())
    label = f"ix on {args.index}" + (" (both: --aa)" if args.aa else "")
    print(
        f"µs of CPU a request (take when due + spend), {label}, {args.payers} payers, "
        f"trash {args.trash_kib} KiB, {len(a)} blocks of {args.block} each"
    )
    print(f"  with:    median {statistics.median(a):.1f}")
    print(f"  without: median {statistics.median(b):.1f}")
    lower = sum(d < 0 for d in diffs)
    print(
        f"  without - with per pair: median {statistics.median(diffs):+.1f}, lower {lower}/{len(diffs)}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--block", type=int, default=400)
    ap.add_argument("--payers", type=int, default=20)
    ap.add_argument("--trash-kib", type=int, default=0)
    ap.add_argument("--index", default="payer")
    ap.add_argument("--aa", action="store_true", help="both files with the index")
    parsed = ap.parse_args()
    if parsed.rounds < 2:  # the first round is a warm-up
        ap.error("--rounds at least 2")
    asyncio.run(main(parsed))
