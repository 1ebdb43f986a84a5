"""What an answer's settlement row on the disk *before* its answer is released would cost on
SQLite (docs/security.md: a power cut loses the rows committed since the log's last sync;
``registry/settle_unwritten.py``).

A real :class:`~LLM_Mesh.registry.settlement.Settlement` on a SQLite file store (WAL), no
nodes: each request is a reservation and an answer (the hot path's two awaited writes),
``--requests`` of them, ``--concurrency`` at a time, in three modes, interleaved by round:

- ``before``: as before 2026-12-05 (``synchronous=NORMAL``: the commit in the log, not
  synced; the settler's sync of the log, ``settle_durable.py``, turned off);
- ``normal``: as shipped (the same, and the settler's round syncs the log when it changed:
  an answer on the disk about 0.2 s after its receipt);
- ``full``: ``PRAGMA synchronous=FULL`` on settlement's connection (every hot-path commit
  syncs the log, inline on the event loop);
- ``sync``: ``NORMAL``, and each answer awaits an ``fsync`` of the log in a thread before
  it returns (one in flight; the answers that come while it runs share the next one).

Reported per mode: requests/s, the median and p99 of a request's two writes, and the event
loop's lag (a 1 ms ticker's lateness, p99 and max: a commit that syncs on the loop stalls
every request it serves). Files on the disk of ``--dir`` (default: the repository, not
``/tmp``). Nothing simulated. One command:
``PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_durable.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, log, machine_line

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_durable import sync_log
from LLM_Mesh.registry.settle_db import Answer, PaidPart, SqliteSettleDb
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore

USER = pseudonym("user", "probe-durable")
OP = "operator:" + "ab" * 16
E = 1_000
MODES = ("before", "normal", "full", "sync")


class GroupSync:
    """One ``fsync`` of the log in flight; a caller that comes while it runs waits for the
    next one (its commit may be after the running one began)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.running: asyncio.Future[None] | None = None
        self.next: asyncio.Future[None] | None = None

    async def synced(self) -> None:
        if self.running is None:
            self.running = asyncio.ensure_future(self._sync())
            await self.running
            return
        if self.next is None:
            self.next = asyncio.ensure_future(self._after(self.running))
        await asyncio.shield(self.next)

    async def _after(self, running: asyncio.Future[None]) -> None:
        await asyncio.shield(running)
        self.running, self.next = asyncio.ensure_future(self._sync()), None
        await self.running

    async def _sync(self) -> None:
        await asyncio.to_thread(sync_log, self.db)


async def lag(stop: asyncio.Event, out: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.001)
        out.append(loop.time() - t - 0.001)


async def round_of(
    s: Settlement, mode: str, group: GroupSync, n: int, conc: int, tag: str
) -> tuple[float, list[float], list[float]]:
    took: list[float] = []

    async def one(i: int) -> None:
        key = f"{tag}-{i}"
        t = time.perf_counter()
        assert (await s.reserve(key, USER, "m", E)).ok
        await s.answer(Answer(key, USER, "m", E, (PaidPart("n1", OP, 500, 25),), "cd" * 32))
        if mode == "sync":
            await group.synced()
        took.append(time.perf_counter() - t)

    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(lag(stop, lags))
    t0 = time.perf_counter()
    for i in range(0, n, conc):
        await asyncio.gather(*(one(j) for j in range(i, min(n, i + conc))))
    wall = time.perf_counter() - t0
    stop.set()
    await ticker
    await s.flush()
    return wall, took, lags


async def main_async(args: argparse.Namespace) -> None:
    base = args.dir or ROOT
    with tempfile.TemporaryDirectory(prefix="probe-settle-durable-", dir=base) as tmp:
        db = Path(tmp) / "registry.db"
        store = SqlStore(f"sqlite:///{db}")
        await store.open()

        async def engine():  # type: ignore[no-untyped-def]
            return store.engine

        ledger = SqlLedger(engine)
        await ledger.append_one(Transfer("grant", MINT, USER, 10**15))
        s = Settlement(ledger, fee_bps=500, pool_daily_budget=0, wall_clock=time.time,
                       settle_interval_s=0.2)  # fmt: skip
        await s.start()
        sdb = s.db
        assert isinstance(sdb, SqliteSettleDb) and sdb._conn is not None
        group = GroupSync(db)
        res: dict[str, list[tuple[float, list[float], list[float]]]] = {m: [] for m in MODES}
        shipped = s._sync_written

        async def no_sync() -> None:
            return None

        await round_of(s, "normal", group, 200, args.concurrency, "warm")
        for r in range(args.rounds):
            for mode in MODES:
                sync = "FULL" if mode == "full" else "NORMAL"
                sdb._conn.execute(f"PRAGMA synchronous={sync}")
                s._sync_written = no_sync if mode == "before" else shipped  # type: ignore[method-assign]
                res[mode].append(
                    await round_of(s, mode, group, args.requests, args.concurrency, f"{mode}{r}")
                )
        sdb._conn.execute("PRAGMA synchronous=NORMAL")
        await s.stop()
        await store.close()
    med = statistics.median
    log(f"{args.requests} requests a round, {args.concurrency} at a time, {args.rounds} "
        f"rounds, files in {base}")  # fmt: skip
    print("| mode | requests/s | two writes p50 ms | p99 ms | loop lag p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for mode, rounds in res.items():
        rate = med([args.requests / w for w, _, _ in rounds])
        took = sorted(x for _, t, _ in rounds for x in t)
        lags = sorted(x for _, _, g in rounds for x in g)
        p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3  # noqa: E731
        print(f"| {mode} | {rate:.0f} | {p(took, 0.5):.3f} | {p(took, 0.99):.3f} | "
              f"{p(lags, 0.99):.3f} | {lags[-1] * 1e3:.3f} |")  # fmt: skip
    pairs = [args.requests / n[0] - args.requests / b[0]
             for n, b in zip(res["normal"], res["before"], strict=True)]  # fmt: skip
    log("normal − before, requests/s per round: " + ", ".join(f"{x:+.0f}" for x in pairs)
        + f" (median {statistics.median(pairs):+.0f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = ap.parse_args()
    log(machine_line())
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
