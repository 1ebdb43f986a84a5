"""asyncpg's arguments for a store URL (``registry/pg_connect.py``): the settlement's own
connection reads the URL's options as the store's engine does.

Found 2026-12-06 (keys38): deploy.md's ``postgresql://...?ssl=require`` was read by the
store's engine (SQLAlchemy's asyncpg dialect) as asyncpg's ``ssl``, and by the settlement's
connection (``settle_db_pg.PgSettleDb``, the URL as a DSN) as a server setting, which
PostgreSQL refuses: "parameter "ssl" cannot be changed now", and the registry, settlement on
by default, did not start.

Found 2026-12-07 (review, pgurl39): ``?timeout=7`` reached asyncpg as the text ``"7"``
(``TypeError`` at the first connection, the store's and the settlement's), libpq's
``?sslmode=require`` was "an unexpected keyword argument", and ``?ssl=verify-full`` with
``PGSSLROOTCERT`` naming no file a bare ``FileNotFoundError``; now each option is asyncpg's
type, ``sslmode`` is ``ssl``, and what cannot be passed is one ``ValueError`` naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from LLM_Mesh.registry.pg_connect import asyncpg_args, engine_for
from LLM_Mesh.registry.settle_db import PgSettleDb, settle_db_for
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_checks import database_unreachable


def test_each_query_option_is_an_argument_of_asyncpg() -> None:
    args = asyncpg_args(
        "postgresql+asyncpg://mesh:hunter2@db.example:6543/mesh?ssl=require&timeout=7"
        "&prepared_statement_cache_size=0"
    )
    assert args == {"host": "db.example", "port": 6543, "user": "mesh",
                    "password": "hunter2", "database": "mesh", "ssl": "require",
                    "timeout": 7.0}  # fmt: skip
    assert asyncpg_args("postgresql://mesh@db.example/mesh") == {
        "host": "db.example", "user": "mesh", "database": "mesh"
    }  # fmt: skip


async def _store_takes(url: str) -> str:
    """What the store's engine makes of ``url``: ``"ok"`` or its error's class."""
    try:
        engine = engine_for(SqlStore(url).url)  # the store's URL, as its engine's
    except ValueError:
        return "ValueError"
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # the driver's, wrapped by SQLAlchemy or not
        return type(getattr(exc, "orig", None) or exc).__name__
    finally:
        await engine.dispose()
    return "ok"


async def _settlement_takes(url: str) -> str:
    db = settle_db_for(url)
    assert isinstance(db, PgSettleDb)
    try:
        await db.open()
    except Exception as exc:
        return type(exc).__name__
    finally:
        await db.close()
    return "ok"


@pytest.mark.postgres
@pytest.mark.parametrize("ssl", ["disable", "prefer", "require"])
async def test_the_settlement_takes_the_ssl_option_as_the_store_does(
    pg_database_url: str, ssl: str
) -> None:
    """``?ssl=disable`` connects (and ``require`` fails, or connects, as the store's
    engine does, whether this server speaks SSL or not); before: every ``?ssl=`` was
    ``CantChangeRuntimeParamError`` at the settlement, 3 of 3 failed."""
    url = f"{pg_database_url}?ssl={ssl}"
    store = await _store_takes(url)
    assert ssl != "disable" or store == "ok", store
    assert await _settlement_takes(url) == store


@pytest.mark.postgres
async def test_verify_full_reads_the_ca_file_for_the_store_and_the_settlement(
    pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy.md's ``?ssl=verify-full``: both connections check the server against the CA
    file ``PGSSLROOTCERT`` names (here none there: both refuse before any query, as they
    would a server whose certificate that CA did not sign), unlike ``?ssl=require``."""
    monkeypatch.setenv("PGSSLROOTCERT", str(tmp_path / "no-such-root.crt"))
    url = f"{pg_database_url}?ssl=verify-full"
    store = await _store_takes(url)
    assert store == "ValueError", store  # before: FileNotFoundError, naming no file
    assert await _settlement_takes(url) == store


