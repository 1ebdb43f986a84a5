"""A registry SIGKILLed at a point of the money path: nothing lost, nothing paid twice (real
processes on loopback, a SIMULATED sim node). A lone registry (SQLite) restarted on the same
home; and one of two replicas on PostgreSQL, never restarted (the other recovers it).

The registry runs as ``tests/e2e/killed_registry.py`` (``llm-mesh`` that kills itself at a
named point while a flag file exists). A keyed request with its own ``X-Request-Id`` is sent
with the flag set: the registry dies there, the client gets no answer. The registry is
started again on the same home and port; the client retries the id (it does not know whether
it ran; with two replicas, at the other one). Then, once the settlers have drained, the
books are checked as anyone would:
``llm-mesh ledger verify --database-url`` exits 0, nothing is reserved, no row is left in
flight, the key's balance is its grant less what the ledger debited, each request id is
settled at most once (one ledger key, one set of entries), the node ran no request twice.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.registry.parse import client_ledger_id
from LLM_Mesh.registry.store import SqlStore
from tests.e2e.conftest import free_port
from tests.waiting import SOON_S, START_S, scaled

pytestmark = [pytest.mark.e2e]

ADMIN_KEY = "lma_e2e-kill-admin-key"
GRANT = 50_000_000_000
MODEL = "mistral-7b"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@dataclass
class Proc:
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *self.args], env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log is not None:
            self.log.close()
            self.log = None

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


@dataclass
class Lone:
    url: str
    db: str
    api_key: str
    account: str
    registry: Proc
    node: Proc
    node_url: str
    flag: Path
    other: Proc | None = None  # a second replica (PostgreSQL)
    other_url: list[str] | None = None


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LLM_MESH_HOME=str(home), LLM_MESH_HEARTBEAT_S="1", LLM_MESH_ADMIN_KEY=ADMIN_KEY,
        LLM_MESH_REQUEST_TIMEOUT_S="30", PYTHONUNBUFFERED="1", **extra,
    )  # fmt: skip
    return env


def _prepare(db: str, home: Path) -> tuple[str, str, str]:
    async def go() -> tuple[str, str, str]:
        from LLM_Mesh.config import Settings
        from LLM_Mesh.registry.admin import add_operator, ensure_admin_key
        from LLM_Mesh.registry.api_keys import create_api_key
        from LLM_Mesh.registry.gateway_key import load_or_create_registry_key
        from LLM_Mesh.registry.ledger_grant import grant

        async with SqlStore(db) as store:
            await ensure_admin_key(Settings(home=home, database_url=db, admin_key=ADMIN_KEY), store)
            token = await add_operator(store, "e2e")
            made = await create_api_key(store, name="e2e-kill")
            assert token is not None and made is not None
            entry, _ = await grant(store, "e2e-kill", GRANT)
        load_or_create_registry_key(home / "registry.key")  # replicas share it (docs/deploy.md)
        return token, made[0], entry.to_account

    home.mkdir(parents=True, exist_ok=True)
    return asyncio.run(go())


def _wait(pred: Any, timeout: float, what: str, *procs: Proc) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {' '.join(p.args[:3])}\n{p.tail()}" for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _routable(url: str) -> bool:
    try:
        nodes = httpx.get(url + "/mesh/nodes", timeout=3).json().get("nodes", [])
    except (httpx.HTTPError, ValueError):
        return False
    return any(n.get("healthy") for n in nodes)


@contextmanager
def _lone(tmp_path: Path, point: str, db: str | None = None) -> Iterator[Lone]:
    """A registry armed to die at ``point`` (on ``db``: default a SQLite file), a sim node;
    on PostgreSQL a second replica too (``Lone.other``), the node registered with both."""
    home = tmp_path / "registry"
    db = db or f"sqlite:///{tmp_path / 'registry.db'}"
    token, api_key, account = _prepare(db, home)
    port, node_port = free_port(), free_port()
    url, node_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{node_port}"
    flag = tmp_path / "kill-now"
    serve = ["registry", "serve", "--host", "127.0.0.1", "--database-url", db,
             "--allow-private-nodes", "--anonymous-rpm", "0"]  # fmt: skip
    registry = Proc(
        ["-m", "tests.e2e.killed_registry", *serve, "--port", str(port)],
        _env(home, LLM_MESH_TEST_KILL_AT=point, LLM_MESH_TEST_KILL_FILE=str(flag)),
        tmp_path / "registry.log",
    )
    urls, other = [url], None
    if db.startswith("postgresql"):  # a second replica: same store, same registry key
        other_port = free_port()
        other_home = tmp_path / "replica"
        other_home.mkdir()
        shutil.copy2(home / "registry.key", other_home / "registry.key")
        other = Proc(["-m", "LLM_Mesh.cli", *serve, "--port", str(other_port)],
                     _env(other_home), tmp_path / "replica.log")  # fmt: skip
        urls.append(f"http://127.0.0.1:{other_port}")
    node_home = tmp_path / "node"
    node_home.mkdir()
    node = Proc(
        ["-m", "LLM_Mesh.cli", "node", "start", "--registry", ",".join(urls), "--host",
         "127.0.0.1", "--port", str(node_port), "--no-config", "--model", MODEL, "--engine",
         "sim", "--sim-tokens-per-s", "1000", "--sim-ttft-s", "0.02"],
        _env(node_home, LLM_MESH_OPERATOR_TOKEN=token), tmp_path / "node.log",
    )  # fmt: skip
    lone = Lone(url, db, api_key, account, registry, node, node_url, flag, other, urls[1:])
    procs = [p for p in (registry, other) if p is not None]
    try:
        for p in procs:
            p.start()
        for u in urls:
            _wait(lambda u=u: _get(u + "/healthz") is not None, START_S, f"registry {u}", *procs)
        node.start()
        for u in urls:
            _wait(lambda u=u: _routable(u), START_S, f"the node routable at {u}", *procs, node)
        yield lone
    finally:
        node.stop()
        for p in procs:
            p.stop()


def _get(url: str) -> Any:
    try:
        r = httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _ask(lone: Lone, request_id: str, url: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {lone.api_key}", "X-Request-Id": request_id}
    return httpx.post(
        (url or lone.url) + "/v1/chat/completions", json=BODY, headers=headers, timeout=30
    )


async def _books(db: str, account: str) -> dict[str, Any]:
    async with SqlStore(db) as store, store.engine.connect() as conn:

        async def one(sql: str, **kw: Any) -> Any:
            return (await conn.execute(text(sql), kw)).all()

        balance = await one("SELECT balance, reserved FROM balances WHERE account = :a", a=account)
        return {
            "balance": int(balance[0][0]), "reserved": int(balance[0][1]),
            "in_flight": await one(
                "SELECT request_id, state FROM settlements WHERE state IN ('pending', 'answered')"
            ),
            "leases": await one("SELECT holder, amount FROM settle_leases"),
            "debits": await one(
                "SELECT request_id, SUM(amount) FROM ledger_entries WHERE from_account = :a"
                " GROUP BY request_id", a=account,
            ),
            "settled": await one(
                "SELECT request_id, state FROM settlements WHERE part = 0 AND state = 'settled'"
            ),
        }  # fmt: skip


def _drained(lone: Lone) -> dict[str, Any]:
    """The books once no row is in flight and nothing is reserved: a dead replica's are
    recovered by another once its heartbeat is 30 s old (``holder_ttl_s``), a restart's at
    its start. (``_books`` reads the balance before the rows, not in one snapshot: CI
    2026-12-06 read a reservation its settlement released between the two reads.)"""
    deadline = time.monotonic() + scaled(30 + SOON_S)  # the 30 s, then a few polls
    while True:
        got = asyncio.run(_books(lone.db, lone.account))
        drained = not got["in_flight"] and not got["leases"] and got["reserved"] == 0
        if drained or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def _settled(lone: Lone, request_id: str) -> bool:
    """Whether ``request_id``'s debit is in the ledger and nothing is in flight or reserved."""
    got = asyncio.run(_books(lone.db, lone.account))
    paid = any(str(k).startswith(client_ledger_id(request_id) + "~") for k, _ in got["debits"])
    return paid and not got["in_flight"] and got["reserved"] == 0


