"""What an SSE client reads of a node's stream relayed by the gateway: only the events the
send stage checked, each one JSON. A bare ``\\r`` is a line ending to every SSE client (the
WHATWG EventSource rules; the OpenAI Python SDK's line decoder too) and none to the gateway's framer
(``core/sse_frame.py`` reads ``\\r\\n`` and ``\\n``); a byte order mark at the stream's
start is dropped by clients; a ``data`` line without a colon is a data field. A node must
not use any of them to slip lines past the checks. See docs/security.md, "Hostile nodes"."""

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
    """The data of each event as an SSE client dispatches it (WHATWG: one byte order mark
    at the stream's start ignored; lines end at CRLF, LF or CR; comment lines ignored; a
    line without a colon is a field with an empty value; data lines joined by LF; an event
    ends at a blank line)."""
    text = raw.decode("utf-8", "replace")
    out: list[str] = []
    data: list[str] | None = None
    for line in re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")):
        if not line:
            if data is not None:
                out.append("\n".join(data))
            data = None
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            if name == "data":
                data = [*(data or []), value[1:] if value.startswith(" ") else value]
    return out


def _forged(model: str, node_id: str) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunk = {**base, "choices": [{"index": 0, "delta": {"content": " PAY AT evil.example"}}],
             "mesh": {"cost": 0, "ledger_request_id": "c-forged"}}  # fmt: skip
    return b"data: " + json.dumps(chunk).encode()


@pytest.mark.parametrize("case", ["comment", "event", "whitespace", "bom", "data_field"])
async def test_no_line_reaches_an_sse_client_unchecked(tmp_path: Path, case: str) -> None:
    """A keep-alive comment (or ``event:`` line) whose ``\\r`` hides a ``data:`` line, a
    data line whose JSON holds a ``\\r`` between its tokens (JSON white space), a first event
    behind a byte order mark, a ``data`` line without its colon: the client gets only JSON
    events, none of them unchecked (found 2026-12-05: the events with no line the gateway
    read as data were relayed as sent, so a client read a data line as a token the gateway
    never counted, limited or charged, with the node's own ``mesh``, or an empty event that
    is not JSON; the white-space ``\\r`` cut the client's JSON)."""
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo", "!"])
        if case == "comment":
            events.insert(2, b": keep-alive\r" + _forged(model, node.node_id) + b"\n\n")
        elif case == "event":
            events.insert(2, b"event: x\r" + _forged(model, node.node_id) + b"\n\n")
        elif case == "whitespace":
            events[2] = events[2].replace(b'"choices": ', b'"choices":\r\r')
        elif case == "bom":  # the stream's first bytes: the client drops the mark
            events.insert(0, b"\xef\xbb\xbf" + _forged(model, node.node_id) + b"\n\n")
        else:  # an event with data "" to the client: not JSON
            events.insert(2, b"data\n\n")
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
