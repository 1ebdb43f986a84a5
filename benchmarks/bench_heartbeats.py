"""Heartbeats one replica absorbs on PostgreSQL with 10,000 registered nodes, and the
Router's pick time while it does.

Method: a throwaway PostgreSQL database gets ``--nodes`` node keys and registrations
(simulated nodes: nothing runs behind them; each hosts ``mistral-7b``). One registry +
gateway (the real app, ``SignedNodeAuth``, ``SqlStore`` on PostgreSQL, uvicorn, on uvloop
as ``registry serve`` runs, the garbage collector frozen after start-up as it does) runs
in this process. Then one load per ``--legs`` entry, one after another in the same
process: ``--procs`` load-generator processes send signed heartbeats (Ed25519, a fresh
sequence number each) for ``--seconds`` over keep-alive connections (aiohttp,
``--concurrency`` in flight each), every node in turn; ``hot``: the heartbeat route
served ahead of FastAPI (``registry/hot_heartbeat.py``), ``fastapi``: the FastAPI route
(the same checks), ``:thawed``: without the gc freeze. While each runs, a task in the
registry's own loop times ``Routing.pick`` (best of 4 over the 10,000 nodes) every
millisecond (wall time with ``perf_counter_ns``, and the thread's CPU time, which leaves
out the moments a shared box ran something else), counts the picks a garbage collection
ran in, and right after each pick times a control: a fixed pure-Python workload of about
a pick's size touching no routing state, so what the load does to any ~20 µs of Python
shows beside the pick (``*_control_cpu_*``); the same is measured before the load, idle. The replica's own CPU time over the load (``process_time``; PostgreSQL's not
included) gives its CPU cost per heartbeat, so what one core would absorb can be read
even when other work holds the box; the load generators' CPU per heartbeat is reported
too (on this box they share the cores with the replica). ``--profile PATH`` writes a
CPU-time cProfile of each leg.
Every heartbeat is the whole path: signature check, sequence number taken in the store
(batched ``UPDATE``), table and router, ``last_heartbeat_at`` (batched ``UPDATE``), and
the replica's node poll (every second) runs as in production. The database is dropped and
the replica's temporary home removed at the end, also after an error or Ctrl-C.

    .venv/bin/python benchmarks/bench_heartbeats.py [--nodes 10000 --seconds 20 --procs 2
        --concurrency 128 --legs fastapi,hot,fastapi,hot]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _common import free_port, machine_line, pct, pg_recreate, write_json

# one per run: runs side by side do not collide (LLM_MESH_BENCH_DB: a name of the caller's)
DB = os.environ.get("LLM_MESH_BENCH_DB") or f"llm_mesh_bench_heartbeats_{os.getpid()}"
PG = os.environ.get("LLM_MESH_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/test"
MODEL = "mistral-7b"


def _db_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG).set(database=name).render_as_string(hide_password=False)


async def _populate(url: str, keys: list[bytes]) -> list[str]:
    """Node keys and registrations, in bulk (as if 10,000 nodes had registered)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import encode_public_key, node_id_for, public_key_of
    from LLM_Mesh.registry import tables
    from LLM_Mesh.registry.store import SqlStore

    now = datetime.now(timezone.utc)
    ids, key_rows, node_rows = [], [], []
    for i, raw in enumerate(keys):
        pub = public_key_of(Ed25519PrivateKey.from_private_bytes(raw))
        node_id = node_id_for(pub)
        ids.append(node_id)
        key_rows.append({"node_id": node_id, "public_key": encode_public_key(pub),
                         "operator": "bench", "last_seq": 0, "created_at": now})  # fmt: skip
        node_rows.append({
            "node_id": node_id, "url": f"http://10.{i // 65536}.{i // 256 % 256}.{i % 256}:8801",
            "region": None, "models": [{"id": MODEL, "engine": "sim", "simulated": True}],
            "hardware": {}, "max_concurrency": 4, "max_queue": 8, "version": "0.1.0",
            "state": "online", "registered_at": now, "last_heartbeat_at": now,
            "changed_at": now - timedelta(seconds=60), "requests": 0, "failures": 0, "tokens_generated": 0,
        })  # fmt: skip
    async with SqlStore(url) as store, store.engine.begin() as conn:
        for i in range(0, len(keys), 2000):
            await conn.execute(tables.node_keys.insert(), key_rows[i : i + 2000])
            await conn.execute(tables.nodes.insert(), node_rows[i : i + 2000])
    return ids


