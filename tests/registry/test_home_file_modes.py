"""The files a registry makes in its home are mode 0600 from their creation (found
2026-12-07 by a new user's walk: ``registry.db``, which holds the ledger's secret and the
API keys' hashes, its ``-wal`` and ``-shm``, ``admin.key.registry``, ``ledger.checkpoint``
and ``registry.key.rotations`` were made with the umask's 0644: private only while the
home is 0700, readable by every user from a copied backup)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.pool import StaticPool

from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry.key_history import write_rotations
from LLM_Mesh.registry.ledger_mark import MARK_FILE
from LLM_Mesh.registry.pg_connect import engine_for
from LLM_Mesh.registry.schema_version import schema_unknown
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_checks import sqlite_unusable
from LLM_Mesh.secret_files import (
    ADMIN_KEY_REGISTRY_FILE,
    create_private_file,
    record_admin_key_registry,
)
from tests.file_modes import mode, usual_umask  # noqa: F401 (autouse)
from tests.registry.helpers import running


async def test_a_registry_on_sqlite_makes_its_store_journal_and_mark_0600(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    db = home / "registry.db"
    async with running(home, store=SqlStore(f"sqlite:///{db}"), gateway_key=Ed25519PrivateKey.generate()) as h:  # type: ignore[arg-type]  # fmt: skip
        ledger = h.runtime.ledger
        assert ledger is not None
        await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
        await h.runtime.checkpointer.checkpoint()  # type: ignore[union-attr]
        made = {p.name: mode(p) for p in home.iterdir() if p.is_file()}  # while open: -wal, -shm
    for name in ("registry.db", "registry.db-wal", "registry.db-shm", MARK_FILE):
        assert made.get(name) == 0o600, (name, made)
    assert {n: m for n, m in made.items() if m != 0o600} == {}


async def test_the_start_check_that_opens_a_new_store_first_makes_it_0600(
    tmp_path: Path,
) -> None:
    """``registry serve`` checks the store's schema (``schema_unknown``) before the store
    opens: that first connection made the file, so a fix in ``SqlStore.open`` alone left
    the real start's ``registry.db`` 0644."""
    db = tmp_path / "registry.db"
    assert await schema_unknown(f"sqlite:///{db}") is None
    assert mode(db) == 0o600


async def test_every_sqlite_engine_makes_a_missing_file_0600(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    engine = engine_for(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await conn.commit()
            journal = {n: mode(tmp_path / n) for n in ("registry.db-wal", "registry.db-shm")}
    finally:
        await engine.dispose()
    assert mode(db) == 0o600 and journal == {"registry.db-wal": 0o600, "registry.db-shm": 0o600}
    assert engine_for(f"sqlite+aiosqlite:///{tmp_path / 'none' / 'x.db'}") is not None
    assert not (tmp_path / "none").exists()  # a missing folder: SQLite's error, not made here
    # an in-memory database names no file: none made (found 2026-12-07, review40)
    memory = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}?mode=memory&uri=true"
    for url in (memory, "sqlite+aiosqlite://"):
        assert engine_for(url, poolclass=StaticPool) is not None
    assert not (tmp_path / "m.db").exists()


def test_admin_key_registry_is_0600(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, registry_urls=("http://127.0.0.1:8000",))
    record_admin_key_registry(settings, ("http://127.0.0.1:8000",), "k")
    assert mode(tmp_path / ADMIN_KEY_REGISTRY_FILE) == 0o600


def test_the_key_rotations_are_0600(tmp_path: Path) -> None:
    write_rotations(tmp_path / "registry.key.rotations", [])
    assert mode(tmp_path / "registry.key.rotations") == 0o600


def test_a_private_file_is_made_once_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    assert create_private_file(path) and mode(path) == 0o600 and path.read_bytes() == b""
    path.write_bytes(b"kept")
    os.chmod(path, 0o640)  # an existing one: the user's, left as it is
    assert not create_private_file(path)
    assert path.read_bytes() == b"kept" and mode(path) == 0o640


# --- a database path that is a symbolic link (found 2026-12-07, files41) --------------------


async def _open(url: str) -> None:
    engine = engine_for(url)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await conn.commit()
    finally:
        await engine.dispose()


async def test_a_database_path_that_is_a_dangling_link_is_refused(tmp_path: Path) -> None:
    """SQLite made the file a dangling link leads to, with the umask's 0644 (``O_EXCL``
    refused the link, so ``create_private_file`` made nothing): anywhere the link leads, a
    folder of another user's included. Refused, naming the path; nothing made."""
    target = tmp_path / "elsewhere" / "registry.db"
    target.parent.mkdir()
    db = tmp_path / "registry.db"
    db.symlink_to(target)
    url = f"sqlite+aiosqlite:///{db}"
    with pytest.raises(ValueError, match="symbolic link") as refused:
        await _open(url)
    assert str(db) in str(refused.value) and str(target) in str(refused.value)
    assert not target.exists()
    problem = sqlite_unusable(url)  # registry serve's check: one line, before serving
    assert problem is not None and str(db) in problem and "symbolic link" in problem
    assert not target.exists()


async def test_a_link_to_a_database_file_of_ones_own_is_followed(tmp_path: Path) -> None:
    """The user's placement (a database on another disk): used as before, its mode its own."""
    target = tmp_path / "disk" / "registry.db"
    target.parent.mkdir()
    assert create_private_file(target)
    db = tmp_path / "registry.db"
    db.symlink_to(target)
    url = f"sqlite+aiosqlite:///{db}"
    assert sqlite_unusable(url) is None
    await _open(url)
    assert mode(target) == 0o600 and target.stat().st_size > 0
