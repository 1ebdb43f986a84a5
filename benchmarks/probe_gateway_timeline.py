"""One request's timeline through the gateway, one at a time: wall vs the loop's CPU per stage.

Method: one local mesh (registry+gateway and a registered ``sim`` node: SIMULATED, the node
settings of ``bench_gateway.py``) started with ``gw_timeline/`` first on ``PYTHONPATH``: its
``sitecustomize`` records, in the registry, the wall clock (``perf_counter_ns``, the same
monotonic clock in every process) and the calling thread's CPU (``thread_time_ns``) at the
start and end of the functions named below (``--extra`` adds more). Beside it an
unregistered node (the direct round trip, as ``bench_gateway.py`` measures it). One
``httpx.Client`` sends ``--requests`` non-streamed chat requests one at a time, each
gateway request followed by one direct one; the client's send and receipt times join the
registry's marks. Printed: for the most common sequence of marks, each step's median wall
µs and median loop-thread CPU µs (a step whose wall is far above its CPU is a wait: the
loop idle in ``epoll``, another thread, or the 2 shared cores taken by another process),
the client's p50s, and how often the gateway was still busy with the previous request
when the next one came.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_gateway_timeline.py [TREE]
        [--requests 2000] [--warmup 300] [--extra module:Class.method,...]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import SIM_CHAT_BODY as BODY
from _common import (
    SIM_FAST_NODE_ARGS,
    SIM_MODEL,
    keyed_headers,
    machine_line,
    registry_pid,
    sim_mesh,
    source_tree,
    standalone_node,
)

HERE = Path(__file__).resolve().parent
MARKS = [
    "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.data_received",
    "LLM_Mesh.hot_routes:HotRoutesApp.__call__",
    "LLM_Mesh.registry.pipeline:Pipeline.serve",
    "LLM_Mesh.registry.parse:build_job",
    "LLM_Mesh.registry.admit:Admission.run",
    "LLM_Mesh.registry.send:Exchange.complete",
    "LLM_Mesh.registry.http1:_Conn._send",
    "LLM_Mesh.registry.http1:_Conn.data_received",
    "LLM_Mesh.registry.account:mesh_answer",
    "LLM_Mesh.registry.relay:json_answer",
    "LLM_Mesh.registry.account:pay",
    "LLM_Mesh.registry.settle_db_sqlite:SqliteSettleDb.try_inline",
    "LLM_Mesh.hot_routes:_respond",
    "LLM_Mesh.hot_routes:_OneWrite.write",
    "LLM_Mesh.registry.account:record_answer",
    "LLM_Mesh.registry.settlement:Settlement._run_tick",
]


def short(name: str) -> str:
    return name.split(":")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree", nargs="?", default=None, help="checkout (default: this one)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--extra", default="", help="more module:function or module:Class.method")
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    out = str(Path(tempfile.mkdtemp(prefix="gw-timeline-")) / "timeline")
    os.environ["GW_TIMELINE"] = ",".join(MARKS + [s for s in args.extra.split(",") if s])
    os.environ["GW_TIMELINE_OUT"] = out
    with contextlib.ExitStack() as stack:
        # gw_timeline before the tree's path (set by source_tree), not the caller's: a TREE
        # given with PYTHONPATH naming another checkout ran that checkout's package
        m = sim_mesh(stack, args.tree, preload=HERE / "gw_timeline")
        with source_tree(args.tree):
            direct = stack.enter_context(
                standalone_node(model=SIM_MODEL, engine="sim", node_args=SIM_FAST_NODE_ARGS)
            )
        pid = registry_pid(m)
        url = m.registry_url + "/v1/chat/completions"
        durl = direct + "/v1/chat/completions"
        hdr = keyed_headers(m)
        sends: list[tuple[int, int]] = []
        dlat: list[float] = []
        with httpx.Client(timeout=60.0) as client:
            for _ in range(args.warmup):
                client.post(url, json=BODY, headers=hdr)
                client.post(durl, json=BODY)
            time.sleep(1.5)
            dump(pid, out)  # empty the record
            for _ in range(args.requests):
                t0 = time.perf_counter_ns()
                r = client.post(url, json=BODY, headers=hdr)
                t1 = time.perf_counter_ns()
                r.raise_for_status()
                sends.append((t0, t1))
                t2 = time.perf_counter_ns()
                client.post(durl, json=BODY)
                dlat.append((time.perf_counter_ns() - t2) / 1e3)
        time.sleep(1.5)
        raw = dump(pid, out)
    report(raw, sends, dlat)


def dump(pid: int, out: str) -> list[Any]:
    """Signal the registry to write its marks (and forget them); the list."""
    path = Path(f"{out}.{pid}.json")
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(200):
        time.sleep(0.05)
        with contextlib.suppress(OSError, ValueError):
            return list(json.loads(path.read_text()))
    raise RuntimeError("the registry wrote no timeline")


def report(events: list[Any], sends: list[tuple[int, int]], dlat: list[float]) -> None:
    events.sort(key=lambda e: e[2])
    loop_tid = collections.Counter(
        e[4] for e in events if e[0].endswith("Pipeline.serve")
    ).most_common(1)[0][0]
    seqs: dict[tuple[str, ...], list[list[tuple[str, int, int | None]]]] = {}
    busy = 0
    i = 0
    for t0, t1 in sends:
        while i < len(events) and events[i][2] < t0:
            i += 1
        marks: list[tuple[str, int, int | None]] = [("client sends", t0, None)]
        j = i
        while j < len(events) and events[j][2] <= t1:
            n, k, w, c, tid = events[j]
            label = f"{short(n)} {'>' if k == 'b' else '<'}" + ("" if tid == loop_tid else " [T]")
            marks.append((label, w, c if tid == loop_tid else None))
            j += 1
        marks.append(("client has it", t1, None))
        seqs.setdefault(tuple(x[0] for x in marks), []).append(marks)
        i = j
    # how often the previous request's marks ran past this one's send
    opened: dict[str, int] = collections.Counter()
    after = [e for e in events if e[4] == loop_tid]
    k = 0
    for t0, _t1 in sends[1:]:
        while k < len(after) and after[k][2] < t0:
            k += 1
        if 0 < k < len(after) and after[k - 1][1] == "b" and after[k][1] == "e" \
                and after[k - 1][0] == after[k][0]:  # fmt: skip
            busy += 1
            opened[short(after[k][0])] += 1
    lat = sorted((t1 - t0) / 1e3 for t0, t1 in sends)
    stalls(seqs)
    d = statistics.median(dlat)
    g = statistics.median(lat)
    print(f"\nclient p50: gateway {g:.0f} µs, direct node {d:.0f} µs, added {g - d:.0f} µs "
          f"= {(g - d) / d:.2f}x the direct round trip ({len(lat)} requests)")  # fmt: skip
    print(f"the next request sent before the loop left a call it was in (the gateway preempted "
          f"inside it: the client ran first): {busy} of {len(sends) - 1} "
          f"({dict(opened)})")  # fmt: skip
    ranked = sorted(seqs.items(), key=lambda kv: -len(kv[1]))
    for seq, runs in ranked[:2]:
        print(
            f"\nsequence seen in {len(runs)} of {len(sends)} requests: step, median wall µs, "
            "median loop CPU µs (- where a side is not the loop thread), wall - CPU"
        )
        tot_w = tot_c = 0.0
        for s in range(1, len(seq)):
            walls = [(r[s][1] - r[s - 1][1]) / 1e3 for r in runs]
            cpus = [
                (r[s][2] - r[s - 1][2]) / 1e3
                for r in runs
                if r[s][2] is not None and r[s - 1][2] is not None
            ]
            w = statistics.median(walls)
            c = statistics.median(cpus) if cpus else None
            tot_w += w
            tot_c += c or 0.0
            cs = f"{c:7.1f}" if c is not None else "      -"
            gap = f"{w - c:7.1f}" if c is not None else "      -"
            print(f"  {w:8.1f} {cs} {gap}  {seq[s - 1]}  ->  {seq[s]}")
        print(f"  sums of medians: wall {tot_w:.0f} µs, loop CPU {tot_c:.0f} µs")


IDLE = {("serve >", "data_received >"), ("_send >", "data_received >")}


def stalls(seqs: dict[tuple[str, ...], list[list[tuple[str, int, int | None]]]]) -> None:
    """Per request, the loop's steps' wall above their CPU, the two waits it idles in (the
    request's body after its head, the node's answer) left out: preemption, the GIL, a
    thread or another task in between. Printed as percentiles over every request."""
    lost: list[float] = []
    busy: list[float] = []
    where: collections.Counter[str] = collections.Counter()
    beside: collections.Counter[str] = collections.Counter()  # other threads' marks meanwhile
    beside_t: list[float] = []  # the stalls of requests another thread's marks fell in
    for runs in seqs.values():
        for r in runs:
            marks = [m for m in r if m[2] is not None]
            tot, worst, worst_step = 0.0, 0.0, ""
            for a, b in itertools.pairwise(marks):
                if any(a[0].endswith(x) and b[0].endswith(y) for x, y in IDLE):
                    continue
                gap = max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / 1e3)  # type: ignore[operator]
                tot += gap
                if gap > worst:
                    worst, worst_step = gap, f"{a[0]}  ->  {b[0]}"
            lost.append(tot)
            if any(m[0].endswith("[T]") for m in r):
                beside_t.append(tot)
            if tot > 500:
                where[worst_step] += 1
                for other in {m[0] for m in r if m[0].endswith("[T]")}:
                    beside[other] += 1
            writes = [m for m in marks if m[0].startswith("_OneWrite.write <")]
            if writes and marks:
                busy.append((writes[-1][2] - marks[0][2]) / 1e3)  # type: ignore[operator]
    lost.sort()
    busy.sort()
    n = len(lost)
    print(f"\nper request, the loop's wall above its CPU outside its two idle waits: p50 "
          f"{lost[n // 2]:.0f} µs, p90 {lost[n * 9 // 10]:.0f}, p99 {lost[n * 99 // 100]:.0f} "
          f"({n} requests); the loop's CPU from the request's first bytes to the answer's "
          f"write: p50 {busy[len(busy) // 2]:.0f} µs")  # fmt: skip
    print(f"requests with more than 500 µs of it: {sum(where.values())}; the step that held "
          "most of it:")  # fmt: skip
    for step, count in where.most_common(6):
        print(f"  {count:5d}  {step}")
    beside_t.sort()
    if beside_t:
        k = len(beside_t)
        print(f"requests another thread's marks fell in: {k}; their stall p50 "
              f"{beside_t[k // 2]:.0f} µs, p90 {beside_t[k * 9 // 10]:.0f}, max "
              f"{beside_t[-1]:.0f}")  # fmt: skip
    print("  another thread's marks in those requests: " + (", ".join(
        f"{k} ({v})" for k, v in beside.most_common(6)) or "none"))  # fmt: skip


if __name__ == "__main__":
    main()
