"""The SQL store's credential tables: operators, node keys, the admin key.

:class:`SqlCredentials` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore`
(which gives it ``engine`` and ``dialect``). Every check-and-change is one atomic
statement (or one transaction), so several registry processes and the admin CLI
can share one database:

- a sequence number is taken with ``UPDATE node_keys SET last_seq = :seq WHERE
  node_id = :id AND last_seq < :seq AND revoked_at IS NULL`` (one row changed =
  accepted); a replay or a revoked key changes nothing;
- a node key is claimed only while its operator is not revoked (read again in the
  claim's transaction, under a share lock on PostgreSQL, so a revocation running at the
  same moment either sees the new key or refuses it);
- revoking an operator revokes its node keys and sets their nodes OFFLINE in the
  same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ports import NodeKeyRecord, OperatorRecord, SeqResult
from LLM_Mesh.registry.store_replicas import relaxed_commit
from LLM_Mesh.registry.store_rewards import changed_clock

_ADMIN_ROW = 1


def _operator(row: Any, nodes: list[str] | None = None) -> OperatorRecord:
    return OperatorRecord(
        name=row.name,
        token_hash=row.token_hash,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        nodes=list(nodes or []),
        uptime_nodes=row.uptime_nodes,
    )


def _node_key(row: Any) -> NodeKeyRecord:
    return NodeKeyRecord(
        node_id=row.node_id,
        public_key=row.public_key,
        operator=row.operator,
        last_seq=int(row.last_seq),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def _why_not(
    conn: AsyncConnection, node_id: str, public_key: str | None, operator: str | None = None
) -> SeqResult:
    k = tables.node_keys
    row = (await conn.execute(select(k).where(k.c.node_id == node_id))).first()
    if row is None:
        return SeqResult.UNKNOWN
    if public_key is not None and row.public_key != public_key:
        return SeqResult.KEY_MISMATCH
    if row.revoked_at is not None:
        return SeqResult.REVOKED
    if operator is not None and row.operator != operator:
        return SeqResult.OTHER_OPERATOR
    return SeqResult.STALE


async def insert_new(conn: AsyncConnection, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; ``True`` when the row was inserted."""
    if conn.dialect.name == "postgresql":
        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    result = await conn.execute(stmt)
    return bool(result.rowcount == 1)


async def _offline(conn: AsyncConnection, node_ids: list[str]) -> None:
    """The revoked nodes' rows offline and changed now, as ``set_node_state`` (and the
    memory store's revocation) marks them: their retention counts from the revocation, and
    a replica polling ``nodes_changed_since`` hears of it (found 2026-12-06, small35:
    ``changed_at`` was left alone, so a row quiet for 30 days was pruned at its revocation)."""
    if node_ids:
        n = tables.nodes
        await conn.execute(
            update(n)
            .where(n.c.node_id.in_(node_ids))
            .values(state=NodeState.OFFLINE.value, changed_at=changed_clock(conn.dialect.name))
        )


