"""The ledger: appends per second (SQLite, PostgreSQL) and ``ledger verify`` time at scale.

Method:

1. **verify**: ``--entries`` (default 1,000,000) entries are written into a fresh SQLite
   store in a temporary directory through the real writer (``SqlLedger.append``, batches
   of 1,000 transfers, a signed checkpoint after each batch: 1,000 checkpoints), then
   the whole ledger is verified twice, as ``llm-mesh ledger verify`` does it: from the
   store (``--database-url``) and over HTTP (the registry app in process, httpx's ASGI
   transport, pages of 10,000: JSON encoding and decoding included, no sockets).
2. **appends/s**: ``--appends`` single-transfer appends (one transaction each, the
   settlement path), from 1 and from 16 concurrent tasks, on a SQLite file and on
   PostgreSQL (``--pg URL``, default ``$LLM_MESH_TEST_PG_URL``; a throw-away database
   is created and dropped; skipped if unreachable).

Run: ``.venv/bin/python benchmarks/bench_ledger.py [--entries 1000000] [--appends 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import pg_database
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.cli.ledger_commands import HttpSource, StoreSource, audit
from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.store import SqlStore

ORIGIN = "bench.local/ledger"
USERS = [pseudonym("user", f"u{i}") for i in range(100)]
OPS = [pseudonym("operator", f"o{i}") for i in range(10)]


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


async def fill(store: SqlStore, n: int, key: Ed25519PrivateKey) -> float:
    ledger = _ledger(store)
    cp = Checkpointer(ledger, key, ORIGIN)
    start = time.perf_counter()
    await ledger.append([Transfer("grant", MINT, u, 10**12) for u in USERS])
    done = len(USERS)
    while done < n:
        k = min(1000, n - done)
        batch = [
            Transfer("settle", USERS[(done + i) % 100], OPS[(done + i) % 10], 1 + (done + i) % 997,
                     request_id=f"req-{done + i}")
            for i in range(k)
        ]  # fmt: skip
        await ledger.append(batch)
        await cp.checkpoint()
        done += k
    return time.perf_counter() - start


async def verify_store(store: SqlStore) -> tuple[float, float, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    report = await audit(StoreSource(_ledger(store), ORIGIN))
    return time.perf_counter() - start, time.process_time() - cpu, report


async def verify_http(home: Path, url: str) -> tuple[float, float, Any]:
    settings = Settings(home=home, database_url=url, ledger_origin=ORIGIN)
    app = create_registry_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r", timeout=600) as c:
            start, cpu = time.perf_counter(), time.process_time()
            report = await audit(HttpSource(c))
            return time.perf_counter() - start, time.process_time() - cpu, report


async def appends_per_s(url: str, n: int, concurrency: int) -> float:
    async with SqlStore(url) as store:
        ledger = _ledger(store)
        await ledger.append([Transfer("grant", MINT, USERS[0], 10**12)])
        per = n // concurrency

        async def worker(w: int) -> None:
            for i in range(per):
                await ledger.append_one(Transfer("settle", USERS[0], OPS[w % 10], 1, f"a{w}-{i}"))

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return per * concurrency / (time.perf_counter() - start)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument(
        "--pg",
        default=os.environ.get("LLM_MESH_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    ap.add_argument("--skip-verify", action="store_true")
    ap.add_argument("--db", help="verify this already filled SQLite file (no fill, no appends)")
    args = ap.parse_args()
    print(f"# bench_ledger  cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not args.skip_verify:
            url = f"sqlite:///{args.db or home / 'ledger.db'}"
            async with SqlStore(url) as store:
                if args.db is None:
                    secs = await fill(store, args.entries, Ed25519PrivateKey.generate())
                    rate = args.entries / secs
                    print(
                        f"fill: {args.entries} entries in {secs:.1f} s ({rate:,.0f}/s, batches of 1000)"
                    )
                secs, cpu, report = await verify_store(store)
                print(
                    f"verify (store): {report.entries} entries, {report.checkpoints} checkpoints, "
                    f"{report.consistency_proofs} consistency proofs, ok={report.ok}: "
                    f"{secs:.1f} s wall, {cpu:.1f} s CPU"
                )
            secs, cpu, report = await verify_http(home / "keys", url)
            print(
                f"verify (HTTP, pages of 10000): {report.entries} entries, ok={report.ok}: "
                f"{secs:.1f} s wall, {cpu:.1f} s CPU (client and server share the process)"
            )
        if args.db is not None:
            return
        for name, url in (("sqlite", f"sqlite:///{home / 'appends.db'}"), ("postgresql", None)):
            drop = None
            if url is None:
                try:
                    url, drop = await pg_database(args.pg)
                except Exception as exc:
                    print(f"postgresql: skipped ({exc})")
                    continue
            try:
                for conc in (1, 16):
                    rate = await appends_per_s(url, args.appends, conc)
                    print(
                        f"appends/s {name} concurrency={conc}: {rate:,.0f} (single-transfer transactions)"
                    )
            finally:
                if drop is not None:
                    await drop()


if __name__ == "__main__":
    asyncio.run(main())
