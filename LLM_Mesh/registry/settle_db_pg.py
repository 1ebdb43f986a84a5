"""Settlement's hot-path writes on PostgreSQL (:class:`PgSettleDb`; the operations:
``registry/settle_ops.py``; the writer for a store: ``settle_db.settle_db_for``).

One dedicated ``asyncpg`` connection, made from the store's URL as its engine reads it
(``registry/pg_connect.py``): a whole batch is one call of a PL/pgSQL function
(migrations 0006, 0010, 0015), one round trip and one commit. The call carries a random
batch id, recorded with the batch's result rows in the same transaction
(``settle_batches``): when the connection is lost and the batch is sent again, a batch the
server had already committed returns its rows and is not applied twice.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from LLM_Mesh.registry.pg_connect import asyncpg_args
from LLM_Mesh.registry.settle_ops import Answer, Op, Reserve, Reserved, Void, in_payer_order
from LLM_Mesh.registry.start_retry import lost_connection

__all__ = ["PgSettleDb"]

# migration 0010's function: the whole batch in one round trip (and one commit), applied
# once per batch id (0006's function behind a record of the id and the rows it returned)
_PG_BATCH = (  # migration 0015's, with the leases' writes (0010's without)
    "SELECT idx, ok, bal, res, lease FROM llm_mesh_settle_batch2_once($1::uuid, "
    "$2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::text[], "
    "$9::text[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::bigint[], "
    "$15::bigint[], $16::text, $17::timestamptz)"
)
# a deadlock the server broke: payers are locked in order, but a lease's recovery can meet a
# take on the same lease (docs/ARCHITECTURE.md, "Atomic reservation")
_PG_RETRIES = 3
# the pauses before each new connection after a lost one (a server restart takes a few
# seconds): sending a batch again is safe, its id makes it apply once
_PG_RECONNECT_S = (0.0, 0.25, 1.0)


def _pg_rows(ops: Sequence[Op]) -> tuple[list[list[Any]], list[int]]:
    """The function's column arrays for ``ops`` (in payer order; an answer's parts 1... as
    rows of their own after it) and, per row, the index of the op it belongs to."""
    cols: list[list[Any]] = [[] for _ in range(14)]
    owner: list[int] = []

    def row(i: int, *values: Any) -> None:  # the last three (a lease's) None if not given
        for col, v in zip(cols, (*values, None, None, None)[:14], strict=True):
            col.append(v)
        owner.append(i)

    for i in in_payer_order(ops):
        op = ops[i]
        if isinstance(op, Reserve):
            row(i, "reserve", op.key, op.payer, op.model, op.estimate, 0, None, None, None,
                None, None)  # fmt: skip
        elif isinstance(op, Answer):
            first = op.parts[0]
            row(i, "answer", op.key, op.payer, op.model, op.total, 0, first.node_id,
                first.operator, first.amount, first.fee, op.receipt_hash)  # fmt: skip
            for n, p in enumerate(op.parts[1:], start=1):
                row(i, "part", op.key, op.payer, op.model, 0, n, p.node_id, p.operator,
                    p.amount, p.fee, op.receipt_hash)  # fmt: skip
        elif isinstance(op, Void):
            row(i, "void", op.key, op.payer, None, 0, 0, None, None, None, None, None)
        else:
            op.pg_rows(partial(row, i))
    return cols, owner


def _batch_id() -> uuid.UUID:
    """A batch's id: 80 random bits after the time in ms (48 bits, as a UUIDv7's), so the
    ids of one period sit together in ``settle_batches``'s index."""
    return uuid.UUID(bytes=(time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))


def _pg_lost(exc: BaseException) -> bool:
    """Lost, not the batch's own: the start's rule (a bad setting is not), or ``OSError``."""
    return isinstance(exc, OSError) or lost_connection(exc)


class PgSettleDb:
    """:class:`SettleDb` on PostgreSQL: one dedicated ``asyncpg`` connection; a batch is one
    call of migration 0010's ``llm_mesh_settle_batch_once`` (one round trip, one commit),
    applied once per batch id however often it is sent."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: Any = None

    async def open(self) -> None:
        if self._conn is None:
            import asyncpg  # lazy: only a PostgreSQL store needs it

            self._conn = await asyncpg.connect(**asyncpg_args(self.dsn))  # as the store's

    async def apply(
        self, ops: Sequence[Op], holder: str, now: datetime
    ) -> list[Reserved | bool | None]:
        import asyncpg

        if self._conn is not None and self._conn.is_closed():
            self._conn = None
        cols, owner = _pg_rows(ops)
        batch = _batch_id()
        deadlocks = lost = 0
        while True:
            try:
                if self._conn is None:
                    await self.open()
                rows = await self._conn.fetch(_PG_BATCH, batch, *cols, holder, now)
                break
            except asyncpg.exceptions.DeadlockDetectedError:
                deadlocks += 1
                if deadlocks == _PG_RETRIES:
                    raise
            except Exception as exc:
                if not _pg_lost(exc):
                    raise
                # the connection is gone (pg_terminate_backend, a server restart), or broken
                # without asyncpg noticing (it then answers InternalClientError "cannot
                # switch to state ..." to every call: MagicStack/asyncpg#1069), or a new
                # one could not be made: a new one after a pause, and the batch once more,
                # with the same id. Whether the server rolled the lost call back,
                # committed it before the rows reached us, or still runs it (the repeat
                # then waits for it), the batch is applied once and the rows are its own.
                # Not retried, a void or an answer would be lost while this holder lives;
                # after the last pause the error goes to the callers (any other at once).
                self._drop()
                if lost == len(_PG_RECONNECT_S):
                    raise
                await asyncio.sleep(_PG_RECONNECT_S[lost])
                lost += 1
        out: list[Reserved | bool | None] = [None] * len(ops)
        for r in rows:
            i, op = owner[int(r["idx"]) - 1], ops[owner[int(r["idx"]) - 1]]
            if isinstance(op, Reserve):
                out[i] = Reserved(bool(r["ok"]), int(r["bal"]), int(r["res"]))
            elif isinstance(op, Answer) and out[i] is None:
                out[i] = bool(r["ok"])  # the answer's own row (its parts follow it)
            elif not isinstance(op, (Answer, Void)) and out[i] is None:
                out[i] = op.pg_result(r)
        return out

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
