"""Alembic migrations of the registry store: head matches ``tables.metadata``, down and up work."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import CheckRecord
from LLM_Mesh.registry.snapshot import load_nodes
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_migrate import MIGRATIONS_DIR, alembic_config, downgrade, upgrade
from tests.registry.test_store import T0, node, request

ALL_TABLES = {
    "admin_key", "api_keys", "node_keys", "nodes", "operators", "requests", "ledger_checkpoints",
    "ledger_entries", "ledger_head", "ledger_keys", "ledger_nodes", "settlements",
    "canary_status", "canary_verifiers", "idempotency_keys", "node_checks", "registry_replicas",
    "reward_periods", "balances", "settle_holders", "pool_days", "settle_batches",
    "poll_versions", "ledger_cosignatures", "settle_leases", "ledger_secrets",
    "usage_audit_windows", "usage_audit_evidence", "usage_audit_folds", "canary_departures",
    "cut_receipts", "unpaid_served", "canary_verifier_models",
}  # fmt: skip


def _engine(url: str) -> AsyncEngine:
    return create_async_engine(normalize_database_url(url))


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, tables.metadata))


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _user_tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def test_one_head_and_packaged_files_exist() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == ["0036"]
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


async def test_head_matches_metadata(database_url: str) -> None:
    async with SqlStore(database_url):
        pass
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_current) == "0036"
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_then_upgrade_again(database_url: str) -> None:
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
            assert await conn.run_sync(_user_tables) == ALL_TABLES
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert await conn.run_sync(_user_tables) == set()
            assert await conn.run_sync(_current) is None
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "head")
        async with engine.connect() as conn:
            assert await conn.run_sync(_current) == "0036"
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
    # and the store is happy with the result
    async with SqlStore(database_url) as store:
        assert await store.list_nodes() == []


async def test_empty_diff_is_not_vacuous(database_url: str) -> None:
    """On an empty database the comparison does report the missing tables."""
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    added = {d[1].name for d in diff if d[0] == "add_table"}
    assert added == ALL_TABLES


async def test_0003_adds_api_keys_on_top_of_0002(database_url: str) -> None:
    """0003 goes on a 0002 store (an upgrade in place) and comes off again."""
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0002")
            assert "api_keys" not in await conn.run_sync(_user_tables)
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0003")
            assert "api_keys" in await conn.run_sync(_user_tables)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0002")
            assert await conn.run_sync(_current) == "0002"
            assert "api_keys" not in await conn.run_sync(_user_tables)
    finally:
        await engine.dispose()


# NodeRecord fields whose columns are newer than the revisions these tests write rows at
NEWER = frozenset(
    {"tls_fingerprint", "address", "keeps_no_prompts", "heard_store_at", "heard_age_s"}
)


def _counters(conn: Connection) -> dict[str, tuple[int, int, int]]:
    n = tables.nodes
    rows = conn.execute(select(n.c.node_id, n.c.requests, n.c.failures, n.c.tokens_generated))
    return {r.node_id: (r.requests, r.failures, r.tokens_generated) for r in rows}


async def test_0011_raises_the_node_counters_to_the_logs_totals_once(database_url: str) -> None:
    """A store whose ``nodes`` counters lag its request log (rows recorded before the
    counters were bumped) gets, per node and counter, the larger of the two, as every start
    computed before 0011; the counters then survive the log's pruning and a start reads
    them without the log."""
    n = {
        "lag": (0, 0, 0),  # log: 3 requests, 1 failure, 10 tokens
        "ahead": (10, 2, 50),  # log: 1 request, 0 failures, 5 tokens
        "mixed": (5, 0, 1),  # log: 2 requests, 1 failure, 5 tokens
        "quiet": (7, 1, 3),  # nothing in the log
    }
    log = [
        request(1, "lag"), request(2, "lag", outcome="error"), request(3, "lag"),
        request(4, "ahead"),
        request(5, "mixed", outcome="error"), request(6, "mixed"),
        request(7, "mixed", outcome="cancelled", completion_tokens=0),  # not a failure
        request(8, None, outcome="error"),  # no node could take it
        request(9, "gone"),  # no nodes row: creates none
    ]  # fmt: skip
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0010")
            for node_id, (req, fail, tok) in n.items():
                rec = node(node_id, requests=req, failures=fail, tokens_generated=tok)
                row = {k: v for k, v in asdict(rec).items() if k not in NEWER}  # 0017 ... 0033
                await conn.execute(insert(tables.nodes).values(row))
            await conn.execute(insert(tables.requests), [asdict(r) for r in log])
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0011")
        want = {"lag": (3, 1, 10), "ahead": (10, 2, 50), "mixed": (5, 1, 5), "quiet": (7, 1, 3)}
        async with engine.connect() as conn:
            assert await conn.run_sync(_counters) == want
        async with engine.begin() as conn:  # down and up again: nothing counted twice
            await conn.run_sync(downgrade, "0010")
            await conn.run_sync(upgrade, "0011")
        async with engine.connect() as conn:
            assert await conn.run_sync(_counters) == want
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:
        assert await store.prune_requests(T0 + timedelta(days=1), 1000) == len(log)
        table = NodeTable(expiry_s=30.0)
        lab = NodeTransport(allow_plain_http=True)  # the rows: http://NODE.example nodes
        assert await load_nodes(table, store, transport=lab) == len(n)
        got = {e.node_id: (e.requests, e.failures, e.tokens_generated) for e in table.entries()}
    assert got == want


async def test_0014_cosignatures_go_on_a_0013_store_and_are_append_only(
    database_url: str,
) -> None:
    """A witness's cosignature, once stored, is not changed or removed (as the checkpoints
    it signs are not, 0004); the table comes off again with 0013."""
    from sqlalchemy.exc import DBAPIError

    engine = _engine(database_url)
    row = {"tree_size": 3, "witness": "w+00000000+AA==", "time_s": 1, "line": "\u2014 w x\n"}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0013")
            assert "ledger_cosignatures" not in await conn.run_sync(_user_tables)
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0014")
            await conn.execute(insert(tables.ledger_cosignatures), [row])
        for change in (
            "UPDATE ledger_cosignatures SET line = 'forged'",
            "DELETE FROM ledger_cosignatures",
        ):
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(change))
            except DBAPIError as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{change} was not refused")
        async with engine.connect() as conn:
            rows = (await conn.execute(select(tables.ledger_cosignatures))).all()
            assert [r.line for r in rows] == [row["line"]]
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0013")
            assert "ledger_cosignatures" not in await conn.run_sync(_user_tables)
    finally:
        await engine.dispose()


async def test_0016_check_rows_written_before_it_still_apply(database_url: str) -> None:
    """A ``node_checks`` row of a 0015 store has no ``since`` or ``why`` (NULL): it reads
    back without them, a result recorded on it sets both, and the columns come off again
    with 0015, the row kept."""
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    old = {"node_id": "n1", "holder": "r0", "lease_until": t1, "checked_at": t1, "ok": False}
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0015")
            await conn.execute(insert(tables.node_checks), [old])  # 0015's columns only
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # upgrades to head
        assert await store.health_checks_since(T0) == [CheckRecord("n1", False, t1)]
        await store.record_health_checks([CheckRecord("n1", False, t2, since=t2, why="HTTP 503")])
        assert await store.health_checks_since(t2) == [CheckRecord("n1", False, t2, t2, "HTTP 503")]
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0015")
            cols = {
                c["name"]
                for c in await conn.run_sync(lambda c: inspect(c).get_columns("node_checks"))
            }
            assert cols == {"node_id", "holder", "lease_until", "checked_at", "ok"}
            assert (await conn.execute(text("SELECT COUNT(*) FROM node_checks"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_0023_rows_written_before_it_have_no_address_and_still_block(
    database_url: str,
) -> None:
    """A live node row of a 0022 store gets no address (NULL, not backfilled): a
    registration at its address is still refused; the column comes off with 0022."""
    from LLM_Mesh.registry.ports import AddressTaken

    url = "https://shared.example:8801"
    old = node("old", url=url, last_heartbeat_at=T0)
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0022")
            await conn.execute(insert(tables.nodes).values(_row_0022(old)))
            triggers = await conn.run_sync(_triggers)
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # upgrades to head
        async with store.engine.connect() as conn:
            got = await conn.execute(select(tables.nodes.c.address))
            assert got.scalars().all() == [None]
        since = T0 - timedelta(seconds=30)
        try:
            await store.upsert_node(node("evil", url=url), address_live_since=since)
        except AddressTaken as exc:
            assert exc.holder == "old"
        else:
            raise AssertionError("a registration at a live pre-0023 node's address got in")
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0022")
            cols = {
                c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns("nodes"))
            }
            assert "address" not in cols
            assert await conn.run_sync(_triggers) == triggers  # 0013's kept (no table copy)
            assert (await conn.execute(text("SELECT COUNT(*) FROM nodes"))).scalar() == 1
    finally:
        await engine.dispose()


def _row_0022(rec: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(rec).items() if k in tables.nodes.c and k not in NEWER}


def _triggers(conn: Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    return {str(r[0]) for r in conn.execute(text(sql))}


async def test_0031_adds_cut_receipts_to_a_0030_store_and_comes_off_again(
    database_url: str,
) -> None:
    """A store at the previous head (0030, its rows kept) takes 0031 in place: the receipts
    nobody received are stored and read back (and verify); downgrading drops the table."""
    from tests.registry.test_store_cut_receipts import made, verified

    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0030")
            assert "cut_receipts" not in await conn.run_sync(_user_tables)
            await conn.execute(insert(tables.nodes), [_older(asdict(node("n1")))])
    finally:
        await engine.dispose()
    r = made()
    async with SqlStore(database_url) as store:  # opening migrates to head
        assert [n.node_id for n in await store.list_nodes()] == ["n1"]
        await store.record_cut_receipts([r])
        back = await store.cut_receipt(r.receipt_hash)
    assert back == r
    verified(back)
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_current) == "0036"
            assert await conn.run_sync(_diff) == []
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0030")
            assert "cut_receipts" not in await conn.run_sync(_user_tables)
    finally:
        await engine.dispose()


async def test_0032_indexes_cut_receipts_created_at_in_place_and_comes_off_again(
    database_url: str,
) -> None:
    """A store at 0031 with a stored receipt takes 0032 in place (the pruner's index on
    ``created_at``, found 2026-12-06, review38b), its receipt kept; downgrading drops the
    index only."""
    from tests.registry.test_store_cut_receipts import made

    def indexed(conn: Connection) -> set[str]:
        return {str(ix["name"]) for ix in inspect(conn).get_indexes("cut_receipts")}

    r = made()
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0031")
            assert "ix_cut_receipts_created_at" not in await conn.run_sync(indexed)
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # opening migrates to head
        await store.record_cut_receipts([r])
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            assert "ix_cut_receipts_created_at" in await conn.run_sync(indexed)
            await conn.run_sync(downgrade, "0031")
        async with engine.connect() as conn:
            assert "ix_cut_receipts_created_at" not in await conn.run_sync(indexed)
            assert await conn.run_sync(_current) == "0031"
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # and up again, the receipt still there
        assert await store.cut_receipt(r.receipt_hash) == r


def test_alembic_given_a_url_reads_it_as_the_store_does(tmp_path: Path) -> None:
    """``env.py`` given ``sqlalchemy.url`` (alembic's own command line; the store passes a
    connection) builds its engine as every store engine (``pg_connect.engine_for``): a
    PostgreSQL URL's option asyncpg does not take is refused naming what to write, before
    any connection (before: ``create_async_engine`` of the raw URL, asyncpg's TypeError at
    connect); a SQLite URL is migrated to head."""
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", "postgresql://postgres@127.0.0.1:1/x?connect_timeout=5")
    with pytest.raises(ValueError, match=r"\?connect_timeout= .* write timeout=SECONDS"):
        command.upgrade(cfg, "head")
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'cli.db'}")
    command.upgrade(cfg, "head")
    with sqlite3.connect(tmp_path / "cli.db") as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def _older(row: dict[str, Any]) -> dict[str, Any]:
    """A ``NodeRecord``'s columns as a store before 0033 has them (no store stamp)."""
    return {k: v for k, v in row.items() if k not in NEWER}


