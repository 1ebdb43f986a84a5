"""A node that claims the prompt's bound, sends a token and stalls is not paid its claim
when the client gives up waiting.

Found 2026-12-06 (``stall35``): a stream the client cuts pays the prompt count its node
said as the stream opened (``X-Mesh-Prompt-Tokens``, ``money34``), at most the prompt's
bound. A node could say the bound, send one token and go quiet: a client leaving before
the stream floor cut the node off (60 s of grace, then 0.25 tokens a second) made a
client's cut, and paid the prompt at the bound (3,024 tokens for these 3,000 digits' 1,021
usual), to the node. Now a part that has sent nothing with output for longer than the
floor allows an event (4 s of its own time, ``core/prompt_count.stalled``) when the client
leaves is not believed: the usual count. An honest node streaming at its pace, or a client
that was slow to read, keeps its count. The real app with fake nodes on a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import ClientDisconnect

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.pricing import estimate_prompt_tokens, request_cost, usual_prompt_tokens
from LLM_Mesh.core.prompt_count import believed_at_cut, quiet_s, stalled
from tests.asgi import request_then_wait
from tests.registry.helpers import FakeNodes, Harness, running, sse_chunks
from tests.registry.signing_nodes import MODEL, NODE_A, said_headers
from tests.registry.test_charge import PRICE, new_user, register, settled, settlement
from tests.registry.test_streaming import _scope
from tests.waiting import SOON_S, scaled

DIGITS = "".join(str(i % 10) for i in range(3000))  # 3,000 tokens on a digit-a-token tokenizer
BODY = {"model": MODEL, "messages": [{"role": "user", "content": DIGITS}], "max_tokens": 64}
NODE_COUNT = 3000 + 9  # an honest node's own count
BOUND = estimate_prompt_tokens(DIGITS, 1)
USUAL = usual_prompt_tokens(DIGITS, 1)
WORDS = [f"w{i}" for i in range(40)]


def _fed(said: str) -> tuple[FakeNodes, asyncio.Queue[bytes]]:
    """A node whose stream says ``said`` as its prompt count, then sends what the test puts
    in the queue, when it does (never ends on its own)."""
    nodes, feed = FakeNodes(), asyncio.Queue[bytes]()

    class Fed(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                yield await feed.get()

    nodes.stream_factory = lambda node, model: httpx.Response(
        200, headers=said_headers(node, said), stream=Fed()
    )
    return nodes, feed


class Client:
    """A keyed client's stream through the app, driven by the test: ``gone`` leaves."""

    def __init__(self, h: Harness, key: str) -> None:
        self.h, self.gone, self.sent = h, asyncio.Event(), list[dict[str, Any]]()
        self.slow_write: bytes | None = None  # a write holding this takes 30 s, then fails
        scope = _scope("2.4")
        scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {key}".encode())]
        body = json.dumps({**BODY, "stream": True}).encode()
        app: Any = h.app
        self.task = asyncio.create_task(app(scope, request_then_wait(body, self.gone), self.send))

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone.is_set():
            raise OSError("client went away")
        if self.slow_write is not None and self.slow_write in message.get("body", b""):
            self.h.clock.advance(30.0)  # the client reads nothing for 30 s, then leaves
            self.gone.set()
            raise OSError("client went away")
        self.sent.append(message)

    async def relayed(self, word: str) -> None:
        """Until the gateway wrote ``word`` to the client and went back to the node."""
        needle = f'"{word}"'.encode()
        for _ in range(500):
            if any(needle in m.get("body", b"") for m in self.sent):
                await asyncio.sleep(0.05)  # (its read of the node awaits the next event)
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{word!r} never reached the client")

    async def leave(self) -> None:
        self.gone.set()
        with contextlib.suppress(OSError, ClientDisconnect):
            await asyncio.wait_for(self.task, timeout=scaled(SOON_S))
        assert self.sent[0]["status"] == 200


def _tokens(words: list[str]) -> list[bytes]:
    """The role chunk and one content chunk a word."""
    return sse_chunks(MODEL, "a", words)[: len(words) + 1]


async def _charged(h: Harness, account: str, completions: int) -> int:
    """The prompt tokens the client was charged for, ``completions`` delivered."""
    s = settlement(h)
    await settled(s)
    paid = 10**6 - (await s.balance(account))[0]
    for prompt in (USUAL, NODE_COUNT, BOUND):
        if paid == request_cost(PRICE, prompt, completions):
            return prompt
    raise AssertionError(f"charged {paid} µNT: none of the counts")


async def test_a_node_that_stalls_after_a_token_is_not_paid_its_claim_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    """The attack: it failed before the fix (the bound, 3,024, charged; 1,021 now)."""
    nodes, feed = _fed(str(10**9))  # the bound, at most (money34's cap)
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, NODE_A, "alice")
        key, account = await new_user(h, 10**6)
        client = Client(h, key)
        for chunk in _tokens(["x"]):
            feed.put_nowait(chunk)
        await client.relayed("x")
        h.clock.advance(30.0)  # quiet; the floor would cut it at 64 s
        await client.leave()
        assert await _charged(h, account, 1) == USUAL  # before the fix: BOUND


