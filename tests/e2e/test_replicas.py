"""No single point of failure, with real processes: 3 registry replicas on one PostgreSQL.

3 ``llm-mesh registry serve`` processes on a throwaway PostgreSQL database, 5 sim nodes
(``mistral-7b``) and, when llama-cpp and the gemma package are installed, 1 real
``gemma-3-270m`` node, every node given all three registry URLs; 20 concurrent clients,
each with all three gateway URLs (``MeshClient``), streaming and not, every request with
its own request id. During the run:

- replica 0 is killed with SIGKILL, and started again later on the same port;
- node 4 is cut off from replica 1 only (replica 1 does not admit its address: the
  registry-side address pins), so replica 1 must route around it;
- every PostgreSQL connection to the database is killed twice with
  ``pg_terminate_backend`` (the machine's PostgreSQL itself is not restarted by tests);
- while replica 0 starts again (the test holding the store's migration lock, so the start
  waits there with a connection open), its own connections are killed
  :data:`START_KILLS` times, a second apart, then the lock is let go (found 2026-12-06, CI:
  a replica whose connections were killed while it started exited;
  ``registry/start_retry.py``).

It shows: no request failed that had a healthy alternative (the only failures allowed are
requests that were on replica 0 when it died: a stream cut after its first event, or a
retry refused 409 because it may have run there), no request id ran twice (nodes served no
more generations than requests that succeeded plus those lost with replica 0; the store's
request log has at most one answered row per id), and every node stays registered at
every replica, the restarted one included. And the books agree with what the clients
saw: the clients use one API key granted ``GRANT`` by the admin (a ledger entry); once
the settlers have drained (no ``pending`` or ``answered`` settlement row left, nothing
``reserved``), ``llm-mesh ledger verify --registry`` exits 0 against a surviving
replica, the key's balance is the grant less the ledger's debits, each request that
succeeded was debited exactly the ``mesh.cost`` its answer reported, under the
``mesh.ledger_request_id`` it named, no client request id was settled twice (under two
ledger ids), and the only other debits are of requests lost with replica 0 (answered
there before it died). The real node makes the run slower by its model load (a few
seconds); the whole test takes about two minutes on a 2-core machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from LLM_Mesh.client import MeshClient, new_request_id
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.parse import client_ledger_id
from LLM_Mesh.registry.store_migrate import _PG_MIGRATION_LOCK
from tests.e2e.conftest import HAVE_MODEL
from tests.e2e.replica_mesh import (
    GRANT,
    REAL,
    SIM,
    Mesh,
    Proc,
    healthy_ids,
    mesh,
    replica_env,
    wait_for,
)
from tests.waiting import scaled

__all__ = ["mesh"]  # the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


RUN_S = 50.0  # client traffic
CLIENTS = 20
START_KILLS = 3  # kills of the restarted replica's connections while it starts


@dataclass
class Result:
    request_id: str
    gateway_order: tuple[str, ...]
    stream: bool
    model: str
    started: float
    ended: float = 0.0
    ok: bool = False
    node: str | None = None
    error: str | None = None
    error_code: str | None = None
    reason: str | None = None
    cost: int | None = None  # mesh.cost of the answer
    ledger_id: str | None = None  # mesh.ledger_request_id: the id its ledger entries carry
    completion_tokens: int | None = None  # mesh.completion_tokens
    parts: tuple[str, ...] = ()  # its receipt's parts: status[:reason] each


async def _kill_connections(db_url: str) -> int:
    url = make_url(db_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
    finally:
        await conn.close()
    return len(rows)


def _pg_ports(pid: int, pg_port: int) -> list[int]:
    """The local ports of process ``pid``'s TCP connections to ``pg_port`` (Linux: its
    socket inodes in ``/proc/PID/fd``, their ports in ``/proc/net/tcp*``)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    except OSError:
        return []
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == pg_port:
                    ports.append(int(local.rsplit(":", 1)[1], 16))
    return ports


