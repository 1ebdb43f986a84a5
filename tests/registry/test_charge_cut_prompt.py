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
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import ClientDisconnect

from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.pricing import estimate_prompt_tokens, request_cost, usual_prompt_tokens
from LLM_Mesh.core.prompt_count import said_prompt_tokens
from LLM_Mesh.core.receipt import PartStatus, ReceiptError
from LLM_Mesh.core.receipt_verify import decode_header
from LLM_Mesh.registry import account, send_stream
from LLM_Mesh.registry.job import Tally
from tests.asgi import request_then_wait
from tests.keyed import operator_account
from tests.registry.helpers import FakeNodes, running, sse_chunks
from tests.registry.signing_nodes import (
    MODEL,
    NODE_A,
    NODE_B,
    SIGNERS,
    cut_after_first_token,
    said_headers,
    stalling_nodes,
)
from tests.registry.test_charge import PRICE, new_user, register, settled, settlement
from tests.registry.test_receipts import registry_keys
from tests.registry.test_streaming import _scope
from tests.waiting import SOON_S, scaled

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
        await register(h, NODE_A, "alice")
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
        headers = said_headers(node, str(10**9))  # signed: believed but for its break
        return httpx.Response(200, headers=headers, stream=Breaks())

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await register(h, NODE_A, "alice")
        await register(h, NODE_B, "bob", continuation=True)
        key, account = await new_user(h, 10**6)
        busy = h.runtime.routing.begin(NODE_B, MODEL)  # NODE_A is picked first
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
            await asyncio.wait_for(
                app(scope, request_then_wait(body, gone), send), timeout=scaled(SOON_S)
            )
        h.runtime.routing.finish(busy, Outcome.CANCELLED)
        assert sent[0]["status"] == 200
        (b_node,) = [n for n in nodes.nodes.values() if n.node_id == NODE_B]
        assert not b_node.calls  # the client left before the failover reached "b"
        s = settlement(h)
        await settled(s)
        cost = request_cost(PRICE, usual_prompt_tokens(DIGITS, 1), 2)
        assert await s.balance(account) == (10**6 - cost, 0)  # before: the bound's price


@pytest.mark.parametrize("sign", ["none", "other_key", "other_count", "other_request"])
async def test_an_inflated_count_its_node_did_not_sign_is_not_said(
    tmp_path: Path, sign: str
) -> None:
    """Found open 2026-12-06 (``money36``; the last session's "early prompt count
    unsigned"): a node's early count was believed on its word alone, a header nobody could
    later show it sent; a node claiming the prompt's bound (~3× an honest count) had the cut
    stream charged that, and could deny it. Now only a count the node's key signed, for this
    registry, request, model and count (``core/prompt_count.checked_claim``), is said; an
    unsigned or badly signed one is not: the usual count, as an older node's."""
    async with running(tmp_path, nodes=stalling_nodes(str(10**9), sign)) as h:
        await register(h, NODE_A, "alice")
        key, account = await new_user(h, 10**6)
        await cut_after_first_token(h, key, BODY)
        s = settlement(h)
        await settled(s)
        cost = request_cost(PRICE, usual_prompt_tokens(DIGITS, 1), 2)  # before: the bound's
        assert await s.balance(account) == (10**6 - cost, 0)


