"""A request whose payment was written keeps its request id: its retry is never paid again.

A non-stream cancelled while its payment is written (a gateway stopping past its grace
cancels its requests; so does a server that cancels a request whose client went away)
still pays: the write is shielded (``settlement.answer``). Its request id stays held, so
the client's retry with the same ``X-Request-Id``, here or on another replica, is refused
409 ``duplicate_request`` instead of running and paying a second time. A request
cancelled before any payment frees its id as every failure does (the retry runs, paid
once). docs/security.md, "Settlement (money)".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import Response

from LLM_Mesh.registry.idempotency import DuplicateRequest, IdempotencyCache
from LLM_Mesh.registry.settlement import Settlement
from tests.keyed import operator_account
from tests.registry.helpers import Harness, ManualClock, running
from tests.registry.test_charge import (
    BODY,
    CHAT,
    COST,
    MODEL,
    bearer,
    new_user,
    register,
    settlement,
)
from tests.registry.test_shared_idempotency import store_url, two_replicas

__all__ = ["store_url"]  # the fixture, for the replicas' test


async def _settled(s: Settlement, account: str, want: tuple[int, int]) -> tuple[int, int]:
    """``account``'s (balance, reserved) once the queued writes and idle leases are done."""
    got = await s.balance(account)
    for _ in range(40):
        await s.flush()
        s.give_back(float("inf"))
        await s.flush()
        got = await s.balance(account)
        if got == want:
            break
        await asyncio.sleep(0.05)
    return got


def _cancel_while_paying(s: Settlement, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """From now on, the event is set when a payment's write has begun (then cancel)."""
    paying = asyncio.Event()
    real: Callable[[Any], Awaitable[bool]] = s.answer

    async def answer(op: Any) -> bool:
        result = real(op)  # the write is queued at its first step, before any await
        step = asyncio.ensure_future(result)
        await asyncio.sleep(0)
        paying.set()
        return await step

    monkeypatch.setattr(s, "answer", answer)
    return paying


async def _cancelled(h: Harness, headers: dict[str, str], when: asyncio.Event) -> None:
    """Send the request, cancel it once ``when`` is set."""
    task = asyncio.create_task(h.client.post(CHAT, json=BODY, headers=headers))
    waiter = asyncio.create_task(when.wait())
    await asyncio.wait((task, waiter), timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert when.is_set() and not task.done(), "the request ended before it was cancelled"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_request_cancelled_while_it_is_paid_is_not_run_nor_paid_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """found 2026-12-03: the payment committed, the cancellation freed the id, the retry ran
    and was paid again (2 payments for one request id, at most one answer delivered)."""
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        s = settlement(h)
        paying = _cancel_while_paying(s, monkeypatch)
        headers = {**bearer(key), "X-Request-Id": "r-paid"}
        await _cancelled(h, headers, paying)
        assert await _settled(s, account, (1000 - COST, 0)) == (1000 - COST, 0)  # paid once
        for _ in range(2):
            r = await h.client.post(CHAT, json=BODY, headers=headers)
            assert r.status_code == 409, r.text
            err = r.json()["error"]
            assert err["code"] == "duplicate_request" and "paid" in err["message"], err
        assert len(node.calls) == 1  # never run again
        assert await _settled(s, account, (1000 - COST, 0)) == (1000 - COST, 0)
        # another id runs and is paid as usual
        other = {**bearer(key), "X-Request-Id": "r-other"}
        assert (await h.client.post(CHAT, json=BODY, headers=other)).status_code == 200
        assert await _settled(s, account, (1000 - 2 * COST, 0)) == (1000 - 2 * COST, 0)


async def test_a_request_cancelled_before_it_is_paid_frees_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing paid: the id is free again, the retry runs and is paid once."""
    from LLM_Mesh.registry import pipeline

    made = asyncio.Event()
    real = pipeline.json_answer

    def cancelled(*a: Any, **k: Any) -> Any:
        if not made.is_set():  # the first request: cancelled before its payment
            made.set()
            raise asyncio.CancelledError
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "json_answer", cancelled)
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        s = settlement(h)
        headers = {**bearer(key), "X-Request-Id": "r-unpaid"}
        with pytest.raises(asyncio.CancelledError):
            await h.client.post(CHAT, json=BODY, headers=headers)
        assert await _settled(s, account, (1000, 0)) == (1000, 0)  # nothing paid
        r = await h.client.post(CHAT, json=BODY, headers=headers)
        assert r.status_code == 200, r.text
        assert len(node.calls) == 2
        assert await _settled(s, account, (1000 - COST, 0)) == (1000 - COST, 0)
        assert await s.balance(operator_account("alice")) != (0, 0)


async def test_a_request_cancelled_while_it_is_paid_is_refused_on_another_replica(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id stays held in the store too (``idempotency_keys``: done, no answer kept): the
    retry on the other replica is refused 409, never run and paid again (found 2026-12-03:
    the cancellation released the row, the other replica ran the retry)."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await a.register("n1", models=[MODEL])  # a model with a price: the pool pays
        sync = b.app.state.node_sync
        assert sync is not None
        await sync.poll()  # b learns the node from the store
        paying = _cancel_while_paying(settlement(a), monkeypatch)
        hdr = {"X-Request-Id": "job-paid"}
        await _cancelled(a, hdr, paying)
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        assert a.nodes.calls() == 1
        for h in (b, a, b):
            r = await h.client.post(CHAT, json=BODY, headers=hdr)
            assert r.status_code == 409, r.text
            err = r.json()["error"]
            assert err["code"] == "duplicate_request" and "paid" in err["message"], err
        assert a.nodes.calls() == 1
        # an id cancelled before its payment is free everywhere
        from LLM_Mesh.registry import pipeline

        def cancelled(*_a: Any, **_k: Any) -> Any:
            raise asyncio.CancelledError

        unpaid = {"X-Request-Id": "job-unpaid"}
        with monkeypatch.context() as m:
            m.setattr(pipeline, "json_answer", cancelled)
            with pytest.raises(asyncio.CancelledError):
                await a.client.post(CHAT, json=BODY, headers=unpaid)
        await a.runtime.idempotency.flush()  # type: ignore[attr-defined]
        assert (await b.client.post(CHAT, json=BODY, headers=unpaid)).status_code == 200
        assert a.nodes.calls() == 3


async def test_a_paid_end_that_would_free_the_key_keeps_it_with_no_answer() -> None:
    """The cache's rule (``finish(..., paid=True)``): a 5xx, or no answer at all (a
    cancellation), frees a key unless its payment was written; then duplicates get 409."""
    cache = IdempotencyCache(ManualClock())
    for end in (None, Response(b"{}", 500), Response(b"{}", 429)):
        assert await cache.begin("free", False) is None
        cache.finish("free", end)  # not paid: freed, the retry runs
        assert not cache.holds("free")
        assert await cache.begin("paid", False) is None
        cache.finish("paid", end, paid=True)
        assert cache.paid_unanswered("paid") and cache.kept("paid") == (None, False)
        with pytest.raises(DuplicateRequest, match="was paid"):
            await cache.begin("paid", False)
        cache.abandon("paid")  # (forget it for the next round)
        cache.abandon("free")
    assert await cache.begin("ok", False) is None
    cache.finish("ok", Response(b'{"a":1}', 200), paid=True)  # paid and answered: replayed
    replay = await cache.begin("ok", False)
    assert replay is not None and replay.body == b'{"a":1}'