def _served(lone: Lone) -> int:
    return int(httpx.get(lone.node_url + "/mesh/info", timeout=5).json()["requests_served"])


def _killed_then_restarted(lone: Lone, request_id: str) -> None:
    """Ask with the flag set: the registry dies at its point; start it again, flag gone."""
    lone.flag.touch()
    with pytest.raises(httpx.HTTPError):  # no answer: the process died before sending it
        _ask(lone, request_id)
    assert lone.registry.proc is not None
    assert lone.registry.proc.wait(scaled(SOON_S)) == -9, lone.registry.tail()
    lone.flag.unlink()
    lone.registry.stop()  # its log closed; the process is gone
    lone.registry.start()
    _wait(lambda: _routable(lone.url), START_S, "the node routable again", lone.registry, lone.node)


def _check(lone: Lone, ok: dict[str, int], retried: str) -> dict[str, Any]:
    """The books once drained (module docstring); ``ok``: request id → ``mesh.cost`` of the
    answers the client got; ``retried``: the id killed and sent again."""
    got = _drained(lone)
    assert got["in_flight"] == [] and got["leases"] == [] and got["reserved"] == 0, got
    debits = {str(k): int(v) for k, v in got["debits"]}
    paid = sum(debits.values())
    assert got["balance"] == GRANT - paid, got
    for rid, cost in ok.items():  # each answer the client got: its one ledger key, its cost
        keys = [k for k in debits if k.startswith(client_ledger_id(rid) + "~")]
        assert len(keys) == 1 and debits[keys[0]] == cost, (rid, keys, debits)
    keys = [k for k in debits if k.startswith(client_ledger_id(retried) + "~")]
    assert len(keys) <= 1, f"{retried} paid under {len(keys)} ledger keys: {keys}"
    out = CliRunner().invoke(app, ["ledger", "verify", "--database-url", lone.db])
    assert out.exit_code == 0, out.output
    return got


