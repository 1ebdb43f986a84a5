"""The send stage's node side of a stream: mid-stream continuation after refusals, and
token counts from the node's own usage across a continuation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.pricing import request_cost
from tests.registry.helpers import FakeNode, FakeNodes, Harness, rank, running, sse_chunks

MODEL = "gemma-3-270m"
SSE = {"content-type": "text/event-stream"}


def _ev(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(e[len("data: ") :]) for e in text.split("\n\n") if e.startswith("data: {")]


async def _paid_the_nodes_usage(h: Harness, account: str, text: str) -> None:
    """The stream's final chunk holds the gateway's ``mesh`` with a receipt and the cost of
    the node's usage (4 prompt, 3 completion); the payer (1000 µNT) is charged that."""
    from tests.registry.test_charge import PRICE
    from tests.registry.test_paid_once import _settled

    final = _events(text)[-1]
    cost = request_cost(PRICE, 4, 3)
    assert final["mesh"]["cost"] == cost and "receipt" in final["mesh"]
    s = h.runtime.settlement
    assert s is not None
    assert await _settled(s, account, (1000 - cost, 0)) == (1000 - cost, 0)


class Dies(httpx.AsyncByteStream):
    """Sends ``head`` then the connection breaks."""

    def __init__(self, head: list[bytes]) -> None:
        self.head = head

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.head:
            yield chunk
        raise httpx.RemoteProtocolError("peer closed connection")


