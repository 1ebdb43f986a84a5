"""SqlStore on SQLite and PostgreSQL: nodes, heartbeats, requests, counters, restarts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.ports import NodeRecord, RequestRecord, SeqResult
from LLM_Mesh.registry.store import SqlStore

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def node(node_id: str = "n1", **changes: object) -> NodeRecord:
    rec = NodeRecord(
        node_id=node_id,
        url=f"http://{node_id}.example:8801",
        region="eu",
        models=[{"id": "gemma-3-270m", "engine": "llama-cpp", "context_length": 32768}],
        hardware={"cpu_count": 8, "gpus": [{"name": "none"}]},
        max_concurrency=1,
        max_queue=8,
        version="0.1.0",
        state="online",
        registered_at=T0,
        last_heartbeat_at=None,
    )
    for key, value in changes.items():
        setattr(rec, key, value)
    return rec


def request(
    i: int, node_id: str | None = "n1", outcome: str = "ok", **changes: object
) -> RequestRecord:
    rec = RequestRecord(
        request_id=f"req-{i}",
        node_id=node_id,
        model="gemma-3-270m",
        stream=i % 2 == 0,
        outcome=outcome,
        error_code=None if outcome == "ok" else "upstream_error",
        prompt_tokens=10,
        completion_tokens=5 if outcome == "ok" else 0,
        latency_ms=123.5,
        ttft_ms=20.25,
        cost=123,
        created_at=T0 + timedelta(seconds=i),
    )
    for key, value in changes.items():
        setattr(rec, key, value)
    return rec


async def log_rows(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM requests"))).scalar_one())


async def test_open_on_empty_database_migrates(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert {"nodes", "requests", "alembic_version"} <= names
    assert version == "0036"
    assert await store.list_nodes() == []
    assert await log_rows(store) == 0


async def test_requests_table_has_no_text_columns(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        cols = await conn.run_sync(
            lambda c: [col["name"] for col in inspect(c).get_columns("requests")]
        )
    assert not {"prompt", "messages", "answer", "content", "text"} & set(cols)


async def test_open_twice_and_close_twice_are_harmless(database_url: str) -> None:
    s = SqlStore(database_url)
    await s.open()
    await s.open()
    await s.close()
    await s.close()
    with pytest.raises(RuntimeError, match="not open"):
        await s.list_nodes()


async def test_sqlite_creates_parent_directory_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "registry.db"
    async with SqlStore(f"sqlite+aiosqlite:///{db}") as s, s.engine.connect() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
    assert db.exists()
    assert mode == "wal"


async def test_in_memory_sqlite_works() -> None:
    async with SqlStore("sqlite:///:memory:") as s:
        await s.upsert_node(node())
        assert (await s.get_node("n1")) is not None


async def test_data_version_moves_on_every_commit_by_another_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    async with SqlStore(url) as s, SqlStore(url) as admin:
        v0 = s.data_version()
        assert v0 is not None and s.data_version() == v0  # nothing written since
        await s.list_nodes()
        assert s.data_version() == v0  # a read is no change
        await s.upsert_node(node())  # this store's own engine: another connection
        v1 = s.data_version()
        assert v1 != v0 and s.data_version() == v1
        assert await admin.set_node_state("n1", "offline")  # another process (the CLI)
        assert s.data_version() not in (v0, v1)
        async with admin.engine.connect() as conn:  # the check holds no read transaction
            busy = (await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()[0]
        assert busy == 0
    assert s.data_version() is None  # closed


async def test_poll_versions_move_only_with_the_writes_their_polls_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    async with SqlStore(url) as s, SqlStore(url) as admin:
        topics = ("revocations", "api_keys", "quality")

        def versions() -> dict[str, int | None]:
            return {t: s.poll_version(t) for t in topics}

        v0 = versions()
        assert None not in v0.values()
        assert s.poll_version("elsewhere") is None  # an unknown topic: cannot tell
        # what the gateway commits under traffic moves no counter
        await s.upsert_node(node())
        await s.record_requests([request(1), request(2)])
        assert await s.claim_node_key("n1", "pk1", "alice", 1, T0) is SeqResult.OK
        v1 = versions()
        assert v1["revocations"] != v0["revocations"]  # a node key added
        assert v1["api_keys"] == v0["api_keys"] and v1["quality"] == v0["quality"]
        assert await s.advance_node_seq("n1", 2) is SeqResult.OK  # every heartbeat
        assert versions() == v1
        # each poll's own writes move its counter, whoever commits them
        assert await admin.revoke_node("n1", T0)
        v2 = versions()
        assert v2["revocations"] != v1["revocations"]
        assert (v2["api_keys"], v2["quality"]) == (v1["api_keys"], v1["quality"])
        made = await create_api_key(admin, name="a")
        assert made is not None
        v3 = versions()
        assert v3["api_keys"] != v2["api_keys"]
        assert await admin.revoke_api_key("a", T0) is not None
        v4 = versions()
        assert v4["api_keys"] != v3["api_keys"]
        assert (v4["revocations"], v4["quality"]) == (v2["revocations"], v2["quality"])
        await admin.record_canary("n1", "gemma-3-270m", ok=True, reason=None, at=T0)
        v5 = versions()
        assert v5["quality"] != v4["quality"]
        assert await admin.trust_verifier("v1", {"gemma-3-270m": "a" * 64}, T0)
        v6 = versions()
        assert v6["quality"] != v5["quality"]
        assert (v6["revocations"], v6["api_keys"]) == (v4["revocations"], v4["api_keys"])
        # a model more for the verifier: a row of its own (0036), read by the poll too
        assert await admin.trust_verifier("v1", {"mistral-7b": "b" * 64}, T0)
        v7 = versions()
        assert v7["quality"] != v6["quality"]
        # another file marked (an UPDATE of the mark's row, 0036), a model unmarked (DELETE)
        assert await admin.trust_verifier("v1", {"mistral-7b": "c" * 64}, T0)
        v8 = versions()
        assert v8["quality"] != v7["quality"]
        assert await admin.untrust_verifier("v1", ["mistral-7b"])
        assert versions()["quality"] != v8["quality"]
    assert s.poll_version("quality") is None  # closed


async def test_poll_versions_need_a_sqlite_file(database_url: str) -> None:
    async with SqlStore("sqlite:///:memory:") as mem, SqlStore(database_url) as s:
        assert mem.poll_version("revocations") is None
        assert (s.poll_version("revocations") is not None) == (s.dialect == "sqlite")


async def test_data_version_needs_a_sqlite_file(database_url: str) -> None:
    async with SqlStore("sqlite:///:memory:") as mem, SqlStore(database_url) as s:
        assert mem.data_version() is None
        assert (s.data_version() is not None) == (s.dialect == "sqlite")


async def test_only_postgresql_shares_replicas(database_url: str) -> None:
    # several registries on one SQLite file are not supported: a lone registry there
    # runs no replica loops (app_store.replica_state)
    assert SqlStore(database_url).shares_replicas == (not database_url.startswith("sqlite"))


async def test_upsert_inserts_then_updates(store: SqlStore) -> None:
    await store.upsert_node(node())
    got = await store.get_node("n1")
    assert got == node()

    later = T0 + timedelta(hours=1)
    await store.upsert_node(
        node(
            url="http://moved.example:9000",
            region=None,
            models=[{"id": "other"}],
            hardware={},
            max_concurrency=4,
            max_queue=0,
            version="0.2.0",
            state=NodeState.DRAINING,
            registered_at=later,
            last_heartbeat_at=later,
        )
    )
    got = await store.get_node("n1")
    assert got is not None
    assert got.url == "http://moved.example:9000"
    assert got.region is None
    assert got.models == [{"id": "other"}]
    assert got.hardware == {}
    assert (got.max_concurrency, got.max_queue, got.version) == (4, 0, "0.2.0")
    assert got.state == "draining"
    assert got.last_heartbeat_at == later
    assert got.registered_at == T0  # first registration is kept
    assert [n.node_id for n in await store.list_nodes()] == ["n1"]


async def test_upsert_keeps_counters(store: SqlStore) -> None:
    await store.upsert_node(node())
    await store.record_requests([request(1), request(2, outcome="error")])
    await store.upsert_node(node(version="0.2.0"))  # re-registration carries zero counters
    got = await store.get_node("n1")
    assert got is not None
    assert (got.requests, got.failures, got.tokens_generated) == (2, 1, 5)


async def test_get_unknown_node_is_none(store: SqlStore) -> None:
    assert await store.get_node("nope") is None


async def test_touch_heartbeat(store: SqlStore) -> None:
    assert await store.touch_heartbeat("nope", T0, "online") is False
    await store.upsert_node(node(state="joining"))
    at = T0 + timedelta(seconds=10)
    assert await store.touch_heartbeat("n1", at, "online") is True
    got = await store.get_node("n1")
    assert got is not None
    assert got.last_heartbeat_at == at
    assert got.state == "online"


async def test_a_heartbeat_does_not_bring_back_a_node_that_said_goodbye(store: SqlStore) -> None:
    """A heartbeat written after the goodbye (batched behind its answer, or one at a
    replica that has not seen the goodbye yet) leaves the row OFFLINE."""
    await store.upsert_node(node(last_heartbeat_at=T0))
    assert await store.set_node_state("n1", NodeState.OFFLINE) is True
    at = T0 + timedelta(seconds=10)
    assert await store.touch_heartbeat("n1", at, "online", credit_limit_s=30) is False
    await store.touch_heartbeats([("n1", at, "online", 30_000)])
    got = await store.get_node("n1")
    assert got is not None and (got.state, got.last_heartbeat_at) == ("offline", T0)
    assert got.healthy_ms == 0
    await store.upsert_node(node())  # it registers again
    assert await store.touch_heartbeat("n1", at, "online") is True


async def test_set_node_state(store: SqlStore) -> None:
    assert await store.set_node_state("nope", "offline") is False
    await store.upsert_node(node())
    assert await store.set_node_state("n1", NodeState.OFFLINE) is True
    got = await store.get_node("n1")
    assert got is not None
    assert got.state == "offline"


async def test_datetimes_are_aware_utc(store: SqlStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    registered = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=plus_two)
    await store.upsert_node(node(registered_at=registered))
    await store.touch_heartbeat("n1", datetime(2025, 3, 1, 15, 0, tzinfo=plus_two), "online")
    got = await store.get_node("n1")
    assert got is not None
    for value in (got.registered_at, got.last_heartbeat_at):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
    assert got.registered_at == registered
    assert got.registered_at.hour == 12
    assert got.registered_at.microsecond == 123456
    assert got.last_heartbeat_at == datetime(2025, 3, 1, 13, 0, tzinfo=timezone.utc)


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.upsert_node(node(registered_at=naive))
    await store.upsert_node(node())
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.touch_heartbeat("n1", naive, "online")
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.record_requests([request(1, created_at=naive)])
    assert await log_rows(store) == 0


async def test_record_requests_bumps_counters(store: SqlStore) -> None:
    await store.upsert_node(node("n1"))
    await store.upsert_node(node("n2"))
    await store.record_requests([])
    batch = [
        request(1, "n1"),
        request(2, "n1"),
        request(3, "n1", outcome="error"),
        request(4, "n1", outcome="cancelled"),
        request(5, "n2", completion_tokens=100),
        request(6, None, outcome="error"),  # no node could take it
        request(7, "gone"),  # node not (or no longer) registered
    ]
    await store.record_requests(batch)

    n1, n2 = await store.list_nodes()
    assert (n1.requests, n1.failures, n1.tokens_generated) == (4, 1, 10)
    assert (n2.requests, n2.failures, n2.tokens_generated) == (1, 0, 100)

    await store.record_requests([request(8, "n2", outcome="error")])
    n2b = await store.get_node("n2")
    assert n2b is not None
    assert (n2b.requests, n2b.failures, n2b.tokens_generated) == (2, 1, 100)

    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM requests"))).scalar()
    assert rows == 8


async def test_request_rows_round_trip(store: SqlStore) -> None:
    rec = request(1, cost=1_234_567, latency_ms=None, ttft_ms=None)
    await store.record_requests([rec])
    async with store.engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM requests"))).mappings().one()
    assert row["request_id"] == "req-1"
    assert row["node_id"] == "n1"
    assert row["model"] == "gemma-3-270m"
    assert bool(row["stream"]) is False
    assert row["outcome"] == "ok"
    assert row["error_code"] is None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 5)
    assert row["latency_ms"] is None
    assert row["cost"] == 1_234_567 and type(row["cost"]) is int  # whole micro-NetworkTokens


async def test_record_requests_is_one_transaction(store: SqlStore) -> None:
    await store.upsert_node(node())
    bad = request(2, model="m" * 10_000)  # too long for PostgreSQL; SQLite ignores lengths
    bad_created = request(3, created_at=datetime(2025, 1, 1))  # naive: refused before any write
    with pytest.raises(ValueError):
        await store.record_requests([request(1), bad_created])
    got = await store.get_node("n1")
    assert got is not None
    assert got.requests == 0
    assert await log_rows(store) == 0
    if store.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="too long"):
            await store.record_requests([request(1), bad])
        got = await store.get_node("n1")
        assert got is not None
        assert got.requests == 0
        assert await log_rows(store) == 0


async def test_reopen_keeps_everything(database_url: str) -> None:
    first = SqlStore(database_url)
    await first.open()
    await first.upsert_node(node("n1"))
    await first.upsert_node(node("n2", state="paused"))
    await first.touch_heartbeat("n1", T0 + timedelta(seconds=30), "online")
    await first.record_requests([request(i, "n1") for i in range(5)])
    before_nodes = await first.list_nodes()
    await first.close()

    second = SqlStore(database_url)
    await second.open()  # migrating an up-to-date database is a no-op
    try:
        assert await second.list_nodes() == before_nodes
        assert await log_rows(second) == 5
        n1 = await second.get_node("n1")
        assert n1 is not None
        assert n1.last_heartbeat_at == T0 + timedelta(seconds=30)
        assert n1.requests == 5
    finally:
        await second.close()


async def test_repr_hides_password() -> None:
    s = SqlStore("postgresql://user:secret@db.example/mesh")
    assert "secret" not in repr(s)
    assert s.url.startswith("postgresql+asyncpg://")


def test_empty_url_is_refused() -> None:
    with pytest.raises(ValueError):
        SqlStore("")


async def test_request_rows_from_the_drivers_executemany_read_back_as_sqlalchemy_wrote_them(
    store: SqlStore,
) -> None:
    """Records go to the driver as tuples (no SQLAlchemy per-row processing); each column
    must read back through the table's types exactly as given, in the order given."""
    from sqlalchemy import select

    from LLM_Mesh.registry import tables

    recs = [
        request(1, created_at=T0 + timedelta(microseconds=123_456)),
        request(2, node_id=None, outcome="error", latency_ms=None, ttft_ms=None),
        request(3, created_at=(T0 + timedelta(seconds=3)).astimezone(timezone(timedelta(hours=5)))),
    ]
    await store.record_requests(recs)
    r = tables.requests
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(r).order_by(r.c.id))).mappings().all()
    cols = ("request_id", "node_id", "model", "stream", "outcome", "error_code",
            "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "cost")  # fmt: skip
    assert [tuple(row[c] for c in cols) for row in rows] == [
        tuple(getattr(rec, c) for c in cols) for rec in recs
    ]
    assert [row["created_at"] for row in rows] == [rec.created_at for rec in recs]
    assert all(row["created_at"].tzinfo is not None for row in rows)


async def test_prune_requests_deletes_only_older_rows(store: SqlStore) -> None:
    await store.upsert_node(node())
    # created at T0 + i s: 0..4 before the cutoff, 5..7 at or after it
    await store.record_requests([request(i) for i in range(8)])
    cutoff = T0 + timedelta(seconds=5)
    assert await store.prune_requests(cutoff, limit=100) == 5
    assert await store.prune_requests(cutoff, limit=100) == 0  # idempotent
    after = await store.request_totals(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert after["n1"]["gemma-3-270m"].ok == 3
    assert await store.request_totals(T0, cutoff) == {}


async def test_prune_requests_honours_the_limit(store: SqlStore) -> None:
    await store.record_requests([request(i) for i in range(7)])
    cutoff = T0 + timedelta(days=1)
    assert [await store.prune_requests(cutoff, limit=3) for _ in range(4)] == [3, 3, 1, 0]
    with pytest.raises(ValueError):
        await store.prune_requests(cutoff, limit=0)
    with pytest.raises(ValueError):
        await store.prune_requests(datetime(2025, 1, 1), limit=1)  # naive: refused


async def test_prune_keeps_the_node_counters(store: SqlStore) -> None:
    """The nodes' lifetime counters live on the ``nodes`` row, not in the pruned log."""
    await store.upsert_node(node())
    await store.record_requests([request(i) for i in range(4)])
    await store.prune_requests(T0 + timedelta(days=1), limit=100)
    got = await store.get_node("n1")
    assert got is not None
    assert (got.requests, got.tokens_generated) == (4, 20)
