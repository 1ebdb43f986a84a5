"""A keyed client's OpenAI SDK retry of an answer lost on the way is not run, nor paid, again.

The SDK (openai 3.x, ``_base_client.py``) sends no ``Idempotency-Key`` (its
``_idempotency_header`` is ``None``), only ``x-stainless-retry-count`` (0, 1, 2), with the
same body bytes each attempt. Found 2026-12-05 (``docs/security.md``, "Clients"): a
connection cut after the gateway sent its answer made the SDK retry, and the retry ran on a
node and was paid a second time. Now a keyed attempt with count >= 1 and no id of its own
is a repeat of its key's identical attempt (``core/sdk_retry.py``, ``admit.py``): replayed,
waited on, or refused 409; an attempt with count 0 always runs; anonymous requests are
unchanged. Sim/fake nodes only.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.responses import Response

from LLM_Mesh.core.sdk_retry import implicit_key, retry_count
from LLM_Mesh.registry.idempotency import DuplicateRequest, IdempotencyCache
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import Harness, ManualClock, fund, running
from tests.registry.test_charge import BODY, CHAT, COST, MODEL, bearer, new_user, register
from tests.registry.test_shared_idempotency import store_url, two_replicas

__all__ = ["store_url"]  # the fixture, for the replicas' test

RAW = json.dumps(BODY).encode()  # one request's bytes, as each SDK attempt sends them


class LoseAnswers(httpx.AsyncBaseTransport):
    """The network between the SDK and the gateway (one replica, or several in turn): the
    first ``lose`` answers are read whole (the gateway sent them) and then the connection
    breaks, so the SDK never has them and retries."""

    def __init__(self, *hs: Harness, lose: int = 1) -> None:
        self.hs = hs
        self.lose = lose
        self.counts: list[str | None] = []  # each attempt's x-stainless-retry-count
        self.replayed: list[str | None] = []  # each answer's X-Mesh-Replayed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        h = self.hs[len(self.counts) % len(self.hs)]
        self.counts.append(request.headers.get("x-stainless-retry-count"))
        response = await httpx.ASGITransport(app=h.app).handle_async_request(request)
        await response.aread()
        self.replayed.append(response.headers.get("x-mesh-replayed"))
        if self.lose > 0:
            self.lose -= 1
            flush = getattr(h.runtime.idempotency, "flush", None)
            if flush is not None:  # (a replica's end written, so the test does not race it)
                await flush()
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return response


def sdk(net: httpx.AsyncBaseTransport, key: str = "anonymous") -> openai.AsyncOpenAI:
    """The SDK as a user has it: its default retries (2)."""
    http = httpx.AsyncClient(transport=net)
    return openai.AsyncOpenAI(base_url="http://mesh/v1", api_key=key, http_client=http)


async def ask(client: openai.AsyncOpenAI) -> str:
    answer = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    return answer.id


def settlement(h: Harness) -> Settlement:
    s = h.runtime.settlement
    assert s is not None
    return s


async def balance(h: Harness, account: str) -> tuple[int, int]:
    s = settlement(h)
    await s.flush()
    s.give_back(float("inf"))
    await s.flush()
    return await s.balance(account)


def attempt(key: str | None, count: int | None, **extra: str) -> dict[str, str]:
    """Headers of an attempt sent by hand: the key's bearer, the SDK's marker."""
    hdr = {"Content-Type": "application/json", **extra}
    if key is not None:
        hdr.update(bearer(key))
    if count is not None:
        hdr["x-stainless-retry-count"] = str(count)
    return hdr


async def test_an_answer_lost_on_the_way_is_replayed_to_the_sdks_retry_and_paid_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        net = LoseAnswers(h)
        async with sdk(net, key) as client:
            await ask(client)
        assert net.counts == ["0", "1"]  # the SDK's retry, with its marker, no id of its own
        assert net.replayed == [None, "true"]
        assert len(node.calls) == 1  # run once
        assert await balance(h, account) == (1000 - COST, 0)  # paid once


async def test_the_user_sending_the_same_request_again_runs_it_again(tmp_path: Path) -> None:
    """Count 0 is a new request, identical or not (a user regenerating wants a new
    sample), and the one the retries after it refer to."""
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        async with sdk(LoseAnswers(h, lose=0), key) as client:
            await ask(client)
            await ask(client)
        assert len(node.calls) == 2
        net = LoseAnswers(h)  # the third one's answer lost: its retry is replayed
        async with sdk(net, key) as client:
            await ask(client)
        assert (net.counts, net.replayed) == (["0", "1"], [None, "true"])
        assert len(node.calls) == 3
        assert await balance(h, account) == (1000 - 3 * COST, 0)


async def test_anonymous_sdk_retries_run_again_as_before(tmp_path: Path) -> None:
    """An address is shared (a NAT, a campus): an anonymous request has no implicit key."""
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        net = LoseAnswers(h)
        async with sdk(net) as client:
            await ask(client)
        assert (net.counts, net.replayed) == (["0", "1"], [None, None])
        assert len(node.calls) == 2


async def test_another_keys_identical_retry_is_never_handed_this_keys_answer(
    tmp_path: Path,
) -> None:
    """An attack: the same bytes with a retry marker under another key run on their own."""
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        alice, _ = await new_user(h, 1000)
        mallory, _ = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=RAW, headers=attempt(alice, 0))
        assert first.status_code == 200
        other = await h.client.post(CHAT, content=RAW, headers=attempt(mallory, 1))
        assert other.status_code == 200 and "x-mesh-replayed" not in other.headers
        assert len(node.calls) == 2
        # other bytes (another prompt), or another path, are not a repeat either
        changed = json.dumps({**BODY, "max_tokens": 4}).encode()
        r = await h.client.post(CHAT, content=changed, headers=attempt(alice, 1))
        assert r.status_code == 200 and "x-mesh-replayed" not in r.headers
        assert len(node.calls) == 3
        # the same key's retry of the same bytes is
        again = await h.client.post(CHAT, content=RAW, headers=attempt(alice, 1))
        assert again.headers.get("x-mesh-replayed") == "true"
        assert again.json() == first.json()
        assert len(node.calls) == 3


async def test_a_retry_after_the_window_or_with_its_own_id_runs_as_before(
    tmp_path: Path,
) -> None:
    wall = [time.time()]  # the store's rows expire by the wall clock
    # (a short window: the fake node would expire past 30 s without a heartbeat)
    async with running(tmp_path, wall_clock=lambda: wall[0], sdk_retry_window_s=5.0) as h:
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        assert (await h.client.post(CHAT, content=RAW, headers=attempt(key, 0))).is_success
        await h.runtime.idempotency.flush()  # type: ignore[attr-defined]
        h.clock.advance(h.settings.sdk_retry_window_s + 1)
        wall[0] += h.settings.sdk_retry_window_s + 1
        late = await h.client.post(CHAT, content=RAW, headers=attempt(key, 1))
        assert late.status_code == 200 and "x-mesh-replayed" not in late.headers
        assert len(node.calls) == 2
        # the user's own id: its rules alone (a new id runs)
        own = attempt(key, 1, **{"X-Request-Id": "mine"})
        assert (
            "x-mesh-replayed" not in (await h.client.post(CHAT, content=RAW, headers=own)).headers
        )
        assert len(node.calls) == 3
    async with running(tmp_path / "off", sdk_retry_window_s=0.0) as h:  # turned off
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        for count in (0, 1):
            r = await h.client.post(CHAT, content=RAW, headers=attempt(key, count))
            assert r.status_code == 200 and "x-mesh-replayed" not in r.headers
        assert len(node.calls) == 2


async def test_a_streams_retry_is_not_run_again(tmp_path: Path) -> None:
    """A stream's retry is never a second run: since 2026-12-05 (``sdkstore32``) a completed
    one is replayed (``test_sdk_stream_replay.py``; one cut off or failed: 409
    ``duplicate_request``, as a repeated id is); a new attempt (count 0) runs."""
    raw = json.dumps({**BODY, "stream": True}).encode()
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=raw, headers=attempt(key, 0))
        assert first.status_code == 200
        retry = await h.client.post(CHAT, content=raw, headers=attempt(key, 1))
        assert retry.status_code == 200 and retry.headers["x-mesh-replayed"] == "true"
        assert retry.content == first.content
        assert len(node.calls) == 1
        assert (await h.client.post(CHAT, content=raw, headers=attempt(key, 0))).is_success
        assert len(node.calls) == 2


async def test_a_retry_on_another_replica_is_replayed_and_run_once(
    tmp_path: Path, store_url: str | None
) -> None:
    """The SDK's retry reaches the other replica behind the balancer: the implicit key is
    in the store (``idempotency_keys``), as a client id is."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await a.register("n1", models=[MODEL])
        sync = b.app.state.node_sync
        assert sync is not None
        await sync.poll()  # b learns the node from the store
        key, account = await new_user(a, 1000)
        await fund(b, account, 1000)  # (b's ledger, where it is not a's)
        net = LoseAnswers(a, b)  # attempt 0 on a (its answer lost), the retry on b
        async with sdk(net, key) as client:
            await ask(client)
        assert (net.counts, net.replayed) == (["0", "1"], [None, "true"])
        assert a.nodes.calls() == 1
        # the same request again (count 0, on b) runs, and supersedes a's row for retries
        net = LoseAnswers(b, a)
        async with sdk(net, key) as client:
            await ask(client)
        assert (net.counts, net.replayed) == (["0", "1"], [None, "true"])
        assert a.nodes.calls() == 2


