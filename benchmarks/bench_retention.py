"""The request log's retention: how long one pruning statement holds the write lock, and
whether SQLite's file stops growing once old rows are pruned.

Method: ``--rows`` request rows (request ids and node ids shaped as the gateway's:
``req-`` + 32 hex, ``node-`` + 16 hex; one second apart) written with
``SqlStore.record_requests`` in batches of 5,000; then the older half deleted with
``SqlStore.prune_requests(cutoff, --batch)`` (default 1,000, the pruner's) until a statement deletes fewer: each
statement's wall time (one transaction: what a writer may wait behind). On SQLite also the
bytes per row of ``requests`` and its indexes (``dbstat``), and the file size after the
prune and after writing another half again (pages of deleted rows reused, or the file grown).

On a SQLite file (WAL) and on PostgreSQL (``--pg URL``, default ``$LLM_MESH_TEST_PG_URL``;
a throw-away database, dropped after; skipped if unreachable).

Run: ``.venv/bin/python benchmarks/bench_retention.py [--rows 200000] [--batch 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pg_database

from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.store import SqlStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _row(i: int) -> RequestRecord:
    return RequestRecord(
        "req-" + os.urandom(16).hex(), "node-" + os.urandom(8).hex(), "gemma-3-270m",
        False, "ok", None, 20, 40, 120.0, 15.0, 300, T0 + timedelta(seconds=i),
    )  # fmt: skip


def _rows(a: int, b: int) -> list[RequestRecord]:
    return [_row(i) for i in range(a, b)]


async def _write(url: str, a: int, b: int) -> None:
    store = SqlStore(url)
    await store.open()
    try:
        for start in range(a, b, 5000):
            await store.record_requests(_rows(start, min(b, start + 5000)))
    finally:
        await store.close()


async def _prune(url: str, cutoff: datetime, batch: int) -> list[tuple[float, int]]:
    store = SqlStore(url)
    await store.open()
    out: list[tuple[float, int]] = []
    try:
        while True:
            t = time.perf_counter()
            gone = await store.prune_requests(cutoff, batch)
            out.append((time.perf_counter() - t, gone))
            if gone < batch:
                return out
    finally:
        await store.close()


def _sqlite_sizes(path: Path) -> tuple[int, dict[str, int], int]:
    """File bytes (after a WAL checkpoint), bytes per table/index of ``requests``, free bytes."""
    c = sqlite3.connect(path)
    try:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        per = dict(
            c.execute(
                "SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE '%requests%' GROUP BY name"
            ).fetchall()
        )
        free = c.execute("PRAGMA freelist_count").fetchone()[0]
        free *= c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()
    return path.stat().st_size, per, free


async def run(name: str, url: str, rows: int, batch: int, path: Path | None) -> None:
    half = rows // 2
    await _write(url, 0, rows)
    if path is not None:
        size, per, _ = _sqlite_sizes(path)
        print(
            f"{name}: {rows} rows, file {size} B; bytes per row: "
            + ", ".join(f"{k} {v / rows:.0f}" for k, v in sorted(per.items()))
        )
    stmts = await _prune(url, T0 + timedelta(seconds=half), batch)
    full = sorted(t for t, g in stmts if g == batch)
    gone = sum(g for _, g in stmts)
    print(
        f"{name}: pruned {gone} rows in {len(stmts)} statements; a statement of {batch}: "
        f"min {full[0] * 1e3:.0f} ms, median {full[len(full) // 2] * 1e3:.0f} ms, "
        f"max {full[-1] * 1e3:.0f} ms"
    )
    if path is not None:
        size2, _, free2 = _sqlite_sizes(path)
        await _write(url, rows, rows + half)
        size3, _, free3 = _sqlite_sizes(path)
        print(
            f"{name}: file after the prune {size2} B ({free2} B free pages); after {half} "
            f"rows more {size3} B ({free3} B free): {100 * (size3 - size) / size:+.1f} %"
        )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000, help="rows per DELETE (the pruner's)")
    ap.add_argument(
        "--pg",
        default=os.environ.get("LLM_MESH_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    args = ap.parse_args()
    if args.batch < 1 or args.rows < 4 * args.batch:
        ap.error("--batch at least 1, --rows at least 4 batches")
    print(f"# bench_retention  cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.db"
        await run("sqlite", f"sqlite:///{path}", args.rows, args.batch, path)
    try:
        url, drop = await pg_database(args.pg)
    except Exception as exc:
        print(f"postgresql: skipped ({exc})")
        return
    try:
        await run("postgresql", url, args.rows, args.batch, None)
    finally:
        await drop()


if __name__ == "__main__":
    asyncio.run(main())
