"""Settlement's SQLite work per request, in process, part by part: the hot path's two
writes, the settler's append by batch size, the write-ahead log's checkpoints.

Method: a store-migrated SQLite file (WAL, as a registry's), one payer granted a balance
that never runs out, settlement's own ``SqliteSettleDb`` as the gateway opens it. For
each request, one at a time: ``Reserve`` then ``Answer`` (one part, an operator known),
each written at once on this thread (``try_inline``, what a request alone does in the
gateway), timed on the thread CPU clock; between requests ``--trash-kib`` of memory is
walked (the gateway's own work evicts SQLite's pages and code from the caches between two
requests: 0 for warm figures). Every ``--batch`` requests the answered ones are settled
with ``append_settled`` in one transaction (the settler's round on SQLite), timed in the
connection's thread. Checkpoints run every ``--checkpoint-every`` commits, as the gateway
runs them, timed in that thread. Printed, µs of CPU per request: reserve, answer, append,
checkpoints; and the wall time of a checkpoint. ``--lease N`` (N > 0) runs settlement's
reservation leases instead (``registry/settle_lease.py``): a request is admitted from the
holder's lease in memory (``LeaseBook.admit``), a ``Take`` written when the lease must
grow (its count printed), and the answer is a ``Spend`` (the row, and the total moved from
the lease); ``--lease 0 4`` runs both, one after the other.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_cost.py [--requests 4000]
        [--batch 80 400] [--checkpoint-every 100 1000] [--trash-kib 2048] [--lease 0 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from _common import machine_line
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.lease_book import LeaseBook
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import (
    Answer,
    Op,
    PaidPart,
    Reserve,
    SqliteSettleDb,
    sqlite_time,
)
from LLM_Mesh.registry.settle_lease import Spend, Take, lease_wrote
from LLM_Mesh.registry.settle_sqlite import append_settled
from LLM_Mesh.registry.store import SqlStore

PAYER = pseudonym("user", "probe")
OPERATOR = pseudonym("operator", "probe")


def _trash(buf: bytearray, kib: int) -> None:
    """Touch ``kib`` KiB (one write a cache line): evicts what the last request warmed."""
    for i in range(0, kib * 1024, 64):
        buf[i] = (buf[i] + 1) & 0xFF


async def one_config(
    args: argparse.Namespace, batch: int, every: int, lease: int = 0
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="settle-cost-") as d:
        path = Path(d) / "registry.db"
        store = SqlStore(f"sqlite:///{path}")
        await store.open()

        async def engine() -> AsyncEngine:
            return store.engine

        await SqlLedger(engine).append([Transfer("grant", MINT, PAYER, 10**15)])
        db = SqliteSettleDb(str(path), checkpoint_every=every)
        await db.open()
        ck_cpu: list[float] = []
        ck_wall: list[float] = []
        real = db._checkpoint_now

        def timed_checkpoint() -> tuple[int, int, int]:
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return real()
            finally:
                ck_cpu.append(time.thread_time() - c0)
                ck_wall.append(time.perf_counter() - w0)

        db._checkpoint_now = timed_checkpoint  # type: ignore[method-assign]
        buf = bytearray(max(1, args.trash_kib) * 1024)
        res = ans = app = 0.0
        answered: list[Answer] = []
        app_cpu: list[float] = []
        book = LeaseBook(lease, 1.0) if lease else None

        def timed_append(conn: Any, answers: list[Answer], now: str, now_us: int) -> int:
            c0 = time.thread_time()
            try:
                return append_settled(conn, answers, now, now_us)
            finally:
                app_cpu.append(time.thread_time() - c0)

        for i in range(args.requests):
            key = f"r{i}"
            if args.trash_kib:
                _trash(buf, args.trash_kib)
            now = datetime.now(timezone.utc)
            c0 = time.thread_time()
            rop: Op | None = Reserve(key, PAYER, "m", 5000)
            if book is not None:
                if book.admit(key, PAYER, 5000, time.monotonic()):
                    rop = None
                else:
                    held, grow, margin = book.plan(PAYER, 5000)
                    rop = Take(key, PAYER, "m", 5000, held, grow, margin)
            got = None if rop is None else db.try_inline([rop], "h1", now)
            if got is not None and book is not None:
                lease_wrote(book, rop, got[0], time.monotonic(), failed=False)
            c1 = time.thread_time()
            if args.trash_kib:
                _trash(buf, args.trash_kib // 4)
            a = Answer(key, PAYER, "m", 5000, (PaidPart("n1", OPERATOR, 1200, 60),), "ab" * 32)
            c2 = time.thread_time()
            aop: Op = a
            if book is not None:
                spent = book.spend(key)
                aop = a if spent is None else Spend(a, spent.lease_id)
            done = db.try_inline([aop], "h1", datetime.now(timezone.utc))
            if done is not None and book is not None:
                lease_wrote(book, aop, done[0], time.monotonic(), failed=False)
            c3 = time.thread_time()
            if got is None and rop is not None:  # the connection's thread had it: write there
                got = await db.apply([rop], "h1", now)
                if book is not None:
                    lease_wrote(book, rop, got[0], time.monotonic(), failed=False)
            if done is None:
                done = await db.apply([aop], "h1", datetime.now(timezone.utc))
                if book is not None:
                    lease_wrote(book, aop, done[0], time.monotonic(), failed=False)
            res += c1 - c0
            ans += c3 - c2
            answered.append(a)
            await asyncio.sleep(0)  # a due checkpoint starts in its thread
            if len(answered) >= batch:
                now = datetime.now(timezone.utc)
                fn = partial(timed_append, answers=answered, now=sqlite_time(now),
                             now_us=int(time.time() * 1e6))  # fmt: skip
                await db.transact(fn, inline=False)
                answered = []
        if db._checkpoint is not None:  # the last one: let it finish
            await db._checkpoint
        app = sum(app_cpu)
        await db.close()
        await store.close()
        n = args.requests
        return {
            "reserve": res / n * 1e6,
            "answer": ans / n * 1e6,
            "append": app / n * 1e6,
            "checkpoints": sum(ck_cpu) / n * 1e6,
            "checkpoint_wall_ms": statistics.median(ck_wall) * 1e3 if ck_wall else 0.0,
            "checkpoint_n": float(len(ck_cpu)),
            "takes": float(n if book is None else book.taken),
        }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--batch", type=int, nargs="+", default=[80, 400])
    ap.add_argument("--checkpoint-every", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--trash-kib", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--lease", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    print(
        "lease batch  ckpt_every | reserve  answer  append  checkpoints (µs CPU/request) | "
        "checkpoint wall p50 ms, count | reservation writes"
    )
    for r in range(args.repeat):
        for batch in args.batch if r % 2 == 0 else list(reversed(args.batch)):
            for every in args.checkpoint_every:
                for lease in args.lease if r % 2 == 0 else list(reversed(args.lease)):
                    f = await one_config(args, batch, every, lease)
                    print(f"{lease:5d} {batch:5d} {every:11d} | {f['reserve']:7.1f} "
                          f"{f['answer']:7.1f} {f['append']:7.1f} {f['checkpoints']:11.1f} | "
                          f"{f['checkpoint_wall_ms']:.2f}, {f['checkpoint_n']:.0f} | "
                          f"{f['takes']:.0f}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