async def test_the_cache_runs_every_first_attempt_and_retries_wait_for_it() -> None:
    """``begin_fresh``: a first attempt runs over an ended one; while an identical one runs,
    it runs without the key; a retry waits for the running attempt's answer (a client
    whose own timeout was shorter than the run)."""
    clock = ManualClock()
    cache = IdempotencyCache(clock, retry_window_s=60.0)
    k = implicit_key(CHAT, "key:k1", "ab" * 32)
    assert await cache.begin_fresh(k, False)
    assert not await cache.begin_fresh(k, False)  # an identical one runs: without the key
    retry = asyncio.ensure_future(cache.begin(k, False))
    await asyncio.sleep(0)
    assert not retry.done()  # waits for the running attempt
    cache.finish(k, Response(b'{"n":1}', 200))
    replay = await retry
    assert replay is not None and replay.body == b'{"n":1}'
    assert await cache.begin_fresh(k, False)  # a new first attempt runs
    cache.finish(k, Response(b'{"n":2}', 200))
    replay = await cache.begin(k, False)
    assert replay is not None and replay.body == b'{"n":2}'
    clock.advance(61)  # past the window (not the 10 min of a client's id)
    assert await cache.begin(k, False) is None
    cache.finish(k, None, paid=True)  # paid, no answer: the retry is refused, not run
    with pytest.raises(DuplicateRequest):
        await cache.begin(k, False)
    assert cache.holds(k) and len(cache) == 1
    assert await cache.begin("/v1/chat/completions key:k1 mine", False) is None
    assert len(cache) == 2  # a client's own id: another book, never pushed out by these


