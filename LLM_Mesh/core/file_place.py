"""Whether a file's place can be trusted, judged from what a walk of its path saw.

Pure: the walk (``LLM_Mesh/file_walk.py``) gives each folder it passed, the entry it took
there, each symbolic link it followed, and where the path ended; :func:`place_refusal` says
why that place is not one to keep a secret-bearing file that a library reopens by name
(SQLite's database and the ``-wal``/``-shm``/``-journal`` files it makes beside it), in one
line with what to do; ``None`` when it is.

The rules, as OpenSSH's ``StrictModes`` (``safe_path``) judges a key's path: a place is
trusted when no user but this one (``uid``) and root can change which file its name
leads to, so the file checked is the file opened later, however long after.

* every folder passed is this user's or root's, and no one else may write it (no group or
  other write bit), except a *sticky* folder (``/tmp``, mode 1777) passed on the way, where
  others may add names but not remove or rename one of this user's or root's (the entry
  taken there is judged itself: a folder, a link of this user's or root's);
* the folder the file is in (or goes in) is never one others may write, sticky or not:
  SQLite makes its journal files there by name, and anyone who may add a name there can put
  a link or a file of their own at one first (found 2026-12-07: files42, (a));
* each symbolic link followed is this user's or root's (a link another user made, where
  they may add names, leads where they choose: (b)); one of this user's is their own
  placement (a database on another disk) and followed;
* the file, when it exists, is a regular file of this user's (another user's file, a link
  leads to or put at the name, is theirs to read and change: (b)).
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Entry", "Passed", "Walked", "place_refusal"]

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class Entry:
    """A name the walk looked at: its path, owner and ``st_mode`` (``lstat``: a link's own)."""

    path: str
    uid: int
    mode: int


@dataclass(frozen=True)
class Passed:
    """A folder the walk passed and the entry it took in it (``None``: missing there)."""

    folder: Entry
    entry: Entry | None


@dataclass(frozen=True)
class Walked:
    """What a walk of a path saw: the folders passed in order (the last one the file's
    own), the symbolic links followed, and the file (``None``: missing)."""

    passed: Sequence[Passed]
    links: Sequence[Entry]
    file: Entry | None


def _trusted(owner: int, uid: int) -> bool:
    return owner in (uid, 0)


def _folder_refusal(step: Passed, last: bool, uid: int, what: str) -> str | None:
    folder = step.folder
    if not _trusted(folder.uid, uid):
        return (
            f"the folder {folder.path}, on the way to {what}, belongs to another user "
            f"(uid {folder.uid}, you are {uid}), who can replace what is in it: keep the "
            "database in a folder of your own (e.g. $LLM_MESH_HOME)"
        )
    if not folder.mode & _OTHERS_WRITE:
        return None
    if not last and folder.mode & stat.S_ISVTX:
        return None  # /tmp on the way: others cannot remove or rename what is not theirs
        # (the entry taken there is judged itself: the next folder, a link, or the file)
    mode = f"{stat.S_IMODE(folder.mode):04o}"
    said = (
        f"where {what} and its journal files go, can be written by other users: they can put "
        "a link or a file of their own at those names first, which SQLite would open"
        if last
        else f"on the way to {what}, can be written by other users, who can replace what is in it"
    )
    return f"the folder {folder.path} (mode {mode}), {said}: {_own_folder(folder, uid)}"


def _own_folder(folder: Entry, uid: int) -> str:
    """What to do about a folder others may write: ``chmod go-w`` only for one of the user's
    own, never a sticky one of root's (``/tmp``, ``/var/tmp``, ``/dev/shm``: shared by the
    system, even for root; found 2026-12-07, review42: "chmod go-w /tmp" was advised, which
    breaks ``/tmp`` for everyone, and another's shared folder is not the user's to change)."""
    keep = "keep the database in a folder only you can write (e.g. $LLM_MESH_HOME"
    if folder.uid == uid and not (folder.uid == 0 and folder.mode & stat.S_ISVTX):
        return f"{keep}), or chmod go-w {shlex.quote(folder.path)}"
    return f"{keep}, or one of your own made with mkdir -m 700), not in a folder shared with others"


def place_refusal(walked: Walked, uid: int, what: str, folder_missing: bool = False) -> str | None:
    """Why the place ``walked`` is not to be trusted by user ``uid`` (the module's rules),
    naming the file as ``what`` (e.g. ``"the database /x/registry.db"``); ``None`` when it
    is. ``folder_missing``: the file's own folder is not there yet (judged before it is
    made, mode 0700, and judged again after): the last folder seen is one on the way."""
    for link in walked.links:
        if not _trusted(link.uid, uid):
            return (
                f"{what}: the symbolic link {link.path} belongs to another user (uid "
                f"{link.uid}, you are {uid}), who chose where it leads: remove it, or give "
                "the path of the file itself"
            )
    for i, step in enumerate(walked.passed):
        last = i == len(walked.passed) - 1 and not folder_missing
        if (refusal := _folder_refusal(step, last, uid, what)) is not None:
            return refusal
    file = walked.file
    if file is None:
        return None
    if not stat.S_ISREG(file.mode):  # (its real path named where a link led elsewhere)
        where = "" if what.endswith(f" {file.path}") else f" ({file.path})"
        return f"{what}{where} is not a regular file (a folder, a device?): name a file"
    if file.uid != uid:
        return (
            f"{what} ({file.path}) belongs to another user (uid {file.uid}, you are {uid}), "
            "who can read and change it: run as that user, or move it aside and let a new "
            "one be made (mode 0600)"
        )
    return None
