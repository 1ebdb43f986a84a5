"""What the metrics and the request log line cost the gateway: on vs off, in one run.

Method: four local meshes (each a registry+gateway and one registered ``sim`` node,
separate processes, loopback, throw-away LLM_MESH_HOME), identical but for the
environment both processes were started with, and one unregistered ``sim`` node called
directly (the baseline, as in ``bench_gateway.py``). The sim engine is SIMULATED: it
answers at once (``--sim-ttft-s 0``, 10^6 tokens/s, ``max_tokens`` 1), so what is
measured is the HTTP path:

  direct   the unregistered node, called directly
  off      ``LLM_MESH_METRICS=0 LLM_MESH_LOG_REQUESTS=0``: no /metrics, no counting, no line
  metrics  metrics on (the default), no request line
  all      metrics on and one request line per request on both sides (the default), JSON
           (``LLM_MESH_LOG_FORMAT=json``), written to the process's log file
  off2     a second mesh exactly like ``off``: how far two identical meshes differ in this
           run (the noise floor any difference above must clear)

Phase 0 times the hooks alone: exactly the calls one answered request adds to the gateway
(its metric updates; its JSON request line written to a file) and to the node (its metric
updates), called directly many times: CPU µs per request, little affected by the box.

Every gateway target gets the same client API key of its own (no limits). Phases, each
interleaved over the targets in rotating order (chunks, so drift on the shared machine
hits every target alike), after a warm-up of every target:

  1. one at a time: ``--sequential`` requests per target (one keep-alive httpx.Client);
     latency from ``time.perf_counter`` around each call, and the CPU time the gateway
     process and its node process used (``/proc/PID/stat``, utime + stime) per request;
  2. ``--concurrency`` at once, ``--concurrent`` requests per target: requests/s.

  3. in process (``--inprocess``, default 20 rounds of 300): the gateway app alone, called
     through ``httpx.ASGITransport`` with a MockTransport node (``tests/registry/helpers.py``),
     three apps (off; metrics only; metrics and request lines, JSON, to a file) in rotating
     order each round; CPU time of this process per request
     (``time.process_time``): no sockets, no other process, so far less of the shared box's
     noise than the wall clock of phases 1–2.

Added p50 = p50(target) - p50(direct). The metrics' cost is reported as ratios measured
in this run: added p50 of ``metrics`` and ``all`` over ``off``, and gateway CPU per request
of each over ``off``. Each gateway is scraped at the end to check its counters saw every
request (``metrics`` and ``all``) and that ``off`` has no /metrics.

    .venv/bin/python benchmarks/bench_metrics.py [--sequential 2000] [--concurrent 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from _common import SIM_FAST_NODE_ARGS as NODE_ARGS
from _common import (
    environ,
    keyed_headers,
    local_mesh,
    log,
    machine_line,
    pct,
    standalone_node,
    write_json,
)
from bench_gateway import (
    BODY,
    HEADERS_BY_URL,
    MODEL,
    Series,
    _async_client,
    _run,
    check,
    rotations,
    run_concurrent,
    run_sequential,
)

CHUNKS = 5  # interleaved chunks per phase (bench_gateway's --chunks default)

CONFIGS: dict[str, dict[str, str]] = {
    "off": {"LLM_MESH_METRICS": "0", "LLM_MESH_LOG_REQUESTS": "0"},
    "off2": {"LLM_MESH_METRICS": "0", "LLM_MESH_LOG_REQUESTS": "0"},  # A/A: the noise floor
    "metrics": {"LLM_MESH_METRICS": "1", "LLM_MESH_LOG_REQUESTS": "0"},
    "all": {"LLM_MESH_METRICS": "1", "LLM_MESH_LOG_REQUESTS": "1", "LLM_MESH_LOG_FORMAT": "json"},
}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Cpu:
    gateway_s: float = 0.0
    node_s: float = 0.0
    requests: int = 0


@dataclass
class Target:
    url: str
    pids: tuple[int, int] | None = None  # (gateway, node)
    cpu: Cpu = field(default_factory=Cpu)


def bench(targets: dict[str, Target], args: Any) -> dict[str, dict[str, Series]]:
    seq = {name: Series() for name in targets}
    conc = {name: Series() for name in targets}
    with httpx.Client(timeout=30.0) as client:
        for name, t in targets.items():
            check(client, name, t.url)
        log("warm-up (one at a time)")
        for t in targets.values():
            run_sequential(client, t.url, args.warmup, Series())
        log(f"phase 1: one at a time, {args.sequential} per target in {CHUNKS} chunks")
        urls = {name: t.url for name, t in targets.items()}
        for order in rotations(urls, CHUNKS):
            for name, url in order:
                t = targets[name]
                before = [cpu_s(p) for p in t.pids] if t.pids else None
                n0 = seq[name].n + seq[name].errors
                run_sequential(client, url, args.sequential // CHUNKS, seq[name])
                if t.pids and before:
                    t.cpu.gateway_s += cpu_s(t.pids[0]) - before[0]
                    t.cpu.node_s += cpu_s(t.pids[1]) - before[1]
                    t.cpu.requests += seq[name].n + seq[name].errors - n0
            log("  " + ", ".join(f"{k} {pct(sorted(seq[k].lat_s), 0.5) * 1e3:.2f} ms"
                                 for k in targets))  # fmt: skip

    async def phase2() -> None:
        limits = httpx.Limits(max_connections=args.concurrency)
        async with _async_client(args.concurrency, limits) as ac:
            for t in targets.values():
                await run_concurrent(ac, t.url, args.warmup, args.concurrency, Series())
            log(f"phase 2: {args.concurrency} concurrent, {args.concurrent} per target")
            for order in rotations(urls, CHUNKS):
                for name, url in order:
                    await run_concurrent(
                        ac, url, args.concurrent // CHUNKS, args.concurrency, conc[name]
                    )

    _run(phase2)
    return {"sequential": seq, "concurrent": conc}


def stats(s: Series) -> dict[str, float]:
    xs = sorted(s.lat_s)
    return {
        "n": s.n,
        "errors": s.errors,
        "p50_ms": pct(xs, 0.5) * 1e3,
        "p90_ms": pct(xs, 0.9) * 1e3,
        "p99_ms": pct(xs, 0.99) * 1e3,
        "rps": s.n / s.wall_s if s.wall_s else float("nan"),
    }


def scrape_counts(targets: dict[str, Target]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, t in targets.items():
        if t.pids is None:
            continue
        r = httpx.get(t.url + "/metrics", timeout=10)
        if r.status_code != 200:
            out[name] = f"/metrics answered {r.status_code}"
            continue
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for fam in text_string_to_metric_families(r.text):
            for sample in fam.samples:
                if sample.name == "llm_mesh_gateway_requests_total":
                    total += sample.value
        out[name] = total
    return out


def hooks(repeats: int = 10, n: int = 20000) -> dict[str, float]:
    """Phase 0: CPU µs of exactly what one answered request adds, called directly, median of
    ``repeats`` runs of ``n``: the gateway's metric updates (``Telemetry.request`` with its
    metrics, one failover step, one attempt), its JSON request line to a file, and the
    node's metric updates and line."""
    import logging
    import statistics
    import sys
    import tempfile
    from datetime import datetime, timezone
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from LLM_Mesh.core.balancer import Router
    from LLM_Mesh.core.catalog import get_spec
    from LLM_Mesh.core.failover import Action, Step, Stop
    from LLM_Mesh.core.pricing import request_cost
    from LLM_Mesh.core.route_types import Outcome
    from LLM_Mesh.logs import JsonFormatter
    from LLM_Mesh.node.metrics import NodeMetrics
    from LLM_Mesh.registry.demand import DemandTracker
    from LLM_Mesh.registry.job import Job
    from LLM_Mesh.registry.metrics import GatewayMetrics
    from LLM_Mesh.registry.node_table import NodeTable
    from LLM_Mesh.registry.ports import RequestRecord
    from LLM_Mesh.registry.telemetry import Telemetry

    spec = get_spec(MODEL)
    assert spec is not None, MODEL
    cost = request_cost(spec.price, 12, 1)  # µNT, a whole number
    job = Job(path="/v1/chat/completions", model=MODEL, body={}, raw=b"", stream=False,
              prompt_text="", max_tokens=1, price=spec.price, estimate=cost,
              catalog_context=spec.context_length, request_id="req-" + "0" * 32,
              started=0.0)  # fmt: skip
    rec = RequestRecord(request_id=job.request_id, node_id="node-" + "a" * 26, model=MODEL,
                        stream=False, outcome="ok", error_code=None, prompt_tokens=12,
                        completion_tokens=1, latency_ms=3.2, ttft_ms=2.9, cost=cost,
                        created_at=datetime.now(timezone.utc))  # fmt: skip
    step = Step(rec.node_id, Outcome.SUCCESS, Action.STOP, Stop.SUCCEEDED)
    gm = GatewayMetrics(NodeTable(30.0), Router(), DemandTracker(time.monotonic))
    with_metrics, lines_only = Telemetry(gm, log_requests=False), Telemetry(None, True)

    class _Svc:  # what NodeMetrics' scrape-time collector would read; never read here
        pass

    nm = NodeMetrics(_Svc())  # type: ignore[arg-type]

    def gateway_metrics() -> None:
        with_metrics.request(job, rec, status=200, attempts=1, latency_ms=3.2)
        gm.step(step)
        gm.attempt(rec.node_id or "", Outcome.SUCCESS, False)

    def gateway_line() -> None:
        lines_only.request(job, rec, status=200, attempts=1, latency_ms=3.2)

    def node_metrics() -> None:
        nm.generation(MODEL, "ok", "", latency_s=0.0012, wait_s=0.00001, ttft_s=0.0009,
                      completion_tokens=1)  # fmt: skip

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        handler = logging.FileHandler(Path(d) / "lines.jsonl")
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            for name, fn in (("gateway_metrics", gateway_metrics), ("gateway_line", gateway_line),
                             ("node_metrics", node_metrics)):  # fmt: skip
                runs = []
                for _ in range(repeats):
                    c0 = time.process_time()
                    for _ in range(n):
                        fn()
                    runs.append((time.process_time() - c0) / n * 1e6)
                out[name] = statistics.median(runs)
        finally:
            root.removeHandler(handler)
            handler.close()
    return out


