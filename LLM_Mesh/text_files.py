"""A file a user named (``--keys FILE``, ``--config``, a receipt, a CA file) read as
text, or one ``ValueError`` in words that names the path and what to do: never a bare
``[Errno 2] No such file or directory`` (found 2026-12-06, ux34: ``receipt verify
/nope.json`` printed that, ``llm-mesh ask --registry-ca /nope`` a traceback). With a
``limit``, at most that many bytes are read (:func:`bounded_text`: the bound is on what is
read, never on the file's stat, which says 0 for a FIFO or a device), and a larger file
is refused in words (found 2026-12-06, tidy35: a receipt or ``--keys`` file was read whole,
however large). Only a regular file is opened (:func:`open_regular`): a FIFO, a device or a
socket is refused in words, never waited on (found 2026-12-06, cli36: ``ask --prompt-file
FIFO`` waited for a writer for ever); standard input stays where a command takes ``-``."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def why_unreadable(exc: OSError | UnicodeError) -> str:
    """Why a file could not be read, and what to do, in words (no errno, no repr)."""
    if isinstance(exc, UnicodeError):
        return "is not UTF-8 text (is it the right file?)"
    if isinstance(exc, NotRegularFile):
        return NOT_REGULAR
    if isinstance(exc, FileNotFoundError):
        return "no such file (check the path)"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file (name a file in it)"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is a file, not a folder (check the path)"
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied (check its owner and mode)"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long (check the path)"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


NOT_REGULAR = (
    "is not a regular file (a FIFO, a device or a socket: never read, it could wait for "
    "ever); name a file, or save what it gives to one first"
)


class NotRegularFile(OSError):
    """A path that names something other than a regular file or a folder."""


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` (``~`` expanded) opened to read bytes, only if it is a regular file: its
    stat is looked at first, and it is opened without waiting (``O_NONBLOCK``: a FIFO with
    no writer would hold ``open`` for ever) and looked at again (replaced since), else
    :class:`NotRegularFile` (a folder: ``IsADirectoryError``); other ``OSError`` as
    ``open`` raises them."""
    p = Path(path).expanduser()
    st = os.stat(p)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(p))
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(NOT_REGULAR)
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the two looks
            raise NotRegularFile(NOT_REGULAR)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def unreadable(what: str, path: Path | str, exc: OSError | UnicodeError) -> ValueError:
    """The ``ValueError`` for ``what`` (``--keys``, ``the receipt file``) at ``path``."""
    return ValueError(f"{what} {path}: {why_unreadable(exc)}")


RIGHT_FILE = "is it the right file?"


def too_large(named: str, limit: int, hint: str = RIGHT_FILE) -> ValueError:
    """The ``ValueError`` for ``named`` (``--keys FILE``, ``standard input``) past ``limit``;
    ``hint``: why no more is read, or what to check."""
    return ValueError(f"{named}: is larger than {limit:,} bytes, the most read ({hint})")


def bounded_text(f: BinaryIO, limit: int, named: str, hint: str = RIGHT_FILE) -> str:
    """At most ``limit`` bytes of ``f`` as UTF-8 text, else :func:`too_large` (one byte more
    is read to tell, never the rest; a regular file whose size says it is larger is refused
    unread: found 2026-12-06, small35, a 64 GiB file had 64 MiB read and held first)."""
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):  # no descriptor (an in-memory stream)
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise too_large(named, limit, hint)
    data = f.read(limit + 1)
    if len(data) > limit:  # a stream, a device, a file grown since its stat
        raise too_large(named, limit, hint)
    return data.decode("utf-8")


def read_text(path: Path | str, what: str, limit: int | None = None, hint: str = RIGHT_FILE) -> str:
    """``path``'s text (UTF-8; ``~`` expanded), else :func:`unreadable`'s ``ValueError``;
    ``limit``: at most that many bytes (:func:`bounded_text`, ``hint`` its refusal's); only
    a regular file (:func:`open_regular`)."""
    try:
        with open_regular(path) as f:
            if limit is None:
                return f.read().decode("utf-8")
            return bounded_text(f, limit, f"{what} {path}", hint)
    except (OSError, UnicodeError) as exc:
        raise unreadable(what, path, exc) from None
