"""The gateway checks each node's receipt against what it relayed and countersigns it
(``mesh.receipt``, ``X-Mesh-Receipt``; streams: the final chunk), through the real
pipeline with fake nodes that sign (or cheat)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.requests import ClientDisconnect

from LLM_Mesh.cli.receipt_commands import check, keys_from_listing
from LLM_Mesh.core.answer_text import output_sha256, stream_text
from LLM_Mesh.core.gateway_auth import HDR_GATEWAY
from LLM_Mesh.core.receipt import NodeReceiptSigner, PartStatus, ReceiptError
from LLM_Mesh.core.receipt_verify import decode_header, parse_keys
from LLM_Mesh.registry import account
from LLM_Mesh.registry.job import Tally
from tests.asgi import request_then_wait
from tests.registry.helpers import FakeNode, FakeNodes, Harness, running, sse_chunks
from tests.registry.test_midstream import Dies, _first_is, completion_chunks
from tests.registry.test_streaming import EndlessStream, _scope
from tests.waiting import SOON_S, scaled

MODEL = "gemma-3-270m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


class SigningNodes(FakeNodes):
    """Fake nodes with real keys (their ids derived from them) that sign their answers;
    ``cheat[node_id]`` makes one misbehave: forged | counts | output | replay | none."""

    def __init__(self) -> None:
        super().__init__()
        self.signers: dict[str, NodeReceiptSigner] = {}
        self.cheat: dict[str, str] = {}

    def new(self) -> str:
        signer = NodeReceiptSigner(Ed25519PrivateKey.generate())
        self.signers[signer.node_id] = signer
        return signer.node_id

    def receipt(self, node_id: str, headers: Any, usage: dict[str, int], text: str) -> Any:
        mode = self.cheat.get(node_id, "honest")
        if mode == "none":
            return None
        signer = self.signers[node_id]
        if mode == "forged":
            signer = NodeReceiptSigner(Ed25519PrivateKey.generate())
        return signer.sign(
            registry_id=headers[HDR_GATEWAY],
            request_id="req-earlier" if mode == "replay" else headers["x-request-id"],
            model=MODEL,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"] + (1 if mode == "counts" else 0),
            output_sha256=output_sha256(text + (" (edited)" if mode == "output" else "")),
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        host = f"{request.url.host}:{request.url.port}"
        node = self.nodes.get(host)
        if node is None or resp.status_code != 200 or request.url.path == "/mesh/health":
            return resp
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            if not hasattr(resp, "_content"):
                return resp  # a factory's own stream
            return self._sign_stream(node, request, resp.content.decode())
        data = resp.json()
        text = data["choices"][0].get("message", {}).get("content") or data["choices"][0].get(
            "text", ""
        )
        data["mesh"]["receipt"] = self.receipt(node.node_id, request.headers, data["usage"], text)
        return httpx.Response(200, json=data)

    def _sign_stream(self, node: FakeNode, request: httpx.Request, sse: str) -> httpx.Response:
        events = [e for e in sse.split("\n\n") if e]
        text, _ = stream_text(events)
        final = json.loads(events[-2][len("data: ") :])
        if "usage" not in final:  # no final chunk: nothing to sign
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=sse.encode())  # fmt: skip
        final["mesh"]["receipt"] = self.receipt(node.node_id, request.headers, final["usage"], text)
        events[-2] = "data: " + json.dumps(final)
        body = "".join(e + "\n\n" for e in events).encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


@pytest.fixture
def tallies(monkeypatch: pytest.MonkeyPatch) -> list[Tally]:
    """Every Tally the account stage made a receipt for."""
    seen: list[Tally] = []
    real = account.make_receipt

    def spy(rt: Any, job: Any, tally: Tally, payment: Any) -> Any:
        seen.append(tally)
        return real(rt, job, tally, payment)

    monkeypatch.setattr(account, "make_receipt", spy)
    return seen


async def registry_keys(h: Harness) -> Any:
    r = await h.client.get("/v1/ledger/keys")
    assert r.status_code == 200
    return parse_keys(keys_from_listing(r.text))


async def test_a_whole_answer_carries_the_countersigned_receipt(
    tmp_path: Path, tallies: list[Tally]
) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node_id = nodes.new()
        await h.register(node_id)
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text
        receipt = r.json()["mesh"]["receipt"]
        assert decode_header(r.headers["x-mesh-receipt"]) == receipt
        keys = await registry_keys(h)
        checked = check(r.text, keys, require_signed=True)  # the CLI's check, offline
        assert check(r.headers["x-mesh-receipt"], keys).receipt_hash == checked.receipt_hash
        assert checked.registry_id == h.runtime.signer.registry_id
        assert checked.request_id == r.headers["x-mesh-request-id"]
        assert (checked.prompt_tokens, checked.completion_tokens) == (10, 5)
        assert checked.output_sha256 == output_sha256("Hello!")
        (part,) = checked.parts
        assert part.status is PartStatus.SIGNED and part.node_id == node_id
        (tally,) = tallies
        assert tally.receipt_hash == checked.receipt_hash == receipt["receipt_hash"]
        assert [p.payable for p in tally.node_receipts] == [True]


async def test_a_stream_carries_the_receipt_in_its_final_chunk(
    tmp_path: Path, tallies: list[Tally]
) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(nodes.new())
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 200 and "x-mesh-receipt" not in r.headers
        checked = check(r.text, await registry_keys(h), require_signed=True)  # text checked too
        assert checked.output_sha256 == output_sha256("Hello!")
        assert tallies[-1].receipt_hash == checked.receipt_hash
        with pytest.raises(ReceiptError) as exc:
            check(r.text.replace("Hel", "Jel"), await registry_keys(h))
        assert exc.value.reason == "output_sha256"


@pytest.mark.parametrize(
    ("cheat", "status", "reason"),
    [
        ("forged", PartStatus.INVALID, "node_key"),  # signed with another key
        ("counts", PartStatus.INVALID, "usage"),  # signed other token counts than it sent
        ("output", PartStatus.INVALID, "output_sha256"),  # signed another output
        ("replay", PartStatus.INVALID, "request_id"),  # a receipt of another request
        ("none", PartStatus.MISSING, ""),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_bad_node_receipt_is_marked_and_the_answer_is_delivered(
    tmp_path: Path, tallies: list[Tally], cheat: str, status: PartStatus, reason: str, stream: bool
) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node_id = nodes.new()
        nodes.cheat[node_id] = cheat
        await h.register(node_id)
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert r.status_code == 200 and "Hel" in r.text  # the client still gets its answer
        keys = await registry_keys(h)
        checked = check(r.text, keys)  # the gateway's receipt is valid: it says what happened
        (part,) = checked.parts
        assert (part.status, part.reason) == (status, reason)
        assert part.node_signature == ""
        with pytest.raises(ReceiptError) as exc:
            check(r.text, keys, require_signed=True)
        assert exc.value.reason == "unsigned_part"
        (tally,) = tallies
        # an invalid receipt is not paid; a missing one is paid on the gateway's count
        assert [p.payable for p in tally.node_receipts] == [status is PartStatus.MISSING]
        assert tally.receipt_hash == checked.receipt_hash


async def test_a_continued_stream_has_a_part_per_node(tmp_path: Path, tallies: list[Tally]) -> None:
    nodes = SigningNodes()
    a, b = nodes.new(), nodes.new()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == a:  # breaks off after one token: it never signs
            head = completion_chunks(a, model, ["Once", " upon"])[:1]
            return httpx.Response(200, headers=sse, stream=Dies(head))
        events = completion_chunks(b, model, [" upon", " a", " time"])
        final = json.loads(events[-2][len(b"data: ") :])
        final["mesh"]["receipt"] = nodes.receipt(
            b, node.calls[-1]["headers"], final["usage"], " upon a time"
        )
        events[-2] = b"data: " + json.dumps(final).encode() + b"\n\n"
        return httpx.Response(200, headers=sse, content=b"".join(events))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register(a)
        await h.register(b)
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        text = await _first_is(h, a, b, body, "/v1/completions")
        checked = check(text, await registry_keys(h))  # the whole text hashes to the receipt's
        assert checked.output_sha256 == output_sha256("Once upon a time")
        assert [(p.node_id, p.status) for p in checked.parts] == [
            (a, PartStatus.BROKEN), (b, PartStatus.SIGNED)
        ]  # fmt: skip
        assert [p.completion_tokens for p in checked.parts] == [1, 3]
        assert checked.completion_tokens == 4 and checked.prompt_tokens == 7 - 1
        assert checked.parts[1].prompt_tokens == 7  # node b's own count (its prompt held "Once")
        (tally,) = tallies
        assert [p.payable for p in tally.node_receipts] == [True, True]


async def test_a_refusal_or_an_error_makes_no_receipt(tmp_path: Path, tallies: list[Tally]) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(nodes.new(), behavior="400")
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 400 and "x-mesh-receipt" not in r.headers
        assert tallies == []


async def test_an_idempotent_replay_carries_the_same_receipt(tmp_path: Path) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(nodes.new())
        headers = {"Idempotency-Key": "once-1"}
        first = await h.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        again = await h.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert again.headers.get("x-mesh-replayed") == "true"
        assert again.headers["x-mesh-receipt"] == first.headers["x-mesh-receipt"]
        assert len(nodes.nodes[next(iter(nodes.nodes))].calls) == 1


async def test_a_stream_nobody_can_continue_ends_with_an_error_that_carries_the_receipt(
    tmp_path: Path, tallies: list[Tally]
) -> None:
    nodes = SigningNodes()
    a = nodes.new()

    def factory(node: FakeNode, model: str) -> httpx.Response:  # breaks after "Hel"
        head = sse_chunks(model, a, ["Hel", "lo"])[:2]
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=Dies(head))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(a)
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert '"error"' in r.text and r.text.rstrip().endswith("data: [DONE]")
        checked = check(r.text, await registry_keys(h))  # the text delivered hashes to it
        assert checked.output_sha256 == output_sha256("Hel")
        assert [(p.node_id, p.status, p.completion_tokens) for p in checked.parts] == [
            (a, PartStatus.BROKEN, 1)
        ]  # fmt: skip
        (tally,) = tallies
        assert tally.receipt_hash == checked.receipt_hash
        assert [p.payable for p in tally.node_receipts] == [True]


async def test_a_stream_that_ends_without_a_final_chunk_has_a_missing_part(
    tmp_path: Path, tallies: list[Tally]
) -> None:
    nodes = SigningNodes()
    a = nodes.new()

    def factory(node: FakeNode, model: str) -> httpx.Response:  # no usage+mesh chunk
        events = sse_chunks(model, a, ["Hel", "lo"])
        del events[-2]
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=b"".join(events))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(a)
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 200 and '"receipt"' not in r.text  # no final chunk to carry it
        await h.runtime.writer.flush()  # the record (and the receipt for the ledger) is made
        (tally,) = tallies
        assert [(p.status, p.payable) for p in tally.node_receipts] == [
            (PartStatus.MISSING, True)
        ]  # fmt: skip
        assert tally.receipt is not None and tally.receipt_hash is not None
        assert check(json.dumps(tally.receipt), await registry_keys(h)).parts[0].node_id == a


async def test_a_client_that_leaves_mid_stream_leaves_a_cut_part_for_the_ledger(
    tmp_path: Path, tallies: list[Tally]
) -> None:
    nodes = SigningNodes()
    a = nodes.new()
    nodes.stream_factory = lambda node, model: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=EndlessStream(model, a)
    )
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(a)
        body = json.dumps({**CHAT, "stream": True}).encode()
        gone = asyncio.Event()
        sent: list[dict[str, Any]] = []

        receive = request_then_wait(body, gone)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and len(sent) >= 5:
                gone.set()  # the client goes away after a few chunks

        app: Any = h.app
        with contextlib.suppress(OSError, ClientDisconnect):
            await asyncio.wait_for(app(_scope("2.3"), receive, send), timeout=scaled(SOON_S))
        assert b"receipt" not in b"".join(m.get("body", b"") for m in sent)  # nobody gets it
        (tally,) = tallies
        (part,) = tally.node_receipts
        assert part.status is PartStatus.CUT and part.payable and part.completion_tokens >= 3
        assert tally.receipt_hash is not None and tally.outcome == "cancelled"
