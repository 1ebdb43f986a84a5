"""A registry restarted on a database restored from an older backup (found 2026-12-05).

Before: it started and served on the shorter ledger: the paid requests and earnings after
the backup were gone from the balances, and its next checkpoints signed a second history
at sizes it had already published (witnesses refuse it, verifiers report a split view).
Now it keeps the newest checkpoint beside ``registry.key`` (``ledger.checkpoint``) and
refuses to start on a store behind it, unless ``--accept-ledger-rollback``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.errors import LedgerBehind, StoreUnavailable
from LLM_Mesh.registry.ledger_mark import MARK_FILE, store_behind
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import running

KEY = Ed25519PrivateKey.generate()


async def serve_and_pay(home: Path, url: str, payments: int, **kw: object) -> tuple[int, int]:
    """Start a registry on ``url``, write ``payments`` grants, stop it (it signs at stop);
    the tree's size and the user's balance it left."""
    async with running(home, store=SqlStore(url), gateway_key=KEY, **kw) as h:  # type: ignore[arg-type]
        ledger = h.runtime.ledger
        assert ledger is not None
        for _ in range(payments):
            await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
            await h.runtime.checkpointer.checkpoint()  # type: ignore[union-attr]
        size, _ = await ledger.head()
        balance = (await ledger.balances()).get("user:carol", 0)
    return size, balance


async def test_a_restored_older_backup_is_refused_not_forked(tmp_path: Path) -> None:
    db, backup = tmp_path / "registry.db", tmp_path / "backup.db"
    url, home = f"sqlite:///{db}", tmp_path / "home"
    size1, _ = await serve_and_pay(home, url, 3)
    shutil.copy(db, backup)  # the backup (a stopped registry: one consistent file)
    size2, paid = await serve_and_pay(home, url, 5)
    assert size2 > size1 and paid == 80
    kept = json.loads((home / MARK_FILE).read_text())
    assert kept["tree_size"] == size2
    shutil.copy(backup, db)  # the restore
    with pytest.raises(LedgerBehind) as refused:
        await serve_and_pay(home, url, 1)
    said = str(refused.value)
    assert (
        f"{size1} entries" in said
        and f"size {size2}" in said
        and "--accept-ledger-rollback" in said
    )
    # nothing was written on the short tree: the refusal came before any entry
    shutil.copy(db, tmp_path / "after.db")
    assert (tmp_path / "after.db").read_bytes() == backup.read_bytes()
    # registry serve says it before serving, in one line (its own engine)
    settings = Settings(home=home, database_url=url)
    assert await store_behind(settings) == said


async def test_a_restored_backup_grown_past_the_mark_is_refused(tmp_path: Path) -> None:
    """Another history as long as the published one (the backup served again elsewhere, or
    another network's database) is no more this ledger than a shorter one."""
    db, backup = tmp_path / "registry.db", tmp_path / "backup.db"
    url = f"sqlite:///{db}"
    await serve_and_pay(tmp_path / "home", url, 1)
    shutil.copy(db, backup)
    await serve_and_pay(tmp_path / "home", url, 2)
    shutil.copy(backup, db)
    await serve_and_pay(tmp_path / "other-home", url, 4)  # grew again, as another registry
    with pytest.raises(LedgerBehind, match="another history"):
        await serve_and_pay(tmp_path / "home", url, 1)


async def test_the_override_serves_keeps_the_evidence_and_marks_again(tmp_path: Path) -> None:
    db, backup = tmp_path / "registry.db", tmp_path / "backup.db"
    url, home = f"sqlite:///{db}", tmp_path / "home"
    await serve_and_pay(home, url, 1)
    shutil.copy(db, backup)
    size2, _ = await serve_and_pay(home, url, 3)
    shutil.copy(backup, db)
    size3, _ = await serve_and_pay(home, url, 1, accept_ledger_rollback=True)
    (aside,) = home.glob(f"{MARK_FILE}.rolled-back-*")
    assert json.loads(aside.read_text())["tree_size"] == size2
    assert json.loads((home / MARK_FILE).read_text())["tree_size"] == size3 < size2
    await serve_and_pay(home, url, 1)  # the next start, without the flag, serves


async def test_a_fresh_home_and_a_memory_store_start_as_before(tmp_path: Path) -> None:
    """Zero-config use: no mark yet, or a scratch ledger (no mark ever)."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    size, balance = await serve_and_pay(tmp_path / "home", url, 1)
    assert balance == 10
    assert json.loads((tmp_path / "home" / MARK_FILE).read_text())["tree_size"] == size
    async with running(tmp_path / "mem"):
        pass
    assert not (tmp_path / "mem" / MARK_FILE).exists()


async def test_an_unreadable_mark_is_refused(tmp_path: Path) -> None:
    url, home = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "home"
    await serve_and_pay(home, url, 1)
    (home / MARK_FILE).write_text("{garbled")
    with pytest.raises(LedgerBehind, match="not a kept checkpoint"):
        await serve_and_pay(home, url, 1)


@pytest.mark.parametrize("damage", [b"", b"{garbled", b"\xff\x00" * 300])
async def test_a_damaged_mark_is_refused_saying_what_to_do(tmp_path: Path, damage: bytes) -> None:
    """A mark that is empty, cut or not text (a damaged disk, an edit: a crash cannot tear it,
    it is replaced whole) stops the start, and the refusal names the file and how to
    recover (found 2026-12-05: it said only to move the file aside "if the ledger is known
    to be whole", not how to know it); the file is left as it is, the store untouched."""
    url, home = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "home"
    await serve_and_pay(home, url, 2)
    (home / MARK_FILE).write_bytes(damage)
    for refuse in (lambda: serve_and_pay(home, url, 1),
                   lambda: store_behind(Settings(home=home, database_url=url))):  # fmt: skip
        with pytest.raises(LedgerBehind) as refused:
            await refuse()
        said = str(refused.value)
        assert str(home / MARK_FILE) in said, said
        assert "ledger verify" in said and "--compare" in said, said
        assert "move this file aside" in said and "--accept-ledger-rollback" in said, said
    assert (home / MARK_FILE).read_bytes() == damage


async def _copy_database(source: str, target: str) -> None:
    from tests.conftest import _admin_connect, _drop_database

    await _drop_database(target)  # its connections ended too
    conn = await _admin_connect()
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            source,
        )
        await conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_on_postgresql_a_restored_backup_is_refused(
    pg_database_url: str, tmp_path: Path
) -> None:
    """The replicas' store: a copy of the database taken as the backup, the database put
    back from it after more paid requests; every replica's home keeps its own mark."""
    from sqlalchemy.engine import make_url

    from tests.conftest import _drop_database

    name = make_url(pg_database_url).database
    assert name is not None
    backup = f"{name}_backup"
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    await serve_and_pay(r1, pg_database_url, 2)
    await _copy_database(name, backup)
    try:
        size2, _ = await serve_and_pay(r2, pg_database_url, 3)  # the other replica signed
        await serve_and_pay(r1, pg_database_url, 0)  # r1 sees the store's newest at start
        await _copy_database(backup, name)
        for home in (r1, r2):
            with pytest.raises(LedgerBehind, match=f"size {size2}"):
                await serve_and_pay(home, pg_database_url, 1)
    finally:
        await _drop_database(backup)


async def test_a_local_mesh_whose_database_was_deleted_starts_over(tmp_path: Path) -> None:
    """`llm-mesh up`/`demo` with its registry.db deleted: a new local ledger, the old mark
    set aside (zero-config use); a registry served on its own is refused the same store,
    and so is a local mesh on a restored older copy (not empty)."""
    db, home = tmp_path / "registry.db", tmp_path / "home"
    url = f"sqlite:///{db}"
    await serve_and_pay(home, url, 2)
    db.unlink()
    with pytest.raises(LedgerBehind, match="0 entries"):
        await serve_and_pay(home, url, 1)
    db.unlink(missing_ok=True)
    assert await store_behind(Settings(home=home, database_url=url, local_mesh="up")) is None
    await serve_and_pay(home, url, 1, local_mesh="up")
    assert len(list(home.glob(f"{MARK_FILE}.rolled-back-*"))) == 1
    backup = tmp_path / "backup.db"
    shutil.copy(db, backup)
    await serve_and_pay(home, url, 3, local_mesh="demo")
    shutil.copy(backup, db)
    with pytest.raises(LedgerBehind):
        await serve_and_pay(home, url, 1, local_mesh="demo")


async def test_each_checkpoint_is_kept_before_it_is_published(tmp_path: Path) -> None:
    """A crash right after a checkpoint is stored (served, pushed to witnesses) must not
    leave a mark behind it: the file holds the size when the store is asked to keep it."""
    url, home = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "home"
    seen: list[tuple[int, int]] = []
    async with running(home, store=SqlStore(url), gateway_key=KEY) as h:  # type: ignore[arg-type]
        ledger, checkpointer = h.runtime.ledger, h.runtime.checkpointer
        assert ledger is not None and checkpointer is not None
        store_it = ledger.add_checkpoint

        async def published(cp: Any, public_key: str) -> bool:
            kept = json.loads((home / MARK_FILE).read_text())["tree_size"]
            seen.append((cp.tree_size, kept))
            return await store_it(cp, public_key)

        ledger.add_checkpoint = published  # type: ignore[method-assign]
        for _ in range(3):
            await ledger.append_one(Transfer("grant", MINT, "user:carol", 10))
            await checkpointer.checkpoint()
    assert len(seen) >= 3 and all(size == kept for size, kept in seen), seen


async def test_the_override_gets_past_an_unreadable_mark(tmp_path: Path) -> None:
    """Found 2026-12-05: a mark that cannot be read (a disk error, a bad edit, a copy cut
    short) refused every start, ``--accept-ledger-rollback`` (the documented way out)
    included: the read raised before the override was looked at."""
    url, home = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "home"
    await serve_and_pay(home, url, 1)
    (home / MARK_FILE).write_text("{garbled")
    settings = Settings(home=home, database_url=url, accept_ledger_rollback=True)
    assert await store_behind(settings) is None  # registry serve's check lets it through
    size, _ = await serve_and_pay(home, url, 1, accept_ledger_rollback=True)
    (aside,) = home.glob(f"{MARK_FILE}.rolled-back-*")
    assert aside.read_text() == "{garbled"  # the evidence, as it was
    assert json.loads((home / MARK_FILE).read_text())["tree_size"] == size
    with pytest.raises(LedgerBehind, match="not a kept checkpoint"):  # without it: refused
        (home / MARK_FILE).write_text("{garbled")
        await store_behind(Settings(home=home, database_url=url))


def test_a_mark_not_written_leaves_no_temporary_file(tmp_path: Path, monkeypatch: Any) -> None:
    """Found 2026-12-05: a write that failed (a full disk) left
    ``ledger.checkpoint.<pid>.tmp`` behind, one per process, for ever."""
    from LLM_Mesh import secret_files
    from LLM_Mesh.registry import ledger_mark

    marks = ledger_mark.MarkFile(tmp_path / MARK_FILE)
    cp = {"origin": "o", "tree_size": 1, "root_hash": "00" * 32, "time_us": 1}

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(secret_files.os, "write", full)  # the write of its temporary file
    with pytest.raises(OSError):
        marks.keep(cp)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{MARK_FILE}.lock"]


async def test_two_workers_accepting_a_rollback_keep_the_evidence(tmp_path: Path) -> None:
    """Found 2026-12-05: ``--workers N --accept-ledger-rollback`` (the workers share a home)
    raced: both read the published mark, the first moved it aside and kept the store's
    checkpoint, then the second moved *that* to the same ``rolled-back-<second>`` name,
    over the evidence: the checkpoint the network must be told was lost was gone."""
    import asyncio

    from LLM_Mesh.registry.ledger_mark import ledger_guard
    from tests.registry.crash_books import ledger_of

    db, backup = tmp_path / "registry.db", tmp_path / "backup.db"
    url, home = f"sqlite:///{db}", tmp_path / "home"
    await serve_and_pay(home, url, 1)
    shutil.copy(db, backup)
    published, _ = await serve_and_pay(home, url, 3)
    shutil.copy(backup, db)
    settings = Settings(home=home, database_url=url, accept_ledger_rollback=True)
    store = SqlStore(url)
    await store.open()
    try:
        ledger, first_done = ledger_of(store), asyncio.Event()

        class Later:  # the second worker's store answers once the first worker is through
            async def head(self) -> Any:
                await first_done.wait()
                return await ledger.head()

            def __getattr__(self, name: str) -> Any:
                return getattr(ledger, name)

        second = asyncio.create_task(ledger_guard(Later(), settings, lambda: 1.8e9))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # it has read the published mark
        await ledger_guard(ledger, settings, lambda: 1.8e9)
        first_done.set()
        await second
    finally:
        await store.close()
    asides = list(home.glob(f"{MARK_FILE}.rolled-back-*"))
    sizes = sorted(json.loads(p.read_text())["tree_size"] for p in asides)
    assert published in sizes  # before the fix: overwritten by the store's own checkpoint


async def test_a_store_that_does_not_answer_at_start_is_not_taken_for_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05: any database error reading the ledger's head (SQLite's "database is
    locked" while another process writes, a connection lost) counted as an empty ledger:
    ``registry serve`` refused with "the database was restored from an older backup", and
    ``llm-mesh up`` took it for a deleted database and set the mark aside (served unchecked)."""
    from sqlalchemy.exc import OperationalError

    from LLM_Mesh.registry.ledger import SqlLedger
    from LLM_Mesh.registry.ledger_mark import ledger_guard
    from tests.registry.crash_books import ledger_of

    url, home = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "home"
    await serve_and_pay(home, url, 2)
    kept = (home / MARK_FILE).read_text()

    async def locked(self: SqlLedger) -> Any:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(SqlLedger, "head", locked)
    with pytest.raises(StoreUnavailable, match="database is locked"):  # before: "restored"
        await store_behind(Settings(home=home, database_url=url))  # one line, not a traceback
    store = SqlStore(url)
    await store.open()
    try:
        with pytest.raises(OperationalError):  # before: served, the mark set aside
            await ledger_guard(ledger_of(store), Settings(home=home, database_url=url,
                                                          local_mesh="up"))  # fmt: skip
    finally:
        await store.close()
    assert (home / MARK_FILE).read_text() == kept
    assert not list(home.glob(f"{MARK_FILE}.rolled-back-*"))


async def test_on_sqlite_the_entries_are_on_disk_before_their_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05: SQLite commits the ledger with ``synchronous=NORMAL`` (the WAL is
    not synced at each commit), while the mark is synced at once: a power loss (a laptop's
    battery, under ``llm-mesh up`` too) lost the last entries and kept a mark past them, and
    the registry refused every start after, naming a restored backup. The WAL is synced
    before each mark now: whatever the mark covers survives what the mark survives."""
    import os

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    url, home = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "home"
    await serve_and_pay(home, url, 2)
    marks = [i for i, p in enumerate(synced) if Path(p).name.startswith(f"{MARK_FILE}.")]
    assert marks, synced
    for i in marks:  # each mark written after the WAL was synced
        assert any(p.endswith("registry.db-wal") for p in synced[:i]), synced[: i + 1]


async def test_an_emptied_databases_refusal_says_how_to_start_over_on_purpose(
    tmp_path: Path,
) -> None:
    """Found 2026-12-05 (a new user's try): `registry serve` with its `registry.db`
    deleted to start over was refused with only a production's ways out (restore the
    newest state, or `--accept-ledger-rollback` and "tell the network"); the way
    docs/deploy.md gives for a new network on purpose (the checkpoint file goes with the
    database) was not said. Said now for an empty database, and it works; not for a restored
    backup that holds entries (there it would be the wrong advice)."""
    db, home = tmp_path / "registry.db", tmp_path / "home"
    url = f"sqlite:///{db}"
    await serve_and_pay(home, url, 2)
    backup = tmp_path / "backup.db"
    shutil.copy(db, backup)
    await serve_and_pay(home, url, 2)
    shutil.copy(backup, db)  # a restored older backup: entries in it
    said = await store_behind(Settings(home=home, database_url=url))  # registry serve's line
    assert said is not None and "on purpose" not in said, said
    db.unlink()  # deleted to start over
    said = await store_behind(Settings(home=home, database_url=url))
    assert said is not None and f"move {home / MARK_FILE} aside" in said, said
    assert "on purpose" in said
    with pytest.raises(LedgerBehind) as started:  # the start itself says the same
        await serve_and_pay(home, url, 1)
    assert str(started.value) == said
    (home / MARK_FILE).rename(tmp_path / "old.checkpoint")  # as said
    db.unlink(missing_ok=True)
    size, balance = await serve_and_pay(home, url, 1)
    assert size >= 1 and balance == 10
