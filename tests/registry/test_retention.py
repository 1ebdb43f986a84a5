"""The pruners: the request log's (the cutoff, bounded batches, 0 keeps all, the app's
lifespan), the done-with settlements' (only settled or void rows, never in the earnings
window), the cut receipts', and the run they share (``_BatchPruner._prune_before``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.retention import DAY_S
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.retention import (
    CutReceiptPruner,
    RequestLogPruner,
    SettlementPruner,
    UnpaidPruner,
    prune_settlements,
)
from LLM_Mesh.registry.snapshot import load_nodes
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_cut_receipts import CutReceipt
from tests.registry.helpers import make_settings
from tests.registry.test_store import node

NOW = 1_800_000_000.0


def rec(i: int, age_s: float, node_id: str | None = "n1") -> RequestRecord:
    at = datetime.fromtimestamp(NOW - age_s, timezone.utc)
    return RequestRecord(f"r{i}", node_id, "m", False, "ok", None, 1, 2, 10.0, 1.0, 1, at)


def pruner(store: object, keep_days: int = 30, **kw: object) -> RequestLogPruner:
    return RequestLogPruner(
        store,  # type: ignore[arg-type]
        keep_days=keep_days,
        reward_period_s=3600,
        grace_s=10.0,
        wall_clock=lambda: NOW,
        sleep=_no_sleep,
        **kw,  # type: ignore[arg-type]
    )


async def _no_sleep(_s: float) -> None:
    return None


async def test_rows_older_than_keep_days_go_newer_stay() -> None:
    store = MemoryStore()
    old = [rec(i, 31 * DAY_S + i) for i in range(5)]
    new = [rec(10 + i, 29 * DAY_S + i) for i in range(3)]
    await store.record_requests(old + new)
    assert await pruner(store, batch=2).poll() == 5
    assert [r.request_id for r in store.requests] == [r.request_id for r in new]


async def test_a_run_stops_after_max_batches() -> None:
    store = MemoryStore()
    await store.record_requests([rec(i, 40 * DAY_S) for i in range(10)])
    p = pruner(store, batch=3, max_batches=2)
    assert await p.poll() == 6  # two statements of three; the rest waits for the next run
    assert len(store.requests) == 4
    assert await p.poll() == 4  # 3 + 1: a short batch ends the run


class Recording(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[datetime, int]] = []

    async def prune_requests(self, before: datetime, limit: int) -> int:
        self.calls.append((before, limit))
        return await super().prune_requests(before, limit)


async def test_each_statement_is_bounded_by_the_batch() -> None:
    store = Recording()
    await store.record_requests([rec(i, 40 * DAY_S) for i in range(25)])
    assert await pruner(store, batch=10).poll() == 25
    cutoff = datetime.fromtimestamp(NOW - 30 * DAY_S, timezone.utc)
    assert store.calls == [(cutoff, 10)] * 3


async def test_keep_days_zero_keeps_everything() -> None:
    store = Recording()
    await store.record_requests([rec(i, 4000 * DAY_S) for i in range(3)])
    assert await pruner(store, keep_days=0).poll() == 0
    assert len(store.requests) == 3 and store.calls == []


async def test_the_pause_is_at_least_as_long_as_the_last_statement() -> None:
    store = MemoryStore()
    await store.record_requests([rec(i, 40 * DAY_S) for i in range(10)])
    ticks = iter([0.0, 0.2, 1.0, 1.01, 2.0, 2.3, 3.0, 3.0])  # statements of 0.2, 0.01, 0.3 s
    pauses: list[float] = []

    async def sleep(s: float) -> None:
        pauses.append(s)

    p = RequestLogPruner(
        store, keep_days=30, reward_period_s=3600, grace_s=10.0, batch=3, pause_s=0.05,
        wall_clock=lambda: NOW, sleep=sleep, clock=lambda: next(ticks),
    )  # fmt: skip
    assert await p.poll() == 10  # 3 + 3 + 3 + 1
    assert pauses == pytest.approx([0.2, 0.05, 0.3])


class Failing(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def prune_requests(self, before: datetime, limit: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise OSError("database is locked")
        return await super().prune_requests(before, limit)


async def test_the_loop_survives_a_store_error() -> None:
    store = Failing()
    await store.record_requests([rec(1, 40 * DAY_S)])
    p = pruner(store, interval_s=0.01)
    p.start()
    try:
        for _ in range(500):
            if not store.requests:
                break
            await asyncio.sleep(0.01)
    finally:
        await p.stop()
    assert store.calls >= 2 and store.requests == []


async def test_the_pruner_runs_with_the_app_unless_keep_days_is_zero(tmp_path: Path) -> None:
    store = MemoryStore()
    real = time.time() - NOW  # the rows are stamped on the real clock: so is the cutoff
    await store.record_requests([rec(1, 40 * DAY_S - real), rec(2, DAY_S - real)])
    app = create_registry_app(make_settings(tmp_path / "on"), store=store, wall_clock=lambda: NOW)
    p = app.state.request_log_pruner
    assert isinstance(p, RequestLogPruner) and p.keep_days == 30 and p.interval_s == 3600
    assert (p.batch, p.max_batches) == (1000, 1000)
    async with app.router.lifespan_context(app):
        assert p._task is not None and not p._task.done()
        for _ in range(200):  # its first run is at start
            if len(store.requests) == 1:
                break
            await asyncio.sleep(0.01)
        assert [r.request_id for r in store.requests] == ["r2"]
    assert p._task is None  # stopped with the app
    off = create_registry_app(
        make_settings(tmp_path / "off", request_log_keep_days=0), store=MemoryStore()
    )
    assert off.state.request_log_pruner is None


async def test_counters_survive_a_pruned_log_across_a_restart(tmp_path: Path) -> None:
    """After the log is pruned, a restarted registry starts the node's counters from the
    ``nodes`` row, not from what is left of the log."""
    from LLM_Mesh.registry.node_table import NodeTable

    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    try:
        await store.upsert_node(node("n1", state="online"))
        await store.record_requests([rec(i, 40 * DAY_S) for i in range(4)] + [rec(9, DAY_S)])
        assert await pruner(store).poll() == 4
        table = NodeTable(expiry_s=30.0)
        lab = NodeTransport(allow_plain_http=True)  # the row: an http://n1.example node
        assert await load_nodes(table, store, transport=lab) == 1
        entry = next(iter(table.entries()))
        assert (entry.requests, entry.tokens_generated) == (5, 10)
    finally:
        await store.close()


@pytest.mark.parametrize("bad", [{"batch": 0}, {"max_batches": 0}, {"interval_s": 0.0}])
def test_bad_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        pruner(MemoryStore(), **bad)


# -- settlements ------------------------------------------------------------------------

STATES = ("pending", "answered", "lapsed", "settled", "void")


async def _settlements(engine: Any, rows: list[tuple[str, int, str, float]]) -> None:
    """(request id, part, state, age in seconds at NOW) rows; updated_at = NOW - age."""
    from LLM_Mesh.registry import tables

    at = lambda age: datetime.fromtimestamp(NOW - age, timezone.utc)  # noqa: E731
    async with engine.begin() as conn:
        await conn.execute(
            tables.settlements.insert(),
            [
                {"request_id": rid, "part": part, "payer": "user:u", "model": "m",
                 "estimate": 10, "state": state, "created_at": at(age + 60),
                 "updated_at": at(age), "node_id": "n1", "operator": "operator:o",
                 "amount": 9, "fee": 1}
                for rid, part, state, age in rows
            ],
        )  # fmt: skip


async def _left(engine: Any) -> list[tuple[str, int]]:
    from sqlalchemy import select

    from LLM_Mesh.registry import tables

    s = tables.settlements
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(s.c.request_id, s.c.part).order_by(s.c.request_id, s.c.part)
        )
    return [(r.request_id, r.part) for r in rows]


async def test_only_done_with_settlements_settled_before_the_cutoff_go(store: SqlStore) -> None:
    """Old ``settled`` and ``void`` rows go (both parts of a continued stream); a row still
    ``pending``, ``answered`` or ``lapsed`` stays however old (recovery reads those), and so
    does every row settled after the cutoff. On SQLite and PostgreSQL."""
    old, new = 500 * DAY_S, 399 * DAY_S
    rows = [(f"old-{s}", 0, s, old) for s in STATES] + [(f"new-{s}", 0, s, new) for s in STATES]
    rows.append(("old-settled", 1, "settled", old))  # a continuation's second part
    await _settlements(store.engine, rows)
    p = SettlementPruner(_engine_of(store), keep_days=400, wall_clock=lambda: NOW, sleep=_no_sleep)
    assert await p.poll() == 3
    assert await _left(store.engine) == sorted(
        [(f"new-{s}", 0) for s in STATES]
        + [("old-answered", 0), ("old-lapsed", 0), ("old-pending", 0)]
    )
    assert await p.poll() == 0  # idempotent


async def test_prune_settlements_is_bounded_and_refuses_a_naive_time(store: SqlStore) -> None:
    await _settlements(store.engine, [(f"r{i}", 0, "settled", 500 * DAY_S) for i in range(7)])
    cutoff = datetime.fromtimestamp(NOW - 400 * DAY_S, timezone.utc)
    assert [await prune_settlements(store.engine, cutoff, 3) for _ in range(4)] == [3, 3, 1, 0]
    with pytest.raises(ValueError):
        await prune_settlements(store.engine, cutoff, 0)
    with pytest.raises(ValueError):
        await prune_settlements(store.engine, datetime(2025, 1, 1), 1)


async def test_the_settlement_pruner_batches_like_the_request_log_s(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    try:
        await _settlements(store.engine, [(f"r{i}", 0, "void", 800 * DAY_S) for i in range(10)])
        p = SettlementPruner(
            _engine_of(store), keep_days=400, batch=4, max_batches=2,
            wall_clock=lambda: NOW, sleep=_no_sleep,
        )  # fmt: skip
        assert await p.poll() == 8  # two statements of four; the rest waits for the next run
        assert await p.poll() == 2
    finally:
        await store.close()


async def test_a_short_keep_never_reaches_into_the_earnings_window(tmp_path: Path) -> None:
    """keep_days 1: rows settled 366 days ago stay (``GET /v1/earnings?days=366`` counts
    them), rows settled 368 days ago go."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    try:
        await _settlements(
            store.engine, [("in", 0, "settled", 366 * DAY_S), ("out", 0, "settled", 368 * DAY_S)]
        )
        p = SettlementPruner(
            _engine_of(store), keep_days=1, wall_clock=lambda: NOW, sleep=_no_sleep
        )
        assert await p.poll() == 1
        assert await _left(store.engine) == [("in", 0)]
    finally:
        await store.close()


