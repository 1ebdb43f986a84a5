"""A stream the client cuts before its node's final chunk pays the node's prompt count.

Found open 2026-12-06 (``money33``), closed 2026-12-06 (``money34``): the gateway charged
such a stream its prompt at the usual count, ⌈characters / 3⌉ + 5 a message + 16, a third
of the tokens of 3,000 digits (one a token on Gemma's tokenizer): a client asking
``max_tokens`` K + 1 and leaving after K tokens paid a third of a long prompt. A node now
says its count as its stream opens (``X-Mesh-Prompt-Tokens``, ``core/prompt_count.py``);
a cut stream pays that, at most the prompt's bound; a node that said nothing, the usual
count as before. The real app with fake nodes (``tests/registry/helpers.py``)."""

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
from LLM_Mesh.core.prompt_count import HDR_PROMPT_TOKENS, said_prompt_tokens
from tests.asgi import request_then_wait
from tests.keyed import operator_account
from tests.registry.helpers import FakeNodes, running, sse_chunks
from tests.registry.test_charge import (
    MODEL,
    PRICE,
    cut_after_first_token,
    new_user,
    register,
    settled,
    settlement,
    stalling_nodes,
)
from tests.registry.test_streaming import _scope

DIGITS = "".join(str(i % 10) for i in range(3000))  # 3,000 tokens on a digit-a-token tokenizer
BODY = {"model": MODEL, "messages": [{"role": "user", "content": DIGITS}], "max_tokens": 5}
NODE_COUNT = 3000 + 9  # the node's own count: a token a digit + its template's


@pytest.mark.parametrize(
    ("said", "charged"),
    [
        (str(NODE_COUNT), NODE_COUNT),  # the node's count (before the fix: the usual count)
        (str(10**9), estimate_prompt_tokens(DIGITS, 1)),  # at most the prompt's bound
        (None, usual_prompt_tokens(DIGITS, 1)),  # an older node: the usual count, as before
        ("3009.5", usual_prompt_tokens(DIGITS, 1)),  # not a whole number: not said
    ],
    ids=["said", "past_the_bound", "not_said", "garbled"],
)
async def test_a_cut_stream_pays_the_prompt_as_its_node_counted_it(
    tmp_path: Path, said: str | None, charged: int
) -> None:
    async with running(tmp_path, nodes=stalling_nodes(said)) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 10**6)
        await cut_after_first_token(h, key, BODY)
        s = settlement(h)
        await settled(s)
        cost = request_cost(PRICE, charged, 2)  # the two tokens the gateway took
        assert usual_prompt_tokens(DIGITS, 1) < NODE_COUNT / 2  # the estimate undercounts
        assert await s.balance(account) == (10**6 - cost, 0)
        assert (await s.balance(operator_account("alice")))[0] > 0


def test_only_a_whole_number_in_ascii_digits_is_a_count() -> None:
    assert said_prompt_tokens("3009") == 3009
    assert said_prompt_tokens(" 7 ") == 7
    for bad in (None, "", "-1", "1e3", "٣", "0x10", "1" * 13, "12 3"):
        assert said_prompt_tokens(bad) == 0, bad


async def test_a_node_that_breaks_is_not_believed_when_the_client_leaves_in_the_failover(
    tmp_path: Path,
) -> None:
    """Found 2026-12-06 (``review34b``): a node that said the prompt's bound as its count,
    sent two tokens and broke, then the client left while the gateway waited to fail over
    (its backoff): the stream ended ``cancelled`` with the broken node's word still in the
    tally, and its part was charged the prompt at that word: the header believed for the
    node's own break. Now a part that breaks leaves no said count behind: the usual
    count."""
    gone = asyncio.Event()
    nodes = FakeNodes()

    class Breaks(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in sse_chunks(MODEL, "a", ["x", "y", "z"])[:3]:
                yield chunk
            gone.set()  # the client leaves as the node breaks: during the failover
            raise httpx.RemoteProtocolError("peer closed connection")

    def factory(node: Any, model: str) -> httpx.Response:
        headers = {"content-type": "text/event-stream", HDR_PROMPT_TOKENS: str(10**9)}
        return httpx.Response(200, headers=headers, stream=Breaks())

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await register(h, "a", "alice")
        await register(h, "b", "bob", continuation=True)
        key, account = await new_user(h, 10**6)
        busy = h.runtime.routing.begin("b", MODEL)  # "a" is picked first
        scope = _scope("2.4")
        scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {key}".encode())]
        body = json.dumps({**BODY, "stream": True}).encode()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            if gone.is_set():
                raise OSError("client went away")
            sent.append(message)

        app: Any = h.app
        with contextlib.suppress(OSError, ClientDisconnect):
            await asyncio.wait_for(app(scope, request_then_wait(body, gone), send), timeout=5)
        h.runtime.routing.finish(busy, Outcome.CANCELLED)
        assert sent[0]["status"] == 200
        (b_node,) = [n for n in nodes.nodes.values() if n.node_id == "b"]
        assert not b_node.calls  # the client left before the failover reached "b"
        s = settlement(h)
        await settled(s)
        cost = request_cost(PRICE, usual_prompt_tokens(DIGITS, 1), 2)
        assert await s.balance(account) == (10**6 - cost, 0)  # before: the bound's price
