"""asyncpg's arguments for a PostgreSQL store URL, one reading for the store's engines and
the settlement's connection.

The store's engine reads its URL through SQLAlchemy's asyncpg dialect, which gives each
query option to ``asyncpg.connect`` as an argument: ``?ssl=require`` (the form deploy.md
writes) is asyncpg's ``ssl``. The settlement's own connection (``settle_db_pg.PgSettleDb``)
took the same URL as a DSN, where asyncpg reads an option it does not know as a server
setting: ``ssl`` there is refused by PostgreSQL ("parameter "ssl" cannot be changed now"),
so a registry with settlement on (the default) did not start on a URL the store took
(found 2026-12-06, keys38). :func:`asyncpg_args` is the dialect's reading, for both.

The dialect gives every option as the URL's text, so ``?timeout=7`` reached asyncpg as
``"7"`` (``TypeError`` at the first connection); libpq's ``?sslmode=require`` (what most
PostgreSQL guides and hosted databases print) was "an unexpected keyword argument"; and
``?ssl=verify-full`` with ``PGSSLROOTCERT`` naming no file was a bare ``FileNotFoundError``
(found 2026-12-07, review of pgurl39). :func:`asyncpg_args` now turns each option into
asyncpg's type, reads ``sslmode`` as ``ssl``, and refuses what it cannot pass (an unknown
option, a bad value, a missing CA file) with a ``ValueError`` naming the option and what
to write instead; :func:`engine_for` builds every engine of the store from it.

On SQLite, :func:`engine_for` makes a missing database file first, empty and mode 0600
(``secret_files.create_private_file``; SQLite gives its ``-wal`` and ``-shm`` the file's
mode): SQLite made it with the umask's 0644, and the store holds the ledger's secret and
the API keys' hashes (found 2026-12-07). Whichever engine opens the file first (a start
check, the store), it is private from its creation. A database path that is a symbolic link
leading nowhere is refused (``ValueError``): SQLite made the file it leads to, 0644,
wherever it led (found 2026-12-07, files41); a link to a file that exists is followed.
Since files42 the path is walked once and judged (``file_walk.private_sqlite_path``): a
folder on the way that others can write (the file's own even when sticky, as ``/tmp``), a
link, folder or file of another user's is refused (``ValueError``, what to do), and SQLite
is given the file's real path, no link left in it, which only this user (and root) can
change: a link put at the name after the check is never followed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from LLM_Mesh.file_walk import private_sqlite_path

__all__ = ["SSL_MODES", "asyncpg_args", "engine_for", "sqlite_file"]

# options SQLAlchemy's asyncpg adapter takes for itself, never passed to asyncpg.connect
_SQLALCHEMY_OWN = ("prepared_statement_cache_size", "prepared_statement_name_func")
# asyncpg's (and libpq's) ``ssl``/``sslmode`` values, weakest first
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE, _FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise ValueError("write a number of seconds above 0, e.g. 10")
    return number


def _count(value: str) -> int:
    if not value.isdigit():
        raise ValueError("write a whole number, 0 or more")
    return int(value)


def _flag(value: str) -> bool:
    if value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ValueError("write true or false")


# each query option asyncpg.connect takes as an argument, and its type read from the text
_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl": str, "timeout": _seconds, "command_timeout": _seconds,
    "statement_cache_size": _count, "max_cached_statement_lifetime": _count,
    "max_cacheable_statement_size": _count, "direct_tls": _flag, "passfile": str,
    "service": str, "servicefile": str, "target_session_attrs": str, "krbsrvname": str,
    "gsslib": str,
}  # fmt: skip
# libpq's options that asyncpg takes otherwise: what to write instead
_INSTEAD = {
    "connect_timeout": "timeout=SECONDS",
    "sslrootcert": "the CA file's path in the PGSSLROOTCERT environment variable",
    "application_name": "nothing (it is not passed on)",
    "options": "nothing (server settings are not passed on)",
}
_URL_PARTS = ("host", "port", "user", "password", "database")


def _ssl_mode(query: dict[str, Any]) -> tuple[str, str] | None:
    """``ssl``, or libpq's ``sslmode`` as it (and the name the URL wrote): both given must
    say the same."""
    ssl, sslmode = query.pop("ssl", None), query.pop("sslmode", None)
    if ssl is not None and sslmode is not None and ssl != sslmode:
        raise ValueError(
            f"the database URL says ?ssl={ssl} and ?sslmode={sslmode}: write one of them"
        )
    mode: str | None = ssl if ssl is not None else sslmode
    if mode is not None and mode not in SSL_MODES:
        name = "ssl" if ssl is not None else "sslmode"
        raise ValueError(
            f"the database URL's ?{name}={mode} is not a mode: write one of " + ", ".join(SSL_MODES)
        )
    return None if mode is None else ("ssl" if ssl is not None else "sslmode", mode)


def _check_ca_file(name: str, mode: str) -> None:
    """The CA file asyncpg reads for ``mode``, there (else its ``FileNotFoundError`` named
    no path): ``PGSSLROOTCERT``'s from ``require`` on, ``~/.postgresql/root.crt`` for
    ``verify-ca``/``verify-full`` when that is unset."""
    env = os.environ.get("PGSSLROOTCERT")
    if SSL_MODES.index(mode) < SSL_MODES.index("require"):
        return
    if env:
        path, said = Path(env), f"PGSSLROOTCERT names {env}"
    elif mode.startswith("verify"):
        path = Path.home() / ".postgresql" / "root.crt"
        said = f"PGSSLROOTCERT is unset, so it reads {path}"
    else:
        return
    if not path.is_file():
        raise ValueError(
            f"the database URL's ?{name}={mode} checks the server's certificate against a CA "
            f"file, and {said}, which is not a file: set PGSSLROOTCERT to the path of the "
            "database's CA certificate (or put it there)"
        )


def asyncpg_args(url: str | URL, *, sqlalchemy_own: bool = False) -> dict[str, Any]:
    """The keyword arguments of ``asyncpg.connect`` for ``url`` (``postgresql://`` with any
    driver name), as the store's engine reads it: host, port, user, password, database and
    each query option in asyncpg's type (``ssl`` from ``ssl`` or libpq's ``sslmode``,
    ``timeout`` a float ...). ``ValueError`` naming the option and what to write instead
    for an option asyncpg does not take or a value it would refuse. ``sqlalchemy_own``:
    keep the options SQLAlchemy's adapter takes for itself (for an engine)."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg  # PostgreSQL only

    parsed = make_url(url).set(drivername="postgresql+asyncpg")
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    _, kwargs = dialect.create_connect_args(parsed)  # type: ignore[no-untyped-call]
    args = {k: kwargs.pop(k) for k in _URL_PARTS if k in kwargs}
    own = {k: kwargs.pop(k) for k in _SQLALCHEMY_OWN if k in kwargs}
    ssl = _ssl_mode(kwargs)
    if ssl is not None:
        _check_ca_file(*ssl)
        args["ssl"] = ssl[1]
    for name, value in kwargs.items():
        if name not in _OPTIONS:
            instead = _INSTEAD.get(name, "one of " + ", ".join(["sslmode", *_OPTIONS]))
            raise ValueError(
                f"the database URL's option ?{name}= is not one asyncpg takes: write {instead}"
            )
        if isinstance(value, tuple):  # ?timeout=1&timeout=2
            raise ValueError(f"the database URL gives ?{name}= more than once: write it once")
        try:
            args[name] = _OPTIONS[name](value)
        except ValueError as exc:
            raise ValueError(f"the database URL's ?{name}={value}: {exc}") from None
    return {**args, **own} if sqlalchemy_own else args


def engine_for(url: str | URL, **kw: Any) -> AsyncEngine:
    """``create_async_engine(url, **kw)``, a PostgreSQL URL's options read by
    :func:`asyncpg_args` (``kw``'s ``connect_args`` win); ``ValueError`` as it says."""
    parsed = make_url(url)
    if (path := sqlite_file(parsed)) is not None:  # SQLite is given the path checked
        return create_async_engine(parsed.set(database=str(private_sqlite_path(path))), **kw)
    if parsed.get_backend_name() != "postgresql":
        return create_async_engine(url, **kw)
    args = asyncpg_args(url, sqlalchemy_own=True)
    kw["connect_args"] = {**args, **kw.get("connect_args", {})}
    bare = parsed.set(query={}).render_as_string(hide_password=False)
    return create_async_engine(bare, **kw)


def sqlite_file(url: str | URL) -> Path | None:
    """The SQLite file ``url`` names; ``None`` for another database or an in-memory one
    (``:memory:``, ``?mode=memory&uri=true``) or a ``file:`` URI (its own options)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if parsed.query.get("mode") == "memory" and parsed.query.get("uri") == "true":
        return None  # (without uri=true SQLAlchemy drops ?mode=: SQLite makes the file)
    return Path(database)
