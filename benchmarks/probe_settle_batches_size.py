"""How much disk PostgreSQL's ``settle_batches`` (migration 0010) takes per batch, so its
size at a given request rate and keep window (``batch_keep_s``, an hour) can be read.

Method: a throw-away PostgreSQL database migrated to head (created and dropped), 10 payers
granted a balance that never runs out, one ``asyncpg`` connection. For each batch size
(ops per batch: 1 is a request alone, one reserve or one answer; larger ones are what
the group commit makes under concurrency), ``N`` batches are sent exactly as
``PgSettleDb`` sends them (``llm_mesh_settle_batch_once`` with a fresh batch id; each op
a new request's ``reserve``, then as many batches of their ``answer``), and the table's
whole size (heap, TOAST and both indexes: ``pg_total_relation_size``) is read before and
after: as written (the function inserts the id, then updates the row with the results,
so each batch also leaves a dead row until a vacuum), and after ``VACUUM`` (the dead
rows' space reusable, the file not shrunk). Then ``VACUUM FULL`` empties the table for
the next size.

Printed per size: bytes per batch as written and live bytes per batch (after ``VACUUM
FULL`` of just that size's rows), and what one hour of batches takes at 100 and 1,000
requests a second when each request is alone in its two batches (the worst case: one
op per batch).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settle_batches_size.py [N] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import datetime, timezone
from typing import Any

from _common import machine_line, pg_database
from probe_settle_once import funded_payers

from LLM_Mesh.registry import settle_db_pg as sd

SIZES = (1, 8, 64)
SIZE_SQL = "SELECT pg_total_relation_size('settle_batches')"


async def _size(conn: Any) -> int:
    return int(await conn.fetchval(SIZE_SQL))


async def run(n: int, admin_url: str) -> list[dict[str, float]]:
    import asyncpg  # type: ignore[import-untyped]

    url, drop = await pg_database(admin_url)
    out: list[dict[str, float]] = []
    try:
        users = await funded_payers(url)
        conn = await asyncpg.connect(url)
        try:
            now = datetime.now(timezone.utc)
            for size in SIZES:
                await conn.execute("VACUUM FULL settle_batches")
                empty = await _size(conn)
                batches = 0
                for b in range(n):
                    keys = [f"s{size}-b{b}-{j}" for j in range(size)]
                    part = sd.PaidPart("node-1", "operator:bench", 100, 5)
                    for ops in (
                        [sd.Reserve(k, users[j % 10], "mistral-7b", 135) for j, k in enumerate(keys)],
                        [sd.Answer(k, users[j % 10], "mistral-7b", 135, (part,)) for j, k in enumerate(keys)],
                    ):  # fmt: skip
                        cols, _ = sd._pg_rows(ops)
                        rows = await conn.fetch(sd._PG_BATCH, sd._batch_id(), *cols, "bench", now)
                        assert all(r["ok"] for r in rows), rows
                        batches += 1
                written = await _size(conn) - empty
                await conn.execute("VACUUM settle_batches")
                vacuumed = await _size(conn) - empty
                await conn.execute("VACUUM FULL settle_batches")
                live = await _size(conn)
                out.append({
                    "ops_per_batch": size, "batches": batches,
                    "bytes_per_batch_written": written / batches,
                    "bytes_per_batch_after_vacuum": vacuumed / batches,
                    "bytes_per_batch_live": live / batches,
                })  # fmt: skip
                await conn.execute("DELETE FROM settle_batches")
        finally:
            await conn.close()
    finally:
        await drop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=2000, help="reserve + answer rounds per size")
    ap.add_argument(
        "--pg", default=os.environ.get("LLM_MESH_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )  # fmt: skip
    args = ap.parse_args()
    print(machine_line())
    for r in asyncio.run(run(args.n, args.pg)):
        per = r["bytes_per_batch_written"]
        print(
            f"{r['ops_per_batch']:>3} ops/batch, {r['batches']:.0f} batches: "
            f"{per:.0f} B/batch as written, {r['bytes_per_batch_after_vacuum']:.0f} after VACUUM, "
            f"{r['bytes_per_batch_live']:.0f} live (VACUUM FULL); "
            f"{per / r['ops_per_batch']:.0f} B/op as written"
        )
        if r["ops_per_batch"] == 1:
            for rate in (100, 1000):  # requests/s, each alone: 2 one-op batches
                print(
                    f"    one hour at {rate} requests/s, one op per batch: "
                    f"{per * 2 * rate * 3600 / 1e9:.2f} GB as written, "
                    f"{r['bytes_per_batch_live'] * 2 * rate * 3600 / 1e9:.2f} GB live"
                )


if __name__ == "__main__":
    main()
