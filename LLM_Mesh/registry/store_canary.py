"""The SQL store's quality-control tables: ``canary_verifiers`` and ``canary_status``.

:class:`SqlCanary` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore` (which
gives it ``engine``). A verdict is one ``INSERT ... ON CONFLICT DO NOTHING`` then
one ``UPDATE`` that adds to the counters in the database (several registries
probe at once) and sets the quarantine only where none is set, so the first
failure's time and reason are kept. Running registries learn changes (a
quarantine by another registry, a clear, a verifier marked or unmarked by the admin
CLI) by polling
:meth:`SqlCanary.canary_records` with ``since`` (``registry/quality.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.verifier_marks import marks_from
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ports_canary import CanaryRecord, VerifierMark
from LLM_Mesh.registry.store_credentials import insert_new

__all__ = ["SqlCanary"]

_REASON_MAX = 512


def _record(row: Any) -> CanaryRecord:
    return CanaryRecord(
        node_id=row.node_id,
        model=row.model,
        passed=int(row.passed),
        failed=int(row.failed),
        last_probe_at=row.last_probe_at,
        quarantined_at=row.quarantined_at,
        reason=row.reason,
        updated_at=row.updated_at,
    )


class SqlCanary:
    """Verifiers and canary verdicts on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def trust_verifier(self, node_id: str, models: Mapping[str, str], at: datetime) -> bool:
        v = tables.canary_verifiers
        key = v.c.node_id == node_id
        async with self.engine.begin() as conn:
            made = await insert_new(conn, v, {"node_id": node_id, "models": {}, "trusted_at": at})
            # the row locked (PostgreSQL) while its marks are merged: two admins at once
            # each add theirs
            old = (await conn.execute(select(v.c.models).where(key).with_for_update())).scalar()
            before = marks_from(old)
            marks = {**before, **models}
            if not made and marks == before:
                return False
            await conn.execute(update(v).where(key).values(models=marks, trusted_at=at))
        return True

    async def untrust_verifier(self, node_id: str, models: Sequence[str] = ()) -> bool:
        v = tables.canary_verifiers
        key = v.c.node_id == node_id
        async with self.engine.begin() as conn:
            if not models:
                result = await conn.execute(delete(v).where(key))
                return bool(result.rowcount)
            old = (await conn.execute(select(v.c.models).where(key).with_for_update())).first()
            if old is None:
                return False
            before = marks_from(old.models)
            marks = {m: s for m, s in before.items() if m not in models}
            if marks == before:
                return False
            if marks:
                await conn.execute(update(v).where(key).values(models=marks))
            else:  # its last model unmarked: a verifier no more
                await conn.execute(delete(v).where(key))
        return True

    async def list_verifiers(self) -> list[VerifierMark]:
        v = tables.canary_verifiers
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(v).order_by(v.c.node_id))).all()
        return [VerifierMark(r.node_id, marks_from(r.models), r.trusted_at) for r in rows]

    async def record_canary(
        self,
        node_id: str,
        model: str,
        *,
        ok: bool,
        reason: str | None,
        at: datetime,
        probe: bool = True,
    ) -> CanaryRecord:
        c = tables.canary_status
        key = (c.c.node_id == node_id) & (c.c.model == model)
        async with self.engine.begin() as conn:
            await insert_new(
                conn,
                c,
                {"node_id": node_id, "model": model, "passed": 0, "failed": 0, "updated_at": at},
            )
            values: dict[str, Any] = {"updated_at": at}
            if probe:  # (not the usage audit's quarantine: found 2026-12-05, auditshare32)
                values["last_probe_at"] = at
            if ok and probe:
                values["passed"] = c.c.passed + 1
            elif not ok:
                if probe:
                    values["failed"] = c.c.failed + 1
                values["quarantined_at"] = case(
                    (c.c.quarantined_at.is_(None), at), else_=c.c.quarantined_at
                )
                values["reason"] = case(
                    (c.c.quarantined_at.is_(None), (reason or "failed canary")[:_REASON_MAX]),
                    else_=c.c.reason,
                )
            await conn.execute(update(c).where(key).values(**values))
            row = (await conn.execute(select(c).where(key))).one()
        return _record(row)

    async def clear_quarantine(self, node_id: str, at: datetime) -> list[str]:
        c = tables.canary_status
        where = (c.c.node_id == node_id) & c.c.quarantined_at.is_not(None)
        async with self.engine.begin() as conn:
            models = [r.model for r in (await conn.execute(select(c.c.model).where(where))).all()]
            if models:
                await conn.execute(
                    update(c).where(where).values(quarantined_at=None, reason=None, updated_at=at)
                )
        return sorted(models)

    async def quarantined_nodes_of(self, operator: str) -> list[str]:
        c, k = tables.canary_status, tables.node_keys
        stmt = (
            select(c.c.node_id)
            .distinct()
            .join(k, k.c.node_id == c.c.node_id)
            .where((k.c.operator == operator) & c.c.quarantined_at.is_not(None))
            .order_by(c.c.node_id)
        )
        async with self.engine.connect() as conn:
            return [str(r) for r in (await conn.execute(stmt)).scalars()]

    async def held_nodes(self) -> list[str]:
        c, k = tables.canary_status, tables.node_keys
        quarantined = select(c.c.node_id).where(c.c.quarantined_at.is_not(None))
        held_operators = select(k.c.operator).where(k.c.node_id.in_(quarantined))
        siblings = select(k.c.node_id).where(k.c.operator.in_(held_operators))
        async with self.engine.connect() as conn:
            found = set((await conn.execute(quarantined.distinct())).scalars())
            if found:
                found.update((await conn.execute(siblings)).scalars())
        return sorted(str(n) for n in found)

    async def canary_records(self, since: datetime | None = None) -> list[CanaryRecord]:
        c = tables.canary_status
        stmt = select(c).order_by(c.c.node_id, c.c.model)
        if since is not None:
            stmt = stmt.where(c.c.updated_at >= since)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_record(r) for r in rows]
