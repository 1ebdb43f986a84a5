"""Real processes for the replica tests (``test_replicas.py``, ``test_workers*.py``): a
PostgreSQL database prepared, registry replicas and nodes started as subprocesses with their
environment, and waits on their health."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.e2e.conftest import HAVE_MODEL, free_port
from tests.waiting import START_S, scaled

ADMIN_KEY = "lma_e2e-replicas-admin-key"
GRANT = 50_000_000_000  # µNT granted to the clients' key: far more than the run spends
SIM = "mistral-7b"
REAL = "gemma-3-270m"


HEARTBEAT_S = 1  # nodes beat every second: they find replica 0 gone within a second or so
# heartbeats missed before a replica takes a node out of routing (found 2026-12-06, hb36):
# the default 3 (3 s here) left a node that beats at replica 2 only ~1 s of slack at
# replica 1, which hears of it through the store (the beat's batch write, then replica 1's
# 1 s poll); on a loaded 2-core box replica 1 put the only gemma node out of routing
# again and again and its requests failed ``ModelUnavailable``. No node dies in this
# test and none is meant to expire: 10 s (× LLM_MESH_TEST_TIME_FACTOR), still well inside
# the test's 20 s wait for every node healthy at every replica after the run.
MISSED_HEARTBEATS = max(3, round(scaled(10) / HEARTBEAT_S))


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "LLM_Mesh.cli", *self.args],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log is not None:
            self.log.close()
            self.log = None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass
class Mesh:
    urls: list[str]
    replicas: list[Proc]
    nodes: list[Proc]
    node_ports: list[int]
    db_url: str
    api_key: str
    account: str  # the key's ledger account
    events: dict[str, float] = field(default_factory=dict)

    def stop(self) -> None:
        for p in self.nodes:
            p.kill(signal.SIGTERM)
        for p in self.replicas:
            p.kill(signal.SIGTERM)


def prepare_store(db_url: str, homes: list[Path]) -> tuple[str, str, str]:
    """The store's admin key, an operator (its token), one registry key for all replicas,
    and the clients' API key granted ``GRANT``: (operator token, API key, its account)."""

    async def go() -> tuple[str, str, str]:
        from LLM_Mesh.config import Settings
        from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
        from LLM_Mesh.registry.api_keys import create_api_key
        from LLM_Mesh.registry.gateway_key import load_or_create_registry_key
        from LLM_Mesh.registry.ledger_grant import grant
        from LLM_Mesh.registry.settlement import user_account
        from LLM_Mesh.registry.store import SqlStore

        settings = Settings(home=homes[0], database_url=db_url, admin_key=ADMIN_KEY)
        async with SqlStore(db_url) as store:
            await ensure_admin_key(settings, store)
            token = await add_operator(store, "e2e")
            made = await create_api_key(store, name="e2e-clients")
            assert made is not None
            api_key, rec = made
            entry, _ = await grant(store, "e2e-clients", GRANT)
        assert token is not None and entry.to_account == user_account(rec.key_id)
        load_or_create_registry_key(homes[0] / "registry.key")
        for home in homes[1:]:  # replicas share the registry key (docs/deploy.md)
            home.mkdir(parents=True, exist_ok=True)
            shutil.copy2(homes[0] / "registry.key", home / "registry.key")
        return token, api_key, entry.to_account

    homes[0].mkdir(parents=True, exist_ok=True)
    return asyncio.run(go())


def replica_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LLM_MESH_HOME=str(home), LLM_MESH_HEARTBEAT_S=str(HEARTBEAT_S), LLM_MESH_ADMIN_KEY=ADMIN_KEY,
        LLM_MESH_MISSED_HEARTBEATS=str(MISSED_HEARTBEATS),
        LLM_MESH_REQUEST_TIMEOUT_S="30", PYTHONUNBUFFERED="1", **extra,
    )  # fmt: skip
    return env


def admin_get(url: str) -> Any:
    try:
        r = httpx.get(url, timeout=3, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def wait_for(pred: Any, timeout: float, what: str, mesh: Mesh | None = None) -> None:
    """Until ``pred()``, for ``timeout`` s × the time factor (``tests/waiting.py``)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    logs = "" if mesh is None else "\n".join(f"--- {p.name}\n{p.tail()}" for p in mesh.replicas)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def healthy_ids(url: str) -> set[str]:
    data = admin_get(url + "/mesh/nodes")
    return {n["node_id"] for n in (data or {}).get("nodes", []) if n.get("healthy")}


def node_id(home: Path) -> str:
    from LLM_Mesh.node.keys import load_or_create_key

    return load_or_create_key(home / "node.key").node_id


@pytest.fixture
def mesh(tmp_path: Path, pg_database_url: str) -> Iterator[Mesh]:
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    homes = [tmp_path / f"replica{i}" for i in range(3)]
    token, api_key, account = prepare_store(pg_database_url, homes)
    n_nodes = 6 if HAVE_MODEL else 5
    node_ports = [free_port() for _ in range(n_nodes)]
    node_urls = [f"http://127.0.0.1:{p}" for p in node_ports]
    replicas = []
    for i in range(3):
        if i == 1:  # node 4 is cut off from replica 1: its address is not admitted there
            private = [a for j, u in enumerate(node_urls) if j != 4 for a in ("--allow-private-node", u)]  # fmt: skip
        else:
            private = ["--allow-private-nodes"]
        replicas.append(
            Proc(
                f"replica{i}",
                ["registry", "serve", "--host", "127.0.0.1", "--port", str(ports[i]),
                 "--database-url", pg_database_url, "--anonymous-rpm", "0", *private],
                replica_env(homes[i]), tmp_path / f"replica{i}.log",
            )
        )  # fmt: skip
    nodes = []
    for j in range(n_nodes):
        home = tmp_path / f"node{j}"
        home.mkdir()
        order = urls[j % 3 :] + urls[: j % 3] if j != 4 else [urls[0], urls[2], urls[1]]
        real = j == 5
        args = [
            "node", "start", "--registry", ",".join(order), "--host", "127.0.0.1",
            "--port", str(node_ports[j]), "--no-config",
            "--model", REAL if real else SIM, "--engine", "llama-cpp" if real else "sim",
        ]  # fmt: skip
        if not real:
            args += ["--sim-tokens-per-s", "200", "--sim-ttft-s", "0.02", "--max-concurrency", "4"]
        else:
            args += ["--n-threads", "1", "--max-queue", "16"]
        nodes.append(Proc(f"node{j}", args, replica_env(home, LLM_MESH_OPERATOR_TOKEN=token),
                          tmp_path / f"node{j}.log"))  # fmt: skip
    m = Mesh(urls, replicas, nodes, node_ports, pg_database_url, api_key, account)
    try:
        for p in replicas:
            p.start()
        for u in urls:
            wait_for(lambda u=u: admin_get(u + "/healthz") is not None, START_S, f"replica {u}", m)
        for p in nodes:
            p.start()
        ids = {node_id(tmp_path / f"node{j}") for j in range(n_nodes)}
        for u in urls:
            wait_for(lambda u=u: ids <= healthy_ids(u), START_S, f"every node healthy at {u}", m)
        yield m
    finally:
        m.stop()
