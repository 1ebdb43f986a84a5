"""Before serving: why the store at a database URL cannot serve, said in one line.

:func:`store_unusable` runs, in order, :func:`sqlite_unusable` (the file and its folder),
:func:`database_unreachable` (one PostgreSQL connection) and
:func:`~LLM_Mesh.registry.schema_version.schema_unknown` (a newer llm-mesh's schema);
``registry serve`` calls it before uvicorn starts (found 2026-12-03: tracebacks from the
app's start-up instead); a connection lost while they read is tried again (found
2026-12-06: one terminated there was a traceback or "cannot reach", exit 1). :func:`nothing_left_on_refusal`: a start refused before it
serves removes the SQLite files it made (found 2026-12-05: an empty ``registry.db`` was
left in the home, a new network to the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from LLM_Mesh.file_walk import private_sqlite_path, sqlite_place_refusal
from LLM_Mesh.registry.pg_connect import asyncpg_args, engine_for, sqlite_file
from LLM_Mesh.registry.schema_version import schema_unknown
from LLM_Mesh.registry.start_retry import StartRetry
from LLM_Mesh.secret_files import make_private_dir

__all__ = [
    "checks_retry",
    "database_unreachable",
    "nothing_left_on_refusal",
    "sqlite_file",
    "sqlite_unusable",
    "store_unusable",
]

SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")  # the file and its journals


def sqlite_unusable(url: str) -> str | None:
    """Why the SQLite file of ``url`` cannot be the store (its place is not to be trusted:
    ``file_walk.sqlite_place_refusal``, judged first, before a folder is made or the file
    read, and ``private_sqlite_path`` after; its folder cannot be made or written, it is a
    symbolic link leading nowhere, the file is not one this process can write, or not a
    database), in one line said before serving; ``None`` when it can be, or ``url`` names
    no file."""
    path = sqlite_file(url)
    if path is None:
        return None
    # its place first: nothing made or read through a place refused, and the refusal is
    # what is said (found 2026-12-07, small42: "not a file this process can read and write")
    if (refusal := sqlite_place_refusal(path)) is not None:
        return refusal
    try:
        make_private_dir(path.parent)
    except OSError as exc:
        return f"cannot make the database's folder {path.parent}: {exc.strerror or exc}"
    # SQLite writes its journal (-wal, -shm) beside the file: the folder must be writable
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"the database's folder {path.parent} is not writable (SQLite's journal goes there)"
    if path.exists() and not (path.is_file() and os.access(path, os.R_OK | os.W_OK)):
        return f"the database {path} is not a file this process can read and write"
    existed = path.exists()
    try:  # a dangling link, another user's link, folder or file, a folder others write
        path = private_sqlite_path(path, make=False)  # (its real path: the store's)
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot open the database {path}: {exc.strerror or exc}"
    if not existed:  # made by the store's start; not here (a refusal would leave it)
        return None
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            conn.execute("PRAGMA schema_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"cannot open the database {path}: {exc}"
    return None


async def database_unreachable(
    url: str, timeout_s: float = 10.0, start: StartRetry | None = None
) -> str | None:
    """Why the PostgreSQL database of ``url`` cannot be reached (refused, unknown host, a
    password it refuses), in one line said before serving; ``None`` when one connection
    opens, or ``url`` is not PostgreSQL. With ``start``: a connection lost while it opens
    (terminated, a failover) is tried again as ``start`` says (``start_retry.py``).

    The connection waits the URL's ``?timeout=`` when it gives one (longer or shorter),
    else ``timeout_s``: the check opens the connection the store's engines will, so it
    judges the database by the operator's patience (found 2026-12-07, start40: its fixed
    10 s won, and a database the store waits 30 s for over a slow link was refused)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    try:  # a URL option asyncpg would refuse (or take as the wrong type): said, not tried
        args = asyncpg_args(url)
    except ValueError as exc:
        return str(exc)
    timeout = args.get("timeout", timeout_s)  # the operator's, when the URL says it

    async def connect() -> None:
        engine = engine_for(url, connect_args={"timeout": timeout})
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    try:
        await (connect() if start is None else start.run("connecting to it", connect))
    except Exception as exc:  # the driver's errors, whatever their class: said, not raised
        cause = getattr(exc, "orig", None) or exc.__cause__ or exc
        said = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        where = parsed.render_as_string(hide_password=True)
        return f"cannot reach the database at {where}: {said}"
    return None


def store_unusable(url: str) -> str | None:
    """Why the store at ``url`` cannot serve (:func:`sqlite_unusable`,
    :func:`database_unreachable`, a newer llm-mesh's schema: ``schema_unknown``), in one
    line said before serving; ``None`` when it can. A connection lost while they read is
    tried again (:func:`checks_retry`); one refused is said at once. Not in a running
    event loop."""
    start = checks_retry(url)
    return (
        sqlite_unusable(url)
        or asyncio.run(database_unreachable(url, start=start))
        or asyncio.run(start.run("reading its schema version", lambda: schema_unknown(url)))
    )


def checks_retry(url: str) -> StartRetry:
    """The checks' :class:`StartRetry`: a lost connection waited for, a refused one not."""
    return StartRetry(url, refused_waits=False)


@contextlib.contextmanager
def nothing_left_on_refusal(url: str) -> Iterator[None]:
    """Around a start: when it raises (a refusal, a failure, an interrupt), the SQLite
    files of ``url`` that were not there when it began are removed, if the database still
    holds no table (a store that was started and migrated is kept, whatever ends it). A
    file that was there before is never removed, nor a symbolic link (found 2026-12-07,
    files41: a dangling one, refused, was taken for a file the start made); nor is anything
    for another database."""
    path = sqlite_file(url)
    if path is None or os.path.lexists(path):  # (a link, even one leading nowhere: there)
        yield
        return
    made = [
        side
        for side in (Path(f"{path}{suffix}") for suffix in SQLITE_SIDE_FILES)
        if not os.path.lexists(side)
    ]
    try:
        yield
    except BaseException:
        if _holds_no_table(path):
            for side in made:
                with contextlib.suppress(FileNotFoundError):
                    side.unlink()
        raise


def _holds_no_table(path: Path) -> bool:
    """Whether the SQLite file ``path`` is missing, empty or holds no table (read only;
    any doubt: ``False``)."""
    try:
        if not path.exists() or path.stat().st_size == 0:
            return True
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return False
