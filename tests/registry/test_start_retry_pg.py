"""A registry starting while PostgreSQL terminates its connections (real PostgreSQL).

Found 2026-12-06 (CI, ``tests/e2e/test_replicas.py``): a replica restarted while every
connection to its database was terminated exited ("Application startup failed") with
asyncpg's ``InternalClientError`` "cannot switch to state 11; another operation (2) is in
progress" from the dialect's first statements on a new connection. Here the first
connections the start makes are terminated the moment they open (a pool ``connect``
listener placed before the dialect's own), the FATAL message read before the end of file
(as on a loaded machine): the start must wait them out and serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool
from sqlalchemy.util import await_only

from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import running

pytestmark = pytest.mark.postgres


# loop turns after each termination: 2, the FATAL message read but not the end of file
# (the next statement meets asyncpg's protocol in its error state: InternalClientError
# "cannot switch to state 15; another operation (2) is in progress", the CI's failure); 0,
# the next statement sent before either ("closed in the middle of operation"); 5, both read
# ("connection is closed")
TURNS = (2, 0, 5)


class Terminator:
    """Terminates the backend of each of the first ``len(TURNS)`` new connections to
    ``database`` the moment it opens, then lets the loop turn ``TURNS[i]`` times."""

    def __init__(self, admin_dsn: str, database: str) -> None:
        self.admin_dsn, self.database = admin_dsn, database
        self.killed = 0

    def on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        raw = getattr(dbapi_connection, "_connection", None)
        if self.killed >= len(TURNS) or raw is None or raw._params.database != self.database:
            return
        pid = raw.get_server_pid()
        admin = await_only(asyncpg.connect(self.admin_dsn, timeout=5))
        try:
            await_only(admin.fetchval("SELECT pg_terminate_backend($1)", pid))
            time.sleep(0.2)  # the FATAL message and the end of file both arrive meanwhile
            for _ in range(TURNS[self.killed]):
                await_only(asyncio.sleep(0))
        finally:
            admin.terminate()
        self.killed += 1


@contextlib.contextmanager
def terminating(pg_database_url: str) -> Iterator[Terminator]:
    """A :class:`Terminator` of ``pg_database_url``'s new connections, while in the block."""
    url = make_url(pg_database_url)
    admin = url.set(drivername="postgresql", database="postgres")
    t = Terminator(admin.render_as_string(hide_password=False), str(url.database))
    event.listen(Pool, "connect", t.on_connect, insert=True)  # before the dialect's first
    try:
        yield t
    finally:
        event.remove(Pool, "connect", t.on_connect)


@pytest.fixture
def terminator(pg_database_url: str) -> Iterator[Terminator]:
    with terminating(pg_database_url) as t:
        yield t


async def test_a_registry_starts_while_postgresql_terminates_its_first_connections(
    tmp_path: Path, pg_database_url: str, terminator: Terminator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.app")
    async with running(tmp_path, store=SqlStore(pg_database_url)) as h:  # type: ignore[arg-type]
        r = await h.client.get("/healthz")
        assert r.status_code == 200, r.text
        node = await h.register("n1")
        assert node is not None
    assert terminator.killed == len(TURNS)
    waits = [r.getMessage() for r in caplog.records if "lost or refused" in r.getMessage()]
    assert waits, "the start said nothing of what it waited for"
    url = make_url(pg_database_url)  # named, its password never (the URL here has none)
    assert all(f"@{url.host}:{url.port}/{url.database} " in w for w in waits), waits
