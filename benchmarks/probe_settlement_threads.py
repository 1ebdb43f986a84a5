"""Settlement's CPU per request in the gateway process, per thread: on, off and a baseline tree.

Three local meshes (registry+gateway and a registered SIMULATED ``sim`` node each, as in
``bench_settlement.py``): ``on`` (settlement on, this tree), ``off``
(``LLM_MESH_SETTLEMENT=0``) and ``on-before`` (settlement on, the tree given as BASELINE,
e.g. ``git archive COMMIT | tar -x -C DIR``). ROUNDS rounds, in rotating order, of N
requests one at a time to each gateway (after 50 warm-up requests); after each, 0.3 s for
the settler's round, then the CPU time of every thread of the gateway process
(``/proc/PID/task/*/stat``) is read. Printed: CPU µs per request of the event loop's
thread and of all threads, and the latency p50, per gateway; and on - off, on-before -
off. CPU time is less moved than latency by other work on a shared box.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_settlement_threads.py N ROUNDS BASELINE
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import time

import bench_gateway as bg
import httpx
from _common import local_mesh, make_api_key, source_tree
from bench_settlement import settlement_env


def thread_cpu_s(pid: int) -> dict[str, float]:
    out = {}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(t + "/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[t.rsplit("/", 1)[1]] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main() -> None:
    n, rounds, base = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    node_args = ["--sim-ttft-s", "0", "--sim-tokens-per-s", "1000000",
                 "--max-concurrency", "64", "--max-queue", "64"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        meshes = {}
        for mode in ("on", "off", "on-before"):
            tree = source_tree(base) if mode == "on-before" else contextlib.nullcontext()
            with settlement_env(mode != "off"), tree:
                meshes[mode] = stack.enter_context(
                    local_mesh(model=bg.MODEL, engine="sim", node_args=node_args)
                )
        keys = {m: make_api_key(x.settings.home) for m, x in meshes.items()}
        tot = {m: [0.0, 0.0, 0] for m in meshes}  # loop thread CPU, all threads, requests
        lat: dict[str, list[float]] = {m: [] for m in meshes}
        with httpx.Client(timeout=30) as c:
            for rnd in range(rounds):
                order = list(meshes.items())
                order = order[rnd % 3 :] + order[: rnd % 3]
                for mode, mesh in order:
                    pid = mesh._children[0].proc.pid
                    url = mesh.registry_url + "/v1/chat/completions"
                    h = {"Authorization": f"Bearer {keys[mode]}"}
                    for _ in range(50):
                        c.post(url, json=bg.BODY, headers=h)
                    a = thread_cpu_s(pid)
                    for _ in range(n):
                        t0 = time.perf_counter()
                        c.post(url, json=bg.BODY, headers=h).raise_for_status()
                        lat[mode].append(time.perf_counter() - t0)
                    time.sleep(0.3)  # the settler's round
                    b = thread_cpu_s(pid)
                    tot[mode][0] += b.get(str(pid), 0) - a.get(str(pid), 0)
                    tot[mode][1] += sum(b[t] - a.get(t, 0) for t in b)
                    tot[mode][2] += n + 50
    print(f"load average {os.getloadavg()}; SIMULATED sim nodes")
    for m, (loop_s, all_s, k) in tot.items():
        xs = sorted(lat[m])
        print(f"{m:<10} gateway CPU µs/request: event loop thread {loop_s / k * 1e6:6.0f}, all "
              f"threads {all_s / k * 1e6:6.0f}; latency p50 {xs[len(xs) // 2] * 1e3:.3f} ms "
              f"({len(xs)} requests)")  # fmt: skip
    off = tot["off"]
    for m in ("on", "on-before"):
        t = tot[m]
        print(f"{m} - off: all threads {(t[1] / t[2] - off[1] / off[2]) * 1e6:+.0f} µs/request, "
              f"event loop thread {(t[0] / t[2] - off[0] / off[2]) * 1e6:+.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
