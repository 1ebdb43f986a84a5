"""What one hostile node's padded non-streamed answer costs the gateway, this tree beside
another (docs/security.md, "Hostile nodes", the answer bound, found 2026-12-05).

Method: one worker process per tree and case (``--baseline-tree DIR``), the registry app in
process (``tests/registry/helpers.running``: fake nodes behind an ``httpx.MockTransport``,
so no socket time is counted). Two nodes, ``liar`` ranked first: it answers an honest chat
answer whose field ``pad`` holds ``--mib`` MiB of ``0,`` (``zeros``) or ``{},``
(``objects``); ``honest`` answers as usual. One request (``max_tokens`` 64) is timed, and a
task ticking every millisecond records the event loop's longest stall meanwhile (every other
request waits that long); the peak RSS growth is ``ru_maxrss`` after less before (the
padded bytes themselves are made before). Cases run in turn, the trees alternating,
``--rounds`` times.

    .venv/bin/python benchmarks/probe_answer_bound.py [--baseline-tree DIR] [--mib 16]
"""

from __future__ import annotations

import argparse
import json

from _common import machine_line
from _tree_workers import alternating, compared_trees, tree_worker

WORKER = r"""
import asyncio, json, resource, sys, tempfile, time
from pathlib import Path
import httpx
from tests.registry.helpers import FakeNodes, chat_answer, rank, running

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
pad, mib = sys.argv[1], int(sys.argv[2])
unit = b"0," if pad == "zeros" else b"{},"
honest = json.dumps(chat_answer(MODEL, "liar")).encode()
LIAR = honest[:-1] + b', "pad": [' + unit * ((mib << 20) // len(unit)) + b'0]}'


class Nodes(FakeNodes):
    def handler(self, request):
        if request.url.path == CHAT:
            super().handler(request)
            if request.url.host == "liar":
                return httpx.Response(200, content=LIAR)
            return httpx.Response(200, json=chat_answer(MODEL, request.url.host))
        return super().handler(request)


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Path(tmp), nodes=Nodes(), max_attempts=3) as h:
            await h.register("liar")
            await h.register("honest")
            rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
            ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": 64}
            await h.client.post(CHAT, json={**ask, "allow_nodes": ["honest"]})  # warm
            stall = [0.0]
            stop = asyncio.Event()

            async def tick():
                last = time.perf_counter()
                while not stop.is_set():
                    await asyncio.sleep(0.001)
                    now = time.perf_counter()
                    stall[0] = max(stall[0], now - last)
                    last = now

            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0.01)
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.perf_counter()
            r = await h.client.post(CHAT, json=ask)
            took = time.perf_counter() - t0
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            stop.set()
            await ticker
            print(json.dumps({"status": r.status_code, "node": r.headers.get("x-mesh-node"),
                              "bytes_out": len(r.content), "request_s": took,
                              "stall_s": stall[0], "rss_growth_mib": (rss1 - rss0) / 1024}))

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(machine_line())
    for r, order in alternating(compared_trees(a.baseline_tree), a.rounds):
        for pad in ("zeros", "objects"):
            for name, tree in order:
                got = tree_worker(tree, WORKER, pad, a.mib)
                print(f"round {r} {pad:8s} {name:8s} " + json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
