"""Each process on a home keeps its own journal of answers not written
(``registry/settle_journal.py``), replayed by whoever recovers it on that home.

Found 2026-12-05: only the process holding the home's ``settlement.lock`` journalled; under
``registry serve --workers N`` (replicas sharing one home) a worker other than the lock's
holder, killed while the database was away with an answer released whose write failed,
left nothing behind: recovery lapsed its row, the operator was never paid and the client's
receipt matched no ledger entry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry import settle_journal
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_journal import OwnJournal, Unwritten, claimed, dead_journals
from LLM_Mesh.registry.store import SqlStore
from tests.registry.crash_books import books, crash, journals, ledger_of, silence
from tests.registry.test_settle_outage import (  # noqa: F401 - the fixture
    GRANT,
    OP_A,
    USER,
    Away,
    E,
    _quick_retries,
    _settlement,
)


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
@pytest.mark.parametrize("found_by", ["heartbeat", "journal"])
async def test_a_worker_killed_with_an_answer_not_written_is_paid(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lease: int, found_by: str
) -> None:
    """Two workers on one home; the second (not the lock's holder) releases an answer whose
    write failed and is killed; a worker started on the home (or, by its silent heartbeat,
    the first) recovers it: the answer is paid once."""
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    first = _settlement(store, lease, home=tmp_path)
    await first.start()  # holds settlement.lock
    second = _settlement(store, lease, home=tmp_path)
    await second.start()  # the lock held: a worker beside it
    a = Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 4_000, 200),), "aa" * 32)
    try:
        assert (await second.reserve("r1", USER, "m", E)).ok
        Away(second, monkeypatch).away = True
        with pytest.raises(ConnectionError):
            await second.answer(a)  # released all the same
    finally:
        monkeypatch.undo()
        await crash(second)
    try:
        if found_by == "heartbeat":  # its heartbeat silent: the first worker's upkeep
            await silence(store, second.holder)
            await first.recover()
        else:  # a worker restarted on the home (the supervisor's): at its start
            third = _settlement(store, lease, home=tmp_path)
            await third.start()
            await third.stop()
    finally:
        await first.stop()
    await books(store, {"r1": a}, ["r1"], grant=GRANT, payer=USER)
    assert not journals(tmp_path)
    again = _settlement(store, lease, home=tmp_path)  # nothing paid again
    await again.start()
    await again.stop()
    await books(store, {"r1": a}, ["r1"], grant=GRANT, payer=USER)


def _u(holder: str) -> Unwritten:
    return Unwritten(holder, Answer("k", USER, "m", 1, (PaidPart("n", OP_A, 1, 0),), None), False)


def test_a_live_writers_journal_is_never_claimed(tmp_path: Path) -> None:
    """A journal whose writer lives (its lock held) is neither dead nor claimed; once the
    writer is gone it is, once (the second claim finds nothing)."""
    live = OwnJournal(tmp_path, "h-aaaa")
    live.add(_u("h-aaaa"))
    assert dead_journals(tmp_path, "h-me") == []
    with claimed(tmp_path, ["h-aaaa"], "h-me") as found:
        assert found == []
    live.abandon()  # the process killed: the file stays, unlocked
    assert dead_journals(tmp_path, "h-me") == ["h-aaaa"]
    with claimed(tmp_path, ["h-aaaa"], "h-me") as found:
        assert [u.holder for u in found] == ["h-aaaa"]
    with claimed(tmp_path, ["h-aaaa"], "h-me") as found:
        assert found == []
    assert not list(tmp_path.glob(settle_journal.NAME + "*"))


def test_the_older_single_journal_is_still_read(tmp_path: Path) -> None:
    (tmp_path / settle_journal.NAME).write_text(
        settle_journal._line(_u("h-0001")) + "\n" + settle_journal._line(_u("h-0002")) + "\n"
    )
    with claimed(tmp_path, ["h-0001"], "h-me") as found:
        assert [u.holder for u in found] == ["h-0001"]
    left = (tmp_path / settle_journal.NAME).read_text()
    assert "h-0002" in left and "h-0001" not in left
