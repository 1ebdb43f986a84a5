"""What several registry replicas share through the SQL store (migration 0008).

:class:`SqlReplicaState` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore` (which
gives it ``engine`` and ``dialect``). Every claim is one statement, so any number of
replicas race safely:

- **idempotency keys**: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= now
  RETURNING``: a new key, or an expired one, is claimed by exactly one replica; the others
  get the row the winner holds.
- **health-check leases**: the same statement over a batch of node ids: each node's
  lease is taken by one replica until ``lease_until`` (its holder may renew it), or
  until its holder stops beating (no ``registry_replicas`` row seen since
  ``alive_since``: a replica killed mid-pass does not keep its nodes unchecked). The
  results go in the same rows (migration 0016: with ``since``, kept while the result is
  unchanged whoever checks, and the failed check's ``why``).
- **replica beats**: an upsert of the replica's row (``seen_at``, demand counters).
- **node changes**: nodes whose ``changed_at`` (registration, state; stamped by the store's
  clock: ``store_rewards.changed_clock``) moved since a time on that clock,
  and nodes heard since a time by the writers' wall clocks (``last_heartbeat_at``) or by
  the store's own (``heard_store_at``, migration 0033): what every replica polls
  (``registry/node_sync.py``), each row read with the store's clock in the same statement
  (PostgreSQL's ``clock_timestamp()``; SQLite: this host's), so its age is told on one
  clock (``core/store_heard.py``). :func:`server_clock` (one round trip): what rows with
  no store stamp are aged on where this replica's clock is behind it (``core/beat_stamp.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    and_,
    bindparam,
    case,
    delete,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.check_state import reason
from LLM_Mesh.core.store_heard import HeardRow, HeardRows, store_age, store_stamp
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ports import (
    CheckRecord,
    IdempotencyRecord,
    NodeKeyRecord,
    NodeRecord,
    ReplicaRecord,
)
from LLM_Mesh.registry.store_rewards import (
    heartbeat_credit,
    heartbeats_statement,
    host_now,
    not_gone,
    store_clock,
)

__all__ = ["SqlReplicaState", "node_from_row", "relaxed_commit"]


async def relaxed_commit(conn: AsyncConnection) -> None:
    """This transaction's commit does not wait for the disk (PostgreSQL's
    ``synchronous_commit = off``, this transaction only): for the heartbeat path, whose
    rows (a sequence number, a heartbeat time) are rewritten every few seconds. A database
    crash may lose the last fraction of a second of them, never corrupt anything; every
    other write (ledger, settlements, credentials) still waits for the disk."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))


_T = TypeVar("_T")
# the conflicting lease row's holder has no replica row seen since :alive_since (written
# out: SQLAlchemy does not correlate a subquery with an upsert's target row)
_HOLDER_DEAD = text(
    "NOT EXISTS (SELECT 1 FROM registry_replicas AS r "
    "WHERE r.replica_id = node_checks.holder AND r.seen_at >= :alive_since)"
).bindparams(bindparam("alive_since", type_=tables.UTCDateTime()))
_CHUNK = 500  # node ids per lease statement


def node_from_row(row: Any) -> NodeRecord:
    """A ``nodes`` row as a :class:`NodeRecord` (the store's one mapping); with a
    ``store_now`` column (:meth:`SqlReplicaState._node_columns`), aged on the store's clock."""
    stamp = store_stamp(row.heard_store_at, row.heard_store_of, row.last_heartbeat_at)
    return NodeRecord(
        node_id=row.node_id,
        url=row.url,
        region=row.region,
        models=list(row.models or []),
        hardware=dict(row.hardware or {}),
        max_concurrency=row.max_concurrency,
        max_queue=row.max_queue,
        version=row.version,
        state=row.state,
        registered_at=row.registered_at,
        last_heartbeat_at=row.last_heartbeat_at,
        requests=int(row.requests),
        failures=int(row.failures),
        tokens_generated=int(row.tokens_generated),
        healthy_ms=int(row.healthy_ms),
        # a pin written with the row's last registration only (tables.nodes: tls_at)
        tls_fingerprint=(
            row.tls_fingerprint if row.tls_at is not None and row.tls_at == row.changed_at else None
        ),
        # a declaration written with the row's last registration only (tables.nodes: keeps_at)
        keeps_no_prompts=(
            row.keeps_no_prompts
            if row.keeps_at is not None and row.keeps_at == row.tls_at
            else None
        ),
        # its last heartbeat on the store's clock, aged on it in the row's statement (0033)
        heard_store_at=stamp,
        heard_age_s=store_age(row._mapping.get("store_now"), stamp),
    )