class SqlCredentials:
    """Operators, node keys and the admin key on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    # -- operators ------------------------------------------------------------

    async def add_operator(
        self, name: str, token_hash: str, at: datetime, *, replace: bool = False
    ) -> bool:
        if not name or len(name) > 128:
            raise ValueError("an operator name is 1 to 128 characters")
        o = tables.operators
        async with self.engine.begin() as conn:
            exists = (await conn.execute(select(o.c.name).where(o.c.name == name))).first()
            if exists is not None:
                if not replace:
                    return False
                await conn.execute(
                    update(o)
                    .where(o.c.name == name)
                    .values(token_hash=token_hash, revoked_at=None, created_at=at)
                )
                return True
            return await insert_new(
                conn, o, {"name": name, "token_hash": token_hash, "created_at": at}
            )

    async def operator_by_token(self, token_hash: str) -> OperatorRecord | None:
        o = tables.operators
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(o).where(o.c.token_hash == token_hash))).first()
        return None if row is None else _operator(row)

    async def list_operators(self) -> list[OperatorRecord]:
        o, k = tables.operators, tables.node_keys
        async with self.engine.connect() as conn:
            ops = (await conn.execute(select(o).order_by(o.c.name))).all()
            keys = (
                await conn.execute(select(k.c.operator, k.c.node_id).order_by(k.c.node_id))
            ).all()
        by_op: dict[str, list[str]] = {}
        for op_name, node_id in keys:
            by_op.setdefault(op_name, []).append(node_id)
        return [_operator(row, by_op.get(row.name)) for row in ops]

    async def operator_node_keys(self, name: str) -> dict[str, bool]:
        k = tables.node_keys  # (ix_node_keys_operator)
        stmt = select(k.c.node_id, k.c.revoked_at).where(k.c.operator == name)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(k.c.node_id))).all()
        return {r.node_id: r.revoked_at is not None for r in rows}

    async def set_operator_uptime_nodes(self, name: str, nodes: int | None) -> bool:
        if nodes is not None and nodes < 0:
            raise ValueError("an uptime cap is a number of nodes, 0 or more")
        o = tables.operators
        async with self.engine.begin() as conn:
            done = await conn.execute(update(o).where(o.c.name == name).values(uptime_nodes=nodes))
        return bool(done.rowcount)

    async def revoke_operator(self, name: str, at: datetime) -> list[str] | None:
        o, k = tables.operators, tables.node_keys
        async with self.engine.begin() as conn:
            found = (await conn.execute(select(o.c.name).where(o.c.name == name))).first()
            if found is None:
                return None
            await conn.execute(
                update(o)
                .where(and_(o.c.name == name, o.c.revoked_at.is_(None)))
                .values(revoked_at=at)
            )
            ids = [
                r.node_id
                for r in (await conn.execute(select(k.c.node_id).where(k.c.operator == name)))
            ]
            await conn.execute(
                update(k)
                .where(and_(k.c.operator == name, k.c.revoked_at.is_(None)))
                .values(revoked_at=at)
            )
            await _offline(conn, ids)
        return sorted(ids)

    # -- node keys --------------------------------------------------------------

    async def claim_node_key(
        self, node_id: str, public_key: str, operator: str, seq: int, at: datetime
    ) -> SeqResult:
        k, o = tables.node_keys, tables.operators
        async with self.engine.begin() as conn:
            # the operator again, in the claim's transaction: revoked since the registration
            # read it (its address check runs in between), the key is refused. Under a share
            # lock on PostgreSQL: a revocation in flight is waited for, and one that waits
            # for this claim reads its key afterwards (found 2026-12-03: a key claimed as
            # its operator was revoked stayed unrevoked)
            current = select(o.c.revoked_at).where(o.c.name == operator)
            if conn.dialect.name == "postgresql":
                current = current.with_for_update(read=True)
            op = (await conn.execute(current)).first()
            if op is not None and op.revoked_at is not None:
                return SeqResult.REVOKED
            new = {
                "node_id": node_id,
                "public_key": public_key,
                "operator": operator,
                "last_seq": seq,
                "created_at": at,
            }
            if await insert_new(conn, k, new):
                return SeqResult.OK
            result = await conn.execute(
                update(k)
                .where(
                    and_(
                        k.c.node_id == node_id,
                        k.c.public_key == public_key,
                        k.c.operator == operator,  # a key is its first operator's
                        k.c.revoked_at.is_(None),
                        k.c.last_seq < seq,
                    )
                )
                .values(last_seq=seq)
            )
            if result.rowcount == 1:
                return SeqResult.OK
            return await _why_not(conn, node_id, public_key, operator)

    async def advance_node_seq(self, node_id: str, seq: int) -> SeqResult:
        k = tables.node_keys
        async with self.engine.begin() as conn:
            await relaxed_commit(conn)  # every heartbeat: a row rewritten every few seconds
            result = await conn.execute(
                update(k)
                .where(and_(k.c.node_id == node_id, k.c.revoked_at.is_(None), k.c.last_seq < seq))
                .values(last_seq=seq)
            )
            if result.rowcount == 1:
                return SeqResult.OK
            return await _why_not(conn, node_id, None)

    async def get_node_key(self, node_id: str) -> NodeKeyRecord | None:
        k = tables.node_keys
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(k).where(k.c.node_id == node_id))).first()
        return None if row is None else _node_key(row)

    async def revoke_node(self, node_id: str, at: datetime) -> bool:
        k = tables.node_keys
        async with self.engine.begin() as conn:
            found = (await conn.execute(select(k.c.node_id).where(k.c.node_id == node_id))).first()
            if found is None:
                return False
            await conn.execute(
                update(k)
                .where(and_(k.c.node_id == node_id, k.c.revoked_at.is_(None)))
                .values(revoked_at=at)
            )
            await _offline(conn, [node_id])
        return True

    async def revoked_nodes_since(self, at: datetime) -> list[str]:
        k = tables.node_keys
        stmt = select(k.c.node_id).where(k.c.revoked_at >= at).order_by(k.c.node_id)
        async with self.engine.connect() as conn:
            return [r.node_id for r in (await conn.execute(stmt))]

    # -- the admin key -------------------------------------------------------------

    async def get_admin_key_hash(self) -> str | None:
        a = tables.admin_key
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(a.c.key_hash).where(a.c.id == _ADMIN_ROW))).first()
        return None if row is None else str(row.key_hash)

    async def set_admin_key_hash(self, key_hash: str, at: datetime, *, replace: bool) -> bool:
        a = tables.admin_key
        async with self.engine.begin() as conn:
            if await insert_new(
                conn, a, {"id": _ADMIN_ROW, "key_hash": key_hash, "created_at": at}
            ):
                return True
            if not replace:
                return False
            await conn.execute(
                update(a).where(a.c.id == _ADMIN_ROW).values(key_hash=key_hash, created_at=at)
            )
        return True
