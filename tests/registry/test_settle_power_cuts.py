"""Settlement cut off at every step boundary (``registry/settle_durable.py``): a power cut
(the store's files as its last ``fsync`` left them, or with some of the commits since: the
kernel may have written them back; the home as it is) and a kill (the store as committed),
each at every point where the disk or the home changes, then a restart on that home: nothing
promised lost, nothing paid twice (``crash_books.books``). Found 2026-12-05 with it: a
journalled answer whose reservation the cut took was unpaid; a crash inside the recovery of
a journal held its answer until ``holder_ttl_s``.

One gateway's day, rounds run by hand (no timing): three requests reserved; ``r1``'s answer
written while the database is away (journalled), then written again; ``r2`` answered and the
settler's round (settle, sync); ``r3`` answered; the next UTC day's upkeep round (the journal
dropped after a sync, the pool's top-up); a last settler round. Each change is recorded as
it happens: the store's files at each sync ("on the disk") and as they are ("committed"),
the home's files, the answers released so far.

What is promised at a cut: after a kill, every answer released; after a power cut, every
answer journalled (its journal is synced before it is released) and every answer released
before the last sync (the limit stated in docs/security.md: one released in the last round
before the cut is lost with its reservation).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.registry import settle_journal, settle_upkeep
from LLM_Mesh.registry.settle_db import Answer
from LLM_Mesh.registry.settle_ledger import balance
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.crash_books import books, crash, ledger_of
from tests.registry.test_settle_durable import A1, GRANT, T0, USER, E
from tests.registry.test_settle_outage import Away, _states, _until

BUDGET = 50_000
DAY_S = 86_400.0
A2 = Answer("r2", USER, "m", E, A1.parts, "cc" * 32)
A3 = Answer("r3", USER, "m", E, A1.parts, "dd" * 32)
ANSWERS = {"r1": A1, "r2": A2, "r3": A3}
DB_FILES = ("registry.db", "registry.db-wal")

Files = dict[str, bytes]


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02, 0.05, 0.1))


def _read(folder: Path, names: tuple[str, ...] | None = None) -> Files:
    paths = [folder / n for n in names] if names else sorted(folder.iterdir())
    return {p.name: p.read_bytes() for p in paths if p.is_file()}


@dataclass(frozen=True)
class Point:
    what: str
    synced: Files  # the store on the disk: its files at the last sync
    committed: Files  # the store as committed
    home: Files
    journalled: frozenset[str]
    released: frozenset[str]
    durable: frozenset[str]  # released before the last sync
    since: tuple[Files, ...]  # the store at each point since the last sync, as it changed


class Timeline:
    """Each change of the disk or the home, recorded when it happens."""

    def __init__(self, root: Path) -> None:
        self.db, self.home = root / "db", root / "home"
        self.db.mkdir(parents=True)
        self.home.mkdir()
        self.points: list[Point] = []
        self.synced: Files = {}
        self.journalled: set[str] = set()
        self.released: list[str] = []
        self.durable: frozenset[str] = frozenset()
        self.since: list[Files] = []

    def fsync(self, fd: int) -> None:
        os.fsync(fd)
        self.sync("sync")

    def sync(self, what: str) -> None:
        self.synced = _read(self.db, DB_FILES)
        self.durable = frozenset(self.released)
        self.since = []
        self.point(what)

    def point(self, what: str) -> None:
        committed = _read(self.db, DB_FILES)
        if committed != (self.since[-1] if self.since else self.synced):
            self.since.append(committed)
        self.points.append(
            Point(
                what,
                self.synced,
                committed,
                _read(self.home),
                frozenset(self.journalled),
                frozenset(self.released),
                self.durable,
                tuple(self.since),
            )
        )

    def release(self, key: str) -> None:
        self.released.append(key)
        self.point(f"{key} released")


def _record_home(monkeypatch: pytest.MonkeyPatch, tl: Timeline) -> None:
    add, remove = settle_journal.OwnJournal.add, settle_journal.OwnJournal.remove

    def recorded_add(self: Any, *us: Any) -> None:
        add(self, *us)
        tl.journalled.update(u.answer.key for u in us)
        tl.point("journal written")

    def recorded_remove(self: Any) -> None:
        kept = self.kept
        remove(self)
        if kept:
            tl.point("journal removed")

    monkeypatch.setattr(settle_journal.OwnJournal, "add", recorded_add)
    monkeypatch.setattr(settle_journal.OwnJournal, "remove", recorded_remove)


def _gateway(store: SqlStore, home: Path, clock: list[float], lease: int = 0) -> Settlement:
    """Rounds by hand; a holder silent for an hour is dead (never in a test's time)."""
    return Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=BUDGET, wall_clock=lambda: clock[0],
        settle_interval_s=3600.0, beat_s=3600.0, holder_ttl_s=3600.0, home=home,
        lease_estimates=lease,
    )  # fmt: skip


