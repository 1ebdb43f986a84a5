"""What sharing the nodes' shown slots through Redis costs a replica (``registry/redis_shown.py``,
redisshare36): one :meth:`SharedShown.tick` (publish this replica's rooms, read the others'),
off the request path, every ``PUBLISH_S`` (2 s) per replica.

Method: ``--replicas`` ``SharedShown`` publishers on one local Redis (``--redis-url``, its
own random prefix, deleted after), each over its own ``Router`` of ``--nodes`` nodes (4 slots)
that have all answered (so every node is published); first every replica ticks twice (the
whole hashes written), then, timed, ``--ticks`` ticks of one replica: ``steady`` with nothing
changed (only the read of the others' hashes), ``changed`` with every node's room changed
between ticks (every field written). Wall-clock ms per tick, median and best; the router's
part (``Router.fleet_shown``, in-process) timed alone too.

    .venv/bin/python benchmarks/probe_shown_publish.py [--nodes 500] [--replicas 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid

import redis.asyncio as redis_asyncio
from _common import machine_line

from LLM_Mesh.core.anonymous_inflight import InFlight
from LLM_Mesh.core.balancer import Outcome, Router
from LLM_Mesh.core.scope_names import ScopeNames
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from LLM_Mesh.registry.redis_shown import SharedShown


def _router(nodes: int) -> Router:
    r = Router(rng=random.Random(1))
    for i in range(nodes):
        nid = f"n{i:05d}"
        r.upsert_node(nid, ["m"], now=0.0, max_concurrency=4, max_queue=0)
        att = r.begin(nid, "m", 0.0)
        r.finish(att, 0.1, Outcome.SUCCESS, completion_tokens=1)
    return r


async def run(args: argparse.Namespace) -> None:
    client = redis_asyncio.from_url(args.redis_url)
    prefix = f"probe36:{uuid.uuid4().hex}:"
    names = ScopeNames(b"p" * 32)
    routers = [_router(args.nodes) for _ in range(args.replicas)]
    shown = []
    for r in routers:
        share = SharedInFlight(client, InFlight(1), names=names)
        shown.append(SharedShown(client, r.fleet_shown, share, prefix=prefix, fade_s=600.0))
    try:
        for _ in range(2):
            for s in shown:
                await s.tick()
        one, r = shown[0], routers[0]
        assert one.sums is not None and len(one.sums) == args.nodes
        out: dict[str, list[float]] = {"steady": [], "changed": []}
        for kind in out:
            for i in range(args.ticks):
                if kind == "changed":  # every node one more request held: its room 3, then 1
                    for st in r._nodes.values():
                        st.shown = 1 + 2 * (i % 2)
                t = time.perf_counter()
                await one.tick()
                out[kind].append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        for _ in range(args.ticks):
            r.fleet_shown(one.sums)
        router_ms = (time.perf_counter() - t) * 1e3 / args.ticks
        print(f"{args.nodes} nodes answered × {args.replicas} replicas, ms per tick "
              f"({args.ticks} ticks) — {machine_line()}")  # fmt: skip
        print("| tick | median ms | best ms |")
        print("|---|---:|---:|")
        for kind, ms in out.items():
            print(f"| {kind} | {statistics.median(ms):.2f} | {min(ms):.2f} |")
        print(f"| `Router.fleet_shown` alone (nothing changed) | {router_ms:.2f} | |")
        print(f"end: {machine_line()}")
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--ticks", type=int, default=50)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    asyncio.run(run(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
