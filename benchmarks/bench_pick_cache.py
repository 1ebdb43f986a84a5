"""Why ``Router.pick`` is slower inside a busy registry than in ``bench_routing.py``:
cold caches or the garbage collector?

One Router with ``--nodes`` nodes (``bench_routing.build``), one model, best of 4; each
pick's thread CPU time (``time.thread_time_ns``: time the OS gave another process is
not counted). Rows: picks back to back (warm caches); picks with other work in between
(a walk over 20,000 list items, as a heartbeat or a request would run, evicting the
router's objects from the caches); and back to back with the collector frozen, disabled
and with a 10× gen-0 threshold.

    .venv/bin/python benchmarks/bench_pick_cache.py [--nodes 10000 --picks 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine_line
from bench_routing import build

from LLM_Mesh.core.scoring import RouteRequest


def run(router: object, picks: int, junk: list[int] | None) -> tuple[float, float, float]:
    req = RouteRequest(("m",), expected_tokens=64)
    pick = router.pick  # type: ignore[attr-defined]
    cpu: list[int] = []
    now = 2.0
    for i in range(picks):
        if junk is not None:
            start = (i * 7919) % (len(junk) // 2)
            total = 0
            for x in junk[start : start + 20_000]:
                total += x
        now += 0.0001
        c0 = time.thread_time_ns()
        pick(req, now)
        cpu.append(time.thread_time_ns() - c0)
    cpu.sort()
    n = len(cpu)
    return cpu[n // 2] / 1e3, cpu[int(n * 0.99)] / 1e3, cpu[int(n * 0.999)] / 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--picks", type=int, default=20_000)
    args = ap.parse_args(argv)
    router = build(args.nodes, random.Random(1))
    junk = list(range(2_000_000))
    rows = [("back to back", lambda: run(router, args.picks, None))]
    rows.append(("other work in between", lambda: run(router, args.picks // 4, junk)))

    def frozen() -> tuple[float, float, float]:
        gc.freeze()
        try:
            return run(router, args.picks, None)
        finally:
            gc.unfreeze()

    def disabled() -> tuple[float, float, float]:
        gc.disable()
        try:
            return run(router, args.picks, None)
        finally:
            gc.enable()

    def threshold() -> tuple[float, float, float]:
        old = gc.get_threshold()
        gc.set_threshold(old[0] * 10, old[1], old[2])
        try:
            return run(router, args.picks, None)
        finally:
            gc.set_threshold(*old)

    rows += [("back to back, gc frozen", frozen), ("back to back, gc disabled", disabled),
             ("back to back, gen-0 threshold ×10", threshold), ("back to back again", rows[0][1])]  # fmt: skip
    print(f"{args.nodes} nodes, pick CPU µs p50 / p99 / p99.9 — {machine_line()}")
    for name, fn in rows:
        p50, p99, p999 = fn()
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {p999:.1f} |", flush=True)
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
