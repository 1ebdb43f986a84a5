"""A client's own request id (``X-Request-Id`` / ``Idempotency-Key``) never reaches a node:
the node gets a gateway-made ``req-`` id (the form every probe has), signs it into its
receipt part, and the answer maps the client's id to it (``mesh.receipt_request_id``), so
the receipt still verifies offline. Through the real registry app, recording fake nodes
that sign (``tests/registry/test_receipts.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.cli.receipt_commands import check
from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.receipt import PartStatus, ReceiptError
from tests.registry.helpers import FakeNode, running, sse_chunks
from tests.registry.test_midstream import Dies, completion_chunks
from tests.registry.test_receipts import CHAT, SigningNodes, registry_keys

MINE = "alice-session-42"  # a client's id that names someone
GATEWAY_MADE = re.compile(r"req-[0-9a-f]{32}")


def _final_mesh(text: str) -> dict[str, Any]:
    finals = [json.loads(ln[5:]) for ln in text.splitlines() if '"receipt"' in ln]
    return dict(finals[-1]["mesh"])


def _node_saw(node: FakeNode) -> str:
    """The one request id ``node`` was sent, checked to be gateway-made; no header nor byte
    of any call names the client's."""
    seen = set()
    for call in node.calls:
        assert MINE.encode() not in call["raw"]
        for name, value in call["headers"].items():
            assert MINE not in value, name
        seen.add(call["headers"]["x-request-id"])
    (rid,) = seen
    assert GATEWAY_MADE.fullmatch(rid), rid
    return rid


