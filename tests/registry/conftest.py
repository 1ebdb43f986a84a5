"""Registry fixtures: a database URL and an open ``SqlStore`` on SQLite and PostgreSQL.

The PostgreSQL parameter (marker ``postgres``) uses ``pg_database_url`` from
``tests/conftest.py``: a throwaway database, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from LLM_Mesh.registry.store import SqlStore

DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, as a plain URL (``sqlite:///...`` or ``postgresql://...``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = request.getfixturevalue("pg_database_url")
    if not isinstance(url, str):
        raise TypeError(f"pg_database_url gave {url!r}")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """An open store on an empty (migrated) database, closed afterwards."""
    s = SqlStore(database_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