def _loadgen(
    port: int, keys: list[bytes], seconds: float, conc: int, out: Any, rate: float = 0.0
) -> None:
    """One process: signed heartbeats as fast as the registry answers, or paced at ``rate``
    a second (0: unpaced)."""
    import aiohttp
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import MessageKind, NodeSigner

    signers = [NodeSigner(Ed25519PrivateKey.from_private_bytes(k), time.time) for k in keys]
    body = json.dumps({"in_flight": 0, "queued": 0, "state": "online"}).encode()

    async def main() -> None:
        cpu0 = time.process_time()
        ok = errors = 0
        lat: list[float] = []
        statuses: dict[int, int] = {}
        start = time.monotonic()
        stop = start + seconds
        nxt = 0
        conn = aiohttp.TCPConnector(limit=conc)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def worker() -> None:
                nonlocal ok, errors, nxt
                while time.monotonic() < stop:
                    s = signers[nxt % len(signers)]
                    nxt += 1
                    if rate > 0:  # this heartbeat's turn in the paced schedule
                        await asyncio.sleep(max(0.0, start + nxt / rate - time.monotonic()))
                    headers = s.headers(MessageKind.HEARTBEAT, body, target=s.node_id)
                    headers["Content-Type"] = "application/json"
                    url = f"http://127.0.0.1:{port}/mesh/nodes/{s.node_id}/heartbeat"
                    t0 = time.perf_counter()
                    try:
                        async with session.post(url, data=body, headers=headers) as r:
                            await r.read()
                            statuses[r.status] = statuses.get(r.status, 0) + 1
                            if r.status == 200:
                                ok += 1
                                lat.append(time.perf_counter() - t0)
                            else:
                                errors += 1
                    except aiohttp.ClientError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(conc)))
        lat.sort()
        out.put({"ok": ok, "errors": errors, "statuses": statuses, "cpu_s": time.process_time() - cpu0,
                 "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3})  # fmt: skip

    asyncio.run(main())


def _control(n: int = 900) -> int:
    """A fixed pure-Python workload of about a pick's own CPU time on an idle box (~20 µs
    here), touching no routing state: timed right after each pick, its p99 under the same
    load is what the box (preemption, interrupts, caches the load generators and PostgreSQL
    share) adds to a workload of that size, apart from anything the pick does."""
    t = 0
    for i in range(n):
        t += i & 7
    return t


class _Picks:
    """Thread CPU and wall times (µs, sorted) of the picks, of the control workload after
    each, and of the picks during which the garbage collector ran."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.control_cpu: list[float] = []
        self.with_gc_cpu: list[float] = []

    def summary(self, prefix: str) -> dict[str, Any]:
        for xs in (self.wall, self.cpu, self.control_cpu, self.with_gc_cpu):
            xs.sort()
        return {
            f"{prefix}_p50_us": pct(self.wall, 0.5),
            f"{prefix}_p99_us": pct(self.wall, 0.99),
            f"{prefix}_samples": len(self.cpu),
            f"{prefix}_cpu_p50_us": pct(self.cpu, 0.5),
            f"{prefix}_cpu_p99_us": pct(self.cpu, 0.99),
            f"{prefix}_control_cpu_p50_us": pct(self.control_cpu, 0.5),
            f"{prefix}_control_cpu_p99_us": pct(self.control_cpu, 0.99),
            f"{prefix}_with_gc": len(self.with_gc_cpu),
        }


async def _pick_times(routing: Any, stop: asyncio.Event) -> _Picks:
    """Each pick's wall time and its thread CPU time: on a shared box the wall time
    includes the moments the OS ran something else; the CPU time does not. Then the
    control workload's CPU time (:func:`_control`)."""
    import gc

    from LLM_Mesh.core.scoring import RouteRequest

    req = RouteRequest((MODEL,), expected_tokens=64)
    out = _Picks()
    collections = [0]

    def count(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            collections[0] += 1

    gc.callbacks.append(count)
    try:
        while not stop.is_set():
            g0 = collections[0]
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            routing.pick(req)
            t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
            out.wall.append((t1 - t0) / 1000.0)
            out.cpu.append((c1 - c0) / 1000.0)
            if collections[0] != g0:
                out.with_gc_cpu.append((c1 - c0) / 1000.0)
            c0 = time.thread_time_ns()
            _control()
            out.control_cpu.append((time.thread_time_ns() - c0) / 1000.0)
            await asyncio.sleep(0.001)
    finally:
        gc.callbacks.remove(count)
    return out


async def _isolated_batches(store: Any, keys: list[bytes], n: int = 400) -> dict[str, float]:
    """Median ms of one batch of ``n`` nodes for each batched statement, no load: what the
    database side costs, apart from the replica's loop and the box's other work."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.identity import node_id_for, public_key_of

    ids = [node_id_for(public_key_of(Ed25519PrivateKey.from_private_bytes(k))) for k in keys[:n]]
    out: dict[str, float] = {}
    base = int(time.time() * 1e6)
    steps = {
        "seq": lambda r: store.advance_node_seqs([(i, base + r) for i in ids]),
        "keys": lambda r: store.get_node_keys(ids),
        "touch": lambda r: store.touch_heartbeats(
            [(i, datetime.now(timezone.utc), "online", 5000) for i in ids], None
        ),
    }
    for name, step in steps.items():
        times = []
        for r in range(7):
            t0 = time.perf_counter()
            await step(r)
            times.append((time.perf_counter() - t0) * 1e3)
        out[f"{name}_{n}_ms"] = sorted(times)[3]
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The run on a fresh database, the replica's home a temporary folder: both removed at
    the end, also after an error or Ctrl-C."""
    await pg_recreate(_db_url("postgres"), DB, create=True)
    try:  # the database is this run's from here: dropped whatever happens
        with tempfile.TemporaryDirectory(prefix="llm-mesh-bench-heartbeats-") as home:
            return await _run(args, _db_url(DB), Path(home))
    finally:
        await pg_recreate(_db_url("postgres"), DB, create=False)


async def _run(args: argparse.Namespace, url: str, home: Path) -> dict[str, Any]:
    import uvicorn

    from LLM_Mesh.config import Settings
    from LLM_Mesh.gc_freeze import freeze_after_startup
    from LLM_Mesh.registry.app import create_registry_app

    keys = [os.urandom(32) for _ in range(args.nodes)]
    t0 = time.perf_counter()
    await _populate(url, keys)
    print(f"populated {args.nodes} nodes in {time.perf_counter() - t0:.1f} s", flush=True)
    settings = Settings(
        home=home, database_url=url, heartbeat_interval_s=5.0, missed_heartbeats=100,
        allow_private_nodes=True, allow_plain_http_nodes=True,  # nodes at http://10.x
        admin_key="lma_bench", anonymous_rpm=None,
    )  # fmt: skip
    app = create_registry_app(settings, announce=lambda _k: None)
    port = free_port()
    config = uvicorn.Config(  # frozen after start-up, as ``registry serve`` does (gc_freeze)
        freeze_after_startup(app),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="uvloop",
        access_log=False,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(1200):  # the lifespan loads every node first
            if server.started:
                break
            await asyncio.sleep(0.05)
        routing = app.state.runtime.routing
        print(f"registry up with {len(app.state.runtime.table)} nodes", flush=True)

        iso = await _isolated_batches(app.state.runtime.store, keys)
        stop = asyncio.Event()
        idle_task = asyncio.create_task(_pick_times(routing, stop))
        await asyncio.sleep(3)
        stop.set()
        idle = await idle_task

        legs = [await _leg(app, routing, port, keys, args, sp) for sp in args.legs.split(",")]
    finally:  # the server stopped before its database and home go
        server.should_exit = True
        await serving
    return {
        "nodes": args.nodes,
        "seconds": args.seconds,
        "procs": args.procs,
        "concurrency": args.concurrency,
        "rate": args.rate,
        **idle.summary("pick_idle"),
        "legs": legs,
        "isolated_batch_median": iso,
        "machine": machine_line(),
    }


class _GcWatch:
    """The collector's pauses while installed (``gc.callbacks``): count, total and longest,
    by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._t0) * 1e6)

    def summary(self) -> dict[str, Any]:
        return {
            f"gen{g}": {"count": len(p), "total_ms": sum(p) / 1e3, "max_us": max(p, default=0.0)}
            for g, p in self.pauses.items()
        }


async def _leg(
    app: Any, routing: Any, port: int, keys: list[bytes], args: argparse.Namespace, spec: str
) -> dict[str, Any]:
    """One load: ``spec`` is ``hot`` (heartbeats ahead of FastAPI, hot_heartbeat.py) or
    ``fastapi`` (the FastAPI route), ``:thawed`` after it to undo the start-up gc.freeze
    for this leg."""
    import gc

    way, _, gc_mode = spec.partition(":")
    app.hot_heartbeat = way == "hot"
    if gc_mode == "thawed":
        gc.unfreeze()
    else:
        gc.collect()
        gc.freeze()
    q: Any = mp.get_context("spawn").Queue()
    shard = [keys[i :: args.procs] for i in range(args.procs)]
    procs = [
        mp.get_context("spawn").Process(
            target=_loadgen,
            args=(port, shard[i], args.seconds, args.concurrency, q, args.rate / args.procs),
        )
        for i in range(args.procs)
    ]
    for p in procs:
        p.start()
    await asyncio.sleep(2.0)  # the load generators' interpreters start
    stop = asyncio.Event()
    busy_task = asyncio.create_task(_pick_times(routing, stop))
    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile(time.process_time)  # CPU time: a shared box preempts
        prof.enable()
    watch = _GcWatch()
    gc.callbacks.append(watch)
    rt = app.state.runtime
    batchers = {"seq": rt.node_auth.store, "keys": rt.node_auth.store._keys, "touch": rt.heartbeats}
    counts0 = {name: (b.batches, b.items, b.busy_s) for name, b in batchers.items()}
    cpu0, wall0 = time.process_time(), time.monotonic()
    results = [await asyncio.to_thread(q.get) for _ in procs]
    server_cpu_s, load_s = time.process_time() - cpu0, time.monotonic() - wall0
    gc.callbacks.remove(watch)
    if prof is not None:
        prof.disable()
        prof.dump_stats(f"{args.profile}.{spec.replace(':', '-')}")
    stop.set()
    busy = await busy_task
    batching = {}
    for name, b in batchers.items():
        n0, i0, s0 = counts0[name]
        n = max(1, b.batches - n0)
        batching[name] = {"batches": b.batches - n0, "mean_size": (b.items - i0) / n,
                          "ms_per_batch": (b.busy_s - s0) / n * 1e3}  # fmt: skip
    for p in procs:
        p.join()
    await rt.heartbeats.flush()
    ok = sum(r["ok"] for r in results)
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    loadgen_cpu_s = sum(r["cpu_s"] for r in results)
    out = {
        "leg": spec,
        "heartbeats_ok": ok,
        "errors": sum(r["errors"] for r in results),
        "statuses": statuses,
        "heartbeats_per_s": ok / args.seconds,
        "heartbeat_p50_ms": max(r["p50_ms"] for r in results),
        "heartbeat_p99_ms": max(r["p99_ms"] for r in results),
        **busy.summary("pick_busy"),
        # the replica's own CPU (this process, PostgreSQL not included) per heartbeat
        "replica_cpu_s": server_cpu_s,
        "replica_cpu_share": server_cpu_s / load_s,
        "replica_cpu_us_per_heartbeat": server_cpu_s / ok * 1e6 if ok else None,
        "heartbeats_per_replica_cpu_s": ok / server_cpu_s if server_cpu_s else None,
        "loadgen_cpu_us_per_heartbeat": loadgen_cpu_s / ok * 1e6 if ok else None,
        "gc": watch.summary(),
        "batching": batching,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--procs", type=int, default=1, help="load-generator processes")
    ap.add_argument("--concurrency", type=int, default=64, help="in flight per process")
    ap.add_argument(
        "--rate", type=float, default=0.0,
        help="heartbeats a second offered in all (0: as fast as the replica answers)",
    )  # fmt: skip
    ap.add_argument("--profile", help="write the replica's cProfile of each leg to PATH.LEG")
    ap.add_argument(
        "--legs", default="fastapi,hot",
        help="loads one after another: hot (heartbeats ahead of FastAPI) or fastapi, "
        "':thawed' after one: without the start-up gc.freeze",
    )  # fmt: skip
    args = ap.parse_args(argv)
    print(__doc__.split("\n\n")[1], flush=True)
    import uvloop

    # the replica on uvloop, as ``registry serve`` runs it (uvicorn's loop "auto"); the
    # server below runs in this loop, so uvicorn's own loop setting does not apply
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        res = runner.run(run(args))
    print(json.dumps(res, indent=2))
    write_json("heartbeats", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
