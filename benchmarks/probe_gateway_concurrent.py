"""The gateway's and its node's CPU per request and requests/s under concurrent load, trees
interleaved round by round.

Method: one local mesh per checkout given (registry+gateway and a registered ``sim`` node:
SIMULATED, the node settings of ``bench_gateway.py``), each with a client API key. Rounds of
``--requests`` non-streamed chat requests, ``--concurrency`` at once (asyncio + one aiohttp
session), go to each mesh in turn, the order reversed every other round. Each process's CPU
(``/proc/PID/task/*/schedstat``, all threads) over its mesh's rounds, per request, and the
requests/s of those rounds are printed per tree.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_gateway_concurrent.py TREE [TREE ...]
        [--requests 1500] [--rounds 6] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
from _common import SIM_CHAT_BODY as BODY
from _common import keyed_headers, machine_line, sim_mesh


def cpu_s(pid: int) -> float:
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
    return total


async def load(url: str, headers: dict[str, str], n: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, json=BODY, headers=headers) as r:
                    if r.status != 200:
                        raise SystemExit(f"{url}: HTTP {r.status}")
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--requests", type=int, default=1500, help="requests per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=10)
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    trees: list[str] = args.trees
    with contextlib.ExitStack() as stack:
        meshes: dict[str, tuple[str, dict[str, str], dict[str, int]]] = {}
        for tree in trees:
            m = sim_mesh(stack, tree)
            pids = {c.name: c.proc.pid for c in m._children}
            url = m.registry_url + "/v1/chat/completions"
            meshes[tree] = (url, keyed_headers(m), pids)
        for url, headers, _ in meshes.values():  # warm-up
            asyncio.run(load(url, headers, 300, args.concurrency))
        acc = {t: [0.0, 0.0, 0.0] for t in trees}  # gateway s, node s, wall s
        for i in range(args.rounds):
            for tree in trees if i % 2 == 0 else list(reversed(trees)):
                url, headers, pids = meshes[tree]
                g0, n0, w0 = cpu_s(pids["registry"]), cpu_s(pids["node"]), time.monotonic()
                asyncio.run(load(url, headers, args.requests, args.concurrency))
                a = acc[tree]
                a[0] += cpu_s(pids["registry"]) - g0
                a[1] += cpu_s(pids["node"]) - n0
                a[2] += time.monotonic() - w0
    print(machine_line())
    n = args.requests * args.rounds
    for tree, (g, nd, w) in acc.items():
        print(f"{tree}: {args.concurrency} concurrent, {n} requests: gateway {g / n * 1e6:.0f} "
              f"µs/req, node {nd / n * 1e6:.0f} µs/req, {n / w:.0f} req/s")  # fmt: skip


if __name__ == "__main__":
    main()
