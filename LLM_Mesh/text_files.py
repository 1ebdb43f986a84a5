"""A file a user named (``--keys FILE``, ``--config``, a receipt, a CA file) read as
text, or one ``ValueError`` in words that names the path and what to do: never a bare
``[Errno 2] No such file or directory`` (found 2026-12-06, ux34: ``receipt verify
/nope.json`` printed that, ``llm-mesh ask --registry-ca /nope`` a traceback)."""

from __future__ import annotations

import errno
from pathlib import Path


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


def read_text(path: Path | str, what: str) -> str:
    """``path``'s text (UTF-8; ``~`` expanded), else :func:`unreadable`'s ``ValueError``."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise unreadable(what, path, exc) from None
