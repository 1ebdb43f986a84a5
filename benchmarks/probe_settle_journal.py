"""One answer made safe before its release, in process: the hot path's ``Spend`` commit against
one journal line.

Question (issue 7, one at a time): what would the critical path save if an answer were
made safe against a crash of the process by a line appended to a file (what
``settle_journal.OwnJournal`` writes for an answer whose write failed, without its
``fsync``) and its ``Spend`` committed after the response was written? Nothing here
changes the gateway; it measures the two steps alone.

Method: a store-migrated SQLite file (WAL, as a registry's), one payer granted a balance
that never runs out, settlement's own ``SqliteSettleDb`` as the gateway opens it and a
reservation lease in memory (``LeaseBook``, as the defaults: ``Take`` when the lease must
grow, not timed). Each request, one at a time, ``--trash-kib`` of memory walked first (the
gateway's own work evicts SQLite's pages and code from the caches between two requests).
Timed, wall (``perf_counter``) and this thread's CPU: ``spend``, the ``Spend`` written at
once on this thread (``try_inline``: what a request alone does in the gateway, ``BEGIN
IMMEDIATE`` to ``COMMIT``); ``line``, the answer's journal line (``settle_journal._line``)
appended with one ``os.write`` (``O_APPEND``, no sync; its ``Spend`` written after the
timing); ``line+sync``, the same with ``os.fsync`` (what the failure journal does). The
modes alternate in rotating order, ``--requests`` each a round; printed: each round's
median per mode, and the medians of the rounds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_journal.py [--requests 300]
        [--rounds 6] [--trash-kib 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import machine_line
from probe_settle_cost import OPERATOR, PAYER, _trash
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.lease_book import LeaseBook
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart, SqliteSettleDb
from LLM_Mesh.registry.settle_journal import Unwritten, _line
from LLM_Mesh.registry.settle_lease import Spend, Take, lease_wrote
from LLM_Mesh.registry.store import SqlStore

MODES = ("spend", "line", "line+sync")


async def measure(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    """Each mode's per-round medians, (wall µs, CPU µs)."""
    out: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="settle-journal-", dir=Path.cwd()) as d:
        path = Path(d) / "registry.db"
        store = SqlStore(f"sqlite:///{path}")
        await store.open()

        async def engine() -> AsyncEngine:
            return store.engine

        await SqlLedger(engine).append([Transfer("grant", MINT, PAYER, 10**15)])
        db = SqliteSettleDb(str(path))
        await db.open()
        book = LeaseBook(4, 1.0)
        fd = os.open(Path(d) / "settlement.unwritten.h1", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)  # fmt: skip
        buf = bytearray(max(1, args.trash_kib) * 1024)
        n = 0
        try:
            for r in range(args.rounds):
                order = MODES[r % 3 :] + MODES[: r % 3]
                for mode in order:
                    walls: list[float] = []
                    cpus: list[float] = []
                    while len(walls) < args.requests:
                        n += 1
                        key = f"r{n}"
                        if args.trash_kib:
                            _trash(buf, args.trash_kib)
                        now = datetime.now(timezone.utc)
                        if not book.admit(key, PAYER, 5000, time.monotonic()):
                            held, grow, margin = book.plan(PAYER, 5000)
                            take = Take(key, PAYER, "m", 5000, held, grow, margin)
                            got = db.try_inline([take], "h1") or await db.apply([take], "h1", now)
                            lease_wrote(book, take, got[0], time.monotonic(), failed=False)
                        a = Answer(key, PAYER, "m", 5000, (PaidPart("n1", OPERATOR, 1200, 60),),
                                   "ab" * 32)  # fmt: skip
                        lease = book.spend(key)
                        if lease is None:
                            raise SystemExit("admitted without a lease")
                        op = Spend(a, lease.lease_id)
                        w0, c0 = time.perf_counter(), time.thread_time()
                        done = None
                        if mode == "spend":
                            done = db.try_inline([op], "h1")
                        else:
                            os.write(fd, (_line(Unwritten("h1", a, True)) + "\n").encode())
                            if mode == "line+sync":
                                os.fsync(fd)
                        w1, c1 = time.perf_counter(), time.thread_time()
                        if done is None:  # after the timing (or the thread had it: not kept)
                            timed = mode != "spend"
                            done = db.try_inline([op], "h1") or await db.apply([op], "h1", now)
                        else:
                            timed = True
                        lease_wrote(book, op, done[0], time.monotonic(), failed=False)
                        if timed:
                            walls.append((w1 - w0) * 1e6)
                            cpus.append((c1 - c0) * 1e6)
                        await asyncio.sleep(0)  # a due checkpoint starts in its thread
                    out[mode].append((statistics.median(walls), statistics.median(cpus)))
        finally:
            os.close(fd)
            await db.close()
            await store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="a mode, a round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--trash-kib", type=int, default=2048)
    args = ap.parse_args()
    print(__doc__.splitlines()[0])
    print(machine_line())
    out = asyncio.run(measure(args))
    for mode, rounds in out.items():
        walls = ", ".join(f"{w:.1f}" for w, _ in rounds)
        wall = statistics.median(w for w, _ in rounds)
        cpu = statistics.median(c for _, c in rounds)
        print(f"{mode:>10}: median of rounds {wall:.1f} µs wall, {cpu:.1f} µs CPU; rounds (wall): "
              f"{walls}")  # fmt: skip


if __name__ == "__main__":
    main()
