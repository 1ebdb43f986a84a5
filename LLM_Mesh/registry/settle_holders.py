"""Settlement's holders: which gateway processes are alive, on the database's own clock.

Each process that reserves is a *holder* (``settle_holders``: its id and ``beat_ms``, the
database's time of its last :func:`beat`). :func:`dead_holders` names the holders whose
rows are in flight (``pending`` or ``answered``) or who hold leases (``settle_leases``) but who are silent for longer than a
time-to-live, or gone from the table; their rows are recovered (``registry/settlement.py``).
:class:`HomeLock` tells, at start, whether the last process on this ``$LLM_MESH_HOME`` is
gone (an ``flock`` it held while it ran), and which holder it was. :func:`forget_batches`
deletes the PostgreSQL writer's old batch ids (``settle_batches``, ``registry/settle_db.py``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, delete, literal_column, select, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.registry import tables
from LLM_Mesh.secret_files import replace_file, try_lock

__all__ = ["HomeLock", "beat", "dead_holders", "forget", "forget_batches"]

log = logging.getLogger("LLM_Mesh.registry.settlement")

_HOLDER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a holder id (Settlement.holder: h-<hex>)


def now_ms_sql(dialect: str) -> Any:
    """The database's own clock, unix ms (heartbeats never trust a process's clock)."""
    if dialect == "postgresql":
        sql = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    else:
        sql = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    return literal_column(sql, type_=BigInteger())


async def beat(engine: AsyncEngine, holder: str) -> None:
    """``holder`` is alive now; its row is made again if someone removed it."""
    h = tables.settle_holders
    now = now_ms_sql(engine.dialect.name)
    ins = pg_insert(h) if engine.dialect.name == "postgresql" else sqlite_insert(h)
    stmt = ins.values(holder=holder, beat_ms=now).on_conflict_do_update(
        index_elements=[h.c.holder], set_={"beat_ms": now}
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)


async def dead_holders(engine: AsyncEngine, ttl_s: float, me: str) -> list[str | None]:
    """Holders other than ``me`` with rows in flight that are silent for longer than
    ``ttl_s`` or gone (``None``: rows without a holder)."""
    s, h, x = tables.settlements, tables.settle_holders, tables.settle_leases
    now = now_ms_sql(engine.dialect.name)
    alive = select(h.c.holder).where(h.c.beat_ms >= now - int(ttl_s * 1000))
    rows_of = (
        select(s.c.holder)
        .where(s.c.state.in_(("pending", "answered")))
        .where((s.c.holder.is_(None)) | (s.c.holder.not_in(alive)))
    )
    leases_of = select(x.c.holder).where(x.c.holder.not_in(alive))  # settle_lease.py
    async with engine.connect() as conn:
        rows = (await conn.execute(union(rows_of, leases_of))).all()
    return [r.holder for r in rows if r.holder != me]


async def forget(engine: AsyncEngine, holders: Sequence[str | None]) -> None:
    """Remove recovered holders' rows."""
    named = [x for x in holders if x is not None]
    if named:
        h = tables.settle_holders
        async with engine.begin() as conn:
            await conn.execute(delete(h).where(h.c.holder.in_(named)))


async def forget_batches(engine: AsyncEngine, keep_s: float) -> int:
    """Delete the batch ids recorded more than ``keep_s`` ago: a batch is sent again within
    one reconnection, long before (a few seconds of clock skew between processes do not
    matter here). The number deleted."""
    b = tables.settle_batches
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=keep_s)
    async with engine.begin() as conn:
        result = await conn.execute(delete(b).where(b.c.created_at < cutoff))
    return int(result.rowcount)


def _last_holder(path: Path) -> str | None:
    """The holder id in ``settlement.holder``; ``None`` when there is none, or (a WARNING)
    when it holds no id: a file torn by a crash of an older llm-mesh (written in place), or
    damaged. Then the predecessor's requests in flight are recovered once its heartbeat is
    ``holder_ttl_s`` old instead of at once, and its journal (``settle_journal.py``: found
    by its lock, not by this file) at this start all the same."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("settlement: cannot read %s (%s); its holder is recovered later", path, exc)
        return None
    text = data.decode("ascii", "replace").strip()
    if not _HOLDER.fullmatch(text):
        log.warning(
            "settlement: %s holds no holder id (%r: a torn or damaged file); the last process's "
            "requests in flight are recovered once its heartbeat is old, its unwritten answers "
            "now (their journals), and the file is written again", path, text[:80],
        )  # fmt: skip
        return None
    return text


class HomeLock:
    """``$LLM_MESH_HOME/settlement.lock``, held with ``flock`` while a process runs, and
    ``settlement.holder``, the holder id of the process that held it last."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fd: int | None = None
        self._before: str | None = None  # what the take that holds the lock said

    def take(self, holder: str, shared_store: bool = False) -> str | None:
        """Take the lock for ``holder``; the previous holder if it is gone, else ``None``
        (also when another process on this home runs: it is alive). ``shared_store``: on
        PostgreSQL, where replicas on one home (``registry serve --workers N``) are expected.
        Taken again while held (a start run again, ``start_retry.py``), or after a start
        that raised released it (``settle_start.py``: the file then names ``holder``): what
        it said then (found 2026-12-06, review37: its own ``flock`` was another registry's,
        and the predecessor not recovered at start)."""
        if self._fd is not None:
            return self._before
        try:
            fd = try_lock(self.home / "settlement.lock")
        except ImportError:  # pragma: no cover - not on POSIX
            return None
        if fd is None and shared_store:
            log.info("another registry process on %s holds settlement.lock: a replica on this "
                     "store (e.g. registry serve --workers N), sharing this home's keys", self.home)  # fmt: skip
            return None
        if fd is None:  # another process runs on this home
            log.warning(
                "another registry runs on %s (it holds settlement.lock): both serve, sharing "
                "this home's keys, and on one SQLite file each routes only to the nodes "
                "registered with it; give each registry its own --home",
                self.home,
            )
            return None
        self._fd = fd
        path = self.home / "settlement.holder"
        last = _last_holder(path)
        if last != holder:  # (the file names it: written by this lock's take before)
            self._before = last
        replace_file(path, (holder + "\n").encode())  # whole: never a torn id (found 2026-12-05)
        return self._before

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (it alone writes the home's settlement files)."""
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
