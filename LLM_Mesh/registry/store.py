"""The registry's persistent store: SQLAlchemy 2 async on SQLite or PostgreSQL.

:class:`SqlStore` implements :class:`LLM_Mesh.registry.ports.Store`. ``open()``
builds the engine and migrates the database to Alembic's head (in code, no
``alembic.ini``); ``close()`` disposes of the engine.

- URLs go through :func:`LLM_Mesh.config.normalize_database_url`, so plain
  ``sqlite:///...`` and ``postgresql://...`` work.
- A SQLite file gets its parent directory created and runs in WAL mode.
- Datetimes go in and come out timezone-aware UTC; naive ones are refused.
- ``upsert_node`` on a known node updates its registration but keeps its first
  ``registered_at`` and never lowers its counters (as ``MemoryStore`` does).
- ``touch_heartbeat`` adds the routable time the heartbeat vouches for to the
  node's ``healthy_ms`` in its own ``UPDATE`` (uptime rewards, ``core/rewards.py``).
- ``record_requests`` inserts the batch and bumps the per-node counters
  (``requests``, ``failures``, ``tokens_generated``) in one transaction. A request
  whose outcome is in :data:`FAILURE_OUTCOMES` (``"error"``) is a failure of its
  node; ``"cancelled"`` (client went away) is not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Interval,
    bindparam,
    delete,
    event,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.core.liveness import address_lock_key, address_text, node_address
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.pg_connect import engine_for
from LLM_Mesh.registry.ports import FAILURE_OUTCOMES, AddressTaken, NodeRecord, RequestRecord
from LLM_Mesh.registry.settle_db import JOURNAL_SIZE_LIMIT
from LLM_Mesh.registry.store_api_keys import SqlApiKeys
from LLM_Mesh.registry.store_canary import SqlCanary
from LLM_Mesh.registry.store_canary_departures import SqlCanaryDepartures
from LLM_Mesh.registry.store_checks import sqlite_file
from LLM_Mesh.registry.store_credentials import SqlCredentials
from LLM_Mesh.registry.store_cut_receipts import SqlCutReceipts
from LLM_Mesh.registry.store_migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    downgrade,
    migrate_to_head,
    upgrade,
)
from LLM_Mesh.registry.store_replicas import SqlReplicaState, relaxed_commit
from LLM_Mesh.registry.store_replicas import node_from_row as _node_from_row
from LLM_Mesh.registry.store_rewards import (
    SqlRewardStats,
    changed_clock,
    heard_within_sql,
    heartbeat_statement,
    host_now,
    last_mark,
    store_clock,
)
from LLM_Mesh.registry.store_unpaid import SqlUnpaid
from LLM_Mesh.registry.store_usage_audit import SqlUsageAudit
from LLM_Mesh.secret_files import make_private_dir

__all__ = [
    "FAILURE_OUTCOMES",
    "MIGRATIONS_DIR",
    "SqlStore",
    "alembic_config",
    "downgrade",
    "upgrade",
]

# Registration fields a re-registration overwrites (``registered_at`` is kept).
_NODE_UPDATE_COLUMNS = (
    "url",
    "region",
    "models",
    "hardware",
    "max_concurrency",
    "max_queue",
    "version",
    "state",
    "last_heartbeat_at",
    "changed_at",
    "tls_fingerprint",
    "tls_at",
    "keeps_no_prompts",
    "keeps_at",
    "address",
    "heard_store_at",
    "heard_store_of",
)
# Counters a re-registration may raise but never lower.
_NODE_COUNTER_COLUMNS = ("requests", "failures", "tokens_generated", "healthy_ms")


def _state(value: str) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"node state must be a non-empty string, got {value!r}")
    return value


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(timezone.utc)


def _node_values(rec: NodeRecord) -> dict[str, Any]:
    if not rec.node_id:
        raise ValueError("node_id must not be empty")
    now = host_now()  # the store's clock on SQLite (one host); PostgreSQL's: upsert_node
    address = node_address(rec.url)
    told = rec.heard_age_s is not None and rec.last_heartbeat_at is not None
    age = max(0.0, rec.heard_age_s or 0.0) if told else None
    return {
        "node_id": rec.node_id,
        "url": rec.url,
        "region": rec.region,
        "models": list(rec.models),
        "hardware": dict(rec.hardware),
        "max_concurrency": rec.max_concurrency,
        "max_queue": rec.max_queue,
        "version": rec.version,
        "state": _state(rec.state),
        "registered_at": _aware("registered_at", rec.registered_at),
        "last_heartbeat_at": _aware("last_heartbeat_at", rec.last_heartbeat_at),
        "requests": rec.requests,
        "failures": rec.failures,
        "tokens_generated": rec.tokens_generated,
        "healthy_ms": rec.healthy_ms,
        "changed_at": now,
        "tls_fingerprint": rec.tls_fingerprint,
        "tls_at": now,  # the pin is told while the row's ``changed_at`` is this one's
        "keeps_no_prompts": rec.keeps_no_prompts,  # migration 0029
        "keeps_at": now,  # the declaration is told while the row's ``tls_at`` is this one's
        "address": None if address is None else address_text(address),  # migration 0023
        # its heartbeat on the store's clock, as old as the writer tells (0033; NULL: not
        # told, the row read by its wall-clock stamp); PostgreSQL's clock: upsert_node
        "heard_store_at": None if age is None else host_now() - timedelta(seconds=age),
        "heard_store_of": None if age is None else _aware("at", rec.last_heartbeat_at),
    }


# ``requests`` rows go to the driver's executemany as tuples, in this column order: SQLAlchemy's
# per-row parameter processing of an insert was most of a batch's CPU (~38 against ~8 µs a
# row, docs/benchmarks.md)
_REQUEST_COLUMNS = (
    "request_id", "node_id", "model", "stream", "outcome", "error_code", "prompt_tokens",
    "completion_tokens", "latency_ms", "ttft_ms", "cost", "created_at",
)  # fmt: skip


def _insert_requests_sql(paramstyle: str) -> str:
    """The ``requests`` insert for the driver: ``?`` (sqlite3) or ``$n`` (asyncpg)."""
    n = len(_REQUEST_COLUMNS)
    marks = ["?"] * n if paramstyle == "qmark" else [f"${i}" for i in range(1, n + 1)]
    return f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES ({', '.join(marks)})"


def _request_row(rec: RequestRecord, sqlite: bool) -> tuple[Any, ...]:
    """``rec`` as the driver's parameters (:data:`_REQUEST_COLUMNS`), stored exactly as
    :data:`tables.requests` would through SQLAlchemy (on SQLite a time is naive UTC text)."""
    if rec.prompt_tokens < 0 or rec.completion_tokens < 0:
        raise ValueError(f"token counts must not be negative: {rec!r}")
    created = _aware("created_at", rec.created_at)
    if created is None:
        raise ValueError("created_at must not be empty")
    return (
        rec.request_id, rec.node_id, rec.model, bool(rec.stream), rec.outcome, rec.error_code,
        int(rec.prompt_tokens), int(rec.completion_tokens), rec.latency_ms, rec.ttft_ms,
        int(rec.cost), created.strftime(_SQLITE_TIME) if sqlite else created,
    )  # fmt: skip


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format of a DateTime on SQLite


@dataclass
class _Deltas:
    requests: int = 0
    failures: int = 0
    tokens_generated: int = 0


def _enable_sqlite_pragmas(wal: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                # a log that grew under load is cut back when SQLite starts it over
                cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    return on_connect


class SqlStore(
    SqlCredentials, SqlApiKeys, SqlReplicaState, SqlRewardStats, SqlCanary, SqlUsageAudit,
    SqlCanaryDepartures, SqlCutReceipts, SqlUnpaid,
):  # fmt: skip
    """The registry store on SQLAlchemy async (SQLite via aiosqlite, PostgreSQL via asyncpg).

    Operators, node keys and the admin key: :class:`SqlCredentials`; client API keys:
    :class:`~LLM_Mesh.registry.store_api_keys.SqlApiKeys`; what replicas share
    (idempotency keys, health leases, replica beats):
    :class:`~LLM_Mesh.registry.store_replicas.SqlReplicaState`; the requests per period that
    rewards compare: :class:`~LLM_Mesh.registry.store_rewards.SqlRewardStats`.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        if not url:
            raise ValueError("database url must not be empty")
        self.url = normalize_database_url(url)
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._batch_engine: AsyncEngine | None = None
        self._version_db: sqlite3.Connection | None = None
        self._versions: dict[str, int] = {}  # poll_version's counters, as last read
        self._versions_at: int | None = None  # data_version when they were read

    def __repr__(self) -> str:
        return f"SqlStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> AsyncEngine:
        """The open engine; raises if the store is not open."""
        if self._engine is None:
            raise RuntimeError("store is not open: call open() first")
        return self._engine

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def shares_replicas(self) -> bool:
        """Whether registries on this database run as replicas of one network (node poll,
        replica beat, shared idempotency keys, health leases): PostgreSQL only. Replicas
        on one SQLite file are not supported (docs/deploy.md); a registry on SQLite is a
        lone one and runs none of those loops (each read or wrote the store every second)."""
        return self.dialect != "sqlite"

    def _version_conn(self) -> sqlite3.Connection | None:
        """The private read-only connection of :meth:`data_version` and
        :meth:`poll_version` (opened on first use); ``None`` where there is none."""
        if self._version_db is None:
            path = sqlite_file(self.url)
            if path is None or self._engine is None:
                return None
            path = sqlite_file(self._engine.url) or path  # the path checked (file_walk)
            try:
                self._version_db = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                    isolation_level=None, timeout=0.0,
                )  # fmt: skip
            except sqlite3.Error:
                return None
        return self._version_db

    def data_version(self) -> int | None:
        """A number that changes whenever any other connection, of this process or another
        one, committed to the SQLite file since the last call (``PRAGMA data_version`` on
        a private read-only connection, microseconds, never waits for a writer in WAL
        mode); ``None`` where there is no such check (PostgreSQL, in-memory SQLite) or it
        failed."""
        db = self._version_conn()
        if db is None:
            return None
        try:  # fetchall: the statement is done, no read transaction left open (checkpoints)
            rows = db.execute("PRAGMA data_version").fetchall()
        except sqlite3.Error:
            return None
        return int(rows[0][0])

    def poll_version(self, topic: str) -> int | None:
        """``topic``'s change counter (``poll_versions``: ``revocations``, ``api_keys``,
        ``quality``), which SQLite triggers move in the transaction of every write that
        topic's poll reads, whoever writes (migration 0013); ``None`` where there is no
        such counter (PostgreSQL, in-memory SQLite, an unknown topic) or reading failed.
        The store polls skip their queries while their counter holds still
        (``Poller.changes``), so the gateway's own commits (settlement, request log) no
        longer make them query. Cheap: the counters are read again only after
        :meth:`data_version` moved (one ``PRAGMA`` otherwise)."""
        db = self._version_conn()
        if db is None:
            return None
        try:
            moved = db.execute("PRAGMA data_version").fetchall()[0][0]
            if moved != self._versions_at:
                rows = db.execute("SELECT topic, version FROM poll_versions").fetchall()
                self._versions = {str(t): int(v) for t, v in rows}
                self._versions_at = moved  # a commit since the PRAGMA moves it again
        except sqlite3.Error:
            return None
        return self._versions.get(topic)

    async def open(self) -> None:
        """Create the engine and migrate the database to head (``SchemaUnknown`` when a newer
        llm-mesh's schema is there, left as it is). Idempotent."""
        if self._engine is not None:
            return
        db_file = sqlite_file(self.url)
        if db_file is not None:
            make_private_dir(db_file.parent)
        # pre-ping: a connection PostgreSQL dropped (restart, pg_terminate_backend) is
        # replaced at checkout instead of failing the request that drew it
        engine = engine_for(self.url, echo=self._echo, pool_pre_ping=self.dialect == "postgresql")
        if self.dialect == "sqlite":
            event.listen(
                engine.sync_engine, "connect", _enable_sqlite_pragmas(wal=db_file is not None)
            )
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate_to_head)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    @property
    def batch_engine(self) -> AsyncEngine:
        """The heartbeat path's batches (``heartbeat_writes.py``): on PostgreSQL a small pool
        of autocommit connections whose commits do not wait for the disk
        (``synchronous_commit = off``: rows rewritten every few seconds), one round trip a
        statement, no pre-ping (a failed batch is retried once); elsewhere the engine."""
        if self.dialect != "postgresql":
            return self.engine
        if self._batch_engine is None:
            self.engine  # noqa: B018 - raises if the store is not open
            self._batch_engine = engine_for(
                self.url, echo=self._echo, pool_size=4, max_overflow=4,
                isolation_level="AUTOCOMMIT",
                connect_args={"server_settings": {"synchronous_commit": "off"}},
            )  # fmt: skip
        return self._batch_engine

    async def close(self) -> None:
        """Dispose of the engines (and their pooled connections). Idempotent."""
        engine, self._engine = self._engine, None
        batch, self._batch_engine = self._batch_engine, None
        version_db, self._version_db = self._version_db, None
        self._versions, self._versions_at = {}, None
        if version_db is not None:
            version_db.close()
        if batch is not None:
            await batch.dispose()
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> SqlStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- nodes ---------------------------------------------------------------

    async def upsert_node(
        self,
        rec: NodeRecord,
        *,
        address_live_since: datetime | None = None,
        address_live_s: float | None = None,
    ) -> bool:
        """Insert a node, or update its registration (first ``registered_at`` and counters
        kept); False, nothing written, when the node's key is revoked (read in the same
        transaction, under a share lock on PostgreSQL: a revocation in flight is waited
        for, and one that waits for this write takes the row offline after it).

        With ``address_live_since``: :class:`AddressTaken` when another live node's row
        holds the address, read in the same transaction under an advisory lock keyed by
        the address on PostgreSQL (registrations there take turns; SQLite has one
        writer) (``ports.Store.upsert_node``)."""
        values = _node_values(rec)
        if self.dialect == "postgresql":  # changed on the server's clock (node_sync.py)
            values["changed_at"] = values["tls_at"] = values["keeps_at"] = changed_clock(
                self.dialect
            )
        if self.dialect == "postgresql" and rec.heard_age_s is not None:  # the server's clock
            age = literal(timedelta(seconds=max(0.0, rec.heard_age_s)), Interval())
            values["heard_store_at"] = store_clock(self.dialect) - age
        nodes = tables.nodes
        greatest: Callable[..., Any]
        if self.dialect == "postgresql":
            pg = pg_insert(nodes).values(**values)
            excluded, greatest = pg.excluded, func.greatest
            base: Any = pg
        elif self.dialect == "sqlite":
            lite = sqlite_insert(nodes).values(**values)
            excluded, greatest = lite.excluded, func.max  # SQLite's two-argument max()
            base = lite
        else:
            raise RuntimeError(f"unsupported database dialect {self.dialect!r}")
        # a row made anew resumes at its latest reward mark (store_rewards.last_mark)
        base = base.values(healthy_ms=greatest(values["healthy_ms"], last_mark(rec.node_id)))
        set_: dict[str, Any] = {name: excluded[name] for name in _NODE_UPDATE_COLUMNS}
        for name in _NODE_COUNTER_COLUMNS:
            set_[name] = greatest(nodes.c[name], excluded[name])
        stmt = base.on_conflict_do_update(index_elements=[nodes.c.node_id], set_=set_)
        k = tables.node_keys
        key = select(k.c.revoked_at).where(k.c.node_id == rec.node_id)
        if self.dialect == "postgresql":
            key = key.with_for_update(read=True)
        async with self.engine.begin() as conn:
            # found 2026-12-03: a row written after its key's revocation stayed online
            found = (await conn.execute(key)).first()
            if found is not None and found.revoked_at is not None:
                return False
            if address_live_since is not None:
                await self._check_address(conn, rec, address_live_since, address_live_s)
            await conn.execute(stmt)
        return True

    async def _check_address(
        self, conn: Any, rec: NodeRecord, since: datetime, window_s: float | None
    ) -> None:
        address = node_address(rec.url)
        if address is None:
            return
        if self.dialect == "postgresql":
            await conn.execute(select(func.pg_advisory_xact_lock(address_lock_key(address))))
        n, c = tables.nodes, tables.node_checks
        live = (  # as core/liveness.holds_address: not gone, heard from, last check not failed
            select(n.c.node_id, n.c.url)
            .select_from(n.outerjoin(c, c.c.node_id == n.c.node_id))
            .where(
                # the rows at this address (ix_nodes_address), not the whole fleet; NULL: a
                # row written before 0023 or by an older replica, compared by its URL below
                or_(n.c.address == address_text(address), n.c.address.is_(None)),
                n.c.node_id != rec.node_id,
                n.c.state != NodeState.OFFLINE.value,
                heard_within_sql(self.dialect, since, window_s),
                or_(c.c.ok.is_(None), c.c.ok.is_(True)),
            )
        )
        for row in (await conn.execute(live)).all():
            if node_address(row.url) == address:
                raise AddressTaken(row.node_id)

    async def touch_heartbeat(
        self,
        node_id: str,
        at: datetime,
        state: str,
        *,
        credit_limit_s: float = 0.0,
        keyed_at: datetime | None = None,
    ) -> bool:
        """Record a heartbeat (``keyed_at``: the node's last keyed request as it said);
        False when the node is unknown or OFFLINE (left as it is).

        The credit to ``healthy_ms`` is computed in the same ``UPDATE`` from the row's
        old state and last heartbeat (``store_rewards.heartbeat_statement``, built once per
        dialect), so concurrent replicas each add their own heartbeat's once.
        """
        params = {
            "b_node_id": node_id,
            "b_at": _aware("at", at),
            "b_state": _state(state),
            "b_limit_ms": max(0, int(credit_limit_s * 1000)),
            "b_keyed_at": _aware("keyed_at", keyed_at),
        }
        if self.dialect != "postgresql":  # the store's clock: this host's (migration 0033)
            params["b_store_at"] = host_now()
        async with self.engine.begin() as conn:
            await relaxed_commit(conn)  # every heartbeat: rewritten every few seconds
            result = await conn.execute(heartbeat_statement(self.dialect), params)
        return result.rowcount == 1

    async def set_node_state(self, node_id: str, state: str) -> bool:
        """Set a node's state; False when the node is unknown."""
        stmt = (
            update(tables.nodes)
            .where(tables.nodes.c.node_id == node_id)
            .values(state=_state(state), changed_at=changed_clock(self.dialect))
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt)
        return result.rowcount == 1

    async def get_node(self, node_id: str) -> NodeRecord | None:
        stmt = select(*self._node_columns()).where(tables.nodes.c.node_id == node_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _node_from_row(row)

    async def list_nodes(self) -> list[NodeRecord]:
        """Every node, ordered by ``node_id``, each aged on the store's clock (0033)."""
        stmt = select(*self._node_columns()).order_by(tables.nodes.c.node_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_node_from_row(row) for row in rows]

    # -- requests ------------------------------------------------------------

    async def record_requests(self, recs: Sequence[RequestRecord]) -> None:
        """Insert a batch of request rows and bump the node counters, in one transaction."""
        if not recs:
            return
        dialect = self.engine.dialect
        sqlite = dialect.name == "sqlite"
        rows = [_request_row(rec, sqlite) for rec in recs]
        deltas: dict[str, _Deltas] = {}
        for rec in recs:
            if rec.node_id is None:
                continue
            d = deltas.setdefault(rec.node_id, _Deltas())
            d.requests += 1
            d.failures += rec.outcome in FAILURE_OUTCOMES
            d.tokens_generated += rec.completion_tokens
        nodes = tables.nodes
        bump = (
            update(nodes)
            .where(nodes.c.node_id == bindparam("b_node_id"))
            .values(
                requests=nodes.c.requests + bindparam("b_requests"),
                failures=nodes.c.failures + bindparam("b_failures"),
                tokens_generated=nodes.c.tokens_generated + bindparam("b_tokens"),
            )
        )
        params = [
            {
                "b_node_id": node_id,
                "b_requests": d.requests,
                "b_failures": d.failures,
                "b_tokens": d.tokens_generated,
            }
            for node_id, d in sorted(deltas.items())
        ]
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql(_insert_requests_sql(dialect.paramstyle), rows)
            if params:
                await conn.execute(bump, params)

    async def prune_requests(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` request rows created before ``before``; how many.

        One short statement (``registry/retention.py`` calls it until fewer come back),
        so SQLite's write lock is never held for long. On PostgreSQL the rows are taken
        ``FOR UPDATE SKIP LOCKED``: replicas pruning at once skip each other's rows
        instead of waiting on them.
        """
        if limit < 1:
            raise ValueError("limit is at least 1")
        cutoff = _aware("before", before)
        r = tables.requests
        ids = select(r.c.id).where(r.c.created_at < cutoff).limit(limit)
        if self.dialect == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(r).where(r.c.id.in_(ids.scalar_subquery())))
        return int(result.rowcount or 0)
