"""What open dashboards cost the request path: the gateway's added latency with and without them.

Method: one local mesh (registry+gateway and one registered ``sim`` node, separate
processes, loopback, throw-away LLM_MESH_HOME) and a second ``sim`` node started with
``register = false`` (the direct baseline, as in ``bench_gateway.py``). The sim engine is
SIMULATED and answers at once (``max_tokens`` 1), so what is measured is the HTTP path.

The dashboards: a separate process (so their client work does not share the load
generator's interpreter) runs ``--dashboards`` (10) pollers, each doing what an open
overview page does — its first load (the page, the whole hour's series), then every
``--every`` seconds (5, the page's own period) the overview fragment and the series
since its last bucket — staggered over the period. They are the HTTP requests a browser
tab makes (the browsers' own CPU is not the gateway's cost, so no browser runs here).

Phases, interleaved in chunks in rotating order so drift on the shared box hits each alike:

  quiet    no dashboard polls
  watched  10 dashboards polling at their real period (4 requests/s to the gateway)
  stress   the same 10 polling ``--stress-every`` (0.5 s: 40 requests/s), to show the scale

In each chunk the load generator sends requests one at a time (``httpx.Client``,
keep-alive), alternating gateway and direct node; added latency = percentile(gateway) -
percentile(direct) within the phase. The registry process's CPU time (``/proc``) over
each phase's chunks gives its CPU share. Reported: added p50 and p99 per phase, and the
ratio of each phase's added p50 to the quiet one's, measured in the same run.

    .venv/bin/python benchmarks/bench_dashboard.py [--requests 3000] [--chunks 6]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import httpx
from _common import (
    local_mesh,
    log,
    machine_line,
    pct,
    registry_pid,
    standalone_node,
    write_json,
)

MODEL = "mistral-7b"
SIM = ["--sim-ttft-s", "0", "--sim-tokens-per-s", "1000000"]
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 1}
PHASES = ("quiet", "watched", "stress")


def _dashboard(base: str, index: int, n: int, period: Synchronized, stop: Any,
               served: Synchronized, failed: Synchronized) -> None:  # fmt: skip
    """One open overview page: first load, then the fragment and the new series points."""
    since: float | None = None
    due = 0.0
    opened = False
    with httpx.Client(base_url=base, timeout=10.0) as c:
        while not stop.is_set():
            every = period.value
            if every <= 0:
                since, opened = None, False  # closed: when it opens again, a first load
                time.sleep(0.05)
                continue
            now = time.monotonic()
            if not opened:  # opening: staggered over the period, as tabs opened apart
                due, opened = now + every * index / n, True
            if now < due:
                time.sleep(min(due - now, 0.05))
                continue
            due += every
            try:
                if since is None:
                    paths = ["/dashboard/", "/dashboard/api/series"]
                else:
                    paths = ["/dashboard/fragment/overview", f"/dashboard/api/series?since={since}"]
                for path in paths:
                    r = c.get(path)
                    with served.get_lock():
                        served.value += 1
                    if r.status_code != 200:
                        raise httpx.HTTPStatusError("bad", request=r.request, response=r)
                    if "series" in path:
                        since = r.json()["points"]["t"][-1]
            except httpx.HTTPError:
                with failed.get_lock():
                    failed.value += 1


def _pollers(base: str, n: int, period: Synchronized, stop: Any, served: Synchronized,
             failed: Synchronized) -> None:  # fmt: skip
    threads = [
        threading.Thread(target=_dashboard, args=(base, i, n, period, stop, served, failed))
        for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    gateway: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    dashboard_requests: int = 0
    errors: int = 0


def _chunk(gw: httpx.Client, direct: httpx.Client, n: int, ph: Phase) -> None:
    for _ in range(n):
        for client, into in ((gw, ph.gateway), (direct, ph.direct)):
            t0 = time.perf_counter()
            r = client.post("/v1/chat/completions", json=BODY)
            dt = time.perf_counter() - t0
            if r.status_code == 200:
                into.append(dt)
            else:
                ph.errors += 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    with local_mesh(model=MODEL, engine="sim", node_args=SIM) as mesh, \
            standalone_node(model=MODEL, engine="sim", node_args=SIM) as direct_url:  # fmt: skip
        gateway_pid = registry_pid(mesh)
        period = mp.Value("d", 0.0)
        served = mp.Value("q", 0)
        failed = mp.Value("q", 0)
        stop = mp.Event()
        poller = mp.Process(
            target=_pollers,
            args=(mesh.registry_url, args.dashboards, period, stop, served, failed),
            daemon=True,
        )
        poller.start()
        phases = {name: Phase() for name in PHASES}
        periods = {"quiet": 0.0, "watched": args.every, "stress": args.stress_every}
        per_chunk = max(1, args.requests // args.chunks)
        try:
            with httpx.Client(base_url=mesh.registry_url, timeout=30) as gw, \
                    httpx.Client(base_url=direct_url, timeout=30) as direct:  # fmt: skip
                log("  warm-up")
                _chunk(gw, direct, 200, Phase())
                for k in range(args.chunks):
                    order = PHASES[k % 3 :] + PHASES[: k % 3]
                    for name in order:
                        ph = phases[name]
                        period.value = periods[name]
                        time.sleep(args.settle_s)  # dashboards open (first load) or close
                        s0, c0, t0 = served.value, _cpu_s(gateway_pid), time.monotonic()
                        _chunk(gw, direct, per_chunk, ph)
                        ph.wall_s += time.monotonic() - t0
                        ph.cpu_s += _cpu_s(gateway_pid) - c0
                        ph.dashboard_requests += served.value - s0
                    log(f"  chunk {k + 1}/{args.chunks} done")
        finally:
            period.value = 0.0
            stop.set()
            poller.join(30)
        out: dict[str, Any] = {"dashboards": args.dashboards, "every_s": args.every,
                               "stress_every_s": args.stress_every,
                               "dashboard_failures": failed.value, "phases": {}}  # fmt: skip
        for name, ph in phases.items():
            g, d = sorted(ph.gateway), sorted(ph.direct)
            out["phases"][name] = {
                "n": len(g),
                "errors": ph.errors,
                "gateway_p50_ms": pct(g, 0.5) * 1e3,
                "gateway_p99_ms": pct(g, 0.99) * 1e3,
                "direct_p50_ms": pct(d, 0.5) * 1e3,
                "direct_p99_ms": pct(d, 0.99) * 1e3,
                "added_p50_ms": (pct(g, 0.5) - pct(d, 0.5)) * 1e3,
                "added_p99_ms": (pct(g, 0.99) - pct(d, 0.99)) * 1e3,
                "registry_cpu_share": ph.cpu_s / ph.wall_s if ph.wall_s else float("nan"),
                "dashboard_req_per_s": ph.dashboard_requests / ph.wall_s if ph.wall_s else 0.0,
            }
        quiet = out["phases"]["quiet"]["added_p50_ms"]
        for name in PHASES:
            p = out["phases"][name]
            p["added_p50_vs_quiet"] = p["added_p50_ms"] / quiet if quiet > 0 else float("nan")
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="gateway requests per phase")
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--dashboards", type=int, default=10)
    ap.add_argument("--every", type=float, default=5.0, help="a dashboard's polling period, s")
    ap.add_argument("--stress-every", type=float, default=0.5)
    ap.add_argument("--settle-s", type=float, default=1.0)
    args = ap.parse_args()
    log(f"bench_dashboard: {machine_line()}")
    out = run(args)
    print(f"# gateway added latency with and without open dashboards ({machine_line()})")
    print("direct = an unregistered node called directly (no signature to verify); "
          "gateway = gateway -> registered node (signed and verified)")  # fmt: skip
    print(f"{args.dashboards} dashboards; requests one at a time, gateway and direct alternating; "
          f"{args.requests} per phase in {args.chunks} interleaved chunks")  # fmt: skip
    print()
    print("| phase | dashboard req/s | gateway p50 ms | direct p50 ms | added p50 ms | "
          "added p99 ms | added p50 vs quiet | registry CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in PHASES:
        p = out["phases"][name]
        print(
            f"| {name} | {p['dashboard_req_per_s']:.1f} | {p['gateway_p50_ms']:.3f} | "
            f"{p['direct_p50_ms']:.3f} | {p['added_p50_ms']:.3f} | {p['added_p99_ms']:.3f} | "
            f"{p['added_p50_vs_quiet']:.2f}x | {100 * p['registry_cpu_share']:.1f} % |"
        )
    print(f"\ndashboard poll failures: {out['dashboard_failures']}; request errors: "
          f"{sum(p['errors'] for p in out['phases'].values())}")  # fmt: skip
    path = write_json("dashboard", out)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
