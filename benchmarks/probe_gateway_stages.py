"""The gateway's event-loop CPU per request, stage by stage, under concurrent load.

Method: one local mesh per checkout given (registry+gateway and a registered ``sim`` node:
SIMULATED, the node settings of ``bench_gateway.py``), started with ``gw_stages/`` first on
``PYTHONPATH``: its ``sitecustomize`` wraps the functions named below (``--extra`` adds
more) to add up their thread CPU (a coroutine's steps only, not its waits) in the registry.
After a warm-up, ``--requests`` non-streamed chat requests, ``--concurrency`` at once
(aiohttp, the load of ``probe_gateway_concurrent.py``), go to each mesh in turn for
``--rounds`` rounds; printed per tree: the loop thread's CPU per request
(``/proc/PID/task/PID/schedstat``, wrappers included) and each function's inclusive µs
and calls per request. The wrappers cost ~1 µs a call: read the figures as shares of
the loop's CPU, and compare trees within one run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_gateway_stages.py TREE [TREE ...]
        [--requests 3000] [--rounds 2] [--concurrency 10] [--extra module:Class.method,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

from _common import keyed_headers, machine_line, registry_pid, signal_dump, sim_mesh
from probe_gateway_concurrent import load

HERE = Path(__file__).resolve().parent
STAGES = [
    "uvicorn.protocols.http.httptools_impl:RequestResponseCycle.run_asgi",
    "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.data_received",
    "LLM_Mesh.registry.pipeline:Pipeline.serve",
    "LLM_Mesh.registry.admit:Admission.run",
    "LLM_Mesh.registry.parse:build_job",
    "LLM_Mesh.registry.send:Exchange.complete",
    "LLM_Mesh.registry.send:Exchange.send",
    "LLM_Mesh.registry.send:forward_headers",
    "LLM_Mesh.registry.routing:Routing.pick",
    "LLM_Mesh.registry.routing:Routing.finish",
    "LLM_Mesh.registry.node_client:AiohttpNodeClient.post",
    "LLM_Mesh.registry.http1:_Conn._send",
    "LLM_Mesh.registry.http1:_Conn.data_received",
    "LLM_Mesh.registry.account:build_mesh",
    "LLM_Mesh.registry.account:make_receipt",
    "LLM_Mesh.registry.account:check_part",
    "LLM_Mesh.core.receipt:ReceiptSigner.countersign",
    "LLM_Mesh.registry.account:pay",
    "LLM_Mesh.registry.relay:json_answer",
    "LLM_Mesh.core.receipt:encode_header",
    "LLM_Mesh.hot_routes:_respond",
    "LLM_Mesh.hot_routes:_OneWrite.write",
    "LLM_Mesh.registry.account:record_answer",
    "LLM_Mesh.registry.account:_record",
    "LLM_Mesh.registry.request_log:RequestWriter.submit",
    "LLM_Mesh.registry.telemetry:Telemetry.request",
    "LLM_Mesh.registry.metrics:GatewayMetrics.request",
    "LLM_Mesh.logs:log_request",
    "LLM_Mesh.registry.settlement:Settlement._run_tick",
    "LLM_Mesh.registry.request_log:RequestWriter.flush",
]


def loop_cpu_us(pid: int) -> float:
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e3


def dump(pid: int, out: str) -> dict[str, list[int]]:
    return signal_dump(pid, signal.SIGUSR1, Path(f"{out}.{pid}.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--requests", type=int, default=3000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--extra", default="", help="more module:function or module:Class.method")
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    stages = STAGES + [s for s in args.extra.split(",") if s]
    out = str(Path(tempfile.mkdtemp(prefix="gw-stages-")) / "stages")
    os.environ["GW_STAGES"] = ",".join(stages)
    os.environ["GW_STAGES_OUT"] = out
    with contextlib.ExitStack() as stack:
        meshes: dict[str, tuple[str, dict[str, str], int]] = {}
        for tree in args.trees:
            m = sim_mesh(stack, tree, preload=HERE / "gw_stages")
            meshes[tree] = (m.registry_url + "/v1/chat/completions", keyed_headers(m),
                            registry_pid(m))  # fmt: skip
        for url, h, pid in meshes.values():
            asyncio.run(load(url, h, args.warmup, args.concurrency))
            dump(pid, out)  # zero the sums
        loop = dict.fromkeys(meshes, 0.0)
        wall = dict.fromkeys(meshes, 0.0)
        for i in range(args.rounds):
            for tree in list(meshes) if i % 2 == 0 else list(reversed(meshes)):
                url, h, pid = meshes[tree]
                c0, w0 = loop_cpu_us(pid), time.monotonic()
                asyncio.run(load(url, h, args.requests, args.concurrency))
                loop[tree] += loop_cpu_us(pid) - c0
                wall[tree] += time.monotonic() - w0
        print(machine_line())
        n = args.requests * args.rounds
        for tree, (_url, _h, pid) in meshes.items():
            sums = dump(pid, out)  # the settler's rounds after the last round are counted too
            print(f"\n== {tree}: loop {loop[tree] / n:.0f} µs/request (wrapped), "
                  f"{n / wall[tree]:.0f} req/s, {n} requests at {args.concurrency}")  # fmt: skip
            for name, (ns, calls) in sorted(sums.items(), key=lambda kv: -kv[1][0]):
                print(f"{ns / 1e3 / n:8.1f} µs {calls / n:6.2f} calls  {name}")


if __name__ == "__main__":
    main()
