"""What an anonymous request's count of a model's slots costs (``Routing.slots``, read by
every anonymous request's admission: ``access.AnonymousLast``), this tree beside another.

Method: one worker process per tree (``--baseline-tree DIR``), each a ``Routing`` whose
router holds one model's nodes (``max_concurrency`` 4, ``max_queue`` 8), added to the
router directly (``Router.upsert_node``; no node table), the collector frozen; warm, best
of 5 × ``--number`` calls (``timeit``), per call in µs:

* ``full``: ``--full`` nodes full by their heartbeat (load 12 of 12) beside as many open;
  ``Routing.slots(model)`` (before session 34: one pass over the full nodes a call);
* ``keepers``: ``--keepers`` nodes that may keep prompts (``Routing._keeper``, as a
  registration tells it) beside 10 that keep none, all open; ``Routing.slots(model)``, a
  request that did not opt in (before: one pass over the pool's nodes a call);
* ``req open`` / ``req full``: one request's router updates on an open node / a full one
  of the ``full`` router (``Router.begin`` + ``finish``, success): what keeping the counts
  adds to every request (since share35 the count of what a node has shown it serves too).
Before the rows are timed one request has ended on each of those two nodes, so the count
is read as after any answer (share35: what the nodes have shown, not their declared slots).

The workers are asked in turn, the order alternating, ``--rounds`` times.

    .venv/bin/python benchmarks/probe_anonymous_slots.py [--baseline-tree DIR]
        [--full 500] [--keepers 10000]
"""

from __future__ import annotations

import argparse
import sys

from _common import machine_line
from _tree_workers import ROUTING, best_ratio, tree_args, worker_rounds

WORKER = (
    ROUTING
    + r"""
import gc, json, sys, timeit
from LLM_Mesh.core.balancer import Outcome

full_n, keep_n, number = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
a = routing()  # full nodes beside as many open
for i in range(2 * full_n):
    a.router.upsert_node(f"n{i:05d}", ["m"], now=0.0, max_concurrency=4, max_queue=8)
for i in range(full_n):
    a.router.heartbeat(f"n{i:05d}", 0.5, in_flight=4, queued=8)
assert a.router.pool_counts("m") == (full_n, full_n, 0)
b = keepers(keep_n, 10)  # nodes that may keep prompts, beside 10 that keep none
assert a.slots("m") == 4 * full_n and b.slots("m") == 40 and b.slots("m", True) == 4 * (keep_n + 10)
gc.freeze()
opened, full = f"n{2 * full_n - 1:05d}", "n00000"

def request(nid):
    att = a.router.begin(nid, "m", 2.0)
    a.router.finish(att, 2.5, Outcome.SUCCESS, completion_tokens=20)

rows = {"full": lambda: a.slots("m"), "keepers": lambda: b.slots("m"),
        "req open": lambda: request(opened), "req full": lambda: request(full)}
request(opened)  # nodes have answered here: since share35 the count is what they showed
request(full)
counted = a.slots("m")
for line in sys.stdin:
    out = {k: min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6 for k, f in rows.items()}
    assert a.slots("m") == counted  # every request ended: the count is back
    print(json.dumps(out), flush=True)
"""
)

COLS = ("full", "keepers", "req open", "req full")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", type=int, default=500)
    ap.add_argument("--keepers", type=int, default=10_000)
    tree_args(ap, number=2_000)
    args = ap.parse_args(argv)
    print(f"{args.full} full nodes (+ {args.full} open) / {args.keepers} prompt-keeping "
          f"nodes, µs per call (best of 5 × {args.number}) — {machine_line()}")  # fmt: skip
    print(
        "| round | tree | slots, full | slots, keepers | request, open node | request, full node |"
    )
    print("|---|---|---:|---:|---:|---:|")
    got: dict[str, list[dict[str, float]]] = {"this tree": [], "baseline": []}
    worker_args = (args.full, args.keepers, args.number)
    for rnd, name, row in worker_rounds(args.baseline_tree, WORKER, worker_args, args.rounds):
        got[name].append(row)
        cells = " | ".join(f"{row[c]:.2f}" for c in COLS)
        print(f"| {rnd} | {name} | {cells} |")
    if got["baseline"]:
        ratios = " | ".join(f"{best_ratio(got, c):.3f}×" for c in COLS)
        print(f"| best of rounds | this ÷ baseline | {ratios} |")
    print(f"end: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
