"""What the gateway's 5xx answers tell a client about retrying (``x-should-retry``,
``Retry-After``: ``core/client_retry.py``), by what each means: a 504 used the request's
whole deadline (no retry); a 502 is retried only where the gateway knows a node would take
the request soon, one it did not try or one it tried that is back in routing by then
(``Retry-After`` its estimate); a 500 never. And a request
that timed out, retried under its own id, is run again and paid once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.retry import RetryBudget
from tests.registry.helpers import running
from tests.registry.test_charge import BODY, CHAT, COST, bearer, new_user, register, settlement

GEMMA = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_502_with_a_node_not_tried_yet_says_retry_in_a_second(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=1) as h:
        await h.register("a", behavior="500")
        await h.register("b", behavior="500")
        r = await h.client.post(CHAT, json=GEMMA)
        assert r.status_code == 502
        assert (r.headers["x-should-retry"], r.headers["retry-after"]) == ("true", "1")
        assert r.json()["error"]["retry_after"] == 1
        assert h.nodes.calls() == 1  # max_attempts: the other node is the retry's


async def _advance(h: Any, seconds: float, *nodes: str) -> None:
    """The clock moves on; the nodes heartbeat meanwhile (live: only their failures count)."""
    h.clock.advance(seconds)
    for n in nodes:
        r = await h.client.post(f"/mesh/nodes/{n}/heartbeat", json={})
        assert r.status_code == 200, r.text


async def test_a_one_node_models_502_says_retry_when_its_node_is_back(tmp_path: Path) -> None:
    """Found 2026-12-05 (``small31``): the estimate counted only nodes the request had not
    tried, so a one-node model's 502 said ``false`` though its node (never ejected: the pool
    cannot spare it) takes the retry. Now the node is rested as an ejection would rest it
    (30 s, then 60 s, growing), and the 502 says when; past a minute (its third failure in a
    row) a retry cannot help soon: ``false``."""
    async with running(tmp_path, max_attempts=3) as h:
        await h.register("a", behavior="500")
        saw = []
        for wait in (30, 60, 90):
            r = await h.client.post(CHAT, json=GEMMA)
            assert r.status_code == 502
            saw.append((r.headers["x-should-retry"], r.headers.get("retry-after")))
            await _advance(h, wait + 1, "a")
        # before: all false; past a minute the estimate is still said, but not "soon"
        assert saw == [("true", "30"), ("true", "60"), ("false", "90")]
        assert h.nodes.calls() == 3  # one attempt each: the only node


async def test_a_502_after_every_node_failed_says_when_the_first_is_back(tmp_path: Path) -> None:
    """Both nodes fail: the first is ejected (30 s), the other rested (the pool spares one
    at most: 30 s); 5 s apart, so the first is back first."""
    async with running(tmp_path, max_attempts=3) as h:
        await h.register("a", behavior="500")
        await h.register("b", behavior="connect_error")
        h.nodes.on_call = lambda _node: h.clock.advance(5)
        r = await h.client.post(CHAT, json=GEMMA)
        assert r.status_code == 502 and h.nodes.calls() == 2
        assert (r.headers["x-should-retry"], r.headers["retry-after"]) == ("true", "25")
        assert r.json()["error"]["retry_after"] == 25


@pytest.mark.parametrize("leaves", ["goodbye", "offline", "quarantined"])
async def test_a_502_whose_node_left_meanwhile_says_no_retry(tmp_path: Path, leaves: str) -> None:
    """The node that failed it is gone from routing for the model (it said goodbye or was
    revoked, went offline, a canary quarantined it): no node to come back."""
    async with running(tmp_path, max_attempts=3) as h:
        await h.register("a", behavior="500")
        routing = h.runtime.routing

        def leave(_node: Any) -> None:
            if leaves == "goodbye":
                routing.remove("a")
            elif leaves == "offline":
                routing.router.set_routable("a", False)
            else:
                routing.set_quarantined("a", frozenset({"gemma-3-270m"}))

        h.nodes.on_call = leave
        r = await h.client.post(CHAT, json=GEMMA)
        assert r.status_code in (502, 503)
        assert r.headers["x-should-retry"] == "false" and "retry-after" not in r.headers


async def test_a_502_with_the_retry_budget_spent_says_no_retry(tmp_path: Path) -> None:
    """Many requests fail: the gateway sheds retries, and asks clients not to add theirs."""
    async with running(tmp_path, max_attempts=5) as h:
        h.runtime.routing.retry_budget = RetryBudget(ratio=0.0, min_per_s=0.3, window_s=10.0)
        for n in ("n1", "n2", "n3", "n4", "n5"):
            await h.register(n, behavior="500")
        r = await h.client.post(CHAT, json=GEMMA)
        assert r.status_code == 502 and r.json()["error"]["retry_budget_exhausted"] is True
        assert h.nodes.calls() == 4  # n5 not tried: the budget, not the nodes, ran out
        assert r.headers["x-should-retry"] == "false" and "retry-after" not in r.headers


async def test_the_gateways_own_fault_says_no_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 of the gateway's code: a retry most likely meets it again (and one without an
    id could run, and pay, an answer again)."""
    from LLM_Mesh.registry import pipeline

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "json_answer", broken)
    async with running(tmp_path) as h:
        await h.register("a")
        r = await h.client.post(CHAT, json=GEMMA)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert r.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Request-Id"])
async def test_a_timed_out_request_retried_under_its_id_runs_again_and_is_paid_once(
    tmp_path: Path, header: str
) -> None:
    """The 504 delivered nothing and charged nothing (its hold is given back), so its id is
    free: the retry runs the model again and is the one paid."""
    async with running(tmp_path, max_attempts=1) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        headers = {**bearer(key), header: "mine-504"}
        node.behavior = "timeout"
        first = await h.client.post(CHAT, json=BODY, headers=headers)
        assert first.status_code == 504 and first.headers["x-should-retry"] == "false"
        node.behavior = "ok"
        again = await h.client.post(CHAT, json=BODY, headers=headers)
        assert again.status_code == 200 and "x-mesh-replayed" not in again.headers
        assert len(node.calls) == 2
        s = settlement(h)
        for _ in range(40):  # the 504's hold goes back with the lease, not at once
            await s.flush()
            s.give_back(float("inf"))
            await s.flush()
            if await s.balance(account) == (1000 - COST, 0):
                break
            await asyncio.sleep(0.05)
        assert await s.balance(account) == (1000 - COST, 0)  # paid once
        ledger = h.runtime.ledger
        assert ledger is not None
        entries, _ = await ledger.entries(-1, 100)
        assert len([e for e in entries if e.kind == "settle"]) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_a_504_says_no_retry_and_what_to_change(tmp_path: Path, stream: bool) -> None:
    async with running(tmp_path, max_attempts=1) as h:
        await h.register("a", behavior="timeout")
        r = await h.client.post(CHAT, json={**GEMMA, "stream": stream})
        assert r.status_code == 504 and r.headers["x-should-retry"] == "false"
        message = r.json()["error"]["message"]
        assert "deadline" in message and "shorter prompt" in message
        assert ("stream: true" in message) is not stream  # a stream's first token was late
