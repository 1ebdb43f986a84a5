"""Where the routing pick's p99 comes from on this machine: the pick, or any first touch of
routing data after the thread slept?

Method: one process, the routing state of ``probe_pick_floor.py`` (``--nodes`` registered
nodes, one model, the collector frozen). Three workloads, each timed ``--n`` times with
the thread's CPU clock (``time.thread_time_ns``, which leaves out time the thread did not
run), each either right after a ``--sleep-ms`` sleep (the thread idle, as a gateway's loop
is between requests) or back to back:

* ``pick``: ``Routing.pick`` (draw, score, liveness re-check, ``Decision``);
* ``touch``: six fields read from each of four random nodes' stats, nothing computed
  (about half a pick's work; the same kind of memory);
* ``control``: a fixed pure-Python loop touching no routing data (``bench_heartbeats``'
  ``_control``, about a pick's CPU).

Printed per workload and mode: p50, p99 and how many took over 80 µs; and the picks'
minor page faults and involuntary context switches (``getrusage(RUSAGE_THREAD)``).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_pick_tail.py [--nodes 10000]
        [--n 2000] [--sleep-ms 1]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from collections.abc import Callable

from _common import machine_line, pct
from bench_heartbeats import _control
from probe_pick_floor import MODEL, build

from LLM_Mesh.core.scoring import RouteRequest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--sleep-ms", type=float, default=1.0)
    args = ap.parse_args()
    print(machine_line())
    _table, routing, _hb, _ids = build(args.nodes)
    gc.collect()
    gc.freeze()
    req = RouteRequest((MODEL,), expected_tokens=64)
    items = list(routing.router._pools[MODEL].open)
    rnd = random.Random(1)

    def touch() -> float:
        t = 0.0
        for _ in range(4):
            n = items[int(rnd.random() * len(items))]
            t += n.hb_at + n.uptime + n.in_flight + n.max_concurrency
            t += n.ttft.stamp + n.per_token.stamp
        return t

    work: dict[str, Callable[[], object]] = {
        "pick": lambda: routing.pick(req),
        "touch": touch,
        "control": _control,
    }
    for mode in ("after a sleep", "back to back"):
        for name, fn in work.items():
            xs: list[float] = []
            faults = switches = 0
            for _ in range(args.n):
                if mode == "after a sleep":
                    time.sleep(args.sleep_ms / 1000)
                r0 = resource.getrusage(resource.RUSAGE_THREAD)
                t0 = time.thread_time_ns()
                fn()
                xs.append((time.thread_time_ns() - t0) / 1000)
                r1 = resource.getrusage(resource.RUSAGE_THREAD)
                faults += r1.ru_minflt - r0.ru_minflt
                switches += r1.ru_nivcsw - r0.ru_nivcsw
            xs.sort()
            print(
                f"{mode:13s} {name:8s} p50 {pct(xs, 0.5):6.1f} µs, p99 {pct(xs, 0.99):6.1f} µs, "
                f"over 80 µs: {sum(x > 80 for x in xs):4d} of {args.n}; minor faults {faults}, "
                f"involuntary switches {switches}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
