"""A gateway killed at each named point of a request's life, then recovered: nothing lost,
nothing paid twice (SQLite file and PostgreSQL, reservation leases off and on).

The life of a request in settlement: its reservation (a ``pending`` row, or a lease taken),
its answer written (``answered``, or a lease's ``Spend``) before the answer is released, the
settler's ledger append (the guard flips the rows ``answered`` → ``settled`` and releases
what they reserved, in the entries' transaction), then the checkpoint that covers the
entries. The process is killed (``crash_books.Killed`` at the point, then
``crash_books.crash``) with three requests in flight, two of them answered (their answers
released: the client has them, and their receipts), and another process recovers it; the
recovery itself is killed at each of its steps and recovered by a third. Every time the books
must agree (``crash_books.books``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import ledger as ledger_module
from LLM_Mesh.registry import settle_sqlite, settle_upkeep
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.crash_books import Killed, books, crash, ledger_of, silence

USER = pseudonym("user", "key-crash")
OP_A, OP_B = operator_account("alice"), operator_account("bob")
T0 = 1_796_083_200.0
GRANT = 1_000_000
E = 10_000  # every request's estimate


def _settlement(store: SqlStore, lease: int, **kw: Any) -> Settlement:
    kw.setdefault("holder_ttl_s", 3600.0)
    return Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, lease_estimates=lease, lease_idle_s=3600.0,
        **kw,
    )  # fmt: skip


PART_1 = PaidPart("n1", OP_A, 1_000, 50)


def _answers() -> dict[str, Answer]:
    """Three requests: two answered (one by two nodes: a continued stream), one in flight."""
    return {
        "r1": Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 3_000, 150),), "aa" * 32),
        "r2": Answer("r2", USER, "m", E, (PART_1, PaidPart("n2", OP_B, 2_000, 100)), "bb" * 32),
        "r3": Answer("r3", USER, "m", E, (PaidPart("n2", OP_B, 500, 25),), "cc" * 32),
    }


async def _serve(s: Settlement, answers: dict[str, Answer], answered: int) -> list[str]:
    """Reserve every request, answer the first ``answered``; the keys delivered."""
    for key, a in answers.items():
        assert (await s.reserve(key, a.payer, a.model, a.estimate)).ok
    delivered = []
    for key in list(answers)[:answered]:
        assert await s.answer(answers[key])  # committed: the answer is released now
        delivered.append(key)
    return delivered


async def _started(store: SqlStore, lease: int, **kw: Any) -> tuple[dict[str, Answer], Settlement]:
    """The payer granted :data:`GRANT`, its three requests (:func:`_answers`, none reserved
    yet) and a started gateway's settlement."""
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    gw = _settlement(store, lease, **kw)
    await gw.start()
    return _answers(), gw


async def _recover(store: SqlStore, lease: int, *dead: Settlement) -> Settlement:
    """Another process recovers the dead; stopped cleanly (its own rows too)."""
    await silence(store, *(d.holder for d in dead))
    other = _settlement(store, lease)
    await other.start()  # recovers every dead holder at start
    await other.recover()  # nothing left: recovery is done once
    await other.stop()
    return other


def _kill_inside_appends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the settler inside its ledger transaction, after the guard flipped the rows
    and released their reservations, before the entries are written (both writers)."""

    def killed(*_a: Any, **_k: Any) -> Any:
        raise Killed("inside the ledger append")

    monkeypatch.setattr(settle_sqlite, "build_batch", killed)
    monkeypatch.setattr(ledger_module, "build_batch", killed)


def _kill_after_append(monkeypatch: pytest.MonkeyPatch, s: Settlement) -> None:
    """Kill the settler once its append committed, before anything else it does."""
    append = s._settle

    async def then_killed(batch: list[Answer]) -> int:
        await append(batch)
        raise Killed("after the ledger append committed")

    monkeypatch.setattr(s, "_settle", then_killed)


POINTS = ["reserved", "answered", "inside_append", "after_append", "settled"]


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
@pytest.mark.parametrize("point", POINTS)
async def test_a_gateway_killed_at_each_point_is_recovered_to_balanced_books(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, point: str, lease: int
) -> None:
    answers, gw = await _started(store, lease)
    delivered: list[str] = []
    try:
        if point == "reserved":
            await _serve(gw, answers, 0)
        else:
            delivered = await _serve(gw, answers, 2)
        if point == "inside_append":
            _kill_inside_appends(monkeypatch)
        elif point == "after_append":
            _kill_after_append(monkeypatch, gw)
        if point in ("inside_append", "after_append"):
            with pytest.raises(Killed):
                await gw.settle_now()
        elif point == "settled":
            assert await gw.settle_now() == 2
    finally:
        monkeypatch.undo()
        await crash(gw)
    await _recover(store, lease, gw)
    states = await books(store, answers, delivered, grant=GRANT, payer=USER)
    assert states.get("r3") in (None, "lapsed")  # in flight, never answered: not paid


RECOVERY_STEPS = ["void_pending", "release_leases", "forget"]


@pytest.mark.parametrize("step", RECOVERY_STEPS)
async def test_a_recovery_killed_at_each_step_is_finished_by_the_next(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The recovering process dies before ``step`` (the ones before it committed): a third
    process finishes both recoveries, each request paid once."""
    answers, gw = await _started(store, 4)
    delivered = await _serve(gw, answers, 2)
    await crash(gw)
    await silence(store, gw.holder)
    rescuer = _settlement(store, 4)

    async def killed(*_a: Any, **_k: Any) -> Any:
        raise Killed(f"before {step}")

    monkeypatch.setattr(settle_upkeep, step, killed)
    try:
        with pytest.raises(Killed):
            await rescuer.start()
    finally:
        monkeypatch.undo()
        if rescuer._db is not None:
            await rescuer.db.close()
    await _recover(store, 4, gw, rescuer)
    await books(store, answers, delivered, grant=GRANT, payer=USER)


