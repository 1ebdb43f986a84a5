"""A path walked one name at a time, as the kernel does, noting what it passed; and a
SQLite file's place made sure of before SQLite opens it (:func:`private_sqlite_path`).

:func:`walk` follows symbolic links itself (``lstat`` and ``readlink`` each name, ``..``
taken after a link as the kernel takes it) so that every folder passed, every link followed
and the file reached are seen (``core/file_place.py`` judges them) and the path the file
really has is known: that path, with no link left in it, is what SQLite is given.

Found 2026-12-07 (files42): the dangling-link check (``secret_files.dangling_link_refusal``)
and SQLite's open of the same name were two steps, and SQLite reopens the name (its pool's
every connection, its journals) long after: a link put at the name between them, in a
folder others can write, was followed (a); a link to another user's file, or their file at
the name, was used as the database, theirs to read and change (b).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from LLM_Mesh.core.file_place import Entry, Passed, Walked, place_refusal
from LLM_Mesh.secret_files import create_private_file, dangling_link_refusal

__all__ = ["private_sqlite_path", "sqlite_place_refusal", "walk"]

_MAX_LINKS = 40  # as Linux's MAXSYMLINKS


def _entry(path: str, st: os.stat_result) -> Entry:
    return Entry(path, st.st_uid, st.st_mode)


def walk(path: Path, lstat: Callable[[str], os.stat_result] = os.lstat) -> tuple[str, Walked]:
    """``path`` walked from ``/`` (a relative one from the working folder): the path it
    leads to, no link left in it, and what was seen on the way. A walk that meets a missing
    name, or a name that is not a folder before the last, stops there: what was seen up to
    it, and the path as far as it got joined with the rest. ``OSError`` (``ELOOP``) after
    more than 40 links."""
    full = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    todo = [p for p in reversed(str(full).split("/")) if p not in ("", ".")]
    done, passed, links = "/", list[Passed](), list[Entry]()
    folder = _entry("/", lstat("/"))
    while todo:
        name = todo.pop()
        if name == "..":
            done = os.path.dirname(done)
            folder = _entry(done, lstat(done))
            continue
        here = os.path.join(done, name)
        try:
            st: os.stat_result | None = lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        passed.append(Passed(folder, None if st is None else _entry(here, st)))
        if st is not None and stat.S_ISLNK(st.st_mode):
            links.append(_entry(here, st))
            if len(links) > _MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
            target = os.readlink(here)
            if target.startswith("/"):
                done, folder = "/", _entry("/", lstat("/"))
            todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
            continue
        if st is None or (todo and not stat.S_ISDIR(st.st_mode)):
            rest = [name, *reversed(todo)]
            return os.path.join(done, *rest), Walked(passed, links, None)
        done = here
        if todo:
            folder = _entry(here, st)
    last = passed[-1].entry if passed else None
    return done, Walked(passed, links, last)


def private_sqlite_path(path: str | Path, uid: int | None = None, make: bool = True) -> Path:
    """The path SQLite is to open for the database file ``path``: its real path, no link in
    it, the file made there empty, mode 0600, when missing (its folder there; a missing
    folder is SQLite's error, as before). ``ValueError``, one line saying what to do, when
    the place is not to be trusted (``core/file_place.py``: a folder others can write,
    another user's link, folder or file) or ``path`` is a link leading nowhere
    (``secret_files.dangling_link_refusal``). ``uid``: whose it should be (default: this
    process's user); ``make=False``: a missing file is not made (a check before a start)."""
    path = Path(path)
    real, walked = _judged(path, os.geteuid() if uid is None else uid, before_made=False)
    if make and walked.file is None and os.path.isdir(os.path.dirname(real)):
        with contextlib.suppress(OSError):  # (SQLite says why it cannot open it)
            create_private_file(Path(real))  # O_EXCL | O_NOFOLLOW, a folder only we write
    return Path(real)


def sqlite_place_refusal(path: str | Path, uid: int | None = None) -> str | None:
    """Why the database ``path``'s place is not to be trusted, judged before anything is
    made or read there (``registry serve``'s check, ``store_checks.sqlite_unusable``): as
    :func:`private_sqlite_path` judges it, except that a folder of the file's still to be
    made (mode 0700, then judged again) leaves the last folder seen one on the way.
    ``None`` when nothing is refused. Found 2026-12-07 (small42): the check made the
    folders first and tested the file's access first, so a link to another user's file was
    "not a file this process can read and write", and a folder was made through a link the
    place check then refused."""
    try:
        _judged(Path(path), os.geteuid() if uid is None else uid, before_made=True)
    except ValueError as exc:
        return str(exc)
    return None


def _judged(path: Path, uid: int, before_made: bool) -> tuple[str, Walked]:
    """``path`` walked and its place judged (``core/file_place.py``): its real path and what
    the walk saw; ``ValueError``, one line, when refused. ``before_made``: its folder may be
    missing still (:func:`sqlite_place_refusal`)."""
    if (refusal := dangling_link_refusal(path)) is not None:
        raise ValueError(refusal)
    try:
        real, walked = walk(path)
    except OSError as exc:  # a folder on the way this user cannot search, a loop of links
        raise ValueError(
            f"cannot check the database {path}'s place ({exc.strerror or exc}): give a path "
            "through folders of your own"
        ) from None
    missing = before_made and walked.file is None and not os.path.isdir(os.path.dirname(real))
    if (refusal := place_refusal(walked, uid, f"the database {path}", missing)) is not None:
        raise ValueError(refusal)
    return real, walked