def test_the_marker_is_read_strictly() -> None:
    assert [retry_count(v) for v in ("0", "2", " 1 ", "1000")] == [0, 2, 1, 1000]
    assert [retry_count(v) for v in (None, "", "-1", "1.0", "x", "1001", "٣")] == [None] * 7


async def test_a_first_attempts_claim_takes_over_a_done_row_never_a_running_one(
    store: SqlStore,
) -> None:
    from datetime import datetime, timezone

    from LLM_Mesh.registry.ports import IdempotencyRecord

    t0 = datetime(2026, 12, 5, tzinfo=timezone.utc)
    exp = t0 + timedelta(seconds=30)
    assert await store.claim_request_key("k", "r1", False, t0, exp, claim="c1") is None
    held = await store.claim_request_key("k", "r2", False, t0, exp, supersede_done=True)
    assert held is not None and held.state == "running"  # running: never taken over
    done = IdempotencyRecord("k", "r1", False, "done", t0, exp, claim="c1")
    assert await store.finish_request_key(done)
    assert await store.claim_request_key("k", "r2", False, t0, exp) is not None  # replayed
    assert await store.claim_request_key("k", "r2", False, t0, exp, supersede_done=True) is None
    row = await store.get_request_key("k")
    assert row is not None and (row.owner, row.state) == ("r2", "running")


async def test_a_first_attempts_claim_in_flight_is_never_left_running_by_its_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt's claim is written in the background (no database write on its
    way); a 5xx frees the key, and that release waits for the claim: released first, the
    claim would leave a running row that held the key everywhere for ``running_s``."""
    async with running(tmp_path) as h:
        await h.register("a", models=[MODEL], behavior="500")
        key, _ = await new_user(h, 1000)
        real = h.store.claim_request_key

        async def slow(*args: Any, **kw: Any) -> Any:
            await asyncio.sleep(0.3)  # the answer is out before the claim commits
            return await real(*args, **kw)

        monkeypatch.setattr(h.store, "claim_request_key", slow)
        r = await h.client.post(CHAT, content=RAW, headers=attempt(key, 0))
        assert r.status_code >= 500
        await h.runtime.idempotency.flush()  # type: ignore[attr-defined]
        assert [k for k, v in h.store.request_keys.items() if v.state == "running"] == []
