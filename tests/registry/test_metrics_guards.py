"""The guards' rare events on the gateway's ``GET /metrics`` (found 2026-12-05: seen only in
the logs, or not at all): a place in a wait taken by push-out or refused (the send stage's
wait between API keys, the admit stage's between addresses), a stream part cut for padding
(a hostile node's events without output, or without data), settlement's failed syncs of
the SQLite store's log (with ``GET /healthz`` saying ``degraded`` until a sync works), its
answers whose write failed, and the journal lines of a gone process recovered at start.

Each event is made in process and the counter read back with prometheus-client's own
parser (``tests/metrics_scrape.py``); each counter is there, at 0, before its event."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.core.wait_places import WaitPlace
from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.crash_books import crash, journals, ledger_of
from tests.registry.helpers import Harness, rank, running
from tests.registry.test_access import _until as until
from tests.registry.test_access import bearer, chat, new_key
from tests.registry.test_anonymous_share import _last
from tests.registry.test_hostile_node_streams import (
    CHAT,
    MODEL,
    Hostile,
    Nodes,
    _body,
    _data,
    _role,
)
from tests.registry.test_metrics import scrape
from tests.registry.test_settle_durable import A1, GRANT, USER, E
from tests.registry.test_settle_outage import Away, _states, _until
from tests.registry.test_stream_empty_events import _padder

PUSHOUTS = "llm_mesh_gateway_wait_pushouts_total"
REFUSALS = "llm_mesh_gateway_wait_refusals_total"
PADDING = "llm_mesh_gateway_stream_padding_cuts_total"
SYNC_FAILURES = "llm_mesh_gateway_settle_sync_failures_total"
SYNC_FAILING = "llm_mesh_gateway_settle_sync_failing"
UNWRITTEN = "llm_mesh_gateway_settle_unwritten_total"
RECOVERED = "llm_mesh_gateway_settle_recovered_total"
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
A1_GRANT = Transfer("grant", MINT, USER, GRANT)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02, 0.05, 0.1))


def _push_then_refuse(take: Any, first: str, second: str) -> list[WaitPlace]:
    """Two places (every one) taken by ``first``; ``second`` pushes its newest out; then
    ``second`` asks again and is refused (each holds one: nobody holds two more)."""
    held = [take(first), take(first), take(second)]
    assert all(isinstance(p, WaitPlace) for p in held), held
    assert "went to a request of another" in held[1].out
    assert isinstance(take(second), str)
    return held


@pytest.mark.parametrize("stage", ["send", "admit"])
async def test_a_push_out_and_a_refused_place_are_counted_by_stage(
    tmp_path: Path, stage: str
) -> None:
    async with running(tmp_path) as h:
        places = h.runtime.routing.send_places if stage == "send" else _last(h).places
        places.cap = 2
        before = await scrape(h)
        for name in (PUSHOUTS, REFUSALS):  # there before any event: 0 for both stages
            assert before.label_values(name, "stage") == {"send", "admit"}
            assert before.value(name) == 0
        held = _push_then_refuse(places.take, "k1", "k2")
        s = await scrape(h)
        other = "admit" if stage == "send" else "send"
        assert s.value(PUSHOUTS, stage=stage) == 1 and s.value(PUSHOUTS, stage=other) == 0
        assert s.value(REFUSALS, stage=stage) == 1 and s.value(REFUSALS, stage=other) == 0
        for p in held:
            places.leave(p)
        assert places.waiting == 0


async def test_a_keyed_push_out_through_the_send_stage_is_counted(tmp_path: Path) -> None:
    """Two API keys' requests through the gateway: one key's waiters fill the places, the
    other key's request takes one (a push-out, its waiter answered 429)."""
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        flood, _ = await new_key(h, name="flood")
        other, _ = await new_key(h, name="other")
        routing = h.runtime.routing
        routing.max_send_waiters = 2
        busy = routing.begin("a", MODEL)
        wait = {"X-Mesh-Wait": "30"}

        def post(key: str) -> asyncio.Task[Any]:
            return asyncio.create_task(
                h.client.post(CHAT, json=chat(), headers={**wait, **bearer(key)})
            )

        flooding = [post(flood), post(flood)]
        await until(lambda: routing.waiters == 2)
        theirs = post(other)
        await until(lambda: any(t.done() for t in flooding))
        assert [t.result().status_code for t in flooding if t.done()] == [429]
        s = await scrape(h)
        assert s.value(PUSHOUTS, stage="send") == 1 and s.value(REFUSALS) == 0
        routing.finish(busy, Outcome.SUCCESS)
        for t in [*flooding, theirs]:
            assert (await asyncio.wait_for(t, 10)).status_code in (200, 429)


