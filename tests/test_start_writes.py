"""start_writes.py: which failed starts are said in one line, and which go on as before."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.start_writes import RefusedStart, named_error, refusal_of


def _start(app: Any) -> tuple[RefusedStart, list[Any], BaseException | None]:
    wrapped, sent = RefusedStart(app, "the registry", "/h/registry.db"), []

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    try:
        asyncio.run(wrapped({"type": "lifespan"}, receive, send))
    except BaseException as exc:
        return wrapped, sent, exc
    return wrapped, sent, None


def _failing(exc: BaseException) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # as Starlette's router
        await receive()
        try:
            raise exc
        except BaseException:
            await send({"type": "lifespan.startup.failed", "message": "Traceback ..."})
            raise

    return app


def test_a_file_it_could_not_write_is_one_line_and_no_traceback() -> None:
    cause = OSError(errno.ENOSPC, "No space left on device", "/h/settlement.holder")
    wrapped, sent, raised = _start(_failing(_wrapped_in(cause)))
    assert raised is None
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]
    assert wrapped.line is not None and wrapped.line.startswith(
        "the registry could not write /h/settlement.holder (no space left on its disk)"
    )


def _wrapped_in(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except OSError as exc:
            raise RuntimeError("starting the settlement") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOENT, "No such file or directory", "/h/x"),  # not the place's fault
        OSError(errno.ENOSPC, "No space left on device"),  # no file named: not known which
        RuntimeError("a migration failed"),
        sqlite3.OperationalError("no such table: nodes"),
    ],
)
def test_any_other_failure_goes_on_as_before(exc: BaseException) -> None:
    wrapped, sent, raised = _start(_failing(exc))
    assert raised is exc
    assert sent == [{"type": "lifespan.startup.failed", "message": "Traceback ..."}]
    assert wrapped.line is None


def test_sqlites_full_database_is_named() -> None:
    exc = sqlite3.OperationalError("database or disk is full")
    assert str(refusal_of(exc, "the registry", "/h/registry.db")).startswith(
        "the registry could not write /h/registry.db (no space left on its disk)"
    )
    assert refusal_of(exc, "the registry") is None  # no SQLite file: not said


def test_named_error_names_the_file_meant_and_keeps_its_kind(tmp_path: Path) -> None:
    named = named_error(OSError(errno.EACCES, "Permission denied"), tmp_path / "node.key")
    assert isinstance(named, PermissionError) and named.filename == str(tmp_path / "node.key")
    assert refusal_of(named, "the node") is not None


def test_an_error_raised_from_none_keeps_its_own_words() -> None:
    """review42c: ``raise X("cannot read ...") from None`` inside ``except OSError`` keeps the
    OSError as its ``__context__``; followed, the clear error was said as "could not write"."""
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/h/ledger.checkpoint")
        except OSError:
            raise ValueError("cannot read /h/ledger.checkpoint: see its mode") from None
    except ValueError as exc:
        assert refusal_of(exc, "the registry") is None


def _io_error(free: int | None, monkeypatch: pytest.MonkeyPatch) -> str | None:
    from LLM_Mesh import start_writes

    monkeypatch.setattr(start_writes, "_free_bytes", lambda _path: free)
    exc = sqlite3.OperationalError("disk I/O error")
    return refusal_of(exc, "the registry", database="/h/registry.db")


def test_sqlites_disk_io_error_on_a_disk_not_full_is_not_said_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found 2026-12-07 (fulldisk43): SQLite's ``disk I/O error`` is taken for a full disk
    only under 1 MiB free; on a disk with space left (a failing disk, one remounted
    read-only under it, a network file system) it was no one line at all: uvicorn's
    traceback and exit 3. Now one line, which says what was met and what to check, and
    never that the disk is full."""
    line = _io_error(5 << 30, monkeypatch)
    assert line == (
        "the registry met a disk I/O error at /h/registry.db (5120 MiB free on its disk: not "
        "a full disk): check that disk (the kernel's log: dmesg or journalctl -k; mount: still "
        "read-write) and that this user may write /h/registry.db, its -wal and -shm files and "
        "/h; or give another home with --home or LLM_MESH_HOME (or the file's own option)"
    )
    unknown = str(_io_error(None, monkeypatch))
    assert unknown.startswith("the registry met a disk I/O error at /h/registry.db (the free ")
    assert "df -h /h" in unknown  # the space not known: it is among what to check
    for said in (line, unknown):
        assert "no space" not in said and "full)" not in said


def test_sqlites_disk_io_error_with_almost_no_space_left_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under 1 MiB free (a full tmpfs says ``disk I/O error``, not SQLite's "full"): the space
    said as measured, and the fix for a full disk; before, "no space left on its disk" as a
    fact."""
    assert _io_error(12 * 1024, monkeypatch) == (
        "the registry could not write /h/registry.db (SQLite's disk I/O error, with 12 KiB free "
        "on its disk: full, most likely): free space there (df -h /h), or give another home "
        "with --home or LLM_MESH_HOME (or the file's own option)"
    )
