"""Keyed ledger accounts (``registry/ledger_accounts.py``): one key per database, shared
by replicas, and an upgraded store's unkeyed accounts (before migration 0018), on SQLite
and PostgreSQL. Found 2026-12-03: an operator's account was an unkeyed hash of its name
(docs/security.md); then that the upgrade's ``rekey`` entries linked each old account to
its keyed one in public, so the old balances now stay where they are: the operator's
views add both up, and an old held balance is released to the old account."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, Transfer, pseudonym
from LLM_Mesh.registry import ledger_accounts, tables
from LLM_Mesh.registry.held import clear_and_release, forfeit, release, revoke_and_forfeit
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import pseudonyms
from LLM_Mesh.registry.ports import NodeRecord
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_migrate import upgrade

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


TOKEN = "lmo_alice-token"
HOUR = int(NOW.timestamp()) - 3600  # a reward period inside the earnings' window
NODES = ("n1", "n2", "n3")  # public ids (GET /mesh/nodes): n1, n2 alice's, n3 keyless
SHARED = ("mint", "pool", "network")


def _old(kind: str, name: str) -> str:
    return pseudonym(kind, name)


OLD_ENTRIES = 9  # what the previous version left in the ledger (_store_of_0017)


async def _store_of_0017(url: str) -> None:
    """A store as the previous version left it: operators, nodes, and balances under the
    unkeyed accounts, in the ledger and in ``settlements`` and ``reward_periods``."""
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0017")
            await conn.execute(
                insert(tables.operators),
                [{"name": "alice", "token_hash": hash_secret(TOKEN), "created_at": NOW}],
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
                    ("n1", _old("operator", "alice"), "settled"),
                    ("n2", _old("held", "n2"), "answered"),  # settled by the start's recovery
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
                    period_start=HOUR,
                    period_s=3600,
                    operator=_old("operator", "alice"),
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
                Transfer("settle", USER, _old("operator", "alice"), 95, "r0"),
                Transfer("fee", USER, NETWORK, 5, "r0"),
                Transfer("hold", USER, _old("held", "n2"), 60, "r9"),
                Transfer("hold", USER, _old("held", "n1"), 25, "r10"),
                Transfer("hold", USER, _old("held", "n3"), 15, "r11"),
                Transfer("settle", USER, _old("node", "n3"), 30, "r8"),  # no key
                Transfer("settle", USER, _old("operator", "gone"), 7, "r7"),  # unknown
                Transfer("reward", MINT, _old("operator", "alice"), 40, "reward:0:x"),
            ]
        )
        async with engine.begin() as conn:  # what the answered request r1 holds
            b = tables.balances
            await conn.execute(update(b).where(b.c.account == USER).values(reserved=100))
    finally:
        await engine.dispose()


@asynccontextmanager
async def _started(url: str, tmp_path: Any) -> AsyncIterator[tuple[Any, SqlStore, SqlLedger]]:
    """A registry started on the 0017 store at ``NOW``: (app, store, ledger)."""
    from LLM_Mesh.registry.app import create_registry_app
    from tests.registry.helpers import make_settings

    await _store_of_0017(url)
    store = SqlStore(url)
    await store.open()
    await store.upsert_node(  # a node without a key (paid as ``node:``)
        NodeRecord("n3", "http://n3", None, [], {}, 1, 1, "v", "online", NOW, None)
    )
    app = create_registry_app(
        make_settings(tmp_path), store=store, announce=lambda _k: None,
        wall_clock=NOW.timestamp,
    )  # fmt: skip
    async with app.router.lifespan_context(app):
        yield app, store, app.state.runtime.ledger


def _linked_from(entries: list[Any], start: set[str]) -> set[str]:
    """Every account an observer reaches from ``start`` by following the public entries
    (an entry naming two accounts links them; the shared ``mint``, ``pool``, ``network``
    and users' accounts link everyone, so they are not followed)."""
    reach = set(start)
    grew = True
    while grew:
        grew = False
        for e in entries:
            a, b = e.from_account, e.to_account
            if a in SHARED or b in SHARED or a.startswith("user:") or b.startswith("user:"):
                continue
            if (a in reach) != (b in reach):
                reach |= {a, b}
                grew = True
    return reach


async def test_the_public_ledger_does_not_lead_from_a_guessed_name_to_its_keyed_account(
    database_url: str, tmp_path: Any
) -> None:
    """The attack: an observer hashes a guessed operator name and the listed node ids as
    the accounts of before 0018 were made, then follows the public ledger from them. After
    an upgrade with balances under those accounts, a start, new earnings, and the admin's
    clear, forfeit and release of old held balances, no entry names an old account and
    a keyed one of the same operator or node, so the keyed accounts stay out of reach;
    the supply is unchanged and ``ledger verify --database-url``'s audit passes. (Until
    2026-12-03 the start wrote a ``rekey`` entry from each old account to its keyed one.)"""
    async with _started(database_url, tmp_path) as (app, store, ledger):
        before = await ledger.balances()
        keyed = await pseudonyms(store.engine)
        await ledger.append(  # earned after the upgrade, under the keyed accounts
            [
                Transfer("grant", MINT, USER, 500),
                Transfer("settle", USER, keyed.operator("alice"), 50, "r20"),
                Transfer("hold", USER, keyed.held("n2"), 20, "r21"),
                Transfer("settle", USER, keyed.node("n3"), 10, "r22"),
                Transfer("reward", MINT, keyed.operator("alice"), 40, "reward:1:x"),
            ]
        )
        paid = [
            await forfeit(ledger, "n1"),
            (await clear_and_release(store, "n2", NOW))[1:],
            await release(ledger, "n3"),
        ]
        entries, _ = await ledger.entries(-1, 1000)
        after = await ledger.balances()
        origin = app.state.runtime.settings.ledger_origin
        report = await audit(StoreSource(_ledger(store.engine), origin))
    olds = {_old("operator", "alice")} | {_old(k, n) for k in ("node", "held") for n in NODES}
    news = {keyed.operator("alice")} | {keyed.of(k, n) for k in ("node", "held") for n in NODES}
    later = entries[OLD_ENTRIES:]  # the start's own entries too
    assert entries[OLD_ENTRIES - 1].kind == "reward"
    assert not [e for e in later if e.kind == "rekey"]
    assert not [e for e in later if {e.from_account, e.to_account} & olds
                and {e.from_account, e.to_account} & news]  # fmt: skip
    assert not _linked_from(entries, olds) & news
    assert report.ok, report.findings
    assert after[MINT] == before[MINT] - 540 and sum(after.values()) == 0
    assert paid == [25, (155 + 20, keyed.operator("alice")), (15, keyed.node("n3"))]


async def test_the_operators_views_add_up_its_old_and_its_keyed_account(
    database_url: str, tmp_path: Any
) -> None:
    """After the upgrade the old balance stays under the old account (no entry moves it),
    and ``GET /v1/earnings`` (which ``llm-mesh earnings`` and ``node info`` print) and the
    dashboard's operator view show old and new together: balance, requests, rewards and
    what is held (the old held account too)."""
    from LLM_Mesh.registry.dashboard.operator_view import operator_earnings

    async with _started(database_url, tmp_path) as (app, store, ledger):
        keyed = await pseudonyms(store.engine)
        row = dict(
            request_id="r20", part=0, payer=USER, node_id="n2", operator=keyed.operator("alice"),
            model="m", estimate=60, amount=60, fee=10, state="settled", created_at=NOW,
            updated_at=NOW,
        )  # fmt: skip
        async with store.engine.begin() as conn:
            await conn.execute(insert(tables.settlements).values(**row))
        await ledger.append(
            [
                Transfer("settle", USER, keyed.operator("alice"), 50, "r20"),
                Transfer("hold", USER, keyed.held("n2"), 20, "r21"),
            ]
        )
        balances = await ledger.balances()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/v1/earnings", headers={"Authorization": f"Bearer {TOKEN}"})
        rec = await store.operator_by_token(hash_secret(TOKEN))
        assert rec is not None
        view = await operator_earnings(app.state.runtime, rec, {"n1": False, "n2": False})
    assert balances[_old("operator", "alice")] == 135  # not moved
    assert balances[keyed.operator("alice")] == 50
    assert r.status_code == 200, r.text
    for report in (r.json(), view):
        assert view is not None
        assert report["account"] == keyed.operator("alice")
        assert report["old_account"] == _old("operator", "alice")
        assert report["balance"] == 135 + 50
        assert report["totals"]["requests"] == 2 and report["totals"]["earned"] == 95 + 50
        assert report["totals"]["rewards"] == 40
        assert report["held_by_node"] == {"n1": 25, "n2": 60 + 95 + 20}


async def test_an_old_held_balance_is_released_to_the_old_account_or_forfeited(
    database_url: str, tmp_path: Any
) -> None:
    """A node's held balance of before the upgrade: the admin's clear releases it to the
    operator's old account (an operator-less node's: to the node's old account), never to
    a keyed one; a revocation forfeits it to ``network`` as before."""
    async with _started(database_url, tmp_path) as (_app, store, ledger):
        upgraded = len((await ledger.entries(-1, 1000))[0])
        assert await revoke_and_forfeit(store, ["n1"]) == {"n1": 25}
        _models, amount, _to = await clear_and_release(store, "n2", NOW)
        assert amount == 60 + 95
        await release(ledger, "n3")
        entries, _ = await ledger.entries(-1, 1000)
        balances = await ledger.balances()
    moves = [(e.kind, e.from_account, e.to_account, e.amount) for e in entries[upgraded:]]
    assert moves == [
        ("forfeit", _old("held", "n1"), NETWORK, 25),
        ("release", _old("held", "n2"), _old("operator", "alice"), 60 + 95),
        ("release", _old("held", "n3"), _old("node", "n3"), 15),
    ]
    assert balances[_old("operator", "alice")] == 135 + 60 + 95
    assert not [a for a, b in balances.items() if a.startswith("held:") and b]
