"""Where the CPU of one request goes at N concurrent, process by process: client, gateway, node.

Method: one local mesh (registry+gateway and a registered ``sim`` node: SIMULATED, the
node settings of ``bench_gateway.py``) and a standalone sim node (the "direct" baseline);
``--concurrency`` aiohttp clients on one session (uvloop when installed: the load generator
of ``bench_gateway.py``) send ``--requests`` non-streamed chat requests to each, rounds
alternating, after a warm-up. For each round it prints req/s and the user + system CPU a
request (``/proc/PID/stat``, every thread, 10 ms ticks: use a few thousand requests) of the
gateway's processes, the node's and this client's own (``os.times``). On a 2-core box the
three share the cores, so these figures bound the ratio of the two paths' req/s (see
``docs/benchmarks.md``, 2026-12-06).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_process_cpu.py [--requests 3000]
        [--rounds 4] [--concurrency 10] [--warmup 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    SERVER_PIDS,
    SIM_FAST_NODE_ARGS,
    SIM_MODEL,
    descendants,
    keyed_headers,
    machine_line,
    sim_mesh,
    standalone_node,
)
from _common import SIM_CHAT_BODY as BODY

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def user_sys_s(pids: Sequence[int]) -> tuple[float, float]:
    """User and system CPU seconds of processes ``pids`` so far (all their threads)."""
    user = system = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) * _TICK_S
            system += int(fields[12]) * _TICK_S
    return user, system


async def load(url: str, headers: dict[str, str], n: int, concurrency: int) -> None:
    """``n`` requests from ``concurrency`` workers on one keep-alive session; any answer
    but 200 stops the probe."""
    payload = json.dumps(BODY).encode()
    h = {**headers, "Content-Type": "application/json"}
    left = n
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url + "/v1/chat/completions", data=payload, headers=h) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"{url}: HTTP {r.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _run(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def measure(
    url: str, headers: dict[str, str], groups: dict[str, list[int]], n: int, concurrency: int
) -> tuple[float, dict[str, tuple[float, float]]]:
    """req/s and, per process group and for this client, (user, system) µs a request."""
    before = {g: user_sys_s(p) for g, p in groups.items()}
    me0, t0 = os.times(), time.perf_counter()
    _run(load(url, headers, n, concurrency))
    wall, me1 = time.perf_counter() - t0, os.times()
    out = {
        g: tuple((a - b) / n * 1e6 for a, b in zip(user_sys_s(p), before[g], strict=True))
        for g, p in groups.items()
    }
    out["client"] = ((me1.user - me0.user) / n * 1e6, (me1.system - me0.system) / n * 1e6)
    return n / wall, out  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    with contextlib.ExitStack() as stack:
        mesh = sim_mesh(stack, None)
        gateway = [
            p for c in mesh._children if c.name == "registry" for p in descendants(c.proc.pid)
        ]
        node = [p for c in mesh._children if c.name != "registry" for p in descendants(c.proc.pid)]
        direct = stack.enter_context(
            standalone_node(model=SIM_MODEL, engine="sim", node_args=SIM_FAST_NODE_ARGS)
        )
        paths = {
            "direct": (direct, {}, {"node": SERVER_PIDS[direct]}),
            "ours": (mesh.registry_url, keyed_headers(mesh), {"gateway": gateway, "node": node}),
        }
        for url, h, _ in paths.values():
            _run(load(url, h, args.warmup, args.concurrency))
        seen: dict[str, list[tuple[float, dict[str, tuple[float, float]]]]] = {p: [] for p in paths}
        for i in range(args.rounds):
            for name in list(paths) if i % 2 == 0 else list(reversed(paths)):
                url, h, groups = paths[name]
                rps, cpu = measure(url, h, groups, args.requests, args.concurrency)
                seen[name].append((rps, cpu))
                parts = ", ".join(f"{g} {u:.0f}+{s:.0f}={u + s:.0f}" for g, (u, s) in cpu.items())
                print(f"round {i + 1} {name}: {rps:.0f} req/s; µs a request, user+sys: {parts}")
        print(f"medians of {args.rounds} rounds (µs a request, user + sys):")
        total = {}
        for name, rows in seen.items():
            groups = rows[0][1]
            med = {g: statistics.median(sum(r[1][g]) for r in rows) for g in groups}
            total[name] = sum(med.values())
            rps = statistics.median(r[0] for r in rows)
            print(f"  {name}: {rps:.0f} req/s; "
                  + ", ".join(f"{g} {v:.0f}" for g, v in med.items())
                  + f"; all {total[name]:.0f}; cores busy {rps * total[name] / 1e6:.2f}")  # fmt: skip
        ratio = total["direct"] / total["ours"]
        print(f"CPU a request direct / ours = {ratio:.2f} (the req/s ratio when both paths "
              "turn CPU into requests equally well)")  # fmt: skip


if __name__ == "__main__":
    main()
