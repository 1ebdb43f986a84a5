"""OpenAI response shapes the node sends: bodies, stream chunks, SSE framing.

Pure functions over plain data. A stream is ``chat.completion.chunk`` (or
``text_completion``) chunks, then one last chunk with ``"choices": []``,
``usage`` and ``mesh``, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from LLM_Mesh.core.canary import TokenLogprob
from LLM_Mesh.core.schemas import HostedModel, MeshMeta
from LLM_Mesh.node.engines.base import Usage

DONE = b"data: [DONE]\n\n"


def new_id(kind: str) -> str:
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return f"{prefix}-{secrets.token_hex(12)}"


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode("utf-8") + b"\n\n"


class TextChunks:
    """One stream's text chunks as SSE bytes, byte for byte ``sse(chunk(..., text=t))``.

    A stream's chunks differ only in their text: the bytes before and after it are
    made once, and each chunk escapes just its text (``json.dumps``'s own C escaper):
    no dict and no whole-object ``json.dumps`` per token on the node's event loop.
    """

    __slots__ = ("_head", "_tail")

    def __init__(self, *, kind: str, id: str, created: int, model: str) -> None:
        marker = "\x00text\x00"  # a string no JSON encoding of ``text`` produces
        whole = sse(chunk(kind=kind, id=id, created=created, model=model, text=marker))
        head, _, tail = whole.partition(encode_basestring_ascii(marker).encode("ascii"))
        self._head, self._tail = head, tail

    def __call__(self, text: str) -> bytes:
        return self._head + encode_basestring_ascii(text).encode("ascii") + self._tail


def _object(kind: str, stream: bool) -> str:
    if kind == "chat":
        return "chat.completion.chunk" if stream else "chat.completion"
    return "text_completion"


def answer_body(
    *,
    kind: str,
    id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    usage: Usage,
    mesh: MeshMeta,
    logprobs: Sequence[TokenLogprob] | None = None,
) -> dict[str, Any]:
    """A whole (non-streamed) answer (``logprobs``: each token's, when asked for)."""
    choice: dict[str, Any]
    if kind == "chat":
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": logprobs_body(kind, logprobs),
        }
    else:
        choice = {
            "index": 0,
            "text": text,
            "finish_reason": finish_reason,
            "logprobs": logprobs_body(kind, logprobs),
        }
    return {
        "id": id,
        "object": _object(kind, False),
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage.to_dict(),
        "mesh": mesh.model_dump(mode="json"),
    }


def chunk(
    *,
    kind: str,
    id: str,
    created: int,
    model: str,
    text: str | None = None,
    role: bool = False,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One streamed piece of text (and/or the finish reason)."""
    choice: dict[str, Any]
    if kind == "chat":
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": id,
        "object": _object(kind, True),
        "created": created,
        "model": model,
        "choices": [choice],
    }


def final_chunk(
    *, kind: str, id: str, created: int, model: str, usage: Usage, mesh: MeshMeta
) -> dict[str, Any]:
    """The last chunk before ``[DONE]``: no choices, the usage and the ``mesh`` object."""
    return {
        "id": id,
        "object": _object(kind, True),
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.to_dict(),
        "mesh": mesh.model_dump(mode="json"),
    }


def models_body(models: list[HostedModel], *, node_id: str, created: int) -> dict[str, Any]:
    """GET /v1/models."""
    return {
        "object": "list",
        "data": [
            {
                "id": m.id,
                "object": "model",
                "created": created,
                "owned_by": node_id,
                "mesh": {
                    "engine": m.engine,
                    "simulated": m.simulated,
                    "context_length": m.context_length,
                    "custom": m.custom,
                    "loaded": m.loaded,
                    "sha256": m.sha256,
                },
            }
            for m in models
        ],
    }


def completion_logprobs(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's ``/v1/completions`` ``logprobs`` object (tokens, their log-probs, top, offsets)."""
    offsets: list[int] = []
    pos = 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


def chat_logprobs(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's chat ``logprobs`` object (``content``: one entry per token)."""

    def entry(tok: str, lp: float) -> dict[str, Any]:
        return {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8"))}

    return {
        "content": [
            {**entry(t.token, t.logprob), "top_logprobs": [entry(s, v) for s, v in t.top]}
            for t in tokens
        ]
    }


def logprobs_body(kind: str, tokens: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    """The answer's ``logprobs`` in the shape of its endpoint (None when not asked for)."""
    if tokens is None:
        return None
    return chat_logprobs(tokens) if kind == "chat" else completion_logprobs(tokens)


def route_words(status: int, detail: str, request: Any) -> str:
    """A 404 of no route says this is a node and where clients go (found 2026-12-05,
    newuser32: a client pointed at the node's URL, which ``llm-mesh up`` prints beside the
    gateway's, said only ``Not Found``); any other error keeps its ``detail``."""
    if status != 404 or detail != "Not Found":
        return detail
    path = request.url.path
    asked = f"{request.method} {path[:200]}{'...' if len(path) > 200 else ''}"
    return (
        f"no endpoint {asked} on this LLM Mesh node: a node is called by its registry's "
        "gateway; clients (llm-mesh ask and status, an OpenAI client) use the registry's URL "
        "(`llm-mesh up` prints it as the gateway's; LLM_MESH_REGISTRY_URL)"
    )
