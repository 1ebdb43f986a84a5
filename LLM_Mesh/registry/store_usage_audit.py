"""The SQL store's usage-audit tables (migration 0026): the evidence every replica shares.

:class:`SqlUsageAudit` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore` (which
gives it ``engine``); ``registry/usage_audit_sync.py`` drives it. A batch of window sums
is one ``INSERT ... ON CONFLICT DO UPDATE`` adding to the row (several replicas add to one
node's window; a sum for a window already folded, a late replica's, to the first open
one: ``_in_open_windows``), its commit not waiting for the disk (``relaxed_commit``: a crash loses
at most the last second of them). A fold moves the model's mark only from the value read
(``UPDATE ... WHERE folded = :read``: on PostgreSQL a second replica's update waits for
the first's commit, then finds the mark moved and writes nothing), and writes each node's
evidence only where its epoch is still the one read (a verdict claimed in between
stands). A verdict is claimed the same way: the first replica whose update finds the
epoch it read starts the evidence over; another's finds it moved.

A batch and a fold of one model never interleave (:func:`_lock_models`; found 2026-12-06,
audit33): on PostgreSQL a batch holds a shared transaction advisory lock per model (one of
``LOCK_SLOTS``: found 2026-12-06, review33, one each ran out of the server's lock table) from
before it reads the fold marks to its commit, a fold the model's exclusive one from its
start to its commit (read committed: else a fold committed between a batch's read of the
marks and its insert left the batch in a window already folded, never read). On SQLite
both start with a write (the database's one writer lock, taken then). Under that lock the
fold reads its windows again: what a batch added since the fold's own read (before it
took the lock) goes to the first open window (``core/usage_evidence.unread_sums``), not
dropped with the windows folded. A verdict's claim holds the model's exclusive lock too
(found 2026-12-06, review33: committed inside a fold, the fold put back the node's sums
it dropped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.usage_evidence import open_bucket
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.memory_usage_audit import unread_rows
from LLM_Mesh.registry.ports import UsageAuditRows, UsageEvidenceRow, UsageWindowRow
from LLM_Mesh.registry.store_credentials import insert_new
from LLM_Mesh.registry.store_replicas import relaxed_commit, server_clock

__all__ = ["SqlUsageAudit"]

_SUMS = ("requests", "completion", "completion_cap", "prompt", "prompt_cap")
_EVIDENCE = (
    "requests", "peer_requests", "peers", "completion", "completion_cap", "completion_ref",
    "prompt", "prompt_cap", "prompt_ref", "bucket",
)  # fmt: skip


def _window(row: Any) -> UsageWindowRow:
    return UsageWindowRow(
        row.model, int(row.bucket), row.node_id, *(int(getattr(row, c)) for c in _SUMS)
    )


def _evidence(row: Any) -> UsageEvidenceRow:
    return UsageEvidenceRow(
        row.model, row.node_id, int(row.epoch), int(row.requests), int(row.peer_requests),
        int(row.peers), float(row.completion), float(row.completion_cap),
        float(row.completion_ref), float(row.prompt), float(row.prompt_cap),
        float(row.prompt_ref), int(row.bucket),
    )  # fmt: skip


def _values(r: UsageEvidenceRow) -> dict[str, Any]:
    return {c: getattr(r, c) for c in _EVIDENCE}


async def _write(conn: AsyncConnection, r: UsageEvidenceRow) -> bool:
    """``r`` written where its epoch is still the one read (0: no row yet), epoch + 1."""
    e = tables.usage_audit_evidence
    if r.epoch <= 0:
        values = {"model": r.model, "node_id": r.node_id, "epoch": 1, **_values(r)}
        return await insert_new(conn, e, values)
    key = (e.c.model == r.model) & (e.c.node_id == r.node_id) & (e.c.epoch == r.epoch)
    result = await conn.execute(update(e).where(key).values(epoch=r.epoch + 1, **_values(r)))
    return bool(result.rowcount == 1)


def _in_open_windows(rows: list[UsageWindowRow], marks: dict[str, int]) -> list[UsageWindowRow]:
    """``rows`` with a folded window's sum moved to the model's first open window
    (``core/usage_evidence.open_bucket``; found 2026-12-05, attack32c: a late replica's
    sums were never read again), rows that then share a window merged (one insert may not
    update a row twice)."""
    out: dict[tuple[str, int, str], UsageWindowRow] = {}
    for r in rows:
        b = open_bucket(r.bucket, marks.get(r.model, -1))
        had = out.get((r.model, b, r.node_id))
        sums = [getattr(r, c) + (getattr(had, c) if had is not None else 0) for c in _SUMS]
        out[(r.model, b, r.node_id)] = UsageWindowRow(r.model, b, r.node_id, *sums)
    return list(out.values())


# a model's advisory lock is one of these (found 2026-12-06, review33: one a model, a batch
# of thousands of models held thousands to its commit, past the server's shared lock table,
# 64 per connection by default: "out of shared memory", the batch refused at every run and
# any other transaction on the server needing a lock then too)
LOCK_SLOTS = 32
# the models' marks read this many at a time (found 2026-12-06, review33: a batch of more
# than 32,767 models, up to ``max_pending`` 65,536, was refused by asyncpg at every run)
_READ_CHUNK = 8192
_LOCK_BASE = int.from_bytes(hashlib.blake2b(b"usage_audit", digest_size=6).digest(), "big") << 8


def lock_key(model: str) -> int:
    """The PostgreSQL advisory lock key of ``model``'s usage-audit rows: one of
    ``LOCK_SLOTS`` keys (two models sharing one only wait for each other)."""
    digest = hashlib.blake2b(b"usage_audit\0" + model.encode(), digest_size=8).digest()
    return _LOCK_BASE + int.from_bytes(digest, "big") % LOCK_SLOTS


async def _lock_models(conn: AsyncConnection, models: Sequence[str], *, shared: bool) -> None:
    """Hold ``models``' usage-audit lock to this transaction's end (module docstring):
    shared (a batch) or exclusive (a fold). SQLite: the writer lock, by a write."""
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        keys = sorted({lock_key(m) for m in models})
        await conn.execute(text(f"SELECT count({fn}(k)) FROM unnest(CAST(:keys AS bigint[])) k"),
                           {"keys": keys})  # fmt: skip
    else:
        f = tables.usage_audit_folds
        await conn.execute(update(f).where(f.c.model.in_(list(models))).values(folded=f.c.folded))


async def _upsert_windows(conn: AsyncConnection, rows: Iterable[UsageWindowRow]) -> None:
    """Add each row's sums to its window's row (in one order at every replica: two batches
    never wait for each other)."""
    values = [
        {"model": r.model, "bucket": r.bucket, "node_id": r.node_id}
        | {c: getattr(r, c) for c in _SUMS}
        for r in sorted(rows, key=lambda r: (r.model, r.bucket, r.node_id))
    ]
    if not values:
        return
    w = tables.usage_audit_windows
    stmt: Any = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(w)
    stmt = stmt.on_conflict_do_update(
        index_elements=[w.c.model, w.c.bucket, w.c.node_id],
        set_={c: w.c[c] + stmt.excluded[c] for c in _SUMS},
    )
    await conn.execute(stmt, values)


class SqlUsageAudit:
    """The usage audit's shared evidence on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
        if not rows:
            return
        async with self.engine.begin() as conn:
            await relaxed_commit(conn)
            marks = await self._usage_marks(conn, sorted({r.model for r in rows}))
            await _upsert_windows(conn, _in_open_windows(rows, marks))

    async def _usage_marks(self, conn: AsyncConnection, models: list[str]) -> dict[str, int]:
        """``models``' fold marks, read under their shared lock (held to the commit)."""
        f = tables.usage_audit_folds
        await _lock_models(conn, models, shared=True)
        marks: dict[str, int] = {}
        for at in range(0, len(models), _READ_CHUNK):  # (asyncpg: 32,767 arguments at most)
            read = select(f.c.model, f.c.folded).where(f.c.model.in_(models[at : at + _READ_CHUNK]))
            marks.update({m: int(b) for m, b in (await conn.execute(read)).all()})
        return marks

    async def usage_audit_now(self) -> float | None:
        """The database server's clock (seconds since the epoch) on PostgreSQL, the clock
        every replica cuts the audit's windows on; ``None`` on SQLite (this host's)."""
        return await server_clock(self.engine)

    async def usage_audit_rows(self, model: str) -> UsageAuditRows:
        w, e, f = tables.usage_audit_windows, tables.usage_audit_evidence, tables.usage_audit_folds
        async with self.engine.connect() as conn:
            folded = (await conn.execute(select(f.c.folded).where(f.c.model == model))).scalar()
            mark = -1 if folded is None else int(folded)
            windows = (
                await conn.execute(select(w).where((w.c.model == model) & (w.c.bucket > mark)))
            ).all()
            evidence = (await conn.execute(select(e).where(e.c.model == model))).all()
        return UsageAuditRows(mark, [_window(r) for r in windows], [_evidence(r) for r in evidence])

    async def fold_usage_audit(
        self,
        model: str,
        *,
        expect: int,
        through: int,
        rows: list[UsageEvidenceRow],
        seen: Sequence[UsageWindowRow],
    ) -> bool:
        f, w = tables.usage_audit_folds, tables.usage_audit_windows
        async with self.engine.begin() as conn:
            await _lock_models(conn, [model], shared=False)
            if expect < 0:
                moved = await insert_new(conn, f, {"model": model, "folded": through})
            else:
                key = (f.c.model == model) & (f.c.folded == expect)
                result = await conn.execute(update(f).where(key).values(folded=through))
                moved = result.rowcount == 1
            if not moved:
                return False
            folded = (w.c.model == model) & (w.c.bucket > expect) & (w.c.bucket <= through)
            now = [_window(r) for r in (await conn.execute(select(w).where(folded))).all()]
            started_over = {  # a verdict claimed since the read (``unread_rows``, review33)
                r.node_id
                for r in sorted(rows, key=lambda r: r.node_id)
                if not await _write(conn, r)
            }
            seen = [r for r in seen if r.node_id not in started_over]
            await conn.execute(delete(w).where((w.c.model == model) & (w.c.bucket <= through)))
            await _upsert_windows(conn, unread_rows(model, now, seen, through + 1))
        return True

    async def claim_usage_verdict(self, model: str, node_id: str, epoch: int, bucket: int) -> bool:
        w = tables.usage_audit_windows
        fresh = UsageEvidenceRow(
            model, node_id, epoch, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, bucket
        )
        async with self.engine.begin() as conn:
            # not inside a fold of the model (it would put back the rows dropped here)
            await _lock_models(conn, [model], shared=False)
            if not await _write(conn, fresh):
                return False
            await conn.execute(delete(w).where((w.c.model == model) & (w.c.node_id == node_id)))
        return True

    async def prune_usage_audit(self, *, max_entries: int, before_bucket: int) -> int:
        w, e, f = tables.usage_audit_windows, tables.usage_audit_evidence, tables.usage_audit_folds
        async with self.engine.begin() as conn:
            dropped = (await conn.execute(delete(w).where(w.c.bucket < before_bucket))).rowcount
            await conn.execute(delete(f).where(f.c.folded < before_bucket))
            count = int((await conn.execute(select(func.count()).select_from(e))).scalar() or 0)
            over = count - max(1, max_entries)
            if over > 0:
                oldest = (
                    await conn.execute(
                        select(e.c.model, e.c.node_id).order_by(e.c.bucket).limit(over)
                    )
                ).all()
                for model, node_id in oldest:
                    await conn.execute(
                        delete(e).where((e.c.model == model) & (e.c.node_id == node_id))
                    )
                dropped += len(oldest)
        return int(dropped or 0)