PHASE3: dict[str, dict[str, bool]] = {
    "off": {"metrics": False, "log_requests": False},
    "metrics": {"metrics": True, "log_requests": False},
    "all": {"metrics": True, "log_requests": True},
}


def inprocess(rounds: int, per_round: int) -> dict[str, list[float]]:
    """Phase 3: CPU µs per request of the gateway app in this process: off, metrics only,
    metrics and JSON request lines (to a file), in rotating order each round."""
    import asyncio
    import logging
    import statistics
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from LLM_Mesh.logs import JsonFormatter
    from tests.registry.helpers import running  # the app with a MockTransport node

    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Say hi"}]}
    out: dict[str, list[float]] = {name: [] for name in PHASE3}

    async def go() -> None:
        with tempfile.TemporaryDirectory() as d:
            handler = logging.FileHandler(Path(d) / "lines.jsonl")
            handler.setFormatter(JsonFormatter())
            root = logging.getLogger()
            root.addHandler(handler)
            root.setLevel(logging.INFO)
            logging.getLogger("httpx").setLevel(logging.WARNING)  # as setup_logging does
            try:
                async with contextlib.AsyncExitStack() as stack:
                    apps = {
                        name: await stack.enter_async_context(running(Path(d) / name, **kw))
                        for name, kw in PHASE3.items()
                    }
                    for h in apps.values():
                        await h.register("n1")
                        for _ in range(100):  # warm-up
                            await h.client.post("/v1/chat/completions", json=body)
                    names = list(apps)
                    for i in range(rounds):
                        k = i % len(names)
                        for name in names[k:] + names[:k]:
                            h = apps[name]
                            c0 = time.process_time()
                            for _ in range(per_round):
                                r = await h.client.post("/v1/chat/completions", json=body)
                                assert r.status_code == 200
                            out[name].append((time.process_time() - c0) / per_round * 1e6)
            finally:
                root.removeHandler(handler)
                handler.close()

    asyncio.run(go())
    for name, xs in out.items():
        log(f"  in process {name}: median {statistics.median(xs):.0f} µs/request")
    return out


