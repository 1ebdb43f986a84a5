"""``file_walk.walk``: a path walked as the kernel walks it, what it passed noted; and
``private_sqlite_path``'s answers (the attacks themselves: ``registry/test_sqlite_place.py``)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from LLM_Mesh.file_walk import private_sqlite_path, walk
from tests.file_modes import mode, usual_umask  # noqa: F401 (autouse)


def test_the_walk_follows_links_as_the_kernel_does(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    (tmp_path / "up").symlink_to("a/b")  # relative
    (tmp_path / "a" / "b" / "back").symlink_to("..")  # '..' after a link: the link's folder's
    path = tmp_path / "up" / "back" / "b" / "f"
    real, walked = walk(path)
    assert real == os.path.realpath(path) == str(tmp_path / "a" / "b" / "f")
    assert [link.path for link in walked.links] == [
        str(tmp_path / "up"),
        str(tmp_path / "a/b/back"),
    ]
    assert walked.file is not None and walked.file.path == real
    assert walked.passed[-1].folder.path == str(tmp_path / "a" / "b")
    absolute = tmp_path / "abs"
    absolute.symlink_to(tmp_path / "a" / "b" / "f")
    assert walk(absolute)[0] == real


def test_a_missing_name_stops_the_walk_where_it_is(tmp_path: Path) -> None:
    real, walked = walk(tmp_path / "none" / "x.db")
    assert real == str(tmp_path / "none" / "x.db") and walked.file is None
    assert walked.passed[-1].folder.path == str(tmp_path) and walked.passed[-1].entry is None
    dangling = tmp_path / "d"
    dangling.symlink_to("gone/x.db")
    assert walk(dangling)[0] == str(tmp_path / "gone" / "x.db")


def test_a_loop_of_links_is_eloop(tmp_path: Path) -> None:
    (tmp_path / "p").symlink_to("q")
    (tmp_path / "q").symlink_to("p")
    with pytest.raises(OSError) as raised:
        walk(tmp_path / "p")
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(ValueError, match=r"cannot check the database .*'s place"):
        private_sqlite_path(tmp_path / "p" / "x.db")  # refused, not left to SQLite's opens


def test_the_checked_path_is_the_real_one_and_a_new_file_is_made_0600(tmp_path: Path) -> None:
    made = private_sqlite_path(tmp_path / "x.db")  # (the usual umask 022: autouse)
    assert made == tmp_path / "x.db" and mode(made) == 0o600
    unmade = private_sqlite_path(tmp_path / "y.db", make=False)
    assert unmade == tmp_path / "y.db" and not unmade.exists()
    (tmp_path / "z.db").symlink_to(tmp_path / "gone.db")
    with pytest.raises(ValueError, match="does not exist"):  # a dangling link: as before
        private_sqlite_path(tmp_path / "z.db")
    with pytest.raises(ValueError, match="belongs to another user"):  # a fake uid injected
        private_sqlite_path(tmp_path / "x.db", uid=os.geteuid() + 1)
