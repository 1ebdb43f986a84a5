"""A registry's start with a big request log: ``snapshot.load_nodes`` before and after
migration 0011 (counters from the ``nodes`` rows only), and 0011's one-off backfill.

Method: ``--nodes`` nodes (default 20) and ``--rows`` request rows (default 1,000,000,
spread over the nodes, 1 in 20 an ``error``) written with ``SqlStore.record_requests`` in
batches of 5,000. Then, on the open store, ``--rounds`` paired rounds (A/B alternating, in
one process): **before** = what ``load_nodes`` did until 0011 (``list_nodes``, then the
request log's ``GROUP BY node_id`` over the whole table that ``Store.request_stats`` ran,
then per node the larger of the two), **after** = ``load_nodes`` as it is now. Last, the
store is migrated down to 0010 and up again: the wall time of 0011's backfill (one
``GROUP BY`` and one ``UPDATE`` a node, once per database).

On a SQLite file (WAL) and on PostgreSQL (``--pg URL``, default ``$LLM_MESH_TEST_PG_URL``;
a throw-away database, dropped after; skipped if unreachable).

Run: ``.venv/bin/python benchmarks/bench_load_nodes.py [--rows 1000000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pg_database

from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import NodeRecord, RequestRecord
from LLM_Mesh.registry.snapshot import entry_from_record, load_nodes
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_migrate import downgrade, upgrade

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

# Store.request_stats as it was until 0011 (SqlStore's statement, written out)
OLD_LOG_SCAN = """
SELECT node_id, count(*) AS requests,
       coalesce(sum(CASE WHEN outcome IN ('error') THEN 1 ELSE 0 END), 0) AS failures,
       coalesce(sum(completion_tokens), 0) AS tokens
FROM requests WHERE node_id IS NOT NULL GROUP BY node_id ORDER BY node_id
"""


def _node(i: int) -> NodeRecord:
    return NodeRecord(
        f"node-{i:04d}", f"http://10.0.0.{i}:8801", "eu", [{"id": "gemma-3-270m"}], {}, 4, 16,
        "0.1.0", "online", T0, None,
    )  # fmt: skip


def _row(i: int, nodes: int) -> RequestRecord:
    return RequestRecord(
        "req-" + os.urandom(16).hex(), f"node-{i % nodes:04d}", "gemma-3-270m", False,
        "error" if i % 20 == 0 else "ok", None, 20, 40, 120.0, 15.0, 300,
        T0 + timedelta(milliseconds=i),
    )  # fmt: skip


LAB = NodeTransport(allow_plain_http=True)  # its nodes are plain http at 10.0.0.x


async def _old_load_nodes(table: NodeTable, store: SqlStore) -> int:
    loaded = 0
    records = await store.list_nodes()
    for rec in records:
        if entry_from_record(table, rec, transport=LAB) is not None:
            loaded += 1
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text(OLD_LOG_SCAN))).all()
    logged = {r.node_id: (int(r.requests), int(r.failures), int(r.tokens)) for r in rows}
    stats = {}
    for rec in records:
        lr, lf, lt = logged.get(rec.node_id, (0, 0, 0))
        stats[rec.node_id] = {
            "requests": max(rec.requests, lr),
            "failures": max(rec.failures, lf),
            "tokens": max(rec.tokens_generated, lt),
        }
    table.seed_counters(stats)
    return loaded


def _counters(table: NodeTable) -> dict[str, tuple[int, int, int]]:
    return {e.node_id: (e.requests, e.failures, e.tokens_generated) for e in table.entries()}


async def run(label: str, url: str, nodes: int, rows: int, rounds: int) -> None:
    store = SqlStore(url)
    await store.open()
    try:
        for i in range(nodes):
            await store.upsert_node(_node(i))
        t = time.perf_counter()
        for start in range(0, rows, 5000):
            await store.record_requests(
                [_row(i, nodes) for i in range(start, min(rows, start + 5000))]
            )
        print(f"{label}: wrote {rows} rows over {nodes} nodes in {time.perf_counter() - t:.1f} s")
        before_s: list[float] = []
        after_s: list[float] = []
        for _ in range(rounds):
            old, new = NodeTable(expiry_s=30.0), NodeTable(expiry_s=30.0)
            t = time.perf_counter()
            await _old_load_nodes(old, store)
            before_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            await load_nodes(new, store, transport=LAB)
            after_s.append(time.perf_counter() - t)
            if _counters(old) != _counters(new):
                raise SystemExit(f"{label}: counters differ: {_counters(old)} {_counters(new)}")
        b, a = statistics.median(before_s), statistics.median(after_s)
        print(
            f"{label}: load_nodes median of {rounds} paired rounds: before (log scan) "
            f"{b * 1000:.1f} ms [{min(before_s) * 1000:.1f}-{max(before_s) * 1000:.1f}], "
            f"after {a * 1000:.2f} ms [{min(after_s) * 1000:.2f}-{max(after_s) * 1000:.2f}]; "
            f"before/after {b / a:.0f}x"
        )
        async with store.engine.begin() as conn:
            await conn.run_sync(downgrade, "0010")
        t = time.perf_counter()
        async with store.engine.begin() as conn:
            await conn.run_sync(upgrade, "0011")
        print(f"{label}: migration 0011 (one-off backfill) {time.perf_counter() - t:.2f} s")
    finally:
        await store.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--pg",
        default=os.environ.get("LLM_MESH_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    args = ap.parse_args()
    print(f"# bench_load_nodes  cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        await run(
            "sqlite", f"sqlite:///{Path(tmp) / 'registry.db'}", args.nodes, args.rows, args.rounds
        )
    try:
        url, drop = await pg_database(args.pg)
    except Exception as exc:
        print(f"postgresql: skipped ({exc})")
        return
    try:
        await run("postgresql", url, args.nodes, args.rows, args.rounds)
    finally:
        await drop()


if __name__ == "__main__":
    asyncio.run(main())
