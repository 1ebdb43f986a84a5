"""Failover under load, with real processes on loopback.

A registry + gateway and 5 ``sim`` nodes (mistral-7b, ttft 0.05 s, 200 tokens/s,
heartbeat 1 s) run as separate processes. A bounded load generator keeps
``--concurrency`` non-streaming completions in flight for ``--seconds``; at
``--kill-at`` it kills two nodes with SIGKILL. Reported: failed requests, p50/p99
latency before and after the kill, the p99 added by failover, how long until the
dead nodes left routing (ejected or not routable in ``GET /mesh/nodes``), and one
stream whose node is killed mid-way (does it continue on another node?).

    .venv/bin/python benchmarks/bench_failover.py [--seconds 20 --concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import operator_token

from LLM_Mesh.node.keys import load_or_create_key

MODEL = "mistral-7b"
HOST = "127.0.0.1"
KILL_AFTER = 10  # stream chunks before its node is killed


def spawn(
    args: list[str], home: Path, name: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``llm-mesh ARGS`` as its own process, logging to HOME/NAME.log."""
    env = dict(os.environ, LLM_MESH_HOME=str(home), LLM_MESH_HEARTBEAT_S="1",
               PYTHONUNBUFFERED="1", **(extra_env or {}))  # fmt: skip
    log = (home / f"{name}.log").open("wb")
    cmd = [sys.executable, "-m", "LLM_Mesh.cli", *args]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


async def wait_nodes(client: httpx.AsyncClient, url: str, n: int, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            nodes = (await client.get(url + "/mesh/nodes")).json()["nodes"]
            if sum(1 for v in nodes if v["healthy"]) >= n:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{n} nodes did not come up within {timeout_s} s")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    reg_url = f"http://{HOST}:{args.port}"
    procs: dict[str, subprocess.Popen[bytes]] = {}  # by node id (and "registry")
    args.node_ids = {}  # n1..n5 -> node id
    (base / "registry").mkdir()
    token = {
        "LLM_MESH_OPERATOR_TOKEN": await asyncio.to_thread(operator_token, base / "registry")
    }  # nodes register
    procs["registry"] = spawn(["registry", "serve", "--host", HOST, "--port", str(args.port),
                               "--allow-private-nodes", "--anonymous-rpm", "0"],
                              base / "registry", "registry")  # fmt: skip
    for i in range(1, 6):
        home = base / f"n{i}"
        home.mkdir()
        # a node's id derives from its key: make the key now to know which process is which
        node_id = load_or_create_key(home / "node.key").node_id
        args.node_ids[f"n{i}"] = node_id
        procs[node_id] = spawn(
            ["node", "start", "--engine", "sim", "--model", MODEL, "--sim-ttft-s", "0.05",
             "--sim-tokens-per-s", "200", "--port", str(args.port + i), "--registry", reg_url,
             "--max-concurrency", "8", "--max-queue", "16"],
            home, f"n{i}", token,
        )  # fmt: skip
    out: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=200)
    try:
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            await wait_nodes(client, reg_url, 5)
            out.update(await load_phase(client, reg_url, procs, args))
            out["stream"] = await stream_phase(client, reg_url, procs)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return out


