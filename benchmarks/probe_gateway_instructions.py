"""The gateway's instructions a non-streamed request, counted by valgrind: a measure the
box's other load does not move (wall time and CPU time do; this box has no hardware
counters for ``perf stat``).

Method: one local mesh per tree (registry+gateway and a registered ``sim`` node:
SIMULATED, ``bench_gateway.py``'s node settings), its registry run under valgrind's
callgrind (``gw_callgrind/sitecustomize.py``: instrumentation off until the warm-up is
done, one count a thread). Per round and tree, interleaved: the counters zeroed, ``--idle-s``
seconds with no request (what the timers' work costs a second: heartbeats, the settler's
rounds, the pollers), then ``--requests`` non-streamed chat requests one at a time from one
``httpx.Client`` with a client API key. Printed per tree: the instructions (valgrind's
``Ir``) a request of the event loop's thread and of the other threads, the idle rate times
the pass's wall time taken off (under valgrind a request takes 100–250× its time here, so
a timer's work a request is as much too large before that); the median of the rounds and
their range, and each tree's paired difference with ``--baseline-tree``'s. The Python
functions behind a difference: ``probe_gateway_cpu.py --calls-diff``.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_gateway_instructions.py
        [--requests 150] [--warmup 60] [--rounds 3] [--idle-s 20] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from _common import SIM_CHAT_BODY as BODY
from _common import environ, keyed_headers, machine_line, registry_pid, sim_mesh

HERE = Path(__file__).resolve().parent


def _ctl(what: str, pid: int) -> None:
    subprocess.run(["callgrind_control", what, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def dump(out: Path, pid: int) -> dict[int, int]:
    """Dump (and zero) the registry's counters; its instructions by valgrind thread number
    (1: the main thread, the event loop's) since the last zero."""
    before = set(out.glob(f"cg.{pid}.*"))
    _ctl("-d", pid)
    got: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        time.sleep(0.2)
        for f in set(out.glob(f"cg.{pid}.*")) - before:
            for line in f.read_text().splitlines():
                if line.startswith(("summary:", "totals:")):
                    got[int(f.name.rsplit("-", 1)[1])] = int(line.split()[1])
                    break
    if not got:
        raise SystemExit(f"callgrind_control -d {pid}: no dump in 60 s")
    return got


def run(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> None:
    for _ in range(n):
        r = client.post(url + "/v1/chat/completions", json=BODY, headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}: {r.text[:300]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=20.0)
    ap.add_argument("--baseline-tree", default=None)
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    out = Path(tempfile.mkdtemp(prefix="gw-callgrind-"))
    plan: list[tuple[str, str | None]] = [("this", None)]
    if args.baseline_tree:
        plan.append(("before", args.baseline_tree))
    loop: dict[str, list[float]] = {name: [] for name, _ in plan}
    other: dict[str, list[float]] = {name: [] for name, _ in plan}
    raw: dict[str, list[float]] = {name: [] for name, _ in plan}
    with contextlib.ExitStack() as stack, environ({"LLM_MESH_BENCH_CALLGRIND_DIR": str(out)}):
        meshes = {}
        for name, tree in plan:
            m = sim_mesh(stack, tree, preload=HERE / "gw_callgrind")
            meshes[name] = (m.registry_url, registry_pid(m), keyed_headers(m))
        with httpx.Client(timeout=120.0) as client:
            for url, pid, h in meshes.values():
                run(client, url, h, args.warmup)
                subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                run(client, url, h, 10)  # the instrumented code's first run
            for i in range(args.rounds):
                for name in list(meshes) if i % 2 == 0 else list(reversed(meshes)):
                    url, pid, h = meshes[name]
                    _ctl("-z", pid)
                    t0 = time.monotonic()
                    time.sleep(args.idle_s)
                    idle = dump(out, pid)
                    idle_s = time.monotonic() - t0
                    t1 = time.monotonic()
                    run(client, url, h, args.requests)
                    busy = dump(out, pid)
                    wall = time.monotonic() - t1
                    per = {t: (busy.get(t, 0) - idle.get(t, 0) / idle_s * wall) / args.requests
                           for t in busy.keys() | idle.keys()}  # fmt: skip
                    loop[name].append(per.get(1, 0.0))
                    other[name].append(sum(v for t, v in per.items() if t != 1))
                    raw[name].append(busy.get(1, 0) / args.requests)
                    print(f"round {i + 1} {name}: loop {per.get(1, 0.0):,.0f} ({raw[name][-1]:,.0f} "
                          f"before the idle rate is taken off), other threads "
                          f"{other[name][-1]:,.0f} instructions a request (pass {wall:.1f} s; "
                          f"idle: loop {idle.get(1, 0) / idle_s:,.0f}, all "
                          f"{sum(idle.values()) / idle_s:,.0f} a second)", flush=True)  # fmt: skip
                    print(f"    its dump: {out}/cg.{pid}.*: the last one a thread", flush=True)
    for name in loop:
        lo, ot = loop[name], other[name]
        print(f"{name}: loop thread {statistics.median(lo):,.0f} ({min(lo):,.0f} … "
              f"{max(lo):,.0f}), other threads {statistics.median(ot):,.0f} ({min(ot):,.0f} … "
              f"{max(ot):,.0f}) instructions a request, medians of {len(lo)} rounds")  # fmt: skip
    if "before" in loop:
        for what, got in (("idle rate taken off", loop), ("as counted", raw)):
            d = [a - b for a, b in zip(got["this"], got["before"], strict=True)]
            print(f"this − before, loop thread ({what}), per round: median "
                  f"{statistics.median(d):+,.0f} ({min(d):+,.0f} … {max(d):+,.0f}) instructions "
                  f"a request; {statistics.median(d) / statistics.median(got['before']) * 100:+.1f} %"
                  )  # fmt: skip
    print(f"callgrind's files: {out}")


if __name__ == "__main__":
    main()
