"""``registry/settle_holders.py``'s :class:`HomeLock`: one registry per home, said."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from LLM_Mesh.registry.settle_holders import HomeLock


def test_a_second_registry_on_one_home_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03: a second ``registry serve`` on the same home (one SQLite file)
    started and served without a word: it shares the first one's keys and routes only to
    the nodes registered with it (docs/ARCHITECTURE.md, "Replicas")."""
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.settlement")
    first, second = HomeLock(tmp_path), HomeLock(tmp_path)
    try:
        assert first.take("holder-a") is None  # the first on this home
        assert not caplog.records
        assert second.take("holder-b") is None  # the lock is held: a flock per open file
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        assert f"another registry runs on {tmp_path}" in record.getMessage()
        assert "its own --home" in record.getMessage()
    finally:
        first.release()
        second.release()
    assert HomeLock(tmp_path).take("holder-c") == "holder-a"  # the last holder, now gone


def test_a_torn_or_damaged_holder_file_does_not_stop_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-05: ``settlement.holder`` was written in place (no temporary file, no
    ``fsync``); a crash could leave it empty or with bytes of another block, and bytes that
    are no UTF-8 stopped every later start (``UnicodeDecodeError``). Now: no predecessor
    named, a WARNING naming the file, and the file written again whole."""
    caplog.set_level(logging.WARNING, logger="LLM_Mesh.registry.settlement")
    for damaged in (b"\xff\xfe\x00\x9c garbage", b"", b"\x00" * 4096):
        (tmp_path / "settlement.holder").write_bytes(damaged)
        caplog.clear()
        lock = HomeLock(tmp_path)
        try:
            assert lock.take("h-0123abcd") is None
        finally:
            lock.release()
        [record] = caplog.records
        assert "settlement.holder holds no holder id" in record.getMessage()
        assert (tmp_path / "settlement.holder").read_text() == "h-0123abcd\n"


def test_the_holder_file_is_replaced_whole_and_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written to a temporary file, synced, renamed over the old one (the old inode is
    never written: a crash leaves the old id or the new), the folder synced."""
    import os

    path = tmp_path / "settlement.holder"
    path.write_text("h-old\n")
    os.link(path, tmp_path / "old-inode")  # the old file's content, seen through a 2nd name
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    lock = HomeLock(tmp_path)
    try:
        assert lock.take("h-new") == "h-old"
    finally:
        lock.release()
    assert path.read_text() == "h-new\n"
    assert (tmp_path / "old-inode").read_text() == "h-old\n"  # not written in place
    assert any(".tmp" in s and "settlement.holder" in s for s in synced), synced
    assert str(tmp_path) in synced, synced  # the rename made durable
