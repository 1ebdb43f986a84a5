"""The usage audit's cost on the request's path, and its judging off it, by a model's nodes.

The account stage hands every routed answer to ``UsageAuditor.answered``. In memory
(``core/usage_audit.UsageAudit``: no store) a node's verdict is checked every 8th of its
answers from its 200th, each check building the open window's table (a sort of the model's
nodes' shares, each kind). With a store (``registry/usage_audit_sync.py``) the answer is
added to this replica's pending sums only, and the check runs every ``flush_s`` for the
whole model (one flush, one read, one table a window) off the request's path.

For each model size (nodes answering in one window, each past 200 answers) it prints
microseconds an answer of ``answered`` in both modes, and the milliseconds of one shared run
(``run_once``: flush, read back, judge every node) on the in-memory store (the store's SQL
time not included). Works with the tree's code as it is: a tree without the store mode
(``--baseline-tree``) prints the in-memory column only.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_usage_audit_hot.py [--nodes 3,30,300,2000]
        [--baseline-tree DIR]

``--baseline-tree DIR``: another checkout measured first in the same run (a process each,
size by size alternating: the baseline's, then this tree's).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.registry.job import Job, Tally
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.usage_audit import UsageAuditor

MODEL = "mistral-7b"


def _job() -> Job:
    spec = get_spec(MODEL)
    if spec is None:
        raise SystemExit(f"{MODEL} not in the catalog")
    return Job(path="/v1/completions", model=MODEL, body={}, raw=b"{}", stream=False,
               prompt_text="x" * 200, max_tokens=200, price=spec.price, estimate=1,
               catalog_context=spec.context_length, request_id="r", started=0.0)  # fmt: skip


def _tallies(nodes: int) -> list[Tally]:
    out = []
    for i in range(nodes):
        t = Tally()
        t.node_id, t.completion_cap = f"n{i:05d}", 116
        t.completion_tokens, t.prompt_tokens = 28 + i % 7, 50
        out.append(t)
    return out


def _per_answer_us(auditor: UsageAuditor, nodes: int, answers: int) -> float:
    job, tallies = _job(), _tallies(nodes)
    for _ in range(200):  # every node past min_requests: checked every 8th answer
        for t in tallies:
            auditor.answered(job, t)
    if getattr(auditor, "shared", None) is not None:
        auditor.shared.pending.clear()  # type: ignore[union-attr]
    rounds = max(1, answers // nodes)
    t0 = time.perf_counter()
    for _ in range(rounds):
        for t in tallies:
            auditor.answered(job, t)
    return (time.perf_counter() - t0) / (rounds * nodes) * 1e6


async def _run_ms(nodes: int) -> float:
    store = MemoryStore()
    auditor = UsageAuditor(None, clock=lambda: 1_800_000_010.0, store=store)
    job, tallies = _job(), _tallies(nodes)
    for _ in range(8):
        for t in tallies:
            auditor.answered(job, t)
    shared = auditor.shared
    assert shared is not None
    t0 = time.perf_counter()
    await shared.run_once()
    return (time.perf_counter() - t0) * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="3,30,300,2000")
    parser.add_argument("--answers", type=int, default=60_000)
    parser.add_argument("--baseline-tree", help="another checkout, measured beside this one")
    args = parser.parse_args()
    if args.baseline_tree:
        _compare(args.baseline_tree, args.nodes, args.answers)
        return
    shared = "store" in inspect.signature(UsageAuditor).parameters
    print("nodes  in-memory µs/answer  store µs/answer  store run ms (flush+read+judge)")
    for n in (int(x) for x in args.nodes.split(",")):
        memory = _per_answer_us(UsageAuditor(None, clock=lambda: 1_800_000_010.0), n, args.answers)
        if shared:
            store = UsageAuditor(None, clock=lambda: 1_800_000_010.0, store=MemoryStore())
            hot = _per_answer_us(store, n, args.answers)
            run = await _run_ms(n)
            print(f"{n:5d}  {memory:19.2f}  {hot:15.2f}  {run:10.2f}")
        else:
            print(f"{n:5d}  {memory:19.2f}  {'-':>15}  {'-':>10}")


def _compare(baseline: str, nodes: str, answers: int) -> None:
    """This script in a process on each tree, size by size: the baseline's line, then this
    tree's."""
    here = Path(__file__).resolve().parents[1]
    trees = {"baseline": Path(baseline).resolve(), "this tree": here}
    for tree in trees.values():
        if not (tree / "LLM_Mesh" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-tree {tree}: no LLM_Mesh package there")
    print("tree       nodes  in-memory µs/answer  store µs/answer  store run ms")
    for n in nodes.split(","):
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=str(tree))
            out = subprocess.run(
                [sys.executable, __file__, "--nodes", n, "--answers", str(answers)],
                cwd=tree,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()[-1]
            print(f"{name:9s}  {out}")


if __name__ == "__main__":
    asyncio.run(main())