def _engine_of(store: Any) -> Any:
    async def engine() -> Any:
        return store.engine

    return engine


def _receipt(i: int, age_s: float) -> CutReceipt:
    return CutReceipt(f"{i:064x}", f"q{i}", "user:abc", NOW - age_s, {"receipt_hash": f"{i:064x}"})


async def test_the_cut_receipt_pruner_deletes_receipts_older_than_keep_days() -> None:
    store = MemoryStore()
    old = [_receipt(i, 8 * DAY_S + i) for i in range(5)]
    new = [_receipt(10 + i, 6 * DAY_S) for i in range(2)]
    await store.record_cut_receipts(old + new)
    p = CutReceiptPruner(store, keep_days=7, batch=2, wall_clock=lambda: NOW, sleep=_no_sleep)
    assert await p.poll() == 5  # three bounded statements
    assert sorted(store.cut_receipts) == sorted(r.receipt_hash for r in new)


async def test_a_pruner_keeping_millions_of_days_deletes_nothing_without_failing() -> None:
    """``LLM_MESH_CUT_RECEIPT_KEEP_DAYS=100000000``: each hourly run failed, logged with
    its traceback (found 2026-12-06, review38b); now nothing is old enough."""
    store = MemoryStore()
    await store.record_cut_receipts([_receipt(1, 8 * DAY_S)])
    p = CutReceiptPruner(store, keep_days=100_000_000, wall_clock=lambda: NOW, sleep=_no_sleep)
    assert await p.poll() == 0
    assert len(store.cut_receipts) == 1