async def test_0033_adds_the_store_stamp_to_a_0032_store_and_comes_off_again(
    database_url: str,
) -> None:
    """A store at 0032 with a node row takes 0033 in place: the row, written before, does
    not tell a store stamp (read by its wall-clock stamp, as before); its next heartbeat
    is stamped on the store's clock; downgrading drops the columns and their index."""

    def columns(conn: Connection) -> set[str]:
        return {str(c["name"]) for c in inspect(conn).get_columns("nodes")}

    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0032")
            await conn.execute(insert(tables.nodes), [_older(asdict(node("n1")))])
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # opening migrates to head
        (rec,) = await store.list_nodes()
        assert rec.heard_store_at is None and rec.heard_age_s is None
        assert await store.touch_heartbeat("n1", datetime.now(timezone.utc), "online")
        (rec,) = await store.list_nodes()
        assert rec.heard_store_at is not None and rec.heard_age_s is not None
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            assert {"heard_store_at", "heard_store_of"} <= await conn.run_sync(columns)
            await conn.run_sync(downgrade, "0032")
        async with engine.connect() as conn:
            assert not {"heard_store_at", "heard_store_of"} & await conn.run_sync(columns)
            assert await conn.run_sync(_current) == "0032"
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # and up again, the row still there
        assert [r.node_id for r in await store.list_nodes()] == ["n1"]


