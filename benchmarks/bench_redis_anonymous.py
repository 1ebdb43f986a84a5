"""Anonymous requests through a gateway with a Redis URL: Redis round trips and time each.

With ``--redis-url`` an anonymous request is counted in Redis (its address' rate-limit
bucket, its address' requests in flight, its model's anonymous share; issue 7/11). Method:
one worker process per tree (``--baseline-tree DIR``: another checkout, e.g.
``git worktree add --detach DIR main``), each running two gateways in process (the
tests' harness, ``tests/registry/helpers.running``: the app with its lifespan, an ASGI
client, a fake node behind a MockTransport: **SIMULATED**, it answers at once), one
without Redis and one with ``--redis`` (default ``redis://127.0.0.1:6379/13``; its keys
named by a fresh registry key, so no other user's), both with ``anonymous_rpm`` out of
reach (1,000,000; no total), ``anonymous_in_flight`` 4 and ``anonymous_share`` 0.75 (the defaults)
and a node of 64 slots. The parent asks the workers in turn, the order alternating round
by round, for: ``seq`` (``--sequential`` non-stream requests one at a time from one
address: wall ms each, and Redis round trips each, counted as writes of commands to a
Redis connection once every request's background end has landed: a pipeline is one) and
``conc`` (``--concurrent`` requests, ``--concurrency`` at once, each from its own address:
requests/s). The Redis cost of a request is the Redis gateway's ms minus the plain one's;
its CPU is the worker process' (gateway, client and fake node; Redis' own not counted).

    .venv/bin/python benchmarks/bench_redis_anonymous.py [--baseline-tree DIR] [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _common import machine_line
from _tree_workers import ask_worker, end_workers, line_worker

WORKER = r"""
import asyncio, json, sys, tempfile, time
from pathlib import Path
import httpx
import redis.asyncio.connection as rc
from tests.registry.helpers import running

url = sys.argv[1]
sends = [0]
_send = rc.AbstractConnection.send_packed_command
async def counted(conn, command, check_health=True):
    sends[0] += 1
    await _send(conn, command, check_health)
rc.AbstractConnection.send_packed_command = counted
CHAT = "/v1/chat/completions"
BODY = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def client(h, ip):
    t = httpx.ASGITransport(app=h.app, client=(ip, 40000))
    return httpx.AsyncClient(transport=t, base_url="http://mesh")


async def idle(h):
    counts = [c for c in (h.runtime.shared_in_flight, h.runtime.shared_share) if c is not None]
    while any(c.held or c._tasks for c in counts):  # the ends' removals, awaited
        tasks = [t for c in counts for t in c._tasks]
        await (asyncio.gather(*tasks, return_exceptions=True) if tasks else asyncio.sleep(0))


async def seq(h, n):
    async with client(h, "2001:db8:77:1::1") as c:
        ms, trips, cpu = [], 0, 0.0
        for _ in range(n):
            await idle(h)
            s0 = sends[0]
            c0, t0 = time.process_time(), time.perf_counter()
            r = await c.post(CHAT, json=BODY)
            ms.append((time.perf_counter() - t0) * 1e3)
            assert r.status_code == 200, r.text
            await idle(h)
            cpu += time.process_time() - c0
            trips += sends[0] - s0
        return {"ms": ms, "trips": trips / n, "cpu_us": cpu / n * 1e6}


