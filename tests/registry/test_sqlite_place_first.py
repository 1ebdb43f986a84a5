"""``registry serve``'s check of a SQLite store judges the file's place first (found
2026-12-07, small42): it made the database's folder and tested the file's access before
the place check (``file_walk.sqlite_place_refusal``, ``core/file_place.py``), so a link of
another user's at the name was said "not a file this process can read and write", not the
place refusal that says what to do, and a folder was made through another user's link the
place check then refused. A new folder of the user's own, even under a sticky one such as
``/tmp``, is still made. The files are given another user by root (CI runs as root)."""

from __future__ import annotations

import os
from pathlib import Path

from LLM_Mesh.registry.store_checks import sqlite_unusable
from tests.file_modes import mode, usual_umask  # noqa: F401 (autouse)
from tests.registry.test_sqlite_place import OTHER, as_root


@as_root
def test_another_users_link_at_the_name_is_said_as_the_place_refusal(tmp_path: Path) -> None:
    """Their link at the name leads to a folder of theirs (not a file: root may read and
    write any file, so the access test caught only this). Before: "the database ... is not
    a file this process can read and write"."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, OTHER, OTHER)
    db = tmp_path / "registry.db"
    db.symlink_to(theirs)
    os.lchown(db, OTHER, OTHER)
    problem = sqlite_unusable(f"sqlite+aiosqlite:///{db}")
    assert problem is not None
    assert f"the symbolic link {db} belongs to another user (uid {OTHER}" in problem, problem
    assert "read and write" not in problem


@as_root
def test_no_folder_is_made_through_a_link_the_place_check_refuses(tmp_path: Path) -> None:
    """The store's folder is under another user's link to a folder of theirs. Before: the
    folder ``store`` was made in theirs (``make_private_dir``), then the link refused."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, OTHER, OTHER)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "data").symlink_to(theirs)
    os.lchown(home / "data", OTHER, OTHER)
    problem = sqlite_unusable(f"sqlite+aiosqlite:///{home / 'data' / 'store' / 'registry.db'}")
    assert problem is not None and "belongs to another user" in problem, problem
    assert list(theirs.iterdir()) == []


def test_a_new_folder_under_a_sticky_one_is_still_made(tmp_path: Path) -> None:
    """A new home under ``/tmp`` (1777): the sticky folder is one on the way; the folder
    made is the user's own, 0700, and judged again once made."""
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    db = sticky / "home" / "deeper" / "registry.db"
    assert sqlite_unusable(f"sqlite+aiosqlite:///{db}") is None
    assert mode(db.parent) == 0o700 and mode(sticky / "home") == 0o700


def test_a_missing_folder_under_one_others_write_is_refused_and_not_made(tmp_path: Path) -> None:
    """Under a folder others may write (0777, not sticky) they could rename the folder
    made: refused, as before, and now nothing is made there first."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    problem = sqlite_unusable(f"sqlite+aiosqlite:///{shared / 'home' / 'registry.db'}")
    assert problem is not None and f"the folder {shared} (mode 0777)" in problem, problem
    assert list(shared.iterdir()) == []
