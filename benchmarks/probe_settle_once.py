"""What applying a PostgreSQL settlement batch exactly once costs, per batch, three ways.

A throw-away PostgreSQL database migrated to head (created and dropped), 10 payers granted a
balance that never runs out, one ``asyncpg`` connection. N rounds; in each, every variant
(in rotating order) runs a one-op batch ``reserve`` then a one-op batch ``answer`` of a new
request (the group commit's smallest batches: a request alone), timed per call:

- ``plain``: 0006's ``llm_mesh_settle_batch`` in autocommit, no batch id (the old hot
  path: a repeat after a lost connection could apply a batch twice);
- ``batch_id``: what ``PgSettleDb`` sends (``registry/settle_db.py``): 0015's
  ``llm_mesh_settle_batch2_once`` (0010's ``llm_mesh_settle_batch_once`` with the leases'
  three columns, none set here) in autocommit, the id and result rows recorded in
  ``settle_batches``;
- ``txid``: the alternative, ``BEGIN``; 0006's function with ``txid_current()``;
  ``COMMIT`` (``txid_status()`` would be asked only after a lost ``COMMIT``): two more
  round trips.

Printed: p50, p90 and mean per call of each variant, and each one's p50 less ``plain``'s.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_once.py [N] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import datetime, timezone
from typing import Any

from _common import machine_line, pct, pg_database

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import settle_db_pg as sd
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.store import SqlStore

PLAIN = (
    "SELECT idx, ok, bal, res FROM llm_mesh_settle_batch("
    "$1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[], $7::text[], "
    "$8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text, $13::timestamptz)"
)
TXID = PLAIN.replace("SELECT idx, ok, bal, res", "SELECT idx, ok, bal, res, txid_current()")
PLAIN_COLS = 11  # 0006's arrays: settle_db_pg._pg_rows' first 11 (then the leases' 3, 0015's)
VARIANTS = ("plain", "batch_id", "txid")


async def one(conn: Any, variant: str, cols: list[list[Any]], now: datetime) -> list[Any]:
    if variant == "plain":
        return list(await conn.fetch(PLAIN, *cols[:PLAIN_COLS], "bench", now))
    if variant == "batch_id":
        return list(await conn.fetch(sd._PG_BATCH, sd._batch_id(), *cols, "bench", now))
    await conn.execute("BEGIN")
    rows = await conn.fetch(TXID, *cols[:PLAIN_COLS], "bench", now)
    await conn.execute("COMMIT")
    return list(rows)


async def funded_payers(url: str, n: int = 10) -> list[str]:
    """``n`` payers in the (migrated) database at ``url``, granted a balance that never runs
    out."""
    users = [pseudonym("user", f"bench-{i}") for i in range(n)]
    async with SqlStore(url) as store:

        async def engine() -> Any:
            return store.engine

        await SqlLedger(engine).append([Transfer("grant", MINT, u, 10**12) for u in users])
    return users


async def run(n: int, admin_url: str) -> dict[str, list[float]]:
    import asyncpg  # type: ignore[import-untyped]

    url, drop = await pg_database(admin_url)
    try:
        users = await funded_payers(url)
        conn = await asyncpg.connect(url)
        try:
            now = datetime.now(timezone.utc)
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for i in range(n):
                k = i % len(VARIANTS)
                for variant in VARIANTS[k:] + VARIANTS[:k]:
                    key, user = f"{variant}-{i}", users[i % len(users)]
                    part = sd.PaidPart(f"node-{i % 10}", "operator:bench", 100, 5)
                    for op in (
                        sd.Reserve(key, user, "mistral-7b", 135),
                        sd.Answer(key, user, "mistral-7b", 135, (part,)),
                    ):
                        cols, _ = sd._pg_rows([op])
                        t0 = time.perf_counter()
                        rows = await one(conn, variant, cols, now)
                        times[variant].append(time.perf_counter() - t0)
                        assert rows[0]["ok"], (variant, op, rows)
            return times
        finally:
            await conn.close()
    finally:
        await drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=1000, help="rounds (2 calls per variant)")
    ap.add_argument(
        "--pg", default=os.environ.get("LLM_MESH_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )  # fmt: skip
    args = ap.parse_args()
    print(machine_line())
    times = asyncio.run(run(args.n, args.pg))
    base = pct(sorted(times["plain"]), 0.5)
    for variant, xs in times.items():
        xs.sort()
        p50 = pct(xs, 0.5)
        print(
            f"{variant:9s} {len(xs)} calls: p50 {p50 * 1e3:.3f} ms, p90 "
            f"{pct(xs, 0.9) * 1e3:.3f} ms, mean {statistics.mean(xs) * 1e3:.3f} ms; "
            f"p50 - plain's {(p50 - base) * 1e3:+.3f} ms"
        )


if __name__ == "__main__":
    main()
