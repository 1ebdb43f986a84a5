"""A mesh for the canary tests (``test_canary*.py`` and others): nodes that answer with
logprobs (honest, requantised, canned), a registry over them, and the prober, trust and
round helpers."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.registry.canary import CanaryProber
from LLM_Mesh.registry.quality import Quality
from tests.registry.helpers import ADMIN, FakeNode, FakeNodes, Harness, running

MODEL = "gemma-3-270m"
SHA = "a" * 64


def logprobs_for(prompt: str, shift: float = 0.0) -> dict[str, Any]:
    """A deterministic 'model': four tokens per prompt with log-probabilities."""
    rng = random.Random(prompt)
    toks = [f" t{rng.randrange(50)}" for _ in range(4)]
    lps = [-rng.uniform(0.05, 1.0) for _ in toks]
    return {
        "tokens": toks,
        "token_logprobs": [lp + shift for lp in lps],
        "top_logprobs": [
            {t: lp + shift, " zz": lp - 3 + shift} for t, lp in zip(toks, lps, strict=True)
        ],
        "text_offset": [0, 1, 2, 3],
    }


Answer = Callable[[dict[str, Any]], dict[str, Any]]


def prompt_of(body: dict[str, Any]) -> str:
    """The prompt of a completion or chat body (a chat probe's one user message)."""
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body["prompt"])


def wants_logprobs(body: dict[str, Any]) -> bool:
    return bool(body.get("logprobs")) or body.get("logprobs") == 0


def honest(body: dict[str, Any]) -> dict[str, Any]:
    lp = logprobs_for(prompt_of(body))
    text = "".join(lp["tokens"])
    lp_out = lp if wants_logprobs(body) else None
    return {"choices": [{"index": 0, "text": text, "logprobs": lp_out, "finish_reason": "length"}]}


def requantised(body: dict[str, Any]) -> dict[str, Any]:
    lp = logprobs_for(prompt_of(body), shift=-0.4)
    return {"choices": [{"index": 0, "text": "".join(lp["tokens"]), "logprobs": lp}]}


def canned(body: dict[str, Any]) -> dict[str, Any]:
    toks = [" I", " am", " happy", " to"]
    lp = {"tokens": toks, "token_logprobs": [-0.1] * 4, "top_logprobs": [{t: -0.1} for t in toks]}
    return {"choices": [{"index": 0, "text": "".join(toks), "logprobs": lp}]}


def as_chat(choice: dict[str, Any]) -> dict[str, Any]:
    """A completion choice in chat's shape (``logprobs.content``)."""
    lp = choice.get("logprobs")
    content = None
    if isinstance(lp, dict):
        content = [
            {"token": t, "logprob": v,
             "top_logprobs": [{"token": k, "logprob": x} for k, x in top.items()]}
            for t, v, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"],
                                 strict=True)
        ]  # fmt: skip
    return {
        "index": 0,
        "message": {"role": "assistant", "content": choice["text"]},
        "logprobs": None if content is None else {"content": content},
        "finish_reason": choice.get("finish_reason", "length"),
    }


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}  # logprobs_for's


STREAM_PIECES = "_stream_pieces"
"""An answer function's own key (never sent): the text pieces a node's engine produced,
one a generated token (``tests/registry/test_canary_sampled.py``'s sim nodes), streamed
one chunk a piece as a node streams them (``node/app.py``: one SSE event a delta)."""


def sse(
    node_id: str,
    model: str,
    chat: bool,
    text: str,
    usage: dict[str, int] | None = None,
    pieces: list[str] | None = None,
    finish_reason: str = "length",
) -> bytes:
    """``text`` streamed as a node streams it (no log-probabilities): one chunk a piece of
    ``pieces`` where given (a node's engine's tokens), else a few characters a chunk;
    ``usage`` (default :data:`USAGE`) in the final chunk."""
    obj = "chat.completion.chunk" if chat else "text_completion"
    base = {"id": "cmpl-1", "object": obj, "created": 1, "model": model}
    if pieces is None:
        pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    out = []
    for p in pieces:
        choice = {"index": 0, "delta": {"content": p}} if chat else {"index": 0, "text": p}
        out.append({**base, "choices": [choice]})
    end = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
    out.append({**base, "choices": [{**end, "finish_reason": finish_reason}]})
    out.append({**base, "choices": [], "usage": usage or USAGE,
                "mesh": {"node_id": node_id}})  # fmt: skip
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in out) + (
        b"data: [DONE]\n\n"
    )


