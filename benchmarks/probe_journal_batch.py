"""The event loop's stall when a batch of answers fails to write (the settlement database
away): each answer is kept in ``$LLM_MESH_HOME/settlement.unwritten`` before it goes out,
this tree beside another (docs/security.md, found 2026-12-05, review28).

Method: one worker process per tree and round (``--baseline-tree DIR``): a SQLite store in
a temporary folder beside this checkout (the disk the gateway's home would be on, not
tmpfs), a started ``Settlement`` holding the home's lock, ``--answers`` requests reserved,
then every write failing (the database away) and all their answers sent together: the
writer's one batch fails, and the time ``Settlement._fail`` holds the loop is measured (it
journals each answer, then tells each request), with the ``fsync`` calls it made. Nothing
SIMULATED, no node.

    .venv/bin/python benchmarks/probe_journal_batch.py [--baseline-tree DIR] [--rounds 3]
        [--answers 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import machine_line, tree_pythonpath

WORKER = r"""
import asyncio, json, os, sys, tempfile, time
from pathlib import Path
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.crash_books import ledger_of

n = int(sys.argv[1])
USER, OP = "user:" + "3" * 24, "operator:" + "1" * 32

async def main():
    with tempfile.TemporaryDirectory(dir=sys.argv[2]) as tmp:
        store = SqlStore(f"sqlite:///{tmp}/registry.db")
        await store.open()
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, 10**12))
        s = Settlement(ledger_of(store), fee_bps=500, pool_daily_budget=0,
                       settle_interval_s=3600.0, beat_s=3600.0, home=Path(tmp),
                       wall_clock=time.time)
        await s.start()
        answers = [Answer(f"r{i}", USER, "m", 10_000, (PaidPart("n1", OP, 1_000, 50),),
                          f"{i:064x}") for i in range(n)]
        for a in answers:
            assert (await s.reserve(a.key, USER, "m", 10_000)).ok
        async def away(*a, **k):
            raise ConnectionError("the database is away")
        s.db.apply = away
        s.db.try_inline = lambda ops, holder, now=None: None
        fail, spent, syncs = s._fail, [], [0]
        def timed(batch, exc):
            t = time.perf_counter()
            fail(batch, exc)
            spent.append((time.perf_counter() - t, len(batch)))
        s._fail = timed
        real = os.fsync
        def fsync(fd):
            syncs[0] += 1
            real(fd)
        os.fsync = fsync
        rs = await asyncio.gather(*(s.answer(a) for a in answers), return_exceptions=True)
        os.fsync = real
        assert all(isinstance(r, ConnectionError) for r in rs)
        lines = len((Path(tmp) / "settlement.unwritten").read_text().splitlines())
        print(json.dumps({
            "batches": [b for _, b in spent], "loop_held_ms": round(sum(t for t, _ in spent) * 1e3, 2),
            "fsyncs": syncs[0], "journal_lines": lines,
        }))
        s._started = False  # no stop: the database stays away
        await store.close()

asyncio.run(main())
"""


def run(tree: str, answers: int, where: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": tree_pythonpath(tree)}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(answers), where],
        env=env, cwd=tree, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--answers", type=int, default=256)
    a = ap.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    trees = {"this": here} | ({"baseline": a.baseline_tree} if a.baseline_tree else {})
    where = str(Path(here).parent)  # the checkout's disk, not /tmp
    print(machine_line())
    for r in range(a.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            got = run(tree, a.answers, where)
            print(f"round {r + 1} {name:8s} " + json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