def processes(args: Any) -> tuple[Any, Any, Any, Any, Any]:
    """Phases 1-2: the meshes as processes (see the module docstring)."""
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        direct = stack.enter_context(
            standalone_node(model=MODEL, engine="sim", node_args=NODE_ARGS)
        )
        targets["direct"] = Target(direct)
        for name, values in CONFIGS.items():
            with environ(values):  # while the mesh's processes start (they inherit it)
                mesh = stack.enter_context(
                    local_mesh(model=MODEL, engine="sim", node_args=NODE_ARGS)
                )
            HEADERS_BY_URL[mesh.registry_url] = keyed_headers(mesh)
            pids = (mesh._children[0].proc.pid, mesh._children[1].proc.pid)
            targets[name] = Target(mesh.registry_url, pids)
            log(f"  {name}: {mesh.registry_url} {values}")
        print(f"targets: {', '.join(targets)}; {args.sequential} one at a time, "
              f"{args.concurrent} at {args.concurrency} concurrent per target; body {BODY}\n")  # fmt: skip
        t0 = time.time()
        res = bench(targets, args)
        counted = scrape_counts(targets)
        print(f"measured in {time.time() - t0:.0f} s")
    seq = {k: stats(v) for k, v in res["sequential"].items()}
    conc = {k: stats(v) for k, v in res["concurrent"].items()}
    d = seq["direct"]["p50_ms"]
    print("\none at a time")
    print(f"{'target':<8} {'n':>5} {'err':>4} {'p50 ms':>7} {'p99 ms':>7} {'+p50 ms':>8} "
          f"{'gw CPU µs/req':>14} {'node CPU µs/req':>16}")  # fmt: skip
    cpu: dict[str, dict[str, float]] = {}
    for name, t in targets.items():
        s = seq[name]
        add = f"{s['p50_ms'] - d:>8.3f}" if name != "direct" else f"{'':>8}"
        g = n = float("nan")
        if t.cpu.requests:
            g = t.cpu.gateway_s / t.cpu.requests * 1e6
            n = t.cpu.node_s / t.cpu.requests * 1e6
            cpu[name] = {"gateway_us_per_req": g, "node_us_per_req": n}
        print(f"{name:<8} {s['n']:>5} {s['errors']:>4} {s['p50_ms']:>7.3f} {s['p99_ms']:>7.3f} "
              f"{add} {g:>14.0f} {n:>16.0f}")  # fmt: skip
    print(f"\n{args.concurrency} concurrent")
    for name in targets:
        print(f"{name:<8} {conc[name]['rps']:>7.0f} req/s  p50 {conc[name]['p50_ms']:.2f} ms")
    off_add = seq["off"]["p50_ms"] - d
    ratios: dict[str, float] = {}
    print("\nresults (ratios within this run):")
    for name in ("off2", "metrics", "all"):
        add = seq[name]["p50_ms"] - d
        ratios[f"{name}_added_p50_ms"] = add
        ratios[f"{name}_minus_off_added_p50_ms"] = add - off_add
        ratios[f"{name}_over_off_gateway_cpu"] = (
            cpu[name]["gateway_us_per_req"] / cpu["off"]["gateway_us_per_req"]
        )
        ratios[f"{name}_over_off_rps"] = conc[name]["rps"] / conc["off"]["rps"]
        print(f"  {name}: added p50 {add:.3f} ms vs off {off_add:.3f} ms "
              f"({add - off_add:+.3f} ms); gateway CPU/request "
              f"{ratios[f'{name}_over_off_gateway_cpu']:.3f}x off; req/s at "
              f"{args.concurrency} concurrent {ratios[f'{name}_over_off_rps']:.3f}x off")  # fmt: skip
    print(f"  gateway requests counted at the end (scrape): {counted}")
    return seq, conc, cpu, ratios, counted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--inprocess", type=int, default=20, help="phase 3 rounds (0: skip)")
    ap.add_argument("--inprocess-requests", type=int, default=300, help="per round")
    ap.add_argument("--no-processes", action="store_true", help="skip phases 1-2")
    args = ap.parse_args()
    print(__doc__)
    print(machine_line())
    log("phase 0: the hooks alone")
    costs = hooks()
    print("phase 0, CPU per request of the hooks alone (median of 10 runs of 20,000): "
          + ", ".join(f"{k} {v:.1f} µs" for k, v in costs.items()) + "\n")  # fmt: skip
    if args.no_processes:
        seq: dict[str, Any] = {}
        conc: dict[str, Any] = {}
        cpu: dict[str, Any] = {}
        ratios: dict[str, float] = {}
        counted: dict[str, Any] = {}
    else:
        seq, conc, cpu, ratios, counted = processes(args)
    phase3: dict[str, Any] = {}
    if args.inprocess:
        import statistics

        log(f"phase 3: in process, {args.inprocess} rounds of {args.inprocess_requests}")
        cpu3 = inprocess(args.inprocess, args.inprocess_requests)
        off = statistics.median(cpu3["off"])
        phase3 = {"rounds": cpu3}
        print(f"  in process (gateway app alone, MockTransport node), CPU per request, median "
              f"of {args.inprocess} rounds: off {off:.0f} µs")  # fmt: skip
        for name in ("metrics", "all"):
            on = statistics.median(cpu3[name])
            # each round ran the configurations back to back: differences per round
            diffs = sorted(a - b for a, b in zip(cpu3[name], cpu3["off"], strict=True))
            q = [diffs[len(diffs) // 4], statistics.median(diffs), diffs[3 * len(diffs) // 4]]
            phase3[name] = {"median_us": on, "over_off": on / off, "diff_p25_p50_p75_us": q}
            print(f"    {name}: {on:.0f} µs = {on / off:.3f}x off; per-round difference "
                  f"median {q[1]:+.0f} µs (p25..p75 {q[0]:+.0f}..{q[2]:+.0f})")  # fmt: skip
    path = write_json("metrics", {"params": vars(args), "sequential": seq, "concurrent": conc,
                                  "cpu": cpu, "ratios": ratios, "counted": counted,
                                  "hooks": costs, "inprocess": phase3})  # fmt: skip
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
