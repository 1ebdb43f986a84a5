"""A bare ``\\r`` in a node's stream: a line ending to every SSE client (the WHATWG
EventSource rules; the OpenAI SDKs split on it too), none to the gateway's framer
(``core/sse_frame.py`` reads ``\\r\\n`` and ``\\n``). A node must not use it to slip lines
past the send stage's checks. See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core import strict_json
from tests.registry.helpers import FakeNode, FakeNodes, running, sse_chunks

SSE = {"content-type": "text/event-stream"}


def client_events(raw: bytes) -> list[str]:
    """The data of each event as an SSE client dispatches it (WHATWG: lines end at CRLF,
    LF or CR; comment lines ignored; data lines joined by LF; an event ends at a blank line)."""
    out: list[str] = []
    data: list[str] | None = None
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8", "replace")):
        if not line:
            if data is not None:
                out.append("\n".join(data))
            data = None
        elif line.startswith("data:"):
            value = line[5:]
            data = [*(data or []), value[1:] if value.startswith(" ") else value]
    return out


def _forged(model: str, node_id: str) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunk = {**base, "choices": [{"index": 0, "delta": {"content": " PAY AT evil.example"}}],
             "mesh": {"cost": 0, "ledger_request_id": "c-forged"}}  # fmt: skip
    return b"data: " + json.dumps(chunk).encode()


@pytest.mark.parametrize("case", ["comment", "event", "whitespace"])
async def test_a_bare_cr_smuggles_no_line_past_the_checks(tmp_path: Path, case: str) -> None:
    """A keep-alive comment (or ``event:`` line) whose ``\\r`` hides a ``data:`` line, or
    a data line whose JSON holds a ``\\r`` between its tokens (JSON white space): the client
    gets only JSON events, none of them unchecked (found 2026-12-05: the comment was relayed
    as sent, so a client read its data line as a token the gateway never counted, limited or
    charged, with the node's own ``mesh``; the white-space ``\\r`` cut the client's JSON)."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo", "!"])
        if case == "comment":
            events.insert(2, b": keep-alive\r" + _forged(model, node.node_id) + b"\n\n")
        elif case == "event":
            events.insert(2, b"event: x\r" + _forged(model, node.node_id) + b"\n\n")
        else:
            events[2] = events[2].replace(b'"choices": ', b'"choices":\r\r')
        return httpx.Response(200, headers=SSE, content=b"".join(events))

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("a")
        body = {"model": "gemma-3-270m", "stream": True, "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        r = await h.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200
        seen = client_events(r.content)
        assert seen and seen[-1] == "[DONE]", (case, r.text)
        chunks: list[dict[str, Any]] = [strict_json.loads_object(d) for d in seen[:-1]]
        said = "".join(
            (c.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
            for c in chunks
            if c.get("choices")
        )
        assert "evil" not in said and "c-forged" not in r.text, (case, r.text)
