"""What node ids that left cost the gateway a day later: the public ``GET /mesh/nodes``'s
size and rebuild, the node table's size, this tree beside another (docs/security.md, "an
operator churns node keys", found 2026-12-06; ``registry/node_forget.py``).

Method: one worker process per tree (``--baseline-tree DIR``), the registry app in process
(``tests/registry/helpers.running``: in-memory store, node messages not signed, a manual
clock, nothing called). ``--ids`` node ids register (two models each); half say goodbye, the
other half fall silent; the clock moves a day and a minute; 50 live nodes register; the
upkeep after a health pass runs once (timed). The replicas' node poll is stopped: the
worker's wall clock does not move with the manual one. Printed per tree: the node table's entries,
the public listing's bytes and nodes, and the CPU time (``time.process_time``) of one
rebuild of it (the listing's cache off: every GET builds), median of 9. Trees alternate,
``--rounds`` times. SIMULATED: no node process, simulated engines.

    .venv/bin/python benchmarks/probe_node_churn.py [--ids 2000] [--baseline-tree DIR] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json

from _common import machine_line
from _tree_workers import alternating, compared_trees, tree_worker

WORKER = r"""
import asyncio, json, statistics, sys, tempfile, time
from pathlib import Path
from LLM_Mesh.registry.node_listing import NodeListing
from tests.registry.helpers import registration, running

ids = int(sys.argv[1])


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Path(tmp)) as h:
            # its wall clock does not move with the manual one: its 1 s poll would read the
            # rows written seconds ago as new (a day in earnest: not read again)
            await h.app.state.node_sync.stop()
            for i in range(ids):
                node = f"churn-{i:05d}"
                r = await h.client.post(
                    "/mesh/nodes", json=registration(node, ["gemma-3-270m", "mistral-7b"])
                )
                assert r.status_code == 200, r.text
                if i % 2 == 0:
                    assert (await h.client.delete(f"/mesh/nodes/{node}")).status_code == 204
            h.clock.advance(86400 + 60)
            for i in range(50):
                await h.client.post("/mesh/nodes", json=registration(f"live-{i:02d}"))
            c0 = time.process_time()
            h.app.state.health.upkeep()
            upkeep = time.process_time() - c0
            h.runtime.listing = NodeListing(ttl_s=0.0)
            cpu = []
            for _ in range(9):
                c0 = time.process_time()
                r = await h.client.get("/mesh/nodes")
                cpu.append(time.process_time() - c0)
            print(json.dumps({
                "table": len(h.table), "listed": len(r.json()["nodes"]),
                "bytes": len(r.content), "rebuild_ms": round(statistics.median(cpu) * 1e3, 2),
                "upkeep_ms": round(upkeep * 1e3, 1),
            }))


asyncio.run(main())
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ids", type=int, default=2000)
    p.add_argument("--baseline-tree", default=None)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    print(machine_line())
    for r, trees in alternating(compared_trees(args.baseline_tree), args.rounds):
        for name, tree in trees:
            print(f"round {r} {name}: {json.dumps(tree_worker(tree, WORKER, args.ids))}")


if __name__ == "__main__":
    main()
