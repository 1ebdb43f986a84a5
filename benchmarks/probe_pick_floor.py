"""How low a routing pick's p99 can go in CPython on this box, with other work between
picks (issue 11's goal: ``Routing.pick`` p99 ≤ 50 µs while heartbeats flow).

Method: one process, the routing state of ``bench_pick.py`` (``--nodes`` registered nodes,
one model, ``max_concurrency`` 4, one heartbeat each, the collector frozen). Before each
timed call, the work a busy replica does between two picks (a walk over 20,000 list items
and one heartbeat into the table and the router), so the pick runs on cold caches. Each
call's thread CPU time (``time.thread_time_ns``). Rows, interleaved round by round:

* ``empty interval``: the two clock reads alone (the measurement's own floor);
* ``Routing.pick``: the shipped pick (draw, score, liveness re-check, ``Decision``);
* ``floor prototype``: NOT the product. The same decision for this workload (best of
  ``choices`` random nodes by the documented cost formula, unconstrained request, no
  ejections) written as one function over a flat ``array('d')`` row per node (16 doubles,
  two cache lines), with no per-node Python objects touched but the winner. It is a lower
  bound on what a pure-Python pick of this shape can cost here; before timing, the
  winner's cost in 2,000 of its picks is checked equal to ``scoring.node_cost`` of that
  node (so it computes the same figure, not a cheaper one).

    .venv/bin/python benchmarks/probe_pick_floor.py [--nodes 10000 --rounds 8 --picks 400]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

from _common import machine_line

from LLM_Mesh.core.balancer import Decision, Verdict
from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration
from LLM_Mesh.core.scoring import RouteRequest, node_cost
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing

MODEL = "mistral-7b"
W = 16  # doubles per node row


def build(n: int) -> tuple[NodeTable, Routing, Heartbeat, list[str]]:
    table = NodeTable(500.0)
    routing = Routing(table, time.monotonic, rng=random.Random(7))
    hb = Heartbeat.model_validate({"in_flight": 0, "queued": 0, "state": "online"})
    ids = [f"n{i:05d}" for i in range(n)]
    for i, nid in enumerate(ids):
        reg = NodeRegistration.model_validate({
            "node_id": nid, "url": f"http://10.0.{i // 256 % 256}.{i % 256}:8801",
            "models": [{"id": MODEL, "engine": "sim", "simulated": True}],
            "max_concurrency": 4, "max_queue": 8})  # fmt: skip
        routing.upsert(table.register(reg))
    for nid in ids:
        table.heartbeat(nid, hb)
        routing.heartbeat(nid, hb)
    return table, routing, hb, ids


def flat_rows(items: list[Any]) -> array[float]:
    """Each node's scoring inputs in one row (a peak of -1: no sample yet)."""
    rows = array("d", [0.0]) * (len(items) * W)
    for i, st in enumerate(items):
        b = i * W
        for off, ew in ((0, st.ttft), (3, st.per_token)):
            rows[b + off] = -1.0 if ew.peak is None else ew.peak
            rows[b + off + 1] = ew.stamp
            rows[b + off + 2] = ew.idle_tau_s
        rows[b + 6] = 1.0 if MODEL in st.loaded else 0.0
        rows[b + 7] = st.model_cold_start_ms.get(MODEL, st.cold_start_ms)
        rows[b + 8] = st.in_flight
        rows[b + 9] = st.hb_load
        rows[b + 10] = st.max_concurrency
        rows[b + 11] = -1.0 if st.success.value is None else st.success.value
        rows[b + 12] = st.uptime
        rows[b + 13] = st.hb_at
        rows[b + 14] = st.waiting
        rows[b + 15] = st.waiting_since_sum
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--picks", type=int, default=400, help="timed calls per row per round")
    args = ap.parse_args(argv)
    table, routing, hb, ids = build(args.nodes)
    router = routing.router
    sp = router.policy.scoring
    k = router.policy.choices
    rand = router._rand
    items: list[Any] = list(router._pools[MODEL].open)
    rows = flat_rows(items)
    req = RouteRequest((MODEL,), expected_tokens=64)
    _new = tuple.__new__
    exp = math.exp
    prior_ttft, prior_tok, stale = sp.prior_ttft_ms, sp.prior_per_token_ms, sp.stale_after_s
    fail_pen, down_pen, stale_pen = sp.failure_penalty, sp.downtime_penalty, sp.stale_penalty

    def floor_pick(now: float | None = None) -> Decision:
        # the cost formula over one row per candidate, all in one function
        now = time.monotonic() if now is None else now
        tokens = 64
        n = len(items)
        seen: list[int] = []
        best, best_cost = -1, math.inf
        R = rows
        while len(seen) < k and len(seen) < n:
            i = int(rand() * n)
            if i in seen:
                continue
            seen.append(i)
            b = i * W
            ttft = R[b]
            if ttft < 0.0:
                ttft = prior_ttft
            elif now > R[b + 1]:
                ttft = ttft * exp(-(now - R[b + 1]) / R[b + 2])
            per_tok = R[b + 3]
            if per_tok < 0.0:
                per_tok = prior_tok
            elif now > R[b + 4]:
                per_tok = per_tok * exp(-(now - R[b + 4]) / R[b + 5])
            service = ttft + tokens * per_tok
            if R[b + 6] == 0.0:
                service += R[b + 7]
            waiting = R[b + 14]
            if waiting:
                stalled = (now - R[b + 15] / waiting) * 1000.0
                if stalled > service:
                    service = stalled
            fl, hl = R[b + 8], R[b + 9]
            cost = service * (1.0 + (fl if fl > hl else hl) / R[b + 10])
            ok = R[b + 11]
            if 0.0 <= ok < 1.0:
                cost *= 1.0 + fail_pen * (1.0 - ok)
            up = R[b + 12]
            if up < 1.0:
                cost *= 1.0 + down_pen * (1.0 - max(0.0, up))
            if now - R[b + 13] > stale:
                cost *= stale_pen
            if best < 0 or cost < best_cost:
                best, best_cost = i, cost
        return _new(Decision, (Verdict.OK, items[best].node_id, MODEL, best_cost, None))  # type: ignore[no-any-return]

    # the prototype computes the documented cost: its winner's figure equals node_cost's
    at = time.monotonic()
    for _ in range(2000):
        d = floor_pick(at)
        want = node_cost(router.node(d.node_id), MODEL, 64, at, sp, 1.0)  # type: ignore[arg-type]
        if not math.isclose(d.cost_ms, want, rel_tol=1e-12):  # type: ignore[arg-type]
            raise SystemExit(f"floor prototype differs from node_cost: {d.cost_ms} vs {want}")
    variants = {
        "empty interval": None,
        "Routing.pick": lambda: routing.pick(req),
        "floor prototype": floor_pick,
    }
    print(f"{args.nodes} nodes, best of {k}, thread CPU µs per call — start: {machine_line()}")
    print_rows(time_rows(variants, table, routing, hb, ids, args.rounds, args.picks))
    print(f"end: {machine_line()}")
    return 0


