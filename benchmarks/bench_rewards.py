"""Uptime rewards: what the heartbeat credit costs, and closing a period for many nodes.

Method:

1. **heartbeat credit**: ``--beats`` calls of ``SqlStore.touch_heartbeat`` (one
   transaction each, as the registry's heartbeat handler makes) with the uptime credit
   (``credit_limit_s=30``: the ``CASE`` over the row's old state and time in the same
   ``UPDATE``, a statement built once per dialect), and as many of the ``UPDATE`` the store
   sent before rewards (state and time only, built per call), interleaved in rounds of 200
   so both see the same load; reported as wall and CPU µs per call and their ratios,
   measured in one run.
2. **closing a period**: ``--nodes`` nodes of 10 operators, each with uptime credited and
   5 requests in the period, then one ``RewardTask.close`` (marks read, the period's
   requests grouped, rewards computed, rows and ``reward`` entries written exactly once,
   batches of 1,000): its wall time, and a second close of the same period (every node
   closed already).

Both on a SQLite file (WAL) and on PostgreSQL (``--pg URL``, default
``$LLM_MESH_TEST_PG_URL``; a throw-away database, dropped after; skipped if unreachable).

Run: ``.venv/bin/python benchmarks/bench_rewards.py [--beats 2000] [--nodes 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pg_database
from sqlalchemy import update

from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ports import NodeRecord, RequestRecord
from LLM_Mesh.registry.rewards import RewardTask
from LLM_Mesh.registry.store import SqlStore

PERIOD_S = 3600
S = 1_700_000_000 // PERIOD_S * PERIOD_S


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(S + seconds, tz=timezone.utc)


def _node(node_id: str) -> NodeRecord:
    return NodeRecord(
        node_id=node_id, url=f"http://{node_id}.example:8801", region="eu",
        models=[{"id": "gemma-3-270m"}], hardware={}, max_concurrency=1, max_queue=8,
        version="bench", state="online", registered_at=_at(0), last_heartbeat_at=_at(0),
    )  # fmt: skip


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


async def _old_heartbeat(store: SqlStore, node_id: str, at: datetime, state: str) -> bool:
    """The heartbeat's UPDATE as the store made it before rewards (built per call)."""
    n = tables.nodes
    stmt = update(n).where(n.c.node_id == node_id).values(last_heartbeat_at=at, state=state)
    async with store.engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def heartbeats(url: str, beats: int) -> tuple[float, float, float, float]:
    """Per heartbeat, with the credit and as before rewards (interleaved rounds of 200):
    (wall µs, CPU µs) of each."""
    async with SqlStore(url) as store:
        await store.upsert_node(_node("hb"))
        wall = {True: 0.0, False: 0.0}
        cpu = {True: 0.0, False: 0.0}
        t = 0.0
        rounds = max(1, beats // 200)
        for r in range(rounds * 2):
            credit = r % 2 == 0
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(200):
                t += 1.0
                if credit:
                    await store.touch_heartbeat("hb", _at(t), "online", credit_limit_s=30.0)
                else:
                    await _old_heartbeat(store, "hb", _at(t), "online")
            wall[credit] += time.perf_counter() - w0
            cpu[credit] += time.process_time() - c0
        n = rounds * 200 / 1e6
        return wall[True] / n, cpu[True] / n, wall[False] / n, cpu[False] / n


async def close_period(url: str, nodes: int) -> tuple[float, float, int, int]:
    async with SqlStore(url) as store:
        for o in range(10):
            await store.add_operator(f"op{o}", hash_secret(f"token-{o}"), _at(-10))
        requests: list[RequestRecord] = []
        for i in range(nodes):
            node_id = f"n{i:05d}"
            await store.claim_node_key(node_id, f"k{i}", f"op{i % 10}", 1, _at(0))
            await store.upsert_node(_node(node_id))
            await store.touch_heartbeat(node_id, _at(30), "online", credit_limit_s=30.0)
            requests += [
                RequestRecord(
                    request_id=f"r{i}-{k}",
                    node_id=node_id,
                    model="gemma-3-270m",
                    stream=False,
                    outcome="ok" if k else "error",
                    error_code=None,
                    prompt_tokens=10,
                    completion_tokens=20 + i % 7,
                    latency_ms=100.0 + i % 13,
                    ttft_ms=10.0,
                    cost=0.0,
                    created_at=_at(60) + timedelta(seconds=k),
                )
                for k in range(5)
            ]
        await store.record_requests(requests)
        task = RewardTask(
            store, _ledger(store), rate=100_000, period_s=PERIOD_S, grace_s=10,
            wall_clock=lambda: S + PERIOD_S + 20,
        )  # fmt: skip
        start = time.perf_counter()
        report = await task.close(S)
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = await task.close(S)
        second = time.perf_counter() - start
        return first, second, report.paid, again.closed_elsewhere


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beats", type=int, default=2000)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument(
        "--pg",
        default=os.environ.get("LLM_MESH_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    args = ap.parse_args()
    print(f"# bench_rewards  cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sqlite", "postgresql"):
            drop = None
            if name == "sqlite":
                urls = [f"sqlite:///{Path(tmp) / 'hb.db'}", f"sqlite:///{Path(tmp) / 'close.db'}"]
            else:
                try:
                    url_hb, drop_hb = await pg_database(args.pg)
                    url_close, drop = await pg_database(args.pg)
                except Exception as exc:
                    print(f"postgresql: skipped ({exc})")
                    continue
                urls = [url_hb, url_close]
            try:
                w_new, c_new, w_old, c_old = await heartbeats(urls[0], args.beats)
                print(
                    f"{name}: heartbeat UPDATE with the credit {w_new:.0f} µs wall / "
                    f"{c_new:.0f} µs CPU; before rewards {w_old:.0f} µs wall / {c_old:.0f} µs CPU "
                    f"(ratios {w_new / w_old:.2f} wall, {c_new / c_old:.2f} CPU)"
                )
                first, second, paid, skipped = await close_period(urls[1], args.nodes)
                print(
                    f"{name}: close a period for {args.nodes} nodes: {first:.2f} s "
                    f"({paid} paid); again (all closed already): {second:.2f} s ({skipped} skipped)"
                )
            finally:
                if drop is not None:
                    await drop()
                    await drop_hb()


if __name__ == "__main__":
    asyncio.run(main())
