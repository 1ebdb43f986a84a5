"""A PostgreSQL database that takes no connections now (``ALTER DATABASE ... ALLOW_CONNECTIONS
false``, a maintenance step): a refused connection, as a stopped server's.

Found 2026-12-07 (newuser42, docs/deploy.md's replica walk): with the replica's database
switched off for 75 s, each round of the usage audit (every 2 s) was an ERROR with its
traceback, never quieted by the outage's ERROR (135 tracebacks in all), because asyncpg's
``ObjectNotInPrerequisiteStateError`` (SQLSTATE 55000) was no error of the store to
``start_retry.store_trouble``. Now it is "the database's connection lost or refused" (one
WARNING line a round, the run one ERROR past 60 s), and said at once by ``registry serve``'s
checks, as a refused connection is; the class's other uses, errors of a statement, are not.
"""

from __future__ import annotations

import logging

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from LLM_Mesh.database_url import normalize_database_url
from LLM_Mesh.registry.start_retry import LOST, log_failed_round, lost_connection, store_trouble
from tests.conftest import _admin_connect

LOG = logging.getLogger("tests.not_accepting")
NOT_ACCEPTING = 'database "mesh" is not currently accepting connections'


def test_a_database_not_accepting_connections_is_a_refused_connection() -> None:
    driver = asyncpg.exceptions.ObjectNotInPrerequisiteStateError(NOT_ACCEPTING)
    wrapped = DBAPIError("select 1", None, Exception(NOT_ACCEPTING))
    wrapped.orig.__cause__ = driver  # type: ignore[union-attr]
    assert store_trouble(driver) == LOST  # before: None (an ERROR with its traceback)
    assert store_trouble(wrapped) == LOST
    assert lost_connection(wrapped)  # waited for by the start's steps
    assert not lost_connection(wrapped, refused_waits=False)  # said at once by the checks


def test_the_classs_other_uses_are_still_errors_of_the_statement() -> None:
    other = asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
        'currval of sequence "s" is not yet defined in this session'
    )
    assert store_trouble(other) is None
    assert not lost_connection(other)


@pytest.mark.postgres
async def test_a_round_on_a_database_switched_off_is_one_warning_line(
    pg_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = pg_database_url.rsplit("/", 1)[1]
    admin = await _admin_connect()
    engine = create_async_engine(normalize_database_url(pg_database_url))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        caplog.set_level(logging.DEBUG, logger=LOG.name)
        with pytest.raises(DBAPIError) as caught:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert "not currently accepting connections" in str(caught.value)
        log_failed_round(LOG, caught.value, "usage audit: the round failed", "tried again")
        (record,) = caplog.records
        # before the fix: an ERROR with its traceback, every round of the outage
        assert (record.levelno, record.exc_info) == (logging.WARNING, None)
        assert "the database's connection lost or refused" in record.getMessage()
    finally:
        await engine.dispose()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
