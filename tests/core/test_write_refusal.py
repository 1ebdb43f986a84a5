"""core/write_refusal.py: the one line for a file a start could not write (fulldisk42)."""

from __future__ import annotations

import errno

import pytest

from LLM_Mesh.core.write_refusal import LOW_SPACE_BYTES, sqlite_errno, write_refusal


def test_each_cause_says_why_and_what_to_do() -> None:
    full = write_refusal("/h/settlement.holder", errno.ENOSPC, "the registry")
    assert full == (
        "the registry could not write /h/settlement.holder (no space left on its disk): free "
        "space there (df -h /h), or give another home with --home or LLM_MESH_HOME (or the "
        "file's own option)"
    )
    assert "(the disk quota is used up): free space there (df -h /h)" in str(
        write_refusal("/h/k", errno.EDQUOT)
    )
    assert write_refusal("/h/k", errno.EROFS) == (
        "the start could not write /h/k (a read-only file system): give a writable place: "
        "give another home with --home or LLM_MESH_HOME (or the file's own option)"
    )
    for number, why in (
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "operation not permitted"),
    ):
        line = str(write_refusal("/h/k", number))  # a read's error too (a key left by sudo):
        assert line == (  # never said "could not write", nor told only the folder (review42c)
            f"the start could not open /h/k ({why}): let this user read and write it and its "
            "folder (ls -l /h/k: its owner and mode), or give another home with --home or "
            "LLM_MESH_HOME (or the file's own option)"
        )


@pytest.mark.parametrize("number", [None, errno.EIO, errno.ENOENT, errno.EEXIST, 0])
def test_other_errors_are_not_the_places(number: int | None) -> None:
    assert write_refusal("/h/k", number) is None


def test_sqlites_words() -> None:
    assert sqlite_errno("(sqlite3.OperationalError) database or disk is full") == errno.ENOSPC
    assert sqlite_errno("attempt to write a readonly database") == errno.EROFS
    assert sqlite_errno("disk I/O error", LOW_SPACE_BYTES - 1) == errno.ENOSPC
    assert sqlite_errno("disk I/O error", LOW_SPACE_BYTES) is None  # space left: not a full disk
    assert sqlite_errno("disk I/O error") is None
    assert sqlite_errno("no such table: nodes", 0) is None