@pytest.mark.parametrize("header", ["X-Request-Id", "Idempotency-Key"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_node_never_sees_the_clients_id_and_the_receipt_verifies(
    tmp_path: Path, stream: bool, header: str
) -> None:
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node = await h.register(nodes.new())
        r = await h.client.post(
            "/v1/chat/completions", json={**CHAT, "stream": stream}, headers={header: MINE}
        )
        assert r.status_code == 200, r.text
        rid = _node_saw(node)
        mesh = _final_mesh(r.text) if stream else r.json()["mesh"]
        # the client still sees its own id; the receipt names the node's, mapped in the answer
        assert r.headers["x-mesh-request-id"] == mesh["request_id"] == MINE
        assert mesh["receipt_request_id"] == mesh["receipt"]["request_id"] == rid
        keys = await registry_keys(h)
        checked = check(r.text, keys, require_signed=True)  # the node's signature of rid
        assert checked.request_id == rid and checked.parts[0].status is PartStatus.SIGNED
        assert check(r.text, keys, request_id=MINE).receipt_hash == checked.receipt_hash
        assert check(r.text, keys, request_id=rid).receipt_hash == checked.receipt_hash
        with pytest.raises(ReceiptError, match="request_id"):
            check(r.text, keys, request_id="bob-session-7")
        # a second request with another id of its own gets another gateway-made id
        again = await h.client.post("/v1/chat/completions", json=CHAT,
                                    headers={header: "alice-session-43"})  # fmt: skip
        assert again.status_code == 200, again.text
        assert node.calls[-1]["headers"]["x-request-id"] not in (rid, "alice-session-43")


def _paste(text: str, stream: bool, mesh: dict[str, Any]) -> str:
    """The answer ``text`` with its ``mesh.receipt`` and ``receipt_request_id`` from ``mesh``
    (another request's): what a user would show as this answer's receipt."""
    if not stream:
        data = json.loads(text)
        data["mesh"].update(receipt=mesh["receipt"], receipt_request_id=mesh["receipt_request_id"])
        return json.dumps(data)
    lines = text.splitlines()
    at = max(i for i, ln in enumerate(lines) if '"receipt"' in ln)
    final = json.loads(lines[at][5:])
    final["mesh"].update(receipt=mesh["receipt"], receipt_request_id=mesh["receipt_request_id"])
    lines[at] = "data: " + json.dumps(final)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_receipt_pasted_into_the_answer_for_another_client_id_is_refused(
    tmp_path: Path, stream: bool
) -> None:
    """The paste attack (found 2026-12-03): client A's receipt (and its mapping) in client B's
    answer of the same text verified, ``--request-id B`` too: only the answer linked B's id
    to the receipt. The registry's countersignature now covers the client's id (hashed)."""
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        await h.register(nodes.new())
        answers = []
        for mine in (MINE, "bob-session-7"):
            r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                    headers={"X-Request-Id": mine})  # fmt: skip
            assert r.status_code == 200, r.text
            answers.append(r.text)
        alice, bob = answers
        keys = await registry_keys(h)
        alices = _final_mesh(alice) if stream else json.loads(alice)["mesh"]
        check(bob, keys, request_id="bob-session-7", require_signed=True)  # honest: verifies
        pasted = _paste(bob, stream, alices)
        bobs = _final_mesh(bob) if stream else json.loads(bob)["mesh"]
        same = ("output_sha256", "prompt_tokens", "completion_tokens")  # all but the request
        assert [alices["receipt"][k] for k in same] == [bobs["receipt"][k] for k in same]
        with pytest.raises(ReceiptError) as exc:
            check(pasted, keys)
        assert exc.value.reason == "request_id"
        assert "the answer says request_id 'bob-session-7'" in str(exc.value)
        assert "client_id_hash is not the hash of 'bob-session-7'" in str(exc.value)
        with pytest.raises(ReceiptError, match="client_id_hash is not the hash"):
            check(pasted, keys, request_id="bob-session-7")
        assert alices["receipt"]["client_id_hash"] and MINE not in json.dumps(alices["receipt"])
        receipt_only = json.dumps(alices["receipt"])  # the receipt alone names its client
        assert check(receipt_only, keys, request_id=MINE).request_id == alices["receipt_request_id"]
        with pytest.raises(ReceiptError, match="request_id"):
            check(receipt_only, keys, request_id="bob-session-7")


async def test_a_request_without_an_id_of_its_own_is_unchanged(tmp_path: Path) -> None:
    """The hot path: the gateway's own id goes to the node as it is; no mapping."""
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node = await h.register(nodes.new())
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text
        mesh = r.json()["mesh"]
        assert node.calls[0]["headers"]["x-request-id"] == mesh["request_id"]
        assert mesh["receipt"]["request_id"] == mesh["request_id"]
        assert GATEWAY_MADE.fullmatch(mesh["request_id"])
        assert "receipt_request_id" not in mesh
        assert mesh["receipt"]["client_id_hash"] == ""  # signed: no client's own id
        check(r.text, await registry_keys(h), request_id=mesh["request_id"], require_signed=True)


async def test_a_continued_stream_gives_the_next_node_the_same_gateway_made_id(
    tmp_path: Path,
) -> None:
    nodes = SigningNodes()
    a, b = nodes.new(), nodes.new()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == a:  # breaks mid-answer: b continues it
            head = completion_chunks(a, model, ["Once", " upon"])[:2]
            return httpx.Response(200, headers=sse, stream=Dies(head))
        return httpx.Response(200, headers=sse,
                              content=b"".join(completion_chunks(b, model, [" a", " time"])))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        node_a, node_b = await h.register(a), await h.register(b)
        body = {"model": CHAT["model"], "prompt": "hi", "max_tokens": 8, "stream": True}
        busy = h.runtime.routing.begin(b, body["model"])  # a is picked first
        try:
            r = await h.client.post("/v1/completions", json=body, headers={"X-Request-Id": MINE})
        finally:
            h.runtime.routing.finish(busy, Outcome.CANCELLED)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == a, r.text
        assert " time" in r.text and (len(node_a.calls), len(node_b.calls)) == (1, 1)
        rid = _node_saw(node_a)
        assert _node_saw(node_b) == rid
        mesh = _final_mesh(r.text)
        assert mesh["request_id"] == MINE and mesh["receipt_request_id"] == rid
        keys = await registry_keys(h)
        checked = check(r.text, keys, request_id=MINE)
        assert [(p.node_id, p.status) for p in checked.parts] == [
            (a, PartStatus.BROKEN), (b, PartStatus.SIGNED)
        ]  # fmt: skip


async def test_a_stream_that_ends_in_an_error_maps_the_id_on_its_error(tmp_path: Path) -> None:
    nodes = SigningNodes()
    a = nodes.new()

    def factory(node: FakeNode, model: str) -> httpx.Response:  # breaks after "Hel"
        head = sse_chunks(model, a, ["Hel", "lo"])[:2]
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=Dies(head))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        node = await h.register(a)
        r = await h.client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                headers={"X-Request-Id": MINE})  # fmt: skip
        assert '"error"' in r.text
        rid = _node_saw(node)
        mesh = _final_mesh(r.text)
        assert mesh["request_id"] == MINE and mesh["receipt_request_id"] == rid
        assert check(r.text, await registry_keys(h), request_id=MINE).request_id == rid


async def test_a_retry_with_the_same_id_replays_the_same_mapped_answer(tmp_path: Path) -> None:
    """Idempotency stays keyed by the client's id: the retry is the kept answer (the node ran
    once), with the same gateway-made id and receipt; it verifies under the client's id."""
    nodes = SigningNodes()
    async with running(tmp_path, nodes=nodes) as h:
        node = await h.register(nodes.new())
        headers = {"Idempotency-Key": MINE}
        first = await h.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        again = await h.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert again.headers.get("x-mesh-replayed") == "true"
        assert len(node.calls) == 1
        rid = _node_saw(node)
        assert again.json()["mesh"]["receipt_request_id"] == rid
        assert again.headers["x-mesh-receipt"] == first.headers["x-mesh-receipt"]
        keys = await registry_keys(h)
        check(again.text, keys, request_id=MINE, require_signed=True)
        # the replayed receipt alone (its header) names the client's id: the link is signed
        assert check(again.headers["x-mesh-receipt"], keys, request_id=MINE).request_id == rid
        stream, mine = {**CHAT, "stream": True}, {"X-Request-Id": MINE + "-s"}
        assert (await h.client.post("/v1/chat/completions", json=stream, headers=mine)).is_success
        r = await h.client.post("/v1/chat/completions", json=stream, headers=mine)
        assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_request"
        assert len(node.calls) == 2  # the stream ran once, its retry was refused as before
