"""Worker processes run by the code of another checkout: a before/after probe's trees.

A probe that compares this checkout with ``--baseline-tree DIR`` runs its measuring code
(a script given as text) once per tree in a process of its own, the package imported from
that tree (:func:`tree_worker`: one run, its last line of JSON; :func:`line_worker`: kept
running, asked a line at a time), the trees' order alternating round by round
(:func:`alternating`; :func:`worker_rounds` does all of it for a probe that asks each
tree's :func:`line_worker` the same line). :data:`ROUTING` is worker text for a probe of
one model's ``Routing`` (its router's nodes added directly, no node table). Imported as
``_tree_workers``, beside ``_common``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _common import ROOT, tree_pythonpath


def compared_trees(baseline_tree: str | None) -> dict[str, str]:
    """The checkouts a before/after probe runs in turn: ``this`` (this checkout) and, where
    given, ``baseline`` (``--baseline-tree DIR``)."""
    return {"this": str(ROOT)} | ({"baseline": baseline_tree} if baseline_tree else {})


def alternating(trees: dict[str, str], rounds: int) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """Each round's number (from 1) and the trees in that round's order: as given in odd
    rounds, reversed in even ones (neither always runs on a box the other warmed)."""
    for r in range(rounds):
        yield r + 1, list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))


def tree_worker(tree: str, code: str, *args: object) -> dict[str, Any]:
    """Run the worker script ``code`` with ``args`` by the package of checkout ``tree`` (its
    own process, ``tree`` its working directory and first on ``PYTHONPATH``) and read the
    last line it printed as JSON; a worker that fails ends the run with its stderr."""
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env={**os.environ, "PYTHONPATH": tree_pythonpath(tree)}, cwd=tree,
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def line_worker(tree: str | Path, code: str, *args: object) -> subprocess.Popen[str]:
    """The worker script ``code`` with ``args`` kept running by the package of checkout
    ``tree``, spoken to a line at a time (:func:`ask_worker`) until :func:`end_workers`."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], cwd=tree,
        env={**os.environ, "PYTHONPATH": tree_pythonpath(tree)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def ask_worker(worker: subprocess.Popen[str], line: str) -> Any:
    """Send a :func:`line_worker` one line and read its answer, a line of JSON."""
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(line + "\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())


def end_workers(workers: Iterable[subprocess.Popen[str]]) -> None:
    """Close each :func:`line_worker`'s input (its end) and wait for it."""
    for w in workers:
        assert w.stdin is not None
        w.stdin.close()
        w.wait()


def tree_args(ap: argparse.ArgumentParser, number: int, rounds: int = 3) -> None:
    """A :func:`worker_rounds` probe's own options: ``--baseline-tree DIR`` (the other
    checkout), ``--number`` (calls a ``timeit`` repeat) and ``--rounds``."""
    ap.add_argument("--baseline-tree", help="the other checkout")
    ap.add_argument("--number", type=int, default=number)
    ap.add_argument("--rounds", type=int, default=rounds)


def worker_rounds(
    baseline_tree: str | None, code: str, args: Sequence[object], rounds: int
) -> Iterator[tuple[int, str, Any]]:
    """A :func:`line_worker` of ``code`` with ``args`` for this checkout ("this tree") and,
    where given, ``baseline_tree`` ("baseline"), each asked "go" ``rounds`` times, the order
    alternating: each answer with its round (from 1) and tree; the workers ended after."""
    trees = {"this tree": ROOT} | ({"baseline": Path(baseline_tree)} if baseline_tree else {})
    workers = {name: line_worker(path.resolve(), code, *args) for name, path in trees.items()}
    try:
        for rnd in range(rounds):
            names = list(workers) if rnd % 2 == 0 else list(reversed(workers))
            for name in names:
                yield rnd + 1, name, ask_worker(workers[name], "go")
    finally:
        end_workers(workers.values())


def best_ratio(got: dict[str, list[dict[str, float]]], column: str) -> float:
    """This tree's best (least) ``column`` over the baseline's, of :func:`worker_rounds`'s
    answers by tree."""
    return min(r[column] for r in got["this tree"]) / min(r[column] for r in got["baseline"])


# worker text: a ``Routing`` of one model "m" on a clock that stands still (``routing()``),
# and one whose router holds ``keep_n`` nodes that may keep prompts (``Routing._keeper``, as
# a registration tells it) after ``other_n`` that keep none (``keepers()``), every node
# added to the router directly (``max_concurrency`` 4, ``max_queue`` 8; no node table)
ROUTING = r"""
import random
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing

clock = lambda: 1.0

def routing():
    return Routing(NodeTable(30.0, clock), clock, rng=random.Random(7))

def keepers(keep_n, other_n):
    r = routing()
    for i in range(keep_n + other_n):
        nid = f"k{i:05d}"
        r.router.upsert_node(nid, ["m"], now=0.0, max_concurrency=4, max_queue=8)
        if i >= other_n:
            r._keeper(nid, frozenset({"m"}))
    return r
"""