@pytest.mark.parametrize("last_gap_s", [0.0, 3.5], ids=["at_once", "within_the_floor"])
async def test_an_honest_node_streaming_at_its_pace_keeps_its_count(
    tmp_path: Path, last_gap_s: float
) -> None:
    """A slow honest node (a token every 2 s for 40 s) whose client leaves mid-stream,
    within the floor's time for an event of its last token: its count is paid."""
    nodes, feed = _fed(str(NODE_COUNT))
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, NODE_A, "alice")
        key, account = await new_user(h, 10**6)
        client = Client(h, key)
        chunks = _tokens(WORDS[:20])
        feed.put_nowait(chunks[0])
        for word, chunk in zip(WORDS[:20], chunks[1:], strict=True):
            h.clock.advance(2.0)
            feed.put_nowait(chunk)
            await client.relayed(word)
        h.clock.advance(last_gap_s)
        await client.leave()
        assert await _charged(h, account, 20) == NODE_COUNT


async def test_a_client_slow_to_read_does_not_make_the_node_stalled(tmp_path: Path) -> None:
    """The client reads nothing for 30 s while the gateway writes it a token, then leaves:
    the node was not quiet (the write's time is the client's), its count is paid."""
    nodes, feed = _fed(str(NODE_COUNT))
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, NODE_A, "alice")
        key, account = await new_user(h, 10**6)
        client = Client(h, key)
        client.slow_write = b'"y"'
        for chunk in _tokens(["x"]):
            feed.put_nowait(chunk)
        await client.relayed("x")
        feed.put_nowait(sse_chunks(MODEL, "a", ["y"])[1])
        for _ in range(500):
            if client.gone.is_set():
                break
            await asyncio.sleep(0.01)
        await client.leave()
        assert await _charged(h, account, 2) == NODE_COUNT


async def test_a_node_quiet_past_the_floor_with_a_token_before_is_not_believed(
    tmp_path: Path,
) -> None:
    """Tokens at an honest pace, then quiet for 5 s (past the floor's 4 s for an event) as
    the client leaves: not believed, whatever came before."""
    nodes, feed = _fed(str(BOUND))
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, NODE_A, "alice")
        key, account = await new_user(h, 10**6)
        client = Client(h, key)
        chunks = _tokens(WORDS[:10])
        feed.put_nowait(chunks[0])
        for word, chunk in zip(WORDS[:10], chunks[1:], strict=True):
            feed.put_nowait(chunk)
            await client.relayed(word)
        h.clock.advance(5.0)
        await client.leave()
        assert await _charged(h, account, 10) == USUAL


async def test_a_node_sharing_its_time_is_judged_on_its_share(tmp_path: Path) -> None:
    """A node with 8 requests in flight (its 8 slots) gives this stream an eighth of its
    time: 20 s without a token are 2.5 s of its share (``SharedTime``), within the floor's
    4 s; the count is paid (alone on the node, the same 20 s are a stall)."""
    nodes, feed = _fed(str(NODE_COUNT))
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, NODE_A, "alice", max_concurrency=8)
        key, account = await new_user(h, 10**6)
        others = [h.runtime.routing.begin(NODE_A, MODEL) for _ in range(7)]
        client = Client(h, key)
        for chunk in _tokens(["x"]):
            feed.put_nowait(chunk)
        await client.relayed("x")
        h.clock.advance(20.0)
        await client.leave()
        for att in others:
            h.runtime.routing.finish(att, Outcome.CANCELLED)
        assert await _charged(h, account, 1) == NODE_COUNT


async def test_time_shared_before_the_quiet_does_not_excuse_a_stall(tmp_path: Path) -> None:
    """A node claiming the bound streams 30 tokens, one each 2 s, while it has 8 requests
    in flight (52.5 s of the 60 lost to the others: ``SharedTime``), then, alone on the
    node, goes quiet for 30 s as the client leaves: stalled, not believed. Failed before
    (found 2026-12-06, review35b: the whole part's shared time, not the quiet's, was taken
    off the quiet, so 30 s alone were 0 s and the bound, 3,024, was charged): the time a
    part may be quiet grew with the shared time before it."""
    nodes, feed = _fed(str(BOUND))
    async with running(tmp_path, nodes=nodes) as h:
        await register(h, NODE_A, "alice", max_concurrency=8)
        key, account = await new_user(h, 10**6)
        others = [h.runtime.routing.begin(NODE_A, MODEL) for _ in range(7)]
        client = Client(h, key)
        chunks = _tokens(WORDS[:30])
        feed.put_nowait(chunks[0])
        for word, chunk in zip(WORDS[:30], chunks[1:], strict=True):
            h.clock.advance(2.0)
            feed.put_nowait(chunk)
            await client.relayed(word)
        for att in others:
            h.runtime.routing.finish(att, Outcome.CANCELLED)
        h.clock.advance(30.0)  # alone on the node: all of it its own time
        await client.leave()
        assert await _charged(h, account, 30) == USUAL  # before the fix: BOUND


def test_stalled_is_quiet_past_the_floors_time_for_an_event() -> None:
    assert not stalled(4.0, 0.25) and stalled(4.01, 0.25)
    assert not stalled(10**6, 0.0)  # the floor off: nothing judged stalled
    assert believed_at_cut(3009, 3.9, 0.25) == 3009
    assert believed_at_cut(3009, 4.1, 0.25) == 0
    # the client's writes and the node's shared time are not its quiet; never below 0
    assert quiet_s(100.0, 90.0, 3.0, 2.0) == 5.0
    assert quiet_s(100.0, 90.0, 30.0, 0.0) == 0.0
    assert quiet_s(100.0, 90.0, -5.0, -5.0) == 10.0