class LogprobNodes(FakeNodes):
    """Fake nodes whose completions come from an :data:`Answer` function per node, on
    both endpoints, streamed or not (a stream carries the text only, as nodes' do: one
    chunk a token where the function gives them, :data:`STREAM_PIECES`); the answer's
    ``usage`` is :data:`USAGE` unless the function states its own."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, Answer] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        node = self.nodes.get(f"{request.url.host}:{request.url.port}")
        paths = ("/v1/completions", "/v1/chat/completions")
        if node is not None and request.url.path in paths:
            body = json.loads(request.content)
            node.calls.append(
                {"path": request.url.path, "body": body, "headers": request.headers,
                 "raw": request.content}
            )  # fmt: skip
            chat = request.url.path == "/v1/chat/completions"
            data = self.answers.get(node.node_id, honest)(body)
            pieces = data.pop(STREAM_PIECES, None)
            if body.get("stream"):
                choice = data["choices"][0]
                content = sse(node.node_id, body["model"], chat, choice["text"],
                               data.get("usage"), pieces,
                               choice.get("finish_reason") or "length")  # fmt: skip
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, content=content
                )
            if chat:
                data["choices"] = [as_chat(data["choices"][0])]
            kind = "chat.completion" if chat else "text_completion"
            data.update(id="cmpl-1", object=kind, model=body["model"])
            data.setdefault("usage", USAGE)
            data["mesh"] = {"node_id": node.node_id}
            return httpx.Response(200, json=data)
        return super().handler(request)


async def register(
    h: Harness,
    node_id: str,
    answer: Answer = honest,
    sha: str | None = SHA,
    models: dict[str, str | None] | None = None,
) -> FakeNode:
    """Register (or again) ``node_id`` serving ``MODEL`` with ``sha``, or ``models``
    (model id -> sha256)."""
    nodes = h.nodes
    assert isinstance(nodes, LogprobNodes)
    node = nodes.nodes.get(f"{node_id}:8801") or nodes.add(node_id)
    nodes.answers[node_id] = answer
    served = {MODEL: sha} if models is None else models
    reg = {
        "node_id": node_id,
        "url": f"http://{node_id}:8801",
        "models": [{"id": m, "engine": "llama-cpp", "sha256": s} for m, s in served.items()],
        "max_concurrency": 2,
    }
    r = await h.client.post("/mesh/nodes", json=reg)
    assert r.status_code == 200, r.text
    return node


@pytest.fixture
async def mesh(tmp_path: Path) -> Any:
    async with running(tmp_path, nodes=LogprobNodes()) as h:
        yield h


def prober(h: Harness) -> CanaryProber:
    p = h.app.state.canary
    assert isinstance(p, CanaryProber)
    return p


async def trust(h: Harness, node_id: str) -> None:
    q = h.runtime.quality
    assert q is not None
    await q.trust(node_id)


async def run_round(h: Harness, **params: str) -> list[dict[str, Any]]:
    r = await h.client.post("/mesh/canary/run", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def an_hour_later(quality: Quality) -> None:
    """Quality control's wall clock an hour on: the public sees the tally of the hour
    before (``core/canary_publish.py``)."""
    later = quality.now() + timedelta(hours=1)
    quality.now = lambda: later
    quality.changes += 1  # GET /mesh/nodes is built again


async def nodes_view(h: Harness) -> dict[str, dict[str, Any]]:
    r = await h.client.get("/mesh/nodes")
    return {n["node_id"]: n for n in r.json()["nodes"]}


async def entries_by_request(h: Harness) -> dict[str, list[tuple[str, str, str, int]]]:
    rt = h.runtime
    assert rt.settlement is not None and rt.ledger is not None
    await rt.settlement.flush()
    entries, _ = await rt.ledger.entries(-1, 10_000)
    out: dict[str, list[tuple[str, str, str, int]]] = {}
    for e in entries:
        if e.request_id:
            out.setdefault(e.request_id, []).append(
                (e.kind, e.from_account, e.to_account, e.amount)
            )
    return out