@pytest.mark.parametrize("kind", ["without_output", "without_data"])
async def test_a_stream_cut_for_padding_is_counted_by_kind(tmp_path: Path, kind: str) -> None:
    """A hostile node pads its stream (empty deltas past its allowance, or a flood of
    keep-alive comments): its part breaks, the stream goes on on the honest node, and the
    cut is counted under its kind."""
    nodes = Nodes()
    if kind == "without_output":
        nodes.streams["pad"] = _padder(None, every=0, gap_s=0.0)
    else:
        flood = b":\n\n" * 40_000

        def events() -> Any:
            yield _role("pad")
            for _ in range(200):  # the test's safety stop
                yield flood

        nodes.streams["pad"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("pad")
        await h.register("honest", continuation=True)
        before = await scrape(h)
        assert before.label_values(PADDING, "kind") == {"without_output", "without_data"}
        assert before.value(PADDING) == 0
        rank(h.runtime.routing.router, ["pad", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=_body(CHAT))
        assert r.status_code == 200
        assert _data(r.text)[-1]["mesh"]["failover_from"] == ["pad"]
        s = await scrape(h)
        assert s.value(PADDING, kind=kind) == 1 and s.value(PADDING) == 1


class Fsync:
    """The store's ``fsync``, failing (``EIO``) while ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self, fd: int) -> None:
        if self.failing:
            raise OSError(errno.EIO, "Input/output error (injected)")
        os.fsync(fd)


def _settlement(h: Harness) -> Settlement:
    settlement = h.runtime.settlement
    assert settlement is not None
    return settlement


async def test_a_failing_sync_of_the_log_is_counted_and_healthz_says_degraded(
    tmp_path: Path,
) -> None:
    """The settler's sync of the store's log fails (injected ``EIO``): the failures are
    counted, the gauge says 1 and ``/healthz`` answers 200 ``degraded`` naming settlement
    until a sync works again (then 0 and ``ok``). Before: a log line only."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    async with running(tmp_path, store=store) as h:  # type: ignore[arg-type]
        settlement, fsync = _settlement(h), Fsync()
        settlement.fsync = fsync
        before = await scrape(h)
        assert before.value(SYNC_FAILURES) == 0 and before.has(SYNC_FAILING)
        assert before.value(SYNC_FAILING) == 0
        assert (await h.client.get("/healthz")).json() == {"status": "ok"}
        ledger = h.runtime.ledger
        assert ledger is not None
        fsync.failing = True
        await ledger.append_one(A1_GRANT)  # the log written: the settler's round syncs it
        await settlement._sync_written()  # (its round, here; its loop may run one too)
        s = await scrape(h)
        assert s.value(SYNC_FAILURES) >= 1 and s.value(SYNC_FAILING) == 1
        r = await h.client.get("/healthz")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "degraded" and body["settlement"] == "log_sync_failing"
        assert "syncs of the database's log have failed" in body["detail"]
        fsync.failing = False
        await ledger.append_one(A1_GRANT)
        await settlement._sync_written()
        s = await scrape(h)
        assert s.value(SYNC_FAILING) == 0 and s.value(SYNC_FAILURES) >= 1
        assert (await h.client.get("/healthz")).json() == {"status": "ok"}


async def test_an_unwritten_answer_and_a_recovered_journal_line_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway on this home killed with an answer not written (its journal kept); the
    registry started on the home and store recovers it at its start: counted
    ``recorded``. Then an answer of its own whose write fails (the database away) is
    counted unwritten."""
    db = tmp_path / "registry.db"
    before = SqlStore(f"sqlite:///{db}")
    await before.open()
    try:
        await ledger_of(before).append_one(A1_GRANT)
        gw = Settlement(
            ledger_of(before), fee_bps=500, pool_daily_budget=0, settle_interval_s=3600.0,
            beat_s=3600.0, holder_ttl_s=3600.0, home=tmp_path, wall_clock=time.time,
        )  # fmt: skip
        await gw.start()
        try:
            assert (await gw.reserve("r1", USER, "m", E)).ok
            Away(gw, monkeypatch).away = True
            with pytest.raises(ConnectionError):
                await gw.answer(A1)  # released all the same: journalled
        finally:
            monkeypatch.undo()
            await crash(gw)
    finally:
        await before.close()
    assert journals(tmp_path)
    store = SqlStore(f"sqlite:///{db}")
    async with running(tmp_path, store=store) as h:  # type: ignore[arg-type]
        s = await scrape(h)
        assert s.value(RECOVERED, result="recorded") == 1
        assert s.value(RECOVERED, result="not_recorded") == 0
        assert s.value(UNWRITTEN) == 0
        settlement = _settlement(h)
        assert (await settlement.reserve("r2", USER, "m", E)).ok
        away = Away(settlement, monkeypatch)
        away.away = True
        with pytest.raises(ConnectionError):
            await settlement.answer(replace(A1, key="r2"))
        away.away = False

        async def settled() -> bool:
            await settlement.flush()
            return (await _states(store)).get("r2") == "settled"

        assert await _until(settled)
        s = await scrape(h)
        assert s.value(UNWRITTEN) == 1 and s.value(RECOVERED) == 1
        monkeypatch.undo()


async def test_every_gateway_metric_is_documented(tmp_path: Path) -> None:
    """docs/operations.md's table names every ``llm_mesh_gateway_*`` family the gateway
    exports (counters with their ``_total``), the guards' among them."""
    async with running(tmp_path) as h:
        s = await scrape(h)
    names = [n for n in s.families  # (an unlabelled counter's _created: its own family)
             if n.startswith("llm_mesh_gateway_") and not n.endswith("_created")]  # fmt: skip
    assert PADDING.removesuffix("_total") in names and SYNC_FAILING in names
    doc = OPERATIONS.read_text()
    for name, kind in ((n, s.families[n]) for n in names):
        shown = f"{name}_total" if kind == "counter" else name
        assert f"| `{shown}` |" in doc, shown
