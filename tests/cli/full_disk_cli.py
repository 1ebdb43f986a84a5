"""``python -m LLM_Mesh.cli`` with a disk that refuses one file: ``FULL_DISK_FILE=NAME:ERRNO``
makes each write to a file whose name starts with NAME fail with that error number, as a
full disk (ENOSPC, EDQUOT), a read-only one (EROFS) or a folder of another user's (EACCES)
would: ``os.open`` with ``O_CREAT`` of it (the error naming the file), and ``os.write`` to
it (naming none, as a full disk's); NAME ``TemporaryFile``: the writes to
``tempfile.TemporaryFile``'s files (the home's check). For tests/cli/test_start_writes.py: no mount needed."""

from __future__ import annotations

import os
import sys

_real_open, _real_write = os.open, os.write
name, _, number = os.environ.pop("FULL_DISK_FILE", ":0").partition(":")
code = int(number)


def _refused(path: object) -> bool:
    return bool(name) and os.path.basename(os.fsdecode(path)).startswith(name)  # type: ignore[call-overload]


def _open(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
    if flags & os.O_CREAT and _refused(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))
    return _real_open(path, flags, mode, dir_fd=dir_fd)


def _write(fd: int, data: bytes) -> int:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if _refused(target):
        raise OSError(code, os.strerror(code))
    return _real_write(fd, data)


class _FullFile:
    """``tempfile.TemporaryFile``'s file on a full disk: made (no space taken), not written."""

    def __init__(self, f: object) -> None:
        self.f = f

    def write(self, _data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    def flush(self) -> None:
        pass

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()  # type: ignore[attr-defined]


os.open, os.write = _open, _write  # type: ignore[assignment]
if name == "TemporaryFile":  # the home's check: a nameless file, written through FileIO
    import tempfile

    _real_temporary = tempfile.TemporaryFile
    tempfile.TemporaryFile = lambda *a, **k: _FullFile(_real_temporary(*a, **k))  # type: ignore[assignment]
sys.argv[0] = "llm-mesh"
from LLM_Mesh.cli.main import main  # noqa: E402

main()
