"""The ledger entries a checkpoint covers are on the disk before the checkpoint is kept
(``ledger.checkpoint``) or published: :func:`durable_step`, the checkpointer's
:attr:`~LLM_Mesh.registry.ledger_signer.Checkpointer.durable`.

Why: the SQLite store runs in WAL mode with ``synchronous=NORMAL``; a commit is in the
log file but not yet synced, so a power cut or kernel crash may roll the last commits back
(a consistent database, missing its last moments). A checkpoint signed over entries that are
then lost is ahead of the store: witnesses have cosigned a history the registry no longer
has, and ``ledger_mark.ledger_guard`` refuses to start on it (found 2026-12-05: a node-local
power cut bricked a single-machine registry until ``--accept-ledger-rollback``, which forks
the log). So before each checkpoint is signed for keeping, the write-ahead log is synced
(``fsync`` of ``registry.db-wal``, off the event loop): every commit made before the tree
head was read is then durable, whichever connection made it (an ``fsync`` covers the file,
not one descriptor). Pages a WAL checkpoint copied into the database need nothing more: it
syncs the log before copying, and the log starts over only after a complete checkpoint,
which syncs the database (``synchronous=NORMAL`` in WAL mode); until then the synced log
still holds them.

Never the database file itself: SQLite holds POSIX (``fcntl``) locks on it, and closing any
descriptor of that file in the process drops them all (SQLite's "How To Corrupt An SQLite
Database File", 2.2). Tried on 2026-12-05: with ``registry.db`` opened, synced and closed
beside the log, a registry's later commits (an answer settled, a lease given back) were never
seen by another process reading the file (``tests/e2e/test_settlement_kill.py``), as when
that process, its locks no longer in the way, takes itself for the last connection and
removes the log. SQLite takes no lock on the
``-wal`` file (its locks are on the database and ``-shm``). A database not in WAL mode has no
``-wal`` and commits with ``synchronous=FULL`` (SQLite's default): nothing to do. Its cost is paid once a
checkpoint (every 1,000 entries or 60 s), not once a commit: ``benchmarks/bench_ledger_durable.py``
(docs/benchmarks.md) against ``PRAGMA wal_checkpoint(FULL)`` and ``synchronous=FULL``.

PostgreSQL needs no step: the ledger's commits wait for the disk (``synchronous_commit``
is turned off only for the heartbeat path's engine, ``store.py``). A memory store: none.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["durable_step", "sqlite_file", "sync_log"]


def sqlite_file(engine: AsyncEngine) -> Path | None:
    """The SQLite file behind ``engine``; ``None`` for another database or ``:memory:``."""
    url = engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename: its path, without the query
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


def sync_log(db: Path, fsync: Callable[[int], None] | None = None) -> bool:
    """``fsync`` the write-ahead log of ``db`` (never ``db``: module docstring); whether
    there was one."""
    try:
        fd = os.open(db.with_name(db.name + "-wal"), os.O_RDONLY)
    except FileNotFoundError:  # not in WAL mode, or no connection open
        return False
    try:
        (fsync or os.fsync)(fd)
    finally:
        os.close(fd)
    return True


def durable_step(
    get_engine: Callable[[], Awaitable[AsyncEngine]],
    fsync: Callable[[int], None] | None = None,
) -> Callable[[], Awaitable[None]]:
    """The checkpointer's step for the ledger on ``get_engine``'s database (see the module
    docstring): a no-op unless it is a SQLite file."""

    async def step() -> None:
        db = sqlite_file(await get_engine())
        if db is not None:  # an error (EIO) stops the checkpoint: not kept, not published
            await asyncio.to_thread(sync_log, db, fsync)

    return step
