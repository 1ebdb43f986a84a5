"""What ``GET /v1/balance`` without a key and a heartbeat with ~1 MiB of ``loaded_models``
cost the gateway's process, this tree beside another (docs/security.md, found 2026-12-05).

Method: one worker process per tree and case (``--baseline-tree DIR``), the registry app in
process (``tests/registry/helpers.running``: a SQLite ledger in a temporary folder, no
socket). ``balance``: 2,000 calls without a key, the manual clock moved 50 ms every 100
calls (20 calls a simulated second); ``heartbeat``: 50 heartbeats of one registered node,
each 1,040,019 bytes (65,000 ``loaded_models``). Printed: ``time.process_time`` a call
(every thread: the database's too), the last answer's status and, for a refusal, its error
``code`` and ``param``. Trees alternate, ``--rounds`` times.

Since 2026-12-05 (branch ``anon27``) the heartbeat case is refused: 400 ``invalid_request``,
``param`` ``loaded_models``, past ``MAX_HEARTBEAT_BYTES`` (``core/schemas.py``), before its
signature or JSON is read. That refusal is what this case measures on this tree, not a
broken probe (a tree before it answers 200; docs/benchmarks.md, 06:52 UTC that day).

    .venv/bin/python benchmarks/probe_control_reads.py [--baseline-tree DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json

from _common import machine_line
from _tree_workers import alternating, compared_trees, tree_worker

WORKER = r"""
import asyncio, json, sys, tempfile, time
from pathlib import Path
from tests.registry.helpers import registration, running

case = sys.argv[1]


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Path(tmp), pool_daily_budget=7_000) as h:
            if case == "balance":
                for _ in range(50):
                    await h.client.get("/v1/balance")
                n = 2000
                c0 = time.process_time()
                for i in range(n):
                    r = await h.client.get("/v1/balance")
                    if i % 100 == 0:
                        h.clock.advance(0.05)
                c1 = time.process_time()
            else:
                await h.client.post("/mesh/nodes", json=registration("node-a"))
                body = json.dumps({"loaded_models": ["gemma-3-270m"] * 65_000}).encode()
                n = 50
                c0 = time.process_time()
                for _ in range(n):
                    r = await h.client.post("/mesh/nodes/node-a/heartbeat", content=body)
                c1 = time.process_time()
            out = {"status": r.status_code, "cpu_us_per_call": round((c1 - c0) / n * 1e6)}
            if r.status_code >= 400:  # why (the heartbeat's: its size bound)
                err = r.json().get("error") or {}
                out |= {"code": err.get("code"), "param": err.get("param")}
            print(json.dumps(out))

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(machine_line())
    for r, order in alternating(compared_trees(a.baseline_tree), a.rounds):
        for case in ("balance", "heartbeat"):
            for name, tree in order:
                got = tree_worker(tree, WORKER, case)
                print(f"round {r} {case:9s} {name:8s} " + json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
