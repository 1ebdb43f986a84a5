"""``Routing.pick`` as a replica runs it, this tree beside another in one run.

Method: one worker process per tree (``--baseline-tree DIR``: another checkout, e.g.
``git worktree add DIR main``), each with a ``NodeTable`` and ``Routing`` of ``--nodes``
registered nodes as ``bench_heartbeats.py`` has them (one model, ``max_concurrency`` 4,
one heartbeat each, no traffic: every candidate costs the priors) and the collector frozen
as ``registry serve`` does. The parent asks the workers in turn (the order alternating)
for rounds of picks, so both trees see the same moments of a shared box; each pick's
thread CPU time (``time.thread_time_ns``: time the OS gave another process is not
counted) is pooled per tree and row. Rows: ``back to back``; ``work between`` (before each
pick a walk over 20,000 list items and one heartbeat into table and router, as a busy
replica does between two picks: the pick's objects and code are out of the caches).
Then, per tree, what a pick executes, counted with ``sys.settrace`` (the same on any box):
bytecodes and Python function calls.

    .venv/bin/python benchmarks/bench_pick.py [--baseline-tree DIR] [--nodes 10000 --rounds 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import machine_line
from _tree_workers import ask_worker, end_workers, line_worker

WORKER = r"""
import gc, json, random, sys, time
from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing

n = int(sys.argv[1])
table = NodeTable(500.0)
routing = Routing(table, time.monotonic, rng=random.Random(7))
hb = Heartbeat.model_validate({"in_flight": 0, "queued": 0, "state": "online"})
ids = [f"n{i:05d}" for i in range(n)]
for i, nid in enumerate(ids):
    reg = NodeRegistration.model_validate({
        "node_id": nid, "url": f"http://10.0.{i // 256 % 256}.{i % 256}:8801",
        "models": [{"id": "mistral-7b", "engine": "sim", "simulated": True}],
        "max_concurrency": 4, "max_queue": 8})
    routing.upsert(table.register(reg))
for nid in ids:
    table.heartbeat(nid, hb)
    routing.heartbeat(nid, hb)
req = RouteRequest(("mistral-7b",), expected_tokens=64)
gc.freeze()
junk = list(range(2_000_000))


def count(picks):
    seen = {"ops": 0, "calls": 0}

    def tracer(frame, event, arg):
        if event == "call":
            seen["calls"] += 1
            frame.f_trace_opcodes = True
        elif event == "opcode":
            seen["ops"] += 1
        return tracer

    sys.settrace(tracer)
    for _ in range(picks):
        routing.pick(req)
    sys.settrace(None)
    return {k: v / picks for k, v in seen.items()}


print("ready", flush=True)
for line in sys.stdin:
    mode, picks = line.split()
    if mode == "count":
        print(json.dumps(count(int(picks))), flush=True)
        continue
    cpu = []
    for i in range(int(picks)):
        if mode == "work":
            start = (i * 7919) % (len(junk) // 2)
            total = 0
            for x in junk[start : start + 20_000]:
                total += x
            nid = ids[(i * 37) % n]
            table.heartbeat(nid, hb)
            routing.heartbeat(nid, hb)
        c0 = time.thread_time_ns()
        routing.pick(req)
        cpu.append(time.thread_time_ns() - c0)
    print(json.dumps(cpu), flush=True)
"""

ROWS = {"back to back": ("b2b", 2000), "work between": ("work", 500)}


def pct(xs: list[int], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", help="another checkout, measured beside this one")
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)
    here = str(Path(__file__).resolve().parent.parent)
    trees = {"this tree": here}
    if args.baseline_tree:
        if not (Path(args.baseline_tree) / "LLM_Mesh" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-tree {args.baseline_tree}: no LLM_Mesh package there")
        trees = {"baseline": str(Path(args.baseline_tree).resolve()), **trees}
    workers = {name: line_worker(path, WORKER, args.nodes) for name, path in trees.items()}

    def ask(name: str, line: str) -> object:
        return ask_worker(workers[name], line)

    for w in workers.values():
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    print(f"{args.nodes} nodes, Routing.pick thread CPU µs — start: {machine_line()}")
    cpu: dict[tuple[str, str], list[int]] = {(t, r): [] for t in trees for r in ROWS}
    for rnd in range(args.rounds):
        for row, (mode, picks) in ROWS.items():
            order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
            for name in order:
                got = ask(name, f"{mode} {picks}")
                assert isinstance(got, list)
                cpu[(name, row)] += got
    print("| tree | row | picks | p50 µs | p99 µs | p99.9 µs |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, row), xs in cpu.items():
        xs.sort()
        print(f"| {name} | {row} | {len(xs)} | {pct(xs, 0.5):.1f} | {pct(xs, 0.99):.1f} | "
              f"{pct(xs, 0.999):.1f} |")  # fmt: skip
    print("| tree | bytecodes per pick | Python calls per pick |")
    print("|---|---:|---:|")
    for name in trees:
        c = ask(name, "count 200")
        assert isinstance(c, dict)
        print(f"| {name} | {c['ops']:.0f} | {c['calls']:.0f} |")
    end_workers(workers.values())
    print(f"end: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
