"""The ledger: appends per second (SQLite, PostgreSQL) and ``ledger verify`` time at scale.

Method:

1. **verify**: ``--entries`` (default 1,000,000) entries are written into a fresh SQLite
   store in a temporary directory through the real writer (``SqlLedger.append``, batches
   of 1,000 transfers, a signed checkpoint after each batch: 1,000 checkpoints), then
   the whole ledger is verified three ways, as ``llm-mesh ledger verify`` does it:

   - from the store (``--database-url``), in this process;
   - over HTTP, **real processes**: ``llm-mesh registry serve`` on the store, on a free
     loopback port, and the command ``llm-mesh ledger verify --registry URL`` as its own
     process, timed from its start to its exit (its CPU from ``wait4``, the server's
     from ``/proc``): what a user runs;
   - over HTTP in one process (the registry app through httpx's ASGI transport, no
     sockets: client and server share one CPU), as the earlier figures were measured.

   The registry is started with ``LLM_MESH_POOL_DAILY_BUDGET=0`` so it writes nothing.
2. **appends/s**: ``--appends`` single-transfer appends (one transaction each, the
   settlement path), from 1 and from 16 concurrent tasks, on a SQLite file and on
   PostgreSQL (``--pg URL``, default ``$LLM_MESH_TEST_PG_URL``; a throw-away database
   is created and dropped; skipped if unreachable).

Run: ``.venv/bin/python benchmarks/bench_ledger.py [--entries 1000000] [--appends 2000]``;
``--db FILE`` verifies an already filled SQLite file (no fill, no appends), ``--keep FILE``
fills into FILE and keeps it; ``--compare DIR --rounds N`` also times another checkout's
``ledger verify`` and registry over HTTP, in turn with this one's, N rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import free_port, pg_database
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.cli.ledger_http import HttpSource
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
    settings = Settings(
        home=home, database_url=url, ledger_origin=ORIGIN, pool_daily_budget=0,
        ledger_read_rows_per_min=None,  # the verifier's own speed, not the per-address budget
    )  # fmt: skip
    app = create_registry_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r", timeout=600) as c:
            start, cpu = time.perf_counter(), time.process_time()
            report = await audit(HttpSource(c))
            return time.perf_counter() - start, time.process_time() - cpu, report


def _cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ROOT = Path(__file__).resolve().parent.parent


def verify_processes(home: Path, url: str, code: Path = ROOT) -> tuple[float, float, float, str]:
    """``llm-mesh ledger verify --registry`` against ``llm-mesh registry serve``, both
    real processes running the checkout at ``code``: (wall s, verifier CPU s, server CPU
    s, the verifier's output)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        LLM_MESH_HOME=str(home), LLM_MESH_LEDGER_ORIGIN=ORIGIN, LLM_MESH_POOL_DAILY_BUDGET="0",
        PYTHONPATH=str(code),
    )  # fmt: skip
    cli = [sys.executable, "-m", "LLM_Mesh.cli"]
    log = (home / "registry.log").open("wb")
    server = subprocess.Popen(
        [*cli, "registry", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--database-url", url],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the registry did not start: see " + str(home))
            time.sleep(0.3)
        server_cpu = _cpu_s(server.pid)
        start = time.perf_counter()
        verifier = subprocess.Popen(
            [*cli, "ledger", "verify", "--registry", base],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out = verifier.stdout.read().decode() if verifier.stdout else ""
        _pid, status, usage = os.wait4(verifier.pid, 0)
        wall = time.perf_counter() - start
        server_cpu = _cpu_s(server.pid) - server_cpu
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"ledger verify failed:\n{out}")
        return wall, usage.ru_utime + usage.ru_stime, server_cpu, out
    finally:
        server.terminate()
        server.wait(30)
        log.close()


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
    ap.add_argument("--keep", help="fill into this SQLite file and keep it")
    ap.add_argument(
        "--compare",
        help="another checkout (a directory with LLM_Mesh/, e.g. `git archive` of an older "
        "commit): its CLI and registry are timed over HTTP too, in turn with this one",
    )
    ap.add_argument("--rounds", type=int, default=1, help="HTTP (real processes) rounds")
    args = ap.parse_args()
    print(f"# bench_ledger  cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not args.skip_verify:
            path = args.db or args.keep or home / "ledger.db"
            url = f"sqlite:///{path}"
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
                    f"{secs:.1f} s wall, {cpu:.1f} s CPU  (load {os.getloadavg()[0]:.2f})"
                )
            codes = [("this checkout", ROOT)]
            if args.compare:  # interleaved, in turn: this checkout, the other, ...
                codes.append(("--compare " + args.compare, Path(args.compare)))
            for rnd in range(args.rounds):
                for name, code in codes:
                    wall, cpu, server_cpu, out = verify_processes(home / f"serve{rnd}", url, code)
                    summary = " ".join(out.split())
                    print(
                        f"verify (HTTP, real processes: `llm-mesh ledger verify --registry`, "
                        f"{name}): {wall:.1f} s wall, verifier {cpu:.1f} s CPU, registry "
                        f"{server_cpu:.1f} s CPU (load {os.getloadavg()[0]:.2f})\n  {summary}",
                        flush=True,
                    )
            secs, cpu, report = await verify_http(home / "keys", url)
            print(
                f"verify (HTTP in one process, ASGI): {report.entries} entries, ok={report.ok}: "
                f"{secs:.1f} s wall, {cpu:.1f} s CPU (client and server share the process) "
                f"(load {os.getloadavg()[0]:.2f})"
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
