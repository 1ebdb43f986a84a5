"""A file a user named (``--keys FILE``, ``--config``, a receipt, a CA file) read as
text, or one ``ValueError`` in words that names the path and what to do: never a bare
``[Errno 2] No such file or directory`` (found 2026-12-06, ux34: ``receipt verify
/nope.json`` printed that, ``llm-mesh ask --registry-ca /nope`` a traceback). With a
``limit``, at most that many bytes are read (:func:`bounded_text`: the bound is on what is
read, never on the file's stat, which says 0 for a FIFO or a device), and a larger file
is refused in words (found 2026-12-06, tidy35: a receipt or ``--keys`` file was read whole,
however large)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import BinaryIO


def why_unreadable(exc: OSError | UnicodeError) -> str:
    """Why a file could not be read, and what to do, in words (no errno, no repr)."""
    if isinstance(exc, UnicodeError):
        return "is not UTF-8 text (is it the right file?)"
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


def unreadable(what: str, path: Path | str, exc: OSError | UnicodeError) -> ValueError:
    """The ``ValueError`` for ``what`` (``--keys``, ``the receipt file``) at ``path``."""
    return ValueError(f"{what} {path}: {why_unreadable(exc)}")


def too_large(named: str, limit: int) -> ValueError:
    """The ``ValueError`` for ``named`` (``--keys FILE``, ``standard input``) past ``limit``."""
    return ValueError(
        f"{named}: is larger than {limit:,} bytes, the most read (is it the right file?)"
    )


def bounded_text(f: BinaryIO, limit: int, named: str) -> str:
    """At most ``limit`` bytes of ``f`` as UTF-8 text, else :func:`too_large` (one byte more
    is read to tell, never the rest)."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise too_large(named, limit)
    return data.decode("utf-8")


def read_text(path: Path | str, what: str, limit: int | None = None) -> str:
    """``path``'s text (UTF-8; ``~`` expanded), else :func:`unreadable`'s ``ValueError``;
    ``limit``: at most that many bytes (:func:`bounded_text`)."""
    try:
        if limit is None:
            return Path(path).expanduser().read_text(encoding="utf-8")
        with Path(path).expanduser().open("rb") as f:
            return bounded_text(f, limit, f"{what} {path}")
    except (OSError, UnicodeError) as exc:
        raise unreadable(what, path, exc) from None