async def load_phase(client: httpx.AsyncClient, url: str,
                     procs: dict[str, subprocess.Popen[bytes]], args: argparse.Namespace
                     ) -> dict[str, Any]:  # fmt: skip
    t0 = time.monotonic()
    stop = t0 + args.seconds
    results: list[tuple[float, float, int, int]] = []  # (start, latency, status, attempts)
    kill_at: list[float] = []
    body = {"model": MODEL, "prompt": "count with me:", "max_tokens": 20}

    async def worker() -> None:
        while time.monotonic() < stop:
            s = time.monotonic()
            try:
                r = await client.post(url + "/v1/completions", json=body)
                status = r.status_code
                attempts = r.json().get("mesh", {}).get("attempts", 0) if status == 200 else 0
            except httpx.HTTPError:
                status, attempts = 0, 0
            results.append((s - t0, time.monotonic() - s, status, attempts))

    async def killer() -> None:
        await asyncio.sleep(args.kill_at)
        for name in ("n1", "n2"):
            procs[args.node_ids[name]].send_signal(signal.SIGKILL)
        kill_at.append(time.monotonic() - t0)

    async def watcher() -> dict[str, float]:
        gone: dict[str, float] = {}
        while time.monotonic() < stop and len(gone) < 2:
            await asyncio.sleep(0.05)
            if not kill_at:
                continue
            nodes = (await client.get(url + "/mesh/nodes")).json()["nodes"]
            for v in nodes:
                out_of_routing = v.get("ejected") or not v.get("routable", True) or not v["healthy"]
                name = {i: n for n, i in args.node_ids.items()}.get(v["node_id"])
                if name in ("n1", "n2") and out_of_routing and name not in gone:
                    gone[name] = time.monotonic() - t0 - kill_at[0]
        return gone

    _, _, gone = await asyncio.gather(
        asyncio.gather(*(worker() for _ in range(args.concurrency))), killer(), watcher()
    )
    k = kill_at[0]
    ok_before = [lat for s, lat, st, _ in results if st == 200 and s < k]
    ok_after = [lat for s, lat, st, _ in results if st == 200 and s >= k]
    failover = [lat for s, lat, st, a in results if st == 200 and a > 1]
    base_p99 = pct(ok_before, 99)
    return {
        "requests": len(results),
        "failed": sum(1 for r in results if r[2] != 200),
        "failed_statuses": sorted({r[2] for r in results if r[2] != 200}),
        "failed_over": len(failover),
        "kill_at_s": round(k, 3),
        "p50_before_ms": round(pct(ok_before, 50) * 1000, 1),
        "p99_before_ms": round(base_p99 * 1000, 1),
        "p50_after_ms": round(pct(ok_after, 50) * 1000, 1),
        "p99_after_ms": round(pct(ok_after, 99) * 1000, 1),
        "failover_p99_ms": round(pct(failover, 99) * 1000, 1) if failover else None,
        "failover_p99_added_ms": round((pct(failover, 99) - pct(ok_before, 50)) * 1000, 1)
        if failover
        else None,
        "left_routing_after_s": {n: round(t, 3) for n, t in sorted(gone.items())},
    }


async def stream_phase(client: httpx.AsyncClient, url: str,
                       procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, Any]:  # fmt: skip
    body = {"model": MODEL, "prompt": "a long story:", "max_tokens": 300, "stream": True}
    text: list[str] = []
    ids: set[str] = set()
    final: dict[str, Any] = {}
    killed = None
    errors: list[Any] = []
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        node = r.headers.get("x-mesh-node")
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            obj = json.loads(line[6:])
            if "error" in obj:
                errors.append(obj["error"])
                continue
            ids.add(obj.get("id", ""))
            if obj.get("choices"):
                text.append(obj["choices"][0].get("text") or "")
            if obj.get("usage"):
                final = obj
            if len(text) == KILL_AFTER and killed is None and node in procs:
                procs[node].send_signal(signal.SIGKILL)
                killed = node
    mesh = final.get("mesh", {})
    return {
        "first_node": node, "killed": killed, "killed_after_chunks": KILL_AFTER if killed else None,
        "chunks": len(text), "ids": sorted(ids), "errors": errors,
        "completion_tokens": final.get("usage", {}).get("completion_tokens"),
        "finished_on": mesh.get("node_id"), "failover_from": mesh.get("failover_from"),
        "continued": bool(mesh.get("continued")) and not errors,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--kill-at", type=float, default=8.0)
    ap.add_argument("--port", type=int, default=18900)
    args = ap.parse_args(argv)
    if not 0 < args.kill_at < args.seconds or not 1 <= args.concurrency <= 200:
        raise SystemExit("need 0 < kill-at < seconds and 1 <= concurrency <= 200")
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
