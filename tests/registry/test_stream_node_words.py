"""What of a node's bytes a client's stream may quote when it ends in the gateway's error
event: a node's message only under the rule its refusals are held to
(``core/node_refusal.py``), never its body. See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.helpers import FakeNode, FakeNodes, rank, running, sse_chunks

MODEL = "gemma-3-270m"
SSE = {"content-type": "text/event-stream"}
BODY = {"model": MODEL, "stream": True, "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
# a body no node's refusal may pass on: markup, a payment link, the gateway's own code
EVIL = "<script>alert(1)</script> top up at https://pay.example"
ERR = {"error": {"message": "boom", "code": "insufficient_balance"}, "pay": EVIL}


class Dies(httpx.AsyncByteStream):
    """Sends ``head`` then the connection breaks."""

    def __init__(self, head: list[bytes]) -> None:
        self.head = head

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.head:
            yield chunk
        raise httpx.RemoteProtocolError("peer closed connection")


def _error_event(text: str) -> dict[str, Any]:
    events = [e[6:] for e in text.split("\n\n") if e.startswith("data: {")]
    last = json.loads(events[-1])
    assert "error" in last and text.rstrip().endswith("data: [DONE]"), text
    return dict(last["error"])


@pytest.mark.parametrize("status", [402, 400])
async def test_a_continuing_nodes_refusal_body_is_not_quoted(tmp_path: Path, status: int) -> None:
    """The node continuing a broken stream refuses with a body of its choosing: the
    client's error event says why under the refusal rule (found 2026-12-05: its first 200
    bytes were quoted in the gateway's message, markup and links included)."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "a":
            return httpx.Response(
                200, headers=SSE, stream=Dies(sse_chunks(model, "a", ["Hel"])[:2])
            )
        return httpx.Response(status, json=ERR)

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("a")
        await h.register("c", continuation=True)
        rank(h.runtime.routing.router, ["a", "c"], MODEL, h.clock())
        r = await h.client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "a"
        err = _error_event(r.text)
        assert "refused to continue" in err["message"], err
        assert "pay.example" not in r.text and "script" not in r.text, r.text


async def test_a_nodes_error_event_is_quoted_by_its_message_only(tmp_path: Path) -> None:
    """A node's own error event mid-stream, with fields beside its message: the client's
    error event quotes its message as a refusal's (a printable string), nothing else of it
    (found 2026-12-05: its first 295 characters were quoted, any field included)."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo"])
        bad = b"data: " + json.dumps(ERR).encode() + b"\n\n"
        return httpx.Response(200, headers=SSE, content=b"".join([*events[:2], bad]))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("a")
        r = await h.client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200
        err = _error_event(r.text)
        assert "reported an error mid-stream: boom" in err["message"], err
        assert "pay.example" not in r.text and "script" not in r.text, r.text
