"""Crash tests' shared parts: a gateway process killed, and the books checked after recovery.

:class:`Killed` is raised at a named point by a test's monkeypatch (``kill_after``,
``kill_inside``); :func:`crash` then drops the :class:`Settlement` as a killed process is
dropped (no flush, no voids, no leases given back, its connections closed: an open
transaction rolls back, as the database does for a client that died); another
:class:`Settlement` (or a restart on the same home) recovers it.

:func:`books` checks what must hold once every holder is gone or recovered ("nothing lost,
nothing paid twice"):

- the ledger verifies (``ledger verify``'s audit: the entries replayed equal the stored
  ``balances``; a checkpoint signed now covers them);
- the accounts sum to zero (every credit has its debit);
- nothing reserved, no lease row, no row ``pending`` or ``answered`` (nothing held for ever);
- each request paid has exactly one set of entries: its transfers, once, each carrying the
  receipt hash its row (and its receipt) carries; a request not paid has none;
- the requests the caller says the client got an answer for are paid, at their totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.settle_db import Answer
from LLM_Mesh.registry.settle_ledger import transfers
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore

__all__ = ["Killed", "books", "crash", "ledger_of", "silence"]

ORIGIN = "llm-mesh.test/crash"


class Killed(Exception):
    """The process was killed here: nothing after this point runs in it."""


def ledger_of(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


async def crash(st: Settlement) -> None:
    """Drop ``st`` as a killed process: no flush, no voids, no leases given back, no write
    due again, its connections closed (what was not committed rolls back) and its home
    lock freed."""
    st._started = False
    for task in [*st._tasks, st._writer, *st._checking]:
        if task is not None:
            task.cancel()
    for due in st._again_at.values():  # writes due again: a killed process writes nothing
        due.cancel()
    st._again_at.clear()
    await st.db.close()
    if st._worker is not None:
        await st._worker.stop()
    if st._home_lock is not None:
        st._home_lock.release()
    if st._own_journal is not None:  # its journal's lock goes with the process; the file stays
        st._own_journal.abandon()


def journals(home: Path) -> list[Path]:
    """The journals of unwritten answers left in ``home`` (``registry/settle_journal.py``)."""
    return sorted(home.glob("settlement.unwritten*"))


async def silence(store: SqlStore, *holders: str) -> None:
    """Make the holders' last heartbeats two hours old (dead for everyone)."""
    async with store.engine.begin() as conn:
        for holder in holders:
            await conn.execute(
                text("UPDATE settle_holders SET beat_ms = beat_ms - 7200000 WHERE holder = :h"),
                {"h": holder},
            )


async def _rows(store: SqlStore, sql: str) -> list[Any]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def books(
    store: SqlStore,
    answers: Mapping[str, Answer],
    delivered: Collection[str],
    *,
    grant: int,
    payer: str,
) -> dict[str, str]:
    """Check the books (module docstring); the state of each request's part 0 row.
    ``answers``: every answer the gateway made (key → its :class:`Answer`, operators
    named); ``delivered``: the keys whose answer was released to the client."""
    ledger = ledger_of(store)
    await Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN).checkpoint()
    report = await audit(StoreSource(ledger, ORIGIN))
    assert report.ok, report.findings
    sums = await ledger.balances()
    assert sum(sums.values()) == 0, sums
    held = await _rows(store, "SELECT account, reserved FROM balances WHERE reserved <> 0")
    assert held == [], f"held for ever: {held}"
    leases = await _rows(store, "SELECT holder, payer, amount FROM settle_leases")
    assert leases == [], f"leases left: {leases}"
    open_rows = await _rows(
        store, "SELECT request_id, state FROM settlements WHERE state IN ('pending', 'answered')"
    )
    assert open_rows == [], f"rows in flight with no holder alive: {open_rows}"
    states = {
        str(r[0]): str(r[1])
        for r in await _rows(store, "SELECT request_id, state FROM settlements WHERE part = 0")
    }
    entries, _ = await ledger.entries(-1, 100_000)
    by_key: dict[str, Counter[tuple[str, str, str, int, str | None]]] = {}
    for e in entries:
        if e.request_id in answers:
            got = by_key.setdefault(e.request_id, Counter())
            got[(e.kind, e.from_account, e.to_account, e.amount, e.receipt_hash)] += 1
    paid = 0
    for key, a in answers.items():
        want = Counter(
            (t.kind, t.from_account, t.to_account, t.amount, t.receipt_hash) for t in transfers(a)
        )
        got = by_key.get(key, Counter())
        if states.get(key) == "settled":
            assert got == want, f"{key}: entries {got}, want exactly {want}"
            paid += a.total
        else:
            assert not got, f"{key} ({states.get(key)}) has entries {got}"
        if key in delivered:
            assert states.get(key) == "settled", f"{key} delivered, row {states.get(key)}"
    balance = sums.get(payer, 0)
    assert balance == grant - paid, (balance, grant, paid)
    return states