def _idem(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        key_hash=row.key_hash,
        owner=row.owner,
        stream=bool(row.stream),
        state=row.state,
        created_at=row.created_at,
        expires_at=row.expires_at,
        status=row.status,
        body=None if row.body is None else bytes(row.body),
        headers=row.headers,
        media_type=row.media_type,
        too_large=bool(row.too_large),
        claim=row.claim,
    )


def _replica(row: Any) -> ReplicaRecord:
    return ReplicaRecord(
        replica_id=row.replica_id,
        started_at=row.started_at,
        seen_at=row.seen_at,
        version=row.version,
        demand=dict(row.demand or {}),
    )


async def server_clock(engine: AsyncEngine) -> float | None:
    """The database server's clock (seconds since the epoch) on PostgreSQL, one round
    trip; ``None`` on SQLite (this host's clock, which every replica on it shares)."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as conn:
        now = await conn.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
        return float(now.scalar_one())


class SqlReplicaState:
    """See the module docstring."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    @property
    def dialect(self) -> str:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    def _insert(self, table: Any) -> Any:
        return pg_insert(table) if self.dialect == "postgresql" else sqlite_insert(table)

    # -- nodes ------------------------------------------------------------------------

    def _store_now(self) -> Any:
        """The store's clock as a column: PostgreSQL's ``clock_timestamp()``; SQLite's
        (one host) this process's, read as the statement is made."""
        if self.dialect == "postgresql":
            return store_clock(self.dialect)
        return literal(host_now(), tables.UTCDateTime())

    def _node_columns(self) -> tuple[Any, ...]:
        """``nodes`` with the store's clock (``store_now``): rows aged on it (0033)."""
        return (tables.nodes, self._store_now().label("store_now"))

    async def nodes_changed_since(self, at: datetime) -> list[NodeRecord]:
        stmt = select(*self._node_columns()).where(tables.nodes.c.changed_at >= at)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [node_from_row(row) for row in rows]

    async def server_now(self) -> float | None:
        return await server_clock(self.engine)

    async def heartbeats_since(
        self, at: datetime, *, store_since: datetime | None = None, not_by: str | None = None
    ) -> HeardRows:
        n = tables.nodes
        heard: Any = n.c.last_heartbeat_at >= at
        if store_since is not None:  # and by the store's clock, where told (migration 0033)
            told = and_(
                n.c.heard_store_at >= store_since, n.c.heard_store_of == n.c.last_heartbeat_at
            )
            heard = or_(heard, told)
        if not_by is not None:  # what this replica wrote itself it knows already
            heard = and_(heard, or_(n.c.heard_by.is_(None), n.c.heard_by != not_by))
        # one row of the store's clock, joined to the rows: read in the same statement,
        # after the statement's snapshot (every row it sees was stamped before it)
        clock = select(self._store_now().label("store_now")).subquery("c")
        stmt = select(
            clock.c.store_now, n.c.node_id, n.c.state, n.c.last_heartbeat_at, n.c.keyed_at,
            n.c.heard_store_at, n.c.heard_store_of,
        ).select_from(clock.outerjoin(n, heard))  # fmt: skip
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        store_now = rows[0].store_now if rows else None
        out = []
        for row in rows:
            if row.node_id is None:
                continue  # no row heard: the clock's alone
            stamp = store_stamp(row.heard_store_at, row.heard_store_of, row.last_heartbeat_at)
            out.append(
                HeardRow(row.node_id, row.state, row.last_heartbeat_at, row.keyed_at,
                         stamp, store_age(store_now, stamp))
            )  # fmt: skip
        return HeardRows(out, store_now)

    @property
    def batch_engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def _batched(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run one heartbeat batch: autocommit statements on PostgreSQL (each atomic on its
        own, on the batch engine), a transaction elsewhere; a connection the server dropped
        is replaced and the batch run once more (``work`` must be safe to run again: its
        first run may have committed with its answer lost)."""
        for attempt in (1, 2):
            try:
                if self.dialect != "postgresql":
                    async with self.engine.begin() as conn:
                        return await work(conn)
                async with self.batch_engine.connect() as conn:
                    return await work(conn)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def advance_node_seqs(self, items: Sequence[tuple[str, int]]) -> dict[str, str]:
        """Many nodes' messages at once (``registry/heartbeat_writes.py``): take each
        ``seq`` if greater than the node's last one and its key is not revoked, in one
        statement on PostgreSQL. Answers ``SeqResult`` values by node id; one item per node
        (the batcher keeps the highest)."""
        k = tables.node_keys
        # this batch's token (migration 0020), the same in ``_batched``'s second run: a
        # number this batch took before its answer was lost is its own, taken again; one
        # equal to the stored number under another token (a replay) is still stale
        token = secrets.token_hex(16)

        async def work(conn: AsyncConnection) -> dict[str, str]:
            taken: set[str] = set()
            if self.dialect == "postgresql":
                stmt = text(
                    "UPDATE node_keys AS k SET last_seq = v.seq, seq_batch = :token FROM unnest("
                    "CAST(:ids AS varchar[]), CAST(:seqs AS bigint[])) AS v(node_id, seq) "
                    "WHERE k.node_id = v.node_id AND k.revoked_at IS NULL AND (k.last_seq < v.seq "
                    "OR (k.last_seq = v.seq AND k.seq_batch = :token)) RETURNING k.node_id"
                )
                ids, seqs = [i for i, _ in items], [q for _, q in items]
                params = {"ids": ids, "seqs": seqs, "token": token}
                rows = (await conn.execute(stmt, params)).all()
                taken = {r.node_id for r in rows}
            else:
                for node_id, seq in items:
                    again = and_(k.c.last_seq == seq, k.c.seq_batch == token)
                    result = await conn.execute(
                        update(k)
                        .where(k.c.node_id == node_id, k.c.revoked_at.is_(None))
                        .where(or_(k.c.last_seq < seq, again))
                        .values(last_seq=seq, seq_batch=token)
                    )
                    if result.rowcount == 1:
                        taken.add(node_id)
            out = {node_id: "ok" for node_id in taken}
            missed = [node_id for node_id, _ in items if node_id not in taken]
            if missed:
                query = select(k.c.node_id, k.c.revoked_at).where(k.c.node_id.in_(missed))
                known = {r.node_id: r.revoked_at for r in (await conn.execute(query)).all()}
                for node_id in missed:
                    if node_id not in known:
                        out[node_id] = "unknown"
                    else:
                        out[node_id] = "revoked" if known[node_id] is not None else "stale"
            return out

        return await self._batched(work)

    async def get_node_keys(self, node_ids: Sequence[str]) -> dict[str, NodeKeyRecord]:
        """Many node keys in one query (the batcher's look-ups of keys not yet in memory)."""
        k = tables.node_keys

        async def work(conn: AsyncConnection) -> dict[str, NodeKeyRecord]:
            query = select(k).where(k.c.node_id.in_(list(node_ids)))
            return {
                r.node_id: NodeKeyRecord(
                    r.node_id, r.public_key, r.operator, int(r.last_seq), r.created_at,
                    r.revoked_at,
                )
                for r in (await conn.execute(query)).all()
            }  # fmt: skip

        return await self._batched(work)

    async def touch_heartbeats(
        self,
        items: Sequence[tuple[str, datetime, str, int]],
        heard_by: str | None = None,
        *,
        keyed: Mapping[str, datetime] | None = None,
        waited: Mapping[str, float] | None = None,
    ) -> None:
        """Many heartbeats' times and states at once (one statement on PostgreSQL), heard by
        the replica ``heard_by``; each item ``(node_id, at, state, credit_limit_ms)`` adds
        its uptime credit to ``healthy_ms`` as ``touch_heartbeat`` does
        (``store_rewards.heartbeat_credit``: the same rule, from the row's old values);
        ``keyed``: node id -> its last keyed request as it said (``nodes.keyed_at``; a node
        not in it: NULL); ``waited``: node id -> the seconds its heartbeat waited since it
        arrived, taken off the store's stamp (0033; a node not in it: 0). An OFFLINE
        node's row is left as it is (``store_rewards.not_gone``)."""
        n = tables.nodes
        said, wait = keyed or {}, waited or {}

        async def work(conn: AsyncConnection) -> None:
            if self.dialect == "postgresql":  # one statement, the rule written once
                params = {
                    "ids": [i for i, _, _, _ in items],
                    "ats": [a for _, a, _, _ in items],
                    "states": [st for _, _, st, _ in items],
                    "lims": [lim for _, _, _, lim in items],
                    "keyeds": [said.get(i) for i, _, _, _ in items],
                    "waits": [float(wait.get(i, 0.0)) for i, _, _, _ in items],
                    "by": heard_by,
                }
                await conn.execute(heartbeats_statement(self.dialect), params)
                return
            for node_id, at, state, lim in items:
                at_sql = literal(at, tables.UTCDateTime())
                credit = heartbeat_credit(self.dialect, at_sql, literal(lim, BigInteger()))
                await conn.execute(
                    update(n)
                    .where(n.c.node_id == node_id, not_gone())
                    .values(
                        last_heartbeat_at=at,
                        # the store's clock: this host's (0033), less the queue's wait
                        heard_store_at=host_now()
                        - timedelta(seconds=max(0.0, wait.get(node_id, 0.0))),
                        heard_store_of=at,
                        state=state,
                        keyed_at=said.get(node_id),
                        heard_by=heard_by,
                        healthy_ms=n.c.healthy_ms + credit,
                    )
                )

        await self._batched(work)

    # -- health-check leases ------------------------------------------------------------

    async def claim_health_checks(
        self,
        node_ids: Sequence[str],
        holder: str,
        now: datetime,
        until: datetime,
        *,
        alive_since: datetime | None = None,
    ) -> list[str]:
        t = tables.node_checks
        free: list[Any] = [t.c.lease_until <= now, t.c.holder == holder]
        if alive_since is not None:  # a lease of a replica that stopped beating is free
            free.append(_HOLDER_DEAD.bindparams(alive_since=alive_since))
        taken: list[str] = []
        ids = sorted(set(node_ids))
        async with self.engine.begin() as conn:
            for i in range(0, len(ids), _CHUNK):
                rows = [
                    {"node_id": nid, "holder": holder, "lease_until": until}
                    for nid in ids[i : i + _CHUNK]
                ]
                ins = self._insert(t).values(rows)
                stmt = ins.on_conflict_do_update(
                    index_elements=[t.c.node_id],
                    set_={"holder": ins.excluded.holder, "lease_until": ins.excluded.lease_until},
                    where=or_(*free),
                ).returning(t.c.node_id)
                taken.extend(r.node_id for r in (await conn.execute(stmt)).all())
        return taken

    async def record_health_checks(self, results: Sequence[CheckRecord]) -> None:
        if not results:
            return
        t = tables.node_checks
        async with self.engine.begin() as conn:
            for rec in results:
                since = rec.since or rec.checked_at
                values: dict[str, Any] = {
                    "checked_at": rec.checked_at,
                    "ok": rec.ok,
                    # the same result as the row's: its since stays (SET reads the old row)
                    "since": case(
                        (and_(t.c.ok == rec.ok, t.c.since.is_not(None)), t.c.since),
                        else_=literal(since, tables.UTCDateTime()),
                    ),
                    "why": None if rec.ok else reason(rec.why),
                }
                if not rec.ok:  # a failed node's recheck is free to any replica's next sweep
                    values["lease_until"] = rec.checked_at
                # only over an older result: a pass that outlived its lease (its results are
                # written after it) must not overwrite a newer check of another replica
                newer = or_(t.c.checked_at.is_(None), t.c.checked_at < rec.checked_at)
                stmt = update(t).where(t.c.node_id == rec.node_id, newer).values(**values)
                await conn.execute(stmt)

    async def health_checks_since(self, at: datetime) -> list[CheckRecord]:
        t = tables.node_checks
        stmt = select(t.c.node_id, t.c.ok, t.c.checked_at, t.c.since, t.c.why).where(
            and_(t.c.checked_at >= at, t.c.ok.is_not(None))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            CheckRecord(row.node_id, bool(row.ok), row.checked_at, row.since, row.why)
            for row in rows
        ]

    # -- replicas -----------------------------------------------------------------------

    async def beat_replica(self, rec: ReplicaRecord) -> None:
        t = tables.registry_replicas
        ins = self._insert(t).values(
            replica_id=rec.replica_id, started_at=rec.started_at, seen_at=rec.seen_at,
            version=rec.version, demand=rec.demand,
        )  # fmt: skip
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.replica_id],
            set_={"seen_at": ins.excluded.seen_at, "demand": ins.excluded.demand},
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def live_replicas(self, since: datetime) -> list[ReplicaRecord]:
        t = tables.registry_replicas
        stmt = select(t).where(t.c.seen_at >= since).order_by(t.c.replica_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_replica(row) for row in rows]

    async def drop_replicas_before(self, before: datetime) -> int:
        """Delete rows of replicas not seen since ``before``; how many."""
        t = tables.registry_replicas
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(t).where(t.c.seen_at < before))
        return int(result.rowcount or 0)

    # -- idempotency keys ---------------------------------------------------------------

    async def claim_request_key(
        self,
        key_hash: str,
        owner: str,
        stream: bool,
        now: datetime,
        expires_at: datetime,
        *,
        claim: str | None = None,
        supersede_done: bool = False,
    ) -> IdempotencyRecord | None:
        t = tables.idempotency_keys
        free = t.c.expires_at <= now  # a row that may be taken over
        if supersede_done:
            free = or_(free, t.c.state == "done")
        values = {
            "key_hash": key_hash, "owner": owner, "stream": stream, "state": "running",
            "status": None, "body": None, "headers": None, "media_type": None,
            "too_large": False, "created_at": now, "expires_at": expires_at, "claim": claim,
        }  # fmt: skip
        for _ in range(3):  # a row released between the two statements: claim again
            ins = self._insert(t).values(**values)
            stmt = ins.on_conflict_do_update(
                index_elements=[t.c.key_hash],
                set_={k: ins.excluded[k] for k in values if k != "key_hash"},
                where=free,
            ).returning(t.c.key_hash)
            async with self.engine.begin() as conn:
                if (await conn.execute(stmt)).first() is not None:
                    return None
                row = (await conn.execute(select(t).where(t.c.key_hash == key_hash))).first()
            if row is not None:
                return _idem(row)
        raise RuntimeError(f"idempotency key {key_hash} could not be claimed or read")

    async def get_request_key(self, key_hash: str) -> IdempotencyRecord | None:
        t = tables.idempotency_keys
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.key_hash == key_hash))).first()
        return None if row is None else _idem(row)

    async def finish_request_key(self, rec: IdempotencyRecord) -> bool:
        t = tables.idempotency_keys
        stmt = (
            update(t)
            .where(and_(t.c.key_hash == rec.key_hash, t.c.owner == rec.owner))
            .where(t.c.state == "running")
            .values(
                state="done",
                status=rec.status,
                body=rec.body,
                headers=rec.headers,
                media_type=rec.media_type,
                too_large=rec.too_large,
                expires_at=rec.expires_at,
            )
        )
        if rec.claim is not None:  # that claim's row only
            stmt = stmt.where(t.c.claim == rec.claim)
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt)
        return result.rowcount == 1

    async def release_request_key(
        self, key_hash: str, owner: str, claim: str | None = None
    ) -> None:
        t = tables.idempotency_keys
        stmt = delete(t).where(
            and_(t.c.key_hash == key_hash, t.c.owner == owner, t.c.state == "running")
        )
        if claim is not None:  # that claim's row only, never a later claim of the id
            stmt = stmt.where(t.c.claim == claim)
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def extend_request_key(self, key_hash: str, claim: str, expires_at: datetime) -> bool:
        t = tables.idempotency_keys
        stmt = (
            update(t)
            .where(and_(t.c.key_hash == key_hash, t.c.claim == claim, t.c.state == "running"))
            .values(expires_at=expires_at)
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt)
        return result.rowcount == 1

    async def keep_request_keys(self, records: list[IdempotencyRecord], now: datetime) -> None:
        t = tables.idempotency_keys
        async with self.engine.begin() as conn:
            await conn.execute(delete(t).where(t.c.expires_at <= now))
            for rec in records:
                values = {
                    "owner": rec.owner, "stream": rec.stream, "state": rec.state,
                    "status": rec.status, "body": rec.body, "headers": rec.headers,
                    "media_type": rec.media_type, "too_large": rec.too_large,
                    "created_at": rec.created_at, "expires_at": rec.expires_at,
                    "claim": rec.claim,
                }  # fmt: skip
                ins = self._insert(t).values(key_hash=rec.key_hash, **values)
                await conn.execute(
                    ins.on_conflict_do_update(index_elements=[t.c.key_hash], set_=values)
                )

    async def purge_request_keys(self, now: datetime) -> int:
        t = tables.idempotency_keys
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(t).where(t.c.expires_at <= now))
        return int(result.rowcount or 0)
