"""A keyed client's OpenAI SDK retry of a stream that completed, and was paid, is replayed.

The SDK (openai 3.x, ``_base_client.py``) sends a stream (``stream=True``) and retries it
only when no answer arrived: a connection error or a timeout before the response's headers
(``_send_request`` raised), or a retryable status; once the headers are in, a stream that
breaks is the caller's (``AsyncStream`` is never retried). So the case a real client meets:
the gateway wrote the whole stream (a short answer fits the socket's buffer, or a buffering
proxy took it) and the connection failed before the client read its headers; the SDK sends
the same bytes again with ``x-stainless-retry-count: 1``. Found 2026-12-05 (``sdkstore32``,
docs/security.md "Clients"): that retry was refused 409, the paid answer lost. Now the
attempt's completed stream is kept whole (``relay.ProxyStream.kept_answer``, its implicit
key's answer) and replayed as an SSE stream (the same text, usage, finish reason and
``mesh``: the same bytes); a retry of a stream still running, cut off or failed is refused
as before. Fake nodes only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.responses import Response

from LLM_Mesh.core.sdk_retry import implicit_key
from LLM_Mesh.registry.idempotency import DuplicateRequest, IdempotencyCache
from tests.registry.helpers import FakeNodes, Harness, ManualClock, fund, running, sse_chunks
from tests.registry.test_charge import BODY, CHAT, MODEL, new_user, register
from tests.registry.test_sdk_retry_replay import LoseAnswers, attempt, balance, sdk
from tests.registry.test_shared_idempotency import store_url, two_replicas

__all__ = ["store_url"]  # the fixture, for the replicas' test

STREAM = json.dumps({**BODY, "stream": True}).encode()


class Recording(LoseAnswers):
    """:class:`LoseAnswers` that also keeps each answer's bytes, the lost ones' too."""

    def __init__(self, *hs: Harness, lose: int = 1) -> None:
        super().__init__(*hs, lose=lose)
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        h = self.hs[len(self.counts) % len(self.hs)]
        self.counts.append(request.headers.get("x-stainless-retry-count"))
        response = await httpx.ASGITransport(app=h.app).handle_async_request(request)
        self.bodies.append(await response.aread())
        self.replayed.append(response.headers.get("x-mesh-replayed"))
        if self.lose > 0:
            self.lose -= 1
            flush = getattr(h.runtime.idempotency, "flush", None)
            if flush is not None:
                await flush()
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return response


def _events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e.startswith("data: {")]


async def sdk_stream(client: openai.AsyncOpenAI) -> tuple[str, list[Any]]:
    """The SDK's stream, read to its end: its text and its chunks."""
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


async def test_a_completed_streams_answer_lost_before_its_headers_is_replayed_to_the_sdk(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        net = Recording(h)
        async with sdk(net, key) as client:
            text, chunks = await sdk_stream(client)
        assert net.counts == ["0", "1"]  # the SDK retried the stream, with its marker
        assert net.replayed == [None, "true"]  # before: 409, openai.ConflictError raised
        assert len(node.calls) == 1  # run once
        first, replay = net.bodies
        assert replay == first  # the same bytes: text, finish reason, usage, mesh
        final = _events(first)[-1]
        assert final["usage"] and final["mesh"]["cost"] > 0
        assert text and text == "".join(
            c["choices"][0]["delta"].get("content") or "" for c in _events(first) if c["choices"]
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
        assert any(c.choices and c.choices[0].finish_reason for c in chunks)
        assert await balance(h, account) == (1000 - final["mesh"]["cost"], 0)  # paid once


async def test_a_retry_of_a_stream_cut_off_or_failed_is_refused_as_before(tmp_path: Path) -> None:
    """Not completed, nothing whole to replay: 409, never a second run."""
    nodes = FakeNodes()
    nodes.stream_factory = (
        lambda node, model: httpx.Response(  # cut after its first words
            200,
            headers={"content-type": "text/event-stream"},
            content=b"".join(sse_chunks(model, node.node_id, node.words)[:3]),
        )
    )
    async with running(tmp_path, nodes=nodes) as h:
        node = await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 0))
        assert first.status_code == 200 and '"error"' in first.text, first.text
        retry = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 1))
        assert retry.status_code == 409, retry.text
        err = retry.json()["error"]
        assert err["code"] == "duplicate_request" and "SDK's retry" in err["message"], err
        assert "\x00" not in err["message"] and err["param"] == "x-stainless-retry-count"
        assert retry.headers["x-should-retry"] == "false"
        assert len(node.calls) == 1


async def test_another_keys_retry_of_the_same_stream_is_never_handed_it(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await register(h, "a", "alice")
        alice, _ = await new_user(h, 1000)
        mallory, _ = await new_user(h, 1000)
        assert (await h.client.post(CHAT, content=STREAM, headers=attempt(alice, 0))).is_success
        other = await h.client.post(CHAT, content=STREAM, headers=attempt(mallory, 1))
        assert other.status_code == 200 and "x-mesh-replayed" not in other.headers
        again = await h.client.post(CHAT, content=STREAM, headers=attempt(alice, 1))
        assert again.headers.get("x-mesh-replayed") == "true"
        assert again.headers["content-type"].startswith("text/event-stream")
        assert len(node.calls) == 2


async def test_a_kept_stream_on_another_replica_is_replayed(
    tmp_path: Path, store_url: str | None
) -> None:
    """With replicas the kept stream is in the store's row (sealed), its ``stream`` set: a
    replica of the version before refuses it (409), this one replays it."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await a.register("n1", models=[MODEL])
        sync = b.app.state.node_sync
        assert sync is not None
        await sync.poll()
        key, account = await new_user(a, 1000)
        await fund(b, account, 1000)  # (b's ledger, where it is not a's)
        net = Recording(a, b)
        async with sdk(net, key) as client:
            text, _ = await sdk_stream(client)
        assert (net.counts, net.replayed) == (["0", "1"], [None, "true"])
        assert net.bodies[0] == net.bodies[1] and text
        assert a.nodes.calls() == 1


async def test_the_cache_keeps_only_an_sdk_attempts_completed_stream() -> None:
    cache = IdempotencyCache(ManualClock(), retry_window_s=60.0, max_bytes=1000)
    k = implicit_key(CHAT, "key:k1", "ab" * 32)
    mine = "/v1/chat/completions key:k1 mine"
    answer = Response(b"data: [DONE]\n\n", 200, media_type="text/event-stream")
    for key in (k, mine):
        assert await cache.begin(key, True) is None
        cache.finish(key, None)  # opened
    refused = asyncio.ensure_future(cache.begin(k, True))
    with pytest.raises(DuplicateRequest):  # still running: refused as before
        await refused
    for key in (k, mine):
        cache.keep_stream(key, answer)
        cache.stream_ended(key)
    replay = await cache.begin(k, True)
    assert replay is not None and replay.body == answer.body
    assert replay.headers["x-mesh-replayed"] == "true"
    with pytest.raises(DuplicateRequest):  # a client's own id: never replayed as a stream
        await cache.begin(mine, True)
    big = IdempotencyCache(ManualClock(), retry_window_s=60.0, max_bytes=10)
    assert await big.begin(k, True) is None
    big.finish(k, None)
    big.keep_stream(k, answer)  # over the bound: the key alone, refused as before
    big.stream_ended(k)
    with pytest.raises(DuplicateRequest):
        await big.begin(k, True)