def test_each_option_is_asyncpgs_type() -> None:
    """Before: every option was the URL's text (``"7"``: asyncpg's ``TypeError``)."""
    args = asyncpg_args(
        "postgresql://h/db?timeout=7&command_timeout=2.5&statement_cache_size=0"
        "&max_cached_statement_lifetime=30&max_cacheable_statement_size=1024"
        "&direct_tls=false&target_session_attrs=read-write"
    )
    assert args == {"host": "h", "database": "db", "timeout": 7.0, "command_timeout": 2.5,
                    "statement_cache_size": 0, "max_cached_statement_lifetime": 30,
                    "max_cacheable_statement_size": 1024, "direct_tls": False,
                    "target_session_attrs": "read-write"}  # fmt: skip
    assert asyncpg_args("postgresql://h/db?prepared_statement_cache_size=0") == {
        "host": "h", "database": "db"
    }  # fmt: skip
    assert asyncpg_args("postgresql://h/db?prepared_statement_cache_size=0",
                        sqlalchemy_own=True)["prepared_statement_cache_size"] == 0  # fmt: skip


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require"])
def test_libpq_sslmode_is_ssl(mode: str) -> None:
    """Before: ``sslmode`` went to asyncpg as itself, "an unexpected keyword argument"."""
    assert asyncpg_args(f"postgresql://h/db?sslmode={mode}")["ssl"] == mode
    assert asyncpg_args(f"postgresql://h/db?sslmode={mode}&ssl={mode}")["ssl"] == mode


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("sslmode=require&ssl=disable", "?ssl=disable and ?sslmode=require: write one"),
        ("sslmode=strict", "?sslmode=strict is not a mode: write one of disable, allow"),
        ("ssl=bogus", "?ssl=bogus is not a mode"),
        ("timeout=seven", "?timeout=seven: write a number of seconds"),
        ("command_timeout=0", "?command_timeout=0: write a number of seconds above 0"),
        ("statement_cache_size=-1", "?statement_cache_size=-1: write a whole number"),
        ("direct_tls=maybe", "?direct_tls=maybe: write true or false"),
        ("timeout=1&timeout=2", "gives ?timeout= more than once"),
        ("connect_timeout=5", "?connect_timeout= is not one asyncpg takes: write timeout="),
        ("sslrootcert=/ca.pem", "write the CA file's path in the PGSSLROOTCERT"),
        ("fallback=1", "?fallback= is not one asyncpg takes: write one of sslmode, ssl,"),
    ],
)
def test_an_option_asyncpg_would_refuse_is_said_with_what_to_write(query: str, said: str) -> None:
    """Before: ``TypeError``/"unexpected keyword argument" at the first connection."""
    with pytest.raises(ValueError, match="the database URL") as info:
        asyncpg_args(f"postgresql://mesh:hunter2@h/db?{query}")
    assert said in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_a_missing_ca_file_is_named(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PGSSLROOTCERT`` naming no file: asyncpg's ``FileNotFoundError`` named no path."""
    missing = tmp_path / "root.crt"
    monkeypatch.setenv("PGSSLROOTCERT", str(missing))
    with pytest.raises(ValueError, match=f"PGSSLROOTCERT names {missing}, which is not a"):
        asyncpg_args(f"postgresql://h/db?ssl={mode}")
    with pytest.raises(ValueError, match=f"URL's \\?sslmode={mode} checks the server's"):
        asyncpg_args(f"postgresql://h/db?sslmode={mode}")  # the name the URL wrote
    missing.write_text("a CA")  # there: read by asyncpg, not here
    assert asyncpg_args(f"postgresql://h/db?sslmode={mode}")["ssl"] == mode


def test_the_default_ca_file_is_named_for_verify_modes_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    default = tmp_path / ".postgresql" / "root.crt"
    with pytest.raises(ValueError, match=f"PGSSLROOTCERT is unset, so it reads {default}"):
        asyncpg_args("postgresql://h/db?ssl=verify-full")
    assert asyncpg_args("postgresql://h/db?ssl=require")["ssl"] == "require"


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["timeout=7&command_timeout=30", "sslmode=disable"])
async def test_the_store_and_the_settlement_connect_with_libpq_and_numeric_options(
    pg_database_url: str, query: str
) -> None:
    """Before: ``TypeError`` ("7" a timeout) and "unexpected keyword argument 'sslmode'"
    for both, 2 of 2 failed."""
    url = f"{pg_database_url}?{query}"
    assert await _store_takes(url) == "ok"
    assert await _settlement_takes(url) == "ok"
    async with SqlStore(url) as store, store.batch_engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1  # its engines, migrated


@pytest.mark.postgres
async def test_the_start_check_says_a_bad_option_in_one_line(pg_database_url: str) -> None:
    said = await database_unreachable(f"{pg_database_url}?sslmode=require&ssl=disable")
    assert said == "the database URL says ?ssl=disable and ?sslmode=require: write one of them"
