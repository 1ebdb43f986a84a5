"""The SQL store's ``api_keys`` table: clients' API keys (only their SHA-256 is kept).

:class:`SqlApiKeys` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore` (which
gives it ``engine``). A key is inserted once (``INSERT ... ON CONFLICT DO NOTHING``:
a taken name or id inserts nothing); a revocation is one ``UPDATE`` that keeps the
first revocation time, so several registry processes and the admin CLI can share one
database. Running gateways learn revocations by polling
:meth:`SqlApiKeys.revoked_api_keys_since` (``registry/api_keys.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ports import ApiKeyRecord
from LLM_Mesh.registry.store_credentials import insert_new

__all__ = ["SqlApiKeys"]


def _record(row: Any) -> ApiKeyRecord:
    regions = row.avoid_regions if isinstance(row.avoid_regions, list) else []
    return ApiKeyRecord(
        key_id=row.key_id,
        key_hash=row.key_hash,
        created_at=row.created_at,
        name=row.name,
        rpm=row.rpm,
        tpm=row.tpm,
        avoid_regions=[str(r) for r in regions],
        strict_regions=bool(row.strict_regions),
        trusted_only=bool(row.trusted_only),
        allow_prompt_keeping=bool(row.allow_prompt_keeping),
        revoked_at=row.revoked_at,
    )


class SqlApiKeys:
    """Client API keys on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def add_api_key(self, rec: ApiKeyRecord) -> bool:
        values = {
            "key_id": rec.key_id,
            "key_hash": rec.key_hash,
            "name": rec.name,
            "rpm": rec.rpm,
            "tpm": rec.tpm,
            "avoid_regions": sorted(rec.avoid_regions),
            "strict_regions": rec.strict_regions,
            "trusted_only": rec.trusted_only,
            "allow_prompt_keeping": rec.allow_prompt_keeping,
            "created_at": rec.created_at,
            "revoked_at": rec.revoked_at,
        }
        try:
            async with self.engine.begin() as conn:
                return await insert_new(conn, tables.api_keys, values)
        except IntegrityError:  # pragma: no cover - ON CONFLICT covers every unique column
            return False

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        k = tables.api_keys
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(k).where(k.c.key_hash == key_hash))).first()
        return None if row is None else _record(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        k = tables.api_keys
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(k).order_by(k.c.created_at, k.c.key_id))).all()
        return [_record(r) for r in rows]

    async def revoke_api_key(self, id_or_name: str, at: datetime) -> ApiKeyRecord | None:
        k = tables.api_keys
        match = or_(k.c.key_id == id_or_name, k.c.name == id_or_name)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(k).where(and_(match, k.c.revoked_at.is_(None))).values(revoked_at=at)
            )
            row = (await conn.execute(select(k).where(match))).first()
        return None if row is None else _record(row)

    async def revoked_api_keys_since(self, at: datetime) -> list[str]:
        k = tables.api_keys
        stmt = select(k.c.key_id).where(k.c.revoked_at >= at).order_by(k.c.key_id)
        async with self.engine.connect() as conn:
            return [r.key_id for r in (await conn.execute(stmt))]
