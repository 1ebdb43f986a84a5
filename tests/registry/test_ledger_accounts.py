"""Keyed ledger accounts (``registry/ledger_accounts.py``): one key per database, shared
by replicas, and the move of a store's unkeyed accounts (before migration 0018) to the
keyed ones, on SQLite and PostgreSQL. Found 2026-12-03: an operator's account was an
unkeyed hash of its name (docs/security.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, Transfer, pseudonym
from LLM_Mesh.registry import ledger_accounts, tables
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import pseudonyms, rekey
from LLM_Mesh.registry.ports import NodeRecord
from LLM_Mesh.registry.store import SqlStore, upgrade

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
REAL_NEW_KEY = ledger_accounts.new_key  # at import: before the tests' fixture replaces it
USER = pseudonym("user", "key-1")


def _ledger(engine: AsyncEngine) -> SqlLedger:
    async def get() -> AsyncEngine:
        return engine

    return SqlLedger(get)


async def test_replicas_on_one_database_make_and_read_one_key(
    database_url: str, monkeypatch: Any
) -> None:
    """Two registries starting at once on one database (each with its own engine) read
    the same random key, so they name every account alike; it is no unkeyed hash."""
    monkeypatch.undo()  # the real key maker, not the tests' fixed key (tests/conftest.py)
    assert ledger_accounts.new_key is REAL_NEW_KEY
    async with SqlStore(database_url) as a, SqlStore(database_url) as b:
        ka, kb = await asyncio.gather(pseudonyms(a.engine), pseudonyms(b.engine))
        assert ka.operator("alice") == kb.operator("alice")
        assert ka.held("n1") == kb.held("n1") and ka.node("n1") == kb.node("n1")
        assert ka.operator("alice") != pseudonym("operator", "alice")
        async with a.engine.connect() as conn:
            (key,) = (await conn.execute(select(tables.ledger_secrets.c.value))).scalars()
        assert len(bytes(key)) == 32
    async with SqlStore(database_url) as later:  # a restart reads it again
        assert (await pseudonyms(later.engine)).operator("alice") == ka.operator("alice")
    async with SqlStore(database_url.replace("registry.db", "other.db")) as other:
        if other.engine.dialect.name == "sqlite":  # another database: another key
            assert (await pseudonyms(other.engine)).operator("alice") != ka.operator("alice")


async def _store_of_0017(url: str) -> None:
    """A store as the previous version left it: operators, nodes, and balances under the
    unkeyed accounts, in the ledger and in ``settlements`` and ``reward_periods``."""
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0017")
            await conn.execute(
                insert(tables.operators),
                [{"name": "alice", "token_hash": "t" * 64, "created_at": NOW}],
            )
            await conn.execute(
                insert(tables.node_keys),
                [
                    {"node_id": n, "public_key": n * 8, "operator": "alice", "created_at": NOW}
                    for n in ("n1", "n2")
                ],
            )
            for part, (node, to, state) in enumerate(
                (
                    ("n1", pseudonym("operator", "alice"), "settled"),
                    ("n2", pseudonym("held", "n2"), "answered"),  # not yet settled
                )
            ):
                await conn.execute(
                    insert(tables.settlements).values(
                        request_id=f"r{part}",
                        part=0,
                        payer=USER,
                        node_id=node,
                        operator=to,
                        model="m",
                        estimate=100,
                        amount=100,
                        fee=5,
                        state=state,
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
            await conn.execute(
                insert(tables.reward_periods).values(
                    node_id="n1",
                    period_start=0,
                    period_s=3600,
                    operator=pseudonym("operator", "alice"),
                    healthy_ms=1,
                    mark_ms=1,
                    performance=1000,
                    success=1000,
                    amount=40,
                    entry_seq=5,
                    created_at=NOW,
                )
            )
        await _ledger(engine).append(
            [
                Transfer("grant", MINT, USER, 1000),
                Transfer("settle", USER, pseudonym("operator", "alice"), 95, "r0"),
                Transfer("fee", USER, NETWORK, 5, "r0"),
                Transfer("hold", USER, pseudonym("held", "n2"), 60, "r9"),
                Transfer("settle", USER, pseudonym("node", "n3"), 30, "r8"),  # no key
                Transfer("settle", USER, pseudonym("operator", "gone"), 7, "r7"),  # unknown
                Transfer("reward", MINT, pseudonym("operator", "alice"), 40, "reward:0:x"),
            ]
        )
    finally:
        await engine.dispose()


async def test_old_accounts_move_to_keyed_ones_once_and_the_ledger_still_verifies(
    database_url: str,
) -> None:
    """Upgrading a 0017 store: each known old account's balance moves to its keyed account
    by one ``rekey`` entry, its rows follow it, and two registries starting at once (and
    every later start) move nothing more; the supply is unchanged and ``ledger verify
    --database-url`` (``StoreSource``: entries, tree, every ``balances`` row) passes."""
    await _store_of_0017(database_url)
    async with SqlStore(database_url) as a, SqlStore(database_url) as b:  # migrates: 0018
        n3 = NodeRecord("n3", "http://n3", None, [], {}, 1, 1, "v", "online", NOW, None)
        await a.upsert_node(n3)  # a node without a key (paid as ``node:``)
        la, lb = _ledger(a.engine), _ledger(b.engine)
        before = await la.balances()
        moved = await asyncio.gather(rekey(la), rekey(lb))
        assert sorted(moved) == [0, 95 + 40 + 60 + 30]
        assert await rekey(la) == 0  # a later start
        keyed = await pseudonyms(a.engine)
        after = await la.balances()
        entries, _ = await la.entries(-1, 100)
    rekeys = [(e.from_account, e.to_account, e.amount) for e in entries if e.kind == "rekey"]
    assert sorted(rekeys) == sorted(
        [
            (pseudonym("held", "n2"), keyed.held("n2"), 60),
            (pseudonym("node", "n3"), keyed.node("n3"), 30),
            (pseudonym("operator", "alice"), keyed.operator("alice"), 135),
        ]
    )
    assert after[keyed.operator("alice")] == 135 and after[pseudonym("operator", "alice")] == 0
    assert after[keyed.held("n2")] == 60 and after[keyed.node("n3")] == 30
    assert after[pseudonym("operator", "gone")] == 7  # no name for it in the store: stays
    assert after[MINT] == before[MINT] == -1040 and sum(after.values()) == 0
    async with SqlStore(database_url) as store:
        s, rp = tables.settlements, tables.reward_periods
        async with store.engine.connect() as conn:
            rows = dict((await conn.execute(select(s.c.request_id, s.c.operator))).all())
            rewarded = (await conn.execute(select(rp.c.operator))).scalar_one()
        assert rows == {"r0": keyed.operator("alice"), "r1": keyed.held("n2")}
        assert rewarded == keyed.operator("alice")  # the operator's earnings read these
        report = await audit(StoreSource(_ledger(store.engine), "test"))
    assert report.ok, report.findings
    assert report.balances[keyed.operator("alice")] == 135


async def test_a_registry_starting_on_an_old_store_moves_its_accounts(
    database_url: str, tmp_path: Any
) -> None:
    """The app's start runs the move, before it serves: the operator then reads its
    earnings under its keyed account (``GET /v1/earnings`` reads the same)."""
    from LLM_Mesh.registry.app import create_registry_app
    from tests.registry.helpers import make_settings

    await _store_of_0017(database_url)
    store = SqlStore(database_url)
    app = create_registry_app(make_settings(tmp_path), store=store, announce=lambda _k: None)
    async with app.router.lifespan_context(app):
        ledger = app.state.runtime.ledger
        keyed = await pseudonyms(await ledger.engine())
        balances = await ledger.balances()
    assert balances[keyed.operator("alice")] == 135
    assert balances[pseudonym("operator", "alice")] == 0
