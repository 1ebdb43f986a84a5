"""The completion tokens the gateway prices for a node's part: at most what it delivered.

Pure (no I/O). A node states its own ``usage.completion_tokens``; the gateway has no
tokenizer. What it can count is the text it relayed for the node, and every honest engine
emits at least one UTF-8 byte of text per generated token (a byte-level BPE token decodes
to one or more bytes; a token that is part of a multi-byte character is held back until
the character is whole, so the bytes still outnumber the tokens), except zero-byte
control tokens: the end token a choice stops at, the odd special token an engine strips
from its text, a stop string it cuts off. So the count the gateway prices
(:func:`priced_completion`) is the node's count, at most the UTF-8 bytes delivered for
that part (:func:`answer_bytes`, :func:`chunk_bytes`) plus :data:`SLACK_PER_CHOICE` per
choice the request asked for. A node that answers ``"Hi"`` and reports ``max_tokens`` is
priced for 2 + 16 tokens, not ``max_tokens``.

The bytes counted are those of the text a choice generated, however the engine carries
it: every string inside its ``message`` (a stream: ``delta``) at any depth (``content``,
``reasoning_content`` / ``reasoning``, ``refusal``, ``tool_calls``' names and arguments,
a content list's ``text``) but a ``role``, an ``id`` or a ``type`` (made by the server,
not generated), and a completion choice's ``text``; every choice, not the first only (the
receipt's output hash is the first choice's: :mod:`~LLM_Mesh.core.answer_text`). A node
could pad its text to be paid more, but only by delivering it: the bound is on what it
claims beyond what it delivered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SLACK_PER_CHOICE", "answer_bytes", "chunk_bytes", "priced_completion"]

# zero-byte tokens an honest engine may count per choice: its end token (vLLM and
# llama.cpp count the EOS / end-of-turn token a choice stops at), a few special tokens it
# strips from its text, a short stop string it cuts off (up to about 16 bytes). Larger
# only widens what a node may claim without delivering (at most this many tokens a choice)
SLACK_PER_CHOICE = 16

_SERVER_MADE = frozenset({"role", "id", "type"})  # strings no token generated


def _strings(value: Any, out: list[str]) -> None:
    """Every string inside ``value`` (dicts and lists, at any depth; iterative: a node's
    JSON may be nested as deep as the parser allows), but those under a server-made key."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k not in _SERVER_MADE)
        elif isinstance(item, list):
            stack.extend(item)


def _choice_strings(choices: Any, key: str, out: list[str]) -> None:
    if not isinstance(choices, list):
        return
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        body = choice.get(key)
        if isinstance(body, dict):
            _strings(body, out)
        text = choice.get("text")
        if isinstance(text, str):
            out.append(text)


def _utf8(pieces: list[str]) -> int:
    return len("".join(pieces).encode("utf-8", "surrogatepass"))


def answer_bytes(obj: Any) -> int:
    """The UTF-8 bytes a whole (non-streamed) answer's choices generated (see the module
    docstring); 0 for anything that is no answer."""
    out: list[str] = []
    if isinstance(obj, dict):
        _choice_strings(obj.get("choices"), "message", out)
    return _utf8(out)


def chunk_bytes(objs: Iterable[Any]) -> int:
    """The UTF-8 bytes the choices of a stream's chunks (parsed ``data:`` objects, in any
    order) generated (see the module docstring)."""
    out: list[str] = []
    for obj in objs:
        if isinstance(obj, dict):
            _choice_strings(obj.get("choices"), "delta", out)
    return _utf8(out)


def priced_completion(reported: int, delivered_bytes: int, choices: int = 1) -> int:
    """The completion tokens priced for a node's part: its ``reported`` count, at most the
    ``delivered_bytes`` of text relayed for it plus :data:`SLACK_PER_CHOICE` for each of the
    request's ``choices`` (at least one). Never more than ``reported``, never below 0."""
    bound = max(0, delivered_bytes) + SLACK_PER_CHOICE * max(1, choices)
    return max(0, min(reported, bound))