async def test_a_restart_on_the_same_home_after_a_kill_mid_append_pays_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A lone registry (its heartbeat fresh) killed inside its settler's append, restarted
    on the same home: its predecessor is recovered at start, before it serves."""
    answers, gw = await _started(store, 4, home=tmp_path)
    delivered = await _serve(gw, answers, 2)
    _kill_inside_appends(monkeypatch)
    try:
        with pytest.raises(Killed):
            await gw.settle_now()
    finally:
        monkeypatch.undo()
        await crash(gw)
    again = _settlement(store, 4, home=tmp_path)
    await again.start()
    await again.stop()
    await books(store, answers, delivered, grant=GRANT, payer=USER)


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
async def test_a_live_holders_settler_and_anothers_recovery_of_it_pay_once(
    store: SqlStore, lease: int
) -> None:
    """The same answered requests settled by two processes at once: the gateway's own
    settler, and another replica that took it for dead (its heartbeat stalled) and
    recovers it; then once more by each, one after the other."""
    answers, gw = await _started(store, lease)
    other = _settlement(store, lease)
    await other.start()
    try:
        delivered = await _serve(gw, answers, 2)
        await silence(store, gw.holder)
        mine, (settled, _voided) = await asyncio.gather(gw.settle_now(), other.recover())
        assert mine + settled == 2, (mine, settled)
        gw._answered.extend(answers[k] for k in delivered)  # a settler's retry after all
        assert await gw.settle_now() == 0
        assert await other.recover() == (0, 0)
    finally:
        await other.stop()
        await gw.stop()
    await books(store, answers, delivered, grant=GRANT, payer=USER)


async def _terminate_backends(store: SqlStore) -> int:
    """``pg_terminate_backend`` of every connection to the store's database (a failover,
    an operator's kill): from an admin connection of its own."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(str(store.engine.url.render_as_string(hide_password=False)))
    admin = url.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
    finally:
        await conn.close()
    return len(rows)


async def _settled_within_a_retry(gw: Settlement) -> int:
    """The settler's next round, and one more if it failed: a pooled connection the drop
    closed while idle fails its first use (the settler's engine does not ping), and the
    round after it reconnects (the settler's own loop retries every 0.2 s)."""
    try:
        return await gw.settle_now()
    except Exception:
        return await gw.settle_now()


@pytest.mark.parametrize("when", ["inside_append", "after_append"])
async def test_connections_dropped_during_the_settlers_append_pay_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """PostgreSQL: every connection to the database terminated (``pg_terminate_backend``)
    inside the settler's ledger transaction (after the guard flipped the rows), or right
    after its commit: the settler's next round settles what was not, once; the hot path
    and the store reconnect; the books verify."""
    if store.dialect != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    answers, gw = await _started(store, 4)
    fired: list[int] = []
    try:
        delivered = await _serve(gw, answers, 2)
        if when == "inside_append":
            real = ledger_module._add_to_balances

            async def add(conn: Any, transfers: Any) -> None:
                if not fired:
                    fired.append(await _terminate_backends(store))
                await real(conn, transfers)

            monkeypatch.setattr(ledger_module, "_add_to_balances", add)
        else:
            real_append = ledger_module.SqlLedger.append

            async def append(self: Any, transfers: Any, **kw: Any) -> Any:
                out = await real_append(self, transfers, **kw)
                if not fired:
                    fired.append(await _terminate_backends(store))
                return out

            monkeypatch.setattr(ledger_module.SqlLedger, "append", append)
        try:
            first = await gw.settle_now()
        except Exception:  # the connection went with the transaction: the next round
            first = 0
        assert fired and fired[0] > 0
        monkeypatch.undo()
        assert first + await _settled_within_a_retry(gw) == 2
        assert await gw.settle_now() == 0
        assert await gw.answer(answers["r3"])  # the hot path reconnected
        assert await _settled_within_a_retry(gw) == 1
    finally:
        await gw.stop()
    await books(store, answers, [*delivered, "r3"], grant=GRANT, payer=USER)