def completion_chunks(node_id: str, words: list[str], prompt_tokens: int = 7) -> list[bytes]:
    base = {"id": f"cmpl-{node_id}", "object": "text_completion", "created": 1, "model": MODEL}
    out = [_ev({**base, "choices": [{"index": 0, "text": w}]}) for w in words]
    out.append(_ev({**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
             "total_tokens": prompt_tokens + len(words)}  # fmt: skip
    out.append(_ev({**base, "choices": [], "usage": usage, "mesh": {"node_id": node_id}}))
    out.append(b"data: [DONE]\n\n")
    return out


async def test_refusals_before_the_stream_do_not_block_its_continuation(tmp_path: Path) -> None:
    """Two refusing nodes (429, connection refused), one that dies mid-stream, one healthy: the stream finishes on
    the healthy node (the refusals did no work and must not use up ``max_attempts``)."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "dies":
            return httpx.Response(200, headers=SSE, stream=Dies(
                completion_chunks("dies", ["Once", " upon"])[:2]))  # fmt: skip
        return httpx.Response(200, headers=SSE,
                              content=b"".join(completion_chunks("healthy", [" a", " time"])))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        busy1 = await h.register("busy1", behavior="429")
        busy2 = await h.register("busy2", behavior="connect_error")
        await h.register("dies")
        healthy = await h.register("healthy")
        rank(h.runtime.routing.router, ["busy1", "busy2", "dies", "healthy"], MODEL, h.clock())
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        r = await h.client.post("/v1/completions", json=body)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "dies"
        assert len(busy1.calls) == len(busy2.calls) == 1
        assert r.text.rstrip().endswith("data: [DONE]") and '"error"' not in r.text, r.text
        chunks = _events(r.text)
        assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == (
            "Once upon a time"
        )
        final = chunks[-1]
        assert final["mesh"]["node_id"] == "healthy" and final["mesh"]["failover_from"] == ["dies"]
        assert final["mesh"]["attempts"] == 4
        (cont,) = healthy.calls
        assert cont["body"]["prompt"] == "Tell me:Once upon"
        assert all(h.in_flight(n) == 0 for n in ("busy1", "busy2", "dies", "healthy"))


async def test_a_node_that_sent_its_usage_finished_its_answer(tmp_path: Path) -> None:
    """The node's own usage says 4 tokens in 2 chunks; it then drops the connection
    before ``[DONE]``: the answer is complete (no continuation), and counted as 4."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "a":
            events = sse_chunks(model, "a", ["Hello there", " my friend"])
            final = json.loads(events[-2][len("data: ") :])
            final["usage"] = {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
            events[-2] = _ev(final)
            return httpx.Response(200, headers=SSE, stream=Dies(events[:-1]))  # no [DONE]
        return httpx.Response(200, headers=SSE, content=b"".join(sse_chunks(model, "b", ["x"])))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("a")
        b = await h.register("b", continuation=True)
        rank(h.runtime.routing.router, ["a", "b"], MODEL, h.clock())
        body = {"model": MODEL, "stream": True, "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "a"
        assert b.calls == []  # nothing was left to continue
        assert r.text.rstrip().endswith("data: [DONE]") and '"error"' not in r.text
        chunks = _events(r.text)
        finals = [c for c in chunks if "usage" in c]
        assert len(finals) == 1 and finals[0]["mesh"]["completion_tokens"] == 4
        said = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert said == "Hello there my friend"
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok" and rec.completion_tokens == 4


async def test_continued_chat_is_priced_on_the_original_prompt(tmp_path: Path) -> None:
    """The continuing node's prompt held the text so far; its prompt_tokens less those
    tokens is the request's prompt, and what the client pays for."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "a":
            return httpx.Response(
                200, headers=SSE, stream=Dies(sse_chunks(model, "a", ["Hel"])[:2])
            )
        events = sse_chunks(model, "c", ["lo", "!"])
        final = json.loads(events[-2][len("data: ") :])
        # 10 tokens of messages + 1 token of "Hel" in the continuing node's prompt
        final["usage"] = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
        events[-2] = _ev(final)
        return httpx.Response(200, headers=SSE, content=b"".join(events))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("a")
        await h.register("c", continuation=True)
        rank(h.runtime.routing.router, ["a", "c"], MODEL, h.clock())
        body = {"model": MODEL, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "a"
        final = _events(r.text)[-1]
        assert final["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        assert final["mesh"]["prompt_tokens"] == 10 and final["mesh"]["completion_tokens"] == 3
        spec = get_spec(MODEL)
        assert spec is not None
        assert final["mesh"]["cost"] == request_cost(spec.price, 10, 3)


async def test_a_stream_ending_without_its_usage_chunk_is_paid_on_the_gateways_count(
    tmp_path: Path,
) -> None:
    """A node sends its text and ``[DONE]`` but no final ``usage`` chunk (its receipt part
    ``missing``): paid for the content chunks the client got and the prompt once, as a
    stream cut short is (found 2026-12-04: charged and paid 0, the record said 0 tokens)."""
    from tests.keyed import operator_account
    from tests.registry.test_charge import BODY, CHAT, PRICE, PROMPT, bearer, new_user
    from tests.registry.test_charge import register as register_paid
    from tests.registry.test_paid_once import _settled

    nodes = FakeNodes()

    def no_usage(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo", "!"])
        del events[-2]  # the final chunk (usage, mesh, receipt)
        return httpx.Response(200, headers=SSE, content=b"".join(events))

    nodes.stream_factory = no_usage
    async with running(tmp_path, nodes=nodes) as h:
        await register_paid(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in _events(r.text)) == (
            "Hello!"
        )
        s = h.runtime.settlement
        assert s is not None
        cost = request_cost(PRICE, PROMPT, 3)  # 3 chunks, the prompt at its usual count
        fee = cost * 5 // 100
        assert await _settled(s, account, (1000 - cost, 0)) == (1000 - cost, 0)  # before: 1000
        assert await s.balance(operator_account("alice")) == (cost - fee, 0)
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert (rec.prompt_tokens, rec.completion_tokens, rec.cost) == (PROMPT, 3, cost)
        from LLM_Mesh.cli.ledger_commands import StoreSource, audit

        report = await audit(
            StoreSource(h.runtime.ledger, h.settings.ledger_origin)
        )  # balances = entries
        assert report.ok, report.findings


def _hostile_final(extra: bytes) -> Any:
    """A node's stream: its text, its final chunk (``usage``, its own ``mesh``) written
    as ``edit`` makes it, then ``extra`` before ``[DONE]``."""

    def factory(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo", "!"])
        events[-2] = events[-2].replace(
            b'"mesh": {', b'"mesh": {"cost": 0, "ledger_request_id": "c-forged", '
        )
        if not extra:  # the usage key written with a JSON escape: the same object
            events[-2] = events[-2].replace(b'"usage"', b'"\\u0075sage"')
        return httpx.Response(200, headers=SSE, content=b"".join([*events[:-1], extra, events[-1]]))

    return factory


async def test_a_final_chunk_whose_usage_key_is_escaped_gets_the_gateways_mesh(
    tmp_path: Path,
) -> None:
    """``"\\u0075sage"`` is ``"usage"`` to every JSON reader: the final chunk is the
    gateway's to finish (its ``mesh``, receipt and payment before it), never relayed as the
    node wrote it (found 2026-12-04: the node's own ``mesh.cost`` 0 and a forged
    ``ledger_request_id`` reached the client, no receipt, and it was paid at the end only)."""
    from tests.registry.test_charge import BODY, CHAT, bearer, new_user
    from tests.registry.test_charge import register as register_paid

    nodes = FakeNodes()
    nodes.stream_factory = _hostile_final(b"")
    async with running(tmp_path, nodes=nodes) as h:
        await register_paid(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and "c-forged" not in r.text
        await _paid_the_nodes_usage(h, account, r.text)


async def test_nothing_a_node_sends_after_its_final_chunk_reaches_the_client(
    tmp_path: Path,
) -> None:
    """A node appends an event after its final chunk (here one carrying a ``mesh.receipt``
    and a ``request_id`` of its choosing, which ``receipt verify`` would take for the
    answer's, the last receipt of a stream): not relayed; the stream ends with the
    gateway's final chunk and ``[DONE]``, paid once (found 2026-12-04: relayed as sent)."""
    from tests.registry.test_charge import BODY, CHAT, bearer, new_user
    from tests.registry.test_charge import register as register_paid

    after = _ev({"choices": [], "mesh": {"request_id": "req-other", "receipt": {"v": 2}}})
    nodes = FakeNodes()
    nodes.stream_factory = _hostile_final(after)
    async with running(tmp_path, nodes=nodes) as h:
        await register_paid(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and "req-other" not in r.text, r.text
        assert r.text.rstrip().endswith("data: [DONE]")
        await _paid_the_nodes_usage(h, account, r.text)


async def test_a_nodes_mesh_on_any_other_chunk_never_reaches_the_client(tmp_path: Path) -> None:
    """A node puts a ``mesh`` (a ``receipt`` and ``request_id`` of its choosing) on a
    content chunk, and on a second JSON line of an event: ``receipt verify`` of a stream
    without the gateway's final chunk (``[DONE]`` without one) would read it as the
    answer's. The content chunk's ``mesh`` is dropped, the event of several lines ends the
    node's part (found 2026-12-04: both relayed as the node wrote them)."""
    forged = {"request_id": "req-forged", "receipt": {"v": 2}}
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    text = {**base, "choices": [{"index": 0, "delta": {"content": "x"}}]}
    cases = {
        "chunk": _ev({**text, "mesh": forged}),
        "line": _ev(text)[:-1] + _ev({**base, "choices": [], "mesh": forged}),
    }
    for case, injected in cases.items():
        nodes = FakeNodes()

        def factory(node: FakeNode, model: str, injected: bytes = injected) -> httpx.Response:
            events = sse_chunks(model, node.node_id, ["Hel", "lo"])
            return httpx.Response(200, headers=SSE, content=b"".join([*events[:2], injected,
                                                                      *events[2:]]))  # fmt: skip

        nodes.stream_factory = factory
        async with running(tmp_path / case, nodes=nodes) as h:
            await h.register("a", models=[MODEL])
            r = await h.client.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                      "stream": True},
            )  # fmt: skip
            assert r.status_code == 200 and "req-forged" not in r.text, (case, r.text)
            assert r.text.rstrip().endswith("data: [DONE]")


async def test_an_event_that_does_not_begin_with_its_data_line_is_checked_as_any(
    tmp_path: Path,
) -> None:
    """SSE lets an event carry a comment, ``event:`` or ``id:`` line before its ``data:``
    line; clients read its data all the same. Such an event is the node's like any other:
    its content counted (against the limit, and paid), its final chunk the gateway's to
    finish; only its data line is relayed (found 2026-12-04: relayed untouched: ``: x``
    before a content chunk left it uncounted, and ``event: message`` before the final chunk
    sent the node's own ``mesh``, ``cost: 0``, to the client, no receipt, paid at the end
    on the other chunks only)."""
    from tests.registry.test_charge import BODY, CHAT, bearer, new_user
    from tests.registry.test_charge import register as register_paid

    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo", "!"])
        events[1] = b": hi\n" + events[1]
        events[-2] = b"event: message\nid: 7\n" + events[-2].replace(
            b'"mesh": {', b'"mesh": {"cost": 0, "ledger_request_id": "c-forged", '
        )
        return httpx.Response(200, headers=SSE, content=b"".join(events))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await register_paid(h, "a", "alice")
        key, account = await new_user(h, 1000)
        r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
        assert r.status_code == 200 and "c-forged" not in r.text, r.text
        assert "event: message" not in r.text and r.text.rstrip().endswith("data: [DONE]")
        await _paid_the_nodes_usage(h, account, r.text)


async def test_an_error_event_however_its_json_is_written_ends_the_nodes_part(
    tmp_path: Path,
) -> None:
    """A node's error event mid-stream, written ``{ "error": ...}`` or ``{"\\u0065rror":
    ...}`` (the same object to every reader; a client's SDK raises on it and stops reading):
    the node's part ends as with ``{"error"``, the client gets the gateway's error event
    with the receipt of what it got, paid for that, never the node's error object followed
    by more text and a charge for it (found 2026-12-04: relayed as a chunk, the stream went on and
    was paid whole)."""
    from tests.registry.test_charge import BODY, CHAT, PRICE, PROMPT, bearer, new_user
    from tests.registry.test_charge import register as register_paid
    from tests.registry.test_paid_once import _settled

    for case, err in (("space", b'data: { "error": {"message": "boom"}}\n\n'),
                      ("escape", b'data: {"\\u0065rror": {"message": "boom"}}\n\n')):  # fmt: skip
        nodes = FakeNodes()

        def factory(node: FakeNode, model: str, err: bytes = err) -> httpx.Response:
            events = sse_chunks(model, node.node_id, ["Hel", "lo", "!"])
            return httpx.Response(200, headers=SSE, content=b"".join([*events[:3], err,
                                                                      *events[3:]]))  # fmt: skip

        nodes.stream_factory = factory
        async with running(tmp_path / case, nodes=nodes) as h:
            await register_paid(h, "a", "alice")
            key, account = await new_user(h, 1000)
            r = await h.client.post(CHAT, json={**BODY, "stream": True}, headers=bearer(key))
            evs = _events(r.text)
            text = "".join(e["choices"][0]["delta"].get("content", "") for e in evs[:-1])
            assert text == "Hello" and sum("error" in e for e in evs) == 1, (case, r.text)
            assert "error" in evs[-1] and "receipt" in evs[-1]["mesh"], case  # the gateway's
            cost = request_cost(PRICE, PROMPT, 2)  # the two chunks before the error
            s = h.runtime.settlement
            assert s is not None
            assert await _settled(s, account, (1000 - cost, 0)) == (1000 - cost, 0), case