def time_rows(
    rows: dict[str, Callable[[], object] | None],
    table: NodeTable,
    routing: Routing,
    hb: Heartbeat,
    ids: list[str],
    rounds: int,
    calls: int,
) -> dict[str, list[int]]:
    """Each row's thread CPU ns per call, ``calls`` a row a round, rows interleaved (order
    reversed every other round), each call after the work a busy replica does between two
    picks (a walk over 20,000 list items, one heartbeat into table and router); a ``None``
    row times the two clock reads alone."""
    gc.freeze()
    junk = list(range(2_000_000))
    cpu: dict[str, list[int]] = {name: [] for name in rows}
    for rnd in range(rounds):
        names = list(rows) if rnd % 2 == 0 else list(reversed(rows))
        for name in names:
            fn = rows[name]
            for i in range(calls):
                start = (i * 7919 + rnd) % (len(junk) // 2)
                total = 0
                for x in junk[start : start + 20_000]:
                    total += x
                nid = ids[(i * 37) % len(ids)]
                table.heartbeat(nid, hb)
                routing.heartbeat(nid, hb)
                if fn is None:
                    c0 = time.thread_time_ns()
                    c1 = time.thread_time_ns()
                else:
                    c0 = time.thread_time_ns()
                    fn()
                    c1 = time.thread_time_ns()
                cpu[name].append(c1 - c0)
    return cpu


def print_rows(cpu: dict[str, list[int]]) -> None:
    """A markdown table of :func:`time_rows`' figures: calls, p50, p90, p99 in µs."""
    print("| row | calls | p50 µs | p90 µs | p99 µs |")
    print("|---|---:|---:|---:|---:|")
    for name, xs in cpu.items():
        xs.sort()

        def q(p: float, xs: list[int] = xs) -> float:
            return xs[min(len(xs) - 1, int(p * len(xs)))] / 1e3

        print(f"| {name} | {len(xs)} | {q(0.5):.1f} | {q(0.9):.1f} | {q(0.99):.1f} |")


if __name__ == "__main__":
    sys.exit(main())