async def test_the_receipt_of_a_cut_stream_keeps_the_count_its_node_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The count believed goes into the receipt's ``cut`` part (its ``prompt_tokens``,
    ``node_key``, ``node_signature``), countersigned, which the ledger entry commits to: the
    offline check (``llm-mesh receipt verify``) shows the node said what was charged. Nobody
    receives that receipt (the client left): the gateway logs it whole."""
    caplog.set_level(logging.INFO, logger="LLM_Mesh.registry.account")
    tallies: list[Tally] = []
    made = account.make_receipt

    def spy(rt: Any, job: Any, tally: Tally, payment: Any) -> Any:
        tallies.append(tally)
        return made(rt, job, tally, payment)

    monkeypatch.setattr(account, "make_receipt", spy)
    async with running(tmp_path, nodes=stalling_nodes(str(NODE_COUNT))) as h:
        await register(h, NODE_A, "alice")
        key, _ = await new_user(h, 10**6)
        await cut_after_first_token(h, key, BODY)
        await settled(settlement(h))
        (tally,) = tallies
        assert tally.receipt is not None
        checked = check(json.dumps(tally.receipt), await registry_keys(h))
        (part,) = checked.parts
        assert part.status is PartStatus.CUT and part.node_id == NODE_A
        assert part.prompt_tokens == checked.prompt_tokens == NODE_COUNT
        assert part.node_key == SIGNERS[NODE_A].node_key and part.node_signature
        lines = [r.getMessage() for r in caplog.records]
        (line,) = [m for m in lines if "signed prompt count" in m]
        assert decode_header(line.rsplit(": ", 1)[1]) == tally.receipt
        forged = {**tally.receipt, "parts": [{**tally.receipt["parts"][0], "prompt_tokens": 1}]}
        with pytest.raises(ReceiptError):  # (the registry's signature covers the count)
            check(json.dumps(forged), await registry_keys(h))


async def test_a_signed_count_receipt_whose_write_fails_is_in_the_log_whole_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Session 38's note: such a receipt, logged whole when made (INFO, above), was logged
    whole again at WARNING when its write to ``cut_receipts`` failed ("not yet stored"), and
    again at the stop. Once now: the writer knows it was logged (``submit_logged``)."""
    caplog.set_level(logging.INFO)
    async with running(tmp_path, nodes=stalling_nodes(str(NODE_COUNT))) as h:
        writer = h.runtime.cut_receipts
        assert writer is not None
        real, down = h.store.record_cut_receipts, [True]

        async def failing(batch: Any) -> None:
            if down[0]:
                raise OSError("the database is away")
            await real(batch)

        h.store.record_cut_receipts = failing  # type: ignore[method-assign,assignment]
        await register(h, NODE_A, "alice")
        key, _ = await new_user(h, 10**6)
        await cut_after_first_token(h, key, BODY)
        await settled(settlement(h))
        for _ in range(3):  # the loop's round, or ours: the database away
            await writer.flush()
        assert writer.failed >= 1
        down[0] = False
        await writer.flush()
        (stored,) = h.store.cut_receipts.values()
        receipt = stored.receipt
        whole = []
        for m in (r.getMessage() for r in caplog.records):
            with contextlib.suppress(ReceiptError):
                whole.append(decode_header(m.rsplit(": ", 1)[-1]))
        assert whole == [receipt], len(whole)


def finishing_nodes() -> FakeNodes:
    """Nodes that say a signed prompt count (:func:`said_headers`) and finish their stream
    (final usage chunk, ``[DONE]``)."""
    nodes = FakeNodes()
    nodes.stream_factory = lambda node, model: httpx.Response(
        200, headers=said_headers(node, str(NODE_COUNT)),
        content=b"".join(sse_chunks(MODEL, node.node_id, ["x", "y"])),
    )  # fmt: skip
    return nodes


async def test_the_said_count_is_checked_only_for_a_stream_cut_before_its_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature's check (one Ed25519 verify) sat on the first token's way, as the
    node's stream opened, for every stream (ttft37, issue 7: before, 1 check for the
    finished stream here); a stream that ends with its node's usage never reads the count,
    so it is checked only for a cut, as the cut is settled."""
    checks: list[int] = []
    real = send_stream.checked_claim

    def spy(said: int, value: str | None, **kw: Any) -> Any:
        checks.append(said)
        return real(said, value, **kw)

    monkeypatch.setattr(send_stream, "checked_claim", spy)
    async with running(tmp_path, nodes=finishing_nodes()) as h:
        await register(h, NODE_A, "alice")
        key, _ = await new_user(h, 10**6)
        r = await h.client.post(
            "/v1/chat/completions", json={**BODY, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
        assert checks == []  # before: [3009], as the stream opened
    async with running(tmp_path, nodes=stalling_nodes(str(NODE_COUNT))) as h:
        await register(h, NODE_A, "alice")
        key, account = await new_user(h, 10**6)
        await cut_after_first_token(h, key, BODY)
        assert checks == [NODE_COUNT]  # the cut's: believed (its charge, the test above)
        s = settlement(h)
        await settled(s)
        assert await s.balance(account) == (10**6 - request_cost(PRICE, NODE_COUNT, 2), 0)