async def _kill_while_starting(mesh: Mesh, p: Proc) -> int:
    """Start ``p`` with the store's migration lock held (``store_migrate.migrate_to_head``:
    every replica's start migrates under it), so its start waits there with a connection
    open; kill ``p``'s PostgreSQL connections ``START_KILLS`` times, a second apart, then
    let the lock go; how many connections were killed once it serves. Without the lock a
    start that needed the database for under a second (load ~8, 2026-12-06, hb36) could
    serve before a kill found a connection of it: nothing killed, the test failed."""
    url = make_url(mesh.db_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    lock = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    await lock.execute("SELECT pg_advisory_lock($1)", _PG_MIGRATION_LOCK)
    held = True
    killed, rounds, deadline = 0, 0, time.monotonic() + scaled(120)
    try:
        p.start()
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if held and rounds >= START_KILLS:
                    await lock.execute("SELECT pg_advisory_unlock($1)", _PG_MIGRATION_LOCK)
                    held = False
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(mesh.urls[0] + "/healthz")).status_code == 200:
                        assert not held, f"{p.name} served without migrating under the lock"
                        return killed
                assert p.proc is not None and p.proc.poll() is None, f"{p.name} exited:\n{p.tail()}"
                ports = _pg_ports(p.proc.pid, url.port or 5432)
                if ports and rounds < START_KILLS:
                    conn = await asyncpg.connect(admin, timeout=5)
                    try:
                        rows = await conn.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1 AND client_port = ANY($2::int[])",
                            url.database, ports,
                        )  # fmt: skip
                    finally:
                        await conn.close()
                    killed, rounds = killed + len(rows), rounds + (len(rows) > 0)
                    await asyncio.sleep(1.0)
                await asyncio.sleep(0.05)
    finally:
        await lock.close()  # its session's lock goes with it
    raise AssertionError(f"{p.name} did not serve within 120 s of its restart:\n{p.tail()}")


async def _client(i: int, mesh: Mesh, stop_at: float, results: list[Result]) -> None:
    rng = random.Random(i)
    order = tuple(mesh.urls[i % 3 :] + mesh.urls[: i % 3])
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))
    client = MeshClient(order, http_client=http, api_key=mesh.api_key)
    try:
        while time.monotonic() < stop_at:
            real = HAVE_MODEL and i < 2 and rng.random() < 0.5
            model = REAL if real else SIM
            stream = rng.random() < 0.4
            res = Result(new_request_id(), order, stream, model, time.monotonic())
            results.append(res)
            body: dict[str, Any] = {
                "model": model,
                "messages": [{"role": "user", "content": f"client {i} says hi"}],
                "max_tokens": 8 if real else 16,
            }
            try:
                if stream:
                    chunks = [
                        c
                        async for c in client.stream(
                            "/v1/chat/completions", body, request_id=res.request_id
                        )
                    ]
                    final = chunks[-1]
                    meta = final.get("mesh") or {}
                    res.ok = bool(final.get("usage"))
                else:
                    meta = (await client.chat(body, request_id=res.request_id))["mesh"]
                    res.ok = True
                res.node, res.cost = meta.get("node_id"), meta.get("cost")
                res.ledger_id = meta.get("ledger_request_id")
                res.completion_tokens = meta.get("completion_tokens")
                res.parts = tuple(
                    ":".join(filter(None, (p.get("status"), p.get("reason"))))
                    for p in (meta.get("receipt") or {}).get("parts", [])
                )
            except MeshError as exc:
                res.error = f"{type(exc).__name__}: {exc}"
                res.error_code = getattr(exc, "code", None)
                res.reason = (getattr(exc, "extra", None) or {}).get("reason")
            res.ended = time.monotonic()
            await asyncio.sleep(rng.uniform(0.0, 0.05))
    finally:
        await http.aclose()


async def _chaos(mesh: Mesh, t0: float) -> None:
    async def at(s: float) -> None:
        await asyncio.sleep(max(0.0, t0 + s - time.monotonic()))

    await at(8)
    mesh.events["kill"] = time.monotonic()
    mesh.replicas[0].kill(signal.SIGKILL)
    await at(15)
    mesh.events["pg_kill_1"] = time.monotonic()
    assert await _kill_connections(mesh.db_url) > 0
    await at(22)
    mesh.events["restart"] = time.monotonic()
    mesh.events["start_kills"] = await _kill_while_starting(mesh, mesh.replicas[0])
    mesh.events["restarted"] = time.monotonic()
    await at(34)
    mesh.events["pg_kill_2"] = time.monotonic()
    assert await _kill_connections(mesh.db_url) > 0


