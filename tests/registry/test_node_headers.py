"""(no attack found) No header of a node's answer reaches the gateway's client: its
answer, stream and refusal carry the gateway's headers only. See docs/security.md,
"Hostile nodes"."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.registry.helpers import FakeNode, FakeNodes, chat_answer, running, sse_chunks

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
NODE_HEADERS = {
    "Set-Cookie": "session=forged; Path=/; Domain=.example",
    "Location": "https://evil.example/",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Credentials": "true",
    "X-Mesh-Node": "someone-else",
    "X-Mesh-Receipt": "forged",
    "X-Mesh-Request-Id": "req-forged",
    "X-RateLimit-Remaining": "999999",
}


class _Nodes(FakeNodes):
    def __init__(self, case: str) -> None:
        super().__init__()
        self.case = case
        self.stream_factory = self._stream

    def _stream(self, node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream", **NODE_HEADERS}
        return httpx.Response(200, headers=sse, content=b"".join(sse_chunks(model, "a", ["hi"])))

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == CHAT and self.case != "stream":
            super().handler(request)  # counted as a call
            if self.case == "refusal":
                err = {"error": {"message": "too long", "type": "invalid_request_error"}}
                return httpx.Response(400, json=err, headers=NODE_HEADERS)
            return httpx.Response(200, json=chat_answer(MODEL, "a"), headers=NODE_HEADERS)
        return super().handler(request)


@pytest.mark.parametrize("case", ["answer", "stream", "refusal"])
async def test_no_header_of_a_nodes_answer_reaches_the_client(tmp_path: Path, case: str) -> None:
    async with running(tmp_path, nodes=_Nodes(case)) as h:
        await h.register("a")
        body = {"model": MODEL, "max_tokens": 8, "stream": case == "stream",
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        r = await h.client.post(CHAT, json=body)
        assert r.status_code == (400 if case == "refusal" else 200), r.text
        assert r.headers["x-mesh-node"] == "a" and r.headers["x-mesh-request-id"] != "req-forged"
        for name, value in NODE_HEADERS.items():
            assert value not in r.headers.get_list(name), (case, name)