@pytest.fixture
def killed_answered(tmp_path: Path) -> Iterator[Lone]:
    with _lone(tmp_path, "answered") as lone:
        yield lone


@pytest.fixture
def killed_appending(tmp_path: Path) -> Iterator[Lone]:
    with _lone(tmp_path, "appending") as lone:
        yield lone


@pytest.fixture
def killed_unwritten(tmp_path: Path) -> Iterator[Lone]:
    with _lone(tmp_path, "unwritten") as lone:
        yield lone


@pytest.fixture
def killed_replica(tmp_path: Path, pg_database_url: str) -> Iterator[Lone]:
    with _lone(tmp_path, "answered", pg_database_url) as lone:
        yield lone


def test_a_registry_killed_after_paying_an_answer_refuses_its_retry_and_pays_once(
    killed_answered: Lone,
) -> None:
    """Killed with the answer paid (committed) and not sent: the restart recovers it (paid
    once, settled), and the retry of its id is refused 409, never run on the node again."""
    lone = killed_answered
    first = _ask(lone, "kill-a")
    assert first.status_code == 200, first.text
    _killed_then_restarted(lone, "kill-b")
    retry = _ask(lone, "kill-b")
    assert retry.status_code == 409, retry.text
    assert retry.json()["error"]["code"] == "duplicate_request"
    after = _ask(lone, "kill-c")
    assert after.status_code == 200, after.text
    assert _served(lone) == 3  # a, b (killed before its answer went out), c: b never twice
    ok = {"kill-a": first.json()["mesh"]["cost"], "kill-c": after.json()["mesh"]["cost"]}
    got = _check(lone, ok, "kill-b")
    paid_b = [k for k, _ in got["debits"] if str(k).startswith(client_ledger_id("kill-b"))]
    assert len(paid_b) == 1  # it ran and was answered: paid once, by the restart's recovery


