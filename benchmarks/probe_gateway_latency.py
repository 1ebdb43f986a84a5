"""The gateway's latency one request at a time, trees interleaved request by request.

Method: one local mesh per checkout given (registry+gateway and a registered ``sim`` node:
SIMULATED, the node settings of ``bench_gateway.py``), each with a client API key. One
``httpx.Client`` sends ``--requests`` rounds; a round sends one non-streamed chat request
to every mesh, in an order that rotates each round, so drift on the shared machine hits
every tree alike at the finest grain (``bench_gateway.py`` interleaves chunks). Printed:
each tree's p50 / p90 / p99 and its p50 minus the first tree's.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_gateway_latency.py TREE [TREE ...]
        [--requests 2500] [--warmup 200]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import httpx
from _common import SIM_CHAT_BODY as BODY
from _common import keyed_headers, machine_line, sim_mesh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", help="checkouts (the first is the reference)")
    ap.add_argument("--requests", type=int, default=2500, help="rounds (one request per tree)")
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    trees: list[str] = args.trees
    with contextlib.ExitStack() as stack:
        targets: dict[str, tuple[str, dict[str, str]]] = {}
        for tree in trees:
            m = sim_mesh(stack, tree)
            url = m.registry_url + "/v1/chat/completions"
            targets[tree] = (url, keyed_headers(m))
        lat: dict[str, list[float]] = {t: [] for t in trees}
        with httpx.Client(timeout=60.0) as client:
            for url, headers in targets.values():
                for _ in range(args.warmup):
                    client.post(url, json=BODY, headers=headers)
            for i in range(args.requests):
                k = i % len(trees)
                for tree in trees[k:] + trees[:k]:
                    url, headers = targets[tree]
                    t0 = time.perf_counter()
                    r = client.post(url, json=BODY, headers=headers)
                    lat[tree].append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        raise SystemExit(f"{tree}: HTTP {r.status_code}: {r.text[:300]}")
    print(machine_line())
    ref = statistics.median(lat[trees[0]])
    for tree, values in lat.items():
        values.sort()
        p50 = statistics.median(values)
        p90, p99 = values[int(len(values) * 0.9)], values[int(len(values) * 0.99)]
        print(f"{tree}: n {len(values)} p50 {p50 * 1e3:.3f} ms, p90 {p90 * 1e3:.3f}, "
              f"p99 {p99 * 1e3:.3f}; p50 - {trees[0]}'s {(p50 - ref) * 1e3:+.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