async def conc(h, n, k):
    cs = [client(h, f"2001:db8:78:{i:x}::1") for i in range(k)]
    async def one(c, m):
        for _ in range(m):
            r = await c.post(CHAT, json=BODY)
            assert r.status_code == 200, r.text
    t0 = time.perf_counter()
    await asyncio.gather(*(one(c, n // k) for c in cs))
    dt = time.perf_counter() - t0
    await idle(h)
    for c in cs:
        await c.aclose()
    return {"rps": (n // k) * k / dt}


async def main():
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as tmp:
        hs = {}
        kw = dict(anonymous_rpm=1_000_000, anonymous_total_rpm=None, anonymous_in_flight=4,
                  anonymous_share=0.75)
        async with running(Path(tmp) / "plain", **kw) as plain, \
                running(Path(tmp) / "redis", redis_url=url, **kw) as red:
            for h in (plain, red):
                await h.register("n1", max_concurrency=64)
                await seq(h, 20)  # warm: scripts loaded, connections open
            hs = {"plain": plain, "redis": red}
            print("ready", flush=True)
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                what, mode, *ns = line.split()
                h = hs[mode]
                got = await (seq(h, int(ns[0])) if what == "seq" else conc(h, int(ns[0]), int(ns[1])))
                print(json.dumps(got), flush=True)


asyncio.run(main())
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--baseline-tree", help="another checkout, measured beside this one")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sequential", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=800)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv)
    import redis  # the gateway's optional dependency: without Redis, nothing to measure

    try:
        redis.Redis.from_url(args.redis, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        print(f"skipped: Redis does not answer at {args.redis} ({exc})")
        return 0
    trees = {"this tree": str(Path(__file__).resolve().parent.parent)}
    if args.baseline_tree:
        if not (Path(args.baseline_tree) / "LLM_Mesh" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-tree {args.baseline_tree}: no LLM_Mesh package there")
        trees["baseline"] = str(Path(args.baseline_tree).resolve())
    workers = {name: line_worker(path, WORKER, args.redis) for name, path in trees.items()}
    try:
        for w in workers.values():
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        print(f"start: {machine_line()}")
        ms: dict[tuple[str, str], list[float]] = {(t, m): [] for t in trees for m in MODES}
        trips: dict[tuple[str, str], list[float]] = {(t, m): [] for t in trees for m in MODES}
        rps: dict[tuple[str, str], list[float]] = {(t, m): [] for t in trees for m in MODES}
        cpu: dict[tuple[str, str], list[float]] = {(t, m): [] for t in trees for m in MODES}
        for rnd in range(args.rounds):
            order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
            for name in order:
                for mode in MODES if rnd % 2 == 0 else tuple(reversed(MODES)):
                    s = ask_worker(workers[name], f"seq {mode} {args.sequential}")
                    ms[(name, mode)] += s["ms"]
                    trips[(name, mode)].append(s["trips"])
                    cpu[(name, mode)].append(s["cpu_us"])
                    line = f"conc {mode} {args.concurrent} {args.concurrency}"
                    rps[(name, mode)].append(ask_worker(workers[name], line)["rps"])
        print(f"end: {machine_line()}")
    finally:
        end_workers(workers.values())
    print("| tree | gateway | Redis round trips a request | p50 ms one at a time | "
          "p50 Redis ms a request | CPU µs a request (median of rounds) | "
          f"req/s at {args.concurrency} (median of rounds) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in trees:
        p50 = {m: statistics.median(ms[(name, m)]) for m in MODES}
        for m in MODES:
            extra = f"{p50['redis'] - p50['plain']:+.3f}" if m == "redis" else ""
            print(f"| {name} | {m} | {statistics.mean(trips[(name, m)]):.2f} | {p50[m]:.3f} | "
                  f"{extra} | {statistics.median(cpu[(name, m)]):,.0f} | "
                  f"{statistics.median(rps[(name, m)]):,.0f} |")  # fmt: skip
    if len(trees) == 2:
        this, base = trees
        r_this = statistics.median(rps[(this, "redis")])
        r_base = statistics.median(rps[(base, "redis")])
        d_this = statistics.median(ms[(this, "redis")]) - statistics.median(ms[(this, "plain")])
        d_base = statistics.median(ms[(base, "redis")]) - statistics.median(ms[(base, "plain")])
        t_this = statistics.mean(trips[(this, "redis")])
        t_base = statistics.mean(trips[(base, "redis")])
        c_this = statistics.median(cpu[(this, "redis")])
        c_base = statistics.median(cpu[(base, "redis")])
        print(f"ratios this / baseline with Redis: round trips {t_this / t_base:.2f}, "
              f"Redis ms a request {d_this / d_base:.2f}, CPU a request {c_this / c_base:.2f}, "
              f"req/s at {args.concurrency} {r_this / r_base:.2f}")  # fmt: skip
    return 0


MODES = ("plain", "redis")

if __name__ == "__main__":
    raise SystemExit(main())
