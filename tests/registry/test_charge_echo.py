"""A completion's ``echo``: the echoed prompt is no text the node generated.

Found 2026-12-06 (``money33``): the completion count a node is priced for is capped at the
UTF-8 bytes of the text it delivered + 16 (``core/delivered.py``), and with ``echo: true``
that text begins with the client's prompt, so a node answering "Hi" to a 400-byte prompt
could claim 418 completion tokens, not 18: paid the prompt's bytes again, at the dearer
completion price, streamed or not, while the payer was charged the same. The echoed prompt
is left out of the bytes the cap counts. The real app with fake nodes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.delivered import SLACK_PER_CHOICE
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.core.pricing import request_cost
from tests.keyed import operator_account
from tests.registry.helpers import FakeNodes, running
from tests.registry.test_charge import bearer, new_user, settled, settlement
from tests.registry.test_midstream import completion_chunks
from tests.registry.test_receipts import MODEL

COMPLETIONS = "/v1/completions"
SPEC = get_spec(MODEL)
assert SPEC is not None
PRICE = SPEC.price
PROMPT = "word " * 80  # 400 bytes
CLAIMED = 500  # the node's count: its max_tokens
HONEST = len("Hi") + SLACK_PER_CHOICE  # what it generated, plus the slack


class EchoInflating(FakeNodes):
    """Echo the prompt, generate "Hi", report :data:`CLAIMED` completion tokens."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != COMPLETIONS or resp.status_code != 200:
            return resp
        node = self.nodes[f"{request.url.host}:{request.url.port}"]
        body = json.loads(request.content)
        assert body.get("echo") is True
        if body.get("stream"):
            events = completion_chunks(node.node_id, MODEL, [body["prompt"], "Hi"])
            final = json.loads(events[-2][len(b"data: ") :])
            final["usage"]["completion_tokens"] = CLAIMED
            events[-2] = b"data: " + json.dumps(final).encode() + b"\n\n"
            sse = {"content-type": "text/event-stream"}
            return httpx.Response(200, headers=sse, content=b"".join(events))
        data = resp.json()
        data["choices"][0]["text"] = body["prompt"] + "Hi"
        data["usage"]["completion_tokens"] = CLAIMED
        data["usage"]["total_tokens"] = data["usage"]["prompt_tokens"] + CLAIMED
        return httpx.Response(200, json=data)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_node_is_not_paid_the_echoed_prompt_as_its_completion(
    tmp_path: Path, stream: bool
) -> None:
    async with running(tmp_path, nodes=EchoInflating()) as h:
        await h.register("a", models=[MODEL])
        s = settlement(h)
        s.note_operator("a", "mallory")
        key, account = await new_user(h, 10**6)
        body = {"model": MODEL, "prompt": PROMPT, "echo": True, "max_tokens": CLAIMED,
                "stream": stream}  # fmt: skip
        r = await h.client.post(COMPLETIONS, json=body, headers=bearer(key))
        assert r.status_code == 200, r.text
        if stream:
            answer = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
            text = "".join(c["choices"][0]["text"] for c in answer if c.get("choices"))
            final = answer[-1]
        else:
            final = r.json()
            text = final["choices"][0]["text"]
        assert text == PROMPT + "Hi"  # the client got its echo
        mesh = final["mesh"]
        prompt_tokens = final["usage"]["prompt_tokens"]
        cost = request_cost(PRICE, prompt_tokens, HONEST)
        assert mesh["completion_tokens"] == HONEST  # before the fix: 400 + 2 + 16
        assert mesh["cost"] == cost
        await settled(s)
        assert (await s.balance(account))[0] == 10**6 - cost
        assert (await s.balance(operator_account("mallory")))[0] <= cost


def _two_choice_chunks(node_id: str, prompt: str) -> list[bytes]:
    """A stream of ``n`` 2 with ``echo``: each choice's echoed prompt, then "Hi" each."""
    base = {"id": f"cmpl-{node_id}", "object": "text_completion", "created": 1, "model": MODEL}

    def ev(obj: dict[str, object]) -> bytes:
        return b"data: " + json.dumps({**base, **obj}).encode() + b"\n\n"

    out = [
        ev({"choices": [{"index": i, "text": t, "finish_reason": None}]})
        for t in (prompt, "Hi")
        for i in (0, 1)
    ]
    out += [ev({"choices": [{"index": i, "text": "", "finish_reason": "stop"}]}) for i in (0, 1)]
    usage = {"prompt_tokens": 7, "completion_tokens": CLAIMED, "total_tokens": 7 + CLAIMED}
    out.append(ev({"choices": [], "usage": usage, "mesh": {"node_id": node_id}}))
    return [*out, b"data: [DONE]\n\n"]


class EchoInflatingTwo(FakeNodes):
    """``n`` 2, streamed: both choices echo the prompt, then say "Hi"."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        resp = super().handler(request)
        if request.url.path != COMPLETIONS or resp.status_code != 200:
            return resp
        node = self.nodes[f"{request.url.host}:{request.url.port}"]
        body = json.loads(request.content)
        assert body.get("echo") is True and body.get("n") == 2 and body.get("stream")
        sse = {"content-type": "text/event-stream"}
        return httpx.Response(
            200, headers=sse, content=b"".join(_two_choice_chunks(node.node_id, body["prompt"]))
        )


async def test_a_stream_of_two_choices_pays_neither_echoed_prompt(tmp_path: Path) -> None:
    """attack34: a stream's echo was taken off once a part (the part's text as the receipt
    reads it: the first choice of each chunk, joined), so with ``n`` 2 the second choice's
    echoed prompt was priced as completion (400 bytes: 436 tokens, not 36), with
    ``max_n`` raised."""
    two = RequestLimits(max_n=2)  # (a registry that raised max_n: 1 by default)
    async with running(tmp_path, nodes=EchoInflatingTwo(), limits=two) as h:
        await h.register("a", models=[MODEL])
        s = settlement(h)
        s.note_operator("a", "mallory")
        key, account = await new_user(h, 10**6)
        body = {"model": MODEL, "prompt": PROMPT, "echo": True, "max_tokens": CLAIMED,
                "stream": True, "n": 2}  # fmt: skip
        r = await h.client.post(COMPLETIONS, json=body, headers=bearer(key))
        assert r.status_code == 200, r.text
        answer = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
        for i in (0, 1):  # the client got both echoes
            text = "".join(
                c["text"] for a in answer for c in a.get("choices", ()) if c["index"] == i
            )
            assert text == PROMPT + "Hi"
        mesh = answer[-1]["mesh"]
        honest = 2 * len("Hi") + 2 * SLACK_PER_CHOICE
        assert mesh["completion_tokens"] == honest  # before the fix: 400 + 4 + 32
        cost = request_cost(PRICE, answer[-1]["usage"]["prompt_tokens"], honest)
        assert mesh["cost"] == cost
        await settled(s)
        assert (await s.balance(account))[0] == 10**6 - cost
