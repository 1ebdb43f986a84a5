"""Migration 0036: canary verifier marks per model where code before it does not read them.

Found open 2026-12-07 (session 43's note), closed verifier44: code before migration 0034 (a
replica not yet upgraded in a rolling upgrade, or the package downgraded below 0034) reads
every row of ``canary_verifiers`` as a mark of the whole node (its ``list_verifiers``:
``SELECT node_id FROM canary_verifiers``), so a node marked for model A only was the
reference, and trusted, for every model it declared there. The marks now live in
``canary_verifier_models`` (one row a model file); the old table keeps only marks old code
wrote, and going down (0036, then 0034) puts no mark that named models back in it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_migrate import downgrade, upgrade

A, B = "a" * 64, "b" * 64
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)

# how the code before 0034 read the marks (git show 3e758f16:LLM_Mesh/registry/store_canary.py,
# ``list_verifiers``): each row a verifier for every model it declares
BEFORE_0034 = "SELECT node_id FROM canary_verifiers ORDER BY node_id"
# and how 0034 and 0035 read them (``select(v)``): the node, its models
AT_0035 = "SELECT node_id, models FROM canary_verifiers ORDER BY node_id"


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _models(raw: Any) -> Any:
    import json

    return json.loads(raw) if isinstance(raw, str) else raw


async def _run(url: str, fn: Any, *args: Any) -> Any:
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    finally:
        await engine.dispose()


def _whole_node_marks(conn: Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute(text(BEFORE_0034))]


def _marks_at_0035(conn: Connection) -> dict[str, Any]:
    return {str(r[0]): _models(r[1]) for r in conn.execute(text(AT_0035))}


def _at_0035_with_marks(conn: Connection) -> None:
    """A store at 0035 (the head before 0036): v1 marked for model m as 0034/0035 mark it,
    v0 marked before 0034 (the node only, ``{}`` since 0034)."""
    upgrade(conn, "0035")
    conn.execute(
        text("INSERT INTO canary_verifiers (node_id, trusted_at, models) VALUES (:n, :at, :m)"),
        [
            {"n": "v1", "at": T0, "m": f'{{"m": "{A}"}}'},
            {"n": "v0", "at": T0, "m": "{}"},
        ],
    )


async def test_0036_moves_marks_that_name_models_out_of_the_table_old_code_reads(
    database_url: str,
) -> None:
    """Upgraded, a mark naming models is in ``canary_verifier_models`` and not in
    ``canary_verifiers``: the query of the code before 0034 reads no whole-node mark for
    it, nor for a mark made after the upgrade; the store reads the marks as before."""
    await _run(database_url, _at_0035_with_marks)
    assert await _run(database_url, _whole_node_marks) == ["v0", "v1"]  # the hole, at 0035
    async with SqlStore(database_url) as store:  # opening migrates to head
        marks = {v.node_id: v.models for v in await store.list_verifiers()}
        assert marks == {"v0": {}, "v1": {"m": A}}
        assert await store.trust_verifier("v2", {"m": B}, T0)  # marked after the upgrade
        assert {v.node_id: v.models for v in await store.list_verifiers()}["v2"] == {"m": B}
    # v0 was marked as a whole node by the code before 0034: to that code it still is one
    assert await _run(database_url, _whole_node_marks) == ["v0"]
    # and to 0034/0035 (a replica not yet upgraded) v0 covers none, v1 and v2 are not there
    assert await _run(database_url, _marks_at_0035) == {"v0": {}}


async def test_0036_down_keeps_per_model_marks_out_of_the_old_table(database_url: str) -> None:
    """Downgraded below 0036 the marks that named models are dropped, not written back into
    ``canary_verifiers`` (where code before 0034 reads each as the whole node's); below
    0034 a mark 0034/0035 wrote there is dropped too (before: it became the whole node's).
    Up again, the store works (the admin marks again)."""
    await _run(database_url, _at_0035_with_marks)
    async with SqlStore(database_url) as store:
        assert await store.trust_verifier("v2", {"m": B}, T0)
    await _run(database_url, downgrade, "0035")
    assert await _run(database_url, _current) == "0035"
    assert "canary_verifier_models" not in await _run(database_url, _tables)
    assert await _run(database_url, _marks_at_0035) == {"v0": {}}  # v1, v2 not widened
    assert await _run(database_url, _whole_node_marks) == ["v0"]

    def marked_at_0035(conn: Connection) -> None:  # 0035's code marks v3 for m meanwhile
        conn.execute(
            text("INSERT INTO canary_verifiers (node_id, trusted_at, models) VALUES "
                 "('v3', :at, :m)"),
            {"at": T0, "m": f'{{"m": "{A}"}}'},
        )  # fmt: skip

    await _run(database_url, marked_at_0035)
    await _run(database_url, downgrade, "0033")
    assert await _run(database_url, _current) == "0033"
    assert await _run(database_url, _whole_node_marks) == ["v0"]  # v3 not the whole node's
    async with SqlStore(database_url) as store:  # up again to head
        assert {v.node_id: v.models for v in await store.list_verifiers()} == {"v0": {}}
        assert await store.trust_verifier("v1", {"m": A}, T0)
        assert {v.node_id: v.models for v in await store.list_verifiers()}["v1"] == {"m": A}
    assert await _run(database_url, _whole_node_marks) == ["v0"]


async def test_a_mark_made_by_an_old_replica_after_0036_covers_no_model_here(
    database_url: str,
) -> None:
    """During a rolling upgrade a replica not yet upgraded may still mark (its CLI writes
    ``canary_verifiers``): here that mark covers no model (listed: mark again), as one made
    before 0034 does; marking or unmarking the node here takes it out of the old table, so
    old replicas read no whole-node mark for it either."""
    async with SqlStore(database_url) as store:
        pass

    def old_marks(conn: Connection) -> None:
        from LLM_Mesh.registry import tables

        v = tables.canary_verifiers
        conn.execute(insert(v), [{"node_id": "old", "trusted_at": T0},  # before 0034
                                 {"node_id": "o35", "trusted_at": T0, "models": {"m": A}}])  # fmt: skip

    await _run(database_url, old_marks)
    async with SqlStore(database_url) as store:
        marks = {v.node_id: v.models for v in await store.list_verifiers()}
        assert marks == {"o35": {}, "old": {}}
        assert await store.trust_verifier("o35", {"m": A}, T0)  # marked here: a mark of m
        assert await store.untrust_verifier("old", ["m"])  # unmarked here: by old code too
        assert {v.node_id: v.models for v in await store.list_verifiers()} == {"o35": {"m": A}}
    assert await _run(database_url, _whole_node_marks) == []
