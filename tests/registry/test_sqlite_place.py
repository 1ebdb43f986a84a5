"""The attacks on a SQLite store's path (found 2026-12-07, files42): the path was checked
(a link leading nowhere refused) and SQLite opened it by name afterwards, each connection
of its pool and its journals again. (a) a link put at the name between the check and
SQLite's open, in a folder others can write, was followed; (b) a link to another user's
file, or one another user made, was followed: the store was theirs to read and change.
Each test tries the attack through what ran before (``engine_for``, ``registry serve``'s
check ``sqlite_unusable``); all failed before the fix. A link of the user's own to a file
of theirs (a database on another disk) is still followed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from LLM_Mesh.registry.pg_connect import engine_for
from LLM_Mesh.registry.store_checks import sqlite_unusable
from tests.file_modes import mode, usual_umask  # noqa: F401 (autouse)

OTHER = 4242  # another user's uid (the files are given it by root: CI runs as root)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="os.chown to another user needs root")


def _database(path: Path) -> Path:
    """A SQLite database of someone's, with one table, ``kept``."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE kept (x INTEGER)")
    conn.commit()
    conn.close()
    return path


def _tables(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
    finally:
        conn.close()


async def _write(engine_url: str) -> None:
    engine = engine_for(engine_url)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await conn.commit()
    finally:
        await engine.dispose()


async def test_a_link_put_at_the_name_after_the_check_is_not_followed(tmp_path: Path) -> None:
    """(a) In a folder others can write (0777), another user swaps the file the check made
    for a link, to any database of the user's, before SQLite opens the name. Before: SQLite
    wrote the store into the file the link led to. Now the folder is refused at the check."""
    mine = _database(tmp_path / "mine.db")  # another store of the user's
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    db = shared / "registry.db"
    refused = None
    try:
        engine = engine_for(f"sqlite+aiosqlite:///{db}")  # the check: made 0600 before
    except ValueError as exc:
        refused = str(exc)
    else:
        db.unlink()  # the other user, between the check and SQLite's open
        db.symlink_to(mine)
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
                await conn.commit()
        finally:
            await engine.dispose()
    assert _tables(mine) == ["kept"]
    assert refused is not None and f"the folder {shared} (mode 0777)" in refused
    assert "can be written by other users" in refused and f"chmod go-w {shared}" in refused
    assert not db.is_symlink() and not db.exists()


async def test_a_link_put_where_the_database_goes_in_a_sticky_folder_is_refused(
    tmp_path: Path,
) -> None:
    """(a) In a sticky folder (``/tmp``, 1777) others cannot remove the user's file but can
    add a name: after ``registry serve``'s check found nothing there, a link is put where
    the store goes. Before: the store's engine followed it into the user's other database.
    Now the check refuses the folder (SQLite's journals go there by name too)."""
    mine = _database(tmp_path / "mine.db")
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    db = shared / "registry.db"
    url = f"sqlite+aiosqlite:///{db}"
    problem = sqlite_unusable(url)
    if problem is None:
        db.symlink_to(mine)  # after the check, before the store opens
        await _write(url)
    assert _tables(mine) == ["kept"]
    assert problem is not None and f"the folder {shared} (mode 1777)" in problem
    assert "journal files go" in problem
    with pytest.raises(ValueError, match="can be written by other users"):
        await _write(url)  # every engine refuses it too


@as_root
async def test_a_link_to_another_users_database_is_refused(tmp_path: Path) -> None:
    """(b) The store's path, in the user's own folder, links to a database of another
    user's. Before: followed, the store theirs to read and change. Refused now, by the
    start check and by every engine, the database untouched."""
    theirs = _database(tmp_path / "theirs.db")
    os.chown(theirs, OTHER, OTHER)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "registry.db"
    db.symlink_to(theirs)
    url = f"sqlite+aiosqlite:///{db}"
    problem = sqlite_unusable(url)
    assert problem is not None
    assert f"({theirs}) belongs to another user (uid {OTHER}, you are 0)" in problem
    with pytest.raises(ValueError, match="belongs to another user"):
        await _write(url)
    assert _tables(theirs) == ["kept"]
    db.unlink()  # their file put at the name itself: the same
    theirs.rename(db)
    with pytest.raises(ValueError, match="belongs to another user"):
        await _write(url)
    assert _tables(db) == ["kept"]


@as_root
async def test_a_link_another_user_made_is_not_followed(tmp_path: Path) -> None:
    """(b) A link of another user's at the name (made where they may add names) leads where
    they chose, here to a database of the user's own. Before: followed. Refused now."""
    mine = _database(tmp_path / "mine.db")
    db = tmp_path / "registry.db"
    db.symlink_to(mine)
    os.lchown(db, OTHER, OTHER)
    problem = sqlite_unusable(f"sqlite+aiosqlite:///{db}")
    assert problem is not None
    assert f"the symbolic link {db} belongs to another user (uid {OTHER}" in problem
    with pytest.raises(ValueError, match="symbolic link"):
        await _write(f"sqlite+aiosqlite:///{db}")
    assert _tables(mine) == ["kept"]


async def test_a_link_of_ones_own_is_followed_and_sqlite_given_the_real_path(
    tmp_path: Path,
) -> None:
    """The user's placement (a database on another disk, by a link of theirs) keeps
    working; SQLite is given the file's real path (its journals beside it), so the name
    is never opened again."""
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    target = _database(disk / "registry.db")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "registry.db"
    db.symlink_to(target)
    url = f"sqlite+aiosqlite:///{db}"
    assert sqlite_unusable(url) is None
    engine = engine_for(url)
    assert engine.url.database == str(target)
    await engine.dispose()
    await _write(url)
    assert _tables(target) == ["kept", "t"]
    (home / "new.db").unlink(missing_ok=True)
    await _write(f"sqlite+aiosqlite:///{home / 'new.db'}")  # a new one: made 0600 as before
    assert mode(home / "new.db") == 0o600
