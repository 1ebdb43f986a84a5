"""A node's 4xx reaches the client as OpenAI's error object with the node's status, never
as the node's bytes: HTML, plain text, a JSON array, a 10 kB message, fields that are not
strings, invalid UTF-8, megabytes. Streamed or not. See docs/security.md, "Hostile nodes"
and ``core/node_refusal.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.helpers import FakeNodes, running

CHAT = "/v1/chat/completions"
KEYS = {"message", "type", "code", "param"}


class Refusing(FakeNodes):
    """Node ``bad`` answers every chat request with :attr:`reply` (status, body, type)."""

    def __init__(self, reply: tuple[int, bytes, str]) -> None:
        super().__init__()
        self.reply = reply

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "bad" and request.url.path == CHAT:
            super().handler(request)  # counted as a call
            status, body, media = self.reply
            return httpx.Response(status, content=body, headers={"content-type": media})
        return super().handler(request)


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


NON_STRINGS = {
    "error": {"message": {"nested": 1}, "type": 5, "code": ["x"], "param": {"p": 1},
              "leak": "the prompt was: ..."},
    "mesh": {"node_id": "forged"},
}  # fmt: skip

HOSTILE = {
    "html_400": (400, b"<html><body><script>alert(1)</script>nope</body></html>", "text/html"),
    "text_404": (404, b"404 page not found\n", "text/plain"),
    "json_array": (400, _json([{"error": {"message": "an array"}}]), "application/json"),
    "message_10kB": (
        400,
        _json({"error": {"message": "A" * 10_000, "type": "invalid_request_error"}}),
        "application/json",
    ),
    "non_string_fields": (422, _json(NON_STRINGS), "application/json"),
    "invalid_utf8": (400, b'{"error": {"message": "bad \xff\xfe bytes"}}', "application/json"),
    "escapes_in_message": (
        400,
        _json({"error": {"message": "\x1b[2J\x1b]0;pwned\x07 reset", "code": "my own code"}}),
        "application/json",
    ),
    "megabytes": (413, b"x" * 5_000_000, "text/plain"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", list(HOSTILE))
async def test_a_nodes_4xx_reaches_the_client_as_openais_error_object(
    tmp_path: Path, case: str, stream: bool
) -> None:
    status, _, _ = HOSTILE[case]
    async with running(tmp_path, nodes=Refusing(HOSTILE[case])) as h:
        await h.register("bad")
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "stream": stream,
        })  # fmt: skip
        await h.runtime.writer.flush()
        codes = [row.error_code for row in h.store.requests]
    if case == "megabytes" and not stream:  # past the request's answer bound (found
        # 2026-12-05, core/answer_bound.py): not read on, the node's failure, none of its bytes
        assert r.status_code == 502 and len(r.content) < 1_000
        assert r.json()["error"]["code"] == "upstream_error" and codes == ["upstream_error"]
        return
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-mesh-node"] == "bad"
    assert len(r.content) < 1_000  # before: the node's bytes, 5 MB of them
    body = r.json()  # before: HTML, text, an array, invalid UTF-8 passed on
    assert set(body) == {"error"} and set(body["error"]) == KEYS
    err = body["error"]
    assert err["message"] == f"the node refused the request with HTTP {status}"
    assert err["type"] == "invalid_request_error"
    assert err["code"] is None and err["param"] is None
    assert codes == [f"http_{status}"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_nodes_own_openai_error_keeps_what_may_be_kept(
    tmp_path: Path, stream: bool
) -> None:
    sent = {"error": {"message": "the prompt is longer than 4096 tokens",
                      "type": "invalid_request_error", "code": "context_length_exceeded",
                      "param": "messages", "extra": "dropped"}}  # fmt: skip
    async with running(tmp_path, nodes=Refusing((400, _json(sent), "application/json"))) as h:
        await h.register("bad")
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "stream": stream,
        })  # fmt: skip
    assert r.status_code == 400
    assert r.json() == {"error": {"message": "the prompt is longer than 4096 tokens",
                                  "type": "invalid_request_error",
                                  "code": "context_length_exceeded", "param": "messages"}}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [(402, "insufficient_balance", "insufficient_balance"), (403, "permission_error", "revoked"),
     (409, "invalid_request_error", "duplicate_request")],
)  # fmt: skip
async def test_a_node_cannot_answer_in_the_gateways_name(
    tmp_path: Path, stream: bool, status: int, kind: str, code: str
) -> None:
    """A node's 402 "your balance is spent", 403 "your key is revoked" or 409 "duplicate
    request id" reads to the client (and to OpenAI's SDKs, which go by the status) as the
    gateway's own word (found 2026-12-02: passed on with the node's status, type and code).
    Its own kinds of refusal (400 ``context_length_exceeded``...) still pass."""
    sent = {"error": {"message": "Your balance is spent: top up at https://pay.example",
                      "type": kind, "code": code}}  # fmt: skip
    async with running(tmp_path, nodes=Refusing((status, _json(sent), "application/json"))) as h:
        await h.register("bad")
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "stream": stream,
        })  # fmt: skip
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["type"] == "api_error" and err["code"] == "upstream_error"
    assert "pay.example" not in err["message"]


async def test_a_failing_nodes_body_is_not_part_of_the_gateways_message(tmp_path: Path) -> None:
    """A 5xx is the gateway's own 502: the node's HTML does not reach its message."""
    html = b"<html><script>alert(1)</script>\x1b[2J</html>"
    async with running(tmp_path, nodes=Refusing((500, html, "text/html"))) as h:
        await h.register("bad")
        r = await h.client.post(CHAT, json={
            "model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8,
        })  # fmt: skip
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "<script>" not in message and "\x1b" not in message  # before: its first 200 bytes
    assert "node bad answered HTTP 500" in message
