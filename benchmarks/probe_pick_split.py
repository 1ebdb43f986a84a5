"""Where a routing pick's CPU goes on cold caches, part by part (issue 11's pick p99).

Method: the routing state of ``bench_pick.py`` (``--nodes`` registered nodes, one model,
``max_concurrency`` 4, one heartbeat each, the collector frozen, built by
``probe_pick_floor.build``). Before each timed call, the work a busy replica does between two
picks (a walk over 20,000 list items and one heartbeat into table and router). Each call's
thread CPU time (``time.thread_time_ns``), rows interleaved round by round:

* ``empty interval``: the two clock reads alone (the measurement's own floor);
* ``draw``: ``IndexedSet.draw`` of ``choices`` open nodes (a tree whose pick scores flat
  rows: ``IndexedRows.draw_slots``, their positions);
* ``draw + cheapest``: that and the scoring loop over the candidates (``cheapest``; with
  rows: ``cheapest_rows`` over the pool's rows, as that tree's pick runs it);
* ``Router.pick``: the router's whole decision (the clock read included);
* ``liveness re-check``: what ``Routing.pick`` asks the node table of its choice, for a
  random node (``NodeTable.alive``; a tree without it: ``healthy(get(...))``);
* ``Routing.pick``: the whole pick as the gateway calls it.

    .venv/bin/python benchmarks/probe_pick_split.py [--nodes 10000 --rounds 6 --calls 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from _common import machine_line
from probe_pick_floor import MODEL, build, print_rows, time_rows

from LLM_Mesh.core.scoring import RouteRequest, cheapest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=500, help="timed calls per row per round")
    args = ap.parse_args(argv)
    table, routing, hb, ids = build(args.nodes)
    router = routing.router
    sp, k, rand = router.policy.scoring, router.policy.choices, router._rand
    bag = router._pools[MODEL].open
    req = RouteRequest((MODEL,), expected_tokens=64)
    clock = time.monotonic
    n = len(ids)
    alive = getattr(table, "alive", None)
    if alive is None:  # a tree from before NodeTable.alive: what its Routing.pick asked

        def alive(nid: str, now: float) -> bool:
            entry = table.get(nid)
            return entry is not None and table.healthy(entry, now)

    rows_of = getattr(bag, "draw_slots", None) is not None  # a pick that scores flat rows

    def draw() -> object:
        return bag.draw_slots(k, rand) if rows_of else bag.draw(k, rand)

    def score() -> object:  # what that tree's pick runs
        if rows_of:
            from LLM_Mesh.core.scoring import cheapest_rows

            return cheapest_rows(bag.vals, bag.draw_slots(k, rand), bag.members, 64, clock(), sp)
        return cheapest(bag.draw(k, rand), MODEL, 64, clock(), sp)

    rows: dict[str, Callable[[], object] | None] = {
        "empty interval": None,
        "draw": draw,
        "draw + cheapest": score,
        "Router.pick": lambda: router.pick(req, clock()),
        "liveness re-check": lambda: alive(ids[int(rand() * n)], clock()),
        "Routing.pick": lambda: routing.pick(req),
    }
    print(f"{args.nodes} nodes, thread CPU µs per call — start: {machine_line()}")
    print_rows(time_rows(rows, table, routing, hb, ids, args.rounds, args.calls))
    print(f"end: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
