"""Two registry processes on one database: 200 concurrent requests against a balance that
covers about 50 never overspend (real processes on loopback, SIMULATED sim nodes).

Each registry (its own gateway, its own settlement holder and connection) has its own sim
node; the key's balance is one row in the shared SQLite file, so the reservation's
atomicity is the database's, across processes. Afterwards the books are checked as
anyone would: ``llm-mesh ledger verify --database-url``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.pricing import estimate
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_grant import grant
from LLM_Mesh.registry.settle_ledger import balance
from LLM_Mesh.registry.settlement import user_account
from LLM_Mesh.registry.store import SqlStore
from tests.e2e.conftest import start_mesh
from tests.waiting import SOON_S, scaled

MODEL = "mistral-7b"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
N, COVERS = 200, 50
NODE = ["--sim-ttft-s", "0.05", "--sim-tokens-per-s", "1000000", "--max-concurrency", "256",
        "--max-queue", "256"]  # fmt: skip


async def _key(db: str, amount: int) -> tuple[str, str]:
    async with SqlStore(db) as store:
        made = await create_api_key(store, name="shared")
        assert made is not None
        await grant(store, made[1].key_id, amount)
        return made[0], user_account(made[1].key_id)


async def _fire(urls: list[str], key: str) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=N)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        for url in urls:  # the key into each gateway's cache (uncached look-ups are limited)
            r = await client.get(url + "/v1/balance", headers=headers)
            assert r.status_code == 200, r.text
        return await asyncio.gather(
            *(
                client.post(urls[i % 2] + "/v1/chat/completions", json=BODY, headers=headers)
                for i in range(N)
            )
        )


async def _books(db: str, account: str) -> tuple[int, int, int, dict[str, int]]:
    async with SqlStore(db) as store:

        async def engine() -> object:
            return store.engine

        ledger = SqlLedger(engine)  # type: ignore[arg-type]
        held, reserved = await balance(store.engine, account)
        entries, _ = await ledger.entries(-1, 100_000)
        paid = sum(e.amount for e in entries if e.from_account == account)
        return held, reserved, paid, await ledger.balances()


@pytest.mark.e2e
def test_two_registries_on_one_database_never_overspend(tmp_path: Path) -> None:
    spec = get_spec(MODEL)
    assert spec is not None
    est = estimate(spec.price, "hi", 5, spec.context_length, 1)
    start = COVERS * est + est // 2
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    one = start_mesh(tmp_path / "one", model=MODEL, engine="sim", node_args=NODE, database_url=db)
    try:
        two = start_mesh(
            tmp_path / "two", model=MODEL, engine="sim", node_args=NODE, database_url=db
        )
        try:
            key, account = asyncio.run(_key(db, start))
            answers = asyncio.run(_fire([one.registry_url, two.registry_url], key))
            codes = [r.status_code for r in answers]
            assert set(codes) <= {200, 402}, [r.text for r in answers if r.status_code >= 300][:3]
            ok = codes.count(200)
            assert COVERS <= ok < N
            charged = sum(r.json()["mesh"]["cost"] for r in answers if r.status_code == 200)
            served = 0
            with httpx.Client(timeout=10.0) as c:
                for mesh in (one, two):  # what the nodes did: no 402 reached one
                    served += c.get(mesh.node_url + "/mesh/info").json()["requests_served"]
            assert served == ok
            deadline = time.monotonic() + scaled(SOON_S)
            while True:  # the settlers (every 0.2 s) finish
                held, reserved, paid, sums = asyncio.run(_books(db, account))
                if reserved == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert reserved == 0 and held >= 0
            assert held == start - paid and paid == charged
            assert sum(sums.values()) == 0  # every credit has its debit
            runner = CliRunner()
            out = runner.invoke(app, ["ledger", "verify", "--database-url", db])
            assert out.exit_code == 0, out.output
        finally:
            two.stop()
    finally:
        one.stop()
