"""Requests/s through 1, 2 and 3 registry replicas in front of the same sim nodes, one run.

Method: a throwaway PostgreSQL database (``LLM_MESH_BENCH_DB``, default
``llm_mesh_bench_replicas``); 3 ``llm-mesh registry serve`` processes on it (no anonymous
limit) and ``--nodes`` sim nodes (**simulated**: ``mistral-7b``, ttft 5 ms, 5,000
tokens/s, ``max_concurrency`` 64), every node given all three registry URLs. A load
generator (aiohttp, one process) keeps ``--concurrency`` non-streaming chat completions
(``max_tokens`` 8) in flight, spread round-robin over the first k gateways, for
``--seconds`` each; k = 1, 2, 3, then again 3, 2, 1 (each figure is the mean of its two
rounds, so a drift of the shared box during the run does not favour one k). Reported:
requests/s, p50/p99 latency and errors per k, and the ratios to k = 1. The processes are
stopped, the database dropped and their temporary folder (homes, logs) removed at the end,
also after an error or Ctrl-C.

    .venv/bin/python benchmarks/bench_replicas.py [--seconds 10 --concurrency 32 --nodes 3]
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
from _common import free_ports, machine_line, pct, pg_recreate, write_json

PG = os.environ.get("LLM_MESH_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/test"
DB = os.environ.get("LLM_MESH_BENCH_DB") or "llm_mesh_bench_replicas"
MODEL = "mistral-7b"


def _db_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG).set(database=name).render_as_string(hide_password=False)


async def _setup(home: Path, url: str) -> str:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
    from LLM_Mesh.registry.store import SqlStore

    async with SqlStore(url) as store:
        await ensure_admin_key(Settings(home=home, admin_key="lma_bench"), store)
        token = await add_operator(store, "bench")
    assert token is not None
    return token


def _spawn(args: list[str], home: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    e = dict(os.environ, LLM_MESH_HOME=str(home), LLM_MESH_HEARTBEAT_S="2", **env)
    home.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", *args], env=e, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait(pred: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


async def _load(urls: list[str], seconds: float, conc: int) -> dict[str, Any]:
    import aiohttp

    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    ).encode()
    ok = errors = 0
    lat: list[float] = []
    stop = time.monotonic() + seconds
    n = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:

        async def worker() -> None:
            nonlocal ok, errors, n
            while time.monotonic() < stop:
                url = urls[n % len(urls)] + "/v1/chat/completions"
                n += 1
                t0 = time.perf_counter()
                try:
                    async with s.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as r:
                        await r.read()
                        if r.status == 200:
                            ok += 1
                            lat.append(time.perf_counter() - t0)
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
    lat.sort()
    return {"ok": ok, "errors": errors, "rps": ok / seconds, "p50_ms": pct(lat, 0.5) * 1e3,
            "p99_ms": pct(lat, 0.99) * 1e3}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args(argv)
    print(__doc__.split("\n\n")[1], flush=True)
    with tempfile.TemporaryDirectory(prefix="llm-mesh-bench-replicas-") as tmp:
        asyncio.run(pg_recreate(_db_url("postgres"), DB, create=True))
        try:  # the database is this run's from here: dropped whatever happens
            return _run(args, Path(tmp), _db_url(DB))
        finally:
            asyncio.run(pg_recreate(_db_url("postgres"), DB, create=False))


def _run(args: argparse.Namespace, tmp: Path, db_url: str) -> int:
    """The replicas and nodes on ``db_url`` with their homes and logs in ``tmp``, the
    loads, the report; every process stopped before it returns or raises."""
    token = asyncio.run(_setup(tmp / "r0", db_url))
    rports = free_ports(3)
    nports = free_ports(args.nodes)
    urls = [f"http://127.0.0.1:{p}" for p in rports]
    from LLM_Mesh.registry.gateway_key import load_or_create_registry_key

    load_or_create_registry_key(tmp / "r0" / "registry.key")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, port in enumerate(rports):
            home = tmp / f"r{i}"
            home.mkdir(parents=True, exist_ok=True)
            if i:
                (home / "registry.key").write_bytes((tmp / "r0" / "registry.key").read_bytes())
                os.chmod(home / "registry.key", 0o600)
            procs.append(_spawn(
                ["registry", "serve", "--port", str(port), "--database-url", db_url,
                 "--allow-private-nodes", "--anonymous-rpm", "0"],
                home, tmp / f"r{i}.log", LLM_MESH_ADMIN_KEY="lma_bench",
            ))  # fmt: skip
        for u in urls:
            _wait(lambda u=u: httpx.get(u + "/healthz", timeout=2).status_code == 200, 60, u)
        for j, port in enumerate(nports):
            procs.append(_spawn(
                ["node", "start", "--registry", ",".join(urls), "--port", str(port),
                 "--no-config", "--engine", "sim", "--model", MODEL, "--sim-ttft-s", "0.005",
                 "--sim-tokens-per-s", "5000", "--max-concurrency", "64", "--max-queue", "64"],
                tmp / f"n{j}", tmp / f"n{j}.log", LLM_MESH_OPERATOR_TOKEN=token,
            ))  # fmt: skip

        def all_see_nodes() -> bool:
            for u in urls:
                nodes = httpx.get(u + "/mesh/nodes", timeout=2).json()["nodes"]
                if sum(1 for n in nodes if n["healthy"]) < args.nodes:
                    return False
            return True

        _wait(all_see_nodes, 90, "every replica sees every node")
        asyncio.run(_load(urls, 2.0, args.concurrency))  # warm-up: connections, EWMAs
        rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: []}
        for k in (1, 2, 3, 3, 2, 1):
            r = asyncio.run(_load(urls[:k], args.seconds, args.concurrency))
            print(f"k={k}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, errors {r['errors']}",
                  flush=True)  # fmt: skip
            rounds[k].append(r)
        table = {}
        for k, rs in rounds.items():
            table[k] = {
                "rps": sum(r["rps"] for r in rs) / len(rs),
                "p50_ms": sum(r["p50_ms"] for r in rs) / len(rs),
                "p99_ms": sum(r["p99_ms"] for r in rs) / len(rs),
                "errors": sum(r["errors"] for r in rs),
            }
        base = table[1]["rps"]
        res = {
            "seconds": args.seconds, "concurrency": args.concurrency, "nodes": args.nodes,
            "replicas": {str(k): {**v, "ratio_to_1": v["rps"] / base if base else None}
                         for k, v in table.items()},
            "machine": machine_line(),
        }  # fmt: skip
        print(json.dumps(res, indent=2))
        write_json("replicas", res)
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