async def test_0034_gives_a_mark_made_before_it_no_model_and_comes_off_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A store at 0033 with a verifier's mark (the node only) takes 0034 in place: the mark
    covers no model (not the models served at upgrade time: those may be what the node
    declared after the admin's check), the registry says so once as it reads it, and a
    mark made again names its models; downgrading drops the column and that mark (below 0034
    it would be the whole node's: verifier44; before, the row was kept)."""
    from LLM_Mesh.registry.quality import Quality
    from LLM_Mesh.registry.routing import Routing

    def columns(conn: Connection) -> set[str]:
        return {str(c["name"]) for c in inspect(conn).get_columns("canary_verifiers")}

    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0033")
            assert "models" not in await conn.run_sync(columns)
            await conn.execute(
                text("INSERT INTO canary_verifiers (node_id, trusted_at) VALUES ('v1', :at)"),
                {"at": datetime(2026, 12, 1, tzinfo=timezone.utc)},
            )
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # opening migrates to head
        (mark,) = await store.list_verifiers()
        assert (mark.node_id, mark.models) == ("v1", {})
        quality = Quality(store, Routing(NodeTable(30.0), lambda: 0.0))
        with caplog.at_level("WARNING", logger="LLM_Mesh.registry.quality"):
            await quality.load()
            await quality.load()
        said = [r.getMessage() for r in caplog.records if "v1" in r.getMessage()]
        assert len(said) == 1 and "reference for no model until marked again" in said[0]
        assert not quality.vouches("v1", "m", "a" * 64)
        assert await store.trust_verifier("v1", {"m": "a" * 64}, datetime.now(timezone.utc))
        assert [v.models for v in await store.list_verifiers()] == [{"m": "a" * 64}]
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0033")
        async with engine.connect() as conn:
            assert "models" not in await conn.run_sync(columns)
            assert await conn.run_sync(_current) == "0033"
            rows = (await conn.execute(text("SELECT node_id FROM canary_verifiers"))).all()
            assert rows == []  # the mark named a model: not widened to the whole node
    finally:
        await engine.dispose()


async def test_0035_adds_unpaid_served_to_a_0034_store_and_comes_off_again(
    database_url: str,
) -> None:
    """A store at the previous head (0034) takes 0035 in place: the counts of requests
    served unpaid are added up and read back; downgrading drops the table."""
    from datetime import date

    from LLM_Mesh.registry.store_unpaid import Unpaid, UnpaidCount

    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0034")
            assert "unpaid_served" not in await conn.run_sync(_user_tables)
    finally:
        await engine.dispose()
    async with SqlStore(database_url) as store:  # opening migrates to head
        await store.record_unpaid([Unpaid("r1", "n1", "m", "why", "2026-12-07")] * 2)
        got = await store.unpaid_served(["n1"], date(2026, 12, 7))
    assert got == [UnpaidCount("n1", "m", "why", 2)]
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_current) == "0036"
            assert await conn.run_sync(_diff) == []
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0034")
            assert "unpaid_served" not in await conn.run_sync(_user_tables)
    finally:
        await engine.dispose()
