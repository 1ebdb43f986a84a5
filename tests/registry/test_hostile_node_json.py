"""A node's JSON that is not JSON (RFC 8259) never reaches the client: ``NaN``,
``Infinity``, a number past a float's range (``1e400``, read by Python as ``inf`` and
written back as ``Infinity``), an SSE event that is not a JSON object. Such an answer is
the node's protocol error (failover); such an event breaks the stream (continuation on
another node, else the ``FAIL`` error event). See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core import strict_json
from tests.registry.helpers import FakeNode, FakeNodes, chat_answer, rank, running, sse_chunks

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
SSE = {"content-type": "text/event-stream"}
NON_FINITE = [b"1e400", b"NaN", b"-Infinity"]


def _data(text: str) -> list[dict[str, object]]:
    """The client stream's data events, each read as RFC 8259 JSON (else ValueError)."""
    lines = [ln[5:].strip() for ln in text.split("\n") if ln.startswith("data:")]
    assert lines[-1] == "[DONE]", text[-300:]
    return [strict_json.loads_object(ln) for ln in lines[:-1]]


@pytest.mark.parametrize("value", NON_FINITE)
async def test_a_non_finite_number_in_an_answer_fails_over(tmp_path: Path, value: bytes) -> None:
    def answer(node: FakeNode, model: str) -> httpx.Response:
        body = json.dumps(chat_answer(model, node.node_id)).encode()
        if node.node_id == "liar":
            body = body.replace(b'"usage": {', b'"usage": {"cached_tokens": ' + value + b", ")
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
        })  # fmt: skip
        assert r.status_code == 200, r.text
        # before: the liar's answer, its number written back as Infinity / NaN
        assert r.headers["x-mesh-node"] == "honest"
        assert strict_json.loads_object(r.content)["mesh"]["node_id"] == "honest"
        assert nodes.asked == ["liar", "honest"]


class _Answers(FakeNodes):
    """Chat answers (JSON or a stream) from ``make``; ``asked``: the nodes asked, in order."""

    def __init__(self, make: object) -> None:
        super().__init__()
        self.make = make
        self.asked: list[str] = []
        self.stream_factory = self._made

    def _made(self, node: FakeNode, model: str) -> httpx.Response:
        self.asked.append(node.node_id)
        return self.make(node, model)  # type: ignore[operator]

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == CHAT and not json.loads(request.content).get("stream"):
            super().handler(request)  # counted as a call
            return self._made(self.nodes[f"{request.url.host}:{request.url.port}"], MODEL)
        return super().handler(request)


BAD_EVENTS = {
    "token_1e400": b'data: {"choices":[{"index":0,"delta":{"content":"x"},"logprob":1e400}]}',
    "token_nan": b'data: {"choices":[{"index":0,"delta":{"content":"x"}}],"p":NaN}',
    "garbage": b"data: this is not json",
    "cut_json": b'data: {"choices":[{"index":0,',
    "not_an_object": b"data: [1,2]",
    "not_utf8": b'data: {"choices":[{"index":0,"delta":{"content":"\xff"}}]}',
}


def _liar_stream(bad: bytes | None, usage_value: bytes | None = None) -> list[bytes]:
    events = sse_chunks(MODEL, "liar", ["Hel", "lo", "!"])
    if usage_value is not None:
        events[-2] = events[-2].replace(b'"total_tokens": 9', b'"total_tokens": ' + usage_value)
    if bad is not None:
        events.insert(2, bad + b"\n\n")  # after the role chunk and "Hel"
    return events


@pytest.mark.parametrize(
    ("bad", "usage_value"),
    [(v, None) for v in BAD_EVENTS.values()] + [(None, v) for v in NON_FINITE],
    ids=list(BAD_EVENTS) + [f"usage_{v.decode()}" for v in NON_FINITE],
)
async def test_an_event_that_is_not_json_breaks_the_stream(
    tmp_path: Path, bad: bytes | None, usage_value: bytes | None
) -> None:
    events = _liar_stream(bad, usage_value)
    nodes = _Answers(lambda node, model: httpx.Response(200, headers=SSE, content=b"".join(events)))
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("liar")
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "stream": True, "allow_nodes": ["liar"],
        })  # fmt: skip
        assert r.status_code == 200
        chunks = _data(r.text)  # before: the node's bytes (or Infinity / NaN) as sent
        assert not any("usage" in c for c in chunks)  # no final chunk: the node broke off
        assert h.in_flight("liar") == 0
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        if usage_value is None:
            assert "error" in chunks[-1] and "not JSON" in chunks[-1]["error"]["message"]
            assert rec.outcome == "error"
        else:  # its answer was over (its finish chunk came first): it ends there, counted
            # by its chunks (test_midstream.py::test_a_stream_that_finished_before_it_broke...)
            assert r.text.rstrip().endswith("data: [DONE]") and '"error"' not in r.text
            assert (rec.outcome, rec.completion_tokens) == ("ok", 3)


async def test_a_stream_broken_by_garbage_is_continued_on_another_node(tmp_path: Path) -> None:
    def stream(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "liar":
            return httpx.Response(200, headers=SSE, content=b"".join(_liar_stream(b"data: ??")))
        return httpx.Response(200, headers=SSE, content=b"".join(sse_chunks(model, "ok", ["lo!"])))

    nodes = _Answers(stream)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest", continuation=True)
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "stream": True,
        })  # fmt: skip
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "liar"
        chunks = _data(r.text)  # before: "data: ??" reached the client, no continuation
        assert nodes.asked == ["liar", "honest"]
        said = "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in chunks if c.get("choices"))  # fmt: skip
        assert said == "Hello!" and not any("error" in c for c in chunks)
        assert chunks[-1]["mesh"]["failover_from"] == ["liar"]


NOT_ANSWERS = {
    # an error in the gateway's name, with the gateway's receipt on it
    "error": {"error": {"message": "your key was revoked: pay at https://evil.example",
                        "type": "insufficient_balance", "code": "insufficient_balance"}},
    "no_choices": {"id": "x", "object": "chat.completion", "model": MODEL},
    "empty_choices": {"id": "x", "object": "chat.completion", "model": MODEL, "choices": []},
}  # fmt: skip


@pytest.mark.parametrize("case", list(NOT_ANSWERS))
async def test_a_200_that_is_no_answer_fails_over(tmp_path: Path, case: str) -> None:
    """A node's 200 whose JSON object is an error, or has no choice: the node's failure,
    another node answers (found 2026-12-05: passed on as the answer, with the gateway's
    ``mesh`` and receipt: an error in the gateway's name, ``insufficient_balance`` and a
    payment link, or nothing; the router heard a success, and such a node, answering at
    once, was ranked fastest and never ejected)."""

    def answer(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "liar":
            return httpx.Response(200, json=NOT_ANSWERS[case])
        return httpx.Response(200, json=chat_answer(model, node.node_id))

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
        })  # fmt: skip
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "honest", r.text
        assert "evil" not in r.text and strict_json.loads_object(r.content)["choices"]
        assert nodes.asked == ["liar", "honest"]
