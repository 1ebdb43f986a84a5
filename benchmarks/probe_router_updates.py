"""What the router's statistic updates cost, this tree beside another (the price of keeping
each open node's flat scoring rows in step: docs/benchmarks.md, 2026-12-05).

Method: one worker process per tree (``--baseline-tree DIR``), each a ``Router`` of
``--nodes`` nodes of one model (``max_concurrency`` 4, no load: all open), the collector
frozen. Warm, best of 5 × ``--number`` calls (``timeit``), per call in µs:

* ``heartbeat``: ``Router.heartbeat`` of a node, load and uptime reported;
* ``heard``: ``Router.heard`` (another replica heard the node), fresher each call;
* ``request``: one request's updates, ``begin`` + ``first_token`` + ``finish`` (success,
  20 tokens).

The workers are asked in turn, the order alternating, ``--rounds`` times.

    .venv/bin/python benchmarks/probe_router_updates.py [--baseline-tree DIR] [--nodes 10000]
"""

from __future__ import annotations

import argparse
import sys

from _common import machine_line
from _tree_workers import tree_args, worker_rounds

WORKER = r"""
import gc, json, random, sys, timeit
from LLM_Mesh.core.balancer import Outcome, Router

n, number = int(sys.argv[1]), int(sys.argv[2])
r = Router(rng=random.Random(7))
ids = [f"n{i:05d}" for i in range(n)]
for nid in ids:
    r.upsert_node(nid, ["m"], now=0.0, max_concurrency=4)
gc.freeze()
state = {"t": 1.0, "i": 0}

def heartbeat():
    state["i"] = i = (state["i"] + 7919) % n
    r.heartbeat(ids[i], 1.0, in_flight=1, queued=0, uptime=0.9)

def heard():
    state["i"] = i = (state["i"] + 7919) % n
    state["t"] = t = state["t"] + 1e-6
    r.heard(ids[i], t)

def request():
    state["i"] = i = (state["i"] + 7919) % n
    att = r.begin(ids[i], "m", 2.0)
    r.first_token(att, 2.1)
    r.finish(att, 2.5, Outcome.SUCCESS, completion_tokens=20)

rows = {"heartbeat": heartbeat, "heard": heard, "request": request}
for line in sys.stdin:
    out = {k: min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6 for k, f in rows.items()}
    print(json.dumps(out), flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    tree_args(ap, number=20_000)
    args = ap.parse_args(argv)
    print(f"{args.nodes} nodes, µs per call (best of 5 × {args.number}) — {machine_line()}")
    print("| round | tree | heartbeat | heard | request (begin + first token + finish) |")
    print("|---|---|---:|---:|---:|")
    worker_args = (args.nodes, args.number)
    for rnd, name, got in worker_rounds(args.baseline_tree, WORKER, worker_args, args.rounds):
        print(f"| {rnd} | {name} | {got['heartbeat']:.2f} | {got['heard']:.2f} | "
              f"{got['request']:.2f} |")  # fmt: skip
    print(f"end: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
