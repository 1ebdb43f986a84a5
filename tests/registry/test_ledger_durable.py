"""A checkpoint is never kept or published before the entries it covers are on the disk
(``registry/ledger_durable.py``; found 2026-12-05: SQLite with ``synchronous=NORMAL`` lost
its last commits at a power cut, under a checkpoint already published and kept in
``ledger.checkpoint``, and the registry then refused to start)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry import ledger_durable
from LLM_Mesh.registry.ledger_mark import MARK_FILE
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import running

KEY = Ed25519PrivateKey.generate()


async def test_the_log_is_synced_before_the_checkpoint_is_kept_or_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``fsync`` in the process is seen (the mark's too), with each append and each
    checkpoint stored: the store's write-ahead log must be synced after the entries a
    checkpoint covers were appended and before the mark is written or the row stored."""
    db, home = tmp_path / "registry.db", tmp_path / "home"
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append("fsync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    async with running(home, store=SqlStore(f"sqlite:///{db}"), gateway_key=KEY) as h:  # type: ignore[arg-type]
        ledger, checkpointer = h.runtime.ledger, h.runtime.checkpointer
        assert ledger is not None and checkpointer is not None
        if h.runtime.settlement is not None:  # the settler's own syncs of the log: not these
            h.runtime.settlement.fsync = real_fsync
        store_it = ledger.add_checkpoint

        async def published(cp: Any, public_key: str) -> bool:
            events.append(f"publish {cp.tree_size}")
            return await store_it(cp, public_key)

        ledger.add_checkpoint = published  # type: ignore[method-assign]
        # the start's own entry (the pool's budget) signed first, by the loop or here: its
        # checkpoint, synced before this test's first "append" and published after it (or
        # all of it before), was counted as this test's (flake33: a slow fsync, 1 batch in
        # 1; a body begun 0.5 s late, 1 run in 1)
        await checkpointer.checkpoint()
        events.clear()
        for _ in range(3):
            # marked before the append (found in CI 2026-12-05: the checkpointer's own loop,
            # woken by the append, read the head after its commit and synced the log before
            # `append_one` returned, so a marker after it missed that sync)
            events.append("append")
            await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
            await checkpointer.checkpoint()
    rounds = [i for i, e in enumerate(events) if e.startswith("publish")]
    assert len(rounds) >= 3, events
    last_append = -1
    for at in rounds:
        appended = max(i for i, e in enumerate(events[:at]) if e == "append")
        if appended == last_append:  # the stop's checkpoint of nothing new
            continue
        last_append = appended
        between = events[appended:at]
        assert "fsync registry.db-wal" in between, events
        synced = between.index("fsync registry.db-wal")
        marked = [i for i, e in enumerate(between) if e.startswith(f"fsync {MARK_FILE}")]
        assert marked and synced < marked[0], events  # the log first, then the mark


def test_only_the_log_is_synced_never_the_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database file is never opened: closing a descriptor of it would drop SQLite's
    POSIX locks (``ledger_durable``'s docstring: a removed log, commits lost)."""
    db = tmp_path / "registry.db"
    assert ledger_durable.sync_log(db) is False  # no log: nothing to sync
    db.write_bytes(b"x")
    (tmp_path / "registry.db-wal").write_bytes(b"y")
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *a: Any, **k: Any) -> int:
        opened.append(Path(path).name)
        return int(real_open(path, *a, **k))

    monkeypatch.setattr(os, "open", spy)
    seen: list[int] = []
    assert ledger_durable.sync_log(db, seen.append) is True
    assert opened == ["registry.db-wal"] and len(seen) == 1


async def test_a_failed_sync_keeps_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's ``fsync`` failing (EIO: a disk going bad) stops the checkpoint: the mark
    and the store's checkpoints stay as they were, and the next round signs it once the
    disk takes it."""
    db, home = tmp_path / "registry.db", tmp_path / "home"
    async with running(home, store=SqlStore(f"sqlite:///{db}"), gateway_key=KEY) as h:  # type: ignore[arg-type]
        ledger, checkpointer = h.runtime.ledger, h.runtime.checkpointer
        assert ledger is not None and checkpointer is not None
        await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
        await checkpointer.checkpoint()
        kept = (home / MARK_FILE).read_bytes()
        before = await ledger.latest_checkpoint()
        await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
        real_fsync = os.fsync

        def failing(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith("-wal"):
                raise OSError(5, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(OSError):
            await checkpointer.checkpoint()
        assert (home / MARK_FILE).read_bytes() == kept
        assert await ledger.latest_checkpoint() == before
        monkeypatch.setattr(os, "fsync", real_fsync)
        cp = await checkpointer.checkpoint()
        assert cp is not None and cp.tree_size == (await ledger.head())[0]


async def test_the_log_is_synced_once_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpointer's ``durable`` step syncs the log after reading the head it signs;
    the mark it then writes covers no entry more, so ``MarkFile.keep`` does not sync the
    log again (found 2026-12-05: two ``fsync``s of ``registry.db-wal`` a checkpoint). The
    mark itself is still written whole and synced."""
    db, home = tmp_path / "registry.db", tmp_path / "home"
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    async with running(home, store=SqlStore(f"sqlite:///{db}"), gateway_key=KEY) as h:  # type: ignore[arg-type]
        ledger, checkpointer = h.runtime.ledger, h.runtime.checkpointer
        assert ledger is not None and checkpointer is not None
        if h.runtime.settlement is not None:  # the settler's own syncs of the log: not these
            h.runtime.settlement.fsync = real_fsync
        await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
        await checkpointer.stop()  # its loop off (woken by the first append): signed by hand
        for _ in range(2):
            await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
            monkeypatch.setattr(os, "fsync", fsync)
            cp = await checkpointer.checkpoint()
            monkeypatch.setattr(os, "fsync", real_fsync)
            assert cp is not None and cp.tree_size == (await ledger.head())[0]
            assert synced.count("registry.db-wal") == 1, synced  # before the fix: 2
            assert any(name.startswith(MARK_FILE) for name in synced), synced
            synced.clear()
