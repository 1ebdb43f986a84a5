"""``llm-mesh registry serve --workers 2`` with real processes on PostgreSQL: one address,
two registry processes (``registry/workers.py``).

The supervisor starts two workers on one port; two sim nodes (SIMULATED) register; keyed
clients send 24 requests, streaming and not. It shows: every request is answered, and both
workers served some (each is its own settlement holder: the settlement rows name two
holders). Then one worker is killed with SIGKILL: the supervisor starts another in its
place, and 16 more requests are all answered. Then one worker is hung (SIGSTOP): silent
past ``--worker-timeout``, the supervisor kills it and starts another, and 16 more requests
are all answered (before 2026-12-04 it was never seen, and took about half the new
connections, answering none). SIGTERM to the supervisor stops it (exit 0) and every worker
with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from LLM_Mesh.client import MeshClient, new_request_id
from tests.e2e.conftest import free_port
from tests.e2e.replica_mesh import (
    SIM,
    Proc,
    healthy_ids,
    node_id,
    prepare_store,
    replica_env,
    wait_for,
)
from tests.waiting import SOON_S, START_S, scaled

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WORKER_TIMEOUT_S = 5  # short for the test; the default is 30 s


def _workers(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


async def _ask(url: str, api_key: str, n: int, concurrency: int) -> list[dict[str, Any]]:
    # a connection a request: each goes to whichever worker accepts it first from the
    # port's one queue, so with several at a time both workers take some
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0),
                             limits=httpx.Limits(max_keepalive_connections=0))  # fmt: skip
    client = MeshClient((url,), http_client=http, api_key=api_key)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> dict[str, Any]:
        body = {"model": SIM, "messages": [{"role": "user", "content": f"hi {i}"}],
                "max_tokens": 8}  # fmt: skip
        async with sem:
            if i % 3 == 0:
                chunks = [c async for c in client.stream("/v1/chat/completions", body,
                                                         request_id=new_request_id())]  # fmt: skip
                return dict(chunks[-1].get("mesh") or {}, usage=chunks[-1].get("usage"))
            answer = await client.chat(body, request_id=new_request_id())
            return dict(answer["mesh"], usage=answer.get("usage"))

    try:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        await http.aclose()


async def _count(db_url: str, sql: str) -> int:
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def _replicas(db_url: str) -> tuple[int, int]:
    """(replicas beating within the last 3 s, replica rows): a worker beats once it serves."""
    alive = "SELECT count(*) FROM registry_replicas WHERE seen_at > now() - interval '3 seconds'"
    return (asyncio.run(_count(db_url, alive)),
            asyncio.run(_count(db_url, "SELECT count(*) FROM registry_replicas")))  # fmt: skip


def supervisor(tmp_path: Path, db_url: str, port: int, *extra: str) -> Proc:
    """``registry serve --workers 2`` on ``db_url`` (home ``tmp_path/registry``), not started."""
    return Proc("registry", ["registry", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--database-url", db_url, "--anonymous-rpm", "0", *extra,
                             "--workers", "2"],
                replica_env(tmp_path / "registry"), tmp_path / "registry.log")  # fmt: skip


def test_two_workers_serve_one_port_and_one_killed_is_replaced(
    tmp_path: Path, pg_database_url: str
) -> None:
    home = tmp_path / "registry"
    token, api_key, _account = prepare_store(pg_database_url, [home])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup = supervisor(tmp_path, pg_database_url, port, "--allow-private-nodes",
                     "--worker-timeout", str(WORKER_TIMEOUT_S))  # fmt: skip
    hung: list[int] = []
    nodes = []
    for j in range(2):
        node_home = tmp_path / f"node{j}"
        node_home.mkdir()
        nodes.append(Proc(
            f"node{j}",
            ["node", "start", "--registry", url, "--host", "127.0.0.1", "--port",
             str(free_port()), "--no-config", "--model", SIM, "--engine", "sim",
             "--sim-tokens-per-s", "500", "--sim-ttft-s", "0.01", "--max-concurrency", "4"],
            replica_env(node_home, LLM_MESH_OPERATOR_TOKEN=token), tmp_path / f"node{j}.log",
        ))  # fmt: skip
    try:
        sup.start()
        assert sup.proc is not None
        pid = sup.proc.pid
        wait_for(
            lambda: _replicas(pg_database_url) == (2, 2), scaled(START_S), "two workers serving"
        )
        for p in nodes:
            p.start()
        ids = {node_id(tmp_path / f"node{j}") for j in range(2)}
        # both workers know both nodes: 8 listings in a row (each goes to either worker)
        wait_for(
            lambda: all(ids <= healthy_ids(url) for _ in range(8)),
            scaled(START_S),
            "nodes healthy",
        )

        answers = asyncio.run(_ask(url, api_key, 24, 6))
        assert all(a.get("usage") and a.get("node_id") in ids for a in answers), answers
        holders = "SELECT count(DISTINCT holder) FROM settlements"
        assert asyncio.run(_count(pg_database_url, holders)) == 2  # both workers served

        first = _workers(pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(_workers(pid)) == 2 and victim not in _workers(pid), scaled(SOON_S),
              "the killed worker replaced")  # fmt: skip
        # the new one beats, the killed one's row has gone quiet
        wait_for(
            lambda: _replicas(pg_database_url) == (2, 3), scaled(START_S), "the new worker serving"
        )
        wait_for(
            lambda: all(ids <= healthy_ids(url) for _ in range(8)),
            scaled(START_S),
            "nodes healthy",
        )
        answers = asyncio.run(_ask(url, api_key, 16, 4))
        assert all(a.get("usage") for a in answers), answers

        hung.append(max(_workers(pid)))
        os.kill(hung[0], signal.SIGSTOP)
        t0 = time.monotonic()
        wait_for(lambda: len(_workers(pid)) == 2 and hung[0] not in _workers(pid), scaled(SOON_S),
              "the hung worker replaced")  # fmt: skip
        assert time.monotonic() - t0 < WORKER_TIMEOUT_S + 10  # its timeout, a margin
        wait_for(
            lambda: _replicas(pg_database_url) == (2, 4), scaled(START_S), "the new worker serving"
        )
        wait_for(
            lambda: all(ids <= healthy_ids(url) for _ in range(8)),
            scaled(START_S),
            "nodes healthy",
        )
        answers = asyncio.run(_ask(url, api_key, 16, 4))
        assert all(a.get("usage") for a in answers), answers

        running = _workers(pid)
        sup.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert sup.proc.wait(60) == 0, sup.tail()
        assert time.monotonic() - t0 < 45
        assert all(_gone(w) for w in running)
        log = (tmp_path / "registry.log").read_text()
        assert "worker 0 started" in log and "exited with code -9: restarting it" in log
        said = rf"worker \d \(pid {hung[0]}\) hung: no heartbeat for \d+ s \(--worker-timeout "
        assert re.search(said + rf"{WORKER_TIMEOUT_S} s\): killing it", log), log
    finally:
        for w in hung:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)
        for p in nodes:
            p.kill(signal.SIGTERM)
        sup.kill(signal.SIGTERM)


def _fresh_get(port: int, timeout_s: float) -> str:
    """One request on a connection of its own (``Connection: close``): its status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return c.makefile("rb").readline().decode().strip()


