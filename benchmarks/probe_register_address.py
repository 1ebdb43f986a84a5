"""What a registration's store write costs with 10,000 live node rows on PostgreSQL, this
tree beside another: the one-live-node-per-address check (``SqlStore._check_address``).

Method: one worker process per tree and round (``--baseline-tree DIR``), each with its own
database ``h27_regaddr27_<hex>`` on ``--pg`` (created, migrated by ``SqlStore.open``,
dropped at the end). ``--nodes`` live rows are written in one transaction (each tree's own
row values, so this tree's rows carry their address); then ``--calls`` registrations
``upsert_node(..., address_live_since=...)``: half new nodes at new addresses, half
existing nodes registering again at theirs. Printed: wall and process CPU a call
(milliseconds). Trees alternate, ``--rounds`` times. No node engine (nothing SIMULATED).

    .venv/bin/python benchmarks/probe_register_address.py [--baseline-tree DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json

from _common import machine_line
from _tree_workers import alternating, compared_trees, tree_worker

WORKER = r"""
import asyncio, dataclasses, json, secrets, sys, time
from datetime import datetime, timedelta, timezone
import asyncpg
from sqlalchemy import insert
from LLM_Mesh.registry import store as store_mod, tables
from LLM_Mesh.registry.store import SqlStore
from tests.registry.test_store import node

pg, nodes, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


async def main():
    name = f"h27_regaddr27_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        now = datetime.now(timezone.utc)
        async with SqlStore(f"{pg}/{name}") as store:
            rows = [
                store_mod._node_values(node(f"n{i}", url=f"https://n{i}.example:8801", last_heartbeat_at=now))
                for i in range(nodes)
            ]
            async with store.engine.begin() as conn:
                await conn.execute(insert(tables.nodes), rows)
            since = now - timedelta(seconds=30)
            recs = [node(f"new{i}", url=f"https://new{i}.example:8801", last_heartbeat_at=now) for i in range(calls // 2)]
            recs += [node(f"n{i}", url=f"https://n{i}.example:8801", last_heartbeat_at=now) for i in range(calls // 2)]
            for r in recs[:5]:  # warm the pool and the statement cache
                await store.upsert_node(dataclasses.replace(r, node_id="w" + r.node_id, url=r.url.replace("https://", "https://w")), address_live_since=since)
            w0, c0 = time.perf_counter(), time.process_time()
            for r in recs:
                assert await store.upsert_node(r, address_live_since=since)
            w1, c1 = time.perf_counter(), time.process_time()
        n = len(recs)
        print(json.dumps({"wall_ms_per_call": round((w1 - w0) / n * 1e3, 2), "cpu_ms_per_call": round((c1 - c0) / n * 1e3, 2), "calls": n}))
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args()
    print(machine_line())
    for r, order in alternating(compared_trees(a.baseline_tree), a.rounds):
        for name, tree in order:
            got = tree_worker(tree, WORKER, a.pg, a.nodes, a.calls)
            print(f"round {r} {name:8s} " + json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
