"""Probe: the cost of the canary departures' bounded tables (slice34).

Since slice34 each of ``Departures``' tables (pairs, kinds, slices) is a ``Kept``: past its
bound the lowest score goes (a heap), where it was the least recently written (an
``OrderedDict``'s first). Method: one process per tree (``--baseline-tree DIR``, each
importing its own ``LLM_Mesh``), alternating, the same seeded sequence of counted probes
(``--probes`` over ``--pairs`` (node, model) pairs, the 12 shapes of 3 temperatures ×
streamed or not × ``top_p`` or not, evidence uniform in [-0.5, 1)) into a default
``Departures()``; seconds for the whole sequence, and each table's size at the end.

    .venv/bin/python benchmarks/probe_departures_tables.py [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

WORKER = """
import random, sys, time
from LLM_Mesh.core.canary_departures import Departures, Evidence
from LLM_Mesh.core.canary_shape import Shape
probes, pairs = int(sys.argv[1]), int(sys.argv[2])
shapes = [Shape(temperature=t, stream=s, sampler=p) for t in (0.3, 0.7, 1.0)
          for s in (True, False) for p in ((), (("top_p", 0.9),))]
rng = random.Random(1)
seq = [(f"n{rng.randrange(pairs)}", shapes[rng.randrange(12)], rng.uniform(-0.5, 1.0))
       for _ in range(probes)]
d = Departures()
t = time.perf_counter()
for node, shape, x in seq:
    d.add_probe(node, "m", Evidence(x, 1, 0), shape)
print(time.perf_counter() - t, len(d.tallies), len(d.kinds), len(d.slices))
"""


def run(tree: Path, probes: int, pairs: int) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", WORKER, str(probes), str(pairs)],
                         env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", help="the other checkout")
    ap.add_argument("--probes", type=int, default=100_000)
    ap.add_argument("--pairs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    trees = {"this tree": Path(__file__).resolve().parents[1]}
    if args.baseline_tree:
        trees["baseline"] = Path(args.baseline_tree).resolve()
    print(f"load average {os.getloadavg()[0]:.2f}")
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            s, *sizes = run(tree, args.probes, args.pairs)
            best[name] = min(best.get(name, float("inf")), float(s))
            print(f"{name}: {float(s):.2f} s; pairs, kinds, slices kept: {', '.join(sizes)}")
    per = {k: v / args.probes * 1e6 for k, v in best.items()}
    print("| tree | best s | µs a counted probe |")
    for name, v in best.items():
        print(f"| {name} | {v:.2f} | {per[name]:.1f} |")
    if "baseline" in best:
        print(f"| this ÷ baseline | {best['this tree'] / best['baseline']:.2f}× | |")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