def test_one_socket_a_stopped_worker_takes_no_connection_and_a_dead_one_drops_none(
    tmp_path: Path, pg_database_url: str
) -> None:
    """The workers serve the supervisor's one socket (before 2026-12-04 each bound its own,
    SO_REUSEPORT): with the watchdog off, a stopped worker takes no new connection (before:
    about 1 in 2 hung), and connections waiting when a worker is killed are all answered
    (before: those in its own accept queue were reset)."""
    prepare_store(pg_database_url, [tmp_path / "registry"])  # the schema, the registry's key
    port = free_port()
    sup = supervisor(tmp_path, pg_database_url, port, "--worker-timeout", "0")
    stopped: list[int] = []
    try:
        sup.start()
        assert sup.proc is not None
        pid = sup.proc.pid
        wait_for(
            lambda: _replicas(pg_database_url) == (2, 2), scaled(START_S), "two workers serving"
        )
        a, b = sorted(_workers(pid))
        os.kill(a, signal.SIGSTOP)
        stopped.append(a)
        said = []
        for _ in range(30):  # a fresh connection each, answered within 3 s
            try:
                said.append(_fresh_get(port, 3.0))
            except OSError as exc:
                said.append(repr(exc))
        assert said == ["HTTP/1.1 200 OK"] * 30, said

        os.kill(b, signal.SIGSTOP)  # now no worker accepts: connections wait in the queue
        stopped.append(b)
        waiting = []
        for _ in range(10):
            c = socket.create_connection(("127.0.0.1", port), timeout=30)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            waiting.append(c)
        try:
            time.sleep(0.5)
            os.kill(a, signal.SIGKILL)  # a worker dies while they wait
            time.sleep(0.5)
            os.kill(b, signal.SIGCONT)
            said = []
            for c in waiting:
                try:
                    said.append(c.makefile("rb").readline().decode().strip())
                except OSError as exc:
                    said.append(repr(exc))
        finally:
            for c in waiting:
                c.close()
        assert said == ["HTTP/1.1 200 OK"] * 10, said

        wait_for(
            lambda: len(_workers(pid)) == 2 and a not in _workers(pid), scaled(SOON_S), "a replaced"
        )
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(60) == 0, sup.tail()
        with pytest.raises(OSError):  # its socket closed with it
            _fresh_get(port, 2.0)
    finally:
        for w in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)
        sup.kill(signal.SIGTERM)
