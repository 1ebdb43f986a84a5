"""Pick latency for a request that did not opt in to prompt keeping, beside nodes that may
keep prompts (found 2026-12-06, keeppick34: registrations cost nothing, so an operator can
register thousands of such nodes for a popular model).

Method: one process, one ``core/balancer.Router``; one model served by 10 honest nodes and
``K`` nodes that may keep prompts (``Router.keeps_prompts``), all open (one heartbeat-free
upsert each). The request is built as this tree's gateway builds it for a request that did
not opt in (``registry/send.py``): with the keepers in ``deny_nodes`` where ``RouteRequest``
has no ``keepers`` field (before), else ``keepers=False`` (after). The figure: the median
of ``--rounds`` rounds' mean wall time of ``--picks`` picks (``time.perf_counter_ns``),
collector frozen; each pick is checked to choose an honest node.

    .venv/bin/python benchmarks/probe_keeper_pick.py [--keepers 0,1000,10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import statistics
import time

from _common import machine_line

from LLM_Mesh.core.balancer import Router
from LLM_Mesh.core.scoring import RouteRequest

MODEL = "m"


def setup(keepers: int, seed: int) -> tuple[Router, RouteRequest]:
    r = Router(rng=random.Random(seed))
    for i in range(10):
        r.upsert_node(f"h{i}", (MODEL,), now=0.0, max_concurrency=4)
    keep = frozenset(f"k{i}" for i in range(keepers))
    for nid in keep:
        r.upsert_node(nid, (MODEL,), now=0.0, max_concurrency=4)
        r.keeps_prompts(nid, frozenset({MODEL}))
    fields = {f.name for f in dataclasses.fields(RouteRequest)}
    if "keepers" in fields:  # this tree holds keepers out itself
        req = RouteRequest((MODEL,), keepers=False)  # type: ignore[call-arg]
    else:  # as send.py did: the keepers denied by name
        req = RouteRequest((MODEL,), deny_nodes=keep)
    return r, req


def run(keepers: int, rounds: int, picks: int) -> float:
    r, req = setup(keepers, 1)
    for _ in range(200):
        d = r.pick(req, 1.0)
        assert d.node_id is not None and d.node_id.startswith("h"), d
    means = []
    gc.freeze()
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(picks):
            r.pick(req, 1.0)
        means.append((time.perf_counter_ns() - t0) / picks / 1000)
    gc.unfreeze()
    return statistics.median(means)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keepers", default="0,1000,10000")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--picks", type=int, default=2000)
    a = ap.parse_args()
    print(machine_line())
    for k in (int(x) for x in a.keepers.split(",")):
        print(f"keepers={k:>6}  pick mean {run(k, a.rounds, a.picks):8.2f} us")


if __name__ == "__main__":
    main()
