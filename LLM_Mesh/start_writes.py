"""A start that could not write a file of its home: one line and exit 1, not a traceback.

Found 2026-12-07 (fulldisk42): ``registry serve`` on a full disk ended in uvicorn's long
traceback (``OSError: [Errno 28]`` writing ``settlement.holder``, or SQLite's ``database or
disk is full`` making the store) and exit 3; ``up`` and ``demo`` in a traceback of their
own (``registry.key``, ``admin.key``, ``node.key``, the store, ``logs/``); ``node start`` on
``node.key`` or ``node.key.lock``. Now each says ``error: the registry could not write
PATH (no space left on its disk): free space there (df -h FOLDER), or give another home
with --home or LLM_MESH_HOME`` and exits 1 (``core/write_refusal.py`` words it; the
errors: ENOSPC, EDQUOT, EROFS, EACCES, EPERM, and SQLite's words for the first and the
third).

:func:`refusal_of` finds such an error in an exception's chain (its cause and context, an
exception group's members, SQLAlchemy's ``orig``); :class:`RefusedStart` wraps an ASGI
app's lifespan: a start that fails so is answered ``lifespan.startup.failed`` without
uvicorn's traceback, its line kept in :attr:`RefusedStart.line` for the command to say
(``server_process.SignalServer``). Any other failure goes on as before (uvicorn's
traceback, exit 3).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from LLM_Mesh.core.write_refusal import sqlite_refusal, write_refusal
from LLM_Mesh.errors import MeshError

__all__ = ["RefusedStart", "StartWriteRefused", "named_error", "refusal_of"]

#: uvicorn's own line after a failed start, left out when the start's line says why
STARTUP_FAILED = "Application startup failed. Exiting."


class StartWriteRefused(MeshError):
    """A start could not write a file it needs: one line, exit 1."""


def named_error(exc: OSError, path: os.PathLike[str] | str) -> OSError:
    """``exc`` naming ``path`` when it names no file (``os.write``, ``os.fsync``: a full disk
    names none) or a temporary file made for ``path``: the file the start meant to write.
    Its subclass kept (``OSError(errno, ...)`` picks it from the number)."""
    if exc.errno is None:
        return exc
    named = OSError(exc.errno, exc.strerror, os.fspath(path))
    named.__cause__ = exc
    return named


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts (not a context raised ``from None``: the error
    raised so says it in its own words, review42c), an exception group's members,
    SQLAlchemy's ``orig``: each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 64:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        context = None if e.__suppress_context__ else e.__context__  # (``from None``: its
        todo += [x for x in (e.__cause__, context, getattr(e, "orig", None))  # own words)
                 if isinstance(x, BaseException)]  # fmt: skip
        members = getattr(e, "exceptions", None)  # an exception group's
        if isinstance(members, tuple):
            todo += [x for x in members if isinstance(x, BaseException)]


def refusal_of(exc: BaseException, what: str, database: str | None = None) -> str | None:
    """The one line for ``exc`` when it (or one in its chain) is a file that could not be
    written (:data:`~LLM_Mesh.core.write_refusal.WRITE_ERRNOS`, a file named), or SQLite's
    full or read-only database (``database``: its path, when the store is SQLite); else
    ``None``. ``what``: who could not (``the registry``)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.filename is not None:
            line = write_refusal(os.fsdecode(e.filename), e.errno, what)
        elif database is not None and type(e).__name__ == "OperationalError":
            line = sqlite_refusal(database, str(e), _free_bytes(database), what)
        else:
            continue
        if line is not None:
            return line
    return None


def _free_bytes(path: str) -> int | None:
    """The bytes free to this user on ``path``'s folder's disk; ``None`` when not known."""
    try:
        st = os.statvfs(os.path.dirname(path) or ".")
    except (OSError, AttributeError):  # no statvfs (Windows)
        return None
    return st.f_bavail * st.f_frsize


class RefusedStart(logging.Filter):
    """An ASGI app whose lifespan's start, failing on a file it could not write, is answered
    ``lifespan.startup.failed`` with no message (uvicorn logs no traceback, nor its
    ``Application startup failed`` line: a filter on ``uvicorn.error`` while it starts),
    the one line kept in :attr:`line`. The app's own stop (its ``finally``) has run.
    ``server_process.SignalServer`` gives it the lifespan alone: the requests do not pass
    through it (perf43; any other scope still goes on to the app)."""

    def __init__(self, app: Any, what: str, database: str | None = None) -> None:
        super().__init__()
        self.app, self.what, self.database = app, what, database
        self.line: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.line is not None and record.getMessage() == STARTUP_FAILED)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Any] = []

        async def hold_failure(message: Any) -> None:
            if message.get("type") == "lifespan.startup.failed":
                held.append(message)  # sent below, once the error is known
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except BaseException as exc:
            if held and (line := refusal_of(exc, self.what, self.database)) is not None:
                self.line = line
                await send({"type": "lifespan.startup.failed", "message": ""})
                return
            for message in held:
                await send(message)
            raise
        for message in held:  # failed without raising: as it was
            await send(message)
