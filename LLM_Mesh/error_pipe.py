"""A child's one-line ``error:``, handed to the process that started it through a pipe.

Found 2026-12-07 (fulldisk43): ``llm-mesh up`` in a home with a little space left made its
keys and store, then its registry failed its own start on ``settlement.holder`` (no space
left) and said so in one line, to its log, which the full disk could not take: ``up`` said
``the registry exited with code 1 while starting. Last lines of HOME/logs/registry.log:``
and nothing more. A pipe needs no disk. ``up`` and ``demo`` (``local_mesh.LocalMesh``)
give each child the write end of one, its number in :data:`ERROR_FD_ENV`; the child takes
it out of its environment at its start (:func:`take_from`: ``cli/main.main``, so nothing
it starts inherits a number that is another file there) and its ``fail`` (``cli/common.py``)
writes its line there (:func:`tell`) before printing it. ``up`` reads it (:func:`read_said`)
when the child exits while starting and says it, with the log's path.

The number is checked as it is taken, not only when the line is written (found 2026-12-07,
attack44): a number of ASCII digits, 3 or more (never stdin, stdout or stderr: ``1`` with
stdout piped wrote the line into a command's output), open and a pipe then; the line goes
to that same pipe only (its device and inode, kept), not to whatever file reuses the
number later (a number closed at the start, then a pipe to an engine's process); a number
past the C int's range or a digit Python reads but ``int`` refuses (``²``) is no pipe (an
``OverflowError`` took the place of every command's error line, a ``ValueError`` the
start of every command). The pipe is not handed on to what the child execs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import MutableMapping

__all__ = ["ERROR_FD_ENV", "open_pipe", "read_said", "take_from", "tell"]

#: the pipe's write end in a child's environment (``up``, ``demo``; no one else sets it)
ERROR_FD_ENV = "LLM_MESH_ERROR_FD"
#: the most a line may carry (a pipe's write of up to 4096 bytes is never split)
MAX_BYTES = 4000
#: the lowest number a pipe is taken at: 0, 1 and 2 are the child's stdin, stdout, stderr
LOWEST_FD = 3

# this process's pipe to its starter, once taken: its number, device and inode
_fd: tuple[int, int, int] | None = None


def _pipe_at(fd: int) -> tuple[int, int] | None:
    """``fd``'s device and inode when it is an open pipe, else ``None``."""
    try:
        st = os.fstat(fd)
    except (OSError, OverflowError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISFIFO(st.st_mode) else None


def take_from(environ: MutableMapping[str, str]) -> None:
    """A child's side, at its start: the pipe's number taken out of ``environ`` and kept
    for :func:`tell` (none kept when it is not a number)."""
    global _fd
    value = environ.pop(ERROR_FD_ENV, None)
    _fd = None
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 9:
        return
    fd = int(value)
    found = _pipe_at(fd) if fd >= LOWEST_FD else None
    if found is not None:
        _fd = (fd, *found)
        try:
            os.set_inheritable(fd, False)  # not to what this process execs
        except OSError:  # pragma: no cover - checked open just now
            _fd = None


def tell(line: str) -> None:
    """``line`` to the starter's pipe, once, as one line; nothing when no pipe was given
    (or the number is no pipe, or the pipe is closed)."""
    global _fd
    taken, _fd = _fd, None
    if taken is None:
        return
    fd, *pipe = taken
    data = " ".join(line.split()).encode("utf-8", "replace")[:MAX_BYTES] + b"\n"
    if _pipe_at(fd) != tuple(pipe):  # closed since, the number another file's now
        return
    with contextlib.suppress(OSError):  # the starter is gone: said on stderr all the same
        os.write(fd, data)


def open_pipe() -> tuple[int, int]:
    """A starter's side: ``(read, write)``, the read end not blocking (read once the child
    has exited: whatever it wrote is there, or nothing)."""
    read, write = os.pipe()
    if write < LOWEST_FD:  # a starter without stdin or stdout: a number the child takes
        moved = fcntl.fcntl(write, fcntl.F_DUPFD_CLOEXEC, LOWEST_FD)
        os.close(write)
        write = moved
    os.set_blocking(read, False)
    return read, write


def read_said(fd: int) -> str | None:
    """The last line a child wrote to the pipe whose read end is ``fd``; ``None`` when it
    wrote none."""
    try:
        data = os.read(fd, 1 << 16)
    except OSError:  # BlockingIOError: nothing written
        return None
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else None
