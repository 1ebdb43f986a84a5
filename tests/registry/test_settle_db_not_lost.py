"""Settlement's PostgreSQL writer (``registry/settle_db_pg.py``, ``PgSettleDb``) reconnects and
sends a batch again only for a lost connection, judged by the start's rule
(``start_retry.lost_connection``): asyncpg's setting and argument errors, which it puts in
``InterfaceError`` too, fail the batch at once, its connection kept.

Found 2026-12-06 (keys38; review37's "what remains"): the batch took every
``InterfaceError`` for a lost connection, so a URL setting asyncpg refuses (``?ssl=bogus``)
was tried on 4 connections, after 1.25 s of pauses, before the error reached the
settlement. The other cases here are guards: asyncpg 0.32 says an argument it cannot encode
as its ``DataError`` of SQLSTATE class 22 (a ``PostgresError``, no lost class), and the
server's own refusals (a database that does not exist, a password) are no lost class either.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from LLM_Mesh.registry import settle_db_pg
from LLM_Mesh.registry.pg_connect import asyncpg_args
from LLM_Mesh.registry.settle_db import PgSettleDb, Reserve, Reserved
from tests.registry.test_settle_db_pg import MODEL, USER, _now, db

__all__ = ["db"]  # the fixture


class _Seen:
    """The writer's connects (asyncpg's), its pauses before reconnecting made 0."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.connects = 0
        real = asyncpg.connect

        async def connect(*args: Any, **kwargs: Any) -> Any:
            self.connects += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(asyncpg, "connect", connect)
        monkeypatch.setattr(settle_db_pg, "_PG_RECONNECT_S", (0.0, 0.0, 0.0))


async def test_a_bad_setting_in_the_url_fails_the_batch_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``?ssl=bogus``: asyncpg's ``ClientConfigurationError`` (an ``InterfaceError`` and a
    ``ValueError``) on the first connect, said at once (before: 4 connects, after pauses of
    0, 0.25 and 1 s). No server is reached: the URL's reading (``pg_connect.py``, since
    pgurl39 a ``ValueError`` naming the option, asyncpg not called) refuses it."""
    seen, read = _Seen(monkeypatch), list[str]()

    def reading(url: str) -> dict[str, Any]:
        read.append(url)
        return asyncpg_args(url)

    monkeypatch.setattr("LLM_Mesh.registry.settle_db_pg.asyncpg_args", reading)
    db = PgSettleDb("postgresql://mesh@127.0.0.1:1/mesh?ssl=bogus")
    with pytest.raises(ValueError, match=r"\?ssl=bogus is not a mode"):
        await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
    assert (len(read), seen.connects) == (1, 0)  # one try, refused before asyncpg's connect


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
class TestOnPostgres:
    """``db``: test_settle_db_pg's writer on a store whose user holds 10,000."""

    async def test_an_argument_asyncpg_cannot_encode_fails_the_batch_at_once(
        self, db: PgSettleDb, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An estimate past PostgreSQL's ``bigint``: asyncpg's ``DataError`` before anything
        is sent. The batch fails at once and its good connection is kept; the next batch
        goes on that connection (a guard: so it was before keys38, see the docstring)."""
        conn = db._conn
        seen = _Seen(monkeypatch)
        with pytest.raises(asyncpg.exceptions.DataError, match="int64"):
            await db.apply([Reserve("k0", USER, MODEL, 2**63)], "h1", _now())
        assert seen.connects == 0
        assert db._conn is conn and not conn.is_closed()
        got = await db.apply([Reserve("k1", USER, MODEL, 1000)], "h1", _now())
        assert got == [Reserved(True, 10_000, 1000)] and seen.connects == 0

    async def test_a_database_that_does_not_exist_fails_the_batch_at_once(
        self, db: PgSettleDb, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A name the server does not know (``InvalidCatalogNameError``), met on the
        reconnect after a lost connection: said after that one connect, not tried again
        (it was so before keys38 too: a guard, the server's error is no lost class)."""
        await db.close()
        gone = PgSettleDb(db.dsn.rsplit("/", 1)[0] + "/h38_keys38_no_such_database")
        seen = _Seen(monkeypatch)
        with pytest.raises(asyncpg.exceptions.InvalidCatalogNameError):
            await gone.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
        assert seen.connects == 1
        await gone.close()

    async def test_a_lost_connection_is_still_reconnected(
        self, db: PgSettleDb, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The rule still takes asyncpg's closed connection (an ``InterfaceError`` that is
        no ``ValueError``) for a lost one: a new connection and the batch once more."""
        await db._conn.close()  # asyncpg's own: the next call says it is closed
        db._conn = _Closed(db._conn)
        seen = _Seen(monkeypatch)
        got = await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
        assert got == [Reserved(True, 10_000, 1000)]
        assert seen.connects == 1


class _Closed:
    """A closed asyncpg connection that does not say so to ``is_closed`` (broken unseen)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def is_closed(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)
