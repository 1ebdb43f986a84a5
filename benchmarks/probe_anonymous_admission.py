"""What an anonymous request's admission check costs (``access.AnonymousLast._clear``: may
it go on now?) for a model some nodes that may keep prompts serve, this tree beside another.

Method: one worker process per tree (``--baseline-tree DIR``), each a ``Routing`` whose
router holds one model's nodes (``max_concurrency`` 4, ``max_queue`` 8, all open), of which
``--keepers`` may keep prompts (``Routing._keeper``, as a registration tells it) beside
``--others`` that keep none (added to the router directly, every one up: no node
table), and an ``AnonymousLast`` (share 0.5, no Redis); the request
did not opt in (``allow_prompt_keeping`` false), nothing else constrains it. Warm, the
collector frozen, best of 5 × ``--number`` calls (``timeit``), µs per call. Before
review34 (anon34's rule) such a check asked the router for a pick under the request's own
route (every such node denied: a scan of the open set where they are most of it); after,
it reads the pools' counts of the open and shut nodes it may use.

The workers are asked in turn, the order alternating, ``--rounds`` times.

    .venv/bin/python benchmarks/probe_anonymous_admission.py [--baseline-tree DIR]
        [--keepers 10000] [--others 10]
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
from types import SimpleNamespace
from LLM_Mesh.registry.access import AnonymousLast

keep_n, other_n, number = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = keepers(keep_n, other_n)
r.table.alive = lambda node_id, now: True  # the nodes are the router's alone: all up
last = AnonymousLast(r, clock, share=0.5)
ext = SimpleNamespace(allow_prompt_keeping=False, avoid_regions=frozenset(), allow_nodes=None,
                      deny_nodes=frozenset())
job = SimpleNamespace(model="m", ext=ext, max_tokens=64)
assert last._clear(job) and r.router.pool_counts("m") == (keep_n + other_n, 0, 0)
gc.freeze()
for line in sys.stdin:
    t = min(timeit.repeat(lambda: last._clear(job), number=number, repeat=5)) / number * 1e6
    assert r.router.pool_counts("m") == (keep_n + other_n, 0, 0)  # no node lost
    print(json.dumps({"admission": t}), flush=True)
"""
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keepers", type=int, default=10_000)
    ap.add_argument("--others", type=int, default=10)
    tree_args(ap, number=200)
    args = ap.parse_args(argv)
    print(f"{args.keepers} prompt-keeping nodes beside {args.others}, µs per admission check "
          f"(best of 5 × {args.number}) — {machine_line()}")  # fmt: skip
    print("| round | tree | admission check |")
    print("|---|---|---:|")
    got: dict[str, list[dict[str, float]]] = {"this tree": [], "baseline": []}
    worker_args = (args.keepers, args.others, args.number)
    for rnd, name, row in worker_rounds(args.baseline_tree, WORKER, worker_args, args.rounds):
        got[name].append(row)
        print(f"| {rnd} | {name} | {row['admission']:.2f} |")
    if got["baseline"]:
        print(f"| best of rounds | this ÷ baseline | {best_ratio(got, 'admission'):.4f}× |")
    print(f"end: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