async def _a_day(tl: Timeline, monkeypatch: pytest.MonkeyPatch, lease: int) -> None:
    """The gateway's day (module docstring), every change recorded in ``tl``."""
    clock = [T0]
    store = SqlStore(f"sqlite:///{tl.db / 'registry.db'}")
    await store.open()
    try:
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
        gw = _gateway(store, tl.home, clock, lease)
        gw.fsync = tl.fsync
        await gw.start()
        tl.sync("started")  # what the start wrote, on the disk (a checkpoint of the log)
        _record_home(monkeypatch, tl)
        try:
            for a in ANSWERS.values():
                assert (await gw.reserve(a.key, USER, "m", E)).ok
            tl.point("reserved")
            away = Away(gw, monkeypatch)
            away.away = True
            with pytest.raises(ConnectionError):
                await gw.answer(A1)  # released all the same
            tl.release("r1")
            away.away = False

            async def written() -> bool:
                await gw.flush()
                return (await _states(store)).get("r1") == "settled"

            assert await _until(written)
            tl.point("r1 written and settled")
            await gw.answer(A2)
            tl.release("r2")
            await gw._settle_round()
            await gw.answer(A3)
            tl.release("r3")
            clock[0] = T0 + DAY_S
            await gw.upkeep()  # the journal dropped after a sync; the next day's top-up
            tl.point("upkeep")
            await gw._settle_round()
            tl.point("end")
        finally:
            monkeypatch.undo()
            await crash(gw)
    finally:
        await store.close()


def _record_recovery(monkeypatch: pytest.MonkeyPatch, tl: Timeline) -> None:
    """The points of a restart's recovery: each answer recorded from a dead holder's journal,
    the journals removed, each settle."""

    def after(name: str) -> None:
        real = getattr(settle_upkeep, name)

        async def recorded(*args: Any) -> Any:
            done = await real(*args)
            tl.point(name)
            return done

        monkeypatch.setattr(settle_upkeep, name, recorded)

    for name in ("revive", "spend_again", "settle"):
        after(name)
    real_claimed = settle_upkeep.claimed

    @contextlib.contextmanager
    def claimed(*args: Any) -> Iterator[Any]:
        with real_claimed(*args) as found:
            yield found
        tl.point("journals claimed, removed")

    monkeypatch.setattr(settle_upkeep, "claimed", claimed)


