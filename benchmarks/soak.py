"""Soak: run a mesh like production for a while and watch for what grows or breaks.

Two layouts:

- default: a fresh PostgreSQL database, 2 registry replicas on it, ``--sim-nodes`` sim
  nodes (SIMULATED) and, with ``--real``, one llama-cpp ``gemma-3-270m`` node; every node
  and client has both replicas' URLs. Chaos: sim node 0 is killed with SIGKILL at 40 % of
  the run and started again 20 s later; sim node 1 is paused at 55 % and resumed 30 s
  later; sim node 2 is drained (no wait) at 75 % and resumed 20 s later.
- ``--sqlite``: ``llm-mesh up`` (zero-config SQLite store, one sim node).

``--clients`` clients send a mix through the gateways, round-robin over the replicas:
non-streamed and streamed chat and completions, streams the client leaves after two
chunks, bodies that are not JSON, bodies over 1 MiB, unknown models, a request id sent
twice (the second must be replayed), a key with a small balance (200 until it is spent,
then 402), anonymous requests, and (``--real``) requests to the real model.

Every ``--sample-s`` seconds: RSS and open fds of every process, the database's tables
(rows and ``pg_total_relation_size``; SQLite: the files), the files under each
``$LLM_MESH_HOME``, and the counts by kind and status. At the end: the gateways'
in-flight gauges, settlement rows left in flight, ``llm-mesh ledger verify``, the big key's
balance against the costs the answers reported, and error lines in every log.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/soak.py --minutes 15 [--real] [--sqlite]
        [--clients 6] [--sim-nodes 4] [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import free_ports, log, machine_line, pg_database, wait_http
from soak_load import BIG, REAL, SIM, SMALL, Stats, client
from soak_watch import CLI, Proc, db_tables, metrics_in_flight, sample, scan_logs

ADMIN_KEY = "lma_soak-admin-key-0123456789"


@dataclass
class Mesh:
    work: Path
    logdir: Path
    env: dict[str, str]
    urls: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    nodes: list[Proc] = field(default_factory=list)
    node_urls: list[str] = field(default_factory=list)
    homes: list[Path] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    db_url: str | None = None
    events: list[str] = field(default_factory=list)

    def event(self, what: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {what}")

    def cli(self, *args: str, home: Path) -> None:
        r = subprocess.run(
            [*CLI, *args], env={**self.env, "LLM_MESH_HOME": str(home)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        self.event(f"{' '.join(args[:2])}: rc={r.returncode} {r.stdout[-200:]}{r.stderr[-200:]}")

    def healthy(self, url: str) -> int:
        r = httpx.get(url + "/mesh/nodes", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        return sum(1 for n in r.json().get("nodes", []) if n.get("healthy"))

    def wait_healthy(self, want: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(self.healthy(u) >= want for u in self.urls):
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {want} healthy nodes after {timeout_s} s")
            time.sleep(1)


def prepare(db_url: str, home: Path) -> dict[str, str]:
    """Admin key, operator token and two API keys (big, small balance) in the store."""
    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
    from LLM_Mesh.registry.api_keys import create_api_key
    from LLM_Mesh.registry.ledger_grant import grant
    from LLM_Mesh.registry.store import SqlStore

    async def go() -> dict[str, str]:
        settings = Settings(home=home, database_url=db_url, admin_key=ADMIN_KEY)
        async with SqlStore(db_url) as store:
            await ensure_admin_key(settings, store)
            out = {"operator": await add_operator(store, "soak", replace=True) or ""}
            for name, amount in (("big", BIG), ("small", SMALL), ("leaver", BIG)):
                made = await create_api_key(store, name=f"soak-{name}")
                assert made is not None
                out[name] = made[0]
                out[name + "_id"] = made[1].key_id
                await grant(store, made[1].key_id, amount)
        return out

    return asyncio.run(go())


def start_sqlite(m: Mesh) -> None:
    """``llm-mesh up``: the SQLite store and one sim node."""
    home = m.work / "up"
    home.mkdir()
    m.homes = [home]
    port, nport = free_ports(2)
    m.keys = prepare(f"sqlite+aiosqlite:///{home}/registry.db", home)
    up = Proc("up", ["up", "--engine", "sim", "--model", SIM, "--registry-port", str(port),
                     "--node-port", str(nport), "--home", str(home)],
              {**m.env, "LLM_MESH_HOME": str(home)}, m.logdir / "up.log")  # fmt: skip
    m.procs = [up]
    up.start()
    m.urls = [f"http://127.0.0.1:{port}"]
    wait_http(m.urls[0] + "/healthz", 120, up.proc)
    m.wait_healthy(1)


def start_pg(m: Mesh, args: argparse.Namespace) -> None:
    """2 replicas on ``m.db_url``, sim nodes and (``--real``) a gemma node."""
    assert m.db_url is not None
    ports = free_ports(2 + args.sim_nodes + (1 if args.real else 0))
    m.urls = [f"http://127.0.0.1:{p}" for p in ports[:2]]
    rhomes = [m.work / f"replica{i}" for i in range(2)]
    for h in rhomes:
        h.mkdir()
    m.keys = prepare(m.db_url, rhomes[0])
    from LLM_Mesh.registry.gateway_key import load_or_create_registry_key

    load_or_create_registry_key(rhomes[0] / "registry.key")
    shutil.copy2(rhomes[0] / "registry.key", rhomes[1] / "registry.key")
    for i, h in enumerate(rhomes):
        m.procs.append(Proc(f"replica{i}", [
            "registry", "serve", "--port", str(ports[i]), "--database-url", m.db_url,
            "--allow-private-nodes", "--anonymous-rpm", "60"],
            {**m.env, "LLM_MESH_HOME": str(h)}, m.logdir / f"replica{i}.log"))  # fmt: skip
    m.homes = list(rhomes)
    for p in m.procs:
        p.start()
    for u, p in zip(m.urls, m.procs, strict=True):
        wait_http(u + "/healthz", 90, p.proc)
    for j, port in enumerate(ports[2:]):
        real = args.real and j == args.sim_nodes
        h = m.work / f"node{j}"
        h.mkdir()
        m.homes.append(h)
        order = m.urls[j % 2 :] + m.urls[: j % 2]
        a = ["node", "start", "--registry", ",".join(order), "--port", str(port),
             "--no-config", "--model", REAL if real else SIM,
             "--engine", "llama-cpp" if real else "sim"]  # fmt: skip
        a += (["--n-threads", "1", "--max-queue", str(args.real_queue)] if real else
              ["--sim-tokens-per-s", "200", "--sim-ttft-s", "0.02", "--max-concurrency", "4"])  # fmt: skip
        env = {**m.env, "LLM_MESH_HOME": str(h), "LLM_MESH_OPERATOR_TOKEN": m.keys["operator"]}
        m.nodes.append(Proc(f"node{j}{'-real' if real else ''}", a, env, m.logdir / f"node{j}.log"))
        m.node_urls.append(f"http://127.0.0.1:{port}")
    for p in m.nodes:
        p.start()
    m.procs += m.nodes
    m.wait_healthy(len(m.nodes))


async def chaos(m: Mesh, t0: float, run_s: float) -> None:
    """Kill -9 node 0 and start it again; pause node 1, drain node 2, resume both."""
    if len(m.nodes) < 3:
        return

    async def at(frac: float, extra: float = 0) -> None:
        await asyncio.sleep(max(0.0, t0 + frac * run_s + extra - time.monotonic()))

    async def cli(j: int, *args: str) -> None:
        home = m.work / f"node{j}"
        await asyncio.to_thread(m.cli, "node", *args, "--node-url", m.node_urls[j], home=home)

    await at(0.40)
    m.event("SIGKILL node0")
    m.nodes[0].stop(signal.SIGKILL)
    await at(0.40, 20)
    m.nodes[0].start()
    m.event("node0 started again")
    await at(0.55)
    await cli(1, "pause")
    await at(0.55, 30)
    await cli(1, "resume")
    await at(0.75)
    await cli(2, "drain", "--no-wait")
    await at(0.75, 20)
    await cli(2, "resume")


async def load(m: Mesh, args: argparse.Namespace, st: Stats) -> list[dict[str, Any]]:
    """The clients, the chaos and the sampler for ``--minutes``; the samples."""
    t0 = time.monotonic()
    stop_at = t0 + args.minutes * 60
    samples: list[dict[str, Any]] = []

    async def sampler() -> None:
        while time.monotonic() < stop_at + 1:
            s = await asyncio.to_thread(sample, m.procs, m.homes, t0, st)
            s["db"] = await db_tables(m.db_url, m.homes[0])
            s["load"] = os.getloadavg()
            samples.append(s)
            log(json.dumps(s))
            await asyncio.sleep(args.sample_s)

    await asyncio.gather(
        sampler(), chaos(m, t0, args.minutes * 60),
        *(client(i, m.urls, m.keys, stop_at, st, args.real) for i in range(args.clients)),
    )  # fmt: skip
    return samples


def balance(url: str, key: str) -> Any:
    return httpx.get(url + "/v1/balance", headers={"Authorization": f"Bearer {key}"}).json()


def finish(m: Mesh, st: Stats, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The checks once the load is over and the settlers have drained."""
    verify = subprocess.run(
        [*CLI, "ledger", "verify", "--registry", m.urls[0]], env=m.env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    big, small = balance(m.urls[-1], m.keys["big"]), balance(m.urls[0], m.keys["small"])
    return {
        "counts": {f"{k}:{s}": v for (k, s), v in sorted(st.counts.items())},
        "failures": st.failures[:80],
        "events": m.events,
        "big": {"balance": big, "spent_by_answers": st.big_cost, "ok": st.big_ok,
                "expected_balance": BIG - st.big_cost},
        "leaver": balance(m.urls[0], m.keys["leaver"]),
        "small": {"balance": small, "spent_by_answers": st.small_cost, "ok": st.small_ok,
                  "expected_balance": SMALL - st.small_cost},
        "ledger_verify": [verify.returncode, verify.stdout[-600:], verify.stderr[-600:]],
        "end": {"sample": sample(m.procs, m.homes, 0, st),
                "db": asyncio.run(db_tables(m.db_url, m.homes[0])),
                "metrics": {u: metrics_in_flight(u) for u in m.urls + m.node_urls}},
        "logs": scan_logs(m.logdir),
        "samples": samples,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--sim-nodes", type=int, default=4)
    ap.add_argument("--real", action="store_true", help="add a gemma-3-270m node")
    ap.add_argument("--real-queue", type=int, default=8, help="the gemma node's --max-queue")
    ap.add_argument("--sqlite", action="store_true", help="llm-mesh up (SQLite) instead")
    ap.add_argument("--sample-s", type=float, default=30)
    ap.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--keep-logs", help="directory for the processes' logs and the result")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llm-mesh-soak-"))
    logdir = Path(args.keep_logs or work / "logs")
    logdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LLM_MESH_ADMIN_KEY": ADMIN_KEY, "PYTHONUNBUFFERED": "1",
           "LLM_MESH_HEARTBEAT_S": "2"}  # fmt: skip
    m = Mesh(work, logdir, env)
    drop = None
    try:
        if args.sqlite:
            start_sqlite(m)
        else:
            m.db_url, drop = asyncio.run(pg_database(args.pg_admin_url))
            start_pg(m, args)
        log(f"mesh up: {m.urls}; {machine_line()}")
        st = Stats()
        samples = asyncio.run(load(m, args, st))
        log("load over; letting settlement drain for 15 s")
        time.sleep(15)
        result = finish(m, st, samples)
        out = logdir / "soak-result.json"
        out.write_text(json.dumps(result, indent=1, default=str))
        print(
            json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1, default=str)
        )
        log(f"result: {out}")
    finally:
        for p in reversed(m.procs):
            p.stop()
        if drop is not None:
            asyncio.run(drop())
        shutil.rmtree(work, ignore_errors=True)  # --keep-logs keeps its own directory


if __name__ == "__main__":
    main()
