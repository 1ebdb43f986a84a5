"""A node pads its answer to a catalog model with text in fields no check reads.

Found 2026-12-06 (``money33``): the completion count a node is priced for is capped at the
UTF-8 bytes of its choices' generated text + 16 (``core/delivered.py``), and that text
included ``reasoning_content`` / ``reasoning``, ``refusal`` and tool calls, which no catalog
model makes (none reasons, and the mesh refuses tools and structured output) and which no
canary judges (a probe reads ``content`` / ``text``). A node answering "Hi" with 400 bytes
of made-up ``reasoning_content`` and claiming 100 tokens (a quarter of its cap, as an
honest node's share: the usage audit sees nothing) was paid 100, streamed or not. For a
catalog model only ``content`` and a completion's ``text`` are counted now; a custom
model's other fields still count (a reasoning model of an operator's own). The real app
with fake nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.delivered import SLACK_PER_CHOICE
from LLM_Mesh.core.pricing import request_cost
from tests.keyed import operator_account
from tests.registry.helpers import FakeNodes, running, sse_chunks
from tests.registry.test_charge import bearer, new_user, settled, settlement

CHAT = "/v1/chat/completions"
MODEL = "mistral-7b"
SPEC = get_spec(MODEL)
assert SPEC is not None
CLAIMED = 100  # a quarter of its cap: what an honest node's share looks like
PAD = {
    "reasoning_content": "x" * 400,
    "refusal": "y" * 400,
    "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "z" * 400}}
    ],
}
HONEST = len("Hi") + SLACK_PER_CHOICE


class Padding(FakeNodes):
    """Answer "Hi" with a field of padding, and claim :data:`CLAIMED` tokens."""

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != CHAT or resp.status_code != 200:
            return resp
        node = self.nodes[f"{request.url.host}:{request.url.port}"]
        pad = {self.field: PAD[self.field]}
        if json.loads(request.content).get("stream"):
            events = sse_chunks(MODEL, node.node_id, ["Hi"])
            first = json.loads(events[0][len(b"data: ") :])
            first["choices"][0]["delta"].update(pad)
            events[0] = b"data: " + json.dumps(first).encode() + b"\n\n"
            final = json.loads(events[-2][len(b"data: ") :])
            final["usage"]["completion_tokens"] = CLAIMED
            events[-2] = b"data: " + json.dumps(final).encode() + b"\n\n"
            sse = {"content-type": "text/event-stream"}
            return httpx.Response(200, headers=sse, content=b"".join(events))
        data = resp.json()
        data["choices"][0]["message"].update({"content": "Hi", **pad})
        data["usage"]["completion_tokens"] = CLAIMED
        data["usage"]["total_tokens"] = data["usage"]["prompt_tokens"] + CLAIMED
        return httpx.Response(200, json=data)


def _final(text: str) -> dict[str, Any]:
    return [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")][-1]


@pytest.mark.parametrize("field", sorted(PAD))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_padding_a_catalog_models_answer_outside_its_text_is_not_paid(
    tmp_path: Path, stream: bool, field: str
) -> None:
    async with running(tmp_path, nodes=Padding(field)) as h:
        await h.register("a", models=[MODEL])
        s = settlement(h)
        s.note_operator("a", "mallory")
        key, account = await new_user(h, 10**6)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 400, "stream": stream}  # fmt: skip
        r = await h.client.post(CHAT, json=body, headers=bearer(key))
        assert r.status_code == 200, r.text
        answer = _final(r.text) if stream else r.json()
        mesh = answer["mesh"]
        assert mesh["completion_tokens"] == HONEST  # before the fix: 100
        cost = request_cost(SPEC.price, answer["usage"]["prompt_tokens"], HONEST)
        assert mesh["cost"] == cost
        await settled(s)
        assert (await s.balance(account))[0] == 10**6 - cost
        assert (await s.balance(operator_account("mallory")))[0] <= cost