async def _restart(
    root: Path,
    db: Files,
    home: Files,
    tl: Timeline | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> SqlStore:
    """A restart on ``db`` and ``home`` (in ``root``), stopped cleanly; with ``tl``, every
    point of its recovery recorded there (``tl.synced``: ``db``, on the disk already)."""
    for folder, files in ((root / "db", db), (root / "home", home)):
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    store = SqlStore(f"sqlite:///{root / 'db' / 'registry.db'}")
    await store.open()
    again = _gateway(store, root / "home", [T0 + DAY_S])
    if tl is not None and monkeypatch is not None:
        tl.synced = dict(db)
        again.fsync = tl.fsync
        _record_recovery(monkeypatch, tl)
        _record_home(monkeypatch, tl)
    try:
        await again.start()
        await again.stop()
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return store


async def _check(root: Path, db: Files, home: Files, promised: frozenset[str], where: str) -> None:
    store = await _restart(root, db, home)
    try:
        try:
            states = await books(store, ANSWERS, promised, grant=GRANT, payer=USER)
        except AssertionError as e:
            raise AssertionError(f"{where}: {e}") from e
        assert await balance(store.engine, POOL) == (BUDGET, 0), where
        async with store.engine.connect() as conn:
            days = (await conn.execute(text("SELECT day FROM pool_days"))).all()
        assert sorted(str(d[0]) for d in days) == ["2026-12-01", "2026-12-02"], where
        assert not list((root / "home").glob("settlement.unwritten*")), (where, states)
    finally:
        await store.close()
    shutil.rmtree(root)


def _cuts(p: Point) -> list[tuple[str, Files, frozenset[str]]]:
    """A power cut leaves the store as its last sync did, or with some of the commits since
    (the kernel wrote them back meanwhile: a prefix of the log's frames); a kill, as
    committed."""
    promised = p.journalled | p.durable
    cuts = [("power cut", p.synced, promised)]
    cuts += [(f"power cut +{n}", db, promised) for n, db in enumerate(p.since[:-1], 1)]
    return [*cuts, ("kill", p.committed, p.released)]


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
async def test_a_cut_at_any_step_loses_nothing_promised_and_pays_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lease: int
) -> None:
    """Each point of the day (module docstring), cut by a power cut and by a kill, then
    restarted: the books hold. Before the fix (``reserve``): the power cut just after the
    journal was written (the reservation not synced yet) left `r1 delivered, row None`."""
    tl = Timeline(tmp_path / "day")
    await _a_day(tl, monkeypatch, lease)
    whats = [p.what for p in tl.points]
    assert whats.count("journal written") == 1 and whats.count("journal removed") == 1, whats
    for n, p in enumerate(tl.points):
        for cut, db, promised in _cuts(p):
            where = f"{cut} after {p.what} (point {n}: {whats})"
            await _check(tmp_path / f"{n}-{cut.replace(' ', '-')}", db, p.home, promised, where)


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
async def test_a_cut_during_the_recovery_of_a_journal_loses_nothing_and_pays_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lease: int
) -> None:
    """The day cut just after ``r1``'s journal was written (a power cut: the reservation
    lost; a kill: its row pending); the restart's recovery of that journal (the answer
    recorded, the store synced, the journal removed, the answer settled) cut in turn at each
    of its points, then restarted again: ``r1`` paid once."""
    tl = Timeline(tmp_path / "day")
    await _a_day(tl, monkeypatch, lease)
    [p] = [p for p in tl.points if p.what == "journal written"]
    promised = p.journalled  # released right after: its journal promises it
    assert promised == {"r1"}
    for cut, db, _ in _cuts(p):
        rec = Timeline(tmp_path / f"{cut.replace(' ', '-')}-recovery")
        store = await _restart(rec.db.parent, db, p.home, rec, monkeypatch)
        await store.close()
        whats = [q.what for q in rec.points]
        assert "journals claimed, removed" in whats and "sync" in whats, whats
        for n, q in enumerate(rec.points):
            for cut2, db2, _ in _cuts(q):
                where = f"{cut} after the journal, then {cut2} after {q.what} ({n}: {whats})"
                root = tmp_path / f"{cut}-{n}-{cut2}".replace(" ", "-")
                await _check(root, db2, q.home, promised, where)


async def test_a_dead_holders_journalled_lease_answer_is_recorded_from_its_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payer's balance: half leased by a gateway (its answer admitted from the lease, its
    write failed: journalled), the other half reserved by another gateway's requests in
    flight; the first is killed and restarted on its home. Its recovery records the answer
    from the journal: the lease that admitted it must be released first, or the payer's
    available balance (0) does not cover it. Before the fix: released after, the answer
    unpaid (`r1 delivered, row None`) although its own lease held its estimate."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    home, other_home = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    other_home.mkdir()
    grant = 8 * E
    try:
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, grant))
        gw = _gateway(store, home, [T0], lease=4)
        await gw.start()
        other = _gateway(store, other_home, [T0])
        await other.start()
        try:
            assert (await gw.reserve("r1", USER, "m", E)).ok  # a lease of 4 estimates
            for n in range(4):  # the rest of the balance, reserved by the other gateway
                assert (await other.reserve(f"o{n}", USER, "m", E)).ok
            assert (await balance(store.engine, USER)) == (grant, grant)
            Away(gw, monkeypatch).away = True
            with pytest.raises(ConnectionError):
                await gw.answer(A1)  # released all the same: journalled
        finally:
            monkeypatch.undo()
            await crash(gw)
        again = _gateway(store, home, [T0])
        await again.start()  # recovers its predecessor, journal included
        await again.stop()
        await other.stop()  # its requests never answered: voided
        await books(store, {"r1": A1}, ["r1"], grant=grant, payer=USER)
    finally:
        await store.close()