def _served(mesh: Mesh) -> int:
    """Generations the nodes finished, all of them (``/mesh/info``, loopback only)."""
    total = 0
    for port in mesh.node_ports:
        info = httpx.get(f"http://127.0.0.1:{port}/mesh/info", timeout=5).json()
        total += int(info["requests_served"]) + int(info["requests_failed"])
    return total


async def _answered_twice(db_url: str) -> list[str]:
    url = make_url(db_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT request_id FROM requests WHERE outcome = 'ok'"
            " GROUP BY request_id HAVING count(*) > 1"
        )
    finally:
        await conn.close()
    return [r["request_id"] for r in rows]


async def _unsettled(db_url: str) -> list[dict[str, Any]]:
    """Settlement rows not final yet (``pending`` or ``answered``): the settlers' backlog,
    with their holders' last beats (what to read when it does not drain)."""
    url = make_url(db_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT s.request_id, s.part, s.state, s.holder, s.payer, s.amount, s.updated_at,"
            " h.beat_ms FROM settlements s LEFT JOIN settle_holders h ON h.holder = s.holder"
            " WHERE s.state IN ('pending', 'answered') ORDER BY s.updated_at"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


def _ledger_entries(url: str) -> list[dict[str, Any]]:
    """Every entry of the public ledger (``GET /v1/ledger``, paged)."""
    out: list[dict[str, Any]] = []
    after = -1
    while True:
        page = httpx.get(url + "/v1/ledger", params={"after": after, "limit": 10_000}, timeout=30)
        page.raise_for_status()
        data = page.json()
        out.extend(data["data"])
        if not data["has_more"]:
            return out
        after = out[-1]["seq"]


def _check_the_books(mesh: Mesh, ok: list[Result], lost: list[Result]) -> None:
    """Balances and ``llm-mesh ledger verify`` agree with the requests that succeeded."""
    url = mesh.urls[1]  # a replica that was never killed
    left: list[dict[str, Any]] = []

    def drained() -> bool:
        left[:] = asyncio.run(_unsettled(mesh.db_url))
        return not left

    try:
        wait_for(drained, 90, "settlement drained")
    except AssertionError:
        logs = [
            f"{p.name}: {line}"
            for p in mesh.replicas
            for line in p.tail(100_000).splitlines()
            if "LLM_Mesh.requests" not in line and ("settle" in line.lower() or "Error" in line)
        ]
        raise AssertionError(
            f"{len(left)} settlement rows never settled nor voided, e.g. {left[:5]}\n"
            + "\n".join(logs[-40:])
        ) from None
    home = mesh.replicas[1].log_path.parent / "verifier"
    home.mkdir(exist_ok=True)
    verify = subprocess.run(
        [sys.executable, "-m", "LLM_Mesh.cli", "ledger", "verify", "--registry", url],
        env=replica_env(home),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout, verify.stdout
    # the key's debits in the ledger, by ledger request id
    debits: Counter[str] = Counter()
    for e in _ledger_entries(url):
        if e["from"] == mesh.account:
            assert e["kind"] in ("settle", "fee") and e["request_id"], e
            debits[e["request_id"]] += e["amount"]
    # no client request id settled twice (a ledger id is the client id's hash and a suffix)
    by_client = Counter(lid.split("~", 1)[0] for lid in debits)
    assert [cid for cid, n in by_client.items() if n > 1] == []
    # each answer was debited exactly what its mesh object said, under the id it named; it
    # costs nothing (no entry) only when it has no token (a model may end its answer at once):
    # every node here is honest, so no receipt part may fail its check, lost connections
    # or not (the check is the gateway's own, no database in it)
    for r in ok:
        assert r.cost is not None and r.cost >= 0 and r.ledger_id is not None, r
        assert r.parts and not [p for p in r.parts if p.startswith("invalid")], r
        assert r.cost > 0 or r.completion_tokens == 0, r
        assert r.ledger_id.split("~", 1)[0] == client_ledger_id(r.request_id), r
        assert debits.get(r.ledger_id, 0) == r.cost, (r, debits.get(r.ledger_id))
    # any other debit is of a request lost with replica 0 (answered there, then it died)
    answered = {r.ledger_id for r in ok}
    lost_ids = {client_ledger_id(r.request_id) for r in lost}
    others = {lid: amount for lid, amount in debits.items() if lid not in answered}
    assert {lid.split("~", 1)[0] for lid in others} <= lost_ids, others
    # the balance: the grant less what succeeded (and what was lost with replica 0)
    spent = sum(r.cost or 0 for r in ok)
    assert sum(debits.values()) == spent + sum(others.values())
    bal = httpx.get(
        url + "/v1/balance", headers={"Authorization": f"Bearer {mesh.api_key}"}, timeout=10
    ).json()
    assert (bal["account"], bal["reserved"]) == (mesh.account, 0), bal
    assert bal["balance"] == GRANT - spent - sum(others.values()), (bal, spent, others)
    print(
        f"replicas e2e books: {len(ok)} answers cost {spent} µNT "
        f"({sum(r.cost == 0 for r in ok)} of them nothing), {len(others)} lost with "
        f"replica 0 were paid ({sum(others.values())} µNT); balance {bal['balance']} of "
        f"{GRANT}; {' '.join(verify.stdout.split())}"
    )


def test_three_replicas_survive_a_kill_a_partition_and_lost_connections(mesh: Mesh) -> None:
    results: list[Result] = []

    async def run() -> None:
        t0 = time.monotonic()
        stop_at = t0 + RUN_S
        await asyncio.gather(
            _chaos(mesh, t0), *(_client(i, mesh, stop_at, results) for i in range(CLIENTS))
        )

    asyncio.run(run())
    kill = mesh.events["kill"]
    # the restarted replica lost connections while it started, and served all the same
    assert mesh.events["start_kills"] > 0, mesh.events

    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]

    def lost_with_replica_0(r: Result) -> bool:
        """In flight at replica 0 when it died: a stream cut after its first event, or a
        retry refused because the request may have run there. No healthy alternative: a
        rerun could run it twice."""
        at_kill = r.started <= kill + 0.5 and r.ended >= kill - 0.5
        cut = r.stream and r.error is not None and "cut" in r.error
        refused = r.error_code == "duplicate_request"
        return at_kill and r.gateway_order[0] == mesh.urls[0] and (cut or refused)

    lost = [r for r in failed if lost_with_replica_0(r)]
    unexplained = [r for r in failed if not lost_with_replica_0(r)]
    assert not unexplained, "\n".join(
        f"{r.request_id} {r.model} stream={r.stream} {r.error}" for r in unexplained[:20]
    )
    assert len(failed) <= CLIENTS // 3 + 1  # at most the clients that were on replica 0
    assert len(ok) > 200, len(ok)

    print(
        f"replicas e2e: {len(results)} requests, {len(ok)} answered, {len(failed)} lost with "
        f"replica 0 ({Counter(r.error_code for r in failed)}), streams "
        f"{sum(r.stream for r in results)}, real-model answers {sum(r.model == REAL for r in ok)}; "
        f"replica 0 served {mesh.events['restarted'] - mesh.events['restart']:.1f} s after its "
        f"restart, {mesh.events['start_kills']:.0f} of its connections killed meanwhile"
    )
    # every node served through replica 1 but node 4, which it cannot reach
    by_node = Counter(r.node for r in ok)
    assert len(by_node) == len(mesh.nodes), by_node
    # no request id ran twice: generations ≤ answers + the requests lost with replica 0
    served = _served(mesh)
    assert len(ok) <= served <= len(ok) + len(failed), (served, len(ok), len(failed))
    assert asyncio.run(_answered_twice(mesh.db_url)) == []
    # nodes stay registered and healthy at every replica, the restarted one included
    all_ids = healthy_ids(mesh.urls[1])
    assert len(all_ids) == len(mesh.nodes)
    for u in mesh.urls:
        wait_for(lambda u=u: healthy_ids(u) == all_ids, 20, f"every node at {u}", mesh)
    # and the restarted replica serves
    after = httpx.post(
        mesh.urls[0] + "/v1/chat/completions",
        json={"model": SIM, "messages": [{"role": "user", "content": "back?"}], "max_tokens": 4},
        timeout=30,
    )
    assert after.status_code == 200, after.text
    # and the books agree with the requests that succeeded
    _check_the_books(mesh, ok, lost)
