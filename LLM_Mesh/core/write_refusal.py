"""A file a command's start could not write, in one line: which file, why, what to do.

Found 2026-12-07 (fulldisk42, newuser42's walk): ``registry serve`` (and ``up``, ``node
start``, ``demo``) on a full disk ended in uvicorn's long traceback (``OSError: [Errno 28]
No space left on device`` writing ``settlement.holder``, or SQLite's ``database or disk is
full``) and exit 3, where a start that fails says one line and exits 1
(docs/operations.md, "Stopping and exit statuses"). :func:`write_refusal` is that line,
from the error's number and the file's path; :func:`sqlite_errno` reads SQLite's own words
for the same causes (it raises no ``OSError``), and :func:`sqlite_refusal` says its line,
``disk I/O error`` included (a full disk only with little space left; else what to check:
fulldisk43). Pure: the error is caught and the line printed at the edges
(``start_writes.py``, ``cli/common.py``).
"""

from __future__ import annotations

import errno
import os

__all__ = ["LOW_SPACE_BYTES", "WRITE_ERRNOS", "sqlite_errno", "sqlite_refusal", "write_refusal"]

#: the errors a write meets that no retry mends, and how each is said
WRITE_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "no space left on its disk",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}

#: where the file is not the home's own (``--database-url``, ``--key-file``), its option moves it
_ELSEWHERE = "give another home with --home or LLM_MESH_HOME (or the file's own option)"
_FIX_SPACE = "free space there (df -h {folder}), or " + _ELSEWHERE
_FIX_PLACE = (  # a permission error may be a read's (a key left by sudo): both said (review42c)
    "let this user read and write it and its folder (ls -l {path}: its owner and mode), or "
    + _ELSEWHERE
)
_FIX_READ_ONLY = "give a writable place: " + _ELSEWHERE


def write_refusal(path: str, number: int | None, command: str = "the start") -> str | None:
    """``COMMAND could not write PATH (WHY): WHAT TO DO``, one line, for an error number in
    :data:`WRITE_ERRNOS`; ``None`` for any other (it is not a place's fault: left as it
    was)."""
    if number not in WRITE_ERRNOS:
        return None
    folder = os.path.dirname(path) or "."
    verb = "write"
    if number in (errno.ENOSPC, errno.EDQUOT):
        fix = _FIX_SPACE.format(folder=folder)
    elif number == errno.EROFS:
        fix = _FIX_READ_ONLY
    else:  # EACCES, EPERM: an open for reading meets them too
        verb, fix = "open", _FIX_PLACE.format(path=path)
    return f"{command} could not {verb} {path} ({WRITE_ERRNOS[number]}): {fix}"


#: free bytes below which SQLite's ``disk I/O error`` is taken for a full disk (its journal
#: or shared-memory file could not grow: a full tmpfs says so, not SQLITE_FULL)
LOW_SPACE_BYTES = 1 << 20


def sqlite_errno(message: str) -> int | None:
    """The error number SQLite's message stands for: ``database or disk is full``
    (SQLITE_FULL) is ENOSPC, ``attempt to write a readonly database`` EROFS (a read-only
    mount, or a file or folder this user may not write); ``None`` for any other
    (``disk I/O error``: :func:`sqlite_refusal`)."""
    text = message.lower()
    if "database or disk is full" in text:
        return errno.ENOSPC
    if "attempt to write a readonly database" in text:
        return errno.EROFS
    return None


def sqlite_refusal(
    path: str, message: str, free_bytes: int | None, command: str = "the start"
) -> str | None:
    """The one line for SQLite's ``message`` on the database ``path``: a full or read-only
    one as :func:`write_refusal` says it; ``disk I/O error`` (SQLITE_IOERR, whatever the
    cause) as a full disk only where ``free_bytes`` (its folder's, measured after the
    failure) is under :data:`LOW_SPACE_BYTES`, saying so; else as what it is, with what to
    check, never as a full disk (found 2026-12-07, fulldisk43: it was uvicorn's traceback);
    ``None`` for any other message."""
    number = sqlite_errno(message)
    if number is not None:
        return write_refusal(path, number, command)
    if "disk i/o error" not in message.lower():
        return None
    folder = os.path.dirname(path) or "."
    if free_bytes is not None and free_bytes < LOW_SPACE_BYTES:
        return (
            f"{command} could not write {path} (SQLite's disk I/O error, with "
            f"{free_bytes // 1024} KiB free on its disk: full, most likely): "
            + _FIX_SPACE.format(folder=folder)
        )
    if free_bytes is None:
        space, check = "the free space not known", f"its free space: df -h {folder}; "
    else:
        space, check = f"{free_bytes >> 20} MiB free on its disk: not a full disk", ""
    return (
        f"{command} met a disk I/O error at {path} ({space}): check that disk ({check}the "
        "kernel's log: dmesg or journalctl -k; mount: still read-write) and that this user "
        f"may write {path}, its -wal and -shm files and {folder}; or " + _ELSEWHERE
    )
