"""The SQL store's quality-control tables: the verifiers' marks and ``canary_status``.

A verifier's marks are rows of ``canary_verifier_models`` (migration 0036), one a model
file, with the time it was marked (a reference cached under an earlier mark is not used).
``canary_verifiers`` holds only marks older code wrote (a mark of the node alone, made
before 0034; or one a replica not yet at 0036 made): listed, covering no model; marking or
unmarking the node here deletes its row there, so that code sees no mark of it either.

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
        vm, old = tables.canary_verifier_models, tables.canary_verifiers
        changed = False
        async with self.engine.begin() as conn:
            for model, sha in sorted(models.items()):
                row = {"node_id": node_id, "model": model, "sha256": sha.lower(), "marked_at": at}
                if await insert_new(conn, vm, row):
                    changed = True
                    continue
                # another file under the model (the admin checked the new one): a new mark
                moved = await conn.execute(
                    update(vm)
                    .where((vm.c.node_id == node_id) & (vm.c.model == model))
                    .where(vm.c.sha256 != sha.lower())
                    .values(sha256=sha.lower(), marked_at=at)
                )
                changed = changed or bool(moved.rowcount)
            if models:  # an older replica's mark of the node alone goes (0036): narrowed there
                gone = await conn.execute(delete(old).where(old.c.node_id == node_id))
                changed = changed or bool(gone.rowcount)
        return changed

    async def untrust_verifier(self, node_id: str, models: Sequence[str] = ()) -> bool:
        vm, old = tables.canary_verifier_models, tables.canary_verifiers
        key = vm.c.node_id == node_id
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(vm).where(key & vm.c.model.in_(models)) if models
                                        else delete(vm).where(key))  # fmt: skip
            # an older replica's mark of the node alone (0036): there it covers these too
            gone = await conn.execute(delete(old).where(old.c.node_id == node_id))
        return bool(result.rowcount) or bool(gone.rowcount)

    async def list_verifiers(self) -> list[VerifierMark]:
        vm, old = tables.canary_verifier_models, tables.canary_verifiers
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(vm).order_by(vm.c.node_id, vm.c.model))).all()
            # marks older code wrote (before 0034, or a replica not yet at 0036): none here
            olds = (await conn.execute(select(old.c.node_id, old.c.trusted_at))).all()
        marks: dict[str, VerifierMark] = {}
        for r in rows:
            mark = marks.setdefault(r.node_id, VerifierMark(r.node_id))
            mark.models[r.model] = r.sha256.lower()
            mark.marked[r.model] = r.marked_at
            mark.trusted_at = max(r.marked_at, mark.trusted_at or r.marked_at)
        for r in olds:
            marks.setdefault(r.node_id, VerifierMark(r.node_id, trusted_at=r.trusted_at))
        return [marks[n] for n in sorted(marks)]

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
