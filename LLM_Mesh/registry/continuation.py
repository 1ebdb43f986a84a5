"""Mid-stream failover: what to ask the next node so one stream goes on unbroken.

When a node dies after some tokens reached the client, the gateway asks
another node hosting the same model to *continue* from the text generated so
far:

- ``/v1/completions``: ``prompt`` = original prompt + generated text,
  ``max_tokens`` reduced by the tokens already sent, ``echo`` off. Any node can
  do this (it is a plain completion).
- ``/v1/chat/completions``: the body plus ``"mesh_continue": "<assistant text so
  far>"``; only a node that advertises ``"continuation": true`` (in its
  registration's extra fields, or on the hosted model) is asked. The node must
  render the messages, then an *open* assistant turn holding that text (no
  end-of-turn token), and stream only the tokens that follow it.
- Nothing generated yet: the original body, to any node.
- A stream of ``n`` > 1 choices (``LLM_MESH_MAX_N`` raised) is not continued once text
  was sent: its text so far is every choice's run together, no prompt to go on from; it
  ends with an error event ``continuation_unsupported``.

The send stage (:mod:`~LLM_Mesh.registry.send_stream`) decides when and where to
continue and has the text so far from the text it gathered as each ``data:`` line was
read (``stream_part.PartReader``; :func:`delivered` is the same rule over the kept lines,
parsed again); the relay (:mod:`~LLM_Mesh.registry.relay`) rewrites every
chunk of the continuing node to the first node's ``id``/``created``/``model`` and
drops its leading role-only chunk; the account stage adds the tokens already sent
to the final ``usage``.
"""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.answer_text import chunk_text, objects_text, stream_objects, stream_text
from LLM_Mesh.core.delivered import chunk_bytes

__all__ = [
    "MESH_CONTINUE",
    "chunk_text",
    "continuation_body",
    "delivered",
    "generated",
    "length_ending",
]

CHAT_PATH = "/v1/chat/completions"
MESH_CONTINUE = "mesh_continue"  # a continuing node's field; a client's request may not carry it


def generated(data_lines: list[bytes]) -> tuple[str, int]:
    """Text and token count (one a content chunk) of the ``data:`` lines relayed so far,
    as read (bytes: decoded here, all at once)."""
    if not data_lines:
        return "", 0
    return stream_text(b"\n".join(data_lines).decode("utf-8", "replace").split("\n"))


def delivered(data_lines: list[bytes], choices: int = 1) -> tuple[str, int, int]:
    """:func:`generated` and the UTF-8 bytes the lines' ``choices`` (the request's ``n``)
    generated (``core/delivered.py``: what a node part's priced count is bounded by), in one
    parse."""
    if not data_lines:
        return "", 0, 0
    objs = stream_objects(b"\n".join(data_lines).decode("utf-8", "replace").split("\n"))
    text, chunks = objects_text(objs)
    return text, chunks, chunk_bytes(objs, choices)


def _reduce(body: dict[str, Any], key: str, sent: int) -> None:
    limit = body.get(key)
    if isinstance(limit, int) and not isinstance(limit, bool):
        body[key] = max(1, limit - sent)


def remaining_tokens(body: dict[str, Any], sent: int) -> int | None:
    """Tokens the client still allows (``None``: no limit given)."""
    limits = [
        v
        for k in ("max_completion_tokens", "max_tokens")
        if isinstance(v := body.get(k), int) and not isinstance(v, bool)
    ]
    return None if not limits else min(limits) - sent


def continuation_body(
    path: str, body: dict[str, Any], prompt_text: str, text: str, sent: int
) -> dict[str, Any]:
    """The body that asks a node to continue after ``text`` (``sent`` tokens)."""
    out = dict(body)
    if not text:
        return out
    for key in ("max_tokens", "max_completion_tokens"):
        _reduce(out, key, sent)
    if path == CHAT_PATH:
        out[MESH_CONTINUE] = text
    else:
        out["prompt"] = prompt_text + text
        out["echo"] = False
    return out


def length_ending(
    path: str, request_id: str, model: str, now: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last two chunks of a stream the gateway ends itself at the token limit (a node
    went past it): one with ``finish_reason: "length"``, then the final chunk (``choices``
    empty; ``usage`` and ``mesh`` are the account stage's), shaped as our nodes send them;
    the relay gives both the stream's ``id``/``created``/``model``."""
    chat = path == CHAT_PATH
    head = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{request_id}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(now),
        "model": model,
    }
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
    if chat:
        choice["delta"] = {}
    else:
        choice["text"] = ""
    return {**head, "choices": [choice]}, {**head, "choices": [], "usage": {}}
