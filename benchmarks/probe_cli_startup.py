"""What ``llm-mesh`` costs before it does anything: CPU (user + system of the child) and wall
time of ``--version``, ``status --help`` and ``--help``, each tree's run interleaved with the others',
medians of ``--runs``. A tree is a folder holding ``LLM_Mesh/`` (``git archive COMMIT
LLM_Mesh | tar -x -C DIR`` for an older one). Run from a neutral folder so the working
directory does not shadow the trees (``python -m`` puts it first on ``sys.path``)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {"--version": ["--version"], "status --help": ["status", "--help"], "--help": ["--help"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("trees", nargs="+", help="folders holding LLM_Mesh/")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    res: dict[tuple[str, str], list[tuple[float, float]]] = {
        (t, c): [] for t in args.trees for c in COMMANDS
    }
    with tempfile.TemporaryDirectory() as neutral:
        for _ in range(args.runs):
            for c, argv in COMMANDS.items():
                for tree in args.trees:
                    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
                    r0, w0 = os.times(), time.perf_counter()
                    subprocess.run(
                        [sys.executable, "-m", "LLM_Mesh.cli.main", *argv],
                        env=env, cwd=neutral, check=True, capture_output=True,
                    )  # fmt: skip
                    wall, r1 = time.perf_counter() - w0, os.times()
                    cpu = r1.children_user - r0.children_user
                    cpu += r1.children_system - r0.children_system
                    res[(tree, c)].append((cpu, wall))
    for (tree, c), v in res.items():
        cpus, walls = [x[0] for x in v], [x[1] for x in v]
        print(
            f"{c:14} {tree:28} cpu median {statistics.median(cpus):.2f} s "
            f"({min(cpus):.2f}-{max(cpus):.2f})  wall median {statistics.median(walls):.2f} s "
            f"({min(walls):.2f}-{max(walls):.2f})"
        )


if __name__ == "__main__":
    main()
