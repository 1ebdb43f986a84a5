"""asyncpg's arguments for a PostgreSQL store URL, as the store's engine makes them.

The store's engine reads its URL through SQLAlchemy's asyncpg dialect, which gives each
query option to ``asyncpg.connect`` as an argument: ``?ssl=require`` (the form deploy.md
writes) is asyncpg's ``ssl``. The settlement's own connection (``settle_db.PgSettleDb``)
took the same URL as a DSN, where asyncpg reads an option it does not know as a server
setting: ``ssl`` there is refused by PostgreSQL ("parameter "ssl" cannot be changed now"),
so a registry with settlement on (the default) did not start on a URL the store took
(found 2026-12-06, keys38). :func:`asyncpg_args` is the dialect's reading, for both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

__all__ = ["asyncpg_args"]

# options SQLAlchemy's asyncpg adapter takes for itself, never passed to asyncpg.connect
_SQLALCHEMY_OWN = ("prepared_statement_cache_size", "prepared_statement_name_func")


def asyncpg_args(url: str) -> dict[str, Any]:
    """The keyword arguments of ``asyncpg.connect`` for ``url`` (``postgresql://`` with any
    driver name), the store's engine's: host, port, user, password, database and each
    query option as given (``ssl``, ``timeout`` ...)."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg  # PostgreSQL only

    parsed = make_url(url).set(drivername="postgresql+asyncpg")
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    _, kwargs = dialect.create_connect_args(parsed)  # type: ignore[no-untyped-call]
    return {k: v for k, v in kwargs.items() if k not in _SQLALCHEMY_OWN}
