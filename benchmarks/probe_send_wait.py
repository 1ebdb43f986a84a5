"""What keyed requests in the send stage's opt-in wait cost the gateway's process while a
fast node stays full, this tree beside another (docs/security.md, found 2026-12-05).

Method: one worker process per tree and round (``--baseline-tree DIR``), the registry app
in process (``tests/registry/helpers.running``, no socket; a fake node serving a
**SIMULATED** model that is never called). Node ``a`` has one slot, taken, and its
heartbeat says 0.1 ms a request (the router's estimate of the wait: well under 5 ms).
``--waiters`` keyed requests (``X-Mesh-Wait: --wait-s``) wait together until their waits
end (429 each); nothing frees the node. Printed: ``time.process_time`` of the process
during the waits (every thread), per waiter and second of wait, the router's picks per
waiter and second, the statuses. ``--case other``: meanwhile keyed requests for another
model, on another node, one after another (each one's end is a change of routing; printed:
how many were served in the wait). Trees alternate, ``--rounds`` times.

    .venv/bin/python benchmarks/probe_send_wait.py [--baseline-tree DIR] [--rounds 3]
        [--case idle|other]
"""

from __future__ import annotations

import argparse
import json

from _common import machine_line
from _tree_workers import alternating, compared_trees, tree_worker

WORKER = r"""
import asyncio, collections, json, sys, tempfile, time
from pathlib import Path
from tests.registry.helpers import running
from tests.registry.test_access import CHAT, bearer, chat, new_key

waiters, wait_s, other = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "other"


async def others(h, key, stop):
    # requests for another model, on another node, one after another until stop
    n = 0
    body = {"model": "other-model", "messages": [{"role": "user", "content": "hi"}]}
    while not stop.is_set():
        assert (await h.client.post(CHAT, json=body, headers=bearer(key))).status_code == 200
        n += 1
    return n


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Path(tmp)) as h:
            await h.register("a", max_concurrency=1, max_queue=0)
            if other:
                await h.register("b", models=["other-model"], max_concurrency=4)
            hb = {"in_flight": 1, "queued": 0, "service_s": 0.0001}
            assert (await h.client.post("/mesh/nodes/a/heartbeat", json=hb)).status_code == 200
            key, _ = await new_key(h, name="payer")
            routing = h.runtime.routing
            picks = [0]
            pick = routing.pick

            def counted(req):
                picks[0] += 1
                return pick(req)

            routing.pick = counted
            headers = {"X-Mesh-Wait": str(wait_s), **bearer(key)}
            stop = asyncio.Event()
            c0, t0 = time.process_time(), time.monotonic()
            busy = asyncio.ensure_future(others(h, key, stop)) if other else None
            rs = await asyncio.gather(
                *(h.client.post(CHAT, json=chat(), headers=headers) for _ in range(waiters))
            )
            stop.set()
            done = await busy if busy is not None else 0
            c1, t1 = time.process_time(), time.monotonic()
            per = waiters * wait_s
            print(json.dumps({
                "other_model_requests": done,
                "statuses": dict(collections.Counter(r.status_code for r in rs)),
                "wall_s": round(t1 - t0, 2),
                "cpu_ms": round((c1 - c0) * 1e3, 1),
                "cpu_us_per_waiter_s": round((c1 - c0) / per * 1e6),
                "picks_per_waiter_s": round(picks[0] / per, 1),
            }))

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-tree", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--waiters", type=int, default=50)
    ap.add_argument("--wait-s", type=float, default=3.0)
    ap.add_argument(
        "--case", choices=["idle", "other"], default="idle",
        help="other: meanwhile keyed requests for another model on another node, one after "
        "another (each one's end is a change of routing)",
    )  # fmt: skip
    a = ap.parse_args()
    print(machine_line())
    for r, order in alternating(compared_trees(a.baseline_tree), a.rounds):
        for name, tree in order:
            got = tree_worker(tree, WORKER, a.waiters, a.wait_s, a.case)
            print(f"round {r} {name:8s} " + json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
