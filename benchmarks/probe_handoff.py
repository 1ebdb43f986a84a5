"""The engine thread -> event loop hand-off alone: how long an item takes to reach the loop.

A worker thread (an ``EngineWorker``) yields two items, 2 ms and then 1 ms of sleep before
each, through ``iterate_in_thread(..., hold_first_s=0.05)``, consumed on uvloop; 300 runs.
Prints the median and p90 of (consumer has it - worker yielded it) per item. Run it once per
checkout, interleaved, to compare trees (no llama, no HTTP):

    .venv/bin/python benchmarks/probe_handoff.py TREE [TREE ...]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator


async def _measure(runs: int) -> None:
    from LLM_Mesh.node.engines import base

    worker = base.EngineWorker("probe")
    lat: list[tuple[int, float]] = []
    for _ in range(runs):
        stamp: list[int] = []

        def make(_gone: threading.Event, stamp: list[int] = stamp) -> Iterator[int]:
            time.sleep(0.002)
            stamp.append(time.monotonic_ns())
            yield 1
            time.sleep(0.001)
            stamp.append(time.monotonic_ns())
            yield 2

        async for x in base.iterate_in_thread(make, threading.Event(), worker=worker,
                                              hold_first_s=0.05):  # fmt: skip
            lat.append((x, (time.monotonic_ns() - stamp[x - 1]) / 1e3))
    worker.close()
    for k in (1, 2):
        v = sorted(us for x, us in lat if x == k)
        print(
            f"  item {k}: median {statistics.median(v):.0f} µs, p90 {v[int(len(v) * 0.9)]:.0f} µs"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--in-tree":
        import uvloop

        uvloop.run(_measure(300))
        return
    for tree in sys.argv[1:] or ["."]:
        print(tree)
        subprocess.run([sys.executable, __file__, "--in-tree"], check=True,
                       env={"PYTHONPATH": tree, "PATH": "/usr/bin:/bin"})  # fmt: skip


if __name__ == "__main__":
    main()