@pytest.mark.parametrize(
    ("name", "made"),
    [
        ("settlement", lambda days: SettlementPruner(_engine_of(MemoryStore()), keep_days=days)),
        ("cut_receipt", lambda days: CutReceiptPruner(MemoryStore(), keep_days=days)),
        ("unpaid", lambda days: UnpaidPruner(MemoryStore(), keep_days=days)),  # hygiene44
    ],
)
async def test_the_pruner_runs_with_the_app_unless_zero(
    tmp_path: Path, name: str, made: Callable[[int], Any]
) -> None:
    """The settlements', the cut receipts' and the unpaid counts' pruners: 400 days, hourly, with the app's
    lifespan; none at ``LLM_MESH_..._KEEP_DAYS`` 0; negative days refused."""
    app = create_registry_app(make_settings(tmp_path / "on"), store=MemoryStore())
    p = getattr(app.state, f"{name}_pruner")
    assert isinstance(p, type(made(1))) and p.keep_days == 400 and p.interval_s == 3600
    async with app.router.lifespan_context(app):
        assert p._task is not None and not p._task.done()
    assert p._task is None  # stopped with the app
    zero = {f"{name}_keep_days": 0}
    off = create_registry_app(make_settings(tmp_path / "off", **zero), store=MemoryStore())
    assert getattr(off.state, f"{name}_pruner") is None
    with pytest.raises(ValueError):
        made(-1)


class _Said:
    """A pruner's ``_prune_before`` alone: the calls ``prune`` got."""

    def __init__(self) -> None:
        self.calls: list[tuple[datetime, int]] = []

    async def prune(self, before: datetime, limit: int) -> int:
        self.calls.append((before, limit))
        return 3 if len(self.calls) == 1 else 1  # a full batch of 3, then the rest


async def test_a_run_prunes_from_its_cutoff_as_utc_and_says_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``_BatchPruner._prune_before``, every pruner's run (the request log's, settlements',
    cut receipts', quiet nodes'): no cutoff, nothing asked; else the cutoff as a UTC time,
    bounded batches, the count said to the pruner's own module's logger."""
    from LLM_Mesh.registry.node_retention import NodeRowPruner

    said = _Said()
    p = CutReceiptPruner(MemoryStore(), keep_days=1, batch=3, sleep=_no_sleep)
    assert await p._prune_before(None, said.prune, "%d before %s") == 0
    assert said.calls == []
    with caplog.at_level("INFO"):
        assert await p._prune_before(NOW, said.prune, "gone: %d before %s") == 4
    at = datetime.fromtimestamp(NOW, timezone.utc)
    assert said.calls == [(at, 3), (at, 3)]
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("LLM_Mesh.registry.retention", f"gone: 4 before {at.isoformat()}")
    ]
    assert NodeRowPruner.said_to.name == "LLM_Mesh.registry.node_retention"
