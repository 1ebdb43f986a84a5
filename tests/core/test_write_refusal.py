"""core/write_refusal.py: the one line for a file a start could not write (fulldisk42)."""

from __future__ import annotations

import errno

import pytest

from LLM_Mesh.core.write_refusal import (
    LOW_SPACE_BYTES,
    sqlite_errno,
    sqlite_refusal,
    write_refusal,
)


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
    assert sqlite_errno("disk I/O error") is None  # whatever the cause: sqlite_refusal's
    assert sqlite_errno("no such table: nodes") is None


def test_a_disk_io_error_is_a_full_disk_only_under_the_low_space_bound() -> None:
    """Found 2026-12-07 (fulldisk43): with space left it was no line (a traceback); under
    the bound it said "no space left" as a fact. The bound's edge, each side."""
    low = str(sqlite_refusal("/h/r.db", "disk I/O error", LOW_SPACE_BYTES - 1, "x"))
    assert low.startswith("x could not write /h/r.db (SQLite's disk I/O error, with 1023 KiB ")
    assert low.endswith("full, most likely): free space there (df -h /h), or " + ELSEWHERE)
    left = str(sqlite_refusal("/h/r.db", "disk I/O error", LOW_SPACE_BYTES, "x"))
    assert left.startswith("x met a disk I/O error at /h/r.db (1 MiB free on its disk: not a ")
    assert "free space" not in left and "full)" not in left and left.endswith("; or " + ELSEWHERE)
    assert sqlite_refusal("/h/r.db", "database or disk is full", None) == write_refusal(
        "/h/r.db", errno.ENOSPC
    )
    assert sqlite_refusal("/h/r.db", "no such table: nodes", 0) is None


ELSEWHERE = "give another home with --home or LLM_MESH_HOME (or the file's own option)"
