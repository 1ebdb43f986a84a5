"""``$LLM_MESH_HOME/ledger.checkpoint``: the newest checkpoint this registry signed or saw
in its store, kept beside ``registry.key``, and the start-up check against it.

Why (``core/ledger_mark.py``): a store restored from an older backup holds a shorter
ledger than the checkpoints already published; serving on it would fork the public log
and roll balances back. :class:`MarkFile` keeps the checkpoint in the JSON that
``llm-mesh ledger checkpoint --out`` writes (so ``llm-mesh ledger verify --compare
$LLM_MESH_HOME/ledger.checkpoint`` reads it too): written (temporary file, ``fsync``,
rename) before each checkpoint the registry signs is stored, and when the store's newest
checkpoint (another replica's) is larger; never to a smaller tree of the same log
(``core.ledger_mark.replaces``), under an ``flock`` of ``ledger.checkpoint.lock``
(``--workers N`` share the home).

:func:`ledger_guard` runs at the registry's start: a store behind the mark, or with
another root at the mark's size, or a mark that cannot be read, raises
:class:`~LLM_Mesh.errors.LedgerBehind` (the registry does not start), unless ``Settings.accept_ledger_rollback``
(``--accept-ledger-rollback``): then an ERROR says what is lost, the mark is moved aside to
``ledger.checkpoint.rolled-back-<UTC time>`` (evidence) and the registry serves; so does
a local mesh (``llm-mesh up``/``demo``: ``Settings.local_mesh``) on an empty database (its
``registry.db`` deleted to start over), with a WARNING. Then
the store's newest checkpoint is kept (a replica that signed none yet still marks what
the others published). A scratch ledger (a memory store) has no mark.
:func:`store_behind` is the same check before serving, on an engine of its own
(``registry serve``'s one-line refusal).

A damaged mark (not JSON of a checkpoint, unreadable, empty): the start is refused too,
naming the file and what to do (``DAMAGED``). The file is always replaced whole
(``secret_files.replace_file``), so a crash or a power cut leaves the old mark or the new,
never a part: what is left is a damaged disk or an edit, and falling back to the store's
own newest checkpoint would serve exactly the store the mark is there to refuse (a
restored backup holds its older checkpoints too). Before the mark is written the entries it
covers are made durable (``registry/ledger_durable.py``), so a power cut cannot leave it
ahead of the store either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import URL, inspect, make_url
from sqlalchemy.exc import DBAPIError

from LLM_Mesh.config import Settings
from LLM_Mesh.core.gossip import EXPORT_FORMAT
from LLM_Mesh.core.ledger_mark import Mark, mark_problem, parse_mark, replaces
from LLM_Mesh.errors import LedgerBehind, StoreUnavailable
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.pg_connect import engine_for
from LLM_Mesh.secret_files import fsync_dir, make_private_dir, replace_file

__all__ = ["MARK_FILE", "MarkFile", "ledger_guard", "store_behind"]

log = logging.getLogger(__name__)

MARK_FILE = "ledger.checkpoint"

RECOVERY = (
    "Restore the newest state instead (point-in-time recovery to the latest WAL, or a newer "
    "backup: docs/deploy.md, 'What to back up'); only if those entries are lost for good, "
    "start once with --accept-ledger-rollback (LLM_MESH_ACCEPT_LEDGER_ROLLBACK=1), which "
    "keeps this file aside as evidence, and tell the network (docs/deploy.md, 'Restoring "
    "the database')"
)

DAMAGED = (
    "It is written whole (a temporary file, fsync, rename), so this is no torn write of a "
    "crash but a damaged or edited file, and without it this start cannot tell a restored "
    "older store from the newest: the registry does not start. Check the store against the "
    "newest checkpoint published (a witness's or a verifier's copy: llm-mesh ledger verify "
    "--database-url URL --compare FILE); if it holds it, move this file aside and start "
    "again (the store's newest checkpoint is kept in its place). If not: " + RECOVERY
)


class MarkFile:
    """The kept checkpoint at ``path`` (see the module docstring)."""

    def __init__(self, path: Path, wal: Path | None = None) -> None:
        self.path = path
        self.wal = wal  # a SQLite store's write-ahead log, synced before each mark

    def read(self) -> Mark | None:
        """The kept mark, ``None`` when there is none; :class:`LedgerBehind` when the file
        cannot be read as one: refused as a rollback is (module docstring, "A damaged
        mark"), never replaced by the store's own newest checkpoint."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerBehind(f"cannot read {self.path}: {exc}. {DAMAGED}") from None
        try:
            return parse_mark(text)
        except ValueError as exc:
            raise LedgerBehind(f"{self.path}: {exc}. {DAMAGED}") from None

    def keep(self, checkpoint: dict[str, Any], synced: bool = False) -> bool:
        """Write ``checkpoint`` (``core/gossip.export``'s form) unless the kept one is a
        larger tree of the same log; whether it was written. ``synced``: the entries it
        covers are on the disk already (the checkpointer's ``durable`` step synced the same
        log after reading the head it signed), so the log is not synced again."""
        new = parse_mark(json.dumps(checkpoint))
        with self._locked():
            try:
                old = self.read()
            except LedgerBehind:
                old = None  # unreadable: the start said so; replaced by a good one
            if not replaces(old, new):
                return False
            if not synced:
                self._sync_store()
            text = json.dumps(checkpoint, indent=1, sort_keys=True) + "\n"
            replace_file(self.path, text.encode())  # whole (even across a power cut), 0600
            return True

    def _sync_store(self) -> None:
        """A SQLite store's entries on disk before the mark that covers them: it commits
        with ``synchronous=NORMAL`` (the WAL synced at its checkpoints only), so a power
        loss could keep the mark and lose the entries, and every start after was refused
        (found 2026-12-05). One ``fsync`` of the WAL a mark; none left: all in the file."""
        if self.wal is None:
            return
        try:
            fd = os.open(self.wal, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def keep_off_loop(self, checkpoint: dict[str, Any], synced: bool = False) -> bool:
        """:meth:`keep` in a thread (its ``fsync`` off the event loop)."""
        return await asyncio.to_thread(self.keep, checkpoint, synced)

    def set_aside(self, now: float, judged: Mark | None) -> Path | None:
        """Move the kept mark to ``<name>.rolled-back-<UTC time>`` (``-2``, ``-3``... if
        taken: never over earlier evidence) if it is still the one judged (``None``: one
        that could not be read); its new path, or ``None`` when another process of this
        home (``--workers N``) moved or replaced it first. Found 2026-12-05: two workers
        accepting one rollback both moved "the" mark, the second the first's new one, to
        the same name, over the published checkpoint it was to keep as evidence."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        with self._locked():
            try:
                now_kept = self.read()
            except LedgerBehind:
                if judged is not None:
                    return None
            else:
                if now_kept is None or now_kept != judged:
                    return None
            aside = self.path.with_name(f"{self.path.name}.rolled-back-{stamp}")
            n = 1
            while aside.exists():
                n += 1
                aside = self.path.with_name(f"{self.path.name}.rolled-back-{stamp}-{n}")
            os.replace(self.path, aside)
            fsync_dir(self.path.parent)
        return aside

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no flock here: one process a home
            yield
            return
        make_private_dir(self.path.parent)  # the home, made as the registry makes it
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # the lock goes with it


def sqlite_wal(url: str | URL) -> Path | None:
    """The write-ahead log of a SQLite file store at ``url``; ``None`` for any other."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(f"{u.database}-wal")


def _refusal(problem: str, path: Path, size: int) -> str:
    """The refusal: the problem, the file, the ways out; for an empty store also the one
    for a new ledger on purpose (found 2026-12-05: a user who deleted ``registry.db`` to
    start over was given only a production's, "tell the network" included)."""
    said = f"{problem} (kept in {path}). {RECOVERY}"
    if size == 0:
        said += (
            f". The database is empty: if you deleted it to start a new ledger on purpose "
            f"(your own test or local registry, whose old ledger nobody relies on), move "
            f"{path} aside and start again"
        )
    return said


def mark_file(settings: Settings) -> MarkFile:
    return MarkFile(settings.home / MARK_FILE)


async def problem_of(ledger: SqlLedger, mark: Mark, origin: str) -> tuple[str | None, int]:
    """``core.ledger_mark.mark_problem`` of ``ledger`` as it is now, and its size."""
    try:
        size, _ = await ledger.head()
    except DBAPIError:
        # no ledger tables yet (a new, empty database): an empty ledger. Any other error
        # (a lock, a lost connection) is raised: not an empty ledger (found 2026-12-05: a
        # refusal naming a restored backup, or a local mesh's mark set aside)
        if await _has_ledger(ledger):
            raise
        size = 0
    root = await ledger.root_at(mark.tree_size) if size >= mark.tree_size else None
    return mark_problem(mark, origin, size, root), size


async def _has_ledger(ledger: SqlLedger) -> bool:
    """Whether the store has the ledger's tables (its head's)."""
    engine = await ledger.engine()
    async with engine.connect() as conn:
        return bool(await conn.run_sync(lambda c: inspect(c).has_table("ledger_head")))


def _served_anyway(settings: Settings, size: int) -> str | None:
    """Why a store behind the mark is served all the same: the operator's override, or a
    local mesh (``llm-mesh up``/``demo``) on a new, empty database (its ``registry.db``
    deleted to start over: nobody else's log); ``None``: refused."""
    if settings.accept_ledger_rollback:
        return "--accept-ledger-rollback"
    if settings.local_mesh and size == 0:
        return f"an empty database under `llm-mesh {settings.local_mesh}`: a new local ledger"
    return None


def _read_mark(marks: MarkFile, settings: Settings, wall_clock: Any = None) -> Mark | None:
    """The kept mark; one that cannot be read is refused (:meth:`MarkFile.read`) unless
    ``--accept-ledger-rollback``: then it is as none, moved aside as evidence when
    ``wall_clock`` is given (the start; the check before serving only reads). Found
    2026-12-05: the override did not get past an unreadable mark, so no start could."""
    try:
        return marks.read()
    except LedgerBehind as exc:
        if not settings.accept_ledger_rollback:
            raise
        aside = None if wall_clock is None else marks.set_aside(wall_clock(), None)
        if aside is not None:
            log.error(
                "%s. Serving anyway (--accept-ledger-rollback): the store is not checked "
                "against the checkpoint this registry had published; the file is kept in %s",
                exc, aside,
            )  # fmt: skip
        return None


async def ledger_guard(
    ledger: SqlLedger, settings: Settings, wall_clock: Any = time.time
) -> MarkFile:
    """The start-up check (module docstring); the mark file, for the checkpointer."""
    marks = mark_file(settings)
    marks.wal = sqlite_wal((await ledger.engine()).url)  # the ledger's own store
    mark = _read_mark(marks, settings, wall_clock)
    if mark is not None:
        problem, size = await problem_of(ledger, mark, settings.ledger_origin)
        why = _served_anyway(settings, size)
        if problem is not None and why is None:
            raise LedgerBehind(_refusal(problem, marks.path, size))
        aside = None if problem is None else marks.set_aside(wall_clock(), mark)
        if aside is not None:
            log.log(
                logging.ERROR if settings.accept_ledger_rollback else logging.WARNING,
                "%s. Serving anyway (%s): new checkpoints fork the published ledger, "
                "witnesses refuse them and verifiers report a split view; the checkpoint "
                "this registry had published is kept in %s",
                problem, why, aside,
            )  # fmt: skip
    latest = await ledger.latest_checkpoint()  # another replica's, newer than this home's
    if latest is not None:
        export = {"format": EXPORT_FORMAT, "registry": None, "origin": settings.ledger_origin}
        await marks.keep_off_loop({**export, **latest.to_json()})
    return marks


async def store_behind(settings: Settings) -> str | None:
    """:func:`ledger_guard`'s refusal, in one line, before serving (its own engine, closed
    again); ``None`` when the store may serve or is served anyway."""
    mark = _read_mark(mark_file(settings), settings)
    if mark is None:
        return None
    engine = engine_for(settings.effective_database_url)
    try:

        async def get() -> Any:
            return engine

        problem, size = await problem_of(SqlLedger(get), mark, settings.ledger_origin)
    except DBAPIError as exc:  # one line, as the store's other start checks (never the URL)
        said = str(exc).splitlines()[0][:300]
        raise StoreUnavailable(f"the database did not answer reading its ledger: {said}") from None
    finally:
        await engine.dispose()
    if problem is None or _served_anyway(settings, size) is not None:
        return None
    return _refusal(problem, mark_file(settings).path, size)