def test_a_registry_killed_inside_its_settlers_append_settles_once_after_restart(
    killed_appending: Lone,
) -> None:
    """Killed inside the settler's ledger transaction (not committed): SQLite rolls it back
    at the restart, whose recovery settles the answered rows once; an answer the client got
    is paid, and its retry refused."""
    lone = killed_appending
    first = _ask(lone, "kill-a")  # its settling (0.2 s later) kills the process: flag off yet
    assert first.status_code == 200, first.text
    # settled before the flag is set: a fixed 1 s was not always enough on a loaded box, and
    # the settler then died appending kill-a's entries, not kill-b's (flaky36)
    _wait(lambda: _settled(lone, "kill-a"), SOON_S, "kill-a settled", lone.registry)
    lone.flag.touch()
    second = _ask(lone, "kill-b")  # answered; the settler dies in its append
    assert second.status_code == 200, second.text
    assert lone.registry.proc is not None
    assert lone.registry.proc.wait(scaled(SOON_S)) == -9, lone.registry.tail()
    lone.flag.unlink()
    lone.registry.stop()
    lone.registry.start()
    _wait(lambda: _routable(lone.url), START_S, "the node routable again", lone.registry, lone.node)
    retry = _ask(lone, "kill-b")
    assert retry.status_code == 409, retry.text
    ok = {"kill-a": first.json()["mesh"]["cost"], "kill-b": second.json()["mesh"]["cost"]}
    _check(lone, ok, "kill-b")
    assert _served(lone) == 2


@pytest.mark.postgres
def test_a_replica_killed_after_paying_an_answer_is_refused_elsewhere_and_paid_once(
    killed_replica: Lone,
) -> None:
    """Two replicas on one PostgreSQL; one killed with an answer paid and not sent, never
    started again: the retry of its id at the other is refused 409 (``owner_lost`` once the
    dead replica's beat is old), never run again; the other replica's recovery settles the
    dead one's answered request once, and the books verify."""
    lone = killed_replica
    assert lone.other_url
    there = lone.other_url[0]
    first = _ask(lone, "kill-a")
    assert first.status_code == 200, first.text
    lone.flag.touch()
    with pytest.raises(httpx.HTTPError):
        _ask(lone, "kill-b")
    assert lone.registry.proc is not None
    assert lone.registry.proc.wait(scaled(SOON_S)) == -9, lone.registry.tail()
    lone.flag.unlink()
    retry = _ask(lone, "kill-b", there)
    assert retry.status_code == 409, retry.text
    assert retry.json()["error"]["code"] == "duplicate_request"
    after = _ask(lone, "kill-c", there)
    assert after.status_code == 200, after.text
    ok = {"kill-a": first.json()["mesh"]["cost"], "kill-c": after.json()["mesh"]["cost"]}
    got = _check(lone, ok, "kill-b")
    paid_b = [k for k, _ in got["debits"] if str(k).startswith(client_ledger_id("kill-b"))]
    assert len(paid_b) == 1  # answered at the dead replica: paid once, by the other's recovery
    assert _served(lone) == 3


def test_a_registry_killed_with_an_answer_it_could_not_write_pays_it_after_restart(
    killed_unwritten: Lone,
) -> None:
    """Its settlement database away, an answer's write failed (the answer on its way out),
    then the registry killed: its restart on the same home records and settles that answer
    once (kept in the home: ``settlement.unwritten``), and the retry of its id is refused."""
    lone = killed_unwritten
    first = _ask(lone, "kill-a")
    assert first.status_code == 200, first.text
    _killed_then_restarted(lone, "kill-b")
    retry = _ask(lone, "kill-b")
    assert retry.status_code == 409, retry.text
    ok = {"kill-a": first.json()["mesh"]["cost"]}
    got = _check(lone, ok, "kill-b")
    paid_b = [k for k, _ in got["debits"] if str(k).startswith(client_ledger_id("kill-b"))]
    assert len(paid_b) == 1, got["debits"]  # served, then paid by the restart
    assert _served(lone) == 2
