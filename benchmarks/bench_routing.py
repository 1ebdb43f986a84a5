"""Routing decision latency vs fleet size: ``Router.pick`` at 100 → 10,000 nodes.

Method: one model hosted by N nodes with mixed capacities; every node has
latency samples and a random load, so scoring does its full work. Each
timed call is one ``pick`` (index upkeep, best-of-k draws, scoring), timed
alone with ``time.perf_counter_ns``; every 10th decision is followed (untimed)
by ``begin``/``finish`` so loads keep moving. Reports p50 / p99 / p99.9 in µs.

    .venv/bin/python benchmarks/bench_routing.py [--iterations 200000]
"""

from __future__ import annotations

import argparse
import platform
import random
import time

from LLM_Mesh.core.balancer import Outcome, Router
from LLM_Mesh.core.scoring import RouteRequest


def build(n: int, rng: random.Random) -> Router:
    r = Router(rng=random.Random(7))
    for i in range(n):
        nid = f"n{i}"
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=rng.choice((1, 4, 8)), max_queue=8,
                      region=rng.choice(("eu", "us", "ap")))  # fmt: skip
        for _ in range(3):
            att = r.begin(nid, "m", 0.0)
            r.first_token(att, rng.uniform(0.02, 0.5))
            r.finish(att, 1.0, Outcome.SUCCESS, completion_tokens=100)
        r.heartbeat(nid, 1.0, in_flight=rng.randint(0, 2), queued=rng.randint(0, 2))
    return r


def bench(n: int, iterations: int, req: RouteRequest) -> list[int]:
    rng = random.Random(n)
    r = build(n, rng)
    samples: list[int] = []
    clock = time.perf_counter_ns
    now = 2.0
    for i in range(iterations):
        now += 0.0001
        t0 = clock()
        d = r.pick(req, now)
        samples.append(clock() - t0)
        if i % 10 == 0 and d.node_id is not None:
            att = r.begin(d.node_id, "m", now)
            r.finish(att, now + 0.05, Outcome.SUCCESS, completion_tokens=50)
    return samples


def pct(xs: list[int], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200_000)
    args = ap.parse_args()
    print(__doc__)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {args.iterations} picks each"
    )
    cases = {
        "plain": RouteRequest(("m",)),
        "avoid_regions=ap, deny 1": RouteRequest(
            ("m",), avoid_regions=frozenset({"ap"}), deny_nodes=frozenset({"n1"})
        ),
    }
    print(f"{'nodes':>6} {'request':<26} {'p50 µs':>7} {'p99 µs':>7} {'p99.9 µs':>8}")
    for label, req in cases.items():
        for n in (100, 1_000, 10_000):
            xs = sorted(bench(n, args.iterations, req))
            print(
                f"{n:>6} {label:<26} {pct(xs, 0.5):>7.1f} {pct(xs, 0.99):>7.1f} {pct(xs, 0.999):>8.1f}"
            )


if __name__ == "__main__":
    main()
